//! Three routers, one contract: each router's own bucket would let it send the whole
//! contract, so without shared leases three routers send three times it. With each carrier's
//! lease from one Redis GCRA the carrier sees the contract, and it is used.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{count_between, max_in_window};
use smsroute_carrier::{Receipt, ReceiptAck};
use smsroute_cluster::testing::RedisServer;
use smsroute_cluster::{LeaseOptions, Leaser, ReceiptExchange, SharedBucket};
use smsroute_config::Config;
use smsroute_delivery::{Event, ReceiptStatus};
use smsroute_engine::{EngineOptions, Router};
use smsroute_sim::{Behaviour, Latency, SimCarrier};
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

/// A runtime as a gateway's: two workers.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Node `node`'s leaser of `bucket`, 50 ms leases.
fn leaser(redis: &RedisServer, node: u64, bucket: SharedBucket) -> Leaser {
    let options = LeaseOptions {
        redis: redis.target(),
        node_id: format!("node-{node}"),
        lease: Duration::from_millis(50),
    };
    Leaser::start(&options, &[bucket]).unwrap()
}

/// A router whose simulated carrier records each submit it accepts in `sends` (as time
/// since `epoch`); its events are taken and dropped. Call inside the runtime.
fn recorded_router(
    config: &Config,
    engine: EngineOptions,
    node: u64,
    epoch: Instant,
    sends: &Arc<Mutex<Vec<Duration>>>,
) -> Router<SimCarrier> {
    let sends = sends.clone();
    let observer: smsroute_sim::AcceptObserver =
        Arc::new(move |_, _| sends.lock().unwrap().push(epoch.elapsed()));
    let (router, mut events) = Router::start(config, engine, move |c| {
        SimCarrier::new(&c.id, Behaviour::default(), node).with_observer(observer.clone())
    })
    .unwrap();
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    router
}

/// Sends of all three routers to the carrier, as instants after `epoch`, with `shared` leases
/// or each router on its own contract.
fn three_routers(redis: &RedisServer, shared: bool) -> Vec<Duration> {
    let runtime = runtime();
    let epoch = Instant::now();
    let sends: Arc<Mutex<Vec<Duration>>> = Arc::default();
    runtime.block_on(async {
        let mut nodes = Vec::new();
        for node in 0..3u64 {
            let bucket = SharedBucket::carrier("shared", f64::from(TPS), BURST);
            let leaser = leaser(redis, node, bucket);
            let mut engine = EngineOptions::default();
            if shared {
                engine = engine.leases([("shared".to_string(), leaser.pool(0).clone())]);
            }
            let router = recorded_router(&config(), engine, node, epoch, &sends);
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

/// A receipt that came on router b's bind for router a's message: b does not wait for it, a
/// does, and a finishes the message with it.
#[test]
fn a_receipt_on_the_other_routers_bind_finishes_the_message() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let runtime = runtime();
    runtime.block_on(async {
        // The carrier's own receipts would come only after a day.
        let slow = Behaviour {
            receipt_delay: Latency::Fixed(24 * 3_600_000_000_000),
            ..Behaviour::default()
        };
        let mut nodes = Vec::new();
        for node in ["a", "b"] {
            let exchange =
                ReceiptExchange::start(&redis.target(), node, Duration::from_secs(60)).unwrap();
            let options = EngineOptions::default().receipt_relay(exchange.relay());
            let behaviour = slow.clone();
            let (router, events) = Router::start(&config(), options, move |c| {
                SimCarrier::new(&c.id, behaviour.clone(), 7)
            })
            .unwrap();
            let peer = router.clone();
            exchange.deliver_to(move |carrier, receipt, ack| {
                peer.receipt_from_peer(carrier, receipt, ack)
            });
            nodes.push((router, events, exchange));
        }
        let message = Message::builder("447700900123", "ACME", "hello")
            .build()
            .unwrap();
        let id = nodes[0].0.try_submit(message).unwrap();
        let carrier_id = loop {
            let event = nodes[0].1.recv().await.unwrap();
            if let (Event::Submitted { .. }, Some(part)) =
                (&event.event, event.carrier_message_ids.first())
            {
                break part.to_string();
            }
        };
        // b's connection takes the receipt.
        let receipt = Receipt {
            message_id: carrier_id.as_str().into(),
            status: ReceiptStatus::Delivered,
            error: 0,
            possible_duplicate: false,
        };
        assert!(
            nodes[1]
                .0
                .receipt_from_peer("shared", receipt, ReceiptAck::none())
        );
        let finished = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let event = nodes[0].1.recv().await.unwrap();
                if event.event.is_terminal() {
                    return event;
                }
            }
        })
        .await
        .expect("a finishes the message within 5 s");
        assert_eq!((finished.id, finished.event), (id, Event::Delivered));
        for (router, _, _) in nodes {
            router.shutdown(Duration::ZERO).await;
        }
    });
}

/// A route row's own contract (`tps` on the row) shared by two routers: each alone could send
/// its whole rate towards the prefix; through the lease of `route:shared:44` the two together
/// keep it.
#[test]
fn two_routers_keep_a_routes_own_contract_together() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let text = "[[carriers]]\nid = \"shared\"\ntps = 1000\n\n\
        [[routes]]\nprefix = \"44\"\ncarrier = \"shared\"\ncost = 0.004\ntps = 100\nburst = 10\n";
    let config = Config::parse(text, "route.toml").unwrap();
    let runtime = runtime();
    let epoch = Instant::now();
    let sends: Arc<Mutex<Vec<Duration>>> = Arc::default();
    runtime.block_on(async {
        let mut nodes = Vec::new();
        for node in 0..2u64 {
            let leaser = leaser(&redis, node, SharedBucket::route("shared", "44", 100.0, 10));
            let engine = EngineOptions::default()
                .leases([("route:shared:44".to_string(), leaser.pool(0).clone())]);
            let router = recorded_router(&config, engine, node, epoch, &sends);
            nodes.push((router, leaser));
        }
        // 75 messages a second to each router, 150 against the route's 100, for 3 s.
        for step in 0..300u64 {
            for (node, (router, _)) in nodes.iter().enumerate() {
                if step % 4 != 3 {
                    let to = format!("44770{node}{step:06}");
                    let message = Message::builder(&to, "ACME", "hi").build().unwrap();
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
    let most = max_in_window(&sends, Duration::from_secs(1));
    let used = count_between(&sends, Duration::from_secs(1), Duration::from_secs(3));
    eprintln!("route shared: most {most} in 1 s, {used} in the last 2 s");
    assert!(
        most <= 110,
        "{most} to the route in one second against 100 + 10"
    );
    assert!(used >= 190, "{used} of 200 the route allows in 2 s");
}
