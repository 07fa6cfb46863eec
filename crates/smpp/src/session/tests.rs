use std::time::Duration;

use super::*;
use crate::pdu::{Address, ShortMessage};

const S: Duration = Duration::from_secs(1);

fn bind(kind: BindKind) -> Bind {
    Bind {
        kind,
        system_id: "acme".into(),
        password: "secret".into(),
        system_type: String::new(),
        interface_version: 0x34,
    }
}

fn sm(text: &str) -> ShortMessage {
    ShortMessage {
        source: Address {
            ton: 5,
            npi: 0,
            addr: "ACME".into(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: "447700900123".into(),
        },
        esm_class: 0,
        registered_delivery: 1,
        data_coding: 0,
        short_message: text.as_bytes().to_vec(),
        message_payload: None,
        receipted_message_id: None,
        message_state: None,
        possible_duplicate: false,
        sar: None,
        schedule_delivery_time: String::new(),
        validity_period: String::new(),
    }
}

/// Everything `from` has to write, as bytes (marked written).
fn take(from: &mut Session) -> Vec<u8> {
    let bytes = from.poll_transmit().map(<[u8]>::to_vec).unwrap_or_default();
    from.advance_transmit(bytes.len());
    bytes
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(Frame::decode(&bytes[at..at + len]).unwrap());
        at += len;
    }
    out
}

fn events(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// An ESME and an SMSC bound as transceivers at `now`.
fn bound_pair(now: Instant) -> (Session, Session) {
    let mut esme = Session::new(SessionConfig::new(Role::Esme), now);
    let mut smsc = Session::new(SessionConfig::new(Role::Smsc), now);
    esme.bind(bind(BindKind::Transceiver), now).unwrap();
    smsc.handle_input(&take(&mut esme), now);
    let Some(SessionEvent::BindRequest { sequence, bind }) = smsc.poll_event() else {
        panic!("a bind request")
    };
    smsc.accept_bind(sequence, bind.kind, "smsc").unwrap();
    esme.handle_input(&take(&mut smsc), now);
    assert_eq!(
        esme.poll_event(),
        Some(SessionEvent::Bound {
            kind: BindKind::Transceiver
        })
    );
    (esme, smsc)
}

/// A 16-byte header with the given fields, and `body` after it.
fn raw(id: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn both_roles_answer_a_bad_pdu_the_same_way() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(now);
    for side in [&mut esme, &mut smsc] {
        // A submit_sm / deliver_sm whose body is cut short: the boundary is known.
        side.handle_input(&raw(0x0000_0004, 77, &[1, 2]), now);
        side.handle_input(&raw(0x0000_0005, 78, &[1, 2]), now);
        // A command nobody here handles (replace_sm), and a response to nothing.
        side.handle_input(&raw(0x0000_0007, 79, &[]), now);
        side.handle_input(&raw(0x8000_0007, 80, &[]), now);
        let answers = frames(&take(side));
        let nacks: Vec<(u32, u32)> = answers
            .iter()
            .map(|f| {
                assert_eq!(f.body, Body::GenericNack);
                (f.sequence, f.status)
            })
            .collect();
        assert_eq!(
            nacks,
            [
                (77, status::INVALID_COMMAND_LENGTH),
                (78, status::INVALID_COMMAND_LENGTH),
                (79, status::INVALID_COMMAND_ID),
            ]
        );
        assert_eq!(side.garbage(), 2);
        assert!(side.is_bound(), "the session goes on");

        // A length that cannot be: nack, and closed (the next PDU cannot be found).
        side.handle_input(&[0, 0, 0, 3, 9, 9, 9, 9], now);
        let answers = frames(&take(side));
        assert_eq!(answers.len(), 1);
        assert_eq!(
            (answers[0].body.clone(), answers[0].status),
            (Body::GenericNack, status::INVALID_COMMAND_LENGTH)
        );
        assert_eq!(
            events(side),
            [SessionEvent::Closed(CloseReason::BadLength(3))]
        );
    }
}

#[test]
fn requests_outside_the_bind_state_are_answered_here() {
    let now = Instant::now();
    // An SMSC gets a submit before any bind; an ESME bound as transmitter gets a deliver_sm.
    let mut smsc = Session::new(SessionConfig::new(Role::Smsc), now);
    let mut submit = Vec::new();
    Frame::new(5, Body::SubmitSm(sm("hi")))
        .encode(&mut submit)
        .unwrap();
    smsc.handle_input(&submit, now);
    let answer = &frames(&take(&mut smsc))[0];
    assert_eq!(
        (answer.sequence, answer.status),
        (5, status::INVALID_BIND_STATUS)
    );
    assert!(matches!(answer.body, Body::SubmitSmResp { .. }));
    assert!(events(&mut smsc).is_empty(), "nothing for the application");

    let mut esme = Session::new(SessionConfig::new(Role::Esme), now);
    esme.bind(bind(BindKind::Transmitter), now).unwrap();
    let bind_seq = frames(&take(&mut esme))[0].sequence;
    let mut resp = Vec::new();
    let ok = Body::BindResp {
        kind: BindKind::Transmitter,
        system_id: "smsc".into(),
    };
    Frame::new(bind_seq, ok).encode(&mut resp).unwrap();
    Frame::new(9, Body::DeliverSm(sm("id:1 stat:DELIVRD")))
        .encode(&mut resp)
        .unwrap();
    esme.handle_input(&resp, now);
    let answer = &frames(&take(&mut esme))[0];
    assert_eq!(
        (answer.sequence, answer.status, answer.body.clone()),
        (9, status::INVALID_BIND_STATUS, Body::DeliverSmResp)
    );
    // And a second bind at a bound SMSC is refused as already bound.
    let (_, mut smsc) = bound_pair(now);
    let mut again = Vec::new();
    Frame::new(3, Body::Bind(bind(BindKind::Receiver)))
        .encode(&mut again)
        .unwrap();
    smsc.handle_input(&again, now);
    assert_eq!(frames(&take(&mut smsc))[0].status, status::ALREADY_BOUND);
}

#[test]
fn a_peer_that_never_binds_is_closed_at_the_bind_timeout() {
    let now = Instant::now();
    let mut smsc = Session::new(SessionConfig::new(Role::Smsc), now);
    assert_eq!(smsc.poll_timeout(), Some(now + 10 * S));
    smsc.handle_timeout(now + 9 * S);
    assert!(!smsc.is_closed());
    smsc.handle_timeout(now + 10 * S);
    assert_eq!(
        events(&mut smsc),
        [SessionEvent::Closed(CloseReason::BindTimeout(10 * S))]
    );
    assert_eq!(smsc.poll_timeout(), None);
}

#[test]
fn a_pdu_sent_one_byte_at_a_time_is_cut_off() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(now);
    let mut link = Vec::new();
    Frame::new(40, Body::EnquireLink).encode(&mut link).unwrap();
    // A whole PDU at once is fine, and leaves no timer behind.
    smsc.handle_input(&link, now);
    assert_eq!(frames(&take(&mut smsc))[0].body, Body::EnquireLinkResp);
    // One byte a second: the PDU's timer runs from its first byte.
    for (i, byte) in link.iter().take(10).enumerate() {
        smsc.handle_input(&[*byte], now + S * i as u32);
        smsc.handle_timeout(now + S * i as u32);
    }
    assert!(!smsc.is_closed());
    assert_eq!(smsc.poll_timeout(), Some(now + 10 * S));
    smsc.handle_timeout(now + 10 * S);
    assert_eq!(
        events(&mut smsc),
        [SessionEvent::Closed(CloseReason::PduTimeout(10 * S))]
    );
    drop(esme.poll_event());
}

#[test]
fn an_unanswered_enquire_link_declares_the_link_dead() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(now);
    // Silence for the enquire_link interval: a probe goes out.
    assert_eq!(esme.poll_timeout(), Some(now + 30 * S));
    esme.handle_timeout(now + 30 * S);
    let probe = frames(&take(&mut esme));
    assert_eq!(probe[0].body, Body::EnquireLink);
    // Answered: the link lives, and the next probe is due 30 s after the answer.
    smsc.handle_input(&encode(&probe[0]), now + 31 * S);
    esme.handle_input(&take(&mut smsc), now + 31 * S);
    assert_eq!(esme.poll_timeout(), Some(now + 61 * S));
    // The peer keeps writing deliver_sm but never answers anything again.
    for t in 31..61 {
        let receipt = smsc.request(Body::DeliverSm(sm("x"))).unwrap();
        assert!(receipt > 0);
        esme.handle_input(&take(&mut smsc), now + t * S);
        for e in events(&mut esme) {
            let SessionEvent::Request(f) = e else {
                panic!("{e:?}")
            };
            esme.respond(f.sequence, status::OK, Body::DeliverSmResp)
                .unwrap();
        }
        esme.handle_timeout(now + t * S);
    }
    esme.handle_timeout(now + 61 * S);
    assert!(
        frames(esme.poll_transmit().unwrap())
            .iter()
            .any(|f| f.body == Body::EnquireLink),
        "its requests do not count as answers: a probe goes out"
    );
    esme.handle_timeout(now + 71 * S);
    assert_eq!(
        events(&mut esme),
        [SessionEvent::Closed(CloseReason::Dead(10 * S))]
    );
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out).unwrap();
    out
}

#[test]
fn a_peer_that_does_not_read_is_refused_then_cut_off() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(now);
    let mut config = SessionConfig::new(Role::Esme);
    config.max_unwritten = 4096;
    esme.config = config;
    // Nothing is written: requests are taken up to the bound, then refused.
    let mut taken = 0;
    let refusal = loop {
        match esme.request(Body::SubmitSm(sm("hello"))) {
            Ok(_) => taken += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(refusal, SessionError::Backlogged(n) if n > 4096));
    assert!(taken > 10 && !esme.can_send());
    // The peer keeps sending requests it will never read the answers to: closed.
    for _ in 0..1000 {
        let _ = smsc.request(Body::DeliverSm(sm("x")));
        esme.handle_input(&take(&mut smsc), now);
        for e in events(&mut esme) {
            if let SessionEvent::Request(f) = e {
                let _ = esme.respond(f.sequence, status::OK, Body::DeliverSmResp);
            }
        }
    }
    assert!(esme.is_closed());
    assert!(esme.unwritten() <= 2 * 4096 + crate::pdu::MAX_PDU);
}

#[test]
fn unbind_ends_when_answered_or_at_its_timeout() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(now);
    esme.unbind(now);
    assert!(!esme.is_bound());
    assert_eq!(
        esme.request(Body::SubmitSm(sm("late"))),
        Err(SessionError::NotBound)
    );
    smsc.handle_input(&take(&mut esme), now);
    assert_eq!(
        events(&mut smsc),
        [SessionEvent::Closed(CloseReason::UnboundByPeer)]
    );
    esme.handle_input(&take(&mut smsc), now);
    assert_eq!(
        events(&mut esme),
        [SessionEvent::Closed(CloseReason::Unbound)]
    );

    let (mut esme, _silent) = bound_pair(now);
    esme.unbind(now);
    assert_eq!(esme.poll_timeout(), Some(now + 10 * S));
    esme.handle_timeout(now + 10 * S);
    assert_eq!(
        events(&mut esme),
        [SessionEvent::Closed(CloseReason::UnbindUnanswered(10 * S))]
    );
}

#[test]
fn responses_reach_the_application_with_their_sequence() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(now);
    let seq = esme.request(Body::SubmitSm(sm("hello"))).unwrap();
    smsc.handle_input(&take(&mut esme), now);
    let Some(SessionEvent::Request(submit)) = smsc.poll_event() else {
        panic!("a submit")
    };
    assert_eq!(submit.sequence, seq);
    let id = Body::SubmitSmResp {
        message_id: "abc".into(),
    };
    smsc.respond(seq, status::OK, id.clone()).unwrap();
    // A wrong sequence number is passed on as it is: the application knows its own.
    smsc.respond(seq + 1000, status::OK, id.clone()).unwrap();
    esme.handle_input(&take(&mut smsc), now);
    let got: Vec<u32> = events(&mut esme)
        .into_iter()
        .map(|e| match e {
            SessionEvent::Response(f) => f.sequence,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, [seq, seq + 1000]);
    // A refused bind closes the ESME with the status.
    let mut esme = Session::new(SessionConfig::new(Role::Esme), now);
    let mut smsc = Session::new(SessionConfig::new(Role::Smsc), now);
    esme.bind(bind(BindKind::Transceiver), now).unwrap();
    smsc.handle_input(&take(&mut esme), now);
    let Some(SessionEvent::BindRequest { sequence, bind }) = smsc.poll_event() else {
        panic!()
    };
    smsc.refuse_bind(sequence, bind.kind, status::INVALID_PASSWORD)
        .unwrap();
    esme.handle_input(&take(&mut smsc), now);
    let closed = events(&mut esme);
    assert_eq!(
        closed,
        [SessionEvent::Closed(CloseReason::BindRefused(
            status::INVALID_PASSWORD
        ))]
    );
    let SessionEvent::Closed(reason) = &closed[0] else {
        unreachable!()
    };
    assert_eq!(
        reason.to_string(),
        "bind refused: ESME_RINVPASWD (0x0000000e)"
    );
}

#[test]
fn while_input_is_held_the_peer_is_not_timed_out() {
    let now = Instant::now();
    let (mut esme, _smsc) = bound_pair(now);
    // A partial PDU sits in the buffer and a probe is out when the application's sink fills.
    esme.handle_timeout(now + 30 * S);
    assert!(frames(&take(&mut esme))[0].body == Body::EnquireLink);
    esme.handle_input(&[0, 0, 0, 16, 0], now + 30 * S);
    esme.hold_input();
    assert_eq!(esme.poll_timeout(), None);
    esme.handle_timeout(now + 100 * S);
    assert!(esme.is_bound(), "answers may be waiting unread");
    // Reading again, both timers start afresh.
    esme.resume_input(now + 100 * S);
    assert_eq!(esme.poll_timeout(), Some(now + 110 * S));
    esme.handle_timeout(now + 110 * S);
    assert!(esme.is_closed());
}
