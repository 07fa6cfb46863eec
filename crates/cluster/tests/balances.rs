//! A balance shared by two nodes through a real `redis-server`: both spend it as fast as they
//! can, and together they never spend more than it holds; what they did not spend goes back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smsroute_cluster::testing::{RedisCluster, RedisServer, query};
use smsroute_cluster::{BalanceLeaser, LocalBalances, RedisTarget};

/// A node's balances: what a router keeps.
#[derive(Default)]
struct Held(Mutex<HashMap<String, u64>>);

impl Held {
    /// Charges a message, as the router does: all of `micros` or nothing.
    fn charge(&self, account: &str, micros: u64) -> bool {
        let mut held = self.0.lock().unwrap();
        let balance = held.entry(account.into()).or_default();
        let enough = *balance >= micros;
        if enough {
            *balance -= micros;
        }
        enough
    }
}

impl LocalBalances for Held {
    fn held(&self, account: &str) -> u64 {
        self.0.lock().unwrap().get(account).copied().unwrap_or(0)
    }
    fn credit(&self, account: &str, micros: u64) {
        *self.0.lock().unwrap().entry(account.into()).or_default() += micros;
    }
    fn debit_up_to(&self, account: &str, micros: u64) -> u64 {
        let mut held = self.0.lock().unwrap();
        let balance = held.entry(account.into()).or_default();
        let taken = micros.min(*balance);
        *balance -= taken;
        taken
    }
}

const OPENING: u64 = 5_000_000;
const PRICE: u64 = 4_000;

/// Two nodes spend `opening` for `run_for`, each charge followed by `pause`, then stop:
/// what they spent, and what Redis holds after they gave back their allowances.
fn spend(redis: &RedisTarget, opening: u64, pause: Duration, run_for: Duration) -> (u64, u64) {
    let accounts = [("acme".to_string(), opening)];
    let spent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut nodes = Vec::new();
    let mut spenders = Vec::new();
    for _ in 0..2 {
        let held = Arc::new(Held::default());
        let leaser = BalanceLeaser::start(redis, &accounts, held.clone()).unwrap();
        let (spent, stop) = (spent.clone(), stop.clone());
        let local = held.clone();
        spenders.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if local.charge("acme", PRICE) {
                    spent.fetch_add(PRICE, Ordering::Relaxed);
                    std::thread::sleep(pause);
                } else {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        }));
        nodes.push((held, leaser));
    }
    std::thread::sleep(run_for);
    stop.store(true, Ordering::Relaxed);
    spenders.into_iter().for_each(|s| s.join().unwrap());
    // What the nodes hold goes back when they stop.
    for (held, leaser) in nodes {
        leaser.stop();
        assert_eq!(held.held("acme"), 0);
    }
    let left: u64 = query(
        redis,
        redis::cmd("GET").arg("smsroute:{account:acme}:balance"),
    )
    .unwrap();
    (spent.load(Ordering::Relaxed), left)
}

smsroute_cluster::on_server_and_cluster!(
    two_nodes_never_spend_more_than_the_shared_balance,
    two_nodes_never_spend_more_than_the_shared_balance_on_a_redis_cluster,
    never_overspent
);

/// Two nodes spend as fast as they can: the balance runs out, never overspent.
fn never_overspent(redis: &RedisTarget) {
    let (spent, left) = spend(redis, OPENING, Duration::ZERO, Duration::from_secs(2));
    eprintln!("spent {spent}, left {left} of {OPENING}");
    assert!(spent <= OPENING, "overspent: {spent} of {OPENING}");
    assert_eq!(spent + left, OPENING, "nothing lost or made up");
    assert!(
        spent >= OPENING - 2 * PRICE,
        "only {spent} of {OPENING} spent"
    );
}

#[test]
fn what_the_nodes_hold_goes_back_when_they_stop() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let opening = 100 * OPENING;
    let (spent, left) = spend(
        &redis.target(),
        opening,
        Duration::from_millis(2),
        Duration::from_secs(1),
    );
    eprintln!("spent {spent}, left {left} of {opening}");
    assert!(spent > 0 && left > 0);
    assert_eq!(spent + left, opening, "allowances given back whole");
}

/// A Redis Cluster primary that crashes holds one account's balance; another's is on a live
/// primary: that account keeps every grant its primary made while the first one's failed
/// (nothing of it lost: spent and left make its opening), and the first is never overspent.
#[test]
fn a_failing_primary_loses_nothing_of_the_accounts_on_the_others() {
    let Some(mut redis) = RedisCluster::start() else {
        return;
    };
    let target = redis.target();
    let key = |account: &str| format!("smsroute:{{account:{account}}}:balance");
    // The crashing primary's account first: the exchange meets its failure before the other's.
    let crashing = "acme";
    let down = redis.primary_of(&key(crashing));
    let live = redis.name_off(down, "other-", key, &[]);
    let opening = 100 * OPENING;
    let accounts = [(crashing.to_string(), opening), (live.clone(), opening)];
    let held = Arc::new(Held::default());
    let leaser = BalanceLeaser::start(&target, &accounts, held.clone()).unwrap();
    let spent: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let spender = {
        let (held, spent, stop) = (held.clone(), spent.clone(), stop.clone());
        let names = [crashing.to_string(), live.clone()];
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (name, spent) in names.iter().zip(spent.iter()) {
                    if held.charge(name, PRICE) {
                        spent.fetch_add(PRICE, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    redis.kill_node(down);
    std::thread::sleep(Duration::from_millis(1500));
    redis.restart_node(down).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    spender.join().unwrap();
    leaser.stop();
    let left: u64 = query(&target, redis::cmd("GET").arg(key(&live))).unwrap();
    let [crashed_spent, live_spent] = [0, 1].map(|i| spent[i].load(Ordering::Relaxed));
    eprintln!("{live}: spent {live_spent}, left {left}; {crashing}: spent {crashed_spent}");
    assert!(live_spent > 0 && crashed_spent > 0);
    assert_eq!(held.held(&live), 0, "given back at the stop");
    assert_eq!(
        live_spent + left,
        opening,
        "{live}: nothing lost or made up"
    );
    assert!(crashed_spent <= opening);
}
