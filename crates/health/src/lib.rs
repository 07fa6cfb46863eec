//! Live carrier health for smsroute: success and latency EWMAs, consecutive failures,
//! ejection with growing, jittered times, half-open probing, and lock-free publication of a
//! penalty (≥ 1) that routing multiplies cost by.
//!
//! Sans-IO: [`CarrierTracker`] takes outcomes and `now` (nanoseconds of the caller's monotonic
//! clock) and answers through [`CarrierTracker::snapshot`]; a [`HealthBoard`] holds every
//! carrier's last snapshot in one atomic word each, by [`CarrierSlot`], and
//! [`HealthBoard::view`] is routing's [`HealthView`](smsroute_routing::HealthView) of it. Throttling is a load signal (a penalty), never a
//! failure; health alone never refuses a message (routing uses every candidate when all are
//! ejected, and skips at most `max_ejected_share` of them otherwise). Defaults and the
//! reasoning behind them: `docs/health.md`.
//!
//! # Example
//! ```
//! use smsroute_health::{CarrierTracker, HealthBoard, HealthConfig, Outcome};
//! use smsroute_routing::HealthState;
//! use smsroute_types::CarrierSlot;
//!
//! let mut tracker = CarrierTracker::new(HealthConfig::default(), 7).unwrap();
//! let board = HealthBoard::new(1, 0.5);
//! for i in 0..5 {
//!     tracker.record(Outcome::Failure, i * 1_000_000);
//! }
//! board.publish(CarrierSlot(0), tracker.snapshot());
//! assert_eq!(board.health(CarrierSlot(0)).state, HealthState::Ejected);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod board;
mod config;
mod tracker;

pub use board::{BoardView, HealthBoard};
pub use config::{HealthConfig, InvalidHealthConfig};
pub use tracker::{CarrierTracker, Circuit, Outcome};

pub use smsroute_types::{CarrierSlot, Nanos};
