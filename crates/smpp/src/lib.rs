//! SMPP 3.4 for smsroute.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aliases;
pub mod client;
mod esme;
pub mod io;
pub mod pdu;
pub mod server;
pub mod session;
pub mod sm;

pub use client::{EsmeConfig, EsmeStats, SmppCarrier};
pub use server::{Simulator, SimulatorConfig, SimulatorStats, SubmitObserver};
