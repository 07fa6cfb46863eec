//! What the router's calls answer: refusals, setup errors, reports and live figures.

use std::sync::Arc;

use smsroute_carrier::LinkState;
use smsroute_health::InvalidHealthConfig;
use smsroute_routing::{BuildError, CarrierHealth};
use smsroute_throttle::InvalidQuota;
use smsroute_types::CarrierSlot;
use smsroute_types::{InvalidMessage, Message, MessageId};

use crate::registry::MAX_CARRIERS;

/// Why `submit` refused a message. Nothing about a refused message stays in the router.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The message breaks a configured limit (too many segments).
    #[error("invalid message: {0}")]
    Invalid(#[from] InvalidMessage),
    /// A block rule covers the number.
    #[error("blocked: a block rule covers the destination")]
    Blocked,
    /// No carrier serves the number.
    #[error("no route: no carrier serves the destination")]
    NoRoute,
    /// The router is full (the gateway is not taking events fast enough, or the burst is
    /// larger than the inbound queue): try again later.
    #[error("overloaded: too many messages outstanding, try again later")]
    Overloaded,
    /// The router has stopped.
    #[error("the router has shut down")]
    ShuttingDown,
    /// The recipient opted out of this sender (or of all).
    #[error("opted out: the recipient asked not to get messages from this sender")]
    OptedOut,
    /// The recipient already got its class's most messages within the class's window.
    #[error("frequency cap: the recipient already got the most messages of this class")]
    FrequencyCap,
    /// The message's account cannot pay for its best route (or names no configured account).
    #[error("insufficient funds: the account cannot pay for the best route")]
    InsufficientFunds,
    /// The destination is in its quiet hours and the message's class refuses then.
    #[error("quiet hours at the destination")]
    QuietHours,
    /// Another outstanding message has the id the gateway gave this one.
    #[error("duplicate id: another outstanding message has this id")]
    DuplicateId,
    /// Every carrier serving the destination costs more than the message's (or its
    /// class's) `max_price`.
    #[error("over max price: every carrier for the destination costs more than max_price")]
    OverMaxPrice,
}

impl From<smsroute_policy::Refusal> for Rejection {
    fn from(refusal: smsroute_policy::Refusal) -> Self {
        match refusal {
            smsroute_policy::Refusal::FrequencyCap => Rejection::FrequencyCap,
            smsroute_policy::Refusal::QuietHours => Rejection::QuietHours,
        }
    }
}

/// The `reason` label of `smsroute_messages_rejected_total`, and the name reports use.
impl smsroute_metrics::Label for Rejection {
    const LABELS: &'static [&'static str] = &[
        "invalid",
        "blocked",
        "no_route",
        "overloaded",
        "shutting_down",
        "opted_out",
        "frequency_cap",
        "quiet_hours",
        "insufficient_funds",
        "duplicate_id",
        "over_max_price",
    ];

    fn index(&self) -> usize {
        match self {
            Rejection::Invalid(_) => 0,
            Rejection::Blocked => 1,
            Rejection::NoRoute => 2,
            Rejection::Overloaded => 3,
            Rejection::ShuttingDown => 4,
            Rejection::OptedOut => 5,
            Rejection::FrequencyCap => 6,
            Rejection::QuietHours => 7,
            Rejection::InsufficientFunds => 8,
            Rejection::DuplicateId => 9,
            Rejection::OverMaxPrice => 10,
        }
    }
}

impl Rejection {
    /// A short name for metrics and reports: `invalid`, `blocked`, `no_route`, `overloaded`,
    /// `shutting_down`, `opted_out`, `frequency_cap`, `quiet_hours`, `insufficient_funds`,
    /// `duplicate_id`, `over_max_price` (its [`Label`](smsroute_metrics::Label)).
    pub fn reason(&self) -> &'static str {
        smsroute_metrics::Label::label(self)
    }
}

/// Why a configuration could not be started or reloaded; the running router is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The route table does not compile.
    #[error("route table: {0}")]
    Table(#[from] BuildError),
    /// Health tuning out of range.
    #[error("health config: {0}")]
    Health(#[from] InvalidHealthConfig),
    /// A carrier's tps and burst make no token bucket.
    #[error("carrier {id}: {source}")]
    Quota {
        /// The carrier.
        id: String,
        /// What is wrong.
        source: InvalidQuota,
    },
    /// A router knows at most this many carriers over its life.
    #[error("more than {MAX_CARRIERS} carriers")]
    TooManyCarriers,
    /// The suppression file could not be read or opened for writing.
    #[error("suppression file: {0}")]
    Suppression(#[from] smsroute_policy::ImportError),
    /// The journal could not be opened or recovered (a damaged record names its file and
    /// offset).
    #[error("journal: {0}")]
    Journal(#[from] smsroute_journal::JournalError),
}

/// What a reload changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// The new table's generation (1 is the start configuration).
    pub generation: u64,
    /// Carriers new to the router.
    pub added: Vec<String>,
    /// Carriers no longer configured: they get no new traffic and drain what they have.
    pub removed: Vec<String>,
}

/// How a shutdown went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Messages that reached their terminal status during the shutdown.
    pub drained: u64,
    /// Messages still unfinished at the deadline (no terminal event was sent for them).
    pub unfinished: Vec<MessageId>,
    /// Progress events dropped over the router's life because the gateway lagged.
    pub events_dropped: u64,
}

/// Live figures of a router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Accepted messages whose terminal event the gateway has not taken.
    pub outstanding: usize,
    /// Progress events dropped because the gateway lagged.
    pub events_dropped: u64,
    /// Receipts that matched no message (unknown ids, or for messages already finished).
    pub unknown_receipts: u64,
    /// Carrier message ids waiting for receipts.
    pub receipts_pending: usize,
    /// Messages parked out of memory while they wait for receipts (with a journal; not
    /// counted in `outstanding`).
    pub parked: usize,
    /// The route table's generation.
    pub generation: u64,
}

/// A refused message, handed back (as tokio's `TrySendError` hands back its value): submit
/// it again later, elsewhere, or tell the client why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Refused {
    /// Why.
    pub reason: Rejection,
    /// The message, as it was given.
    pub message: Message,
}

impl Refused {
    /// The message back.
    pub fn into_message(self) -> Message {
        self.message
    }
}

/// Carriers that were not ready within the wait: each with why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not ready: {}", .down.iter().map(|(id, why)| format!("{id} ({why})")).collect::<Vec<_>>().join(", "))]
pub struct NotReady {
    /// (carrier id, reason), in configuration order.
    pub down: Vec<(String, String)>,
}

/// One carrier of a running router, as [`Router::carriers`](crate::Router::carriers) sees it.
/// Queue depth, in-flight count and rate are refreshed on the dispatcher's 100 ms tick.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CarrierStats {
    /// The carrier's id.
    pub id: Arc<str>,
    /// Its slot, as events name it.
    pub slot: CarrierSlot,
    /// Whether its connection can take submits.
    pub link: LinkState,
    /// Its health as routing sees it.
    pub health: CarrierHealth,
    /// Messages waiting in its lane for the window and the bucket.
    pub queued: u32,
    /// Submits in flight.
    pub in_flight: u32,
    /// Its bucket's rate now, segments a second (below the contract while it throttles).
    pub rate: f64,
    /// Still configured (a reload may have removed it: it drains what it has).
    pub configured: bool,
}
