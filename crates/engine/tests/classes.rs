//! Message classes through the engine: frequency caps and quiet hours.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, Rejection};
use smsroute_types::Message;

fn tagged(to: &str, class: &str) -> Message {
    Message::builder(to, "ACME", "offer")
        .tag("class", class)
        .build()
        .unwrap()
}

/// A quiet window around the current UTC minute (from a minute ago to `ahead` minutes on).
fn window_around_now(ahead: u64) -> String {
    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        % 1440;
    let hm = |m: u64| format!("{:02}:{:02}", m / 60 % 24, m % 60);
    format!(
        "[[quiet_hours]]\nprefix = \"44\"\nutc_offset = \"+00:00\"\nstart = \"{}\"\nend = \"{}\"\n",
        hm((minute + 1439) % 1440),
        hm((minute + ahead) % 1440)
    )
}

#[tokio::test(start_paused = true)]
async fn a_capped_class_refuses_the_recipients_next_message() {
    let config = config(
        &[("alpha", 1000, "0.0030")],
        "[[classes]]\nname = \"marketing\"\nmax_per_recipient = 2\nper_s = 3600\n\n[[classes]]\nname = \"otp\"\n",
    );
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, tagged("447700900001", "marketing")));
    assert!(ledger.submit(&router, tagged("447700900001", "marketing")));
    assert_eq!(
        submit(&router, tagged("447700900001", "marketing")),
        Err(Rejection::FrequencyCap)
    );
    assert!(
        ledger.submit(&router, tagged("447700900002", "marketing")),
        "per recipient"
    );
    assert!(
        ledger.submit(&router, tagged("447700900001", "otp")),
        "another class"
    );
    assert!(ledger.submit(&router, message(1)), "no class: no cap");
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 5);
}

#[tokio::test(start_paused = true)]
async fn quiet_hours_hold_a_deferring_class_and_refuse_for_a_refusing_one() {
    let classes = "[[classes]]\nname = \"promo\"\nquiet_hours = \"defer\"\n\n[[classes]]\nname = \"blast\"\nquiet_hours = \"refuse\"\n\n";
    let config = config(
        &[("alpha", 1000, "0.0030")],
        &format!("{classes}{}", window_around_now(3)),
    );
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    assert_eq!(
        submit(&router, tagged("447700900001", "blast")),
        Err(Rejection::QuietHours)
    );
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, tagged("447700900001", "promo")));
    assert!(ledger.submit(&router, message(7)), "no class: not held");
    ledger.settle(&mut events).await;
    let submitted_at = |id| {
        ledger
            .events
            .iter()
            .find(|e| e.id == id && matches!(e.event, Event::Submitted { .. }))
            .map(|e| e.at)
            .unwrap()
    };
    let minute = 60_000_000_000;
    let held = submitted_at(ledger.accepted[0]);
    assert!(
        held >= minute && held <= 4 * minute,
        "held until the window's end: {held}"
    );
    assert!(submitted_at(*ledger.accepted.last().unwrap()) < minute);
}

#[tokio::test(start_paused = true)]
async fn smart_encoding_is_opt_in_per_class_or_message() {
    let config = config(
        &[("alpha", 1000, "0.0030")],
        "[[classes]]\nname = \"otp\"\nsmart_encoding = true\n\n[[classes]]\nname = \"plain\"\n",
    );
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    // 100 characters with curly quotes and a dash: 2 UCS-2 segments, 1 in GSM-7.
    let text = format!("{} \u{201C}1234\u{201D} \u{2014} ok", "x".repeat(85));
    let build = |tags: &[(&str, &str)]| {
        let mut b = Message::builder("447700900123", "ACME", &text);
        for (k, v) in tags {
            b = b.tag(k, v);
        }
        b.build().unwrap()
    };
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, build(&[("class", "otp")])));
    assert!(ledger.submit(&router, build(&[("smart_encoding", "true")])));
    assert!(ledger.submit(&router, build(&[("class", "plain")])));
    assert!(ledger.submit(&router, build(&[])));
    ledger.settle(&mut events).await;
    let sent: Vec<(u32, bool)> = ledger
        .accepted
        .iter()
        .map(|id| {
            let m = &ledger.terminal[id].message;
            (m.segments(), m.text().contains('"'))
        })
        .collect();
    assert_eq!(sent, [(1, true), (1, true), (2, false), (2, false)]);
}
