//! SMPP 3.4 for smsroute.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod pdu;
pub mod sm;
