//! Capacity-aware routing (issue 18): demand above the cheapest carriers' contracts spills to
//! the next in cost order, and messages queued past a lane's longest wait move, after a
//! reload too.

mod common;

use std::time::Duration;

use common::*;
use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, Router};
use smsroute_sim::SimCarrier;
use smsroute_types::{CarrierSlot, MessageId};

/// Three carriers at 1,000 tps: `a` and `b` at 0.0040, `c` at `c_cost`.
fn deck(c_cost: &str, extra: &str) -> Config {
    config(
        &[
            ("a", 1000, "0.0040"),
            ("b", 1000, "0.0040"),
            ("c", 1000, c_cost),
        ],
        extra,
    )
}

/// Offers `rate` messages a second for `seconds`, in 10 ms steps; returns the ids taken.
async fn offer(
    router: &Router<SimCarrier>,
    ledger: &mut Ledger,
    events: &mut smsroute_engine::EventStream,
    rate: u64,
    seconds: u64,
    first: u64,
) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for step in 0..seconds * 100 {
        for i in 0..rate / 100 {
            let n = first + step * rate / 100 + i;
            if ledger.submit(router, message(n)) {
                ids.push(*ledger.accepted.last().unwrap());
            }
        }
        ledger.poll(events);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ids
}

/// Submits per carrier with a router time in `from..to`.
fn submits_between(ledger: &Ledger, carrier: u16, from: u64, to: u64) -> usize {
    ledger
        .submits_to(CarrierSlot(carrier))
        .into_iter()
        .filter(|&at| (from..to).contains(&at))
        .count()
}

/// Regression (issue 18): each message's carrier was fixed at acceptance by price alone, so
/// with demand above the two cheap contracts the dearer carrier sat idle and a third of the
/// contracted rate went unused.
#[tokio::test(start_paused = true)]
async fn demand_above_the_cheap_contracts_spills_to_the_next_carrier() {
    let (router, mut events) = start(&deck("0.0050", ""), EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    offer(&router, &mut ledger, &mut events, 4_000, 10, 0).await;
    // Past the first seconds (the queues filling to their longest wait), every contract is
    // used: at least 97 % of 3,000 a second.
    let (from, to) = (3 * S, 10 * S);
    let per_carrier: Vec<usize> = (0..3)
        .map(|c| submits_between(&ledger, c, from, to))
        .collect();
    let total: usize = per_carrier.iter().sum();
    assert!(
        total as f64 >= 0.97 * 3_000.0 * 7.0,
        "used {total} of 21,000 contracted: {per_carrier:?}"
    );
    // The cheap carriers are full before the dear one is used: each runs at its contract.
    for c in 0..2 {
        assert!(
            per_carrier[c] as f64 >= 0.97 * 7_000.0,
            "cheap carrier {c} under its contract: {per_carrier:?}"
        );
    }
    ledger.settle(&mut events).await;
    assert_eq!(
        ledger.count(|e| *e == Event::Delivered),
        ledger.accepted.len()
    );
}

#[tokio::test(start_paused = true)]
async fn under_the_cheap_contracts_the_dear_carrier_gets_nothing() {
    let (router, mut events) = start(&deck("0.0050", ""), EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    offer(&router, &mut ledger, &mut events, 1_800, 5, 0).await;
    ledger.settle(&mut events).await;
    assert_eq!(ledger.submits_to(CarrierSlot(2)).len(), 0);
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 9_000);
}

/// Regression (issue 18): after a reload made the third carrier as cheap, it sat idle while
/// the others had seconds of queue. Messages queued past the longest wait move to it.
#[tokio::test(start_paused = true)]
async fn queued_messages_move_to_a_carrier_a_reload_made_as_cheap() {
    // No spillover at first: the dear carrier is never used however long the queues grow.
    let patient = "[routing]\nmax_queue_wait_ms = 86400000\n";
    let (router, mut events) = start(&deck("0.0050", patient), EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    let before = offer(&router, &mut ledger, &mut events, 4_000, 3, 0).await;
    assert_eq!(ledger.submits_to(CarrierSlot(2)).len(), 0);
    // 12,000 offered, about 6,000 sent: the rest waits on a and b.
    let reloaded_at = ledger.events.last().map_or(0, |e| e.at);
    router.reload(&deck("0.0040", "")).unwrap();
    ledger.settle(&mut events).await;
    let moved = ledger
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::Submitted {
                    carrier: CarrierSlot(2),
                    ..
                }
            ) && before.contains(&e.id)
        })
        .count();
    assert!(
        moved >= 1_000,
        "only {moved} messages queued before the reload went to the carrier it made as cheap"
    );
    // With three carriers draining instead of two, the backlog clears in about 2 s, not 3.
    let last = ledger.events.iter().map(|e| e.at).max().unwrap();
    assert!(
        last - reloaded_at < 2_600 * MS,
        "backlog took {} ms after the reload",
        (last - reloaded_at) / MS
    );
}

/// Issue 18 review: a queued message whose carrier a reload made dearer than another with
/// room moves there, even when its queue is within the longest wait.
#[tokio::test(start_paused = true)]
async fn a_reload_that_makes_another_carrier_cheaper_moves_the_queue() {
    let patient = "[routing]\nmax_queue_wait_ms = 86400000\n";
    let before = config(&[("a", 100, "0.0040"), ("c", 100, "0.0050")], patient);
    let (router, mut events) = start(&before, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    for n in 0..300 {
        assert!(ledger.submit(&router, message(n)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    ledger.poll(&mut events);
    let after = config(&[("a", 100, "0.0040"), ("c", 100, "0.0030")], patient);
    router.reload(&after).unwrap();
    ledger.settle(&mut events).await;
    let on_c = ledger
        .accepted
        .iter()
        .filter(|id| ledger.terminal[id].carrier == Some(CarrierSlot(1)))
        .count();
    // About 60 went to `a` before the reload (a burst of 10, then 100/s); the rest moved.
    assert!(
        on_c >= 200,
        "only {on_c} of 300 moved to the carrier made cheaper"
    );
}
