//! Looking a message up and cancelling it, by id: questions the dispatcher answers between
//! its turns (rare operations, a client's query or an operator's page, not the hot path).

use std::sync::Arc;

use smsroute_delivery::Phase;
use smsroute_types::{Message, MessageId};
use tokio::sync::oneshot;

use super::Router;
use crate::dispatch::Control;
use smsroute_carrier::Carrier;

/// What the router knows of an unfinished message ([`Router::query`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MessageStatus {
    /// The message's id.
    pub id: MessageId,
    /// Where it stands.
    pub phase: Phase,
    /// The carrier its phase is about (queued at, in flight to, accepted by, next retry at).
    pub carrier: Option<&'static str>,
    /// Submits made so far.
    pub attempts: u32,
    /// Every attempt so far: carrier, when (router clock), outcome (in memory only; a
    /// message parked while it awaits receipts has none).
    pub history: Vec<smsroute_delivery::AttemptRecord>,
    /// The message as submitted (its client reference and tags).
    pub message: Arc<Message>,
}

/// Why a message could not be cancelled ([`Router::cancel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No unfinished message has this id (it finished, or never was).
    #[error("no unfinished message has this id")]
    Unknown,
    /// A carrier holds it already (a submit in flight, or accepted and awaiting receipts).
    #[error("too late: a carrier has it ({0:?})")]
    TooLate(Phase),
    /// The router has stopped.
    #[error("the router has shut down")]
    ShuttingDown,
}

impl<C: Carrier> Router<C> {
    /// Where unfinished message `id` stands; `None` when no unfinished message has that id
    /// (finished, never accepted, or not yet durably accepted with a journal). Looks through
    /// the messages in memory, then those parked while they await receipts (one read).
    pub async fn query(&self, id: MessageId) -> Option<MessageStatus> {
        let (reply, answer) = oneshot::channel();
        self.handle
            .control
            .send(Control::Query { id, reply })
            .ok()?;
        self.shared.wake.notify_one();
        answer.await.ok().flatten()
    }

    /// Cancels message `id` if no carrier holds it yet (scheduled, queued, or waiting to
    /// retry after a failed attempt): it ends `Failed(Cancelled)`, reported on the event
    /// stream like every terminal status, and journaled.
    pub async fn cancel(&self, id: MessageId) -> Result<(), CancelError> {
        let (reply, answer) = oneshot::channel();
        self.handle
            .control
            .send(Control::Cancel { id, reply })
            .map_err(|_| CancelError::ShuttingDown)?;
        self.shared.wake.notify_one();
        answer.await.unwrap_or(Err(CancelError::ShuttingDown))
    }
}
