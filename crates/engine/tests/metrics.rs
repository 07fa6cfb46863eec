//! The engine's metrics through a real Prometheus recorder: every series of the contract
//! exists from start-up, and the counts match the ledger.

mod common;

use std::time::Duration;

use common::*;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, Rejection};

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(start_paused = true)]
async fn counts_match_the_ledger_and_quiet_carriers_show_zero() {
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let config = config(&[("dear", 1000, "0.0040"), ("cheap", 1000, "0.0030")], "");
    let (router, mut events) =
        metrics::with_local_recorder(&recorder, || start(&config, EngineOptions::default(), &[]));
    let mut ledger = Ledger::default();
    for n in 0..100 {
        assert!(ledger.submit(&router, message(n)));
    }
    assert_eq!(
        submit(
            &router,
            smsroute_types::Message::builder("33612345678", "ACME", "hi")
                .build()
                .unwrap()
        ),
        Err(Rejection::NoRoute)
    );
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 100);
    tokio::time::sleep(Duration::from_millis(250)).await; // a housekeeping tick flushes
    let text = handle.render();
    let expect = [
        ("smsroute_messages_accepted_total", 100.0),
        ("smsroute_messages_rejected_total{reason=\"no_route\"}", 1.0),
        ("smsroute_outcomes_total{outcome=\"delivered\"}", 100.0),
        (
            "smsroute_submits_total{carrier=\"cheap\",result=\"accepted\"}",
            100.0,
        ),
        (
            "smsroute_submits_total{carrier=\"dear\",result=\"accepted\"}",
            0.0,
        ),
        (
            "smsroute_receipts_total{carrier=\"cheap\",status=\"delivered\"}",
            100.0,
        ),
        ("smsroute_segments_total{carrier=\"cheap\"}", 100.0),
        ("smsroute_inflight{carrier=\"dear\"}", 0.0),
        ("smsroute_carrier_health{carrier=\"cheap\"}", 1.0),
        ("smsroute_circuit_state{carrier=\"cheap\"}", 0.0),
        ("smsroute_bucket_fill{carrier=\"dear\"}", 1.0),
        ("smsroute_carrier_tps{carrier=\"dear\"}", 1000.0),
        ("smsroute_route_table_generation", 1.0),
        ("smsroute_route_table_prefixes", 1.0),
        (
            "smsroute_submit_latency_seconds_count{carrier=\"cheap\"}",
            100.0,
        ),
        ("smsroute_failovers_total{carrier=\"dear\"}", 0.0),
        ("smsroute_outstanding", 0.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(text.contains("# HELP smsroute_submits_total"), "described");
    assert!(
        text.contains("smsroute_submit_latency_seconds_bucket{carrier=\"cheap\",le="),
        "a histogram with buckets, not a summary"
    );
    let after = config_reloaded(&router);
    assert_eq!(after, 2.0);
    let text = handle.render();
    assert_eq!(
        value(&text, "smsroute_route_table_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
}

fn config_reloaded(router: &smsroute_engine::Router<smsroute_sim::SimCarrier>) -> f64 {
    let next = config(&[("dear", 1000, "0.0040"), ("cheap", 1000, "0.0020")], "");
    router.reload(&next).unwrap().generation as f64
}

#[tokio::test(start_paused = true)]
async fn policy_gauges_show_the_opt_out_list_and_every_account_balance() {
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let accounts = "[[accounts]]\nid = \"acme\"\nbalance = 0.0100\n";
    let carriers = [("cheap", 1000, "0.0030")];
    let (router, mut events) = metrics::with_local_recorder(&recorder, || {
        start(&config(&carriers, accounts), EngineOptions::default(), &[])
    });
    for n in 0..2 {
        let number = smsroute_types::E164::parse(&format!("4477001{n:05}")).unwrap();
        router.suppression().opt_out(&number, None).unwrap();
    }
    let mut ledger = Ledger::default();
    for n in 0..2 {
        let billed = smsroute_types::Message::builder(&format!("4477009{n:05}"), "ACME", "hi")
            .tag("account", "acme")
            .build()
            .unwrap();
        assert!(ledger.submit(&router, billed));
    }
    ledger.settle(&mut events).await;
    let more = format!("{accounts}\n[[accounts]]\nid = \"beta\"\nbalance = 0.0050\n");
    metrics::with_local_recorder(&recorder, || router.reload(&config(&carriers, &more))).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await; // a housekeeping tick sets them
    let text = handle.render();
    let expect = [
        ("smsroute_opted_out", 2.0),
        ("smsroute_account_balance_micros{account=\"acme\"}", 4_000.0),
        ("smsroute_account_balance_micros{account=\"beta\"}", 5_000.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
    }
}

/// A `submit().await` that waits for room is not a refusal: only what `try_submit` refuses
/// counts in `smsroute_messages_rejected_total` (review of issue 14: each wait counted one).
#[tokio::test(start_paused = true)]
async fn a_submit_that_waits_for_room_is_not_counted_as_refused() {
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let config = config(&[("alpha", 1000, "0.003")], "");
    let options = EngineOptions::default().max_outstanding(1);
    let (router, mut events) =
        metrics::with_local_recorder(&recorder, || start(&config, options, &[]));
    router.submit(message(1)).await.unwrap();
    let waiting = {
        let router = router.clone();
        tokio::spawn(async move { router.submit(message(2)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        submit(&router, message(3)),
        Err(Rejection::Overloaded),
        "full: try_submit refuses"
    );
    let mut terminal = 0;
    while terminal < 2 {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
        terminal += usize::from(e.is_terminal());
    }
    waiting.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let text = handle.render();
    let series = "smsroute_messages_rejected_total{reason=\"overloaded\"}";
    assert_eq!(value(&text, series), Some(1.0), "{text}");
}

/// `refuse_if_full` answers as `try_submit` would on a full router, and counts the same.
#[tokio::test(start_paused = true)]
async fn a_refusal_before_building_a_message_counts_as_overloaded() {
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let config = config(&[("alpha", 1000, "0.003")], "");
    let options = EngineOptions::default().max_outstanding(1);
    let (router, _events) =
        metrics::with_local_recorder(&recorder, || start(&config, options, &[]));
    assert!(!router.refuse_if_full(), "room for one");
    router.try_submit(message(1)).unwrap();
    assert!(router.refuse_if_full());
    assert_eq!(submit(&router, message(2)), Err(Rejection::Overloaded));
    let series = "smsroute_messages_rejected_total{reason=\"overloaded\"}";
    assert_eq!(value(&handle.render(), series), Some(2.0));
}

#[tokio::test]
async fn the_journal_reports_what_it_writes_and_how_long_syncs_take() {
    let dir = std::env::temp_dir().join(format!("smsroute-metrics-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let config = config(&[("alpha", 1000, "0.0040")], "");
    let options = EngineOptions::default().journal(smsroute_journal::JournalOptions::new(&dir));
    let (router, mut events) =
        metrics::with_local_recorder(&recorder, || start(&config, options, &[]));
    let mut ledger = Ledger::default();
    for n in 0..50 {
        assert!(ledger.submit(&router, message(n)));
    }
    ledger.settle(&mut events).await;
    tokio::time::sleep(Duration::from_millis(250)).await; // a housekeeping tick flushes
    let text = handle.render();
    let positive = [
        "smsroute_journal_bytes_total",
        "smsroute_journal_commit_seconds_count",
        "smsroute_journal_disk_bytes",
        "smsroute_journal_files",
    ];
    for series in positive {
        assert!(
            value(&text, series).is_some_and(|v| v > 0.0),
            "{series} in\n{text}"
        );
    }
    for (series, want) in [
        ("smsroute_journal_waiting", 0.0),
        ("smsroute_awaiting_receipts", 0.0),
        ("smsroute_journal_recovered_messages", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
    }
    router.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
