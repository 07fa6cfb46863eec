//! Receipts on any node, through a real `redis-server`: a receipt that comes on another
//! node's bind reaches the node that waits for it; one nobody (else) waits for stays.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smsroute_carrier::{Receipt, ReceiptAck};
use smsroute_cluster::testing::RedisCluster;
use smsroute_cluster::{ReceiptExchange, RedisTarget};
use smsroute_delivery::ReceiptStatus;

fn receipt(id: &str) -> Receipt {
    Receipt {
        message_id: id.into(),
        status: ReceiptStatus::Undeliverable,
        error: 11,
        possible_duplicate: true,
    }
}

type Taken = Arc<Mutex<Vec<(String, Receipt)>>>;

fn node(redis: &RedisTarget, id: &str) -> (ReceiptExchange, Taken) {
    let exchange = ReceiptExchange::start(redis, id, Duration::from_secs(60)).unwrap();
    let taken: Taken = Arc::default();
    let sink = taken.clone();
    exchange.deliver_to(move |carrier, receipt, ack| {
        sink.lock().unwrap().push((carrier.to_string(), receipt));
        ack.taken();
        true
    });
    (exchange, taken)
}

/// Node "b", its bind taking receipts m-1 and m-2, which `a` waits for (recorded first): b
/// passes them to a's inbox.
fn pass_two_to_a(target: &RedisTarget, a: &ReceiptExchange) -> ReceiptExchange {
    let (b, _) = node(target, "b");
    a.relay().waiting("uk", &["m-1", "m-2"]);
    let owned = |x: &ReceiptExchange| x.stats().owned.load(std::sync::atomic::Ordering::Relaxed);
    wait("ownership recorded", || owned(a) == 2);
    for id in ["m-1", "m-2"] {
        b.relay().unmatched("uk", &receipt(id), ReceiptAck::none());
    }
    b
}

fn wait(what: &str, holds: impl Fn() -> bool) {
    let start = Instant::now();
    while !holds() {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

smsroute_cluster::on_server_and_cluster!(
    a_receipt_on_another_nodes_bind_reaches_its_owner,
    a_receipt_on_another_nodes_bind_reaches_its_owner_on_a_redis_cluster,
    reaches_its_owner
);

fn reaches_its_owner(redis: &RedisTarget) {
    let (a, a_took) = node(redis, "a");
    let (b, b_took) = node(redis, "b");
    a.relay().waiting("uk", &["m-1", "m-2"]);
    b.relay().waiting("uk", &["m-3"]);
    let owned = |x: &ReceiptExchange| x.stats().owned.load(std::sync::atomic::Ordering::Relaxed);
    wait("ownership recorded", || owned(&a) == 2 && owned(&b) == 1);
    // b's bind got a's receipt, and its own, and one for nobody.
    b.relay()
        .unmatched("uk", &receipt("m-2"), ReceiptAck::none());
    b.relay()
        .unmatched("uk", &receipt("m-3"), ReceiptAck::none());
    b.relay()
        .unmatched("uk", &receipt("m-9"), ReceiptAck::none());
    b.relay()
        .unmatched("fr", &receipt("m-1"), ReceiptAck::none());
    wait("a takes its receipt", || a_took.lock().unwrap().len() == 1);
    let (carrier, got) = a_took.lock().unwrap()[0].clone();
    assert_eq!((carrier.as_str(), got), ("uk", receipt("m-2")));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(a_took.lock().unwrap().len(), 1, "nothing else went to a");
    assert!(
        b_took.lock().unwrap().is_empty(),
        "b's own and nobody's stay on b"
    );
    assert_eq!(
        b.stats()
            .forwarded
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// On a Redis Cluster, one owner's inbox is on a primary that crashes: the receipts for the
/// other owner pass once (not again with every retry of the first's), and the first owner's
/// reaches it when its primary is back.
#[test]
fn a_failing_primary_delays_only_its_owners_receipts() {
    let Some(mut redis) = RedisCluster::start() else {
        return;
    };
    let target = redis.target();
    let inbox = |node: &str| format!("smsroute:{{node:{node}}}:receipts");
    let owner_key = |id: &str| format!("smsroute:rcpt:uk:{id}");
    let down = redis.primary_of(&inbox("a"));
    // Names whose keys are not on the primary that goes down.
    let other_owner = redis.name_off(down, "n", inbox, &[]);
    let receiver = redis.name_off(down, "n", inbox, &[&other_owner]);
    let for_a = redis.name_off(down, "m-", owner_key, &[]);
    let for_other = redis.name_off(down, "m-", owner_key, &[&for_a]);
    let (a, a_took) = node(&target, "a");
    let (other, other_took) = node(&target, &other_owner);
    let (b, _) = node(&target, &receiver);
    a.relay().waiting("uk", &[for_a.as_str()]);
    other.relay().waiting("uk", &[for_other.as_str()]);
    let owned = |x: &ReceiptExchange| x.stats().owned.load(std::sync::atomic::Ordering::Relaxed);
    wait("ownership recorded", || {
        owned(&a) == 1 && owned(&other) == 1
    });
    redis.kill_node(down);
    b.relay()
        .unmatched("uk", &receipt(&for_a), ReceiptAck::none());
    b.relay()
        .unmatched("uk", &receipt(&for_other), ReceiptAck::none());
    wait("the other owner takes its receipt", || {
        other_took.lock().unwrap().len() == 1
    });
    // Several exchanges fail on a's inbox meanwhile.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        other_took.lock().unwrap().len(),
        1,
        "passed once, not again with each failed exchange"
    );
    assert!(a_took.lock().unwrap().is_empty());
    redis.restart_node(down).unwrap();
    wait("a takes its receipt once its primary is back", || {
        a_took.lock().unwrap().len() == 1
    });
    assert_eq!(a_took.lock().unwrap()[0].1, receipt(&for_a));
}

/// An owner deletes a receipt from its inbox only once its router has it safe: one answered
/// "not taken" is handed over again, and an owner killed before it had them safe gets them
/// again when it comes back (the receipt a node killed at the wrong moment used to lose,
/// leaving its message waiting for it for the whole receipt timeout).
#[test]
fn a_receipt_stays_in_its_owners_inbox_until_the_owner_has_it_safe() {
    let Some(redis) = smsroute_cluster::testing::RedisServer::start() else {
        return;
    };
    let target = redis.target();
    // a's router holds what it is handed without answering yet (its journal not synced).
    type Held = Arc<Mutex<Vec<(Receipt, ReceiptAck)>>>;
    let held: Held = Arc::default();
    let a = ReceiptExchange::start(&target, "a", Duration::from_secs(60)).unwrap();
    let sink = held.clone();
    a.deliver_to(move |_, receipt, ack| {
        sink.lock().unwrap().push((receipt, ack));
        true
    });
    let _b = pass_two_to_a(&target, &a);
    let ids = |held: &Held| {
        let mut ids: Vec<String> = held
            .lock()
            .unwrap()
            .iter()
            .map(|(r, _)| r.message_id.to_string())
            .collect();
        ids.sort();
        ids
    };
    wait("a is handed both", || held.lock().unwrap().len() == 2);
    // m-2 answered not taken (its router stopped first): handed over again, m-1 not.
    let refused = {
        let mut held = held.lock().unwrap();
        let at = held
            .iter()
            .position(|(r, _)| &*r.message_id == "m-2")
            .unwrap();
        held.remove(at)
    };
    drop(refused);
    wait("m-2 handed over again", || held.lock().unwrap().len() == 2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ids(&held), ["m-1", "m-2"], "each in hand once");
    // a is killed before either is safe, then comes back.
    drop(a);
    let (a, a_took) = node(&target, "a");
    wait("the new a is handed both again", || {
        a_took.lock().unwrap().len() == 2
    });
    // Taken now (the helper answers at once): deleted on a's next exchange, so never handed
    // over again.
    let inbox_length = || {
        smsroute_cluster::testing::query::<usize>(
            &target,
            redis::cmd("XLEN").arg("smsroute:{node:a}:receipts"),
        )
        .unwrap()
    };
    wait("taken receipts leave the inbox", || inbox_length() == 0);
    drop(a);
    let (_a, again) = node(&target, "a");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        again.lock().unwrap().is_empty(),
        "nothing handed over again"
    );
    drop(held);
}

/// A receipt the owner's router cannot take now (its queue full, or it stopped) stays in the
/// inbox and is handed over on a later exchange, in order with those after it.
#[test]
fn a_receipt_the_router_cannot_take_now_waits_in_the_inbox() {
    let Some(redis) = smsroute_cluster::testing::RedisServer::start() else {
        return;
    };
    let target = redis.target();
    let a = ReceiptExchange::start(&target, "a", Duration::from_secs(60)).unwrap();
    let took: Taken = Arc::default();
    let (sink, refusals) = (took.clone(), Arc::new(Mutex::new(0)));
    let refused = refusals.clone();
    a.deliver_to(move |carrier, receipt, ack| {
        let mut refused = refused.lock().unwrap();
        if *refused < 3 {
            *refused += 1;
            return false;
        }
        sink.lock().unwrap().push((carrier.to_string(), receipt));
        ack.taken();
        true
    });
    let _b = pass_two_to_a(&target, &a);
    wait("a takes both once its router can", || {
        took.lock().unwrap().len() == 2
    });
    let ids: Vec<String> = took
        .lock()
        .unwrap()
        .iter()
        .map(|(_, r)| r.message_id.to_string())
        .collect();
    assert_eq!(ids, ["m-1", "m-2"]);
    assert_eq!(*refusals.lock().unwrap(), 3);
}
