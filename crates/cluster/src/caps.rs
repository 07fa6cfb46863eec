//! Frequency caps shared between nodes: every take a node makes goes, in batches, to a Redis
//! stream (`smsroute:{caps}:log`: the node, the pair's hash, the window's length, the time),
//! and every node records the others' takes in its own table. A message is still checked
//! against the node's own table only (no round trip); a recipient may get more than the cap
//! by what the other nodes sent it within the last exchange (about 100 ms), no more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use smsroute_policy::FrequencyCaps;

use crate::LeaseError;
use crate::link::{Link, RedisTarget};
use crate::worker::Worker;

/// The stream of takes.
const LOG_KEY: &str = "smsroute:{caps}:log";
/// About how many takes the stream keeps (a node that starts reads them all).
const LOG_LENGTH: u64 = 1_000_000;
/// Takes waiting to be published; past it they are dropped and counted.
const QUEUE: usize = 65_536;
/// How long one read of the stream waits for takes, milliseconds.
const BLOCK_MS: u64 = 100;
/// Most takes one exchange publishes or reads.
const BATCH: usize = 10_000;

/// What the cap sync has done (for metrics and tests).
#[derive(Debug, Default)]
pub struct CapStats {
    /// Takes made here, published.
    pub published: AtomicU64,
    /// Takes made elsewhere, recorded here.
    pub recorded: AtomicU64,
    /// Takes not published: the queue was full or Redis unreachable.
    pub dropped: AtomicU64,
}

/// A node's cap sync: a thread that publishes the table's takes and records the others'.
pub struct CapSync {
    stats: Arc<CapStats>,
    _worker: Worker,
}

impl CapSync {
    /// Connects as node `node_id`, records every take the stream still holds, and starts
    /// the thread. Redis must answer now.
    pub fn start(
        redis: &RedisTarget,
        node_id: &str,
        caps: Arc<FrequencyCaps>,
    ) -> Result<Self, LeaseError> {
        let error = |source| LeaseError::Redis {
            url: redis.redacted(),
            source,
        };
        let stats = Arc::new(CapStats::default());
        let queue = Arc::new(ArrayQueue::new(QUEUE));
        let mut sync = SyncThread {
            connection: Some(redis.connect(TIMEOUT).map_err(error)?),
            target: redis.clone(),
            node_id: node_id.to_string(),
            caps,
            queue: queue.clone(),
            last_id: "0-0".to_string(),
            stats: stats.clone(),
        };
        // Catch up with what the other nodes sent before this one started.
        while sync.read(0).map_err(error)? == BATCH {}
        let dropped = stats.clone();
        sync.caps.on_take(move |hash, window, at| {
            if queue.push((hash, window, at)).is_err() {
                dropped.dropped.fetch_add(1, Ordering::Relaxed);
            }
        });
        let worker = Worker::spawn("smsroute-caps", move |stop| sync.run(stop));
        Ok(Self {
            stats,
            _worker: worker,
        })
    }

    /// What it has done so far.
    pub fn stats(&self) -> &Arc<CapStats> {
        &self.stats
    }
}

/// Longest a connect or a round trip may take (a read blocks up to [`BLOCK_MS`]).
const TIMEOUT: Duration = Duration::from_millis(BLOCK_MS * 5);

/// The thread's state.
struct SyncThread {
    target: RedisTarget,
    connection: Option<Link>,
    node_id: String,
    caps: Arc<FrequencyCaps>,
    queue: Arc<ArrayQueue<(u64, u32, u32)>>,
    /// The last stream entry read.
    last_id: String,
    stats: Arc<CapStats>,
}

impl SyncThread {
    fn run(mut self, stop: &AtomicBool) {
        let mut up = true;
        while !stop.load(Ordering::Acquire) {
            let result = self
                .publish()
                .and_then(|()| self.read(BLOCK_MS).map(|_| ()));
            match (result, up) {
                (Ok(()), false) => {
                    tracing::info!("cluster: Redis reachable again: frequency caps shared again");
                    up = true;
                }
                (Ok(()), true) => {}
                (Err(e), was_up) => {
                    if was_up {
                        tracing::warn!(
                            error = %e,
                            "cluster: Redis unreachable: frequency caps count this node's messages only"
                        );
                    }
                    up = false;
                    self.connection = None;
                    // Takes made meanwhile are not kept for later: the windows move on.
                    while self.queue.pop().is_some() {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(BLOCK_MS));
                }
            }
        }
    }

    fn connection(&mut self) -> redis::RedisResult<&mut Link> {
        if self.connection.is_none() {
            self.connection = Some(self.target.connect(TIMEOUT)?);
        }
        Ok(self.connection.as_mut().expect("connected"))
    }

    /// Publishes the takes made here since the last exchange, in one round trip.
    fn publish(&mut self) -> redis::RedisResult<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let mut pipe = self.connection()?.pipe();
        let mut count = 0;
        while count < BATCH
            && let Some((hash, window, at)) = self.queue.pop()
        {
            pipe.cmd("XADD")
                .arg(LOG_KEY)
                .arg("MAXLEN")
                .arg("~")
                .arg(LOG_LENGTH)
                .arg("*")
                .arg("n")
                .arg(&self.node_id)
                .arg("h")
                .arg(hash)
                .arg("w")
                .arg(window)
                .arg("t")
                .arg(at)
                .ignore();
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        let published = pipe.query::<()>(self.connection()?);
        if published.is_err() {
            self.stats
                .dropped
                .fetch_add(count as u64, Ordering::Relaxed);
        } else {
            self.stats
                .published
                .fetch_add(count as u64, Ordering::Relaxed);
        }
        published
    }

    /// Records the other nodes' takes since the last read, waiting up to `block_ms` for some:
    /// how many entries it read.
    fn read(&mut self, block_ms: u64) -> redis::RedisResult<usize> {
        type Entries = Vec<(String, Vec<String>)>;
        let last_id = self.last_id.clone();
        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(BATCH);
        if block_ms > 0 {
            command.arg("BLOCK").arg(block_ms);
        }
        let reply: Option<Vec<(String, Entries)>> = command
            .arg("STREAMS")
            .arg(LOG_KEY)
            .arg(&last_id)
            .query(self.connection()?)?;
        let mut read = 0;
        for (_, entries) in reply.unwrap_or_default() {
            for (id, fields) in entries {
                read += 1;
                if let Some((hash, window, at)) = parse(&fields, &self.node_id) {
                    self.caps.record(hash, window, at);
                    self.stats.recorded.fetch_add(1, Ordering::Relaxed);
                }
                self.last_id = id;
            }
        }
        Ok(read)
    }
}

/// A take of another node's from an entry's fields (`n`, `h`, `w`, `t`); `None` for this
/// node's own (already counted) or a malformed one.
fn parse(fields: &[String], node_id: &str) -> Option<(u64, u32, u32)> {
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
    };
    if field("n")? == node_id {
        return None;
    }
    Some((
        field("h")?.parse().ok()?,
        field("w")?.parse().ok()?,
        field("t")?.parse().ok()?,
    ))
}
