//! Opt-outs end to end: a STOP reply through a carrier stops queued messages before dispatch
//! and refuses new ones; nothing reaches the number after the STOP was processed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use smsroute_carrier::Inbound;
use smsroute_delivery::{Event, FailReason};
use smsroute_engine::{EngineOptions, Keyword, Rejection, Router};
use smsroute_sim::SimCarrier;
use smsroute_types::{E164, Message, MessageId};
use tokio::time::Instant;

fn to(number: &str, from: &str, n: u64) -> Message {
    Message::builder(number, from, &format!("offer {n}"))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_stop_reply_stops_queued_messages_and_refuses_new_ones() {
    let (a, b) = ("447700900001", "447700900002");
    // One carrier at 10 segments a second: most messages wait in its lane.
    let config = config(&[("slow", 10, "0.0030")], "");
    let accepted_at: Arc<Mutex<Vec<(MessageId, Instant)>>> = Arc::default();
    let seen = accepted_at.clone();
    let (router, mut events) = Router::start(&config, EngineOptions::default(), move |c| {
        let seen = seen.clone();
        SimCarrier::new(&c.id, smsroute_sim::Behaviour::default(), 1).with_observer(Arc::new(
            move |id, _| seen.lock().push((id, Instant::now())),
        ))
    })
    .unwrap();
    let mut replies = router.take_inbound().expect("taken once");
    assert!(router.take_inbound().is_none());
    let mut ledger = Ledger::default();
    let mut to_a = Vec::new();
    for n in 0..40 {
        assert!(ledger.submit(&router, to(b, "ACME", n)));
        let id = submit(&router, to(a, "ACME", n)).unwrap();
        ledger.accepted.push(id);
        to_a.push(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    ledger.poll(&mut events);
    let sim = router
        .carrier(router.carrier_slot("slow").unwrap())
        .unwrap();
    let stop = Inbound {
        from: a.into(),
        to: "ACME".into(),
        text: " Stop ".into(),
    };
    assert!(sim.inject(stop).await);
    let reply = replies.recv().await.unwrap();
    assert_eq!((reply.keyword, reply.changed), (Some(Keyword::Stop), true));
    let origin = Instant::now() - Duration::from_nanos(router.now());
    let stop_processed = origin + Duration::from_nanos(reply.at);

    // New messages to A from ACME are refused; from another sender they go.
    assert_eq!(submit(&router, to(a, "ACME", 99)), Err(Rejection::OptedOut));
    assert!(ledger.submit(&router, to(a, "SHOP", 99)));
    ledger.settle(&mut events).await;

    let opted_out: Vec<_> = to_a
        .iter()
        .filter(|id| ledger.terminal[id].event == Event::Failed(FailReason::OptedOut))
        .collect();
    assert!(
        opted_out.len() > 30,
        "queued ones stopped: {}",
        opted_out.len()
    );
    let delivered_to_a = to_a.len() - opted_out.len();
    assert!(to_a.iter().all(|id| matches!(
        ledger.terminal[id].event,
        Event::Delivered | Event::Failed(FailReason::OptedOut)
    )));
    let after_stop = accepted_at
        .lock()
        .iter()
        .filter(|(id, at)| to_a.contains(id) && *at > stop_processed)
        .count();
    assert_eq!(
        after_stop, 0,
        "nothing reached A after its STOP was processed"
    );
    assert_eq!(
        accepted_at
            .lock()
            .iter()
            .filter(|(id, _)| to_a.contains(id))
            .count(),
        delivered_to_a
    );
    assert_eq!(
        ledger.count(|e| *e == Event::Delivered),
        40 + delivered_to_a + 1,
        "B's messages and the other sender's all delivered"
    );

    // HELP changes nothing; START opts back in.
    let number = E164::parse(a).unwrap();
    for (text, keyword, changed) in [
        ("help", Keyword::Help, false),
        ("START", Keyword::Start, true),
    ] {
        sim.inject(Inbound {
            from: a.into(),
            to: "ACME".into(),
            text: text.into(),
        })
        .await;
        let reply = replies.recv().await.unwrap();
        assert_eq!((reply.keyword, reply.changed), (Some(keyword), changed));
    }
    assert!(!router.suppression().is_suppressed(&number, "ACME"));
    assert!(submit(&router, to(a, "ACME", 100)).is_ok());
}
