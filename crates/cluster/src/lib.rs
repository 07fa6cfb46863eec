//! Several smsroute nodes, one contract. Each carrier's contracted rate is one GCRA in Redis,
//! updated by a script; a node leases tokens from it in batches (tens of milliseconds of
//! rate) on a background thread and gives back what it did not use, so a message never waits
//! on Redis: it takes a token from its node's [`LeasePool`] with one compare-and-swap.
//!
//! Over any window of length t the carrier sees at most `tps × t + burst` from all nodes
//! together: Redis keeps the bucket `tps × lease` shallower than the contract, since a token
//! may be spent up to a lease after it was granted ([`LeasePlan`]). A node that dies gives
//! nothing back; its tokens are lost to the contract for at most one lease. While Redis
//! cannot be reached, each node takes a static share, the contract over the nodes it last saw
//! live, and leasing resumes when Redis answers again.
//!
//! Redis is one server or a Redis Cluster ([`RedisTarget`]): what a script touches together
//! shares a `{tag}` and so lives in one slot; the buckets, accounts, node inboxes and receipt
//! owners (keys without a tag) spread over the cluster's primaries.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use smsroute_cluster::{LeaseOptions, Leaser, RedisTarget, SharedBucket};
//!
//! let options = LeaseOptions {
//!     redis: RedisTarget::Server("redis://127.0.0.1:6379".into()),
//!     node_id: "node-a".into(),
//!     lease: Duration::from_millis(50),
//! };
//! let leaser = Leaser::start(&options, &[SharedBucket::carrier("uk-alpha", 1_000.0, 100)])?;
//! let pool = leaser.pool(0);
//! if pool.try_take(2, std::time::Instant::now()) {
//!     // two segments may go to uk-alpha now
//! }
//! leaser.stop(); // gives the unused tokens back
//! # Ok::<(), smsroute_cluster::LeaseError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod balances;
mod caps;
mod leaser;
mod link;
mod optouts;
mod receipts;
mod session;
pub mod testing;
mod worker;

pub use balances::{BalanceLeaser, BalanceStats, LocalBalances};
pub use caps::{CapStats, CapSync};
pub use leaser::{LeaseError, LeaseOptions, LeasePlan, LeaseStats, Leaser, SharedBucket};
pub use link::RedisTarget;
pub use optouts::{OptOutStats, OptOutSync};
pub use receipts::{ReceiptExchange, ReceiptStats};
pub use smsroute_throttle::LeasePool;
