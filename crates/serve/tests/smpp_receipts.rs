//! The SMPP server front's receipts: re-offered to the next bind, sent again after a crash,
//! never before the answer naming their id; stopping; the fronts' metrics.

mod smpp_common;

use std::time::Duration;

use smpp_common::*;
use smsroute_engine::EngineOptions;
use smsroute_smpp::pdu::{BindKind, Body, Frame, status};
use smsroute_smpp::session::{CloseReason, SessionEvent};

#[tokio::test]
async fn an_unanswered_receipt_goes_to_the_next_bind() {
    let (addr, hub, _stop, _dir) = hub("reoffer").await;
    let mut first = Client::connect(&addr).await;
    first.answer_deliveries = false;
    assert_eq!(
        first.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let seq = first.submit(sm("447700900123", "SHOP", 0, b"hi".to_vec()));
    let [(_, id)] = first.answers(&[seq]).await.try_into().unwrap();
    let [got] = first.deliveries(1).await.try_into().unwrap();
    assert_eq!(got.receipted_message_id.as_deref(), Some(id.as_str()));
    drop(first);
    let mut second = Client::connect(&addr).await;
    assert_eq!(
        second.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    let [again] = second.deliveries(1).await.try_into().unwrap();
    assert_eq!(again.receipted_message_id.as_deref(), Some(id.as_str()));
    assert_eq!(hub.router().stats().outstanding, 0);
}

#[tokio::test]
async fn a_receipt_the_client_never_answered_survives_a_crash() {
    let (addr, hub, stop, dir) = hub("crash").await;
    let mut client = Client::connect(&addr).await;
    client.answer_deliveries = false;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let seq = client.submit(sm("447700900123", "SHOP", 0, b"hi".to_vec()));
    let [(_, id)] = client.answers(&[seq]).await.try_into().unwrap();
    let [got] = client.deliveries(1).await.try_into().unwrap();
    assert_eq!(got.receipted_message_id.as_deref(), Some(id.as_str()));
    // The process dies with the receipt unanswered, long after anything it acknowledged
    // would have been durable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    hub.router().abandon().await;
    drop((client, hub));
    let (addr, hub, stop) = hub_in(&dir).await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    let [again] = client.deliveries(1).await.try_into().unwrap();
    assert_eq!(again.receipted_message_id.as_deref(), Some(id.as_str()));
    // Answered now: the next restart does not send it again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).unwrap();
    hub.router().shutdown(Duration::from_secs(1)).await;
    drop((client, hub));
    let (addr, _hub, _stop) = hub_in(&dir).await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    let more = tokio::time::timeout(Duration::from_millis(500), client.next()).await;
    assert!(more.is_err(), "nothing more for the client: {more:?}");
}

#[tokio::test]
async fn stopping_answers_every_submit_and_unbinds() {
    let (addr, _hub, stop, _dir) = hub("stop").await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transmitter, "shop", "secret").await,
        status::OK
    );
    let mut waiting: std::collections::HashSet<u32> = (0..15)
        .map(|i| client.submit(sm("447700900123", "SHOP", 0, format!("m{i}").into_bytes())))
        .collect();
    // Once one is answered the hub has read them all (one write); then it stops.
    let mut stopped = false;
    let reason = loop {
        match client.next().await {
            SessionEvent::Response(Frame {
                sequence, status, ..
            }) => {
                assert_eq!(status, status::OK);
                assert!(waiting.remove(&sequence));
                if !stopped {
                    stop.send(true).unwrap();
                    stopped = true;
                }
            }
            SessionEvent::Closed(reason) => break reason,
            _ => {}
        }
    };
    assert!(waiting.is_empty(), "unanswered: {waiting:?}");
    assert_eq!(reason, CloseReason::UnboundByPeer);
}

/// Regression: a receipt could reach the client before the submit_sm_resp that told it the
/// id (Kannel then drops the receipt as unknown).
#[tokio::test]
async fn no_receipt_comes_before_the_answer_naming_its_id() {
    // No journal, no receipts from the carrier: a message is accepted and sent in the same
    // dispatcher turn, so its acceptance and its terminal event reach the hub together.
    let options = EngineOptions::default().request_receipts(false);
    let (addr, _hub, _stop) = hub_with(options).await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let mut answered = std::collections::HashSet::new();
    let mut receipts = 0;
    for round in 0..10 {
        for i in 0..15 {
            client.submit(sm(
                "447700900123",
                "SHOP",
                0,
                format!("{round}-{i}").into_bytes(),
            ));
        }
        while receipts < 15 * (round + 1) {
            match client.next().await {
                SessionEvent::Response(Frame {
                    body: Body::SubmitSmResp { message_id },
                    status: code,
                    ..
                }) => {
                    assert_eq!(code, status::OK);
                    answered.insert(message_id);
                }
                SessionEvent::Request(Frame {
                    body: Body::DeliverSm(receipt),
                    ..
                }) => {
                    let id = receipt.receipted_message_id.unwrap();
                    assert!(
                        answered.contains(&id),
                        "a receipt for {id} before its answer"
                    );
                    receipts += 1;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn the_fronts_count_submits_sessions_and_receipts() {
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let (addr, _hub, _stop) = hub_made(EngineOptions::default(), |make| {
        metrics::with_local_recorder(&recorder, make)
    })
    .await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let good = client.submit(sm("447700900123", "SHOP", 0, b"hi".to_vec()));
    let bad = client.submit(sm("44", "SHOP", 0, b"hi".to_vec()));
    let _ = client.answers(&[good, bad]).await;
    let _ = client.deliveries(1).await;
    let mut text = String::new();
    let series = |text: &str, parts: &[&str]| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    for _ in 0..100 {
        text = handle.render();
        if series(
            &text,
            &["smsroute_front_deliveries_total", "receipt", "answered"],
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let submits = |answer| series(&text, &["smsroute_front_submits_total", "\"smpp\"", answer]);
    assert_eq!(submits("\"accepted\""), Some(1.0), "{text}");
    assert_eq!(submits("\"refused\""), Some(1.0), "{text}");
    assert_eq!(
        series(&text, &["smsroute_front_smpp_sessions"]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &["smsroute_front_deliveries_total", "receipt", "answered"]
        ),
        Some(1.0),
        "{text}"
    );
}
