//! The leaser: one thread per node that, every lease, gives back each shared bucket's unused
//! tokens and leases new ones in a single pipelined round trip to Redis, sized to the node's
//! demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Client, Connection, Script};

use smsroute_throttle::LeasePool;

/// The GCRA lease script (`gcra.lua`).
const GCRA: &str = include_str!("gcra.lua");

/// Longest a call to Redis may take before the leaser counts Redis as unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

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
}

/// How a node leases.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// `redis://host:port` (or `rediss://`).
    pub url: String,
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
    /// Round trips to Redis.
    pub round_trips: AtomicU64,
    /// Failed round trips (Redis unreachable or erroring).
    pub failures: AtomicU64,
    /// Tokens granted, all buckets.
    pub granted: AtomicU64,
    /// Tokens given back, all buckets.
    pub returned: AtomicU64,
}

/// A node's leases: one pool per shared bucket, kept filled by a background thread.
pub struct Leaser {
    pools: Vec<Arc<LeasePool>>,
    stats: Arc<LeaseStats>,
    stop: Arc<AtomicBool>,
    /// Stop without giving back, as a killed node.
    abandon: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Why a leaser could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The URL does not parse, or Redis did not answer.
    #[error("redis {url}: {source}")]
    Redis {
        /// The URL, without a password.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
}

impl Leaser {
    /// Connects to Redis, takes a first lease of every bucket, and starts the thread that
    /// renews them.
    pub fn start(options: &LeaseOptions, buckets: &[SharedBucket]) -> Result<Self, LeaseError> {
        let redacted = redact(&options.url);
        let error = |source| LeaseError::Redis {
            url: redacted.clone(),
            source,
        };
        let client = Client::open(options.url.as_str()).map_err(error)?;
        let mut connection = connect(&client).map_err(error)?;
        let script = Script::new(GCRA);
        script.load(&mut connection).map_err(error)?;
        let mut buckets: Vec<Lease> = buckets
            .iter()
            .map(|bucket| Lease {
                plan: LeasePlan::new(bucket, options.lease),
                bucket: bucket.clone(),
                pool: Arc::new(LeasePool::new()),
                lease_end: 0,
                want: 1,
            })
            .collect();
        let stats = Arc::new(LeaseStats::default());
        renew(&mut connection, &script, &mut buckets, &stats).map_err(error)?;
        let pools = buckets.iter().map(|l| l.pool.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let abandon = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, abandon, stats) = (stop.clone(), abandon.clone(), stats.clone());
            let session = Session {
                client,
                connection,
                script,
                leases: buckets,
            };
            std::thread::Builder::new()
                .name("smsroute-leaser".into())
                .spawn(move || run(session, &stats, &stop, &abandon))
                .expect("spawn the leaser thread")
        };
        Ok(Self {
            pools,
            stats,
            stop,
            abandon,
            thread: Some(thread),
        })
    }

    /// The pool of bucket `index` (in the order given to [`start`](Self::start)).
    pub fn pool(&self, index: usize) -> &Arc<LeasePool> {
        &self.pools[index]
    }

    /// What the leaser has done so far.
    pub fn stats(&self) -> &LeaseStats {
        &self.stats
    }

    /// Stops renewing and gives every unused token back.
    pub fn stop(mut self) {
        self.halt();
    }

    /// Stops renewing at once and gives nothing back, as a killed node does: its unused
    /// tokens are lost to the contract until its last lease's time has passed.
    pub fn kill(mut self) {
        self.abandon.store(true, Ordering::Release);
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Leaser {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One bucket's lease state on this node.
struct Lease {
    bucket: SharedBucket,
    plan: LeasePlan,
    pool: Arc<LeasePool>,
    /// The bucket's TAT after this node's last grant (0: none).
    lease_end: u64,
    /// Tokens to ask for next.
    want: u64,
}

fn connect(client: &Client) -> redis::RedisResult<Connection> {
    let connection = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
    connection.set_read_timeout(Some(REDIS_TIMEOUT))?;
    connection.set_write_timeout(Some(REDIS_TIMEOUT))?;
    Ok(connection)
}

/// What the leaser thread owns.
struct Session {
    client: Client,
    connection: Connection,
    script: Script,
    leases: Vec<Lease>,
}

/// The thread: renews every lease a little before it ends, until stopped; then gives back
/// (unless abandoned).
fn run(mut session: Session, stats: &LeaseStats, stop: &AtomicBool, abandon: &AtomicBool) {
    let Session {
        client,
        connection,
        script,
        leases,
    } = &mut session;
    let period = leases
        .iter()
        .map(|l| l.plan.lease)
        .min()
        .unwrap_or(Duration::from_millis(50))
        .mul_f64(0.9);
    let mut next = Instant::now() + period;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += period;
        if stop.load(Ordering::Acquire) {
            break;
        }
        if let Err(e) = renew(connection, script, leases, stats) {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cluster: lease renewal failed, reconnecting");
            if let Ok(fresh) = connect(client) {
                *connection = fresh;
            }
        }
    }
    if abandon.load(Ordering::Acquire) {
        for lease in leases.iter() {
            lease.pool.close();
        }
        return;
    }
    for lease in leases.iter_mut() {
        lease.want = 0;
    }
    let _ = renew(connection, script, leases, stats);
}

/// One round trip: every bucket's unused tokens back, new leases out.
fn renew(
    connection: &mut Connection,
    script: &Script,
    leases: &mut [Lease],
    stats: &LeaseStats,
) -> redis::RedisResult<()> {
    let asked = Instant::now();
    let mut pipe = redis::pipe();
    let mut returned_total = 0;
    for lease in leases.iter_mut() {
        let (unused, taken, refused) = lease.pool.close();
        returned_total += unused;
        let demand = taken + refused;
        // Ask for what the last lease was asked for, more while demand went unmet.
        let want = if lease.want == 0 {
            0
        } else {
            (demand + demand / 2).clamp(1, lease.plan.max_want)
        };
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(&lease.bucket.key)
            .arg(lease.bucket.tps)
            .arg(lease.plan.redis_burst)
            .arg(want)
            .arg(unused)
            .arg(lease.lease_end);
        lease.want = want;
    }
    stats.round_trips.fetch_add(1, Ordering::Relaxed);
    let replies: Vec<(u64, String)> = match pipe.query(connection) {
        Ok(replies) => replies,
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load(connection)?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    stats.returned.fetch_add(returned_total, Ordering::Relaxed);
    for (lease, (granted, tat)) in leases.iter_mut().zip(replies) {
        stats.granted.fetch_add(granted, Ordering::Relaxed);
        if granted > 0 {
            lease.lease_end = tat.parse().unwrap_or(0);
        }
        lease.pool.refill(granted, asked + lease.plan.lease);
    }
    Ok(())
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}
