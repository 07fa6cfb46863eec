//! The delivery state machine of smsroute: per message, from accepted to exactly one terminal
//! status (delivered, sent, failed, expired), with retries, failover and expiry.
//!
//! Sans-IO, in the manner of quinn-proto: a [`Delivery`] is driven by `handle_*` calls that
//! take `now` (nanoseconds of the engine's monotonic clock) and answer with [`Action`]s: ask a
//! carrier's bucket for tokens, submit, wake me at T, emit a status event. Errors are
//! classified as data ([`classify_status`], [`ReceiptStatus`]); the retry policy is
//! full-jitter exponential backoff under a per-carrier [`RetryBudget`], bounded by attempts and
//! the message's validity. `docs/delivery.md` has the tables.
//!
//! # Example
//! ```
//! use smallvec::smallvec;
//! use smsroute_delivery::*;
//! use smsroute_types::CarrierSlot;
//! use smsroute_types::MessageId;
//!
//! let (a, b) = (CarrierSlot(0), CarrierSlot(1));
//! let request = DeliveryRequest {
//!     id: MessageId(1), parts: 1, candidates: smallvec![a, b],
//!     receipt: false, validity: None, not_before: None,
//! };
//! let (mut d, actions) = Delivery::start(request, RetryPolicy::default(), 0);
//! assert_eq!(actions[1], Action::Admit { carrier: a, segments: 1 });
//! let actions = d.handle_admission(Admission::Admitted, 0, &mut Unlimited);
//! assert!(actions.contains(&Action::Submit { carrier: a, attempt: 1 }));
//! // The carrier has a system error: fail over to b after a short backoff.
//! let actions = d.handle_submit_result(1, SubmitResult::Rejected { status: 0x08 }, 1_000, &mut Unlimited);
//! assert_eq!(actions[0], Action::Emit(Event::FailedOver { from: a, to: b }));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod class;
mod machine;
mod policy;

pub use class::{ErrorClass, ReceiptStatus, classify_status};
pub use machine::{
    Action, Actions, Admission, AttemptOutcome, AttemptRecord, Delivery, DeliveryRequest, Event,
    FailReason, Outcome, Phase, Recovery, Resume, RetryBudgets, SubmitResult, Unlimited,
};
pub use policy::{RetryBudget, RetryPolicy};

pub use smsroute_types::{Label, Nanos};
