//! The SMSC simulator: an SMPP 3.4 server whose answers follow the same seeded behaviour model
//! as the in-process simulated carriers (latency, error mix, its own per-bind rate limit,
//! outages, hangs), plus window enforcement, credential checks, delivery receipts and
//! scheduled disconnects. Garbage gets a generic_nack, or the session closed; never a crash.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use smsroute_delivery::ReceiptStatus;
use smsroute_sim::{Behaviour, Reply, SimModel};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::io::{Read, encoded, read_frame, write_frames};
use crate::pdu::{Address, BindKind, Body, Frame, ShortMessage, status};
use crate::sm::{ESM_RECEIPT, receipt_text};

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
    /// submit_sm received.
    pub submits: AtomicU64,
    /// Submits accepted.
    pub accepted: AtomicU64,
    /// Answered ESME_RTHROTTLED (own limit or window).
    pub throttled: AtomicU64,
    /// Refused with another status.
    pub refused: AtomicU64,
    /// Never answered.
    pub hung: AtomicU64,
    /// deliver_sm receipts sent.
    pub receipts: AtomicU64,
    /// PDUs that could not be decoded.
    pub garbage: AtomicU64,
    /// Sessions closed by `disconnect_after`.
    pub disconnects: AtomicU64,
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    stats: Arc<SimulatorStats>,
    accept: JoinHandle<()>,
}

/// Sessions bound to receive, by system_id: where receipts for transmitter binds go.
type Receivers = Arc<Mutex<HashMap<String, Vec<mpsc::Sender<Vec<u8>>>>>>;

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
        let accept = tokio::spawn(async move {
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
    let sequence = Arc::new(AtomicU32::new(1));
    let mut submits = 0u64;
    let stats = &shared.stats;
    let send = |frame: Frame| {
        let tx = tx.clone();
        async move {
            if let Ok(bytes) = encoded(&frame) {
                let _ = tx.send(bytes).await;
            }
        }
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
                        resp.status = code;
                    }
                    None => {
                        stats.binds.fetch_add(1, Ordering::Relaxed);
                        if bind.kind != BindKind::Transmitter {
                            shared
                                .receivers
                                .lock()
                                .entry(bind.system_id.clone())
                                .or_default()
                                .push(tx.clone());
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
                stats.submits.fetch_add(1, Ordering::Relaxed);
                submits += 1;
                if shared.config.disconnect_after.is_some_and(|n| submits >= n) {
                    stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    writer.abort();
                    break;
                }
                let window = shared.config.window;
                if window > 0 && outstanding.load(Ordering::Relaxed) >= window {
                    stats.throttled.fetch_add(1, Ordering::Relaxed);
                    send(answer(status::THROTTLED, "")).await;
                    continue;
                }
                let now = shared.origin.elapsed().as_nanos() as u64;
                let wants_receipt = sm.registered_delivery & 1 == 1;
                let decision = model.decide(now, 1, wants_receipt);
                let (frame, receipt) = match decision.reply {
                    Reply::Hang => {
                        stats.hung.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Reply::Reject(code) => {
                        let counter = if code == status::THROTTLED {
                            &stats.throttled
                        } else {
                            &stats.refused
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        (answer(code, ""), None)
                    }
                    Reply::Accept(_) => {
                        stats.accepted.fetch_add(1, Ordering::Relaxed);
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
                        if let Ok(bytes) = encoded(&frame) {
                            let _ = tx.send(bytes).await;
                        }
                        outstanding.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                if let Some((id, receipt_delay, outcome)) = receipt {
                    let target = if *kind == BindKind::Transmitter {
                        let receivers = shared.receivers.lock();
                        receivers
                            .get(system_id)
                            .and_then(|r| r.iter().find(|s| !s.is_closed()).cloned())
                    } else {
                        Some(tx.clone())
                    };
                    if let Some(target) = target {
                        let deliver = receipt_pdu(&sm, &id, outcome, sequence.clone());
                        let stats = shared.stats.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_nanos(delay + receipt_delay)).await;
                            if let Ok(bytes) = encoded(&deliver)
                                && target.send(bytes).await.is_ok()
                            {
                                stats.receipts.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                }
            }
            Body::EnquireLink => send(Frame::new(seq, Body::EnquireLinkResp)).await,
            Body::Unbind => {
                send(Frame::new(seq, Body::UnbindResp)).await;
                break;
            }
            Body::DeliverSmResp
            | Body::EnquireLinkResp
            | Body::GenericNack
            | Body::UnbindResp
            | Body::BindResp { .. }
            | Body::SubmitSmResp { .. } => {}
            Body::DeliverSm(_) | Body::Unsupported { .. } => {
                send(nack(status::INVALID_COMMAND_ID, seq)).await;
            }
        }
    }
    if let Some((_, system_id)) = &bound
        && let Some(list) = shared.receivers.lock().get_mut(system_id)
    {
        list.retain(|s| !s.same_channel(&tx));
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

fn nack(code: u32, sequence: u32) -> Frame {
    Frame {
        status: code,
        sequence,
        body: Body::GenericNack,
    }
}

/// The deliver_sm receipt for a submit: source and destination swapped, esm_class 0x04, the
/// standard text and the receipted_message_id and message_state TLVs.
fn receipt_pdu(
    submit: &ShortMessage,
    id: &str,
    outcome: ReceiptStatus,
    sequence: Arc<AtomicU32>,
) -> Frame {
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
        sequence.fetch_add(1, Ordering::Relaxed),
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
