//! Receipts across nodes (issue 19): the router tells its relay which carrier ids it waits
//! for, hands it the final receipts it does not wait for, and takes a receipt another node's
//! bind received with `receipt_from_peer`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use smsroute_carrier::{Receipt, ReceiptAck, ReceiptRelay};
use smsroute_delivery::{Event, ReceiptStatus};
use smsroute_engine::EngineOptions;
use smsroute_sim::{Behaviour, Latency};

/// An answer to a receipt and where it is recorded once given (taken or not).
fn recorded_answer() -> (ReceiptAck, Arc<Mutex<Option<bool>>>) {
    let answer = Arc::new(Mutex::new(None));
    let answered = answer.clone();
    let ack = ReceiptAck::new(move |taken| *answered.lock().unwrap() = Some(taken));
    (ack, answer)
}

#[derive(Debug, Default)]
struct Recorded {
    waiting: Mutex<Vec<(String, Vec<String>)>>,
    unmatched: Mutex<Vec<(String, String)>>,
}

impl ReceiptRelay for Recorded {
    fn waiting(&self, carrier: &str, ids: &[&str]) {
        let ids = ids.iter().map(|id| id.to_string()).collect();
        self.waiting
            .lock()
            .unwrap()
            .push((carrier.to_string(), ids));
    }

    fn unmatched(&self, carrier: &str, receipt: &Receipt, ack: ReceiptAck) {
        let entry = (carrier.to_string(), receipt.message_id.to_string());
        self.unmatched.lock().unwrap().push(entry);
        ack.taken();
    }
}

fn receipt(id: &str) -> Receipt {
    Receipt {
        message_id: id.into(),
        status: ReceiptStatus::Delivered,
        error: 0,
        possible_duplicate: false,
    }
}

#[tokio::test(start_paused = true)]
async fn a_receipt_from_another_nodes_bind_finishes_the_message() {
    let relay = Arc::new(Recorded::default());
    // The carrier's own receipt would come only after a day.
    let slow = Behaviour {
        receipt_delay: Latency::Fixed(24 * 3600 * S),
        ..Behaviour::default()
    };
    let config = config(&[("a", 100, "0.004")], "");
    let options = EngineOptions::default().receipt_relay(relay.clone());
    let (router, mut events) = start(&config, options, &[("a", slow)]);
    let mut ledger = Ledger::default();
    assert!(ledger.submit(&router, message(1)));
    let mut ids = Vec::new();
    while ids.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        ledger.poll(&mut events);
        ids = relay.waiting.lock().unwrap().clone();
    }
    let (carrier, part_ids) = ids.remove(0);
    assert_eq!((carrier.as_str(), part_ids.len()), ("a", 1));
    // Another node's bind took the receipt and passed it here; its answer says taken once
    // the router has it (the other node's inbox keeps it until then).
    let (ack, answer) = recorded_answer();
    assert!(router.receipt_from_peer("a", receipt(&part_ids[0]), ack));
    ledger.settle(&mut events).await;
    assert_eq!(ledger.count(|e| *e == Event::Delivered), 1);
    assert_eq!(*answer.lock().unwrap(), Some(true));
    assert!(relay.unmatched.lock().unwrap().is_empty());
    // One nobody here waits for goes to the relay; one for a carrier this router does not
    // have is dropped, answered taken (no router here could use it).
    assert!(router.receipt_from_peer("a", receipt("not-ours"), ReceiptAck::none()));
    let (ack, answer) = recorded_answer();
    assert!(router.receipt_from_peer("nope", receipt("x"), ack));
    assert_eq!(*answer.lock().unwrap(), Some(true));
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *relay.unmatched.lock().unwrap(),
        [("a".to_string(), "not-ours".to_string())]
    );
    // A router that stopped cannot take one now: the caller keeps it for later.
    router.shutdown(Duration::from_secs(1)).await;
    assert!(!router.receipt_from_peer("a", receipt("late"), ReceiptAck::none()));
}
