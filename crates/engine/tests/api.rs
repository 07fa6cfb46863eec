//! The embedding API a gateway developer expects (issue 14): refused messages come back,
//! `submit` waits for room, the router is a cloneable handle, events are a `Stream`.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, Rejection};
use smsroute_types::Message;

#[tokio::test(start_paused = true)]
async fn a_refused_message_comes_back_as_it_was_given() {
    let config = config(&[("alpha", 1000, "0.003")], "");
    let options = EngineOptions::default().max_outstanding(1);
    let (router, _events) = start(&config, options, &[]);
    let unserved = Message::builder("33612345678", "ACME", "bonjour")
        .client_ref("r-1")
        .build()
        .unwrap();
    let refused = router.try_submit(unserved.clone()).unwrap_err();
    assert_eq!(refused.reason, Rejection::NoRoute);
    assert_eq!(refused.into_message(), unserved);
    // Full: the second message comes back, its id as it was (none).
    router.try_submit(message(1)).unwrap();
    let refused = router.try_submit(message(2)).unwrap_err();
    assert_eq!(refused.reason, Rejection::Overloaded);
    assert_eq!(refused.message, message(2));
    assert_eq!(refused.to_string(), Rejection::Overloaded.to_string());
}

#[tokio::test(start_paused = true)]
async fn submit_waits_for_room_instead_of_refusing() {
    let config = config(&[("alpha", 1000, "0.003")], "");
    let options = EngineOptions::default().max_outstanding(2);
    let (router, mut events) = start(&config, options, &[]);
    for n in 0..2 {
        router.submit(message(n)).await.unwrap();
    }
    // Full: a third submit waits (from another task, on a clone of the handle).
    let waiting = {
        let router = router.clone();
        tokio::spawn(async move { router.submit(message(3)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "no room until the gateway takes events"
    );
    // Taking the first two terminal events frees the room: the third goes in.
    let mut terminal = 0;
    while terminal < 2 {
        terminal += usize::from(events.next().await.unwrap().is_terminal());
    }
    let id = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("room was announced")
        .unwrap()
        .unwrap();
    loop {
        let e = events.next().await.unwrap();
        if e.is_terminal() {
            assert_eq!((e.id, e.event), (id, Event::Delivered));
            break;
        }
    }
    // Refusals other than Overloaded come back at once.
    let unserved = Message::builder("33612345678", "ACME", "x")
        .build()
        .unwrap();
    let refused = router.submit(unserved).await.unwrap_err();
    assert_eq!(refused.reason, Rejection::NoRoute);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_router_and_shutdown_from_any_ends_the_stream() {
    let config = config(&[("alpha", 1000, "0.003")], "");
    let (router, events) = start(&config, EngineOptions::default(), &[]);
    let other = router.clone();
    let a = router.try_submit(message(1)).unwrap();
    let b = other.try_submit(message(2)).unwrap();
    assert_ne!(a, b, "one id space");
    assert_eq!(router.stats().outstanding, 2);
    let report = other.shutdown(Duration::from_secs(5)).await;
    assert!(report.unfinished.is_empty());
    assert_eq!(
        router.try_submit(message(3)).unwrap_err().reason,
        Rejection::ShuttingDown
    );
    // The stream ends once its last events are taken: every one of them, in order.
    let all: Vec<_> = events.collect().await;
    let terminal: Vec<_> = all
        .iter()
        .filter(|e| e.is_terminal())
        .map(|e| e.id)
        .collect();
    assert_eq!(terminal.len(), 2);
    assert!(terminal.contains(&a) && terminal.contains(&b));
    assert_eq!(router.max_segments(), 10);
    let carriers = router.carriers();
    assert_eq!(carriers.len(), 1);
    assert_eq!(&*carriers[0].id, "alpha");
    assert!(carriers[0].configured && carriers[0].link.is_up());
}

#[tokio::test(start_paused = true)]
async fn the_routers_segment_limit_applies_at_submit_and_follows_reloads() {
    let config = config(&[("alpha", 1000, "0.003")], "");
    let (router, _events) = start(&config, EngineOptions::default(), &[]);
    assert_eq!(router.max_segments(), smsroute_types::DEFAULT_MAX_SEGMENTS);
    // Eleven GSM-7 parts: a valid message, one part over the default limit of ten.
    let long = |n: u64| {
        Message::builder("447700900123", "ACME", &"a".repeat(153 * 11))
            .id(smsroute_types::MessageId(n))
            .build()
            .unwrap()
    };
    let refused = router.try_submit(long(1)).unwrap_err();
    assert_eq!(
        refused.reason,
        Rejection::Invalid(smsroute_types::InvalidMessage::TooManySegments {
            segments: 11,
            max: 10
        })
    );
    let raised = common::config(&[("alpha", 1000, "0.003")], "[limits]\nmax_segments = 12\n");
    router.reload(&raised).unwrap();
    assert_eq!(router.max_segments(), 12);
    router.try_submit(long(2)).unwrap();
}
