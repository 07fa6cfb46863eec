//! Account spend through the engine: debit at submit, failover differences, refunds.

mod common;

use common::*;
use smsroute_delivery::{Event, FailReason};
use smsroute_engine::{EngineOptions, Rejection};
use smsroute_sim::{Behaviour, ErrorMix};
use smsroute_types::{Message, Money};

fn billed(account: &str, n: u64) -> Message {
    Message::builder(&format!("4477009{n:05}"), "ACME", "hi")
        .tag("account", account)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_best_route_is_paid_at_submit_and_an_empty_account_is_refused() {
    let config = config(
        &[("dear", 1000, "0.0040"), ("cheap", 1000, "0.0030")],
        "[[accounts]]\nid = \"acme\"\nbalance = 0.0100\n",
    );
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    for n in 0..3 {
        assert!(ledger.submit(&router, billed("acme", n)));
    }
    assert_eq!(router.balance("acme"), Some(Money::from_micros(1_000)));
    assert_eq!(
        submit(&router, billed("acme", 3)),
        Err(Rejection::InsufficientFunds)
    );
    assert_eq!(
        submit(&router, billed("nobody", 4)),
        Err(Rejection::InsufficientFunds)
    );
    assert!(ledger.submit(&router, message(5)), "no account: not billed");
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 4);
    assert_eq!(
        router.balance("acme"),
        Some(Money::from_micros(1_000)),
        "no refund once sent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failover_to_a_dearer_carrier_pays_the_difference_or_fails_and_refunds() {
    let refuse = refusing();
    let config = config(
        &[("dear", 1000, "0.0040"), ("cheap", 1000, "0.0030")],
        "[[accounts]]\nid = \"acme\"\nbalance = 0.0070\n",
    );
    let (router, mut events) = start(&config, EngineOptions::default(), &[("cheap", refuse)]);
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, billed("acme", 1)));
    assert!(ledger.submit(&router, billed("acme", 2)));
    assert_eq!(router.balance("acme"), Some(Money::from_micros(1_000)));
    ledger.settle(&mut events).await;
    // One failover was paid (+0.001), the other could not be and was refunded in full.
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 1);
    assert_eq!(
        ledger.count(|e| *e == Event::Failed(FailReason::InsufficientFunds)),
        1
    );
    assert_eq!(router.balance("acme"), Some(Money::from_micros(3_000)));
}

#[tokio::test(start_paused = true)]
async fn a_message_no_carrier_took_is_refunded_unless_the_policy_says_not() {
    let permanent = Behaviour {
        errors: ErrorMix {
            permanent: 1.0,
            ..ErrorMix::default()
        },
        ..Behaviour::default()
    };
    for (refund, expect) in [("true", 10_000), ("false", 7_000)] {
        let config = config(
            &[("cheap", 1000, "0.0030")],
            &format!(
                "[policy]\nrefund_on_failure = {refund}\n\n[[accounts]]\nid = \"acme\"\nbalance = 0.0100\n"
            ),
        );
        let (router, mut events) = start(
            &config,
            EngineOptions::default(),
            &[("cheap", permanent.clone())],
        );
        let mut ledger = Ledger::default();
        assert!(ledger.submit(&router, billed("acme", 1)));
        ledger.settle(&mut events).await;
        assert!(matches!(
            ledger.terminal.values().next().unwrap().event,
            Event::Failed(FailReason::Permanent { .. })
        ));
        assert_eq!(
            router.balance("acme"),
            Some(Money::from_micros(expect)),
            "refund {refund}"
        );
    }
}

/// Issue 19: with balances leased from a cluster, an account opens empty and holds what is
/// credited to it; what is taken back is no longer spendable here.
#[tokio::test(start_paused = true)]
async fn a_leased_account_opens_empty_and_spends_what_it_is_credited() {
    let config = config(
        &[("cheap", 1000, "0.0030")],
        "[[accounts]]\nid = \"acme\"\nbalance = 1.0\n",
    );
    let options = EngineOptions::default().leased_balances(true);
    let (router, mut events) = start(&config, options, &[]);
    let mut ledger = Ledger::default();
    assert_eq!(router.balance("acme"), Some(Money::from_micros(0)));
    assert_eq!(
        submit(&router, billed("acme", 1)),
        Err(Rejection::InsufficientFunds)
    );
    assert!(router.credit("acme", 7_000));
    assert!(!router.credit("nobody", 7_000));
    assert!(ledger.submit(&router, billed("acme", 2)));
    assert_eq!(router.debit_up_to("acme", 10_000), 4_000, "what was left");
    assert_eq!(
        submit(&router, billed("acme", 3)),
        Err(Rejection::InsufficientFunds)
    );
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 1);
}
