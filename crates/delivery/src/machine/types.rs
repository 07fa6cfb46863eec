//! What the state machine takes and gives: failure reasons, admissions, events, actions,
//! submit results, attempt records, retry budgets.

use super::*;

/// Why a message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// No carrier to try.
    NoRoute,
    /// The carrier refused the message itself (invalid destination, source, data).
    Permanent {
        /// The SMPP command_status.
        status: u32,
    },
    /// Every attempt was used up.
    AttemptsExhausted,
    /// A receipt said undeliverable.
    Undeliverable,
    /// A receipt said rejected.
    Rejected,
    /// The recipient opted out after the message was accepted (checked before each dispatch).
    OptedOut,
    /// Its account could not pay for a dearer carrier it failed over to.
    InsufficientFunds,
    /// It has more segments than its carrier's token bucket holds (a reload shrank the
    /// burst below it): that carrier could never take it.
    TooLarge,
    /// The gateway cancelled it before a carrier took it.
    Cancelled,
}

/// Where a message stands ([`Delivery::phase`](crate::Delivery::phase)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Held until its not-before time.
    Scheduled,
    /// Waiting in `carrier`'s queue for its window and token bucket.
    Queued {
        /// The carrier.
        carrier: CarrierSlot,
    },
    /// A submit to `carrier` awaits its answer.
    InFlight {
        /// The carrier.
        carrier: CarrierSlot,
    },
    /// An attempt failed; the next goes to `carrier` at `until`.
    RetryWait {
        /// The carrier of the next attempt.
        carrier: CarrierSlot,
        /// When.
        until: Nanos,
    },
    /// `carrier` accepted it; its receipts are awaited.
    AwaitingReceipt {
        /// The carrier.
        carrier: CarrierSlot,
    },
    /// Finished.
    Done,
}

impl FailReason {
    /// A stable code for storage (the journal): the kind, and the SMPP status for
    /// `Permanent` (0 otherwise). Codes are never reused.
    pub fn to_code(self) -> (u8, u32) {
        match self {
            FailReason::NoRoute => (1, 0),
            FailReason::Permanent { status } => (2, status),
            FailReason::AttemptsExhausted => (3, 0),
            FailReason::Undeliverable => (4, 0),
            FailReason::Rejected => (5, 0),
            FailReason::OptedOut => (6, 0),
            FailReason::InsufficientFunds => (7, 0),
            FailReason::TooLarge => (8, 0),
            FailReason::Cancelled => (9, 0),
        }
    }

    /// The reason a [`FailReason::to_code`] pair stands for; `None` for an unknown kind.
    pub fn from_code(kind: u8, status: u32) -> Option<FailReason> {
        Some(match kind {
            1 => FailReason::NoRoute,
            2 => FailReason::Permanent { status },
            3 => FailReason::AttemptsExhausted,
            4 => FailReason::Undeliverable,
            5 => FailReason::Rejected,
            6 => FailReason::OptedOut,
            7 => FailReason::InsufficientFunds,
            8 => FailReason::TooLarge,
            9 => FailReason::Cancelled,
            _ => return None,
        })
    }
}

/// The carrier's lane's answer to [`Action::Admit`]. The engine keeps the message in the
/// carrier's queue while the window or the token bucket has no room (the machine stays
/// admitting meanwhile); it answers once one of these holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Taken from the bucket, within the window: submit now.
    Admitted,
    /// Its turn would come only at or after its deadline: it expires.
    TooLate,
    /// More segments than the bucket holds: the carrier can never take it.
    TooLarge,
}

/// A status event for the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The message was accepted (always first).
    Accepted,
    /// Attempt `attempt` (1-based) went to `carrier`.
    Submitted {
        /// The carrier.
        carrier: CarrierSlot,
        /// The attempt number.
        attempt: u32,
    },
    /// The same carrier will be tried again at `after`.
    Retrying {
        /// The carrier.
        carrier: CarrierSlot,
        /// When.
        after: Nanos,
    },
    /// The next attempt goes to another carrier.
    FailedOver {
        /// The carrier that failed.
        from: CarrierSlot,
        /// The next one.
        to: CarrierSlot,
    },
    /// Terminal: every part's receipt said delivered.
    Delivered,
    /// Terminal: the carrier accepted it and no receipt was asked for or came in time.
    Sent,
    /// Terminal: it failed.
    Failed(FailReason),
    /// Terminal: validity ran out (here or in the network).
    Expired,
}

/// The four terminal outcomes, as the `outcome` metric label and reports count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// [`Event::Delivered`].
    Delivered,
    /// [`Event::Sent`].
    Sent,
    /// [`Event::Failed`], whatever the reason.
    Failed,
    /// [`Event::Expired`].
    Expired,
}

impl Label for Outcome {
    const LABELS: &'static [&'static str] = &["delivered", "sent", "failed", "expired"];

    fn index(&self) -> usize {
        *self as usize
    }
}

impl Event {
    /// The event's name, as the CLI, the load test and metrics write it: `accepted`,
    /// `submitted`, `retrying`, `failed_over`, then the [`Outcome`] labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Event::Accepted => "accepted",
            Event::Submitted { .. } => "submitted",
            Event::Retrying { .. } => "retrying",
            Event::FailedOver { .. } => "failed_over",
            terminal => terminal.outcome().expect("the rest are terminal").label(),
        }
    }

    /// For a terminal event, the outcome it reports.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Event::Delivered => Some(Outcome::Delivered),
            Event::Sent => Some(Outcome::Sent),
            Event::Failed(_) => Some(Outcome::Failed),
            Event::Expired => Some(Outcome::Expired),
            _ => None,
        }
    }

    /// Whether this is the message's terminal event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::Delivered | Event::Sent | Event::Failed(_) | Event::Expired
        )
    }
}

/// What the engine must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue for `carrier` (its window and token bucket, `segments` tokens); answer with
    /// [`Delivery::handle_admission`] once it is admitted or can no longer be.
    Admit {
        /// The carrier.
        carrier: CarrierSlot,
        /// Tokens to take: one per part.
        segments: u32,
    },
    /// Send every part to `carrier` as attempt `attempt`; answer with
    /// [`Delivery::handle_submit_result`].
    Submit {
        /// The carrier.
        carrier: CarrierSlot,
        /// The attempt number.
        attempt: u32,
    },
    /// Call [`Delivery::handle_timer`] at this time (replaces any earlier wake).
    WakeAt(Nanos),
    /// Report this to the gateway.
    Emit(Event),
}

/// Actions of one step; four fit inline.
pub type Actions = SmallVec<[Action; 4]>;

/// How an attempt's submit ended (all parts: the first failing part decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitResult {
    /// Every part was accepted.
    Accepted,
    /// A part was refused with this SMPP command_status.
    Rejected {
        /// The command_status.
        status: u32,
    },
    /// No response within the submit timeout (the engine may also report it).
    TimedOut,
    /// The link died with the submit in flight.
    ConnectionLost,
    /// Not sent at all: the carrier had no usable connection (no bound session). Fails over,
    /// with no duplicate risk; not an answer of the carrier's.
    NotSent,
}

/// How one attempt went, for the history every terminal event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Still in flight or awaiting a receipt.
    Pending,
    /// The carrier accepted it.
    Accepted,
    /// Refused with a status of this class.
    Refused {
        /// The class.
        class: ErrorClass,
        /// The command_status.
        status: u32,
    },
    /// Timed out or the link died: the carrier may have it.
    Unknown,
    /// Never sent: the carrier had no usable connection.
    NotSent,
}

/// One attempt in a message's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1-based.
    pub attempt: u32,
    /// Where it went.
    pub carrier: CarrierSlot,
    /// When it was submitted.
    pub at: Nanos,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// Where the retry budgets live (one per carrier in the engine).
pub trait RetryBudgets {
    /// A first submit went to `carrier`.
    fn deposit(&mut self, carrier: CarrierSlot, now: Nanos);
    /// May a retry charged to `carrier` (whose failure caused it) go now?
    fn try_withdraw(&mut self, carrier: CarrierSlot, now: Nanos) -> bool;
}

/// Budgets by carrier index; carriers past the end have no limit.
impl RetryBudgets for [RetryBudget] {
    fn deposit(&mut self, carrier: CarrierSlot, now: Nanos) {
        if let Some(b) = self.get_mut(carrier.get()) {
            b.deposit(now);
        }
    }
    fn try_withdraw(&mut self, carrier: CarrierSlot, now: Nanos) -> bool {
        self.get_mut(carrier.get())
            .is_none_or(|b| b.try_withdraw(now))
    }
}

/// No retry budget at all (tests, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited;

impl RetryBudgets for Unlimited {
    fn deposit(&mut self, _: CarrierSlot, _: Nanos) {}
    fn try_withdraw(&mut self, _: CarrierSlot, _: Nanos) -> bool {
        true
    }
}
