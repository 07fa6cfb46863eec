//! Route and sender buckets (issue 18 item 2): enforced with the carrier's, segments
//! counted, and a message one of them holds never blocks the rest of the lane.

mod common;

use common::*;
use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::EngineOptions;
use smsroute_types::{CarrierSlot, Message};

const DECK: &str = "[[carriers]]\nid = \"big\"\ntps = 1000\n\n\
    [[routes]]\nprefix = \"44\"\ncarrier = \"big\"\ncost = 0.0030\n\
    [[routes]]\nprefix = \"4477\"\ncarrier = \"big\"\ncost = 0.0030\ntps = 10\nburst = 10\n\n\
    [[senders]]\nid = \"TENDLC\"\ntps = 5\nburst = 10\n";

fn msg(to: &str, from: &str, text: &str) -> Message {
    Message::builder(to, from, text).build().unwrap()
}

/// Most submits in any window of `width` ns among `times`.
fn most_in(times: &[u64], width: u64) -> usize {
    let mut times = times.to_vec();
    times.sort_unstable();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn a_held_message_never_blocks_the_lane_and_every_bucket_holds() {
    let config = Config::parse(DECK, "buckets.toml").unwrap();
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    // 60 to the limited network first, then 200 to another network on the same carrier,
    // then 30 two-part messages from the limited sender.
    for n in 0..60 {
        assert!(ledger.submit(&router, msg(&format!("4477009{n:05}"), "ACME", "hi")));
    }
    for n in 0..200 {
        assert!(ledger.submit(&router, msg(&format!("4478009{n:05}"), "ACME", "hi")));
    }
    for n in 0..30 {
        let long = "x".repeat(200);
        assert!(ledger.submit(&router, msg(&format!("4479009{n:05}"), "TENDLC", &long)));
    }
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 290);
    let submitted = |prefix: &str| -> Vec<u64> {
        ledger
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    Event::Submitted {
                        carrier: CarrierSlot(0),
                        ..
                    }
                ) && e.message.to().as_str().starts_with(prefix)
            })
            .map(|e| e.at)
            .collect()
    };
    let (limited, other, sender) = (submitted("4477"), submitted("4478"), submitted("4479"));
    // No head-of-line blocking: the other network's 200 went within their carrier's pace,
    // though 50 of the limited network's were queued ahead of them for seconds.
    assert!(
        other.iter().max().unwrap() < &(500 * MS),
        "the other network waited behind the held messages: last at {} ms",
        other.iter().max().unwrap() / MS
    );
    // The route bucket: at most 10 a second after a burst of 10, so 60 take 5 s.
    assert!(most_in(&limited, S) <= 20, "{}", most_in(&limited, S));
    assert!(limited.iter().max().unwrap() >= &(4_900 * MS));
    // The sender bucket counts segments: 2 per message at 5 segments a second.
    assert!(most_in(&sender, S) <= 10, "{}", most_in(&sender, S));
    assert!(sender.iter().max().unwrap() >= &(9_900 * MS));
}
