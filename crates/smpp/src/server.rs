//! The SMSC simulator: an SMPP 3.4 server whose answers follow the same seeded behaviour model
//! as the in-process simulated carriers (latency, error mix, its own per-bind rate limit,
//! outages, hangs), plus window enforcement, credential checks, delivery receipts and
//! scheduled disconnects. Garbage gets a generic_nack, or the session closed; never a crash.
//!
//! Length: past 500 lines until issue 15 moves the session loop into the one sans-IO session
//! machine shared with the ESME; the accept loop, the session loop and store-and-forward of
//! deliver_sm live here together until then.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use smsroute_delivery::ReceiptStatus;
use smsroute_sim::{Behaviour, RateMeter, Reply, SimModel, SimStats};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::io::{Read, encoded, read_frame, send_frame, write_frames};
use crate::pdu::{Address, BindKind, Body, Frame, ShortMessage, status};
use crate::sm::{ESM_RECEIPT, receipt_text};

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
#[derive(Clone, Debug, Default)]
pub struct SimulatorConfig {
    /// Accept only this system_id (any when `None`).
    pub system_id: Option<String>,
    /// Accept only this password (any when `None`).
    pub password: Option<String>,
    /// Answers, latency, outages, receipts; `tps_limit` applies to each bind.
    pub behaviour: Behaviour,
    /// Seed of the behaviour model (each session adds its number).
    pub seed: u64,
    /// Most unanswered submits per session; beyond it, ESME_RTHROTTLED. 0: no limit.
    pub window: usize,
    /// Close each session after this many submits (the last one unanswered).
    pub disconnect_after: Option<u64>,
    /// Told of every accepted submit.
    pub observer: Option<SubmitObserver>,
}

/// What the simulator saw.
#[derive(Debug, Default)]
pub struct SimulatorStats {
    /// Sessions accepted.
    pub sessions: AtomicU64,
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

/// A session's way out for deliver_sm, with those not yet answered: an SMSC keeps a receipt
/// until the ESME acknowledged it, and redelivers it on another session if this one dies.
struct Outbox {
    tx: mpsc::Sender<Vec<u8>>,
    unacked: Mutex<HashMap<u32, Frame>>,
    sequence: AtomicU32,
    /// The session has ended: its unacknowledged receipts were (or are being) handed on.
    closed: std::sync::atomic::AtomicBool,
}

impl Outbox {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.tx.is_closed()
    }
}

/// Sessions bound to receive (transceivers and receivers), by system_id.
type Receivers = Arc<Mutex<HashMap<String, Vec<Arc<Outbox>>>>>;

struct Shared {
    config: SimulatorConfig,
    stats: Arc<SimulatorStats>,
    /// Message ids, unique across sessions.
    next_id: AtomicU64,
    receivers: Receivers,
    origin: Instant,
}

impl Simulator {
    /// Listens on `addr` (port 0: any free port) and serves until dropped.
    pub async fn start(addr: SocketAddr, config: SimulatorConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(SimulatorStats::default());
        let shared = Arc::new(Shared {
            config,
            stats: stats.clone(),
            next_id: AtomicU64::new(1),
            receivers: Arc::default(),
            origin: Instant::now(),
        });
        let serving = shared.clone();
        let accept = tokio::spawn(async move {
            let shared = serving;
            let mut number = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                number += 1;
                shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                tokio::spawn(session(stream, shared.clone(), number));
            }
        });
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

    /// A recipient `from` replies `text` to `to`: a deliver_sm (not a receipt) to a session of
    /// `system_id` able to receive, kept until acknowledged like a receipt. Data coding 0 for
    /// GSM text, 8 otherwise.
    pub async fn send_mo(&self, system_id: &str, from: &str, to: &str, text: &str) {
        let mut octets = Vec::new();
        let data_coding = if smsroute_types::is_gsm7(text) {
            smsroute_types::gsm7_encode(text, &mut octets);
            0
        } else {
            smsroute_types::ucs2_encode(text, &mut octets);
            8
        };
        let deliver = Frame::new(
            0,
            Body::DeliverSm(ShortMessage {
                source: Address {
                    ton: 1,
                    npi: 1,
                    addr: from.into(),
                },
                destination: Address {
                    ton: 0,
                    npi: 1,
                    addr: to.into(),
                },
                esm_class: 0,
                registered_delivery: 0,
                data_coding,
                short_message: octets,
                message_payload: None,
                receipted_message_id: None,
                message_state: None,
            }),
        );
        forward_deliver(&self.shared, system_id, None, deliver).await;
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

/// One client session.
async fn session(stream: TcpStream, shared: Arc<Shared>, number: u64) {
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8192);
    let writer = tokio::spawn(write_frames(write, rx));
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut buf = Vec::new();
    let mut model = SimModel::new(
        shared.config.behaviour.clone(),
        shared.config.seed.wrapping_add(number),
    );
    let mut bound: Option<(BindKind, String)> = None;
    let outstanding = Arc::new(AtomicUsize::new(0));
    let outbox = Arc::new(Outbox {
        tx: tx.clone(),
        unacked: Mutex::new(HashMap::new()),
        sequence: AtomicU32::new(1),
        closed: std::sync::atomic::AtomicBool::new(false),
    });
    let mut submits = 0u64;
    let stats = &shared.stats;
    let send = |frame: Frame| {
        let tx = tx.clone();
        async move { send_frame(&tx, &frame).await }
    };
    loop {
        let frame = match read_frame(&mut reader, &mut buf).await {
            Ok(Read::Frame(frame)) => frame,
            Ok(Read::Malformed { sequence, .. }) => {
                stats.garbage.fetch_add(1, Ordering::Relaxed);
                send(nack(status::INVALID_COMMAND_LENGTH, sequence)).await;
                continue;
            }
            Ok(Read::BadLength(_)) => {
                stats.garbage.fetch_add(1, Ordering::Relaxed);
                send(nack(status::INVALID_COMMAND_LENGTH, 0)).await;
                break;
            }
            Ok(Read::Closed) | Err(_) => break,
        };
        let seq = frame.sequence;
        match frame.body {
            Body::Bind(bind) => {
                let refuse = if bound.is_some() {
                    Some(status::ALREADY_BOUND)
                } else if shared
                    .config
                    .system_id
                    .as_ref()
                    .is_some_and(|id| *id != bind.system_id)
                {
                    Some(status::INVALID_SYSTEM_ID)
                } else if shared
                    .config
                    .password
                    .as_ref()
                    .is_some_and(|pw| *pw != bind.password)
                {
                    Some(status::INVALID_PASSWORD)
                } else {
                    None
                };
                let mut resp = Frame::new(
                    seq,
                    Body::BindResp {
                        kind: bind.kind,
                        system_id: "smsroute-sim".into(),
                    },
                );
                match refuse {
                    Some(code) => {
                        stats.binds_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            session = number, system_id = %bind.system_id,
                            status = status::name(code).unwrap_or("?"), "bind refused"
                        );
                        resp.status = code;
                    }
                    None => {
                        stats.binds.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            session = number, system_id = %bind.system_id,
                            kind = ?bind.kind, "bound"
                        );
                        if bind.kind != BindKind::Transmitter {
                            shared
                                .receivers
                                .lock()
                                .entry(bind.system_id.clone())
                                .or_default()
                                .push(outbox.clone());
                        }
                        bound = Some((bind.kind, bind.system_id));
                    }
                }
                send(resp).await;
            }
            Body::SubmitSm(sm) => {
                let answer = |code: u32, id: &str| {
                    let mut f = Frame::new(
                        seq,
                        Body::SubmitSmResp {
                            message_id: id.to_string(),
                        },
                    );
                    f.status = code;
                    f
                };
                let Some((kind, system_id)) =
                    bound.as_ref().filter(|(k, _)| *k != BindKind::Receiver)
                else {
                    send(answer(status::INVALID_BIND_STATUS, "")).await;
                    continue;
                };
                stats.carrier.submits.fetch_add(1, Ordering::Relaxed);
                stats.carrier.segments.fetch_add(1, Ordering::Relaxed);
                submits += 1;
                if shared.config.disconnect_after.is_some_and(|n| submits >= n) {
                    stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    writer.abort();
                    break;
                }
                let window = shared.config.window;
                if window > 0 && outstanding.load(Ordering::Relaxed) >= window {
                    stats.carrier.count_refusal(status::THROTTLED);
                    send(answer(status::THROTTLED, "")).await;
                    continue;
                }
                let now = shared.origin.elapsed().as_nanos() as u64;
                stats.rate.lock().add(now, 1);
                let wants_receipt = sm.registered_delivery & 1 == 1;
                let decision = model.decide(now, 1, wants_receipt);
                let (frame, receipt) = match decision.reply {
                    Reply::Hang => {
                        stats.carrier.hung.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Reply::Reject(code) => {
                        stats.carrier.count_refusal(code);
                        (answer(code, ""), None)
                    }
                    Reply::Accept(_) => {
                        stats.carrier.accepted.fetch_add(1, Ordering::Relaxed);
                        if let Some(observer) = &shared.config.observer {
                            (observer.0)(&sm, decision.respond_after);
                        }
                        let id = format!("{:x}", shared.next_id.fetch_add(1, Ordering::Relaxed));
                        let receipt = decision
                            .receipts
                            .first()
                            .map(|&(delay, outcome)| (id.clone(), delay, outcome));
                        (answer(status::OK, &id), receipt)
                    }
                };
                let delay = decision.respond_after;
                if delay == 0 {
                    send(frame).await;
                } else {
                    outstanding.fetch_add(1, Ordering::Relaxed);
                    let (tx, outstanding) = (tx.clone(), outstanding.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_nanos(delay)).await;
                        send_frame(&tx, &frame).await;
                        outstanding.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                if let Some((id, receipt_delay, outcome)) = receipt {
                    let own = (*kind != BindKind::Transmitter).then(|| outbox.clone());
                    let deliver = receipt_pdu(&sm, &id, outcome);
                    let (shared, system_id) = (shared.clone(), system_id.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_nanos(delay + receipt_delay)).await;
                        forward_deliver(&shared, &system_id, own, deliver).await;
                    });
                }
            }
            Body::EnquireLink => send(Frame::new(seq, Body::EnquireLinkResp)).await,
            Body::Unbind => {
                send(Frame::new(seq, Body::UnbindResp)).await;
                break;
            }
            Body::DeliverSmResp => {
                outbox.unacked.lock().remove(&seq);
            }
            Body::EnquireLinkResp
            | Body::GenericNack
            | Body::UnbindResp
            | Body::BindResp { .. }
            | Body::SubmitSmResp { .. } => {}
            Body::DeliverSm(_) | Body::Unsupported { .. } => {
                send(nack(status::INVALID_COMMAND_ID, seq)).await;
            }
        }
    }
    if let Some((_, system_id)) = &bound {
        if let Some(list) = shared.receivers.lock().get_mut(system_id) {
            list.retain(|o| !Arc::ptr_eq(o, &outbox));
        }
        // Receipts this session never acknowledged go out again on another one.
        outbox.closed.store(true, Ordering::Release);
        let unacked: Vec<Frame> = outbox.unacked.lock().drain().map(|(_, f)| f).collect();
        for deliver in unacked {
            let (shared, system_id) = (shared.clone(), system_id.clone());
            tokio::spawn(async move { forward_deliver(&shared, &system_id, None, deliver).await });
        }
    }
    // Let queued answers (the unbind_resp) go out, then close the socket: receipt tasks may
    // still hold the channel, so the writer is stopped rather than waited for.
    let drained = async {
        while tx.capacity() < tx.max_capacity() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
    writer.abort();
}

/// How long a receipt waits for a session to deliver it on.
const RECEIPT_HOLD: Duration = Duration::from_secs(60);

/// Delivers a deliver_sm (a receipt, or a mobile-originated message) on the submitting
/// session, or, when that one is gone, on any session of the same system_id able to receive;
/// none bound yet: it waits (store and forward, as an SMSC does), up to [`RECEIPT_HOLD`]. The
/// session keeps it until its deliver_sm_resp.
async fn forward_deliver(
    shared: &Shared,
    system_id: &str,
    own: Option<Arc<Outbox>>,
    mut deliver: Frame,
) {
    let deadline = Instant::now() + RECEIPT_HOLD;
    loop {
        let target = own.clone().filter(|o| o.is_open()).or_else(|| {
            let receivers = shared.receivers.lock();
            receivers
                .get(system_id)
                .and_then(|r| r.iter().find(|o| o.is_open()).cloned())
        });
        let Some(target) = target else {
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        deliver.sequence = target.sequence.fetch_add(1, Ordering::Relaxed);
        let Ok(bytes) = encoded(&deliver) else {
            return;
        };
        target
            .unacked
            .lock()
            .insert(deliver.sequence, deliver.clone());
        if !target.is_open() {
            // Its session ended between the pick and the insert: take it back and retry,
            // unless the session's end already handed it on.
            if target.unacked.lock().remove(&deliver.sequence).is_none() {
                return;
            }
            continue;
        }
        if target.tx.send(bytes).await.is_ok() {
            shared
                .stats
                .carrier
                .receipts
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Closed meanwhile: its session end hands the receipt on, unless it already ran.
        if target.unacked.lock().remove(&deliver.sequence).is_none() {
            return;
        }
    }
}

fn nack(code: u32, sequence: u32) -> Frame {
    Frame {
        status: code,
        sequence,
        body: Body::GenericNack,
    }
}

/// The deliver_sm receipt for a submit: source and destination swapped, esm_class 0x04, the
/// standard text and the receipted_message_id and message_state TLVs.
fn receipt_pdu(submit: &ShortMessage, id: &str, outcome: ReceiptStatus) -> Frame {
    let (stat, state) = match outcome {
        ReceiptStatus::Delivered => ("DELIVRD", 2),
        ReceiptStatus::Expired => ("EXPIRED", 3),
        ReceiptStatus::Undeliverable => ("UNDELIV", 5),
        ReceiptStatus::Rejected => ("REJECTD", 8),
        ReceiptStatus::Intermediate => ("ENROUTE", 1),
    };
    let date = smpp_date(SystemTime::now());
    let text = receipt_text(id, stat, 0, &date, &date);
    Frame::new(
        0, // set when it is sent
        Body::DeliverSm(ShortMessage {
            source: submit.destination.clone(),
            destination: Address {
                ton: submit.source.ton,
                npi: submit.source.npi,
                addr: submit.source.addr.clone(),
            },
            esm_class: ESM_RECEIPT,
            registered_delivery: 0,
            data_coding: 0,
            short_message: text.into_bytes(),
            message_payload: None,
            receipted_message_id: Some(id.to_string()),
            message_state: Some(state),
        }),
    )
}

/// `YYMMDDhhmm` in UTC, as receipts write dates.
fn smpp_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        year % 100,
        month,
        day,
        rest / 3600,
        rest % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_yymmddhhmm_utc() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_084_660); // 2025-11-25 15:31 UTC
        assert_eq!(smpp_date(at), "2511251531");
        assert_eq!(smpp_date(UNIX_EPOCH), "7001010000");
    }
}
