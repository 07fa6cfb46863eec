//! Hostile peers, in process on loopback (issue 15): the simulator against clients that never
//! bind, dribble bytes or never acknowledge receipts; the ESME against SMSCs that stop
//! reading, flood deliver_sm or answer with wrong sequence numbers. Each holds memory flat:
//! what a peer can make a session hold is bounded, and every wait has a timer.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smsroute_carrier::{Carrier, Receipt, ReceiptAck, SubmitError};
use smsroute_sim::{Behaviour, Latency, SimulatorConfig};
use smsroute_smpp::pdu::{Address, Bind, BindKind, Body, Frame, ShortMessage, status};
use smsroute_smpp::{EsmeConfig, SmppCarrier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::*;

const MS: Duration = Duration::from_millis(1);

fn bind(kind: BindKind) -> Frame {
    Frame::new(
        1,
        Body::Bind(Bind {
            kind,
            system_id: "acme".into(),
            password: "pw".into(),
            system_type: String::new(),
            interface_version: 0x34,
        }),
    )
}

/// Reads until the peer closes (`true`) or `within` passes (`false`).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn clients_that_never_bind_are_capped_then_closed() {
    let sim = simulator(SimulatorConfig {
        bind_timeout: 300 * MS,
        max_sessions: 20,
        max_sessions_per_address: 20,
        ..SimulatorConfig::default()
    })
    .await;
    let addr = sim.local_addr();
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    until(|| sim.stats().sessions_refused.load(Ordering::Relaxed) == 10).await;
    assert_eq!(sim.open_sessions(), 20);
    // Every idle connection is closed: the ten over the cap at once, the rest at the bind
    // timeout.
    for stream in &mut idle {
        assert!(closed_within(stream, Duration::from_secs(3)).await);
    }
    until(|| sim.open_sessions() == 0).await;
    assert_eq!(sim.stats().sessions_dropped.load(Ordering::Relaxed), 20);
    // The simulator still serves.
    let mut client = TcpStream::connect(addr).await.unwrap();
    write_pdu(&mut client, bind(BindKind::Transmitter)).await;
    assert_eq!(read_pdu(&mut client).await.status, status::OK);
}

#[tokio::test]
async fn a_pdu_sent_one_byte_at_a_time_is_cut_off() {
    let sim = simulator(SimulatorConfig {
        pdu_timeout: 300 * MS,
        ..SimulatorConfig::default()
    })
    .await;
    let mut client = TcpStream::connect(sim.local_addr()).await.unwrap();
    let bytes = encode(&bind(BindKind::Transceiver));
    let mut sent = 0;
    for byte in &bytes {
        if client.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(100 * MS).await;
        if sim.stats().sessions_dropped.load(Ordering::Relaxed) == 1 {
            break;
        }
    }
    assert!(sent < bytes.len(), "closed before the bind was whole");
    assert!(closed_within(&mut client, Duration::from_secs(2)).await);
    assert_eq!(sim.stats().binds.load(Ordering::Relaxed), 0);
}

/// A submit_sm asking for a receipt.
fn submit(sequence: u32) -> Frame {
    Frame::new(
        sequence,
        Body::SubmitSm(ShortMessage {
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
            short_message: b"hello".to_vec(),
            message_payload: None,
            receipted_message_id: None,
            message_state: None,
            possible_duplicate: false,
            sar: None,
            schedule_delivery_time: String::new(),
            validity_period: String::new(),
        }),
    )
}

#[tokio::test]
async fn receipts_a_client_never_acknowledges_are_bounded_and_kept_for_the_next() {
    let sim = simulator(SimulatorConfig {
        behaviour: Behaviour {
            receipt_delay: Latency::Fixed(1_000_000),
            ..Behaviour::default()
        },
        max_unacknowledged: 16,
        max_stored: 100,
        ..SimulatorConfig::default()
    })
    .await;
    let mut rude = TcpStream::connect(sim.local_addr()).await.unwrap();
    write_pdu(&mut rude, bind(BindKind::Transceiver)).await;
    assert_eq!(read_pdu(&mut rude).await.status, status::OK);
    for n in 0..500 {
        write_pdu(&mut rude, submit(n + 2)).await;
    }
    // It reads everything and acknowledges nothing.
    let (mut answers, mut receipts) = (0, 0);
    while answers < 500 {
        match read_pdu(&mut rude).await.body {
            Body::SubmitSmResp { .. } => answers += 1,
            Body::DeliverSm(_) => receipts += 1,
            other => panic!("{other:?}"),
        }
    }
    until(|| sim.stats().receipts_dropped.load(Ordering::Relaxed) == 500 - 16 - 100).await;
    while tokio::time::timeout(200 * MS, read_pdu(&mut rude))
        .await
        .is_ok()
    {
        receipts += 1;
    }
    assert_eq!(
        receipts, 16,
        "one session's unacknowledged receipts are capped"
    );
    assert_eq!(
        sim.stored("acme"),
        100,
        "the rest wait, up to the store's capacity"
    );
    drop(rude);
    // A client that acknowledges gets every one kept: the 16 given back and the 100 stored.
    let carrier = SmppCarrier::connect("good", esme(&sim, "pw"));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Receipt, ReceiptAck)>(1024);
    carrier.attach_receipts(tx);
    let mut got = 0;
    while got < 116 {
        let (_, ack) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the kept receipts come")
            .unwrap();
        ack.taken();
        got += 1;
    }
    until(|| sim.stored("acme") == 0).await;
}

/// An SMSC scripted by `serve`, one task per connection after it answered the bind.
async fn scripted_smsc<F, Fut>(serve: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let serve = serve.clone();
            tokio::spawn(async move {
                let bind = read_pdu(&mut stream).await;
                let ok = Body::BindResp {
                    kind: BindKind::Transceiver,
                    system_id: "hostile".into(),
                };
                write_pdu(&mut stream, Frame::new(bind.sequence, ok)).await;
                serve(stream).await;
            });
        }
    });
    port
}

fn fast_esme(port: u16) -> EsmeConfig {
    EsmeConfig {
        enquire_link: 200 * MS,
        response_timeout: 300 * MS,
        submit_timeout: 300 * MS,
        reconnect_min: 20 * MS,
        reconnect_max: 50 * MS,
        ..EsmeConfig::new("127.0.0.1", port, "acme", "pw")
    }
}

/// A deliver_sm that is not a receipt (a reply).
fn mo(sequence: u32) -> Frame {
    let Body::SubmitSm(mut sm) = submit(sequence).body else {
        unreachable!()
    };
    sm.registered_delivery = 0;
    sm.short_message = vec![b'x'; 140];
    Frame::new(sequence, Body::DeliverSm(sm))
}

/// Regression (issue 15, defect 3): an SMSC that answers one submit, then only writes
/// deliver_sm and never reads wedged the ESME: no enquire_link went out, the link stayed
/// bound, and `close` did not return.
#[tokio::test]
async fn an_smsc_that_stops_reading_is_declared_dead_and_close_still_returns() {
    let port = scripted_smsc(|mut stream| async move {
        let first = read_pdu(&mut stream).await;
        let id = Body::SubmitSmResp {
            message_id: "1".into(),
        };
        write_pdu(&mut stream, Frame::new(first.sequence, id)).await;
        let mut n = 100;
        while stream.write_all(&encode(&mo(n))).await.is_ok() {
            n += 1;
        }
    })
    .await;
    let carrier = SmppCarrier::connect("hostile", fast_esme(port));
    until(|| carrier.bound() == 1).await;
    assert!(carrier.submit(request("one")).await.is_ok());
    until(|| carrier.stats().link_losses.load(Ordering::Relaxed) >= 1).await;
    until(|| carrier.stats().binds.load(Ordering::Relaxed) >= 2).await;
    let closing = tokio::time::timeout(
        Duration::from_secs(5),
        carrier.close(Duration::from_secs(1)),
    );
    assert!(closing.await.is_ok(), "close returns by its grace");
}

#[tokio::test]
async fn a_deliver_sm_flood_is_read_only_as_fast_as_the_engine_takes_receipts() {
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let port = scripted_smsc(move |stream| {
        let written = counter.clone();
        async move {
            let (mut read, mut write) = stream.into_split();
            // Answers are read and dropped; receipts for unknown ids are written for ever.
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            let mut n = 100u32;
            loop {
                let Body::DeliverSm(mut sm) = mo(n).body else {
                    unreachable!()
                };
                sm.esm_class = 0x04;
                sm.receipted_message_id = Some(format!("{n:x}"));
                sm.short_message = b"id:1 stat:DELIVRD err:000".to_vec();
                let bytes = encode(&Frame::new(n, Body::DeliverSm(sm)));
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
                written.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }
    })
    .await;
    let carrier = SmppCarrier::connect("flood", fast_esme(port));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Receipt, ReceiptAck)>(8);
    carrier.attach_receipts(tx);
    until(|| carrier.bound() == 1).await;
    until(|| carrier.stats().receipts.load(Ordering::Relaxed) == 8).await;
    // The sink is full: the ESME stops reading, and once the kernel's socket buffers are
    // full the SMSC's writes stop too.
    let mut stalled = false;
    for _ in 0..30 {
        let before = written.load(Ordering::Relaxed);
        tokio::time::sleep(300 * MS).await;
        if written.load(Ordering::Relaxed) == before {
            stalled = true;
            break;
        }
    }
    assert!(stalled, "back-pressure reaches the SMSC");
    assert_eq!(carrier.stats().receipts.load(Ordering::Relaxed), 8);
    // Taken by the engine, receipts flow again.
    for _ in 0..100 {
        rx.recv().await.unwrap().1.taken();
    }
    assert!(carrier.stats().receipts.load(Ordering::Relaxed) >= 100);
    // Its own enquire_links were answered (the SMSC reads): the link stayed up throughout.
    assert_eq!(carrier.stats().link_losses.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn answers_with_wrong_sequence_numbers_time_submits_out_and_free_the_window() {
    let port = scripted_smsc(|mut stream| async move {
        loop {
            let frame = read_pdu(&mut stream).await;
            let answer = match frame.body {
                Body::SubmitSm(_) => Frame::new(
                    frame.sequence + 1000,
                    Body::SubmitSmResp {
                        message_id: "x".into(),
                    },
                ),
                Body::EnquireLink => Frame::new(frame.sequence, Body::EnquireLinkResp),
                _ => continue,
            };
            write_pdu(&mut stream, answer).await;
        }
    })
    .await;
    let carrier = SmppCarrier::connect(
        "confused",
        EsmeConfig {
            window: 1,
            ..fast_esme(port)
        },
    );
    until(|| carrier.bound() == 1).await;
    for text in ["one", "two"] {
        let answer = carrier.submit(request(text)).await;
        assert!(matches!(answer, Err(SubmitError::Timeout)), "{answer:?}");
    }
    assert!(carrier.stats().unmatched.load(Ordering::Relaxed) >= 2);
    assert_eq!(carrier.bound(), 1, "a confused SMSC is not a dead one");
}
