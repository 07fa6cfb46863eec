//! What status events carry (issue 14, defect 2): the message's client reference and tags, and
//! the carrier's message ids of the attempt, so a gateway needs no id → reference map and can
//! reconcile a possible duplicate against the carrier's records.

mod common;

use common::*;
use smsroute_delivery::Event;
use smsroute_engine::EngineOptions;
use smsroute_sim::Behaviour;
use smsroute_types::Message;

#[tokio::test(start_paused = true)]
async fn events_carry_the_client_reference_tags_and_the_carriers_ids() {
    let config = config(&[("alpha", 100, "0.004")], "");
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let message = Message::builder("447700900123", "ACME", &"long ".repeat(40))
        .client_ref("order-77")
        .tag("campaign", "spring")
        .build()
        .unwrap();
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, message));
    ledger.settle(&mut events).await;
    assert!(ledger.events.len() >= 3, "{:?}", ledger.events);
    for e in &ledger.events {
        assert_eq!(e.client_ref(), Some("order-77"), "{e:?}");
        assert_eq!(e.tag("campaign"), Some("spring"));
    }
    let submitted: Vec<_> = ledger
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::Submitted { .. }))
        .collect();
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].carrier_message_ids.len(), 2, "one id per part");
    let terminal = &ledger.terminal[&ledger.accepted[0]];
    assert_eq!(terminal.event, Event::Delivered);
    // Carrier names ride on the events: no router lookup, even once it is gone.
    router.shutdown(std::time::Duration::from_secs(1)).await;
    drop(router);
    assert_eq!(submitted[0].carrier_name, Some("alpha"));
    assert_eq!(terminal.carrier_name, Some("alpha"));
    let accepted = ledger.events.iter().find(|e| e.event == Event::Accepted);
    assert_eq!(accepted.map(|e| e.carrier_name), Some(None));
    assert_eq!(
        terminal.carrier_message_ids, submitted[0].carrier_message_ids,
        "the terminal event names the ids the carrier gave"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_attempt_is_submitted_without_ids_and_the_accepted_one_with_them() {
    let config = config(&[("alpha", 100, "0.004"), ("beta", 100, "0.005")], "");
    let refusing = Behaviour {
        errors: smsroute_sim::ErrorMix {
            system: 1.0,
            ..Default::default()
        },
        ..Behaviour::default()
    };
    let (router, mut events) = start(&config, EngineOptions::default(), &[("alpha", refusing)]);
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, message(1)));
    ledger.settle(&mut events).await;
    let ids: Vec<usize> = ledger
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::Submitted { .. }))
        .map(|e| e.carrier_message_ids.len())
        .collect();
    let terminal = &ledger.terminal[&ledger.accepted[0]];
    assert_eq!(ids, [0, 1], "{:?}", ledger.events);
    let names: Vec<_> = ledger
        .events
        .iter()
        .filter(|e| !matches!(e.event, Event::Accepted))
        .map(|e| (e.event.as_str(), e.carrier_name.unwrap_or("-")))
        .collect();
    assert_eq!(
        names,
        [
            ("submitted", "alpha"),
            ("failed_over", "beta"),
            ("submitted", "beta"),
            ("delivered", "beta")
        ]
    );
    assert_eq!(terminal.carrier_message_ids.len(), 1);
}
