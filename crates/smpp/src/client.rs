//! The ESME side: a [`Carrier`] over `binds` SMPP sessions to one SMSC. Each session binds with
//! credentials, pipelines submits within its window (correlated by sequence number), keeps the
//! link alive with enquire_link and declares it dead when nothing comes back, reconnects with
//! growing backoff, and unbinds cleanly on close. Submits in flight when a link dies end as
//! "connection lost" (outcome unknown); receipts go to the engine's sink. Each session is the
//! [`session`](crate::session) machine driven by one task (`esme.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use smallvec::SmallVec;
use smsroute_carrier::{
    Accepted, Carrier, InboundSink, LinkState, ReceiptSink, SubmitError, SubmitRequest,
};
use smsroute_config::SmppConfig;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::aliases::Aliases;
use crate::pdu::{BindKind, ShortMessage};
use crate::sm::submit_parts;

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
    /// With no answer from the SMSC for this long, an enquire_link goes out. Default 30 s.
    pub enquire_link: Duration,
    /// How long a connect, bind, enquire_link or unbind may wait for its answer (and a PDU
    /// may take to arrive whole) before the link counts as dead. Default 10 s.
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
    /// Answers whose sequence number matched no submit in flight.
    pub unmatched: AtomicU64,
}

/// The SMSC's answer to one part: its message id, or why not.
pub(crate) type PartAnswer = Result<Box<str>, SubmitError>;

/// What a carrier asks of a bound session's task.
pub(crate) struct Submit {
    pub part: ShortMessage,
    /// A receipt was asked for: learn the id's other forms.
    pub receipt: bool,
    pub answer: oneshot::Sender<PartAnswer>,
    pub permit: OwnedSemaphorePermit,
}

/// One session as the carrier sees it: its window, and its task's inbox while bound.
pub(crate) struct SessionHandle {
    /// The bound session's inbox (none while it is not bound).
    pub link: ArcSwapOption<mpsc::Sender<Submit>>,
    pub window: Arc<Semaphore>,
    /// Submits this session may hold unanswered.
    pub window_size: usize,
    /// Set by `close`: unbind, and do not reconnect.
    pub closing: AtomicBool,
    pub close_now: Notify,
}

/// What every session of a carrier shares.
pub(crate) struct Shared {
    /// The carrier's id, for logs.
    pub id: String,
    pub config: EsmeConfig,
    /// Why no session is bound, when none is: the last bind failure or link loss.
    pub down_reason: Mutex<String>,
    pub sink: Mutex<Option<ReceiptSink>>,
    pub inbound: Mutex<Option<InboundSink>>,
    pub aliases: Mutex<Aliases>,
    pub stats: EsmeStats,
}

/// A carrier reached over SMPP.
pub struct SmppCarrier {
    id: String,
    shared: Arc<Shared>,
    sessions: Vec<Arc<SessionHandle>>,
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
        let sessions: Vec<Arc<SessionHandle>> = (0..binds)
            .map(|_| {
                Arc::new(SessionHandle {
                    link: ArcSwapOption::empty(),
                    window: Arc::new(Semaphore::new(per_session)),
                    window_size: per_session,
                    closing: AtomicBool::new(false),
                    close_now: Notify::new(),
                })
            })
            .collect();
        let tasks = sessions
            .iter()
            .map(|s| tokio::spawn(crate::esme::supervise(s.clone(), shared.clone())))
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
            .filter(|s| s.link.load().as_ref().is_some_and(|l| !l.is_closed()))
            .count()
    }

    /// A bound session's inbox, round robin, with its window; `None` when none is bound.
    fn pick(&self) -> Option<(Arc<Semaphore>, Arc<mpsc::Sender<Submit>>)> {
        let n = self.sessions.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| {
            let s = &self.sessions[(start + i) % n];
            let link = s.link.load_full()?;
            (!link.is_closed()).then(|| (s.window.clone(), link))
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
        let Some((window, link)) = self.pick() else {
            return Err(SubmitError::Unavailable("no bound SMPP session"));
        };
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        let parts = submit_parts(&request.message, reference, request.receipt);
        let mut answers: SmallVec<[oneshot::Receiver<PartAnswer>; 2]> = SmallVec::new();
        for (i, part) in parts.into_iter().enumerate() {
            // Nothing of this message reached the SMSC if this is its first part.
            let gone = || {
                if i == 0 {
                    SubmitError::Unavailable("SMPP link went down")
                } else {
                    SubmitError::ConnectionLost
                }
            };
            let Ok(permit) = window.clone().acquire_owned().await else {
                return Err(gone());
            };
            let (tx, rx) = oneshot::channel();
            let submit = Submit {
                part,
                receipt: request.receipt,
                answer: tx,
                permit,
            };
            if link.send(submit).await.is_err() {
                return Err(gone());
            }
            answers.push(rx);
        }
        let mut message_ids = SmallVec::new();
        for (i, answer) in answers.into_iter().enumerate() {
            match answer.await {
                Ok(Ok(id)) => message_ids.push(id),
                // A later part that never left: the message went out in part.
                Ok(Err(SubmitError::Unavailable(_))) if i > 0 => {
                    return Err(SubmitError::ConnectionLost);
                }
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

    /// Unbinds every session and stops reconnecting; returns by `grace` whatever the SMSC
    /// does (a session still unbinding then is dropped).
    async fn close(&self, grace: Duration) {
        for s in &self.sessions {
            s.closing.store(true, Ordering::Release);
            s.close_now.notify_one();
        }
        let deadline = Instant::now() + grace;
        while self.tasks.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}
