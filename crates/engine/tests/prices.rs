//! Price ceilings (issue 18 item 7): a message's `max_price` tag and its class's drop dearer
//! carriers wherever the message is routed; with none left it is refused with its own reason.

mod common;

use common::*;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, Rejection};
use smsroute_types::{InvalidMessage, Message};

const CLASSES: &str = "[[classes]]\nname = \"bulk\"\nmax_price = 0.0035\n\n\
                       [[classes]]\nname = \"otp\"\n";

fn priced(n: u64, tags: &[(&str, &str)]) -> Message {
    let mut builder = Message::builder(&format!("4477009{n:05}"), "ACME", "hi");
    for (key, value) in tags {
        builder = builder.tag(key, value);
    }
    builder.build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn dearer_carriers_are_dropped_and_a_message_none_can_take_is_refused() {
    // The cheap carrier refuses everything: a message that may not fail over to the dear
    // one fails instead of paying more.
    let refuse = refusing();
    let config = config(
        &[("cheap", 1000, "0.0030"), ("dear", 1000, "0.0040")],
        CLASSES,
    );
    let (router, mut events) = start(&config, EngineOptions::default(), &[("cheap", refuse)]);
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, priced(1, &[("max_price", "0.0030")])));
    assert!(ledger.submit(&router, priced(2, &[("class", "bulk")])));
    assert!(ledger.submit(&router, priced(3, &[("class", "otp")])));
    assert!(ledger.submit(&router, priced(4, &[])));
    assert_eq!(
        submit(&router, priced(5, &[("max_price", "0.0020")])),
        Err(Rejection::OverMaxPrice)
    );
    // The lower of the tag and the class decides.
    assert_eq!(
        submit(
            &router,
            priced(6, &[("class", "bulk"), ("max_price", "0.0025")])
        ),
        Err(Rejection::OverMaxPrice)
    );
    assert_eq!(
        submit(&router, priced(7, &[("max_price", "cheap")])),
        Err(Rejection::Invalid(InvalidMessage::MaxPrice {
            value: "cheap".into()
        }))
    );
    assert_eq!(Rejection::OverMaxPrice.reason(), "over_max_price");
    ledger.settle(&mut events).await;
    let dear = router.carrier_slot("dear").unwrap();
    let outcome = |i: usize| {
        let id = ledger.accepted[i];
        (ledger.terminal[&id].event, ledger.terminal[&id].carrier)
    };
    // Under a ceiling only the cheap carrier is a candidate: no failover, the attempts run out.
    for i in 0..2 {
        let (event, carrier) = outcome(i);
        assert!(matches!(event, Event::Failed(_)), "{event:?}");
        assert_ne!(carrier, Some(dear));
        let tried_dear = ledger.events.iter().any(|e| {
            e.id == ledger.accepted[i]
                && matches!(e.event, Event::Submitted { carrier, .. } if carrier == dear)
        });
        assert!(
            !tried_dear,
            "message {i} went to a carrier over its ceiling"
        );
    }
    // Without one it fails over to the dear carrier and is delivered.
    for i in 2..4 {
        assert_eq!(outcome(i), (Event::Delivered, Some(dear)));
    }
}

/// Issue 18 item 5: a row dated a moment ahead takes effect at its instant, with no reload.
#[tokio::test]
async fn a_dated_row_takes_effect_at_its_instant_without_a_reload() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Whole seconds (RFC 3339 as written in a deck): 2 s ahead, at least 1 s away.
    let at = now + 2;
    let extra = format!(
        "[[carriers]]\nid = \"promo\"\ntps = 1000\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"promo\"\ncost = 0.0010\nvalid_from = \"{}\"\n",
        smsroute_config::format_instant(at as i64 * 1_000)
    );
    let config = config(&[("regular", 1000, "0.0030")], &extra);
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, priced(1, &[])));
    // Past the instant and one dispatcher tick.
    let wait = (at * 1000).saturating_sub(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    ) + 300;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    assert!(ledger.submit(&router, priced(2, &[])));
    ledger.settle(&mut events).await;
    let carrier = |i: usize| ledger.terminal[&ledger.accepted[i]].carrier_name;
    assert_eq!((carrier(0), carrier(1)), (Some("regular"), Some("promo")));
}
