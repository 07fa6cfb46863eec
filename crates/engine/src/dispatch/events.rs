//! Status events out: progress events of live messages, and the one terminal event that
//! frees a message.

use super::*;

impl<C: Carrier> Dispatcher<C> {
    /// Hands an event to the gateway; a terminal one also frees the message.
    pub(super) fn emit(&mut self, key: EntryKey, event: Event, now: Nanos) {
        if !event.is_terminal() {
            let Some(entry) = self.slab.get_mut(key) else {
                return;
            };
            let about = match event {
                Event::Retrying { carrier, after } => {
                    self.carriers[carrier.get()].counts.retries += 1;
                    let (id, flagged) = (entry.delivery.id(), entry.delivery.possible_duplicate());
                    self.record_retry(id, after, flagged);
                    Some(carrier)
                }
                Event::FailedOver { from, to } => {
                    self.carriers[from.get()].counts.failovers += 1;
                    let (id, flagged) = (entry.delivery.id(), entry.delivery.possible_duplicate());
                    self.record_retry(id, now, flagged);
                    Some(to)
                }
                // Reported with the carrier's ids once the attempt's answer is known.
                Event::Submitted { .. } => return,
                _ => None,
            };
            let carrier = about.map(|c| (c, self.slots[c.get()].name));
            let Some(entry) = self.slab.get_mut(key) else {
                return;
            };
            let status = progress_event(entry, event, now, carrier, smallvec::SmallVec::new());
            // With a journal, the `Accepted` event waits for the disk and is never dropped.
            match (&mut self.journal, event) {
                (Some(journal), Event::Accepted) => journal.accepted(status),
                _ => {
                    let live = self.slab.live();
                    self.events.progress(status, live);
                }
            }
            return;
        }
        let Some(mut entry) = self.slab.remove(key) else {
            return;
        };
        self.shared.ids.remove(&entry.delivery.id());
        // Delivered: every part's final receipt took its id out already; without receipts
        // none was registered.
        if self.shared.options.request_receipts && event != Event::Delivered {
            super::inputs::forget_ids(&mut self.dlr, &entry, key);
        }
        if let Some(flight) = entry.in_flight.take() {
            // Ended with its submit unanswered (expired in flight).
            if let Some(task) = &flight.task {
                task.abort();
            }
            let status = submitted_event(&entry, &flight, &self.slots, smallvec::SmallVec::new());
            let live = self.slab.live() + 1;
            self.events.progress(status, live);
        }
        let d = &entry.delivery;
        let history = d.history();
        if let Some(charge) = &entry.charge {
            // No carrier took it: nothing was sent to pay for.
            let taken = history
                .iter()
                .any(|a| a.outcome == smsroute_delivery::AttemptOutcome::Accepted);
            if !taken && self.shared.snapshot.load().refund_on_failure {
                charge.account.fetch_add(charge.charged, Ordering::AcqRel);
            }
        }
        self.quality_sample(&entry, event, now);
        if let Some(outcome) = event.outcome() {
            self.counts.outcomes[outcome.index()] += 1;
        }
        self.counts.possible_duplicates += u64::from(d.possible_duplicate());
        let status = StatusEvent {
            id: d.id(),
            at: now,
            event,
            attempts: d.attempts(),
            possible_duplicate: d.possible_duplicate(),
            carrier: history.last().map(|a| a.carrier),
            carrier_name: history.last().map(|a| self.slots[a.carrier.get()].name),
            history: (history.len() > 1).then(|| history.into()),
            carrier_message_ids: entry.carrier_ids,
            message: entry.message,
            ack: 0,
            replay: false,
        };
        match &mut self.journal {
            Some(journal) => journal.finish(status),
            None => self.hand_out_terminal(status),
        }
    }

    /// Hands one turn's held events to the gateway, now durable: their batch as it is.
    pub(super) fn hand_out_held(&mut self, held: journal::HeldEvents) {
        if held.last_ack > 0 {
            self.shared
                .handed_out
                .fetch_max(held.last_ack, Ordering::Release);
        }
        if self.draining.is_some() {
            self.drained += held.terminals;
        }
        self.events.hand_over(held.events, held.terminals as usize);
    }

    /// Hands a terminal event to the gateway (with a journal, once its record is durable).
    pub(super) fn hand_out_terminal(&mut self, status: StatusEvent) {
        self.shared
            .handed_out
            .fetch_max(status.ack, Ordering::Release);
        self.events.terminal(status);
        if self.draining.is_some() {
            self.drained += 1;
        }
    }
}

/// A progress event of a live message.
pub(super) fn progress_event(
    entry: &Entry,
    event: Event,
    at: Nanos,
    carrier: Option<(CarrierSlot, &'static str)>,
    carrier_message_ids: smallvec::SmallVec<[CarrierMessageId; 1]>,
) -> StatusEvent {
    StatusEvent {
        id: entry.delivery.id(),
        at,
        event,
        attempts: 0,
        possible_duplicate: false,
        carrier: carrier.map(|c| c.0),
        carrier_name: carrier.map(|c| c.1),
        history: None,
        carrier_message_ids,
        message: entry.message.clone(),
        ack: 0,
        replay: false,
    }
}

/// The `Submitted` event of an attempt whose answer is now known, at the time it was sent.
pub(super) fn submitted_event<C>(
    entry: &Entry,
    flight: &InFlight,
    slots: &[Arc<SlotEntry<C>>],
    ids: smallvec::SmallVec<[CarrierMessageId; 1]>,
) -> StatusEvent {
    let name = slots[flight.carrier.get()].name;
    let event = Event::Submitted {
        carrier: flight.carrier,
        attempt: flight.attempt,
    };
    progress_event(
        entry,
        event,
        flight.started,
        Some((flight.carrier, name)),
        ids,
    )
}
