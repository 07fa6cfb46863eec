//! The leaser: one thread per node that, a little before each lease ends, renews every
//! shared bucket's lease (`session.rs`), or while Redis is unreachable hands out the node's
//! static share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smsroute_throttle::LeasePool;

use crate::link::RedisTarget;
use crate::session::{Lease, Session};
use crate::worker::Worker;

/// A contract several nodes share: one GCRA in Redis.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedBucket {
    /// The Redis key (`smsroute:{carrier:ID}:gcra`: one Redis Cluster slot per bucket).
    pub key: String,
    /// Contracted segments per second, all nodes together.
    pub tps: f64,
    /// Bucket depth in segments, all nodes together.
    pub burst: u32,
}

impl SharedBucket {
    /// A carrier's contract.
    pub fn carrier(id: &str, tps: f64, burst: u32) -> Self {
        Self {
            key: format!("smsroute:{{carrier:{id}}}:gcra"),
            tps,
            burst,
        }
    }

    /// A route row's own contract: its carrier's towards numbers under its prefix.
    pub fn route(carrier: &str, prefix: &str, tps: f64, burst: u32) -> Self {
        Self {
            key: format!("smsroute:{{route:{carrier}:{prefix}}}:gcra"),
            tps,
            burst,
        }
    }

    /// A sender id's own contract, on every carrier.
    pub fn sender(id: &str, tps: f64, burst: u32) -> Self {
        Self {
            key: format!("smsroute:{{sender:{id}}}:gcra"),
            tps,
            burst,
        }
    }
}

/// How a node leases.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// Where Redis is (this build speaks no TLS to it).
    pub redis: RedisTarget,
    /// This node's name among the nodes (live nodes are counted for the static share).
    pub node_id: String,
    /// How long a lease lasts: the tokens of one are usable this long after the node asked.
    pub lease: Duration,
}

/// The plan of one bucket: its lease length and the depth Redis keeps so that tokens spent up
/// to a lease late still respect the contract.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeasePlan {
    /// How long a lease lasts.
    pub lease: Duration,
    /// The depth of the bucket in Redis: `burst − tps × lease`.
    pub redis_burst: u32,
    /// Most tokens one node asks for at once: a lease's worth of the whole contract.
    pub max_want: u64,
}

impl LeasePlan {
    /// A lease of at most `lease`, shortened to half the burst's worth of time so that the
    /// Redis bucket keeps at least half the depth. A token granted at `g` may be spent until
    /// `g + lease`, so the spends of any window `t` come from grants within `t + lease`: at
    /// most `tps × (t + lease) + redis_burst = tps × t + burst`.
    pub fn new(bucket: &SharedBucket, lease: Duration) -> Self {
        let half_burst = Duration::from_secs_f64(f64::from(bucket.burst) / bucket.tps / 2.0);
        let lease = lease.min(half_burst).max(Duration::from_micros(100));
        let held = (bucket.tps * lease.as_secs_f64()).ceil() as u32;
        Self {
            lease,
            redis_burst: bucket.burst.saturating_sub(held).max(1),
            max_want: u64::from(held.max(1)),
        }
    }
}

/// Counts a node's leaser keeps (for metrics and tests).
#[derive(Debug, Default)]
pub struct LeaseStats {
    /// Renewals: round trips to one Redis server (to a Redis Cluster, one to each primary
    /// holding a contract).
    pub round_trips: AtomicU64,
    /// Failed round trips (Redis unreachable or erroring).
    pub failures: AtomicU64,
    /// Tokens granted, all buckets.
    pub granted: AtomicU64,
    /// Tokens given back, all buckets.
    pub returned: AtomicU64,
    /// Whether the last round trip reached Redis (else the static shares are in force).
    pub redis_up: AtomicBool,
    /// Live nodes as last seen in Redis, this one included.
    pub live_nodes: AtomicU64,
}

/// A node's leases: one pool per shared bucket, kept filled by a background thread.
pub struct Leaser {
    pools: Vec<Arc<LeasePool>>,
    stats: Arc<LeaseStats>,
    /// Stop without giving back, as a killed node.
    abandon: Arc<AtomicBool>,
    worker: Worker,
}

/// Why a leaser could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A URL does not parse, or Redis did not answer.
    #[error("redis {url}: {source}")]
    Redis {
        /// The URL (or a Redis Cluster's URLs), without passwords.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
}

impl Leaser {
    /// Connects to Redis, takes a first lease of every bucket, and starts the thread that
    /// renews them. Redis must answer now: a node that cannot count the live nodes cannot
    /// know its static share.
    pub fn start(options: &LeaseOptions, buckets: &[SharedBucket]) -> Result<Self, LeaseError> {
        let leases: Vec<Lease> = buckets
            .iter()
            .map(|bucket| Lease::new(bucket, options.lease))
            .collect();
        let timeout =
            (options.lease / 2).clamp(Duration::from_millis(10), Duration::from_millis(500));
        let stats = Arc::new(LeaseStats::default());
        let session = Session::open(&options.redis, &options.node_id, leases, timeout, &stats)
            .map_err(|source| LeaseError::Redis {
                url: options.redis.redacted(),
                source,
            })?;
        stats.redis_up.store(true, Ordering::Relaxed);
        stats
            .live_nodes
            .store(session.live_nodes, Ordering::Relaxed);
        let pools = session.leases.iter().map(|l| l.pool.clone()).collect();
        let abandon = Arc::new(AtomicBool::new(false));
        let worker = {
            let (abandon, stats) = (abandon.clone(), stats.clone());
            Worker::spawn("smsroute-leaser", move |stop| {
                run(session, &stats, stop, &abandon)
            })
        };
        Ok(Self {
            pools,
            stats,
            abandon,
            worker,
        })
    }

    /// The pool of bucket `index` (in the order given to [`start`](Self::start)).
    pub fn pool(&self, index: usize) -> &Arc<LeasePool> {
        &self.pools[index]
    }

    /// What the leaser has done so far (shared: a metrics task may keep a clone).
    pub fn stats(&self) -> &Arc<LeaseStats> {
        &self.stats
    }

    /// Stops renewing and gives every unused token back (as dropping it does).
    pub fn stop(mut self) {
        self.worker.halt();
    }

    /// Stops renewing at once and gives nothing back, as a killed node does: its unused
    /// tokens are lost to the contract until its last lease's time has passed.
    pub fn kill(mut self) {
        self.abandon.store(true, Ordering::Release);
        self.worker.halt();
    }
}

/// The thread: renews every lease a little before it ends until stopped, falling back to
/// static shares while Redis is unreachable; then gives back (unless abandoned).
fn run(mut session: Session, stats: &LeaseStats, stop: &AtomicBool, abandon: &AtomicBool) {
    let lease = session
        .leases
        .iter()
        .map(|l| l.plan.lease)
        .min()
        .unwrap_or(Duration::from_millis(50));
    // Renewals at a random 60-90 % of a lease: with a fixed period every node's renewal would
    // keep its place behind another's, and always find only what accrued since (a node
    // renewing just after another starves).
    let mut random = session.seed() | 1;
    let mut period = lease.mul_f64(0.9);
    let mut next = Instant::now() + period;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        if stop.load(Ordering::Acquire) {
            break;
        }
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        period = lease.mul_f64(0.6 + 0.3 * (random >> 11) as f64 / (1u64 << 53) as f64);
        next = Instant::now() + period;
        let was_up = stats.redis_up.load(Ordering::Relaxed);
        match session.renew(stats) {
            Ok(()) => {
                if !was_up {
                    tracing::info!(
                        live_nodes = session.live_nodes,
                        "cluster: Redis reachable again: contracts leased from it again"
                    );
                }
                stats.redis_up.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                if was_up {
                    tracing::warn!(
                        error = %e, live_nodes = session.live_nodes,
                        "cluster: Redis unreachable: each contract falls back to this node's static share (the contract over the live nodes)"
                    );
                }
                stats.redis_up.store(false, Ordering::Relaxed);
                session.static_share(period);
            }
        }
        stats
            .live_nodes
            .store(session.live_nodes, Ordering::Relaxed);
    }
    if abandon.load(Ordering::Acquire) {
        session.abandon();
    } else {
        session.give_back(stats);
    }
}
