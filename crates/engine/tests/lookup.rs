//! Looking messages up and cancelling them by id (`Router::query`, `Router::cancel`).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use smsroute_config::Config;
use smsroute_delivery::{Event, FailReason};
use smsroute_engine::{CancelError, EngineOptions, Phase};
use smsroute_sim::{Behaviour, Latency};
use smsroute_types::{CarrierSlot, Message, MessageId};

fn deck() -> Config {
    Config::parse(
        "[[carriers]]\nid = \"alpha\"\ntps = 100\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"alpha\"\ncost = 0.01\n",
        "t.toml",
    )
    .unwrap()
}

#[tokio::test]
async fn a_scheduled_message_is_found_and_cancelled_once() {
    let (router, mut events) = start(&deck(), EngineOptions::default(), &[]);
    let later = Message::builder("447700900123", "ACME", "tomorrow")
        .client_ref("r1")
        .not_before(SystemTime::now() + Duration::from_secs(3600))
        .build()
        .unwrap();
    let id = router.try_submit(later).unwrap();
    let status = router.query(id).await.expect("unfinished");
    assert_eq!(status.phase, Phase::Scheduled);
    assert_eq!(status.attempts, 0);
    assert_eq!(status.message.client_ref(), Some("r1"));
    assert_eq!(router.cancel(id).await, Ok(()));
    let terminal = loop {
        let event = events.recv().await.unwrap();
        if event.is_terminal() {
            break event;
        }
    };
    assert_eq!(terminal.id, id);
    assert_eq!(terminal.event, Event::Failed(FailReason::Cancelled));
    assert!(router.query(id).await.is_none(), "finished: forgotten");
    assert_eq!(router.cancel(id).await, Err(CancelError::Unknown));
    assert_eq!(
        router.cancel(MessageId(999_999)).await,
        Err(CancelError::Unknown)
    );
}

#[tokio::test]
async fn a_message_its_carrier_accepted_is_too_late_to_cancel() {
    let slow_receipts = Behaviour {
        receipt_delay: Latency::Fixed(3_600_000_000_000),
        ..Behaviour::default()
    };
    let (router, _events) = start(
        &deck(),
        EngineOptions::default(),
        &[("alpha", slow_receipts)],
    );
    let id = router
        .try_submit(
            Message::builder("447700900123", "ACME", "now")
                .build()
                .unwrap(),
        )
        .unwrap();
    let mut status = router.query(id).await.unwrap();
    for _ in 0..200 {
        if matches!(status.phase, Phase::AwaitingReceipt { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = router.query(id).await.unwrap();
    }
    assert_eq!(
        status.phase,
        Phase::AwaitingReceipt {
            carrier: CarrierSlot(0)
        }
    );
    assert_eq!(status.carrier, Some("alpha"));
    assert_eq!(status.attempts, 1);
    assert_eq!(status.history.len(), 1);
    assert_eq!(
        router.cancel(id).await,
        Err(CancelError::TooLate(Phase::AwaitingReceipt {
            carrier: CarrierSlot(0)
        }))
    );
}
