//! Messages awaiting receipts leave memory (with a journal): they stop counting against
//! `max_outstanding`, and a receipt, or the receipt timeout, still finishes each of them with
//! the message as it was submitted.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use smsroute_carrier::Receipt;
use smsroute_carrier::mock::MockCarrier;
use smsroute_delivery::{Event, FailReason, ReceiptStatus};
use smsroute_engine::{EventStream, Router, StatusEvent};
use smsroute_types::{CarrierSlot, Message, MessageId};

use common::JournalDir;

fn message(n: u64, text: &str) -> Message {
    Message::builder(&format!("4477009{n:05}"), "ACME", text)
        .client_ref(&format!("ref-{n}"))
        .build()
        .unwrap()
}

async fn next(events: &mut EventStream) -> StatusEvent {
    tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("an event within 20 s")
        .expect("the stream is open")
}

/// Waits until `n` messages are parked (at most 20 s).
async fn parked(router: &Router<MockCarrier>, events: &mut EventStream, n: usize) {
    let started = std::time::Instant::now();
    while router.stats().parked < n {
        assert!(started.elapsed() < Duration::from_secs(20), "{n} parked");
        // Keep taking events so nothing waits on the stream.
        let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
    }
}

fn receipt(id: MessageId, part: u32, status: ReceiptStatus) -> Receipt {
    Receipt {
        message_id: MockCarrier::message_id(id.0, 1, part),
        status,
        error: 0,
        possible_duplicate: false,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn parked_messages_free_their_slots_and_finish_by_receipt_or_timeout() {
    let dir = JournalDir::new("parking-finish");
    // Receipts awaited 6 s: messages park after 2 s, so the ones left alone time out parked.
    let config = common::config(
        &[("alpha", 1000, "0.004")],
        "[retry]\nreceipt_timeout_s = 6\n",
    );
    let options = dir.options().max_outstanding(4);
    let (router, mut events) =
        Router::start(&config, options, |c| MockCarrier::new(&c.id)).unwrap();

    // Twelve messages through four outstanding slots: possible only if the waiting ones park.
    let long = "a long text that needs two parts: ".repeat(6);
    let mut ids = Vec::new();
    for n in 1..=12u64 {
        let text = if n == 12 { long.as_str() } else { "hello" };
        let started = std::time::Instant::now();
        let id = loop {
            match router.try_submit(message(n, text)) {
                Ok(id) => break id,
                Err(refused) => {
                    assert!(started.elapsed() < Duration::from_secs(20), "{refused}");
                    let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
                }
            }
        };
        ids.push(id);
    }
    parked(&router, &mut events, 12).await;
    let stats = router.stats();
    assert_eq!(stats.outstanding, 0, "parked messages hold no slot");
    assert_eq!(
        stats.receipts_pending, 13,
        "every part's id is still matched"
    );

    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    // Delivered, undeliverable, expired; the two-part one part by part; the rest time out.
    for (i, part, status) in [
        (0, 0, ReceiptStatus::Delivered),
        (1, 0, ReceiptStatus::Undeliverable),
        (2, 0, ReceiptStatus::Intermediate),
        (2, 0, ReceiptStatus::Expired),
        (11, 1, ReceiptStatus::Delivered),
    ] {
        carrier.send_receipt(receipt(ids[i], part, status)).await;
    }
    // Unknown ids stay unknown.
    carrier
        .send_receipt(Receipt {
            message_id: "no-such-id".into(),
            status: ReceiptStatus::Delivered,
            error: 0,
            possible_duplicate: false,
        })
        .await;

    let mut terminal = BTreeMap::new();
    let mut first_part_sent = false;
    while terminal.len() < 12 {
        let e = next(&mut events).await;
        if !first_part_sent && terminal.len() >= 3 {
            // One part of the two-part message is in: the other finishes it.
            first_part_sent = true;
            carrier
                .send_receipt(receipt(ids[11], 0, ReceiptStatus::Delivered))
                .await;
        }
        if e.is_terminal() {
            assert!(
                terminal.insert(e.id, e).is_none(),
                "one terminal event each"
            );
        }
    }
    let expect = |i: usize| &terminal[&ids[i]];
    assert_eq!(expect(0).event, Event::Delivered);
    assert_eq!(expect(1).event, Event::Failed(FailReason::Undeliverable));
    assert_eq!(expect(2).event, Event::Expired);
    assert_eq!(expect(11).event, Event::Delivered, "both parts delivered");
    for i in 3..11 {
        assert_eq!(expect(i).event, Event::Sent, "no receipt within 6 s");
    }
    for (i, id) in ids.iter().enumerate() {
        let e = &terminal[id];
        // Read back as it was submitted.
        assert_eq!(e.client_ref(), Some(format!("ref-{}", i + 1).as_str()));
        assert_eq!(e.message.to().as_str(), format!("4477009{:05}", i + 1));
        assert_eq!((e.attempts, e.carrier_name), (1, Some("alpha")));
        assert_eq!(
            e.carrier_message_ids[0].as_str(),
            &*MockCarrier::message_id(id.0, 1, 0)
        );
    }
    assert_eq!(expect(11).carrier_message_ids.len(), 2);
    assert_eq!(carrier.submitted().len(), 12, "nothing sent twice");
    let stats = router.stats();
    assert_eq!((stats.parked, stats.receipts_pending), (0, 0));
    let started = std::time::Instant::now();
    while router.stats().unknown_receipts == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "unknown counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(router.stats().unknown_receipts, 1);
    router.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_parked_message_survives_a_restart_and_its_receipt_finds_it() {
    let dir = JournalDir::new("parking-restart");
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    let (router, mut events) =
        Router::start(&config, dir.options(), |c| MockCarrier::new(&c.id)).unwrap();
    let id = router.try_submit(message(1, "hello")).unwrap();
    parked(&router, &mut events, 1).await;
    // A clean shutdown leaves it in the journal, unfinished.
    let report = router.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.unfinished, vec![id]);
    drop(events);

    let (router, mut events) =
        Router::start(&config, dir.options(), |c| MockCarrier::new(&c.id)).unwrap();
    // Parked again straight from the journal: no slot held after the restart.
    let stats = router.stats();
    assert_eq!(
        (stats.parked, stats.outstanding, stats.receipts_pending),
        (1, 0, 1)
    );
    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    carrier
        .send_receipt(receipt(id, 0, ReceiptStatus::Delivered))
        .await;
    let e = loop {
        let e = next(&mut events).await;
        if e.is_terminal() {
            break e;
        }
    };
    assert_eq!((e.id, e.event), (id, Event::Delivered));
    assert_eq!(e.client_ref(), Some("ref-1"));
    assert!(carrier.submitted().is_empty(), "not sent again");
    router.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_for_more_parked_messages_than_slots_all_finish() {
    let dir = JournalDir::new("parking-room");
    let config = common::config(&[("alpha", 100_000, "0.004")], "");
    let options = dir.options().max_outstanding(16);
    let (router, mut events) =
        Router::start(&config, options, |c| MockCarrier::new(&c.id)).unwrap();
    let n = 48;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let taker = tokio::spawn(async move {
        let mut terminal = 0;
        while let Some(e) = events.recv().await {
            if e.is_terminal() {
                terminal += 1;
                let _ = tx.send(e.id);
            }
        }
        terminal
    });
    let mut ids = Vec::new();
    for n in 1..=n {
        ids.push(router.submit(message(n, "hello")).await.unwrap());
    }
    let started = std::time::Instant::now();
    while router.stats().parked < n as usize {
        assert!(started.elapsed() < Duration::from_secs(30), "all parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    for id in &ids {
        carrier
            .send_receipt(receipt(*id, 0, ReceiptStatus::Delivered))
            .await;
    }
    let mut finished = 0;
    while finished < n {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| {
                let s = router.stats();
                panic!(
                    "{finished} of {n} finished: outstanding {}, parked {}, ids {}",
                    s.outstanding, s.parked, s.receipts_pending
                )
            })
            .unwrap();
        finished += 1;
    }
    router.shutdown(Duration::from_secs(1)).await;
    assert_eq!(taker.await.unwrap(), n as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_for_parked_messages_are_not_starved_by_submits_that_fill_every_slot() {
    let dir = JournalDir::new("parking-starve");
    let config = common::config(&[("alpha", 100_000, "0.004")], "");
    let options = dir.options().max_outstanding(16);
    let (router, mut events) =
        Router::start(&config, options, |c| MockCarrier::new(&c.id)).unwrap();
    let router = std::sync::Arc::new(router);
    let (tx, mut delivered) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if e.event == Event::Delivered {
                let _ = tx.send(e.id);
            }
        }
    });
    let mut ids = Vec::new();
    for n in 1..=16 {
        ids.push(router.submit(message(n, "hello")).await.unwrap());
    }
    let started = std::time::Instant::now();
    while router.stats().parked < 16 {
        assert!(started.elapsed() < Duration::from_secs(30), "all parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A gateway that takes every slot the moment one frees.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let filler = {
        let (router, stop) = (router.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 1_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if router.try_submit(message(n, "filler")).is_ok() {
                    n += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    for id in &ids {
        carrier
            .send_receipt(receipt(*id, 0, ReceiptStatus::Delivered))
            .await;
    }
    let mut done = std::collections::HashSet::new();
    while done.len() < ids.len() {
        let id = tokio::time::timeout(Duration::from_secs(20), delivered.recv())
            .await
            .expect("every parked message delivered while submits fill the slots")
            .unwrap();
        if ids.contains(&id) {
            done.insert(id);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    filler.join().unwrap();
}
