//! The engine over real SMPP sessions to the simulator: nothing lost across disconnects.

use std::sync::atomic::Ordering;
use std::time::Duration;

use smsroute_carrier::{Carrier, LinkState};
use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, Router};
use smsroute_routing::HealthState;
use smsroute_sim::{Simulator, SimulatorConfig};
use smsroute_smpp::{EsmeConfig, SmppCarrier};
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
    let carrier = router.carrier(router.carrier_slot("sim").unwrap()).unwrap();
    while carrier.bound() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let n = 1500;
    for i in 0..n {
        let m = Message::builder(&format!("4477009{:05}", i), "ACME", "hi")
            .build()
            .unwrap();
        router.try_submit(m).unwrap();
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

/// Regression (issue 14, defect 4): a carrier whose binds are refused looked healthy, its
/// attempts looked like ESME_RSYSERR answers, and the reason was reported nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_that_never_binds_is_down_with_its_reason_and_gets_no_traffic() {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        SimulatorConfig {
            system_id: Some("acme".into()),
            password: Some("secret".into()),
            ..SimulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let port = sim.local_addr().port();
    // "cheap" has the wrong password; "dear" the right one.
    let config = Config::parse(
        "[[carriers]]\nid = \"cheap\"\ntps = 1000\n\n[[carriers]]\nid = \"dear\"\ntps = 1000\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"cheap\"\ncost = 0.001\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"dear\"\ncost = 0.01\n",
        "t.toml",
    )
    .unwrap();
    let (router, mut events) = Router::start(&config, EngineOptions::default(), move |c| {
        let password = if c.id == "cheap" { "wrong" } else { "secret" };
        SmppCarrier::connect(
            &c.id,
            EsmeConfig {
                reconnect_min: Duration::from_millis(10),
                reconnect_max: Duration::from_millis(50),
                ..EsmeConfig::new("127.0.0.1", port, "acme", password)
            },
        )
    })
    .unwrap();
    let cheap = router.carrier_slot("cheap").unwrap();
    let dear = router.carrier_slot("dear").unwrap();
    for _ in 0..500 {
        let bound_dear = router.carrier(dear).unwrap().bound() > 0;
        let refused = router
            .carrier(cheap)
            .unwrap()
            .stats()
            .bind_failures
            .load(Ordering::Relaxed);
        if bound_dear && refused >= 2 && router.health(cheap).state == HealthState::Ejected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match router.carrier(cheap).unwrap().link() {
        LinkState::Down { reason } => {
            assert!(reason.contains("ESME_RINVPASWD"), "{reason}")
        }
        up => panic!("cheap is {up:?}"),
    }
    assert_eq!(
        router.health(cheap).state,
        HealthState::Ejected,
        "not a candidate"
    );
    assert_eq!(router.health(dear).state, HealthState::Healthy);
    // ready() names the carrier that is not bound, and why.
    let not_ready = router.ready(Duration::from_millis(300)).await.unwrap_err();
    assert_eq!(not_ready.down.len(), 1, "{not_ready}");
    assert_eq!(not_ready.down[0].0, "cheap");
    assert!(
        not_ready.to_string().contains("ESME_RINVPASWD"),
        "{not_ready}"
    );
    let n = 20;
    for i in 0..n {
        let m = Message::builder(&format!("4477009{i:05}"), "ACME", "hi")
            .build()
            .unwrap();
        router.try_submit(m).unwrap();
    }
    let mut terminal = 0;
    while terminal < n {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
        match e.event {
            Event::Submitted { carrier, .. } => assert_eq!(carrier, dear, "no attempt to cheap"),
            Event::Delivered => terminal += 1,
            other if e.is_terminal() => panic!("{other:?}"),
            _ => {}
        }
    }
    assert!(sim.stats().binds_refused.load(Ordering::Relaxed) >= 2);
    // Shutdown drains, then unbinds every session the factory opened.
    let report = router.shutdown(Duration::from_secs(2)).await;
    assert!(report.unfinished.is_empty());
    assert_eq!(
        router.carrier(dear).unwrap().bound(),
        0,
        "unbound on shutdown"
    );
}
