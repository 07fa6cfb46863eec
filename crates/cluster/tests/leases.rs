//! Three nodes leasing one contract from a real `redis-server` (started here on a free port),
//! or from a real Redis Cluster of three: the contract's bound holds over every window and at
//! least 95 % of it is used while the nodes want more; a killed node's share goes to the
//! others. Without `redis-server` on the PATH these tests say so and pass, unless
//! `SMSROUTE_REQUIRE_REDIS` is set (CI sets it).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{count_between, max_in_window};
use smsroute_cluster::testing::{RedisCluster, RedisServer};
use smsroute_cluster::{LeaseOptions, Leaser, RedisTarget, SharedBucket};

const TPS: f64 = 1_000.0;
const BURST: u32 = 100;

/// A node sending as fast as its pool allows, one segment a message, until `stop`; the
/// instants of its sends (from `epoch`) go to `sends`.
fn sender(
    leaser: Arc<Leaser>,
    epoch: Instant,
    sends: Arc<Mutex<Vec<Duration>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let pool = leaser.pool(0).clone();
        while !stop.load(Ordering::Relaxed) {
            if pool.try_take(1, Instant::now()) {
                sends.lock().unwrap().push(epoch.elapsed());
            } else {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    })
}

/// A node leasing the shared contract (its pool 0) and `others`.
fn node_with(redis: &RedisTarget, others: &[SharedBucket]) -> Arc<Leaser> {
    static NODES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let options = LeaseOptions {
        redis: redis.clone(),
        node_id: format!("node-{}", NODES.fetch_add(1, Ordering::Relaxed)),
        lease: Duration::from_millis(50),
    };
    let mut buckets = vec![SharedBucket::carrier("shared", TPS, BURST)];
    buckets.extend_from_slice(others);
    Arc::new(Leaser::start(&options, &buckets).unwrap())
}

fn node(redis: &RedisTarget) -> Arc<Leaser> {
    node_with(redis, &[])
}

#[test]
fn three_nodes_keep_one_contract_and_use_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    keep_one_contract_and_use_it(&redis.target(), &[]);
}

/// On a Redis Cluster each node's lease round trip goes to every primary: the contract's
/// bucket and two others, each on its own primary.
#[test]
fn three_nodes_keep_one_contract_and_use_it_on_a_redis_cluster() {
    let Some(redis) = RedisCluster::start() else {
        return;
    };
    let target = redis.target();
    let others = [
        SharedBucket::carrier("fr-beta", TPS, BURST),
        SharedBucket::carrier("it-zeta", TPS, BURST),
    ];
    let primaries: std::collections::HashSet<usize> = ["shared", "fr-beta", "it-zeta"]
        .iter()
        .map(|id| redis.primary_of(&SharedBucket::carrier(id, TPS, BURST).key))
        .collect();
    assert_eq!(primaries.len(), 3, "the three buckets on three primaries");
    keep_one_contract_and_use_it(&target, &others);
}

/// Three nodes lease the shared contract (and `others`, untouched) and send as fast as their
/// leases allow for 3 s.
fn keep_one_contract_and_use_it(redis: &RedisTarget, others: &[SharedBucket]) {
    let epoch = Instant::now();
    let sends = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let nodes: Vec<_> = (0..3).map(|_| node_with(redis, others)).collect();
    let senders: Vec<_> = nodes
        .iter()
        .map(|n| sender(n.clone(), epoch, sends.clone(), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    // What each node judges its part of the contested contract (its lanes' queue waits
    // count with it): about a third each.
    let rates: Vec<f64> = nodes.iter().map(|n| n.pool(0).rate()).collect();
    stop.store(true, Ordering::Relaxed);
    senders.into_iter().for_each(|s| s.join().unwrap());
    for rate in &rates {
        assert!(
            (TPS / 10.0..=TPS * 0.8).contains(rate),
            "a node judges {rate:.0} a second its part of {TPS}: {rates:?}"
        );
    }
    eprintln!("judged parts of the contract: {rates:.0?}");
    let judged: f64 = rates.iter().sum();
    assert!(
        (TPS * 0.7..=TPS * 1.3).contains(&judged),
        "the parts add up to {judged:.0} of {TPS}"
    );
    let mut sends = sends.lock().unwrap().clone();
    sends.sort();
    let second = max_in_window(&sends, Duration::from_secs(1));
    let tenth = max_in_window(&sends, Duration::from_millis(100));
    assert!(
        second <= 1_100,
        "{second} sends in one second: over tps + burst"
    );
    assert!(
        tenth <= 200,
        "{tenth} sends in 100 ms: over tps × 0.1 + burst"
    );
    let used = count_between(
        &sends,
        Duration::from_millis(500),
        Duration::from_millis(2_500),
    );
    assert!(used >= 1_900, "{used} of 2,000 contracted sends in 2 s");
    let round_trips: u64 = nodes
        .iter()
        .map(|n| n.stats().round_trips.load(Ordering::Relaxed))
        .sum();
    eprintln!(
        "3 nodes: {used} sends in 2 s, most {second} in 1 s and {tenth} in 100 ms, {round_trips} round trips for {}",
        sends.len()
    );
    assert!(
        round_trips * 10 <= sends.len() as u64,
        "{round_trips} round trips for {} sends",
        sends.len()
    );
}

#[test]
fn a_killed_nodes_share_goes_to_the_others_within_a_lease() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let epoch = Instant::now();
    let sends = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_killed = Arc::new(AtomicBool::new(false));
    let killed = node(&redis.target());
    let survivors: Vec<_> = (0..2).map(|_| node(&redis.target())).collect();
    let mut senders: Vec<_> = survivors
        .iter()
        .map(|n| sender(n.clone(), epoch, sends.clone(), stop.clone()))
        .collect();
    let killed_sender = sender(killed.clone(), epoch, sends.clone(), stop_killed.clone());
    std::thread::sleep(Duration::from_secs(1));
    stop_killed.store(true, Ordering::Relaxed);
    killed_sender.join().unwrap();
    Arc::into_inner(killed).unwrap().kill();
    let killed_at = epoch.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    senders.drain(..).for_each(|s| s.join().unwrap());
    let mut sends = sends.lock().unwrap().clone();
    sends.sort();
    assert!(max_in_window(&sends, Duration::from_secs(1)) <= 1_100);
    // From a lease (50 ms) after the kill, the two survivors use the whole contract.
    let from = killed_at + Duration::from_millis(100);
    let used = count_between(&sends, from, from + Duration::from_secs(1));
    eprintln!("after the kill: {used} sends in 1 s");
    assert!(
        used >= 950,
        "{used} of 1,000 contracted sends in the second after the kill"
    );
}

#[test]
fn with_redis_down_each_node_keeps_its_static_share_and_leasing_resumes() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let target = redis.target();
    let redis = &mut redis;
    static_share_while_down(&target, move || {
        redis.kill();
        Box::new(move || redis.restart().unwrap())
    });
}

/// A Redis Cluster's primary that holds the contract's slot crashes and comes back empty:
/// the same fallback and the same recovery as with one server.
#[test]
fn with_a_redis_cluster_primary_down_each_node_keeps_its_static_share_and_leasing_resumes() {
    let Some(mut redis) = RedisCluster::start() else {
        return;
    };
    let target = redis.target();
    let primary = redis.primary_of(&SharedBucket::carrier("shared", TPS, BURST).key);
    let redis = &mut redis;
    static_share_while_down(&target, move || {
        redis.kill_node(primary);
        Box::new(move || redis.restart_node(primary).unwrap())
    });
}

/// Two nodes send as fast as their leases allow; after 1 s `kill` takes Redis away, and the
/// restart it returns brings it back 1.5 s later.
fn static_share_while_down<'a>(
    target: &RedisTarget,
    kill: impl FnOnce() -> Box<dyn FnOnce() + 'a>,
) {
    let epoch = Instant::now();
    let sends = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let nodes: Vec<_> = (0..2).map(|_| node(target)).collect();
    let senders: Vec<_> = nodes
        .iter()
        .map(|n| sender(n.clone(), epoch, sends.clone(), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let restart = kill();
    std::thread::sleep(Duration::from_millis(1_500));
    let down = nodes
        .iter()
        .all(|n| !n.stats().redis_up.load(Ordering::Relaxed));
    restart();
    std::thread::sleep(Duration::from_millis(1_500));
    stop.store(true, Ordering::Relaxed);
    senders.into_iter().for_each(|s| s.join().unwrap());
    assert!(down, "both nodes noticed Redis was gone");
    assert!(
        nodes
            .iter()
            .all(|n| n.stats().redis_up.load(Ordering::Relaxed)),
        "both nodes lease from Redis again"
    );
    let mut sends = sends.lock().unwrap().clone();
    sends.sort();
    let most = max_in_window(&sends, Duration::from_secs(1));
    // Each node's static share is half the contract (two nodes seen live).
    let outage = count_between(
        &sends,
        Duration::from_millis(1_300),
        Duration::from_millis(2_300),
    );
    let after = count_between(
        &sends,
        Duration::from_millis(3_000),
        Duration::from_millis(4_000),
    );
    eprintln!(
        "Redis down: most {most} in 1 s, {outage} in 1 s of the outage, {after} in 1 s after"
    );
    assert!(most <= 1_100, "{most} sends in one second");
    assert!(outage >= 900, "{outage} sends in a second without Redis");
    assert!(
        after >= 950,
        "{after} sends in a second after Redis came back"
    );
}

/// Why a leaser of the shared contract on `redis` did not start.
fn start_error(redis: RedisTarget) -> String {
    let options = LeaseOptions {
        redis,
        node_id: "test".into(),
        lease: Duration::from_millis(50),
    };
    let bucket = SharedBucket::carrier("shared", TPS, BURST);
    Leaser::start(&options, &[bucket])
        .err()
        .unwrap()
        .to_string()
}

#[test]
fn an_unreachable_redis_is_an_error_naming_it_without_its_password() {
    let error = start_error(RedisTarget::Server("redis://:hunter2@127.0.0.1:1".into()));
    assert!(
        error.starts_with("redis redis://***@127.0.0.1:1: "),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn a_redis_cluster_node_given_as_one_server_is_refused_by_name() {
    let Some(redis) = RedisCluster::start() else {
        return;
    };
    let error = start_error(RedisTarget::Server(redis.urls[0].clone()));
    assert!(
        error.contains("a node of a Redis Cluster") && error.contains("redis_cluster"),
        "{error}"
    );
}

#[test]
fn an_unreachable_redis_cluster_is_an_error_naming_its_nodes_without_passwords() {
    let error = start_error(RedisTarget::Cluster(vec![
        "redis://:hunter2@127.0.0.1:1".into(),
        "redis://:hunter2@127.0.0.1:2".into(),
    ]));
    assert!(
        error.starts_with("redis cluster [redis://***@127.0.0.1:1, redis://***@127.0.0.1:2]: "),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn a_target_prints_without_passwords() {
    let server = RedisTarget::Server("redis://:hunter2@10.0.0.1:6379".into());
    let cluster = RedisTarget::Cluster(vec!["redis://user:hunter2@10.0.0.2:6379".into()]);
    for printed in [format!("{server:?}"), format!("{cluster:?}")] {
        assert!(printed.contains("10.0.0."), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}

/// An ACL user without `INFO` (which tells a Redis Cluster node from a server) may still
/// lease: the server is taken for what it was given as.
#[test]
fn a_user_without_info_may_still_lease() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    smsroute_cluster::testing::query::<()>(
        &redis.target(),
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("router")
            .arg("on")
            .arg(">secret")
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .arg("-info"),
    )
    .unwrap();
    let url = redis.url.replace("redis://", "redis://router:secret@");
    let options = LeaseOptions {
        redis: RedisTarget::Server(url),
        node_id: "limited".into(),
        lease: Duration::from_millis(50),
    };
    let leaser = Leaser::start(&options, &[SharedBucket::carrier("shared", TPS, BURST)]);
    assert!(leaser.is_ok(), "{:?}", leaser.err().map(|e| e.to_string()));
}

#[test]
fn a_node_alone_on_a_contract_judges_it_all_its_own() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let lone = node(&redis.target());
    // More demand than the contract: Redis grants less than asked, and what it grants over
    // time (the whole contract: no one else asks) is the part this node judges its own, from
    // some 40 renewals (the first judgement's weight is under 2 % by then).
    let stop = Arc::new(AtomicBool::new(false));
    let sends = Arc::new(Mutex::new(Vec::new()));
    let saturating = sender(lone.clone(), Instant::now(), sends.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    saturating.join().unwrap();
    let rate = lone.pool(0).rate();
    let sent = sends.lock().unwrap().len() as f64;
    eprintln!("judged {rate:.0} tps of {TPS}; sent {sent} in 2 s");
    assert!(sent > 1.5 * TPS, "the node was saturated: {sent} sent");
    assert!(
        (rate - TPS).abs() <= 0.1 * TPS,
        "judged {rate:.0} of a {TPS} tps contract it has alone"
    );
}
