//! One client session of the simulator: the session machine in the SMSC role, driven over its
//! TCP stream by one task. Answers due later wait in a heap (no task per answer); receipts go
//! to the system_id's store and come out on whichever of its sessions can receive.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smsroute_smpp::pdu::{BindKind, Body, Frame, ShortMessage, status};
use smsroute_smpp::server::{Admitted, Outbox, ReadBuffer, Timed, outbox_changed, sleep_until};
use smsroute_smpp::session::{CloseReason, Role, Session, SessionConfig, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a deliver_sm the client answered with an error waits before it is offered again.
const REOFFER_AFTER: Duration = Duration::from_secs(1);
use super::{MAX_HELD_ANSWERS, Shared, receipt_pdu};
use crate::{Reply, SimModel};

/// Where a bound session stands.
struct Bound {
    system_id: String,
    /// Its system_id's store (every bind kind sends receipts there).
    store: Arc<Outbox<Frame>>,
    /// Told when the store gets something (receivers only).
    changed: Option<watch::Receiver<u64>>,
}

/// Serves one client until it goes, or the session machine closes it.
pub(crate) async fn serve(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    number: u64,
    _admitted: Admitted,
) {
    let c = &shared.config;
    let config = SessionConfig {
        bind_timeout: c.bind_timeout,
        pdu_timeout: c.pdu_timeout,
        enquire_link: c.enquire_link,
        response_timeout: c.bind_timeout,
        ..SessionConfig::new(Role::Smsc)
    };
    let mut session = Session::new(config, Instant::now().into_std());
    let mut model = SimModel::new(c.behaviour.clone(), c.seed.wrapping_add(number));
    let mut bound: Option<Bound> = None;
    let mut answers: BinaryHeap<Reverse<Timed<Frame>>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut unacked: HashMap<u32, Frame> = HashMap::new();
    let mut submits = 0u64;
    let mut closed: Option<CloseReason> = None;
    let mut cut = false;
    let mut garbage_seen = 0;
    let mut buf = ReadBuffer::new();
    let (mut reader, mut writer) = stream.split();
    let stats = &shared.stats;
    'serve: loop {
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::BindRequest { sequence, bind } => {
                    let refuse = if c.system_id.as_ref().is_some_and(|id| *id != bind.system_id) {
                        Some(status::INVALID_SYSTEM_ID)
                    } else if c.password.as_ref().is_some_and(|pw| *pw != bind.password) {
                        Some(status::INVALID_PASSWORD)
                    } else {
                        None
                    };
                    if let Some(code) = refuse {
                        stats.binds_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            session = number, system_id = %bind.system_id,
                            status = status::name(code).unwrap_or("?"), "bind refused"
                        );
                        let _ = session.refuse_bind(sequence, bind.kind, code);
                        continue;
                    }
                    stats.binds.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        session = number, system_id = %bind.system_id, kind = ?bind.kind, "bound"
                    );
                    let _ = session.accept_bind(sequence, bind.kind, "smsroute-sim");
                    let store = shared.store(&bind.system_id);
                    let changed = (bind.kind != BindKind::Transmitter).then(|| store.subscribe());
                    bound = Some(Bound {
                        system_id: bind.system_id,
                        store,
                        changed,
                    });
                }
                SessionEvent::Request(Frame {
                    sequence,
                    body: Body::SubmitSm(sm),
                    ..
                }) => {
                    submits += 1;
                    if c.disconnect_after.is_some_and(|n| submits >= n) {
                        stats.carrier.submits.fetch_add(1, Ordering::Relaxed);
                        stats.carrier.segments.fetch_add(1, Ordering::Relaxed);
                        stats.disconnects.fetch_add(1, Ordering::Relaxed);
                        cut = true;
                        break 'serve;
                    }
                    let Some(b) = &bound else { continue };
                    let held = if c.window > 0 {
                        c.window
                    } else {
                        MAX_HELD_ANSWERS
                    };
                    let due = submit(&shared, &mut model, b, sm, sequence, answers.len() >= held);
                    match due {
                        Some((0, frame)) => {
                            let _ = session.respond(frame.sequence, frame.status, frame.body);
                        }
                        Some((delay, frame)) => {
                            order += 1;
                            let at = Instant::now() + Duration::from_nanos(delay);
                            answers.push(Reverse(Timed {
                                at,
                                order,
                                item: frame,
                            }));
                        }
                        None => {}
                    }
                }
                SessionEvent::Response(frame) => {
                    let refused = unacked.remove(&frame.sequence);
                    if let (Some(deliver), Some(b)) = (refused, &bound)
                        && frame.status != status::OK
                    {
                        // The client could not take it now (its router went away): kept, and
                        // offered again a moment later, to this session or the next bind.
                        let _ = b.store.schedule(Instant::now() + REOFFER_AFTER, deliver);
                    }
                }
                SessionEvent::Closed(reason) => closed = Some(reason),
                SessionEvent::Request(_) | SessionEvent::Bound { .. } => {}
            }
        }
        let garbage = session.garbage();
        if garbage > garbage_seen {
            stats
                .garbage
                .fetch_add(garbage - garbage_seen, Ordering::Relaxed);
            garbage_seen = garbage;
        }
        if session.is_closed() {
            break;
        }
        let now = Instant::now();
        while let Some(Reverse(next)) = answers.peek()
            && next.at <= now
        {
            let Some(Reverse(due)) = answers.pop() else {
                break;
            };
            let f = due.item;
            let _ = session.respond(f.sequence, f.status, f.body);
        }
        // Receipts that are due, while this session has room for them.
        let mut store_due = None;
        if let Some(b) = bound.as_mut()
            && let Some(changed) = b.changed.as_mut()
        {
            changed.borrow_and_update();
            let room = c.max_unacknowledged.saturating_sub(unacked.len());
            if session.can_send() {
                for mut deliver in b.store.take(now, room) {
                    let body = deliver.body.clone();
                    match session.request(body) {
                        Ok(sequence) => {
                            deliver.sequence = sequence;
                            unacked.insert(sequence, deliver);
                            stats.carrier.receipts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => b.store.give_back([deliver]),
                    }
                }
            }
            // Waking for the store only helps while this session can take from it.
            if unacked.len() < c.max_unacknowledged && session.can_send() {
                store_due = b.store.next_due();
            }
        }
        let wake = [
            session.poll_timeout().map(Instant::from_std),
            answers.peek().map(|Reverse(d)| d.at),
            store_due,
        ]
        .into_iter()
        .flatten()
        .min();
        let unwritten = session.poll_transmit();
        let writing = unwritten.is_some();
        let receiving = bound.as_ref().is_some_and(|b| {
            b.changed.is_some() && unacked.len() < c.max_unacknowledged && session.can_send()
        });
        tokio::select! {
            read = reader.read(buf.space()) => {
                session.handle_read(buf.filled(read), Instant::now().into_std());
            }
            written = writer.write(unwritten.unwrap_or_default()), if writing => {
                session.handle_write(written);
            }
            () = sleep_until(wake) => session.handle_timeout(Instant::now().into_std()),
            _ = outbox_changed(bound.as_mut().and_then(|b| b.changed.as_mut())), if receiving => {}
        }
    }
    if let Some(reason) = &closed
        && !matches!(
            reason,
            CloseReason::PeerClosed | CloseReason::UnboundByPeer | CloseReason::Unbound
        )
    {
        stats.sessions_dropped.fetch_add(1, Ordering::Relaxed);
        tracing::info!(session = number, %reason, "session closed");
    }
    // Receipts this session never had acknowledged go to another one of its system_id.
    if let Some(b) = &bound
        && !unacked.is_empty()
    {
        let mut back: Vec<(u32, Frame)> = unacked.drain().collect();
        back.sort_by_key(|(sequence, _)| std::cmp::Reverse(*sequence));
        b.store.give_back(back.into_iter().map(|(_, f)| f));
    }
    if !cut && let Some(rest) = session.poll_transmit() {
        // The unbind_resp, a last generic_nack: out if the client reads at once.
        let _ = tokio::time::timeout(Duration::from_millis(100), writer.write_all(rest)).await;
    }
}

/// Decides a submit's answer; `Some((delay, answer))`, `None` for a hang. Receipts go to the
/// system_id's store.
fn submit(
    shared: &Shared,
    model: &mut SimModel,
    bound: &Bound,
    sm: ShortMessage,
    sequence: u32,
    full: bool,
) -> Option<(u64, Frame)> {
    let stats = &shared.stats;
    let answer = |code: u32, id: String| {
        let mut f = Frame::new(sequence, Body::SubmitSmResp { message_id: id });
        f.status = code;
        f
    };
    stats.carrier.submits.fetch_add(1, Ordering::Relaxed);
    stats.carrier.segments.fetch_add(1, Ordering::Relaxed);
    if full {
        stats.carrier.count_refusal(status::THROTTLED);
        return Some((0, answer(status::THROTTLED, String::new())));
    }
    let now = shared.origin.elapsed().as_nanos() as u64;
    stats.rate.lock().add(now, 1);
    let wants_receipt = sm.registered_delivery & 1 == 1;
    let decision = model.decide_to(now, 1, wants_receipt, &sm.destination.addr);
    let delay = decision.respond_after;
    match decision.reply {
        Reply::Hang => {
            stats.carrier.hung.fetch_add(1, Ordering::Relaxed);
            None
        }
        Reply::Reject(code) => {
            stats.carrier.count_refusal(code);
            Some((delay, answer(code, String::new())))
        }
        Reply::Accept(_) => {
            stats.carrier.accepted.fetch_add(1, Ordering::Relaxed);
            if let Some(observer) = &shared.config.observer {
                (observer.0)(&sm, delay);
            }
            let id = format!("{:x}", shared.next_id.fetch_add(1, Ordering::Relaxed));
            if let Some(&(receipt_delay, outcome)) = decision.receipts.first() {
                let due = Instant::now() + Duration::from_nanos(delay + receipt_delay);
                let deliver = receipt_pdu(&sm, &id, outcome);
                shared.schedule(&bound.system_id, due, deliver);
            }
            Some((delay, answer(status::OK, id)))
        }
    }
}
