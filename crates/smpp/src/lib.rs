//! SMPP 3.4 for smsroute: PDUs over the `rusmpp` codec ([`pdu`]), one sans-IO session machine
//! for both ends of a session ([`session`]), and the ESME side as a carrier ([`SmppCarrier`]):
//! sessions that bind, pipeline submits in a window, match receipts to the submits' ids, keep
//! the link alive and reconnect. The SMSC simulator that tests and load tests run against is
//! `smsroute_sim::smsc`, on the same session machine.
//!
//! # Example
//! ```
//! use smsroute_smpp::pdu::{Body, Frame, status};
//!
//! // A PDU encodes to its wire form and decodes back.
//! let mut wire = Vec::new();
//! Frame::new(7, Body::EnquireLink).encode(&mut wire).unwrap();
//! assert_eq!(wire.len(), 16);
//! let frame = Frame::decode(&wire).unwrap();
//! assert_eq!((frame.sequence, frame.status, frame.body), (7, status::OK, Body::EnquireLink));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aliases;
pub mod client;
mod esme;
pub mod pdu;
pub mod server;
pub mod session;
pub mod sm;

pub use client::{EsmeConfig, EsmeStats, SmppCarrier};
