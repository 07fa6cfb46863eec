//! Opt-outs shared between nodes: every change made on a node goes to Redis (a state hash and
//! a change stream, updated together by `optout.lua`), and every node applies the stream to
//! its own suppression list, so a STOP on one node blocks sends from all within a second.
//! Sends never ask Redis: each node checks its own list, as without a cluster.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use redis::Script;
use smsroute_policy::Suppression;

use crate::LeaseError;
use crate::link::{Link, RedisTarget};
use crate::worker::Worker;

/// The change script (`optout.lua`).
const OPTOUT: &str = include_str!("optout.lua");
/// The state hash: number → its opt-outs.
const STATE_KEY: &str = "smsroute:{optouts}:state";
/// The change stream.
const LOG_KEY: &str = "smsroute:{optouts}:log";
/// About how many changes the stream keeps (a node away longer reads the state instead).
const LOG_LENGTH: u64 = 100_000;
/// Local changes waiting to be published; past it, the next resync publishes them.
const PENDING: usize = 100_000;
/// How long one read of the stream waits for changes, milliseconds.
const BLOCK_MS: u64 = 200;

/// What the opt-out sync has done (for metrics and tests).
#[derive(Debug, Default)]
pub struct OptOutStats {
    /// Local changes published to Redis.
    pub published: AtomicU64,
    /// Changes from other nodes that changed the local list.
    pub applied: AtomicU64,
    /// Failed exchanges with Redis.
    pub failures: AtomicU64,
    /// Whether the last exchange reached Redis.
    pub redis_up: AtomicBool,
}

/// A node's opt-out sync: a thread that publishes the list's local changes and applies the
/// other nodes'.
pub struct OptOutSync {
    stats: Arc<OptOutStats>,
    _worker: Worker,
}

impl OptOutSync {
    /// Connects, brings `list` and Redis together (the union: what either holds is kept), and
    /// starts the thread. Redis must answer now.
    pub fn start(redis: &RedisTarget, list: Arc<Suppression>) -> Result<Self, LeaseError> {
        let error = |source| LeaseError::Redis {
            url: redis.redacted(),
            source,
        };
        let (changes_tx, changes) = std::sync::mpsc::sync_channel(PENDING);
        let resync = Arc::new(AtomicBool::new(false));
        let mut sync = SyncThread {
            target: redis.clone(),
            connection: None,
            script: Script::new(OPTOUT),
            list,
            changes,
            pending: VecDeque::new(),
            resync: resync.clone(),
            last_id: "0-0".to_string(),
        };
        let stats = Arc::new(OptOutStats::default());
        sync.connect().map_err(error)?;
        sync.resync(&stats).map_err(error)?;
        stats.redis_up.store(true, Ordering::Relaxed);
        observe(&sync.list, changes_tx, resync);
        let worker = {
            let stats = stats.clone();
            Worker::spawn("smsroute-optouts", move |stop| sync.run(&stats, stop))
        };
        Ok(Self {
            stats,
            _worker: worker,
        })
    }

    /// What it has done so far.
    pub fn stats(&self) -> &Arc<OptOutStats> {
        &self.stats
    }
}

/// Hands every local change to the sync thread; a full queue asks it for a resync instead.
fn observe(list: &Suppression, changes: SyncSender<String>, resync: Arc<AtomicBool>) {
    list.on_change(move |line| match changes.try_send(line.to_string()) {
        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
        Err(TrySendError::Full(_)) => resync.store(true, Ordering::Release),
    });
}

/// The thread's state.
struct SyncThread {
    target: RedisTarget,
    connection: Option<Link>,
    script: Script,
    list: Arc<Suppression>,
    changes: Receiver<String>,
    /// Local changes not yet published (Redis was unreachable).
    pending: VecDeque<String>,
    /// Set when local changes were dropped: publish the whole list again.
    resync: Arc<AtomicBool>,
    /// The last stream entry applied.
    last_id: String,
}

impl SyncThread {
    fn connect(&mut self) -> redis::RedisResult<()> {
        let mut connection = self.target.connect(Duration::from_millis(BLOCK_MS * 5))?;
        self.script.load(&mut connection)?;
        self.connection = Some(connection);
        Ok(())
    }

    fn run(mut self, stats: &OptOutStats, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            while let Ok(line) = self.changes.try_recv() {
                if self.pending.len() == PENDING {
                    self.resync.store(true, Ordering::Release);
                } else {
                    self.pending.push_back(line);
                }
            }
            let was_up = stats.redis_up.load(Ordering::Relaxed);
            match self.exchange(stats, was_up) {
                Ok(()) => {
                    if !was_up {
                        tracing::info!("cluster: Redis reachable again: opt-outs shared again");
                    }
                    stats.redis_up.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    if was_up {
                        tracing::warn!(
                            error = %e,
                            "cluster: Redis unreachable: opt-outs apply on this node only until it answers"
                        );
                    }
                    stats.redis_up.store(false, Ordering::Relaxed);
                    self.connection = None;
                    std::thread::sleep(Duration::from_millis(BLOCK_MS));
                }
            }
        }
    }

    /// Reconnects (and resyncs) if needed, publishes what is pending, applies what others
    /// published.
    fn exchange(&mut self, stats: &OptOutStats, was_up: bool) -> redis::RedisResult<()> {
        if self.connection.is_none() {
            self.connect()?;
        }
        // Back from an outage (Redis may have restarted empty), or local changes dropped.
        if !was_up || self.resync.swap(false, Ordering::AcqRel) {
            self.resync(stats)?;
        }
        self.publish(stats)?;
        self.read(stats)
    }

    /// Publishes every pending local change in one round trip.
    fn publish(&mut self, stats: &OptOutStats) -> redis::RedisResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let connection = self.connection.as_mut().expect("connected");
        let mut pipe = connection.pipe();
        for line in &self.pending {
            let mut words = line.splitn(3, ' ');
            let (op, number) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            pipe.cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(2)
                .arg(STATE_KEY)
                .arg(LOG_KEY)
                .arg(line)
                .arg(op)
                .arg(number)
                .arg(words.next().unwrap_or(""))
                .arg(LOG_LENGTH)
                .ignore();
        }
        pipe.query::<()>(connection)?;
        stats
            .published
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        self.pending.clear();
        Ok(())
    }

    /// Applies the changes published since the last one applied, waiting a little for them.
    fn read(&mut self, stats: &OptOutStats) -> redis::RedisResult<()> {
        type Entries = Vec<(String, Vec<String>)>;
        let reply: Option<Vec<(String, Entries)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1_000)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(LOG_KEY)
            .arg(&self.last_id)
            .query(self.connection.as_mut().expect("connected"))?;
        for (_, entries) in reply.unwrap_or_default() {
            for (id, fields) in entries {
                if let Some(line) = fields.get(1) {
                    apply(&self.list, line, stats);
                }
                self.last_id = id;
            }
        }
        Ok(())
    }

    /// Brings the list and Redis together: the stream's position first (changes made while
    /// reading the state come after it and are applied again, in order), then every
    /// opt-out Redis holds, then the local ones Redis lacks are published.
    fn resync(&mut self, stats: &OptOutStats) -> redis::RedisResult<()> {
        let connection = self.connection.as_mut().expect("connected");
        let newest: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(LOG_KEY)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query(connection)?;
        let position = newest
            .into_iter()
            .next()
            .map_or("0-0".to_string(), |(id, _)| id);
        let mut shared = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let (next, pairs): (String, Vec<String>) = redis::cmd("HSCAN")
                .arg(STATE_KEY)
                .arg(&cursor)
                .arg("COUNT")
                .arg(1_000)
                .query(connection)?;
            for pair in pairs.chunks_exact(2) {
                for sender in pair[1].lines() {
                    let line = format!("out {} {sender}", pair[0]);
                    apply(&self.list, &line, stats);
                    shared.insert(line);
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
        self.last_id = position;
        let mut local = Vec::new();
        self.list.export(&mut local).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Io, "export", e.to_string()))
        })?;
        for row in String::from_utf8_lossy(&local).lines() {
            if let Some((number, sender)) = row.split_once(',') {
                let line = format!("out {number} {sender}");
                if !shared.contains(&line) {
                    self.pending.push_back(line);
                }
            }
        }
        Ok(())
    }
}

/// Applies another node's change line to `list`.
fn apply(list: &Suppression, line: &str, stats: &OptOutStats) {
    match list.apply_line(line) {
        Ok(true) => _ = stats.applied.fetch_add(1, Ordering::Relaxed),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            line, error = %e,
            "cluster: an opt-out change from Redis is not one: skipped"
        ),
    }
}
