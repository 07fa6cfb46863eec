//! Our ESME against our SMSC simulator over loopback TCP, and both against misbehaving peers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use smsroute_carrier::{Carrier, SubmitError};
use smsroute_delivery::ReceiptStatus;
use smsroute_sim::SimulatorConfig;
use smsroute_sim::{Behaviour, ReceiptMix};
use smsroute_smpp::pdu::{Bind, BindKind, Body, Frame, status};
use smsroute_smpp::{EsmeConfig, SmppCarrier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::*;

#[tokio::test]
async fn submits_gsm_and_ucs2_multipart_and_gets_every_receipt() {
    let sim = simulator(SimulatorConfig {
        system_id: Some("acme".into()),
        password: Some("secret".into()),
        ..SimulatorConfig::default()
    })
    .await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "secret"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    carrier.attach_receipts(tx);
    until(|| carrier.bound() == 1).await;
    let mut ids = Vec::new();
    for text in ["hello", &"x".repeat(200), &"Ж".repeat(100)] {
        let accepted = carrier.submit(request(text)).await.unwrap();
        ids.extend(accepted.message_ids);
    }
    assert_eq!(ids.len(), 1 + 2 + 2, "one id per part");
    let mut receipts = Vec::new();
    while receipts.len() < ids.len() {
        let (r, ack) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        ack.taken();
        assert_eq!(r.status, ReceiptStatus::Delivered);
        receipts.push(r.message_id);
    }
    receipts.sort();
    ids.sort();
    assert_eq!(receipts, ids);
    assert_eq!(sim.stats().carrier.submits.load(Ordering::Relaxed), 5);
    carrier.close(Duration::from_secs(1)).await;
    assert_eq!(carrier.bound(), 0, "unbound cleanly");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_nothing_is_sent() {
    let sim = simulator(SimulatorConfig {
        system_id: Some("acme".into()),
        password: Some("secret".into()),
        ..SimulatorConfig::default()
    })
    .await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "wrong"));
    until(|| sim.stats().binds_refused.load(Ordering::Relaxed) >= 2).await;
    assert_eq!(carrier.bound(), 0);
    // It keeps retrying (its own count may lag the simulator's by one).
    until(|| carrier.stats().bind_failures.load(Ordering::Relaxed) >= 2).await;
    assert!(matches!(
        carrier.submit(request("hi")).await,
        Err(SubmitError::Unavailable(_))
    ));
    assert_eq!(sim.stats().carrier.submits.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_dropped_link_loses_in_flight_submits_then_reconnects() {
    let sim = simulator(SimulatorConfig {
        disconnect_after: Some(3),
        ..SimulatorConfig::default()
    })
    .await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "pw"));
    until(|| carrier.bound() == 1).await;
    assert!(carrier.submit(request("one")).await.is_ok());
    assert!(carrier.submit(request("two")).await.is_ok());
    // The third submit is the one the SMSC drops the link on: outcome unknown.
    assert_eq!(
        carrier.submit(request("three")).await,
        Err(SubmitError::ConnectionLost)
    );
    until(|| carrier.stats().binds.load(Ordering::Relaxed) >= 2 && carrier.bound() == 1).await;
    assert!(
        carrier.submit(request("four")).await.is_ok(),
        "back after reconnecting"
    );
    assert!(carrier.stats().link_losses.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_silent_peer_is_declared_dead_and_unanswered_submits_time_out() {
    // A peer that answers the bind and then nothing at all.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut first = true;
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if first {
                        first = false;
                        let mut resp = Vec::new();
                        Frame::new(
                            1,
                            Body::BindResp {
                                kind: BindKind::Transceiver,
                                system_id: "mute".into(),
                            },
                        )
                        .encode(&mut resp)
                        .unwrap();
                        stream.write_all(&resp).await.unwrap();
                    }
                }
            });
        }
    });
    let config = EsmeConfig {
        enquire_link: Duration::from_millis(100),
        response_timeout: Duration::from_millis(200),
        submit_timeout: Duration::from_millis(150),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(50),
        ..EsmeConfig::new("127.0.0.1", port, "acme", "pw")
    };
    let carrier = SmppCarrier::connect("mute", config);
    until(|| carrier.bound() == 1).await;
    let answer = carrier.submit(request("hello?")).await;
    assert!(
        matches!(
            answer,
            Err(SubmitError::Timeout | SubmitError::ConnectionLost)
        ),
        "{answer:?}"
    );
    until(|| carrier.stats().link_losses.load(Ordering::Relaxed) >= 1).await;
    until(|| carrier.stats().binds.load(Ordering::Relaxed) >= 2).await;
}

#[tokio::test]
async fn the_simulator_answers_garbage_and_keeps_serving() {
    let sim = simulator(SimulatorConfig::default()).await;
    let mut raw = TcpStream::connect(sim.local_addr()).await.unwrap();
    // A PDU with a sound length and a body the codec refuses: generic_nack, session alive.
    let mut garbage = vec![0, 0, 0, 20, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 9];
    garbage.extend_from_slice(&[0xFF; 4]);
    raw.write_all(&garbage).await.unwrap();
    let mut header = [0u8; 16];
    raw.read_exact(&mut header).await.unwrap();
    let reply = Frame::decode(&header).unwrap();
    assert_eq!(reply.body, Body::GenericNack);
    assert_eq!(
        (reply.sequence, reply.status),
        (9, status::INVALID_COMMAND_LENGTH)
    );
    let mut enquire = Vec::new();
    Frame::new(10, Body::EnquireLink)
        .encode(&mut enquire)
        .unwrap();
    raw.write_all(&enquire).await.unwrap();
    raw.read_exact(&mut header).await.unwrap();
    assert_eq!(Frame::decode(&header).unwrap().body, Body::EnquireLinkResp);
    // An impossible length: generic_nack and the session is closed.
    raw.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
    raw.read_exact(&mut header).await.unwrap();
    assert_eq!(Frame::decode(&header).unwrap().body, Body::GenericNack);
    assert_eq!(raw.read(&mut header).await.unwrap(), 0, "closed");
    // A submit before binding is refused, a bind after works.
    let mut other = TcpStream::connect(sim.local_addr()).await.unwrap();
    let mut bytes = Vec::new();
    Frame::new(
        1,
        Body::Bind(Bind {
            kind: BindKind::Transmitter,
            system_id: "x".into(),
            password: "y".into(),
            system_type: "".into(),
            interface_version: 0x34,
        }),
    )
    .encode(&mut bytes)
    .unwrap();
    other.write_all(&bytes).await.unwrap();
    let mut resp = vec![0u8; 64];
    let n = other.read(&mut resp).await.unwrap();
    assert_eq!(Frame::decode(&resp[..n]).unwrap().status, status::OK);
    assert_eq!(sim.stats().garbage.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn the_simulators_model_and_window_apply_per_bind() {
    let sim = simulator(SimulatorConfig {
        behaviour: Behaviour {
            tps_limit: Some(20.0),
            receipts: ReceiptMix {
                delivered: 0.0,
                undeliverable: 1.0,
                expired: 0.0,
            },
            ..Behaviour::default()
        },
        ..SimulatorConfig::default()
    })
    .await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "pw"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    carrier.attach_receipts(tx);
    until(|| carrier.bound() == 1).await;
    let mut throttled = 0;
    for _ in 0..40 {
        match carrier.submit(request("hi")).await {
            Err(SubmitError::Rejected { status: 0x58 }) => throttled += 1,
            Ok(_) => {}
            other => panic!("{other:?}"),
        }
    }
    // 20/s with a burst of 10: most of 40 immediate submits are throttled.
    assert!(throttled >= 20, "{throttled}");
    let (r, ack) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    ack.taken();
    assert_eq!(r.status, ReceiptStatus::Undeliverable);
}

/// A receipt's deliver_sm is answered when the engine answers it, not when it is handed over:
/// "not taken" (a router that went away before the receipt was safe) is a temporary error, so
/// the SMSC keeps it and offers it again; taken, it is answered OK and never comes again.
#[tokio::test]
async fn a_receipt_is_answered_as_the_engine_answers_it() {
    let sim = simulator(SimulatorConfig::default()).await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "pw"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    carrier.attach_receipts(tx);
    until(|| carrier.bound() == 1).await;
    let accepted = carrier.submit(request("hello")).await.unwrap();
    let (first, ack) = next_receipt(&mut rx).await;
    assert_eq!(first.message_id, accepted.message_ids[0]);
    // Held by the engine: the SMSC still owns it, unanswered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "not offered again while unanswered");
    drop(ack);
    let (again, ack) = next_receipt(&mut rx).await;
    assert_eq!(again, first, "not taken: offered again");
    ack.taken();
    // Past the simulator's 1 s before it offers a refused deliver_sm again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(rx.try_recv().is_err(), "taken: never again");
}

/// Regression: a session bound before the engine attached its sink (a router starting, with
/// receipts the SMSC kept through its crash) answered those receipts OK and dropped them, so
/// their messages waited for the receipt timeout. Now they are refused for the moment and the
/// SMSC offers them again.
#[tokio::test]
async fn a_receipt_before_the_engine_attached_is_kept_by_the_smsc() {
    let sim = simulator(SimulatorConfig::default()).await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "pw"));
    until(|| carrier.bound() == 1).await;
    let accepted = carrier.submit(request("hello")).await.unwrap();
    // The receipt is due at once: offered while nothing is attached.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    carrier.attach_receipts(tx);
    let (receipt, ack) = next_receipt(&mut rx).await;
    ack.taken();
    assert_eq!(receipt.message_id, accepted.message_ids[0]);
}

async fn next_receipt(
    rx: &mut tokio::sync::mpsc::Receiver<(smsroute_carrier::Receipt, smsroute_carrier::ReceiptAck)>,
) -> (smsroute_carrier::Receipt, smsroute_carrier::ReceiptAck) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a receipt comes")
        .unwrap()
}

#[tokio::test]
async fn repeated_disconnects_keep_reconnecting_and_deliver_receipts() {
    let sim = simulator(SimulatorConfig {
        disconnect_after: Some(5),
        ..SimulatorConfig::default()
    })
    .await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "pw"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    carrier.attach_receipts(tx);
    let (mut ok, mut lost) = (0, 0);
    for _ in 0..40 {
        until(|| carrier.bound() == 1).await;
        match carrier.submit(request("hi")).await {
            Ok(_) => ok += 1,
            Err(SubmitError::ConnectionLost) => lost += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        (ok, lost),
        (32, 8),
        "every fifth submit of a session is dropped with it"
    );
    assert!(carrier.stats().binds.load(Ordering::Relaxed) >= 8);
    for _ in 0..ok {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("every accepted submit's receipt arrives, across reconnects")
            .unwrap();
    }
}

#[tokio::test]
async fn replies_from_the_smsc_reach_the_inbound_sink() {
    let sim = simulator(SimulatorConfig::default()).await;
    let carrier = SmppCarrier::connect("sim", esme(&sim, "pw"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    carrier.attach_inbound(tx);
    until(|| carrier.bound() == 1).await;
    sim.send_mo("acme", "447700900123", "ACME", "STOP").await;
    sim.send_mo("acme", "447700900124", "ACME", "Привет").await;
    for (from, text) in [("447700900123", "STOP"), ("447700900124", "Привет")] {
        let mo = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (mo.from.as_str(), mo.to.as_str(), mo.text.as_str()),
            (from, "ACME", text)
        );
    }
    assert_eq!(carrier.stats().mobile_originated.load(Ordering::Relaxed), 2);
    assert_eq!(
        carrier.stats().receipts.load(Ordering::Relaxed),
        0,
        "not receipts"
    );
}

/// Regression (issue 14, defect 1): under load a receipt can reach the ESME before its own
/// submit_sm_resp. Its TLV id ("16") is then not yet known, but it is the decimal form of an
/// older hex id ("10"): the alias table turned the receipt into the older message's, and the
/// newer message never got one.
#[tokio::test]
async fn a_receipt_before_its_submit_resp_keeps_its_own_tlv_id() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut smsc, _) = listener.accept().await.unwrap();
        let bind = read_pdu(&mut smsc).await;
        let kind = BindKind::Transceiver;
        let resp = Body::BindResp {
            kind,
            system_id: "race".into(),
        };
        write_pdu(&mut smsc, Frame::new(bind.sequence, resp)).await;
        for (n, id) in ["10", "16"].into_iter().enumerate() {
            let mut submit = read_pdu(&mut smsc).await;
            while submit.body == Body::DeliverSmResp {
                submit = read_pdu(&mut smsc).await;
            }
            let Body::SubmitSm(sm) = submit.body else {
                panic!("expected a submit_sm, got {submit:?}");
            };
            let resp = Body::SubmitSmResp {
                message_id: id.into(),
            };
            let mut receipt = sm.clone();
            std::mem::swap(&mut receipt.source, &mut receipt.destination);
            receipt.esm_class = smsroute_smpp::sm::ESM_RECEIPT;
            receipt.short_message =
                smsroute_smpp::sm::receipt_text(id, "DELIVRD", 0, "2612010000", "2612010000")
                    .into_bytes();
            receipt.receipted_message_id = Some(id.into());
            receipt.message_state = Some(2);
            let deliver = Frame::new(100 + n as u32, Body::DeliverSm(receipt));
            if n == 0 {
                write_pdu(&mut smsc, Frame::new(submit.sequence, resp)).await;
                write_pdu(&mut smsc, deliver).await;
            } else {
                // The receipt beats its submit_sm_resp.
                write_pdu(&mut smsc, deliver).await;
                write_pdu(&mut smsc, Frame::new(submit.sequence, resp)).await;
            }
        }
        // Keep the session open (deliver_sm_resp and the rest are read and ignored).
        let mut sink = vec![0u8; 4096];
        while smsc.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    let carrier = SmppCarrier::connect("race", EsmeConfig::new("127.0.0.1", port, "a", "b"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    carrier.attach_receipts(tx);
    until(|| carrier.bound() == 1).await;
    let mut receipts = Vec::new();
    for text in ["first", "second"] {
        let accepted = carrier.submit(request(text)).await.unwrap();
        let (receipt, ack) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        ack.taken();
        receipts.push((accepted.message_ids[0].to_string(), receipt.message_id));
    }
    assert_eq!(
        receipts,
        [("10".into(), "10".into()), ("16".into(), "16".into())]
    );
}

/// Regression (issue 14, defect 7): docs/smpp.md says a PDU with an impossible length gets a
/// generic_nack before the session closes; only the simulator did so, the ESME just closed.
#[tokio::test]
async fn the_esme_answers_an_impossible_length_with_generic_nack_then_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut smsc, _) = listener.accept().await.unwrap();
        let bind = read_pdu(&mut smsc).await;
        let resp = Body::BindResp {
            kind: BindKind::Transceiver,
            system_id: "bad".into(),
        };
        write_pdu(&mut smsc, Frame::new(bind.sequence, resp)).await;
        smsc.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
        let answer = read_pdu(&mut smsc).await;
        let mut rest = [0u8; 16];
        let closed = smsc.read(&mut rest).await.map(|n| n == 0).unwrap_or(true);
        let _ = tx.send((answer, closed));
    });
    let carrier = SmppCarrier::connect("bad", EsmeConfig::new("127.0.0.1", port, "a", "b"));
    let (answer, closed) = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.body, Body::GenericNack);
    assert_eq!(answer.status, status::INVALID_COMMAND_LENGTH);
    assert!(closed, "the session is closed after the nack");
    assert_eq!(carrier.stats().garbage.load(Ordering::Relaxed), 1);
}
