//! One client session: the session machine in the SMSC role, driven over its TCP stream by
//! one task. Submits are answered once their message is durable (the answers wait in a
//! `FuturesUnordered`, no task each); receipts and replies come out of the client's outbox
//! on its receiver and transceiver binds, and stay this session's until the client answers.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use smsroute_carrier::Carrier;
use smsroute_smpp::pdu::{Bind, BindKind, Body, Frame, ShortMessage, status};
use smsroute_smpp::server::{Admitted, ReadBuffer, outbox_changed, sleep_until};
use smsroute_smpp::session::{CloseReason, Role, Session, SessionConfig, SessionEvent};
use smsroute_smpp::sm::{smpp_time_text, text_of};
use smsroute_types::MessageId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::assemble::{Added, Assembler, Part};
use super::submit::{Answer, submit};
use crate::Hub;
use crate::clients::{BindSlot, Client, Outgoing};
use crate::front_metrics::Answered;
use crate::receipts::part_id;

/// A deliver_sm the client answered with an error is offered again after this.
const REOFFER_AFTER: Duration = Duration::from_secs(1);
/// A receipt whose message's submit_sm_resp is not written yet waits this long, then looks
/// again.
const ANSWER_FIRST: Duration = Duration::from_millis(20);
/// Deliver_sm one session has out unanswered at most.
const MAX_UNANSWERED_DELIVERIES: usize = 64;
/// The system_id the hub answers binds with.
const HUB_ID: &str = "smsroute";

/// A bound session's client, and the outbox news it listens to (receivers only).
struct Bound {
    slot: BindSlot,
    changed: Option<watch::Receiver<u64>>,
}

/// Serves one client until it goes, the session machine closes it, or the hub stops (then
/// its waiting submits are answered and it is unbound).
pub(crate) async fn serve<C: Carrier, S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: std::net::IpAddr,
    hub: Hub<C>,
    number: u64,
    _admitted: Admitted,
    mut stop: watch::Receiver<bool>,
) {
    let mut session = Session::new(SessionConfig::new(Role::Smsc), Instant::now().into_std());
    let mut bound: Option<Bound> = None;
    let mut assembler = Assembler::default();
    let mut answers: FuturesUnordered<BoxFuture<'static, Answer>> = FuturesUnordered::new();
    // Submits not answered yet: held parts and messages waiting to be durable.
    let mut unanswered = 0usize;
    let mut deliveries: HashMap<u32, Outgoing> = HashMap::new();
    let mut stopping = *stop.borrow();
    let mut unbound = false;
    let mut closed: Option<CloseReason> = None;
    let mut buf = ReadBuffer::new();
    let (mut reader, mut writer) = tokio::io::split(stream);
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::BindRequest { sequence, bind } => match login(&hub, &bind).await {
                    Ok(slot) => {
                        tracing::info!(
                            session = number, client = %slot.client().id,
                            kind = ?bind.kind, "client bound"
                        );
                        let _ = session.accept_bind(sequence, bind.kind, HUB_ID);
                        hub.metrics.sessions.increment(1.0);
                        let changed = (bind.kind != BindKind::Transmitter)
                            .then(|| slot.client().outbox.subscribe());
                        bound = Some(Bound { slot, changed });
                    }
                    Err(code) => {
                        let wait = hub.penalties.failed(peer, Instant::now());
                        tracing::warn!(
                            session = number, system_id = %bind.system_id, %peer,
                            status = status::name(code).unwrap_or("?"),
                            answered_after_ms = wait.as_millis() as u64, "bind refused"
                        );
                        tokio::time::sleep(wait).await;
                        let _ = session.refuse_bind(sequence, bind.kind, code);
                    }
                },
                SessionEvent::Request(Frame {
                    sequence,
                    body: Body::SubmitSm(sm),
                    ..
                }) => {
                    let Some(b) = &bound else { continue };
                    let client = b.slot.client();
                    // A full router refuses before the submit becomes a message: refusing
                    // costs less than taking, so overload does not eat the capacity.
                    let refuse = if stopping {
                        Some(status::QUEUE_FULL)
                    } else if unanswered >= client.window() as usize {
                        Some(status::THROTTLED)
                    } else if hub.router.refuse_if_full() {
                        Some(status::QUEUE_FULL)
                    } else {
                        None
                    };
                    if let Some(code) = refuse {
                        hub.metrics.smpp(answered(code), 1);
                        answer(&mut session, sequence, code, String::new());
                        continue;
                    }
                    unanswered += 1;
                    match take_part(&hub, b, &mut assembler, sm, sequence) {
                        Taken::Held => {}
                        Taken::Waiting(future) => answers.push(future),
                        Taken::Refused(sequences, code) => {
                            unanswered -= sequences.len();
                            hub.metrics.smpp(answered(code), sequences.len() as u64);
                            for s in sequences {
                                answer(&mut session, s, code, String::new());
                            }
                        }
                    }
                }
                SessionEvent::Request(Frame {
                    sequence,
                    body: Body::QuerySm { message_id, .. },
                    ..
                }) => {
                    let Some(b) = &bound else { continue };
                    let (code, body) = query(&hub, b.slot.client(), message_id).await;
                    let _ = session.respond(sequence, code, body);
                }
                SessionEvent::Request(Frame {
                    sequence,
                    body: Body::CancelSm { message_id, .. },
                    ..
                }) => {
                    let Some(b) = &bound else { continue };
                    let code = cancel(&hub, b.slot.client(), &message_id).await;
                    let _ = session.respond(sequence, code, Body::CancelSmResp);
                }
                SessionEvent::Response(frame) => {
                    let Some(out) = deliveries.remove(&frame.sequence) else {
                        continue;
                    };
                    hub.metrics
                        .delivery(out.message.is_some(), frame.status == status::OK);
                    if frame.status == status::OK {
                        if out.ack > 0 {
                            let _ = hub.receipts_answered.send(out.ack).await;
                        }
                    } else if let Some(b) = &bound {
                        // The client cannot take it now: offered again a moment later, to
                        // this session or another bind of the client.
                        let outbox = &b.slot.client().outbox;
                        if let Err(out) = outbox.schedule(Instant::now() + REOFFER_AFTER, out) {
                            outbox.give_back([out]);
                        }
                    }
                }
                SessionEvent::Closed(reason) => closed = Some(reason),
                SessionEvent::Request(_) | SessionEvent::Bound { .. } => {}
            }
        }
        if session.is_closed() {
            break;
        }
        let now = Instant::now();
        let expired = assembler.expire(now);
        unanswered -= expired.len();
        hub.metrics
            .smpp(answered(status::SUBMIT_FAILED), expired.len() as u64);
        for s in expired {
            answer(&mut session, s, status::SUBMIT_FAILED, String::new());
        }
        if stopping && !unbound && answers.is_empty() {
            unbound = true;
            for s in assembler.drain() {
                unanswered -= 1;
                hub.metrics.smpp(answered(status::QUEUE_FULL), 1);
                answer(&mut session, s, status::QUEUE_FULL, String::new());
            }
            session.unbind(now.into_std());
        }
        let outbox_due = offer(
            &mut session,
            bound.as_mut(),
            &mut deliveries,
            &hub.unanswered,
            now,
        );
        let wake = [
            session.poll_timeout().map(Instant::from_std),
            assembler.next_deadline(),
            outbox_due,
        ]
        .into_iter()
        .flatten()
        .min();
        let unwritten = session.poll_transmit();
        let writing = unwritten.is_some();
        let receiving = bound.as_ref().is_some_and(|b| b.changed.is_some())
            && deliveries.len() < MAX_UNANSWERED_DELIVERIES
            && session.can_send();
        tokio::select! {
            read = reader.read(buf.space()) => {
                session.handle_read(buf.filled(read), Instant::now().into_std());
            }
            written = writer.write(unwritten.unwrap_or_default()), if writing => {
                session.handle_write(written);
            }
            Some(first) = answers.next(), if !answers.is_empty() => {
                // Every answer ready now goes in the same write (a journal sync makes many
                // messages durable at once).
                let mut next = Some(first);
                while let Some(done) = next {
                    unanswered -= done.sequences.len();
                    write_answer(&mut session, &hub, done);
                    next = answers.next().now_or_never().flatten();
                }
            }
            () = sleep_until(wake) => session.handle_timeout(Instant::now().into_std()),
            _ = outbox_changed(bound.as_mut().and_then(|b| b.changed.as_mut())), if receiving => {}
            _ = stop.changed(), if !stopping => stopping = true,
        }
    }
    if bound.is_some() {
        hub.metrics.sessions.decrement(1.0);
    }
    if let Some(reason) = &closed
        && !matches!(
            reason,
            CloseReason::PeerClosed | CloseReason::UnboundByPeer | CloseReason::Unbound
        )
    {
        tracing::info!(session = number, %reason, "client session closed");
    }
    // Deliveries the client never answered go to another of its binds.
    if let Some(b) = &bound
        && !deliveries.is_empty()
    {
        let mut back: Vec<(u32, Outgoing)> = deliveries.drain().collect();
        back.sort_by_key(|(sequence, _)| std::cmp::Reverse(*sequence));
        b.slot
            .client()
            .outbox
            .give_back(back.into_iter().map(|(_, d)| d));
    }
    if let Some(rest) = session.poll_transmit() {
        let _ = tokio::time::timeout(Duration::from_millis(100), writer.write_all(rest)).await;
    }
}

/// The message an id a client was given names (`N`, or `N-K` for part K of message N).
fn message_of(part_id: &str) -> Option<MessageId> {
    let whole = part_id.split_once('-').map_or(part_id, |(id, _)| id);
    whole.parse().ok().map(MessageId)
}

/// Answers query_sm: the message's state (`docs/serve.md`), or `ESME_RQUERYFAIL` when it is
/// not the client's or not known.
async fn query<C: Carrier>(hub: &Hub<C>, client: &Client, message_id: String) -> (u32, Body) {
    let view = match message_of(&message_id) {
        Some(id) => crate::lookup::view(hub, client, id).await,
        None => None,
    };
    let Some(view) = view else {
        let body = Body::QuerySmResp {
            message_id,
            final_date: String::new(),
            message_state: 0,
            error_code: 0,
        };
        return (status::QUERY_FAILED, body);
    };
    let body = Body::QuerySmResp {
        message_id,
        final_date: view.finished.map(smpp_time_text).unwrap_or_default(),
        message_state: message_state(&view),
        error_code: 0,
    };
    (status::OK, body)
}

/// The SMPP 3.4 message_state of a message (5.2.28).
fn message_state(view: &crate::MessageView) -> u8 {
    match (view.state, view.reason) {
        ("delivered", _) => 2,
        ("expired", _) => 3,
        ("failed", Some("cancelled")) => 4,
        ("failed", _) => 5,
        ("sent", _) => 6,
        _ => 1,
    }
}

/// Answers cancel_sm: `ESME_ROK` once the message is cancelled (every part of a multipart
/// one), `ESME_RCANCELFAIL` when a carrier has it, it finished, or it is not the client's.
async fn cancel<C: Carrier>(hub: &Hub<C>, client: &Client, message_id: &str) -> u32 {
    let Some(id) = message_of(message_id) else {
        return status::CANCEL_FAILED;
    };
    match crate::lookup::cancel(hub, client, id).await {
        Ok(()) => status::OK,
        Err(_) => status::CANCEL_FAILED,
    }
}

/// The client a bind logs in as, and one of its binds; else the status to refuse it with.
async fn login<C: Carrier>(hub: &Hub<C>, bind: &Bind) -> Result<BindSlot, u32> {
    let client = hub
        .clients
        .load()
        .by_system_id
        .get(&bind.system_id)
        .cloned()
        .ok_or(status::INVALID_SYSTEM_ID)?;
    if !client.password_matches(&bind.password).await {
        return Err(status::INVALID_PASSWORD);
    }
    client.take_bind().ok_or(status::ALREADY_BOUND)
}

enum Taken {
    /// A part held until the rest of its message comes.
    Held,
    /// The message is in; its parts are answered when the future resolves.
    Waiting(BoxFuture<'static, Answer>),
    /// These submits are answered with this status now.
    Refused(Vec<u32>, u32),
}

fn take_part<C: Carrier>(
    hub: &Hub<C>,
    bound: &Bound,
    assembler: &mut Assembler,
    sm: ShortMessage,
    sequence: u32,
) -> Taken {
    let (concat, text) = text_of(&sm);
    let part = Part {
        sequence,
        text,
        receipt: sm.registered_delivery,
    };
    let parts = match concat {
        None => vec![part],
        Some(concat) => match assembler.add(
            concat,
            &sm.source.addr,
            &sm.destination.addr,
            part,
            Instant::now(),
        ) {
            Added::Held => return Taken::Held,
            Added::Refused(code) => return Taken::Refused(vec![sequence], code),
            Added::Complete(parts) => parts,
        },
    };
    let sequences: Vec<u32> = parts.iter().map(|p| p.sequence).collect();
    match submit(hub, bound.slot.client(), &sm, parts) {
        Ok(future) => Taken::Waiting(future),
        Err(code) => Taken::Refused(sequences, code),
    }
}

/// What a submit's status counts as.
fn answered(code: u32) -> Answered {
    match code {
        status::OK => Answered::Accepted,
        status::QUEUE_FULL | status::SYSTEM_ERROR => Answered::Unavailable,
        _ => Answered::Refused,
    }
}

/// The submit_sm_resp of every part of a message, then lets its receipts go.
fn write_answer<C: Carrier>(session: &mut Session, hub: &Hub<C>, done: Answer) {
    hub.metrics
        .smpp(answered(done.status), done.sequences.len() as u64);
    let parts = done.sequences.len();
    for (k, s) in done.sequences.into_iter().enumerate() {
        let id = if done.status == status::OK {
            part_id(done.id, parts, k + 1)
        } else {
            String::new()
        };
        answer(session, s, done.status, id);
    }
    drop(done.written);
}

fn answer(session: &mut Session, sequence: u32, code: u32, message_id: String) {
    let _ = session.respond(sequence, code, Body::SubmitSmResp { message_id });
}

/// Sends the client's due deliver_sm while the session has room; when the outbox should be
/// looked at again.
fn offer(
    session: &mut Session,
    bound: Option<&mut Bound>,
    deliveries: &mut HashMap<u32, Outgoing>,
    unanswered: &dashmap::DashSet<MessageId>,
    now: Instant,
) -> Option<Instant> {
    let b = bound?;
    let changed = b.changed.as_mut()?;
    changed.borrow_and_update();
    let outbox = &b.slot.client().outbox;
    if !session.can_send() {
        return None;
    }
    let room = MAX_UNANSWERED_DELIVERIES.saturating_sub(deliveries.len());
    for out in outbox.take(now, room) {
        if out.message.is_some_and(|id| unanswered.contains(&id)) {
            // Its submit_sm_resp is not written yet: the client could not match it.
            if let Err(out) = outbox.schedule(now + ANSWER_FIRST, out) {
                outbox.give_back([out]);
            }
            continue;
        }
        match session.request(Body::DeliverSm(out.sm.clone())) {
            Ok(sequence) => {
                deliveries.insert(sequence, out);
            }
            Err(_) => outbox.give_back([out]),
        }
    }
    (deliveries.len() < MAX_UNANSWERED_DELIVERIES && session.can_send())
        .then(|| outbox.next_due())
        .flatten()
}
