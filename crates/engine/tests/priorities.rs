//! Priorities (issue 18 item 3): a carrier's throughput serves higher classes first, and a
//! lower class with a guaranteed share never starves.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::EngineOptions;
use smsroute_types::{Message, MessageId};

const DECK: &str = "[[carriers]]\nid = \"one\"\ntps = 100\nburst = 10\n\n\
    [[routes]]\nprefix = \"44\"\ncarrier = \"one\"\ncost = 0.0030\n\n\
    [[classes]]\nname = \"otp\"\npriority = 3\n\n\
    [[classes]]\nname = \"marketing\"\npriority = 0\nmin_share_pct = 10\n";

fn of(class: &str, n: u64) -> Message {
    Message::builder(&format!("4477009{n:05}"), "ACME", "hi")
        .tag("class", class)
        .build()
        .unwrap()
}

/// Accepted → submitted, ns, by message.
fn queue_waits(ledger: &Ledger) -> HashMap<MessageId, u64> {
    let mut accepted = HashMap::new();
    let mut waits = HashMap::new();
    for e in &ledger.events {
        match e.event {
            Event::Accepted => {
                accepted.insert(e.id, e.at);
            }
            Event::Submitted { attempt: 1, .. } => {
                waits.insert(e.id, e.at - accepted[&e.id]);
            }
            _ => {}
        }
    }
    waits
}

#[tokio::test(start_paused = true)]
async fn transactional_messages_pass_a_marketing_burst_which_keeps_its_share() {
    let config = Config::parse(DECK, "priorities.toml").unwrap();
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    // A marketing burst of 20 s of the carrier's throughput at once...
    for n in 0..2_000 {
        assert!(ledger.submit(&router, of("marketing", n)));
    }
    let mut otp = Vec::new();
    // ... then OTPs at 50/s for 4 s (within the carrier's 100/s), then at 200/s for 4 s
    // (more than it takes).
    for (per_step, step_ms, steps) in [(1, 20, 200), (2, 10, 400)] {
        for _ in 0..steps {
            for _ in 0..per_step {
                let n = 10_000 + otp.len() as u64;
                assert!(ledger.submit(&router, of("otp", n)));
                otp.push(*ledger.accepted.last().unwrap());
            }
            ledger.poll(&mut events);
            tokio::time::sleep(Duration::from_millis(step_ms)).await;
        }
    }
    ledger.settle(&mut events).await;
    assert_eq!(
        ledger.count(|e| *e == Event::Delivered),
        ledger.accepted.len()
    );
    let waits = queue_waits(&ledger);
    // Within the carrier's throughput, OTPs wait at most ~100 ms behind 20 s of marketing.
    let mut first: Vec<u64> = otp[..200].iter().map(|id| waits[id]).collect();
    first.sort_unstable();
    let p99 = first[first.len() * 99 / 100];
    assert!(p99 <= 100 * MS, "OTP p99 queue wait {} ms", p99 / MS);
    // While OTPs alone would take it all, marketing still gets its 10 %.
    let marketing_in = |from: u64, to: u64| {
        ledger
            .events
            .iter()
            .filter(|e| {
                matches!(e.event, Event::Submitted { .. })
                    && (from..to).contains(&e.at)
                    && e.message.tag("class") == Some("marketing")
            })
            .count()
    };
    let during = marketing_in(5 * S, 8 * S);
    assert!(
        (25..=40).contains(&during),
        "marketing submits in 3 s of OTP overload: {during} (10 % of 300)"
    );
}
