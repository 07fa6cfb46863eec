//! Message ids: a gateway's own ids and the router's assigned ones never name two outstanding
//! messages (issue 14, defect 3).

mod common;

use common::*;
use smsroute_engine::{EngineOptions, Rejection};
use smsroute_types::MessageId;

fn own(n: u64, id: u64) -> smsroute_types::Message {
    let mut m = message(n);
    m.set_id(MessageId(id));
    m
}

#[tokio::test(start_paused = true)]
async fn an_own_id_already_outstanding_is_refused_and_free_again_once_terminal() {
    let config = config(&[("alpha", 100, "0.004")], "");
    let (router, mut events) = start(&config, EngineOptions::default(), &[]);
    let mut ledger = Ledger::default();
    assert_eq!(submit(&router, own(1, 500)), Ok(MessageId(500)));
    ledger.accepted.push(MessageId(500));
    assert_eq!(submit(&router, own(2, 500)), Err(Rejection::DuplicateId));
    assert_eq!(Rejection::DuplicateId.reason(), "duplicate_id");
    ledger.settle(&mut events).await;
    assert_eq!(
        ledger.terminal.len(),
        1,
        "one message numbered 500, one terminal event"
    );
    // Terminal: the id may be used again.
    assert_eq!(submit(&router, own(3, 500)), Ok(MessageId(500)));
}

#[tokio::test(start_paused = true)]
async fn assigned_ids_never_take_an_own_id_in_use_nor_the_other_way_round() {
    let config = config(&[("alpha", 100, "0.004")], "");
    let (router, _events) = start(&config, EngineOptions::default(), &[]);
    // The router would assign 1, 2, 3 next: a gateway takes 2 for itself.
    assert_eq!(submit(&router, own(1, 2)), Ok(MessageId(2)));
    let assigned: Vec<MessageId> = (0..3)
        .map(|n| submit(&router, message(n)).unwrap())
        .collect();
    assert!(!assigned.contains(&MessageId(2)), "{assigned:?}");
    // An own id an assigned message has is refused too.
    assert_eq!(
        submit(&router, own(4, assigned[0].0)),
        Err(Rejection::DuplicateId)
    );
    // Assigned ids go on above every own id seen.
    assert_eq!(submit(&router, own(5, 1_000)), Ok(MessageId(1_000)));
    assert!(submit(&router, message(6)).unwrap().0 > 1_000);
}
