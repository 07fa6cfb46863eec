//! Three routers, one contract: each router's own bucket would let it send the whole
//! contract, so without shared leases three routers send three times it. With each carrier's
//! lease from one Redis GCRA the carrier sees the contract, and it is used.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{count_between, max_in_window};
use smsroute_cluster::testing::RedisServer;
use smsroute_cluster::{LeaseOptions, Leaser, SharedBucket};
use smsroute_config::Config;
use smsroute_engine::{EngineOptions, Router};
use smsroute_sim::{Behaviour, SimCarrier};
use smsroute_types::Message;

const TPS: u32 = 500;
const BURST: u32 = 50;

fn config() -> Config {
    let text = format!(
        "[[carriers]]\nid = \"shared\"\ntps = {TPS}\nburst = {BURST}\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"shared\"\ncost = 0.004\n"
    );
    Config::parse(&text, "cluster.toml").unwrap()
}

/// Sends of all three routers to the carrier, as instants after `epoch`, with `shared` leases
/// or each router on its own contract.
fn three_routers(redis: &RedisServer, shared: bool) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let epoch = Instant::now();
    let sends: Arc<Mutex<Vec<Duration>>> = Arc::default();
    runtime.block_on(async {
        let mut nodes = Vec::new();
        for node in 0..3u64 {
            let options = LeaseOptions {
                url: redis.url.clone(),
                node_id: format!("node-{node}"),
                lease: Duration::from_millis(50),
            };
            let bucket = SharedBucket::carrier("shared", f64::from(TPS), BURST);
            let leaser = Leaser::start(&options, &[bucket]).unwrap();
            let mut engine = EngineOptions::default();
            if shared {
                engine = engine.leases([("shared".to_string(), leaser.pool(0).clone())]);
            }
            let sends = sends.clone();
            let observer: smsroute_sim::AcceptObserver =
                Arc::new(move |_, _| sends.lock().unwrap().push(epoch.elapsed()));
            let (router, mut events) = Router::start(&config(), engine, move |c| {
                SimCarrier::new(&c.id, Behaviour::default(), node).with_observer(observer.clone())
            })
            .unwrap();
            tokio::spawn(async move { while events.recv().await.is_some() {} });
            nodes.push((router, leaser));
        }
        // 400 messages a second offered to each router: 1,200 against a contract of 500.
        for step in 0..300u64 {
            for (node, (router, _)) in nodes.iter().enumerate() {
                for i in 0..4 {
                    let n = step * 4 + i;
                    let to = format!("44770{node}{n:06}");
                    let message = Message::builder(&to, "ACME", "hello").build().unwrap();
                    let _ = router.try_submit(message);
                }
            }
            tokio::time::sleep_until((epoch + Duration::from_millis(10 * (step + 1))).into()).await;
        }
        for (router, leaser) in nodes {
            router.shutdown(Duration::ZERO).await;
            leaser.stop();
        }
    });
    let mut sends = sends.lock().unwrap().clone();
    sends.sort();
    sends
}

#[test]
fn three_routers_sharing_a_contract_keep_it_and_use_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sends = three_routers(&redis, true);
    let most = max_in_window(&sends, Duration::from_secs(1));
    let used = count_between(&sends, Duration::from_secs(1), Duration::from_secs(3));
    eprintln!("shared: most {most} in 1 s, {used} in the last 2 s");
    let bound = (TPS + BURST) as usize;
    assert!(
        most <= bound,
        "{most} submits in one second against {bound}"
    );
    assert!(used >= 950, "{used} of 1,000 contracted submits in 2 s");
}

/// What the leases prevent: on their own contracts, three routers send about three times it.
#[test]
fn three_routers_on_their_own_contracts_send_more_than_one() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sends = three_routers(&redis, false);
    let most = max_in_window(&sends, Duration::from_secs(1));
    assert!(
        most > 2 * (TPS + BURST) as usize,
        "only {most} in one second"
    );
}
