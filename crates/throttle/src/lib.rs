//! Per-carrier throughput for smsroute: a GCRA token bucket on one atomic word, and an
//! adaptive rate that backs off when the carrier throttles us.
//!
//! Sans-IO: nothing here reads a clock. Callers pass `now` in nanoseconds of their own
//! monotonic clock (the engine uses a cheap coarse one).
//!
//! - [`Gcra`]: `try_admit(segments, now)` answers admitted, or "not before T" so the caller
//!   can wait without spinning. Lock-free; the [`Quota`] changes at runtime without losing the
//!   bucket's state. In any window of length t it admits at most `rate·t + burst` segments.
//! - [`LeasePool`]: a node's share of a contract several nodes share, leased in batches
//!   (`smsroute-cluster` fills it from Redis); taken with one compare-and-swap until the
//!   lease's deadline.
//! - [`AdaptiveRate`]: multiplicative decrease on a throttle, additive increase in quiet
//!   periods, within `[min, contracted]`. The engine feeds its rate into the bucket's quota.
//!
//! # Example
//! ```
//! use smsroute_throttle::{AdaptiveConfig, AdaptiveRate, Admission, Gcra, Quota};
//!
//! let bucket = Gcra::new(Quota::per_second(500.0, 50).unwrap());
//! assert_eq!(bucket.try_admit(3, 0), Admission::Admitted);
//!
//! let mut adaptive = AdaptiveRate::new(AdaptiveConfig::new(500.0)).unwrap();
//! if let Some(rate) = adaptive.on_throttled(1_000_000) {
//!     bucket.set_quota(Quota::per_second(rate, 50).unwrap()); // 350 segments/s
//! }
//! assert_eq!(bucket.quota().interval_nanos(), 2_857_143);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod adaptive;
mod gcra;
mod lease;

pub use adaptive::{AdaptiveConfig, AdaptiveRate, InvalidAdaptive};
pub use gcra::{Admission, Gcra, InvalidQuota, NANOS_PER_SEC, Nanos, Quota};
pub use lease::LeasePool;
