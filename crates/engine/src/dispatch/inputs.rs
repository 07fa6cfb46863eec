//! The dispatcher's inputs: new messages, carrier answers, receipts, replies, timers.

use super::*;

impl<C: Carrier> Dispatcher<C> {
    /// A new message: start its state machine.
    pub(super) fn start(&mut self, job: Job, now: Nanos) {
        if job.candidates.iter().any(|c| c.get() >= self.slots.len()) {
            self.sync();
        }
        let (message, checked, charge, priority) =
            (job.message, job.checked, job.charge, job.priority);
        let request = DeliveryRequest {
            id: message.id(),
            parts: message.segments(),
            candidates: job.candidates,
            receipt: self.shared.options.request_receipts,
            validity: message.validity().map(|d| d.as_nanos() as Nanos),
            not_before: message
                .not_before()
                .map(|at| self.now_system_offset(now, at)),
        };
        self.counts.accepted += 1;
        let (delivery, actions) = Delivery::start(request, self.policy, now);
        let mut entry = Entry::new(delivery, message, checked, charge);
        entry.priority = priority;
        let key = self.slab.insert(entry);
        self.apply(key, actions, now);
    }

    /// A reply from a recipient: its keyword changes the suppression list here, in the
    /// dispatcher, so every dispatch after it sees the change; then the gateway hears of it.
    pub(super) fn inbound(&mut self, carrier: CarrierSlot, inbound: Inbound, now: Nanos) {
        let keyword = Keyword::parse(&inbound.text);
        let changed = match (keyword, smsroute_types::E164::parse(&inbound.from)) {
            (Some(k), Ok(number)) => self
                .shared
                .suppression
                .apply(k, &number, &inbound.to)
                .unwrap_or(true),
            _ => false,
        };
        let kind = keyword.map_or(InboundKind::Other, InboundKind::Keyword);
        self.shared.inbound.get(&kind).increment(1);
        let event = InboundEvent {
            carrier,
            from: inbound.from,
            to: inbound.to,
            text: inbound.text,
            keyword,
            changed,
            at: now,
        };
        if self.replies_tx.try_send(event).is_err() {
            self.shared.inbound.get(&InboundKind::Dropped).increment(1);
        }
    }

    /// A carrier answered attempt `attempt` of a message.
    pub(super) fn complete(&mut self, done: Completion, now: Nanos) {
        let live = self.slab.live();
        let Some(entry) = self.slab.get_mut(done.key) else {
            return;
        };
        let current = entry.in_flight.as_ref().map(|f| f.attempt);
        if current != Some(done.attempt) {
            return; // timed out already
        }
        let flight = entry.in_flight.take().expect("checked above");
        let result = match &done.result {
            Ok(_) => SubmitResult::Accepted,
            Err(e) => e.as_submit_result(),
        };
        let actions =
            entry
                .delivery
                .handle_submit_result(done.attempt, result, now, &mut self.budgets[..]);
        let ids = match done.result {
            Ok(accepted) => accepted.message_ids,
            Err(_) => smallvec::SmallVec::new(),
        };
        // The events' copy is inline: the carrier's boxed ids (only hashed into the receipt
        // map) are freed here, on the thread that made them, never on the gateway's.
        let event_ids: smallvec::SmallVec<[CarrierMessageId; 1]> =
            ids.iter().map(|id| CarrierMessageId::new(id)).collect();
        if let (Some(journal), SubmitResult::Accepted) = (&mut self.journal, result) {
            let name = &self.slots[flight.carrier.get()].id;
            journal.submitted(entry.delivery.id(), name, &ids);
        }
        let waits = !ids.is_empty() && self.shared.options.request_receipts;
        let early = if waits {
            // An earlier attempt's ids are no longer waited for.
            forget_ids(&mut self.dlr, entry, done.key);
            announce_waiting(&self.shared, &self.slots, flight.carrier, &ids);
            let dlr = &mut self.dlr;
            dlr.expect_all(flight.carrier, &ids, done.key, done.attempt)
        } else {
            smallvec::SmallVec::new()
        };
        if self.events.wants_progress() {
            let status = submitted_event(entry, &flight, &self.slots, event_ids.clone());
            self.events.progress(status, live);
        }
        if !event_ids.is_empty() {
            entry.carrier_ids = event_ids;
            entry.ids_carrier = flight.carrier;
        }
        let state = &mut self.carriers[flight.carrier.get()];
        state.counts.submits[metric_result(result) as usize] += 1;
        state
            .metrics
            .submit_latency
            .record(now.saturating_sub(flight.started) as f64 / 1e9);
        self.end_submit(
            &flight,
            health_outcome(result, now.saturating_sub(flight.started)),
            now,
        );
        if waits {
            self.awaiting_since(done.key, now);
        }
        self.apply(done.key, actions, now);
        for matched in early {
            self.receipt(matched, ReceiptAck::none(), now);
        }
    }

    /// A receipt from `carrier`: matched to its part here, where the message is now (in
    /// memory or parked), or held as early (answered at once: its message was still in
    /// flight, which a crash turns into a resubmit flagged `possible_duplicate` anyway).
    pub(super) fn receipt_in(
        &mut self,
        carrier: CarrierSlot,
        receipt: Receipt,
        ack: ReceiptAck,
        now: Nanos,
    ) {
        let early_ttl = self.shared.options.early_receipt_ttl_ms * 1_000_000;
        // Another node may wait for it: a copy for the relay, taken only when there is one.
        let relayed = self
            .shared
            .options
            .receipt_relay
            .as_ref()
            .filter(|_| receipt.status.is_final())
            .map(|relay| (relay, receipt.clone()));
        match self.dlr.arrive(carrier, receipt, now, early_ttl) {
            Some(matched) => self.receipt(matched, ack, now),
            // Another node may wait for it: the relay answers the carrier once it is passed on.
            None => match relayed {
                Some((relay, receipt)) => {
                    relay.unmatched(&self.slots[carrier.get()].id, &receipt, ack)
                }
                None => self.receipt_done(ack),
            },
        }
    }

    /// A matched delivery receipt; `ack` is answered once what it did is durable (or, for a
    /// parked message with no room to take it up yet, held with it).
    pub(super) fn receipt(&mut self, matched: Matched, ack: ReceiptAck, now: Nanos) {
        if matched.target.key.is_parked() {
            match self.parked_receipt(matched, now) {
                park::ParkedReceipt::NoRoom(waits) => self.deferred.push_back((waits, ack)),
                park::ParkedReceipt::Handled => self.receipt_done(ack),
                // Dropped unanswered: its carrier offers it again, to find it the same way.
                park::ParkedReceipt::Unrecorded => self.dlr.restore(&matched),
            }
            return;
        }
        self.apply_receipt(matched, now);
        self.receipt_done(ack);
    }

    /// Answers the carrier for a receipt handled now: at once without a journal, else once
    /// every record it caused is durable.
    pub(super) fn receipt_done(&mut self, ack: ReceiptAck) {
        match &mut self.journal {
            Some(journal) => journal.receipt_done(ack),
            None => ack.taken(),
        }
    }

    /// A matched receipt for a message in memory, handed to its state machine.
    fn apply_receipt(&mut self, matched: Matched, now: Nanos) {
        let Some(entry) = self.slab.get_mut(matched.target.key) else {
            self.dlr.unknown += 1;
            return;
        };
        let t = matched.target;
        if let Some(attempt) = entry.delivery.history().last() {
            let state = &mut self.carriers[attempt.carrier.get()];
            state.counts.receipts[matched.status.index()] += 1;
            if matched.status.is_final() {
                state
                    .metrics
                    .dlr_latency
                    .record(now.saturating_sub(attempt.at) as f64 / 1e9);
            }
        }
        let delivered_before = entry.delivery.delivered_parts();
        let actions = entry.delivery.handle_receipt(
            t.attempt,
            t.part,
            matched.status,
            now,
            &mut self.budgets[..],
        );
        // A part delivered while others still wait: recorded, so a crash keeps it.
        if entry.delivery.delivered_parts() != delivered_before
            && entry.delivery.awaiting_receipt().is_some()
            && let Some(journal) = &mut self.journal
        {
            journal.part_delivered(entry.message.id(), t.part);
        }
        self.apply(t.key, actions, now);
    }

    pub(super) fn wake(&mut self, at: Nanos, wake: Wake, now: Nanos) {
        match wake {
            Wake::Tick => self.tick(now),
            Wake::Lane(carrier) => {
                let state = &mut self.carriers[usize::from(carrier)];
                if state.lane_wake == Some(at) {
                    state.lane_wake = None;
                    self.mark_dirty(CarrierSlot(carrier));
                }
            }
            Wake::Entry(key) => self.wake_entry(key, at, now),
        }
    }

    pub(super) fn wake_entry(&mut self, key: EntryKey, at: Nanos, now: Nanos) {
        let live = self.slab.live();
        let Some(entry) = self.slab.get_mut(key) else {
            return;
        };
        if entry.wake_at != at {
            return; // replaced by a later wake-up
        }
        entry.wake_at = Nanos::MAX;
        if let Some(lane) = entry.lane.take() {
            self.carriers[lane.get()].left_lane(entry.message.segments());
            // Still waiting for its carrier at its deadline: expired.
            let actions =
                entry
                    .delivery
                    .handle_admission(Lane::TooLate, now, &mut self.budgets[..]);
            return self.apply(key, actions, now);
        }
        let actions = entry.delivery.handle_timer(now, &mut self.budgets[..]);
        // A submit the machine gave up on (timeout) frees its window slot.
        let ended = match &entry.in_flight {
            Some(f) => entry.delivery.in_flight() != Some((f.carrier, f.attempt)),
            None => false,
        };
        if ended {
            let flight = entry.in_flight.take().expect("checked above");
            let status = submitted_event(entry, &flight, &self.slots, smallvec::SmallVec::new());
            self.events.progress(status, live);
            let result = SubmitResult::TimedOut;
            self.carriers[flight.carrier.get()].counts.submits[metric_result(result) as usize] += 1;
            self.end_submit(
                &flight,
                health_outcome(result, now.saturating_sub(flight.started)),
                now,
            );
        }
        self.apply(key, actions, now);
    }
}

/// Stops waiting for the receipts of `entry`'s last accepted attempt (it finished, or another
/// attempt takes over).
pub(super) fn forget_ids(dlr: &mut crate::dlr::DlrMap, entry: &Entry, key: EntryKey) {
    for id in &entry.carrier_ids {
        dlr.forget(entry.ids_carrier, id.as_str(), key);
    }
}

/// Tells the receipt relay, when carrier accounts are shared with other nodes, that this
/// router waits for `ids` from `carrier`: after a submit's answer, and for what a restart
/// resumes from the journal (the record a killed process had not yet passed on is made again).
pub(super) fn announce_waiting<C>(
    shared: &crate::shared::Shared<C>,
    slots: &[std::sync::Arc<crate::registry::SlotEntry<C>>],
    carrier: CarrierSlot,
    ids: &[impl AsRef<str>],
) {
    if let Some(relay) = &shared.options.receipt_relay {
        let ids: smallvec::SmallVec<[&str; 4]> = ids.iter().map(AsRef::as_ref).collect();
        relay.waiting(&slots[carrier.get()].id, &ids);
    }
}
