//! Simulated carriers for smsroute: a seeded behaviour model (latency, error mix, the carrier's
//! own rate limit, outages, hangs, receipts) and an in-process [`SimCarrier`] that puts it
//! behind the [`Carrier`](smsroute_carrier::Carrier) trait on tokio's clock. The same model
//! drives the SMSC simulator ([`smsc`]), an SMPP 3.4 server on `smsroute_smpp`'s session
//! machine.
//!
//! # Example
//! ```
//! use smsroute_sim::{Behaviour, ErrorMix, Latency, Reply, SimModel};
//!
//! let behaviour = Behaviour {
//!     latency: Latency::LogNormal { p50: 20_000_000, p99: 200_000_000 },
//!     errors: ErrorMix { throttled: 0.01, ..ErrorMix::default() },
//!     tps_limit: Some(500.0),
//!     ..Behaviour::default()
//! };
//! let mut carrier = SimModel::new(behaviour, 42);
//! let decision = carrier.decide(0, 1, true);
//! assert!(matches!(decision.reply, Reply::Accept(_) | Reply::Reject(0x58)));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod inproc;
mod model;
pub mod smsc;

pub use inproc::{AcceptObserver, RateMeter, SimCarrier, SimStats};
pub use model::{
    Behaviour, Decision, ErrorMix, Latency, Nanos, Outage, OutageKind, ReceiptMix, Reply, SimModel,
    status,
};
pub use smsc::{Simulator, SimulatorConfig, SimulatorStats, SubmitObserver};
