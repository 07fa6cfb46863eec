//! A message as its client may see it (`GET /v1/messages/{id}`, `query_sm`): unfinished ones
//! from the router ([`Router::query`]), finished ones from the last [`RECENT`] terminal
//! events the hub saw; and cancelling (`DELETE`, `cancel_sm`). A client only ever sees or
//! cancels its own messages: another client's id is answered as unknown.

use std::collections::VecDeque;

use dashmap::DashMap;
use serde::Serialize;
use smsroute_carrier::Carrier;
use smsroute_delivery::{Event, FailReason};
use smsroute_engine::{CancelError, Phase, StatusEvent};
use smsroute_types::MessageId;

use crate::Hub;
use crate::clients::{CLIENT_TAG, Client};

/// Finished messages the hub remembers for lookups (the oldest are forgotten first).
pub const RECENT: usize = 100_000;

/// A message's state, as lookups report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageView {
    /// Its id.
    pub id: u64,
    /// `scheduled`, `queued`, `in_flight`, `retry_wait`, `awaiting_receipt`, or the
    /// terminal `delivered`, `sent`, `failed`, `expired`.
    pub state: &'static str,
    /// Why it failed (`failed` only): `no_route`, `rejected_by_carrier`, `cancelled`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Submits made.
    pub attempts: u32,
    /// The carrier its state is about (the last one, once finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<&'static str>,
    /// A submit may have reached the carrier twice.
    pub possible_duplicate: bool,
    /// The client's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<String>,
    /// When the hub saw its terminal status (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The same, as an instant (not serialized).
    #[serde(skip)]
    pub finished: Option<std::time::SystemTime>,
    /// The client it belongs to (not serialized).
    #[serde(skip)]
    pub client: Option<String>,
}

impl MessageView {
    /// Whether the message has its terminal status.
    pub fn finished(&self) -> bool {
        matches!(self.state, "delivered" | "sent" | "failed" | "expired")
    }
}

/// A terminal event as kept for lookups: no copy of the message's strings (the view is made
/// when asked for).
struct Finished {
    event: Event,
    attempts: u32,
    carrier: Option<&'static str>,
    possible_duplicate: bool,
    message: std::sync::Arc<smsroute_types::Message>,
    at: std::time::SystemTime,
}

/// The last [`RECENT`] terminal events, by id; written by the event task alone, which keeps
/// their order.
#[derive(Default)]
pub(crate) struct Recent {
    by_id: DashMap<MessageId, Finished>,
}

impl Recent {
    /// Remembers a terminal event; `order` is the event task's own list of ids, oldest
    /// first.
    pub fn finished(&self, event: &StatusEvent, order: &mut VecDeque<MessageId>) {
        let kept = Finished {
            event: event.event,
            attempts: event.attempts,
            carrier: event.carrier_name,
            possible_duplicate: event.possible_duplicate,
            message: event.message.clone(),
            at: std::time::SystemTime::now(),
        };
        if self.by_id.insert(event.id, kept).is_none() {
            order.push_back(event.id);
            if order.len() > RECENT
                && let Some(oldest) = order.pop_front()
            {
                self.by_id.remove(&oldest);
            }
        }
    }

    /// A terminal event as lookups and webhooks show it, finished now.
    pub fn view_of(event: &StatusEvent) -> MessageView {
        let finished = Finished {
            event: event.event,
            attempts: event.attempts,
            carrier: event.carrier_name,
            possible_duplicate: event.possible_duplicate,
            message: event.message.clone(),
            at: std::time::SystemTime::now(),
        };
        finished.view(event.id)
    }

    /// Finished message `id`, if remembered.
    fn view(&self, id: MessageId) -> Option<MessageView> {
        self.by_id.get(&id).map(|f| f.view(id))
    }
}

impl Finished {
    fn view(&self, id: MessageId) -> MessageView {
        MessageView {
            id: id.0,
            state: self.event.as_str(),
            reason: match self.event {
                Event::Failed(reason) => Some(reason_name(reason)),
                _ => None,
            },
            attempts: self.attempts,
            carrier: self.carrier,
            possible_duplicate: self.possible_duplicate,
            client_ref: self.message.client_ref().map(str::to_string),
            finished_at: Some(humantime::format_rfc3339_seconds(self.at).to_string()),
            finished: Some(self.at),
            client: self.message.tag(CLIENT_TAG).map(str::to_string),
        }
    }
}

/// The name a failure reason is reported by.
pub fn reason_name(reason: FailReason) -> &'static str {
    match reason {
        FailReason::NoRoute => "no_route",
        FailReason::Permanent { .. } => "rejected_by_carrier",
        FailReason::AttemptsExhausted => "attempts_exhausted",
        FailReason::Undeliverable => "undeliverable",
        FailReason::Rejected => "rejected",
        FailReason::OptedOut => "opted_out",
        FailReason::InsufficientFunds => "insufficient_funds",
        FailReason::TooLarge => "too_large",
        FailReason::Cancelled => "cancelled",
        _ => "failed",
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Scheduled => "scheduled",
        Phase::Queued { .. } => "queued",
        Phase::InFlight { .. } => "in_flight",
        Phase::RetryWait { .. } => "retry_wait",
        Phase::AwaitingReceipt { .. } => "awaiting_receipt",
        _ => "finishing",
    }
}

fn owned_by(view_client: Option<&str>, client: &Client) -> bool {
    view_client == Some(client.id.as_str())
}

/// Message `id` as `client` may see it; `None` when it is unknown, forgotten, or another
/// client's.
pub(crate) async fn view<C: Carrier>(
    hub: &Hub<C>,
    client: &Client,
    id: MessageId,
) -> Option<MessageView> {
    if let Some(status) = hub.router.query(id).await {
        let view = MessageView {
            id: id.0,
            state: phase_name(status.phase),
            reason: None,
            attempts: status.attempts,
            carrier: status.carrier,
            possible_duplicate: false,
            client_ref: status.message.client_ref().map(str::to_string),
            finished_at: None,
            finished: None,
            client: status.message.tag(CLIENT_TAG).map(str::to_string),
        };
        return owned_by(view.client.as_deref(), client).then_some(view);
    }
    let view = hub.recent.view(id)?;
    owned_by(view.client.as_deref(), client).then_some(view)
}

/// Why a cancel was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CancelRefused {
    /// Unknown, forgotten, or another client's.
    Unknown,
    /// A carrier has it, or it finished: its state.
    TooLate(&'static str),
    /// The router has stopped.
    ShuttingDown,
}

/// Cancels `client`'s message `id` if no carrier holds it yet.
pub(crate) async fn cancel<C: Carrier>(
    hub: &Hub<C>,
    client: &Client,
    id: MessageId,
) -> Result<(), CancelRefused> {
    let Some(view) = view(hub, client, id).await else {
        return Err(CancelRefused::Unknown);
    };
    if view.finished() {
        return Err(CancelRefused::TooLate(view.state));
    }
    match hub.router.cancel(id).await {
        Ok(()) => Ok(()),
        Err(CancelError::TooLate(phase)) => Err(CancelRefused::TooLate(phase_name(phase))),
        Err(CancelError::ShuttingDown) => Err(CancelRefused::ShuttingDown),
        Err(_) => Err(CancelRefused::Unknown),
    }
}
