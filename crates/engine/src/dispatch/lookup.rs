//! [`Router::query`](crate::Router::query) and [`Router::cancel`](crate::Router::cancel) in
//! the dispatcher: a scan of the messages in memory, then of the parked ones.

use std::sync::Arc;

use smsroute_delivery::Phase;
use smsroute_types::MessageId;

use super::*;
use crate::router::{CancelError, MessageStatus};

/// Turns a lookup of a message not (yet) found waits for new messages still queued, so a
/// query right after `submit` sees the message.
const MAX_WAIT_TURNS: u32 = 64;

/// A query or a cancel, and whom to answer.
pub(super) enum Lookup {
    Query(tokio::sync::oneshot::Sender<Option<MessageStatus>>),
    Cancel(tokio::sync::oneshot::Sender<Result<(), CancelError>>),
}

impl<C: Carrier> Dispatcher<C> {
    /// Answers the queries and cancels waiting, once this turn took the new messages: one
    /// not found while new messages are still queued waits a turn (at most
    /// [`MAX_WAIT_TURNS`]).
    pub(super) fn answer_lookups(&mut self, now: Nanos) {
        let waiting = std::mem::take(&mut self.lookups);
        let more_to_take = !self.shared.submitted.is_empty();
        for (lookup, id, turns) in waiting {
            let found = self.slab.find(|e| e.delivery.id() == id).is_some();
            if !found && more_to_take && turns < MAX_WAIT_TURNS {
                self.lookups.push_back((lookup, id, turns + 1));
                continue;
            }
            match lookup {
                Lookup::Query(reply) => {
                    let _ = reply.send(self.query(id));
                }
                Lookup::Cancel(reply) => {
                    let _ = reply.send(self.cancel(id, now));
                }
            }
        }
    }

    /// Where message `id` stands, if it is unfinished.
    pub(super) fn query(&self, id: MessageId) -> Option<MessageStatus> {
        if let Some(key) = self.slab.find(|e| e.delivery.id() == id) {
            let entry = self.slab.get(key)?;
            let phase = entry.delivery.phase();
            return Some(MessageStatus {
                id,
                phase,
                carrier: carrier_of(phase).map(|c| self.slots[c.get()].name),
                attempts: entry.delivery.attempts(),
                history: entry.delivery.history().to_vec(),
                message: entry.message.clone(),
            });
        }
        let parking = self.parking.as_ref()?;
        let (resumable, message, carrier) = parking.read(id)?;
        Some(MessageStatus {
            id,
            phase: Phase::AwaitingReceipt { carrier },
            carrier: self.slots.get(carrier.get()).map(|s| s.name),
            attempts: resumable.attempts,
            history: Vec::new(),
            message: Arc::new(message),
        })
    }

    /// Cancels message `id` if no carrier holds it.
    pub(super) fn cancel(&mut self, id: MessageId, now: Nanos) -> Result<(), CancelError> {
        let Some(key) = self.slab.find(|e| e.delivery.id() == id) else {
            return match self.parking.as_ref().and_then(|p| p.read(id)) {
                Some((_, _, carrier)) => {
                    Err(CancelError::TooLate(Phase::AwaitingReceipt { carrier }))
                }
                None => Err(CancelError::Unknown),
            };
        };
        let entry = self.slab.get_mut(key).ok_or(CancelError::Unknown)?;
        let phase = entry.delivery.phase();
        let actions = entry.delivery.cancel().ok_or(CancelError::TooLate(phase))?;
        if let Some(lane) = entry.lane.take() {
            self.carriers[lane.get()].left_lane(entry.message.segments());
        }
        tracing::info!(%id, ?phase, "message cancelled");
        self.apply(key, actions, now);
        Ok(())
    }
}

/// The carrier a phase is about.
fn carrier_of(phase: Phase) -> Option<CarrierSlot> {
    match phase {
        Phase::Queued { carrier }
        | Phase::InFlight { carrier }
        | Phase::RetryWait { carrier, .. }
        | Phase::AwaitingReceipt { carrier } => Some(carrier),
        Phase::Scheduled | Phase::Done => None,
    }
}
