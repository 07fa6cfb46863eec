//! smsroute's policy stage: what may be sent at all, before any carrier is paid: inbound
//! keywords ([`Keyword`]) and the [`Suppression`] list of recipients who opted out, checked on
//! every submit and again before every dispatch of a queued or retrying message; message
//! classes ([`Rules`]) with per-recipient frequency caps ([`FrequencyCaps`]) and local quiet
//! hours.
//!
//! # Example
//! ```
//! use smsroute_policy::{Keyword, Suppression};
//! use smsroute_types::E164;
//!
//! let list = Suppression::in_memory();
//! let number = E164::parse("447700900123").unwrap();
//! assert_eq!(Keyword::parse(" stop "), Some(Keyword::Stop));
//! list.apply(Keyword::Stop, &number, "ACME").unwrap();
//! assert!(list.is_suppressed(&number, "ACME"));
//! assert!(!list.is_suppressed(&number, "OTHER"));
//! list.apply(Keyword::StopAll, &number, "ACME").unwrap();
//! assert!(list.is_suppressed(&number, "OTHER"));
//! list.apply(Keyword::Start, &number, "ACME").unwrap();
//! assert!(!list.is_suppressed(&number, "ACME"));
//! ```
// One `unsafe` block: the cache prefetch hint in `caps.rs` (measured in docs/benchmarks.md).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod caps;
mod keyword;
mod rules;
mod suppression;

pub use caps::{CapTicket, FrequencyCaps, MAX_CAP};
pub use keyword::Keyword;
pub use rules::{Refusal, Rules};
pub use suppression::{ImportError, Suppression};
