//! A carrier's lane: what happens to a message its bucket can never admit (issue 14).

mod common;

use std::time::Duration;

use common::*;
use smsroute_config::Config;
use smsroute_delivery::{Event, FailReason};
use smsroute_engine::EngineOptions;
use smsroute_types::Message;

fn deck(burst: u32, max_segments: u32) -> Config {
    let text = format!(
        "[[carriers]]\nid = \"slow\"\ntps = 1\nburst = {burst}\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"slow\"\ncost = 0.01\n\n\
         [limits]\nmax_segments = {max_segments}\n"
    );
    Config::parse(&text, "t.toml").unwrap()
}

/// Regression: a message queued when a reload shrank its carrier's burst below its
/// segments expired at once, as if its validity had run out; it fails with its own reason.
#[tokio::test(start_paused = true)]
async fn a_message_larger_than_the_carriers_burst_fails_as_too_large() {
    let (router, mut events) = start(&deck(10, 10), EngineOptions::default(), &[]);
    let five = || {
        Message::builder("447700900123", "ACME", &"x".repeat(700))
            .build()
            .unwrap()
    };
    let mut ledger = Ledger::default();
    for _ in 0..3 {
        assert!(ledger.submit(&router, five()));
    }
    // Two fill the bucket; the third waits in the lane for five seconds of tokens.
    tokio::time::sleep(Duration::from_millis(100)).await;
    router.reload(&deck(2, 2)).unwrap();
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 2);
    assert_eq!(
        ledger.count(|e| *e == Event::Failed(FailReason::TooLarge)),
        1,
        "{:?}",
        ledger.terminal
    );
}
