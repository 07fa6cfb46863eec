//! The SMSC simulator: an SMPP 3.4 server whose answers follow the same seeded behaviour model
//! as the in-process simulated carriers (latency, error mix, its own per-bind rate limit,
//! outages, hangs), plus window enforcement, credential checks, delivery receipts and
//! scheduled disconnects. Each session is `smsroute_smpp`'s session machine in the SMSC role,
//! so garbage gets the same generic_nack the ESME gives, and a hostile client is bounded: a
//! bind timeout, a timeout for a started PDU, caps on sessions (in total and per address), on
//! answers held and on receipts a client has not acknowledged; receipts wait in a bounded
//! store per system_id without a task or a timer each. An accept error is logged and retried
//! with backoff; the simulator never stops accepting.

mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use smsroute_delivery::ReceiptStatus;
use smsroute_smpp::pdu::{Address, Body, Frame, ShortMessage};
use smsroute_smpp::server::{Outbox, SessionCaps};
use smsroute_smpp::sm::receipt_deliver;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Behaviour, RateMeter, SimStats};

/// Called for every submit_sm the simulator accepts, with how long until it answers (load
/// tests use it to keep their own books).
#[derive(Clone)]
pub struct SubmitObserver(pub Arc<ObserveSubmit>);

/// What a [`SubmitObserver`] calls: the accepted submit and how long until it is answered.
pub type ObserveSubmit = dyn Fn(&ShortMessage, u64) + Send + Sync;

impl std::fmt::Debug for SubmitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubmitObserver")
    }
}

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Accept only this system_id (any when `None`).
    pub system_id: Option<String>,
    /// Accept only this password (any when `None`).
    pub password: Option<String>,
    /// Answers, latency, outages, receipts; `tps_limit` applies to each bind.
    pub behaviour: Behaviour,
    /// Seed of the behaviour model (each session adds its number).
    pub seed: u64,
    /// Most unanswered submits per session; beyond it, ESME_RTHROTTLED. 0: up to
    /// [`MAX_HELD_ANSWERS`].
    pub window: usize,
    /// Close each session after this many submits (the last one unanswered).
    pub disconnect_after: Option<u64>,
    /// Told of every accepted submit.
    pub observer: Option<SubmitObserver>,
    /// A connection that has not bound this long after it opened is closed. Default 10 s.
    pub bind_timeout: Duration,
    /// A PDU started must arrive whole within this. Default 10 s.
    pub pdu_timeout: Duration,
    /// With no answer from the client for this long, an enquire_link goes out; unanswered
    /// for `bind_timeout` more, the session is dropped. Default 30 s.
    pub enquire_link: Duration,
    /// Most sessions at once; more are closed as they connect. Default 1,024.
    pub max_sessions: usize,
    /// Most sessions at once from one address. Default 256.
    pub max_sessions_per_address: usize,
    /// Most deliver_sm a session may leave unacknowledged; more wait in the store.
    /// Default 256.
    pub max_unacknowledged: usize,
    /// Most deliver_sm waiting in one system_id's store; more are dropped and counted.
    /// Default 100,000.
    pub max_stored: usize,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            system_id: None,
            password: None,
            behaviour: Behaviour::default(),
            seed: 0,
            window: 0,
            disconnect_after: None,
            observer: None,
            bind_timeout: Duration::from_secs(10),
            pdu_timeout: Duration::from_secs(10),
            enquire_link: Duration::from_secs(30),
            max_sessions: 1024,
            max_sessions_per_address: 256,
            max_unacknowledged: 256,
            max_stored: 100_000,
        }
    }
}

/// Most answers one session holds for later (a window of 0 means this).
pub const MAX_HELD_ANSWERS: usize = 65_536;

/// What the simulator saw.
#[derive(Debug, Default)]
pub struct SimulatorStats {
    /// Sessions accepted.
    pub sessions: AtomicU64,
    /// Connections closed at once: over `max_sessions` or `max_sessions_per_address`.
    pub sessions_refused: AtomicU64,
    /// `accept` failures (out of file descriptors, …), each retried after a backoff.
    pub accept_errors: AtomicU64,
    /// Binds accepted.
    pub binds: AtomicU64,
    /// Binds refused (credentials, already bound).
    pub binds_refused: AtomicU64,
    /// Submits and their answers, as the in-process simulated carrier counts them (one
    /// submit_sm is one segment; window refusals count as throttled).
    pub carrier: SimStats,
    /// PDUs that could not be decoded.
    pub garbage: AtomicU64,
    /// Sessions closed by `disconnect_after`.
    pub disconnects: AtomicU64,
    /// Sessions closed by the session machine (bind, PDU or enquire_link timeout, a client
    /// that does not read, a PDU with an impossible length).
    pub sessions_dropped: AtomicU64,
    /// Deliver_sm dropped because their system_id's store was full.
    pub receipts_dropped: AtomicU64,
    /// Submits per sliding second.
    pub rate: Mutex<RateMeter>,
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    stats: Arc<SimulatorStats>,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

pub(crate) struct Shared {
    config: SimulatorConfig,
    stats: Arc<SimulatorStats>,
    /// Message ids, unique across sessions.
    next_id: AtomicU64,
    /// Deliver_sm waiting for a session, by system_id.
    stores: Mutex<HashMap<String, Arc<Outbox<Frame>>>>,
    origin: Instant,
    /// Sessions open, in total and by address.
    caps: SessionCaps,
}

impl Shared {
    fn store(&self, system_id: &str) -> Arc<Outbox<Frame>> {
        let mut stores = self.stores.lock();
        if let Some(store) = stores.get(system_id) {
            return store.clone();
        }
        let store = Arc::new(Outbox::new(self.config.max_stored));
        stores.insert(system_id.to_string(), store.clone());
        store
    }

    /// Keeps a deliver_sm for `system_id` until `due`, or counts it dropped.
    fn schedule(&self, system_id: &str, due: Instant, frame: Frame) {
        if self.store(system_id).schedule(due, frame).is_err() {
            let dropped = self.stats.receipts_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(%system_id, dropped, "deliver_sm store full: dropping");
            }
        }
    }
}

impl Simulator {
    /// Listens on `addr` (port 0: any free port) and serves until dropped.
    pub async fn start(addr: SocketAddr, config: SimulatorConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(SimulatorStats::default());
        let caps = SessionCaps::new(config.max_sessions, config.max_sessions_per_address);
        let shared = Arc::new(Shared {
            config,
            stats: stats.clone(),
            next_id: AtomicU64::new(1),
            stores: Mutex::default(),
            origin: Instant::now(),
            caps,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Simulator {
            addr,
            stats,
            shared,
            accept,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it saw.
    pub fn stats(&self) -> &SimulatorStats {
        &self.stats
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.shared.caps.open()
    }

    /// Deliver_sm waiting in `system_id`'s store (not yet on a session).
    pub fn stored(&self, system_id: &str) -> usize {
        self.shared
            .stores
            .lock()
            .get(system_id)
            .map_or(0, |s| s.len())
    }

    /// A recipient `from` replies `text` to `to`: a deliver_sm (not a receipt) to a session of
    /// `system_id` able to receive, kept until acknowledged like a receipt. Data coding 0 for
    /// GSM text, 8 otherwise.
    pub async fn send_mo(&self, system_id: &str, from: &str, to: &str, text: &str) {
        let address = |ton, addr: &str| Address {
            ton,
            npi: 1,
            addr: addr.into(),
        };
        let sm = smsroute_smpp::sm::text_deliver(address(1, from), address(0, to), text);
        let deliver = Frame::new(0, Body::DeliverSm(sm));
        self.shared.schedule(system_id, Instant::now(), deliver);
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts for ever: an error (out of file descriptors) is logged and retried after a backoff
/// that doubles from 10 ms to 1 s; a connection over the caps is closed at once.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    const BACKOFF_MIN: Duration = Duration::from_millis(10);
    let mut backoff = BACKOFF_MIN;
    let mut number = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = BACKOFF_MIN;
                accepted
            }
            Err(error) => {
                shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, retry_in = ?backoff, "SMSC simulator: accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Some(admitted) = shared.caps.admit(peer.ip()) else {
            shared
                .stats
                .sessions_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "SMSC simulator: session cap reached, connection closed");
            continue;
        };
        number += 1;
        shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        tokio::spawn(session::serve(stream, shared.clone(), number, admitted));
    }
}

/// The deliver_sm receipt for a submit: source and destination swapped, esm_class 0x04, the
/// standard text and the receipted_message_id and message_state TLVs.
fn receipt_pdu(submit: &ShortMessage, id: &str, outcome: ReceiptStatus) -> Frame {
    let now = SystemTime::now();
    let deliver = receipt_deliver(
        submit.destination.clone(),
        submit.source.clone(),
        id,
        outcome,
        (now, now),
    );
    Frame::new(0, Body::DeliverSm(deliver)) // its sequence is set when it is sent
}
