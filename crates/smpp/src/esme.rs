//! The task that keeps one ESME session connected and bound: the [`Session`] machine driven
//! over a TCP stream. One task owns the socket: it reads only while the engine takes what it
//! reads (receipts wait for room in the sink, and the SMSC's writes wait in TCP), writes what
//! the machine has, takes submits while the machine can send, and runs the machine's timers.
//! Nothing in it waits on a peer without a timer: a close returns by its grace whatever the
//! SMSC does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smsroute_carrier::{Inbound, InboundSink, Receipt, ReceiptAck, ReceiptSink, SubmitError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;

use crate::client::{EsmeConfig, PartAnswer, SessionHandle, Shared, Submit};
use crate::pdu::{Bind, Body, Frame, ShortMessage, status};
use crate::session::{CloseReason, Role, Session, SessionConfig, SessionEvent};
use crate::sm::parse_receipt;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Most queued submits encoded in one turn (so pipelined submits leave in few writes).
const SUBMIT_BATCH: usize = 512;

/// A submit sent and not yet answered.
struct Pending {
    answer: oneshot::Sender<PartAnswer>,
    _permit: OwnedSemaphorePermit,
    sent: Instant,
    receipt: bool,
}

/// Most receipts handed to the engine and not yet answered by it (it answers once what each
/// did is durable); at this many the session reads nothing more until answers come.
const MAX_UNANSWERED_RECEIPTS: usize = 4096;

/// Where the engine's answers to receipts come back: (sequence number, taken).
type Answers = mpsc::UnboundedSender<(u32, bool)>;

/// A deliver_sm the engine had no room for yet: the session reads nothing more until it is
/// taken, then answers it (a receipt once the engine answers).
enum Held {
    Receipt(ReceiptSink, (Receipt, ReceiptAck), u32),
    Inbound(InboundSink, Inbound, u32),
}

/// Why a connection never got bound.
#[derive(Debug, thiserror::Error)]
enum BindFailure {
    #[error("connect to {host}:{port} timed out")]
    ConnectTimeout { host: String, port: u16 },
    #[error("connect to {host}:{port}: {error}")]
    Connect {
        host: String,
        port: u16,
        error: std::io::Error,
    },
    #[error("bind: {0}")]
    Bind(#[from] crate::session::SessionError),
    /// Refused, unanswered, or the connection went first.
    #[error(transparent)]
    Closed(#[from] CloseReason),
}

/// How one connection ended.
enum Ended {
    /// It never bound: why.
    NotBound(BindFailure),
    /// It was bound, then ended.
    Lost(CloseReason),
}

/// Keeps one session connected and bound until the carrier closes.
pub(crate) async fn supervise(handle: Arc<SessionHandle>, shared: Arc<Shared>) {
    let config = &shared.config;
    let endpoint = &config.endpoint;
    let mut backoff = config.reconnect_min;
    loop {
        if handle.closing.load(Ordering::Acquire) {
            return;
        }
        let ended = match connect(config).await {
            Ok(stream) => run(stream, &handle, &shared).await,
            Err(reason) => Ended::NotBound(reason),
        };
        let closing = handle.closing.load(Ordering::Acquire);
        match ended {
            Ended::NotBound(reason) => {
                shared.stats.bind_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    carrier = %shared.id, host = %endpoint.host, port = endpoint.port,
                    system_id = %endpoint.system_id, %reason, retry_in = ?backoff,
                    "SMPP bind failed"
                );
                *shared.down_reason.lock() = reason.to_string();
            }
            Ended::Lost(reason) => {
                backoff = config.reconnect_min;
                shared.stats.link_losses.fetch_add(1, Ordering::Relaxed);
                if closing {
                    tracing::info!(carrier = %shared.id, %reason, "SMPP session unbound");
                } else {
                    tracing::warn!(carrier = %shared.id, %reason, "SMPP link lost, reconnecting");
                    *shared.down_reason.lock() = format!("link lost: {reason}");
                }
            }
        }
        if closing {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = handle.close_now.notified() => return,
        }
        backoff = (backoff * 2).min(config.reconnect_max);
    }
}

async fn connect(config: &EsmeConfig) -> Result<TcpStream, BindFailure> {
    let (host, port) = (&config.endpoint.host, config.endpoint.port);
    let connect = TcpStream::connect((host.as_str(), port));
    let stream = tokio::time::timeout(config.response_timeout, connect)
        .await
        .map_err(|_| BindFailure::ConnectTimeout {
            host: host.clone(),
            port,
        })?
        .map_err(|error| BindFailure::Connect {
            host: host.clone(),
            port,
            error,
        })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn session_config(config: &EsmeConfig) -> SessionConfig {
    SessionConfig {
        bind_timeout: config.response_timeout,
        pdu_timeout: config.response_timeout,
        enquire_link: config.enquire_link,
        response_timeout: config.response_timeout,
        ..SessionConfig::new(Role::Esme)
    }
}

/// Binds over `stream` and serves the session until it ends.
async fn run(mut stream: TcpStream, handle: &SessionHandle, shared: &Shared) -> Ended {
    let config = &shared.config;
    let mut session = Session::new(session_config(config), Instant::now().into_std());
    let bind = Bind {
        kind: config.bind_kind,
        system_id: config.endpoint.system_id.clone(),
        password: config.endpoint.password.clone(),
        system_type: config.endpoint.system_type.clone(),
        interface_version: 0x34,
    };
    if let Err(e) = session.bind(bind, Instant::now().into_std()) {
        return Ended::NotBound(e.into());
    }
    let (inbox_tx, mut inbox) = mpsc::channel::<Submit>(handle.window_size + 1);
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<(u32, bool)>();
    let mut unanswered = 0usize;
    let mut pending: HashMap<u32, Pending> = HashMap::with_capacity(handle.window_size);
    let mut held: Option<Held> = None;
    let mut bound = false;
    let mut closed: Option<CloseReason> = None;
    let mut garbage_seen = 0;
    let scan_every =
        (config.submit_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut next_scan = Instant::now() + scan_every;
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut reader, mut writer) = stream.split();
    loop {
        while held.is_none() && unanswered < MAX_UNANSWERED_RECEIPTS {
            let Some(event) = session.poll_event() else {
                break;
            };
            match event {
                SessionEvent::Bound { kind } => {
                    bound = true;
                    shared.stats.binds.fetch_add(1, Ordering::Relaxed);
                    let e = &config.endpoint;
                    tracing::info!(
                        carrier = %shared.id, host = %e.host, port = e.port,
                        system_id = %e.system_id, ?kind, "SMPP session bound"
                    );
                    handle.link.store(Some(Arc::new(inbox_tx.clone())));
                }
                SessionEvent::Response(frame) => answer(&mut pending, frame, shared),
                SessionEvent::Request(Frame {
                    sequence,
                    body: Body::DeliverSm(sm),
                    ..
                }) => match deliver(sm, sequence, &answers_tx, shared) {
                    HandOver::Answer(status) => {
                        let _ = session.respond(sequence, status, Body::DeliverSmResp);
                    }
                    HandOver::Handed => {
                        unanswered += 1;
                        if unanswered == MAX_UNANSWERED_RECEIPTS {
                            session.hold_input();
                        }
                    }
                    HandOver::Held(waiting) => {
                        held = Some(waiting);
                        session.hold_input();
                    }
                },
                SessionEvent::Closed(reason) => closed = Some(reason),
                SessionEvent::Request(_) | SessionEvent::BindRequest { .. } => {}
            }
        }
        let garbage = session.garbage();
        if garbage > garbage_seen {
            shared
                .stats
                .garbage
                .fetch_add(garbage - garbage_seen, Ordering::Relaxed);
            garbage_seen = garbage;
        }
        if session.is_closed() {
            break;
        }
        let wake = session
            .poll_timeout()
            .map(Instant::from_std)
            .map_or(next_scan, |t| t.min(next_scan));
        let unwritten = session.poll_transmit();
        let writing = unwritten.is_some();
        tokio::select! {
            read = reader.read(&mut buf), if held.is_none() && unanswered < MAX_UNANSWERED_RECEIPTS => {
                let read = read.map(|n| &buf[..n]);
                session.handle_read(read, Instant::now().into_std());
            }
            written = writer.write(unwritten.unwrap_or_default()), if writing => {
                session.handle_write(written);
            }
            Some(submit) = inbox.recv(), if session.can_send() => {
                let now = Instant::now();
                send(&mut session, &mut pending, submit, now);
                // Whatever else is queued goes in the same write.
                for _ in 1..SUBMIT_BATCH {
                    if !session.can_send() {
                        break;
                    }
                    match inbox.try_recv() {
                        Ok(submit) => send(&mut session, &mut pending, submit, now),
                        Err(_) => break,
                    }
                }
            }
            () = room(&held), if held.is_some() => {
                if let Some(h) = held.take() {
                    match hand_over(h, &mut session, shared) {
                        HandOver::Held(h) => held = Some(h),
                        handed => {
                            unanswered += usize::from(matches!(handed, HandOver::Handed));
                            if unanswered < MAX_UNANSWERED_RECEIPTS {
                                session.resume_input(Instant::now().into_std());
                            }
                        }
                    }
                }
            }
            Some(first) = answers.recv() => {
                // Every answer ready now goes in the same write (a journal sync answers many).
                let mut next = Some(first);
                while let Some((sequence, taken)) = next {
                    // Not taken (the router went away first): the SMSC offers it again.
                    let status = if taken { status::OK } else { status::TEMPORARY_APP_ERROR };
                    let _ = session.respond(sequence, status, Body::DeliverSmResp);
                    if unanswered == MAX_UNANSWERED_RECEIPTS && held.is_none() {
                        session.resume_input(Instant::now().into_std());
                    }
                    unanswered -= 1;
                    next = answers.try_recv().ok();
                }
            }
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                session.handle_timeout(now.into_std());
                if now >= next_scan {
                    expire(&mut pending, config.submit_timeout, now);
                    next_scan = now + scan_every;
                }
            }
            () = handle.close_now.notified() => session.unbind(Instant::now().into_std()),
        }
    }
    handle.link.store(None);
    // Submits that never left were not sent: the engine may send them elsewhere.
    inbox.close();
    while let Ok(submit) = inbox.try_recv() {
        let _ = submit
            .answer
            .send(Err(SubmitError::Unavailable("SMPP link went down")));
    }
    shared
        .stats
        .lost_in_flight
        .fetch_add(pending.len() as u64, Ordering::Relaxed);
    for (_, p) in pending.drain() {
        let _ = p.answer.send(Err(SubmitError::ConnectionLost));
    }
    // What is left to say (an unbind_resp, a generic_nack) goes out if the peer reads at once.
    if let Some(rest) = session.poll_transmit() {
        let _ = tokio::time::timeout(Duration::from_millis(100), writer.write_all(rest)).await;
    }
    let reason = closed.unwrap_or(CloseReason::Local("ended"));
    if bound {
        Ended::Lost(reason)
    } else {
        Ended::NotBound(reason.into())
    }
}

/// Sends one part, or answers it at once when the session cannot take it.
fn send(session: &mut Session, pending: &mut HashMap<u32, Pending>, submit: Submit, now: Instant) {
    match session.request(Body::SubmitSm(submit.part)) {
        Ok(sequence) => {
            pending.insert(
                sequence,
                Pending {
                    answer: submit.answer,
                    _permit: submit.permit,
                    sent: now,
                    receipt: submit.receipt,
                },
            );
        }
        Err(crate::session::SessionError::Pdu(_)) => {
            let _ = submit.answer.send(Err(SubmitError::Rejected {
                status: status::INVALID_MESSAGE_LENGTH,
            }));
        }
        Err(_) => {
            let _ = submit
                .answer
                .send(Err(SubmitError::Unavailable("SMPP link went down")));
        }
    }
}

/// The SMSC answered one of our submits (or nacked it).
fn answer(pending: &mut HashMap<u32, Pending>, frame: Frame, shared: &Shared) {
    let Some(p) = pending.remove(&frame.sequence) else {
        shared.stats.unmatched.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let result = match frame.body {
        Body::SubmitSmResp { message_id } if frame.status == status::OK => {
            if p.receipt {
                shared.aliases.lock().learn(&message_id);
            }
            Ok(message_id.into_boxed_str())
        }
        _ => Err(SubmitError::Rejected {
            status: if frame.status == status::OK {
                status::SYSTEM_ERROR
            } else {
                frame.status
            },
        }),
    };
    let _ = p.answer.send(result);
}

/// Submits unanswered for longer than `timeout` give their window slot back as timed out.
fn expire(pending: &mut HashMap<u32, Pending>, timeout: Duration, now: Instant) {
    let old: Vec<u32> = pending
        .iter()
        .filter(|(_, p)| now.duration_since(p.sent) > timeout)
        .map(|(sequence, _)| *sequence)
        .collect();
    for sequence in old {
        if let Some(p) = pending.remove(&sequence) {
            let _ = p.answer.send(Err(SubmitError::Timeout));
        }
    }
}

/// A deliver_sm for the engine: handed over at once if its sink has room (a receipt is then
/// answered when the engine answers it, through `answers`), else held.
fn deliver(sm: ShortMessage, sequence: u32, answers: &Answers, shared: &Shared) -> HandOver {
    let held = match parse_receipt(&sm) {
        Some(r) => {
            // Only a text id may be another form of a known id. A TLV id is exact: resolving
            // it could turn a receipt that beat its own submit_sm_resp into an alias of an
            // older message's id.
            let alias = (!r.exact)
                .then(|| shared.aliases.lock().resolve(&r.id))
                .flatten();
            let receipt = Receipt {
                message_id: alias.unwrap_or_else(|| r.id.into_boxed_str()),
                status: r.status,
                error: r.error,
                possible_duplicate: sm.possible_duplicate,
            };
            // Bound before the engine attached (a router starting): the SMSC keeps it.
            let Some(sink) = shared.sink.lock().clone() else {
                return HandOver::Answer(status::TEMPORARY_APP_ERROR);
            };
            let answers = answers.clone();
            let ack = ReceiptAck::new(move |taken| {
                let _ = answers.send((sequence, taken));
            });
            Held::Receipt(sink, (receipt, ack), sequence)
        }
        None => {
            shared
                .stats
                .mobile_originated
                .fetch_add(1, Ordering::Relaxed);
            let (_, text) = crate::sm::text_of(&sm);
            let inbound = Inbound {
                from: sm.source.addr,
                to: sm.destination.addr,
                text,
            };
            let Some(sink) = shared.inbound.lock().clone() else {
                return HandOver::Answer(status::TEMPORARY_APP_ERROR);
            };
            Held::Inbound(sink, inbound, sequence)
        }
    };
    try_hand_over(held, shared)
}

/// What became of a held deliver_sm.
enum HandOver {
    /// Taken (or not wanted): answer it with this status.
    Answer(u32),
    /// A receipt the engine took: answered when the engine answers it.
    Handed,
    /// Its sink is full: still held.
    Held(Held),
}

/// Tries to give a held deliver_sm to the engine. A receipt whose engine is gone (a router
/// that crashed) drops its token, which answers it with a temporary error, so the SMSC keeps
/// it for the next bind.
fn try_hand_over(held: Held, shared: &Shared) -> HandOver {
    use mpsc::error::TrySendError;
    match held {
        Held::Receipt(sink, receipt, sequence) => match sink.try_send(receipt) {
            Ok(()) => {
                shared.stats.receipts.fetch_add(1, Ordering::Relaxed);
                HandOver::Handed
            }
            Err(TrySendError::Full(receipt)) => {
                HandOver::Held(Held::Receipt(sink, receipt, sequence))
            }
            Err(TrySendError::Closed(_)) => HandOver::Handed,
        },
        Held::Inbound(sink, inbound, sequence) => match sink.try_send(inbound) {
            Ok(()) => HandOver::Answer(status::OK),
            Err(TrySendError::Closed(_)) => HandOver::Answer(status::TEMPORARY_APP_ERROR),
            Err(TrySendError::Full(inbound)) => {
                HandOver::Held(Held::Inbound(sink, inbound, sequence))
            }
        },
    }
}

/// Hands a held deliver_sm over once there is room, and answers it (a receipt: when the
/// engine does); still held if another session took the room first.
fn hand_over(held: Held, session: &mut Session, shared: &Shared) -> HandOver {
    let sequence = match &held {
        Held::Receipt(_, _, s) | Held::Inbound(_, _, s) => *s,
    };
    let handed = try_hand_over(held, shared);
    if let HandOver::Answer(status) = handed {
        let _ = session.respond(sequence, status, Body::DeliverSmResp);
    }
    handed
}

/// Resolves when the held deliver_sm's sink has room (or is gone).
async fn room(held: &Option<Held>) {
    match held {
        Some(Held::Receipt(sink, ..)) => drop(sink.reserve().await),
        Some(Held::Inbound(sink, ..)) => drop(sink.reserve().await),
        None => std::future::pending().await,
    }
}
