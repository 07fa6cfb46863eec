//! End-to-end behaviour of the router against simulated carriers, on tokio's paused clock.
//! Every test checks the ledger: each accepted message has exactly one terminal status.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use smsroute_delivery::{Event, FailReason};
use smsroute_engine::{EngineOptions, Rejection};
use smsroute_routing::HealthState;
use smsroute_sim::{Behaviour, Latency, Outage, OutageKind};
use smsroute_types::CarrierSlot;

#[tokio::test(start_paused = true)]
async fn least_cost_wins_and_every_message_is_delivered() {
    let config = config(&[("dear", 1000, "0.0040"), ("cheap", 1000, "0.0030")], "");
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    for n in 0..200 {
        assert!(ledger.submit(&router, message(n)));
    }
    ledger.settle(&mut events).await;
    let cheap = router.carrier_slot("cheap").unwrap();
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 200);
    assert!(
        ledger
            .terminal
            .values()
            .all(|e| e.carrier == Some(cheap) && e.attempts == 1)
    );
    let dear = router
        .carrier(router.carrier_slot("dear").unwrap())
        .unwrap();
    assert_eq!(dear.stats().submits.load(Ordering::Relaxed), 0);
    assert_eq!(router.stats().outstanding, 0);
}

/// 50 messages a second for 40 s; the cheap carrier refuses everything from 2 s to 12 s.
/// Returns the ledger, the carriers (cheap, dear), when the cheap one was first seen ejected and
/// when it was next seen healthy.
async fn outage_run(dear_cost: &str) -> (Ledger, [CarrierSlot; 2], Option<u64>, Option<u64>) {
    let outage = Behaviour {
        latency: Latency::Fixed(10 * MS),
        outages: vec![Outage {
            start: 2 * S,
            duration: 10 * S,
            kind: OutageKind::Refuse,
        }],
        ..Behaviour::default()
    };
    let config = config(&[("dear", 1000, dear_cost), ("cheap", 1000, "0.0030")], "");
    let (router, mut events) = start(&config, EngineOptions::default(), &[("cheap", outage)]);
    let cheap = router.carrier_slot("cheap").unwrap();
    let dear = router.carrier_slot("dear").unwrap();
    let mut ledger = Ledger::default();
    let (mut ejected_at, mut healthy_again_at) = (None, None);
    for n in 0..2000u64 {
        assert!(ledger.submit(&router, message(n)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        ledger.poll(&mut events);
        let state = router.health(cheap).state;
        if state == HealthState::Ejected && ejected_at.is_none() {
            ejected_at = Some(router.now());
        }
        if router.now() > 12 * S && state == HealthState::Healthy && healthy_again_at.is_none() {
            healthy_again_at = Some(router.now());
        }
    }
    ledger.settle(&mut events).await;
    assert_eq!(
        ledger.count(|e| *e == Event::Delivered),
        2000,
        "failover lost none"
    );
    (ledger, [cheap, dear], ejected_at, healthy_again_at)
}

/// First attempts submitted in `[from, to)` to (cheap, dear).
fn first_attempts(
    ledger: &Ledger,
    [cheap, dear]: [CarrierSlot; 2],
    from: u64,
    to: u64,
) -> (usize, usize) {
    let mut by = (0, 0);
    for e in &ledger.events {
        if let Event::Submitted {
            carrier,
            attempt: 1,
        } = e.event
            && (from..to).contains(&e.at)
        {
            if carrier == cheap {
                by.0 += 1
            } else if carrier == dear {
                by.1 += 1
            }
        }
    }
    by
}

#[tokio::test(start_paused = true)]
async fn an_outage_ejects_fails_over_and_traffic_returns_after_probing() {
    let (ledger, carriers, ejected_at, healthy_at) = outage_run("0.0040").await;
    let [cheap, dear] = carriers;
    // Ejected within the time five failures take at 50 messages a second.
    let ejected_at = ejected_at.expect("the cheap carrier was ejected");
    assert!(
        (2 * S..2 * S + 500 * MS).contains(&ejected_at),
        "ejected at {ejected_at}"
    );
    // Back after the ejection (10 s ± 10 %) and three good probes.
    let back = healthy_at.expect("the cheap carrier came back");
    assert!(
        (12 * S..ejected_at + 13 * S).contains(&back),
        "healthy at {back}"
    );
    let (to_cheap, to_dear) =
        first_attempts(&ledger, carriers, ejected_at + 100 * MS, ejected_at + 9 * S);
    assert_eq!(to_cheap, 0, "no traffic to an ejected carrier");
    assert!(to_dear > 400, "{to_dear}");
    let (to_cheap, to_dear) = first_attempts(&ledger, carriers, back + 100 * MS, 40 * S);
    assert!(to_cheap > 100 && to_dear == 0, "{to_cheap} {to_dear}");
    assert!(ledger.events.iter().any(|e| e.event
        == Event::FailedOver {
            from: cheap,
            to: dear
        }));
}

#[tokio::test(start_paused = true)]
async fn a_penalised_carrier_gets_traffic_back_once_it_recovers() {
    // Close prices: one failure's penalty already ranks the cheap carrier second, so traffic
    // moves before any ejection; the fading penalty tries it again now and then, and once the
    // outage is over, traffic returns.
    let (ledger, carriers, ejected_at, _) = outage_run("0.0031").await;
    assert_eq!(ejected_at, None, "the penalty moved the traffic first");
    let (to_cheap, to_dear) = first_attempts(&ledger, carriers, 2 * S + 200 * MS, 12 * S);
    assert!(to_cheap < 10 && to_dear > 450, "{to_cheap} {to_dear}");
    // A few half-lives after the outage, all traffic is back on the cheap carrier.
    let (to_cheap, to_dear) = first_attempts(&ledger, carriers, 20 * S, 40 * S);
    assert!(to_cheap > 950 && to_dear == 0, "{to_cheap} {to_dear}");
}

#[tokio::test(start_paused = true)]
async fn a_carrier_never_gets_more_than_its_rate_and_burst() {
    let config = config(&[("slow", 50, "0.0030")], "");
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let slow = router.carrier_slot("slow").unwrap();
    let mut ledger = Ledger::default();
    for n in 0..400 {
        assert!(ledger.submit(&router, message(n)));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in 400..600 {
        assert!(ledger.submit(&router, message(n)));
    }
    ledger.settle(&mut events).await;
    let times = ledger.submits_to(slow);
    assert_eq!(times.len(), 600);
    // Burst: max(tps / 10, max_segments) = 10 segments.
    for (i, &start) in times.iter().enumerate() {
        for window in [100 * MS, S, 5 * S] {
            let n = times[i..]
                .iter()
                .take_while(|&&t| t < start + window)
                .count() as u64;
            assert!(
                n <= 50 * window / S + 10,
                "{n} submits in {window} ns from {start}"
            );
        }
    }
    // And it is not slower than its contract: 600 at 50/s after a burst of 10.
    let last = *times.last().unwrap();
    assert!(last < 12 * S + 100 * MS, "last submit at {last}");
}

#[tokio::test(start_paused = true)]
async fn a_reload_mid_stream_loses_nothing() {
    let slow = Behaviour {
        latency: Latency::Fixed(100 * MS),
        ..Behaviour::default()
    };
    let before = config(&[("old", 100, "0.0030")], "");
    let (router, mut events) = start(&before, EngineOptions::default(), &[("old", slow)]);
    let mut ledger = Ledger::default();
    for n in 0..300 {
        assert!(ledger.submit(&router, message(n)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    ledger.poll(&mut events);
    let after = config(&[("new", 1000, "0.0020")], "[retry]\nmax_attempts = 3\n");
    let report = router.reload(&after).unwrap();
    assert_eq!(report.generation, 2);
    assert_eq!(
        (report.added, report.removed),
        (vec!["new".to_string()], vec!["old".to_string()])
    );
    for n in 300..600 {
        assert!(ledger.submit(&router, message(n)));
    }
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 600);
    let (old, new) = (
        router.carrier_slot("old").unwrap(),
        router.carrier_slot("new").unwrap(),
    );
    // The old carrier kept what it had sent before the reload (a burst of 10, then 100/s
    // for 0.5 s); the new table no longer lists it, so its queue moved to the new carrier.
    let by = |c| {
        ledger
            .accepted
            .iter()
            .filter(|id| ledger.terminal[id].carrier == Some(c))
            .count()
    };
    let (old, new) = (by(old), by(new));
    assert_eq!(old + new, 600);
    assert!((50..=70).contains(&old), "old carrier took {old}");
    assert_eq!(router.stats().generation, 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_in_flight_and_reports_what_it_could_not() {
    let slow = Behaviour {
        latency: Latency::Fixed(200 * MS),
        ..Behaviour::default()
    };
    let config = config(&[("alpha", 1000, "0.0030")], "");
    let (router, mut events) = start(&config, EngineOptions::default(), &[("alpha", slow)]);
    let mut ledger = Ledger::default();
    for n in 0..100 {
        assert!(ledger.submit(&router, message(n)));
    }
    let report = router.shutdown(Duration::from_secs(5)).await;
    assert!(report.unfinished.is_empty(), "{report:?}");
    assert_eq!(report.drained, 100);
    while let Some(e) = events.recv().await {
        ledger.record(e);
    }
    ledger.assert_complete();

    // A carrier that never answers: at the deadline the messages are reported, not lost.
    let hang = Behaviour {
        hang: 1.0,
        ..Behaviour::default()
    };
    let (router, mut events) = start(&config, EngineOptions::default(), &[("alpha", hang)]);
    let mut ledger = Ledger::default();
    for n in 0..10 {
        assert!(ledger.submit(&router, message(n)));
    }
    let report = router.shutdown(Duration::from_secs(1)).await;
    let mut accepted = ledger.accepted.clone();
    accepted.sort();
    assert_eq!(report.unfinished, accepted);
    while let Some(e) = events.recv().await {
        assert!(
            !e.is_terminal(),
            "no terminal event for an unfinished message"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn overload_is_refused_not_buffered() {
    let options = EngineOptions::default().max_outstanding(100);
    let config = config(&[("alpha", 1000, "0.0030")], "");
    let (router, mut events) = start(&config, options, &[]);
    let mut ledger = Ledger::default();
    // The gateway does not read its events: after 100, everything is refused at once.
    for n in 0..1000 {
        ledger.submit(&router, message(n));
    }
    assert_eq!(ledger.accepted.len(), 100);
    assert!(ledger.rejected.iter().all(|r| *r == Rejection::Overloaded));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(router.stats().outstanding, 100);
    assert!(!ledger.submit(&router, message(1)), "still full");
    // Reading the events frees the room.
    ledger.settle(&mut events).await;
    assert_eq!(router.stats().outstanding, 0);
    for n in 0..100 {
        assert!(ledger.submit(&router, message(n)));
    }
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 200);
}

#[tokio::test(start_paused = true)]
async fn refusals_name_the_reason() {
    let config = config(
        &[("alpha", 1000, "0.0030")],
        "[[block]]\nprefix = \"4470\"\n\n[limits]\nmax_segments = 2\n",
    );
    let (router, _events) = start(&config, EngineOptions::default(), &[]);
    let build = |to: &str, text: &str| {
        smsroute_types::Message::builder(to, "ACME", text)
            .build()
            .unwrap()
    };
    assert_eq!(
        submit(&router, build("447012345678", "hi")),
        Err(Rejection::Blocked)
    );
    assert_eq!(
        submit(&router, build("33612345678", "hi")),
        Err(Rejection::NoRoute)
    );
    let long = submit(&router, build("447712345678", &"x".repeat(400)));
    assert!(matches!(long, Err(Rejection::Invalid(_))), "{long:?}");
    assert_eq!(
        router.stats().outstanding,
        0,
        "refusals leave nothing behind"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_carrier_times_out_and_fails_over_flagged_as_possible_duplicate() {
    let hang = Behaviour {
        hang: 1.0,
        ..Behaviour::default()
    };
    let config = config(
        &[("dear", 1000, "0.0040"), ("cheap", 1000, "0.0030")],
        "[retry]\nsubmit_timeout_ms = 1000\n",
    );
    let (router, mut events) = start(&config, EngineOptions::default(), &[("cheap", hang)]);
    let mut ledger = Ledger::default();
    for n in 0..3 {
        assert!(ledger.submit(&router, message(n)));
    }
    ledger.settle(&mut events).await;
    let dear = router.carrier_slot("dear").unwrap();
    for e in ledger.terminal.values() {
        assert_eq!(
            (e.event, e.carrier, e.attempts),
            (Event::Delivered, Some(dear), 2)
        );
        assert!(e.possible_duplicate);
        assert_eq!(e.history.as_ref().map(|h| h.len()), Some(2));
    }
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_fail_and_receipts_decide_the_rest() {
    use smsroute_sim::{ErrorMix, ReceiptMix};
    let picky = Behaviour {
        errors: ErrorMix {
            permanent: 0.3,
            ..ErrorMix::default()
        },
        receipts: ReceiptMix {
            delivered: 0.5,
            undeliverable: 0.5,
            expired: 0.0,
        },
        receipt_delay: Latency::Uniform { min: 0, max: 2 * S },
        ..Behaviour::default()
    };
    let config = config(&[("alpha", 1000, "0.0030")], "");
    let (router, mut events) = start(&config, EngineOptions::default(), &[("alpha", picky)]);
    let mut ledger = Ledger::default();
    for n in 0..500 {
        assert!(ledger.submit(&router, message(n)));
    }
    ledger.settle(&mut events).await;
    let permanent = ledger.count(|e| matches!(e, Event::Failed(FailReason::Permanent { .. })));
    let undeliverable = ledger.count(|e| *e == Event::Failed(FailReason::Undeliverable));
    let delivered = ledger.count(|e| *e == Event::Delivered);
    assert_eq!(permanent + undeliverable + delivered, 500);
    assert!((100..200).contains(&permanent), "{permanent}");
    assert!(
        undeliverable > 100 && delivered > 100,
        "{undeliverable} {delivered}"
    );
    assert_eq!(router.stats().unknown_receipts, 0);
}

/// Real threads, real clock: four gateway threads submit at once while the dispatcher parks
/// and wakes; receipts race their submits' answers. Nothing may be lost or doubled.
#[test]
fn concurrent_submitters_on_real_threads_lose_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = config(
        &[
            ("dear", 10_000_000, "0.0040"),
            ("cheap", 10_000_000, "0.0030"),
        ],
        "",
    );
    let (router, mut events) = {
        let _guard = runtime.enter();
        start(&config, EngineOptions::default(), &[])
    };
    let router = std::sync::Arc::new(router);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let router = router.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for n in 0..5_000 {
                    loop {
                        match submit(&router, message(t * 5_000 + n)) {
                            Ok(id) => break ids.push(id),
                            Err(Rejection::Overloaded) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    if n % 1000 == 0 {
                        // Let the dispatcher park now and then.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                ids
            })
        })
        .collect();
    let collector = runtime.spawn(async move {
        let mut terminal = std::collections::HashMap::new();
        while terminal.len() < 20_000 {
            let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("events stalled")
                .expect("stream ended");
            if e.is_terminal() {
                assert!(
                    terminal.insert(e.id, e.event).is_none(),
                    "two terminals for {}",
                    e.id
                );
            }
        }
        terminal
    });
    let mut accepted: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let terminal = runtime.block_on(collector).unwrap();
    accepted.sort();
    accepted.dedup();
    assert_eq!(accepted.len(), 20_000, "ids are unique");
    assert!(
        accepted
            .iter()
            .all(|id| terminal.get(id) == Some(&Event::Delivered))
    );
    assert_eq!(router.stats().outstanding, 0);
}
