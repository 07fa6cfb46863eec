//! Opt-outs shared through a real `redis-server` (or a Redis Cluster): a STOP on one node blocks sends on the
//! others within a second, an opt-in clears it everywhere, a node joining brings its own
//! opt-outs and takes the others', and changes made while Redis is down are shared when it
//! comes back (empty).

use std::sync::Arc;
use std::time::{Duration, Instant};

use smsroute_cluster::testing::RedisServer;
use smsroute_cluster::{OptOutSync, RedisTarget};
use smsroute_policy::Suppression;
use smsroute_types::E164;

fn n(s: &str) -> E164 {
    E164::parse(s).unwrap()
}

/// How long until `holds` is true, failing after `within`.
fn until(within: Duration, what: &str, holds: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !holds() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

fn node(redis: &RedisTarget) -> (Arc<Suppression>, OptOutSync) {
    let list = Arc::new(Suppression::in_memory());
    let sync = OptOutSync::start(redis, list.clone()).unwrap();
    (list, sync)
}

smsroute_cluster::on_server_and_cluster!(
    a_stop_on_one_node_blocks_the_others_within_a_second,
    a_stop_on_one_node_blocks_the_others_within_a_second_on_a_redis_cluster,
    stop_reaches_every_node
);

fn stop_reaches_every_node(redis: &RedisTarget) {
    let (a, _a_sync) = node(redis);
    let (b, _b_sync) = node(redis);
    let number = n("447700900123");
    a.opt_out(&number, Some("ACME")).unwrap();
    let took = until(Duration::from_secs(1), "STOP reaches b", || {
        b.is_suppressed(&number, "ACME")
    });
    eprintln!("opt-out seen on the other node after {took:?}");
    assert!(
        !b.is_suppressed(&number, "OTHER"),
        "only the sender stopped"
    );
    b.opt_in(&number).unwrap();
    until(Duration::from_secs(1), "START reaches a", || {
        !a.is_suppressed(&number, "ACME")
    });
    // A node joining late takes every opt-out and brings its own.
    a.opt_out(&n("447700900200"), None).unwrap();
    until(Duration::from_secs(1), "b", || {
        b.is_suppressed(&n("447700900200"), "X")
    });
    let c = Arc::new(Suppression::in_memory());
    c.opt_out(&n("447700900300"), Some("Shop Two")).unwrap();
    let _c_sync = OptOutSync::start(redis, c.clone()).unwrap();
    assert!(c.is_suppressed(&n("447700900200"), "X"), "taken at start");
    until(Duration::from_secs(1), "c's own opt-out reaches a", || {
        a.is_suppressed(&n("447700900300"), "Shop Two")
    });
}

#[test]
fn changes_while_redis_is_down_are_shared_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (a, a_sync) = node(&redis.target());
    let (b, _b_sync) = node(&redis.target());
    a.opt_out(&n("447700900001"), None).unwrap();
    until(Duration::from_secs(1), "before the outage", || {
        b.is_suppressed(&n("447700900001"), "X")
    });
    redis.kill();
    until(Duration::from_secs(2), "a notices", || {
        !a_sync
            .stats()
            .redis_up
            .load(std::sync::atomic::Ordering::Relaxed)
    });
    a.opt_out(&n("447700900002"), None).unwrap();
    assert!(a.is_suppressed(&n("447700900002"), "X"), "local at once");
    redis.restart().unwrap();
    // Redis came back empty: a brings both its opt-outs back, b takes the new one.
    until(
        Duration::from_secs(5),
        "the outage's opt-out reaches b",
        || b.is_suppressed(&n("447700900002"), "X"),
    );
    assert!(b.is_suppressed(&n("447700900001"), "X"));
}
