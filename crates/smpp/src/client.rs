//! The ESME side: a [`Carrier`] over `binds` SMPP sessions to one SMSC. Each session binds with
//! credentials, pipelines submits within its window (correlated by sequence number), keeps the
//! link alive with enquire_link and declares it dead when nothing comes back, reconnects with
//! growing backoff, and unbinds cleanly on close. Submits in flight when a link dies end as
//! "connection lost" (outcome unknown); receipts go to the engine's sink.
//!
//! Length: past 500 lines until issue 15 moves the session loop into the one sans-IO session
//! machine shared with the simulator; the carrier and its sessions' supervision live here
//! together until then (the receipt-id aliases are in `aliases.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use smallvec::SmallVec;
use smsroute_carrier::{
    Accepted, Carrier, Inbound, InboundSink, LinkState, Receipt, ReceiptSink, SubmitError,
    SubmitRequest,
};
use smsroute_routing::config::SmppConfig;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::aliases::Aliases;
use crate::io::{Read, encoded, read_frame, send_frame, write_frames};
use crate::pdu::{Bind, BindKind, Body, Frame, status};
use crate::sm::{parse_receipt, submit_parts};

/// How to reach and use one SMSC.
#[derive(Clone, Debug)]
pub struct EsmeConfig {
    /// Where and as whom to bind: host, port, system_id, password, system_type, and the
    /// sessions to open (each gets an equal share of `window`).
    pub endpoint: SmppConfig,
    /// Transceiver (default) or transmitter.
    pub bind_kind: BindKind,
    /// Submit PDUs unanswered at once, over all sessions.
    pub window: u32,
    /// Idle time after which an enquire_link goes out. Default 30 s.
    pub enquire_link: Duration,
    /// How long a bind or enquire_link may wait for its answer before the link counts as
    /// dead. Default 10 s.
    pub response_timeout: Duration,
    /// A submit unanswered this long frees its window slot as timed out. Default 30 s.
    pub submit_timeout: Duration,
    /// First reconnect delay; it doubles up to `reconnect_max`. Default 100 ms.
    pub reconnect_min: Duration,
    /// Longest reconnect delay. Default 10 s.
    pub reconnect_max: Duration,
}

impl EsmeConfig {
    /// A transceiver configuration with the default timers.
    pub fn new(host: &str, port: u16, system_id: &str, password: &str) -> Self {
        EsmeConfig::with_defaults(SmppConfig {
            host: host.into(),
            port,
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            binds: 1,
        })
    }

    /// From a carrier's `[carriers.smpp]` table, its window and the retry policy's timeout.
    pub fn from_config(smpp: &SmppConfig, window: u32, submit_timeout: Duration) -> Self {
        EsmeConfig {
            window,
            // Slots of answers the engine gave up on are freed a little after it did.
            submit_timeout: submit_timeout + Duration::from_secs(1),
            ..EsmeConfig::with_defaults(smpp.clone())
        }
    }

    /// `endpoint` with the default window and timers, bound as a transceiver.
    fn with_defaults(endpoint: SmppConfig) -> Self {
        EsmeConfig {
            endpoint,
            bind_kind: BindKind::Transceiver,
            window: 64,
            enquire_link: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            submit_timeout: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

/// Live figures of a carrier connection.
#[derive(Debug, Default)]
pub struct EsmeStats {
    /// Successful binds (reconnects included).
    pub binds: AtomicU64,
    /// Binds the SMSC refused, or that failed.
    pub bind_failures: AtomicU64,
    /// Links declared dead or closed by the peer.
    pub link_losses: AtomicU64,
    /// Submits that ended as connection lost.
    pub lost_in_flight: AtomicU64,
    /// Receipts handed to the engine.
    pub receipts: AtomicU64,
    /// deliver_sm that were not receipts (mobile-originated), handed on as inbound messages.
    pub mobile_originated: AtomicU64,
    /// PDUs from the SMSC that could not be decoded.
    pub garbage: AtomicU64,
}

type PartAnswer = Result<Box<str>, SubmitError>;

struct Pending {
    answer: oneshot::Sender<PartAnswer>,
    _permit: OwnedSemaphorePermit,
    sent: Instant,
    /// A receipt was asked for: learn the id's other forms.
    receipt: bool,
}

/// One SMPP session and its link (when bound).
struct Session {
    link: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    pending: Mutex<HashMap<u32, Pending>>,
    window: Arc<Semaphore>,
    sequence: AtomicU32,
    closing: AtomicBool,
}

impl Session {
    fn next_sequence(&self) -> u32 {
        // 1..=0x7FFFFFFF, as SMPP allows.
        let n = self.sequence.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF;
        n + 1
    }

    /// Ends every pending submit with `error` (the link is gone).
    fn fail_pending(&self, error: SubmitError, stats: &EsmeStats) {
        let pending: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
        stats
            .lost_in_flight
            .fetch_add(pending.len() as u64, Ordering::Relaxed);
        for p in pending {
            let _ = p.answer.send(Err(error.clone()));
        }
    }
}

struct Shared {
    /// The carrier's id, for logs.
    id: String,
    config: EsmeConfig,
    /// Why no session is bound, when none is: the last bind failure or link loss.
    down_reason: Mutex<String>,
    sink: Mutex<Option<ReceiptSink>>,
    inbound: Mutex<Option<InboundSink>>,
    aliases: Mutex<Aliases>,
    stats: EsmeStats,
}

/// A carrier reached over SMPP.
pub struct SmppCarrier {
    id: String,
    shared: Arc<Shared>,
    sessions: Vec<Arc<Session>>,
    tasks: Vec<JoinHandle<()>>,
    next: AtomicUsize,
    reference: AtomicU8,
}

impl std::fmt::Debug for SmppCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppCarrier")
            .field("id", &self.id)
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

impl SmppCarrier {
    /// Starts the sessions (they connect and bind in the background, and keep doing so).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn connect(id: &str, config: EsmeConfig) -> Self {
        let binds = config.endpoint.binds.max(1);
        SmppCarrier::with_sessions(id, config, binds)
    }

    /// A carrier with no SMPP connection configured: every submit is answered
    /// `Unavailable`, so routing fails over past it.
    pub fn unconfigured(id: &str) -> Self {
        SmppCarrier::with_sessions(id, EsmeConfig::new("", 0, "", ""), 0)
    }

    /// `binds` sessions sharing the configured window, each kept bound by a task of its own.
    fn with_sessions(id: &str, config: EsmeConfig, binds: u32) -> Self {
        let per_session = (config.window / binds.max(1)).max(1) as usize;
        let shared = Arc::new(Shared {
            id: id.into(),
            down_reason: Mutex::new("connecting".into()),
            config,
            sink: Mutex::new(None),
            inbound: Mutex::new(None),
            aliases: Mutex::default(),
            stats: EsmeStats::default(),
        });
        let sessions: Vec<Arc<Session>> = (0..binds)
            .map(|_| {
                Arc::new(Session {
                    link: Mutex::new(None),
                    pending: Mutex::new(HashMap::new()),
                    window: Arc::new(Semaphore::new(per_session)),
                    sequence: AtomicU32::new(0),
                    closing: AtomicBool::new(false),
                })
            })
            .collect();
        let tasks = sessions
            .iter()
            .map(|s| tokio::spawn(supervise(s.clone(), shared.clone())))
            .collect();
        SmppCarrier {
            id: id.into(),
            shared,
            sessions,
            tasks,
            next: AtomicUsize::new(0),
            reference: AtomicU8::new(0),
        }
    }

    /// Live figures.
    pub fn stats(&self) -> &EsmeStats {
        &self.shared.stats
    }

    /// Sessions bound right now.
    pub fn bound(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.link.lock().as_ref().is_some_and(|l| !l.is_closed()))
            .count()
    }

    /// A bound session, round robin; `None` when none is bound.
    fn pick(&self) -> Option<(Arc<Session>, mpsc::Sender<Vec<u8>>)> {
        let n = self.sessions.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| {
            let s = &self.sessions[(start + i) % n];
            let link = s.link.lock().clone()?;
            (!link.is_closed()).then(|| (s.clone(), link))
        })
    }
}

impl Drop for SmppCarrier {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Carrier for SmppCarrier {
    fn id(&self) -> &str {
        &self.id
    }

    async fn submit(&self, request: SubmitRequest) -> Result<Accepted, SubmitError> {
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        let parts = submit_parts(&request.message, reference, request.receipt);
        let Some((session, link)) = self.pick() else {
            return Err(SubmitError::Unavailable("no bound SMPP session"));
        };
        let mut answers: SmallVec<[oneshot::Receiver<PartAnswer>; 2]> = SmallVec::new();
        for (i, part) in parts.into_iter().enumerate() {
            let Ok(permit) = session.window.clone().acquire_owned().await else {
                return Err(SubmitError::ConnectionLost);
            };
            let sequence = session.next_sequence();
            let bytes = encoded(&Frame::new(sequence, Body::SubmitSm(part))).map_err(|_| {
                SubmitError::Rejected {
                    status: status::INVALID_MESSAGE_LENGTH,
                }
            })?;
            let (tx, rx) = oneshot::channel();
            session.pending.lock().insert(
                sequence,
                Pending {
                    answer: tx,
                    _permit: permit,
                    sent: Instant::now(),
                    receipt: request.receipt,
                },
            );
            if link.send(bytes).await.is_err() {
                session.pending.lock().remove(&sequence);
                // Nothing of this message reached the SMSC if this was its first part.
                return Err(if i == 0 {
                    SubmitError::Unavailable("SMPP link went down")
                } else {
                    SubmitError::ConnectionLost
                });
            }
            answers.push(rx);
        }
        let mut message_ids = SmallVec::new();
        for answer in answers {
            match answer.await {
                Ok(Ok(id)) => message_ids.push(id),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(SubmitError::ConnectionLost),
            }
        }
        Ok(Accepted { message_ids })
    }

    fn attach_receipts(&self, sink: ReceiptSink) {
        *self.shared.sink.lock() = Some(sink);
    }

    fn attach_inbound(&self, sink: InboundSink) {
        *self.shared.inbound.lock() = Some(sink);
    }

    fn link(&self) -> LinkState {
        if self.sessions.is_empty() {
            LinkState::NotConfigured
        } else if self.bound() > 0 {
            LinkState::Up
        } else {
            LinkState::Down {
                reason: self.shared.down_reason.lock().clone(),
            }
        }
    }

    /// Unbinds every session (waiting up to `grace` for the answers) and stops reconnecting.
    async fn close(&self, grace: Duration) {
        for s in &self.sessions {
            s.closing.store(true, Ordering::Release);
            let link = s.link.lock().clone();
            if let Some(link) = link
                && let Ok(bytes) = encoded(&Frame::new(s.next_sequence(), Body::Unbind))
            {
                // A peer that stopped reading must not hold the close past its grace.
                let _ = tokio::time::timeout(grace, link.send(bytes)).await;
            }
        }
        let deadline = Instant::now() + grace;
        while self.bound() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Keeps one session connected and bound, forever (until closed).
async fn supervise(session: Arc<Session>, shared: Arc<Shared>) {
    let config = &shared.config;
    let mut backoff = config.reconnect_min;
    loop {
        if session.closing.load(Ordering::Acquire) {
            return;
        }
        let endpoint = &config.endpoint;
        match connect_and_bind(config).await {
            Ok((reader, link, writer)) => {
                backoff = config.reconnect_min;
                shared.stats.binds.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    carrier = %shared.id, host = %endpoint.host, port = endpoint.port,
                    system_id = %endpoint.system_id, "SMPP session bound"
                );
                *session.link.lock() = Some(link.clone());
                let end = run_link(&session, &shared, reader, link).await;
                *session.link.lock() = None;
                // Let what is queued (an unbind_resp, a generic_nack) go out, briefly: the
                // writer ends by itself once the last sender is gone.
                let mut writer = writer;
                let flushed = tokio::time::timeout(Duration::from_millis(100), &mut writer);
                if flushed.await.is_err() {
                    writer.abort();
                    // Once the writer is gone no send can succeed, so every submit either
                    // sees its send fail or has its pending entry drained below: none is left
                    // waiting.
                    let _ = writer.await;
                }
                shared.stats.link_losses.fetch_add(1, Ordering::Relaxed);
                session.fail_pending(SubmitError::ConnectionLost, &shared.stats);
                if session.closing.load(Ordering::Acquire) {
                    tracing::info!(carrier = %shared.id, "SMPP session unbound");
                } else {
                    tracing::warn!(carrier = %shared.id, reason = end, "SMPP link lost, reconnecting");
                    *shared.down_reason.lock() = format!("link lost: {end}");
                }
            }
            Err(reason) => {
                shared.stats.bind_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    carrier = %shared.id, host = %endpoint.host, port = endpoint.port,
                    system_id = %endpoint.system_id, %reason, retry_in = ?backoff,
                    "SMPP bind failed"
                );
                *shared.down_reason.lock() = reason;
            }
        }
        if session.closing.load(Ordering::Acquire) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.reconnect_max);
    }
}

type Bound = (
    BufReader<OwnedReadHalf>,
    mpsc::Sender<Vec<u8>>,
    JoinHandle<std::io::Result<()>>,
);

/// Connects, binds, and returns the reader, the writer's channel and the writer task.
async fn connect_and_bind(config: &EsmeConfig) -> Result<Bound, String> {
    let connect = TcpStream::connect((config.endpoint.host.as_str(), config.endpoint.port));
    let (host, port) = (&config.endpoint.host, config.endpoint.port);
    let stream = tokio::time::timeout(config.response_timeout, connect)
        .await
        .map_err(|_| format!("connect to {host}:{port} timed out"))?
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel(8192);
    let writer = tokio::spawn(write_frames(write, rx));
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let bind = Frame::new(
        1,
        Body::Bind(Bind {
            kind: config.bind_kind,
            system_id: config.endpoint.system_id.clone(),
            password: config.endpoint.password.clone(),
            system_type: config.endpoint.system_type.clone(),
            interface_version: 0x34,
        }),
    );
    let bytes = encoded(&bind).map_err(|e| e.to_string())?;
    tx.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let answer = tokio::time::timeout(config.response_timeout, async {
        loop {
            match read_frame(&mut reader, &mut buf).await {
                Ok(Read::Frame(Frame {
                    status,
                    body: Body::BindResp { .. } | Body::GenericNack,
                    ..
                })) => return Ok(status),
                Ok(Read::Frame(_)) | Ok(Read::Malformed { .. }) => continue,
                Ok(Read::Closed) | Ok(Read::BadLength(_)) => {
                    return Err("closed by the SMSC before answering the bind".to_string());
                }
                Err(e) => return Err(format!("reading the bind answer: {e}")),
            }
        }
    })
    .await
    .map_err(|_| {
        let wait = config.response_timeout;
        format!("no answer to the bind within {wait:?}")
    })??;
    if answer != status::OK {
        writer.abort();
        let name = status::name(answer).unwrap_or("status");
        return Err(format!("bind refused: {name} ({answer:#010x})"));
    }
    Ok((reader, tx, writer))
}

/// Serves a bound link until it dies or is closed; says why it ended.
async fn run_link(
    session: &Session,
    shared: &Shared,
    reader: BufReader<OwnedReadHalf>,
    link: mpsc::Sender<Vec<u8>>,
) -> &'static str {
    let mut reader = reader;
    let config = &shared.config;
    // Reading is not cancel-safe (a PDU may be half read), so it runs in its own task and
    // hands whole PDUs over a channel the loop below can select on.
    let (frames_tx, mut frames) = mpsc::channel::<std::io::Result<Read>>(1024);
    let reading = tokio::spawn(async move {
        let mut buf = Vec::new();
        loop {
            let read = read_frame(&mut reader, &mut buf).await;
            let end = !matches!(read, Ok(Read::Frame(_)) | Ok(Read::Malformed { .. }));
            if frames_tx.send(read).await.is_err() || end {
                return;
            }
        }
    });
    let _stop_reading = AbortOnDrop(reading);
    let mut last_heard = Instant::now();
    let mut probe_sent: Option<Instant> = None;
    let tick = (config.enquire_link / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send = |frame: Frame| {
        let link = link.clone();
        async move { send_frame(&link, &frame).await }
    };
    loop {
        let read = tokio::select! {
            read = frames.recv() => match read {
                Some(read) => read,
                None => return "reader stopped",
            },
            _ = ticker.tick() => {
                let now = Instant::now();
                if let Some(sent) = probe_sent
                    && now.duration_since(sent) > config.response_timeout
                {
                    return "no answer to enquire_link";
                }
                if probe_sent.is_none() && now.duration_since(last_heard) >= config.enquire_link {
                    probe_sent = Some(now);
                    send(Frame::new(session.next_sequence(), Body::EnquireLink)).await;
                }
                expire_pending(session, config.submit_timeout);
                continue;
            }
        };
        let frame = match read {
            Ok(Read::Frame(frame)) => frame,
            Ok(Read::Malformed { sequence, .. }) => {
                shared.stats.garbage.fetch_add(1, Ordering::Relaxed);
                let mut nack = Frame::new(sequence, Body::GenericNack);
                nack.status = status::INVALID_COMMAND_LENGTH;
                send(nack).await;
                continue;
            }
            Ok(Read::BadLength(_)) => {
                // The stream cannot be resynchronised: say so, as the SMSC side does, and close.
                shared.stats.garbage.fetch_add(1, Ordering::Relaxed);
                let mut nack = Frame::new(0, Body::GenericNack);
                nack.status = status::INVALID_COMMAND_LENGTH;
                send(nack).await;
                return "a PDU with an impossible length";
            }
            Ok(Read::Closed) => return "closed by the SMSC",
            Err(_) => return "read error",
        };
        last_heard = Instant::now();
        probe_sent = None;
        let sequence = frame.sequence;
        match frame.body {
            Body::SubmitSmResp { message_id } => {
                let Some(p) = session.pending.lock().remove(&sequence) else {
                    continue;
                };
                let answer = if frame.status == status::OK {
                    if p.receipt {
                        shared.aliases.lock().learn(&message_id);
                    }
                    Ok(message_id.into_boxed_str())
                } else {
                    Err(SubmitError::Rejected {
                        status: frame.status,
                    })
                };
                let _ = p.answer.send(answer);
            }
            Body::GenericNack => {
                if let Some(p) = session.pending.lock().remove(&sequence) {
                    let code = if frame.status == status::OK {
                        status::SYSTEM_ERROR
                    } else {
                        frame.status
                    };
                    let _ = p.answer.send(Err(SubmitError::Rejected { status: code }));
                }
            }
            Body::DeliverSm(sm) => {
                match parse_receipt(&sm) {
                    Some(r) => {
                        // Only a text id may be another form of a known id. A TLV id is
                        // exact: resolving it could turn a receipt that beat its own
                        // submit_sm_resp into an alias of an older message's id.
                        let alias = (!r.exact)
                            .then(|| shared.aliases.lock().resolve(&r.id))
                            .flatten();
                        let id = alias.unwrap_or_else(|| r.id.into_boxed_str());
                        let sink = shared.sink.lock().clone();
                        if let Some(sink) = sink {
                            let receipt = Receipt {
                                message_id: id,
                                status: r.status,
                                error: r.error,
                            };
                            // Back-pressure: the answer waits until the engine took it.
                            if sink.send(receipt).await.is_ok() {
                                shared.stats.receipts.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    None => {
                        shared
                            .stats
                            .mobile_originated
                            .fetch_add(1, Ordering::Relaxed);
                        let (_, text) = crate::sm::text_of(&sm);
                        let inbound = Inbound {
                            from: sm.source.addr.clone(),
                            to: sm.destination.addr.clone(),
                            text,
                        };
                        let sink = shared.inbound.lock().clone();
                        if let Some(sink) = sink {
                            // Back-pressure, as for receipts: answered once taken.
                            let _ = sink.send(inbound).await;
                        }
                    }
                }
                send(Frame::new(sequence, Body::DeliverSmResp)).await;
            }
            Body::EnquireLink => send(Frame::new(sequence, Body::EnquireLinkResp)).await,
            Body::Unbind => {
                send(Frame::new(sequence, Body::UnbindResp)).await;
                return "unbound by the SMSC";
            }
            Body::UnbindResp => return "unbound",
            Body::EnquireLinkResp
            | Body::BindResp { .. }
            | Body::DeliverSmResp
            | Body::SubmitSm(_)
            | Body::Bind(_) => {}
            Body::Unsupported { .. } => {
                let mut nack = Frame::new(sequence, Body::GenericNack);
                nack.status = status::INVALID_COMMAND_ID;
                send(nack).await;
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Submits unanswered for longer than `timeout` give their window slot back as timed out.
fn expire_pending(session: &Session, timeout: Duration) {
    let now = Instant::now();
    let expired: Vec<Pending> = {
        let mut pending = session.pending.lock();
        let old: Vec<u32> = pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) > timeout)
            .map(|(seq, _)| *seq)
            .collect();
        old.iter().filter_map(|seq| pending.remove(seq)).collect()
    };
    for p in expired {
        let _ = p.answer.send(Err(SubmitError::Timeout));
    }
}
