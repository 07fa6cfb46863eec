//! The engine over real SMPP sessions to the simulator: nothing lost across disconnects.

use std::sync::atomic::Ordering;
use std::time::Duration;

use smsroute_engine::{EngineOptions, Router};
use smsroute_routing::Config;
use smsroute_smpp::{EsmeConfig, Simulator, SimulatorConfig, SmppCarrier};
use smsroute_types::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_loses_nothing_when_the_smsc_keeps_dropping_the_link() {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        SimulatorConfig {
            disconnect_after: Some(250),
            ..SimulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let port = sim.local_addr().port();
    let config = Config::parse(
        "[[carriers]]\nid = \"sim\"\ntps = 100000\nwindow = 512\n\n[[routes]]\nprefix = \"44\"\ncarrier = \"sim\"\ncost = 0.01\n\n[retry]\nsubmit_timeout_ms = 2000\nmax_attempts = 20\nbackoff_cap_ms = 200\n",
        "t.toml",
    )
    .unwrap();
    let (router, mut events) = Router::start(&config, EngineOptions::default(), move |c| {
        SmppCarrier::connect(
            &c.id,
            EsmeConfig {
                window: 512,
                submit_timeout: Duration::from_secs(3),
                reconnect_min: Duration::from_millis(10),
                reconnect_max: Duration::from_millis(50),
                ..EsmeConfig::new("127.0.0.1", port, "acme", "pw")
            },
        )
    })
    .unwrap();
    let carrier = router
        .carrier(router.carrier_index("sim").unwrap())
        .unwrap();
    while carrier.bound() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let n = 1500;
    for i in 0..n {
        let m = Message::builder(&format!("4477009{:05}", i), "ACME", "hi")
            .build(10)
            .unwrap();
        router.submit(m).unwrap();
    }
    let mut terminal = 0;
    let mut delivered = 0;
    while terminal < n {
        let e = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
        let Ok(Some(e)) = e else {
            let s = carrier.stats();
            panic!(
                "stalled at {terminal}/{n}: binds {} losses {} lost in flight {} receipts {}; sim submits {} accepted {} receipts {} disconnects {}; router {:?}",
                s.binds.load(Ordering::Relaxed),
                s.link_losses.load(Ordering::Relaxed),
                s.lost_in_flight.load(Ordering::Relaxed),
                s.receipts.load(Ordering::Relaxed),
                sim.stats().carrier.submits.load(Ordering::Relaxed),
                sim.stats().carrier.accepted.load(Ordering::Relaxed),
                sim.stats().carrier.receipts.load(Ordering::Relaxed),
                sim.stats().disconnects.load(Ordering::Relaxed),
                router.stats(),
            );
        };
        if e.is_terminal() {
            terminal += 1;
            delivered += usize::from(e.event == smsroute_delivery::Event::Delivered);
        }
    }
    assert_eq!(delivered, n);
    assert!(sim.stats().disconnects.load(Ordering::Relaxed) >= 5);
}
