//! Routing by delivery quality (issue 18 item 4): a carrier that acks everything but
//! delivers half of one country's messages loses that country's traffic, not the others'.

mod common;

use std::time::Duration;

use common::*;
use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::EngineOptions;
use smsroute_sim::{Behaviour, Latency, Outage, OutageKind};
use smsroute_types::{CarrierSlot, Message};

const DECK: &str = "[[carriers]]\nid = \"cheap\"\ntps = 1000\n[[carriers]]\nid = \"alt\"\ntps = 1000\n\n\
    [[routes]]\nprefix = \"44\"\ncarrier = \"cheap\"\ncost = 0.0030\n\
    [[routes]]\nprefix = \"33\"\ncarrier = \"cheap\"\ncost = 0.0030\n\
    [[routes]]\nprefix = \"44\"\ncarrier = \"alt\"\ncost = 0.0036\n\
    [[routes]]\nprefix = \"33\"\ncarrier = \"alt\"\ncost = 0.0036\n\
    [routing]\nquality_digits = 2\n";

fn to(n: u64) -> Message {
    let number = if n.is_multiple_of(2) {
        format!("4477009{:05}", n % 100_000)
    } else {
        format!("336123{:05}", n % 100_000)
    };
    Message::builder(&number, "ACME", "hi").build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_grey_route_loses_its_country_within_a_minute_and_only_that_country() {
    const S: u64 = 1_000_000_000;
    // From 20 s on, the cheap carrier delivers half of the UK's messages; France is fine.
    let grey = Behaviour {
        receipt_delay: Latency::Fixed(500 * MS),
        outages: vec![Outage {
            start: 20 * S,
            duration: u64::MAX / 2,
            kind: OutageKind::Grey {
                prefix: 44,
                len: 2,
                delivered: 0.5,
            },
        }],
        ..Behaviour::default()
    };
    let config = Config::parse(DECK, "grey.toml").unwrap();
    let options = EngineOptions::default().request_receipts(true);
    let (router, mut events) = start(&config, options, &[("cheap", grey)]);
    let mut ledger = Ledger::default();
    // 200 msg/s, half to each country, for 100 s.
    for step in 0..10_000u64 {
        for i in 0..2 {
            assert!(ledger.submit(&router, to(step * 2 + i)));
        }
        ledger.poll(&mut events);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ledger.settle(&mut events).await;
    let (cheap, alt) = (CarrierSlot(0), CarrierSlot(1));
    // Submits by country and carrier in a window of router time.
    let share_on = |country: &str, carrier: CarrierSlot, from: u64, until: u64| {
        let (mut on, mut all) = (0, 0);
        for e in &ledger.events {
            if let Event::Submitted { carrier: c, .. } = e.event
                && (from..until).contains(&e.at)
                && e.message.to().as_str().starts_with(country)
            {
                all += 1;
                on += usize::from(c == carrier);
            }
        }
        on as f64 / all.max(1) as f64
    };
    assert!(share_on("44", cheap, 0, 20 * S) > 0.99, "before the fault");
    // Within 60 s of the fault the UK moves; France stays where it was.
    let uk = share_on("44", alt, 80 * S, 100 * S);
    let fr = share_on("33", cheap, 80 * S, 100 * S);
    assert!(
        uk > 0.9,
        "UK share on the other carrier after a minute: {uk}"
    );
    assert!(fr > 0.99, "France left the cheap carrier: {}", 1.0 - fr);
}
