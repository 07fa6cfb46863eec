//! Taking up what the journal held at start (`docs/durability.md`): unacknowledged terminal
//! events emitted again as replays, unfinished messages resumed where they stood, routed on
//! the current table.

use smsroute_delivery::{ReceiptStatus, Recovery, Resume};
use smsroute_journal::{Finish, Recovered, State, Unfinished};
use smsroute_types::Message;

use super::*;

impl<C: Carrier> Dispatcher<C> {
    /// Takes up what the journal held at start: unacknowledged terminal events are emitted
    /// again (flagged as replays), unfinished messages resume where they were.
    pub(super) fn resume(&mut self, recovered: Recovered, now: Nanos) {
        let elapsed = recovered.elapsed;
        let counters = &self.shared.counters;
        let (replays, unfinished) = (recovered.unacknowledged.len(), recovered.unfinished.len());
        counters
            .outstanding
            .fetch_add(replays + unfinished, Ordering::AcqRel);
        for replay in recovered.unacknowledged {
            self.shared
                .handed_out
                .fetch_max(replay.ack, Ordering::Release);
            let carrier = replay.carrier.as_deref().and_then(|id| self.slot_named(id));
            self.events.terminal(StatusEvent {
                id: replay.message.id(),
                at: now,
                event: event_of(replay.status),
                attempts: replay.attempts,
                possible_duplicate: replay.possible_duplicate,
                carrier,
                carrier_name: carrier.map(|c| self.slots[c.get()].name),
                history: None,
                carrier_message_ids: replay
                    .carrier_ids
                    .iter()
                    .map(|id| CarrierMessageId::new(id))
                    .collect(),
                message: Arc::new(replay.message),
                ack: replay.ack,
                replay: true,
            });
        }
        for message in recovered.unfinished {
            self.shared.ids.insert(message.message.id());
            self.resume_one(message, now);
        }
        if replays + unfinished > 0 {
            tracing::info!(replays, unfinished, "journal: resumed after a restart");
        }
        let m = &self.shared.metrics;
        m.journal_recovery.set(elapsed.as_secs_f64());
        m.journal_recovered.set((replays + unfinished) as f64);
        self.settle(now);
        self.events.flush();
    }

    /// One unfinished message, routed again on the current table (no policy charges: it was
    /// accepted before), with its deadline where it was.
    fn resume_one(&mut self, u: Unfinished, now: Nanos) {
        let message = Arc::new(u.message);
        let candidates = self.route_again(&message);
        let validity = message
            .validity()
            .map_or(self.policy.validity, |v| v.as_nanos() as Nanos);
        let deadline = self.shared.at_unix(u.accepted_at.saturating_add(validity));
        let mut not_before = message
            .not_before()
            .map(|at| self.now_system_offset(now, at));
        let mut receipt_ids = Vec::new();
        let mut delivered_parts = Vec::new();
        // In flight at the crash: whatever happens next, the carrier may have it.
        let flagged = u.possible_duplicate || matches!(u.state, State::InFlight { .. });
        let at = match u.state {
            State::Queued => Resume::Queued,
            State::Retrying { at } => {
                not_before = Some(not_before.unwrap_or(0).max(self.shared.at_unix(at)));
                Resume::Queued
            }
            State::InFlight { carrier, attempt } => {
                match self.slot_named(&carrier).or(candidates.first().copied()) {
                    Some(carrier) => Resume::Lost { carrier, attempt },
                    None => Resume::Queued,
                }
            }
            State::AwaitingReceipt {
                carrier,
                carrier_ids,
                delivered,
            } => match self.slot_named(&carrier).or(candidates.first().copied()) {
                Some(slot) => {
                    let waits = self.shared.options.request_receipts && !carrier_ids.is_empty();
                    let until = if waits {
                        receipt_ids = carrier_ids;
                        delivered_parts = delivered;
                        now.saturating_add(self.policy.receipt_timeout)
                    } else {
                        now
                    };
                    Resume::AwaitingReceipt {
                        carrier: slot,
                        attempt: u.attempts,
                        until,
                        sent_at: None,
                    }
                }
                None => Resume::Queued,
            },
        };
        if let Resume::AwaitingReceipt { carrier, until, .. } = at {
            let resumable = crate::park::Resumable {
                sent_at: now,
                deadline,
                attempt: u.attempts,
                attempts: u.attempts,
            };
            // Straight out of memory, as it was before the restart.
            let ids = (&receipt_ids[..], &delivered_parts[..]);
            if self.park_recovered(&message, carrier, until, flagged, resumable, ids) {
                return;
            }
        }
        let request = DeliveryRequest {
            id: message.id(),
            parts: message.segments(),
            candidates,
            receipt: self.shared.options.request_receipts,
            validity: None,
            not_before,
        };
        let (mut delivery, mut actions) = Delivery::resume(
            request,
            self.policy,
            now,
            Recovery {
                deadline,
                attempts: u.attempts,
                possible_duplicate: flagged,
                at,
            },
            &mut self.budgets[..],
        );
        for &part in &delivered_parts {
            let status = ReceiptStatus::Delivered;
            let budgets = &mut self.budgets[..];
            actions.extend(delivery.handle_receipt(u.attempts, part, status, now, budgets));
        }
        // Checked against the suppression list again at its carrier's lane; not charged again.
        let mut entry = Entry::new(delivery, message, u64::MAX, None);
        entry.priority = self.priority_of(&entry.message);
        entry.carrier_ids = receipt_ids
            .iter()
            .map(|id| CarrierMessageId::new(id))
            .collect();
        if let Resume::AwaitingReceipt { carrier, .. } = at {
            entry.ids_carrier = carrier;
        }
        let key = self.slab.insert(entry);
        let mut early = smallvec::SmallVec::<[Matched; 1]>::new();
        if let Resume::AwaitingReceipt {
            carrier, attempt, ..
        } = at
            && !receipt_ids.is_empty()
        {
            super::inputs::announce_waiting(&self.shared, &self.slots, carrier, &receipt_ids);
            early = self.dlr.expect_all(carrier, &receipt_ids, key, attempt);
            // Delivered parts wait for nothing more (as when their receipts came).
            for &part in &delivered_parts {
                if let Some(id) = receipt_ids.get(part as usize) {
                    self.dlr.forget(carrier, id, key);
                }
            }
            self.awaiting_since(key, now);
        }
        self.apply(key, actions, now);
        for matched in early {
            self.receipt(matched, ReceiptAck::none(), now);
        }
    }

    /// The candidates the current table gives a message, best first.
    pub(super) fn route_again(&self, message: &Message) -> smallvec::SmallVec<[CarrierSlot; 8]> {
        let snapshot = self.shared.snapshot.load();
        let mut quality = None;
        let health = self
            .shared
            .health_view(&snapshot, message.to(), &mut quality);
        let pick =
            smsroute_types::SplitMix64::new(message.id().0 ^ self.shared.options.seed).next_u64();
        let wall = self.shared.wall_ms.load(Ordering::Relaxed);
        let route = snapshot.table(wall).route(message.to(), &health, pick);
        let class = snapshot.rules.class_of(message);
        // A ceiling the message passed at submit still parses; a class's may have changed.
        let ceiling = crate::router::max_price(message, class, &snapshot.rules).unwrap_or(None);
        route
            .iter()
            .filter(|offer| offer.within(ceiling))
            .map(|offer| snapshot.slot_of[offer.carrier.get()])
            .collect()
    }

    /// The slot of a carrier id the router knows.
    fn slot_named(&self, id: &str) -> Option<CarrierSlot> {
        self.slots
            .iter()
            .position(|s| &*s.id == id)
            .map(|i| CarrierSlot(i as u16))
    }
}

/// The event of a journal's terminal status.
fn event_of(finish: Finish) -> Event {
    match finish {
        Finish::Delivered => Event::Delivered,
        Finish::Sent => Event::Sent,
        Finish::Failed(reason) => Event::Failed(reason),
        Finish::Expired => Event::Expired,
    }
}
