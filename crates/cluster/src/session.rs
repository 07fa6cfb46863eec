//! The leaser thread's side: one pipelined round trip per lease (every bucket's unused tokens
//! back, new leases out, this node's heartbeat), and the static share each bucket falls back
//! to while Redis cannot be reached.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::Script;
use smsroute_throttle::LeasePool;

use crate::leaser::{LeasePlan, LeaseStats, SharedBucket};
use crate::link::{Link, RedisTarget};

/// The GCRA lease script (`gcra.lua`).
const GCRA: &str = include_str!("gcra.lua");
/// The liveness script (`heartbeat.lua`).
const HEARTBEAT: &str = include_str!("heartbeat.lua");
/// The sorted set of live nodes.
const NODES_KEY: &str = "smsroute:{nodes}";
/// A node not seen for this long no longer counts as live, milliseconds.
pub(crate) const LIVENESS_MS: u64 = 5_000;

/// One bucket's lease state on this node.
pub(crate) struct Lease {
    pub bucket: SharedBucket,
    pub plan: LeasePlan,
    pub pool: Arc<LeasePool>,
    /// The bucket's arrival time after this node's last grant (0: none to give back to).
    lease_end: u64,
    /// Tokens to ask for next (0: giving back only, at stop).
    want: u64,
    /// The fraction of a token the static share owes this bucket (while Redis is down).
    carry: f64,
    /// When this node last asked Redis for a lease of it.
    asked_at: Option<Instant>,
    /// The rate this node can expect, tokens a second (smoothed; 0: not judged yet).
    rate: f64,
}

impl Lease {
    pub fn new(bucket: &SharedBucket, lease: Duration) -> Self {
        Lease {
            plan: LeasePlan::new(bucket, lease),
            bucket: bucket.clone(),
            pool: Arc::new(LeasePool::new()),
            lease_end: 0,
            want: 1,
            carry: 0.0,
            asked_at: None,
            rate: 0.0,
        }
    }

    /// Judges the rate this node can expect from the contract after a grant of `granted`
    /// of the `want` it asked for at `asked`: while Redis grants less than asked the
    /// contract is contended, and what it grants over the time since the last ask is this
    /// node's share; otherwise the node can have the contract's rate. Smoothed over
    /// renewals, and told to the pool (the lanes' queue-wait estimates use it).
    fn judge_rate(&mut self, granted: u64, want: u64, asked: Instant) {
        let tps = self.bucket.tps;
        let since = self.asked_at.replace(asked).map(|at| asked - at);
        let seen = match since {
            Some(since) if want > 0 && granted < want && !since.is_zero() => {
                granted as f64 / since.as_secs_f64()
            }
            _ => tps,
        };
        self.rate = if self.rate == 0.0 {
            seen
        } else {
            0.9 * self.rate + 0.1 * seen
        };
        self.pool.set_rate(self.rate.min(tps));
    }
}

/// What the leaser thread owns: the connection (none while Redis is unreachable) and the
/// leases.
pub(crate) struct Session {
    target: RedisTarget,
    connection: Option<Link>,
    gcra: Script,
    heartbeat: Script,
    node_id: String,
    /// Longest a connect or a round trip may take.
    timeout: Duration,
    /// Live nodes as last seen in Redis (this one included).
    pub live_nodes: u64,
    pub leases: Vec<Lease>,
}

impl Session {
    /// Connects, loads the scripts and takes the first leases.
    pub fn open(
        target: &RedisTarget,
        node_id: &str,
        leases: Vec<Lease>,
        timeout: Duration,
        stats: &LeaseStats,
    ) -> redis::RedisResult<Session> {
        let mut session = Session {
            target: target.clone(),
            connection: None,
            gcra: Script::new(GCRA),
            heartbeat: Script::new(HEARTBEAT),
            node_id: node_id.to_string(),
            timeout,
            live_nodes: 1,
            leases,
        };
        session.connect()?;
        session.renew(stats)?;
        Ok(session)
    }

    /// A seed of this node's own (its id and the time), for the renewal jitter.
    pub fn seed(&self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(self.node_id.as_bytes());
        hasher.finish()
    }

    fn connect(&mut self) -> redis::RedisResult<()> {
        let mut connection = self.target.connect(self.timeout)?;
        self.gcra.load(&mut connection)?;
        self.heartbeat.load(&mut connection)?;
        self.connection = Some(connection);
        Ok(())
    }

    /// One round trip: every bucket's unused tokens back, new leases out, the heartbeat.
    /// Reconnects first if the last one failed.
    pub fn renew(&mut self, stats: &LeaseStats) -> redis::RedisResult<()> {
        if self.connection.is_none() {
            self.connect()?;
        }
        let asked = Instant::now();
        let connection = self.connection.as_mut().expect("connected above");
        let mut pipe = connection.pipe();
        let mut returned_total = 0;
        for lease in &mut self.leases {
            let (unused, taken, refused) = lease.pool.close();
            returned_total += unused;
            let demand = taken + refused;
            // What the last lease saw asked for, and half more (at least one more).
            let want = if lease.want == 0 {
                0
            } else {
                (demand + demand / 2 + 1).clamp(1, lease.plan.max_want)
            };
            pipe.cmd("EVALSHA")
                .arg(self.gcra.get_hash())
                .arg(1)
                .arg(&lease.bucket.key)
                .arg(lease.bucket.tps)
                .arg(lease.plan.redis_burst)
                .arg(want)
                .arg(unused)
                .arg(lease.lease_end);
            lease.want = want;
        }
        pipe.cmd("EVALSHA")
            .arg(self.heartbeat.get_hash())
            .arg(1)
            .arg(NODES_KEY)
            .arg(&self.node_id)
            .arg(LIVENESS_MS);
        stats.round_trips.fetch_add(1, Ordering::Relaxed);
        let (grants, live): (Vec<(u64, String)>, u64) =
            match pipe.query::<Vec<redis::Value>>(connection) {
                Ok(mut replies) => {
                    let live = replies.pop().map(redis::from_redis_value).transpose()?;
                    let grants = replies
                        .into_iter()
                        .map(|v| redis::from_redis_value(v).map_err(redis::RedisError::from))
                        .collect::<redis::RedisResult<_>>()?;
                    (grants, live.unwrap_or(1))
                }
                Err(e) => {
                    // A flushed script cache, a restarted Redis: load again on the next renewal.
                    self.connection = None;
                    return Err(e);
                }
            };
        self.live_nodes = live.max(1);
        stats.returned.fetch_add(returned_total, Ordering::Relaxed);
        for (lease, (granted, tat)) in self.leases.iter_mut().zip(grants) {
            stats.granted.fetch_add(granted, Ordering::Relaxed);
            if granted > 0 {
                lease.lease_end = tat.parse().unwrap_or(0);
            }
            lease.pool.refill(granted, asked + lease.plan.lease);
            lease.judge_rate(granted, lease.want, asked);
        }
        Ok(())
    }

    /// Redis is unreachable: each bucket gets this node's static share of its contract until
    /// the next renewal, `period` from now: `tps × period / live nodes` (fractions carried to
    /// the next), valid for a lease, with nothing to give back.
    pub fn static_share(&mut self, period: Duration) {
        let now = Instant::now();
        let live = self.live_nodes as f64;
        for lease in &mut self.leases {
            lease.pool.close();
            lease.lease_end = 0;
            let share = lease.bucket.tps * period.as_secs_f64() / live + lease.carry;
            let tokens = share.floor();
            lease.carry = share - tokens;
            lease.pool.refill(tokens as u64, now + lease.plan.lease);
            lease.asked_at = None;
            lease.rate = lease.bucket.tps / live;
            lease.pool.set_rate(lease.rate);
        }
    }

    /// At a stop: asks for nothing more, so the renewal only gives back.
    pub fn give_back(&mut self, stats: &LeaseStats) {
        for lease in &mut self.leases {
            lease.want = 0;
        }
        let _ = self.renew(stats);
    }

    /// At a kill: the pools close, nothing goes back.
    pub fn abandon(&mut self) {
        for lease in &self.leases {
            lease.pool.close();
        }
    }
}
