//! Receipts on any node: a carrier may send a receipt on any bind of the account, so on a node
//! that did not submit the message. Each node records which node owns the carrier ids it
//! waits for (`smsroute:rcpt:CARRIER:ID` → node, for as long as receipts are awaited), and a
//! node handed a receipt it does not wait for passes it to the owner's inbox stream
//! (`smsroute:{node:ID}:receipts`), which the owner reads and matches as its own. An owner
//! deletes a receipt from its inbox only once its router has it safe (with a journal: once
//! what it did is durable), so an owner killed in between reads it again when it comes back.
//! All of it in batches on a thread of its own: the router only queues (the [`ReceiptRelay`]
//! calls).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use smsroute_carrier::{Receipt, ReceiptAck, ReceiptRelay};
use smsroute_delivery::ReceiptStatus;

use crate::LeaseError;
use crate::link::{Commands, Link, RedisTarget};
use crate::worker::Worker;

/// Longest a connect or a round trip may take.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Ownership records and receipts to pass on, waiting for the thread; past it they are
/// dropped and counted (a receipt then stays unknown).
const QUEUE: usize = 100_000;
/// Most items one round trip carries.
const BATCH: usize = 10_000;
/// About how many receipts an inbox keeps for an owner that is away.
const INBOX_LENGTH: u64 = 1_000_000;
/// How long a receipt whose owner is not recorded (yet: the owner records ownership in
/// batches, and a carrier may send a receipt within milliseconds; or Redis was down) is
/// looked up again.
const UNOWNED_WAIT: Duration = Duration::from_secs(60);
/// How often receipts still without an owner are looked up again.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// Most ownership records waiting for Redis; past it the oldest are dropped.
const OWNED: usize = 1_000_000;
/// Most receipts waiting for their owner to be recorded; past it the oldest are dropped.
const UNOWNED: usize = 100_000;
/// How long after a router answered a passed receipt "not taken" the inbox is read from its
/// start again.
const NOT_TAKEN_WAIT: Duration = Duration::from_secs(1);

/// A receipt waiting for its owner: when it came, its carrier, and the carrier's answer.
type Unowned = (std::time::Instant, String, Receipt, ReceiptAck);

/// Takes a receipt passed here for `carrier`, answering its [`ReceiptAck`] once the receipt
/// is safe: `false` if it cannot take it now (it stays in the inbox for a later exchange).
type Deliver = Box<dyn Fn(&str, Receipt, ReceiptAck) -> bool + Send + Sync>;

/// What the exchange has done (for metrics and tests).
#[derive(Debug, Default)]
pub struct ReceiptStats {
    /// Carrier ids whose ownership was recorded.
    pub owned: AtomicU64,
    /// Receipts passed to the node that owns them.
    pub forwarded: AtomicU64,
    /// Receipts other nodes passed here, handed to the router.
    pub received: AtomicU64,
    /// Records or receipts dropped: a queue was full, or no owner was recorded within 60 s.
    pub dropped: AtomicU64,
}

enum Work {
    Own {
        carrier: String,
        ids: Vec<Box<str>>,
    },
    /// A receipt to pass on, and the carrier's answer, given once it is.
    Foreign {
        carrier: String,
        receipt: Receipt,
        ack: ReceiptAck,
    },
}

/// The router's side: queues, never blocks.
#[derive(Debug)]
struct Relay {
    work: SyncSender<Work>,
    stats: Arc<ReceiptStats>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Own { carrier, ids } => write!(f, "Own({carrier}, {} ids)", ids.len()),
            Work::Foreign {
                carrier, receipt, ..
            } => {
                write!(f, "Foreign({carrier}, {})", receipt.message_id)
            }
        }
    }
}

impl Relay {
    fn queue(&self, work: Work) {
        if self.work.try_send(work).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ReceiptRelay for Relay {
    fn waiting(&self, carrier: &str, ids: &[&str]) {
        self.queue(Work::Own {
            carrier: carrier.to_string(),
            ids: ids.iter().map(|&id| id.into()).collect(),
        });
    }

    fn unmatched(&self, carrier: &str, receipt: &Receipt, ack: ReceiptAck) {
        // A full queue drops it with its answer unsent: the carrier offers it again.
        self.queue(Work::Foreign {
            carrier: carrier.to_string(),
            receipt: receipt.clone(),
            ack,
        });
    }
}

/// A node's receipt exchange. See the module docs.
pub struct ReceiptExchange {
    relay: Arc<Relay>,
    deliver: Arc<OnceLock<Deliver>>,
    _worker: Worker,
}

impl ReceiptExchange {
    /// Connects as node `node_id`; ownership records last `ttl` (the router's receipt
    /// timeout). Redis must answer now. Receipts passed here wait in Redis until
    /// [`deliver_to`](Self::deliver_to) says where they go.
    pub fn start(redis: &RedisTarget, node_id: &str, ttl: Duration) -> Result<Self, LeaseError> {
        let error = |source| LeaseError::Redis {
            url: redis.redacted(),
            source,
        };
        let connection = redis.connect(TIMEOUT).map_err(error)?;
        let (work, queue) = std::sync::mpsc::sync_channel(QUEUE);
        let stats = Arc::new(ReceiptStats::default());
        let deliver: Arc<OnceLock<Deliver>> = Arc::default();
        let (answers_tx, answers) = std::sync::mpsc::channel();
        let exchange = Exchange {
            target: redis.clone(),
            connection: Some(connection),
            node_id: node_id.to_string(),
            inbox: inbox(node_id),
            ttl_ms: ttl.as_millis().max(1) as u64,
            queue,
            deliver: deliver.clone(),
            stats: stats.clone(),
            unowned: std::collections::VecDeque::new(),
            owned: std::collections::VecDeque::new(),
            retried_at: std::time::Instant::now(),
            exchanged_at: std::time::Instant::now(),
            in_hand: std::collections::HashSet::new(),
            read_after: None,
            answers_tx,
            answers,
            to_delete: Vec::new(),
            reread_at: None,
        };
        let worker = Worker::spawn("smsroute-receipts", move |stop| exchange.run(stop));
        Ok(Self {
            relay: Arc::new(Relay { work, stats }),
            deliver,
            _worker: worker,
        })
    }

    /// What the router is given (`EngineOptions::receipt_relay`).
    pub fn relay(&self) -> Arc<dyn ReceiptRelay> {
        self.relay.clone()
    }

    /// Where receipts other nodes pass here go (`Router::receipt_from_peer`); once. A receipt
    /// stays in this node's inbox until its [`ReceiptAck`] says taken; answered "not taken" (or
    /// dropped unanswered) it is handed over again a second later; `deliver` returning `false`
    /// (cannot take it now) leaves it and those after it for the next exchange.
    pub fn deliver_to(
        &self,
        deliver: impl Fn(&str, Receipt, ReceiptAck) -> bool + Send + Sync + 'static,
    ) {
        let _ = self.deliver.set(Box::new(deliver));
    }

    /// What it has done so far.
    pub fn stats(&self) -> &Arc<ReceiptStats> {
        &self.relay.stats
    }
}

/// A node's inbox stream.
fn inbox(node_id: &str) -> String {
    format!("smsroute:{{node:{node_id}}}:receipts")
}

/// The thread's state.
struct Exchange {
    target: RedisTarget,
    connection: Option<Link>,
    node_id: String,
    inbox: String,
    ttl_ms: u64,
    queue: Receiver<Work>,
    deliver: Arc<OnceLock<Deliver>>,
    stats: Arc<ReceiptStats>,
    /// Receipts from other nodes' messages (or none's), by when they came, waiting for
    /// their owner.
    unowned: std::collections::VecDeque<Unowned>,
    /// Ownership records not yet in Redis (kept while it is unreachable): carrier, part id.
    owned: std::collections::VecDeque<(String, Box<str>)>,
    /// When the receipts without an owner were last all looked up.
    retried_at: std::time::Instant,
    /// When the last exchange began: receipts that came since are new.
    exchanged_at: std::time::Instant,
    /// Inbox entries handed to the router and not yet answered.
    in_hand: std::collections::HashSet<String>,
    /// The last inbox entry read: the next read starts after it (from the start again once a
    /// receipt comes back not taken).
    read_after: Option<String>,
    /// The routers' answers, by inbox entry: taken (delete it) or not (read it again).
    answers_tx: std::sync::mpsc::Sender<(String, bool)>,
    answers: Receiver<(String, bool)>,
    /// Inbox entries to delete (kept until Redis has deleted them).
    to_delete: Vec<String>,
    /// When to read the inbox from its start again (a receipt came back not taken).
    reread_at: Option<std::time::Instant>,
}

impl Exchange {
    fn run(mut self, stop: &AtomicBool) {
        let mut up = true;
        while !stop.load(Ordering::Acquire) {
            let mut batch = Vec::new();
            match self.queue.recv_timeout(Duration::from_millis(20)) {
                Ok(work) => batch.push(work),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while batch.len() < BATCH
                && let Ok(work) = self.queue.try_recv()
            {
                batch.push(work);
            }
            self.take(batch);
            let result = self.exchange();
            match (result, up) {
                (Ok(()), false) => {
                    tracing::info!(
                        "cluster: Redis reachable again: receipts pass between nodes again"
                    );
                    up = true;
                }
                (Err(e), was_up) => {
                    if was_up {
                        tracing::warn!(
                            error = %e,
                            "cluster: Redis unreachable: receipts that come on another node's bind wait until it answers"
                        );
                    }
                    up = false;
                    self.connection = None;
                    std::thread::sleep(Duration::from_millis(100));
                }
                (Ok(()), true) => {}
            }
        }
    }

    /// Queues a batch from the router: ownership records and receipts to pass on (bounded:
    /// past the bounds the oldest are dropped and counted).
    fn take(&mut self, batch: Vec<Work>) {
        let now = std::time::Instant::now();
        for work in batch {
            match work {
                Work::Own { carrier, ids } => {
                    for id in ids {
                        if self.owned.len() == OWNED {
                            self.owned.pop_front();
                            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        self.owned.push_back((carrier.clone(), id));
                    }
                }
                Work::Foreign {
                    carrier,
                    receipt,
                    ack,
                } => {
                    if self.unowned.len() == UNOWNED {
                        // Unanswered: its carrier offers it again.
                        self.unowned.pop_front();
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    self.unowned.push_back((now, carrier, receipt, ack));
                }
            }
        }
    }

    /// Records ownership, passes receipts on, and takes this node's inbox: three round trips
    /// at most on a server (on a Redis Cluster, the receipts passed on take one per owner).
    /// What fails stays queued for the next exchange.
    fn exchange(&mut self) -> redis::RedisResult<()> {
        if self.connection.is_none() {
            self.connection = Some(self.target.connect(TIMEOUT)?);
        }
        let now = std::time::Instant::now();
        let mut first = self.connection.as_ref().expect("connected").pipe();
        let recorded = self.owned.len().min(BATCH);
        for (carrier, id) in self.owned.iter().take(recorded) {
            first
                .cmd("SET")
                .arg(owner_key(carrier, id))
                .arg(&self.node_id)
                .arg("PX")
                .arg(self.ttl_ms)
                .ignore();
        }
        // This batch's receipts are looked up now; earlier ones still without an owner, every
        // 100 ms.
        let retry = now.duration_since(self.retried_at) >= RETRY_EVERY;
        if retry {
            self.retried_at = now;
        }
        let asked: Vec<bool> = self
            .unowned
            .iter()
            .map(|(came, ..)| retry || *came >= self.exchanged_at)
            .collect();
        for ((_, carrier, receipt, _), _) in self.unowned.iter().zip(&asked).filter(|(_, a)| **a) {
            first
                .cmd("GET")
                .arg(owner_key(carrier, &receipt.message_id));
        }
        self.exchanged_at = now;
        if first.is_empty() {
            return self.take_inbox();
        }
        let connection = self.connection.as_mut().expect("connected");
        let owners: Vec<Option<String>> = first.query(connection)?;
        self.owned.drain(..recorded);
        self.stats
            .owned
            .fetch_add(recorded as u64, Ordering::Relaxed);
        let mut second = Commands::default();
        let mut forwarded = Vec::new();
        let mut waiting = std::collections::VecDeque::new();
        let mut owners = owners.into_iter();
        for ((came, carrier, receipt, ack), asked) in self.unowned.drain(..).zip(asked) {
            if !asked {
                waiting.push_back((came, carrier, receipt, ack));
                continue;
            }
            let owner = match owners.next().flatten() {
                // This node's own: its router matches it, or holds it as early.
                Some(owner) if owner == self.node_id => {
                    ack.taken();
                    continue;
                }
                Some(owner) => owner,
                None if now.duration_since(came) < UNOWNED_WAIT => {
                    waiting.push_back((came, carrier, receipt, ack));
                    continue;
                }
                // Nobody's: an unknown receipt, answered so the carrier stops offering it.
                None => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    ack.taken();
                    continue;
                }
            };
            let inbox = inbox(&owner);
            let mut command = redis::cmd("XADD");
            command
                .arg(&inbox)
                .arg("MAXLEN")
                .arg("~")
                .arg(INBOX_LENGTH)
                .arg("*")
                .arg("carrier")
                .arg(&carrier)
                .arg("id")
                .arg(&*receipt.message_id)
                .arg("status")
                .arg(status_name(receipt.status))
                .arg("error")
                .arg(receipt.error)
                .arg("dup")
                .arg(u8::from(receipt.possible_duplicate));
            second.push(&inbox, command);
            forwarded.push((came, carrier, receipt, ack));
        }
        self.unowned = waiting;
        if !second.is_empty() {
            // Each receipt's XADD answered on its own: on a Redis Cluster an owner whose
            // primary failed keeps its receipts here (looked up again next time), the others'
            // are in their inboxes and not sent twice.
            let (added, failed) = second.query::<redis::Value>(connection);
            let mut passed = 0;
            for (work, added) in forwarded.into_iter().zip(added) {
                match added {
                    // In the owner's inbox (Redis has it): the carrier may forget it.
                    Some(_) => {
                        passed += 1;
                        work.3.taken();
                    }
                    None => self.unowned.push_back(work),
                }
            }
            self.stats.forwarded.fetch_add(passed, Ordering::Relaxed);
            if let Some(e) = failed {
                return Err(e);
            }
        }
        self.take_inbox()
    }

    /// Hands the receipts other nodes passed here to the router, and deletes those it has
    /// safe (and those that do not parse). One the router cannot take now (its queue full, or
    /// it stopped) stays and is handed over on a later exchange; one it answered not taken,
    /// after [`NOT_TAKEN_WAIT`].
    fn take_inbox(&mut self) -> redis::RedisResult<()> {
        let Some(deliver) = self.deliver.get() else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        while let Ok((entry, taken)) = self.answers.try_recv() {
            if !self.in_hand.remove(&entry) {
                // Refused when handed over (answered as `deliver` returned): it stayed.
                continue;
            }
            if taken {
                self.to_delete.push(entry);
            } else {
                // Its router could not keep it: read from the start again, after a pause (a
                // router whose journal failed answers every receipt so).
                self.reread_at.get_or_insert(now + NOT_TAKEN_WAIT);
            }
        }
        if self.reread_at.is_some_and(|at| now >= at) {
            self.reread_at = None;
            self.read_after = None;
        }
        let connection = self.connection.as_mut().expect("connected");
        // Deleted before the next read, so a reread never hands over a taken receipt again.
        if !self.to_delete.is_empty() {
            redis::cmd("XDEL")
                .arg(&self.inbox)
                .arg(&self.to_delete)
                .query::<()>(connection)?;
            self.to_delete.clear();
        }
        let start = self
            .read_after
            .as_ref()
            .map_or_else(|| "-".to_string(), |id| format!("({id}"));
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(&self.inbox)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(BATCH)
            .query(connection)?;
        for (entry, fields) in entries {
            if self.in_hand.contains(&entry) {
                self.read_after = Some(entry);
                continue;
            }
            let Some((carrier, receipt)) = parse(&fields) else {
                self.to_delete.push(entry.clone());
                self.read_after = Some(entry);
                continue;
            };
            let (answers, id) = (self.answers_tx.clone(), entry.clone());
            let ack = ReceiptAck::new(move |taken| {
                let _ = answers.send((id, taken));
            });
            if !deliver(&carrier, receipt, ack) {
                // Not now: this one and those after it are read again next time.
                break;
            }
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            self.in_hand.insert(entry.clone());
            self.read_after = Some(entry);
        }
        Ok(())
    }
}

fn owner_key(carrier: &str, id: &str) -> String {
    format!("smsroute:rcpt:{carrier}:{id}")
}

fn status_name(status: ReceiptStatus) -> &'static str {
    match status {
        ReceiptStatus::Delivered => "delivered",
        ReceiptStatus::Undeliverable => "undeliverable",
        ReceiptStatus::Rejected => "rejected",
        ReceiptStatus::Expired => "expired",
        ReceiptStatus::Intermediate => "intermediate",
    }
}

/// A receipt from an inbox entry's fields (`carrier`, `id`, `status`, `error`, `dup`).
fn parse(fields: &[String]) -> Option<(String, Receipt)> {
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
    };
    let status = match field("status")? {
        "delivered" => ReceiptStatus::Delivered,
        "undeliverable" => ReceiptStatus::Undeliverable,
        "rejected" => ReceiptStatus::Rejected,
        "expired" => ReceiptStatus::Expired,
        _ => ReceiptStatus::Intermediate,
    };
    Some((
        field("carrier")?.to_string(),
        Receipt {
            message_id: field("id")?.into(),
            status,
            error: field("error")?.parse().ok()?,
            possible_duplicate: field("dup")? == "1",
        },
    ))
}
