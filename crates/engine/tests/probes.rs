//! Half-open carriers: the health tracker's probe gate holds through the engine (issue 14,
//! defect 7: the docs promised at most `probes` probes in flight; the engine handed out
//! permits every second and never asked the tracker).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::config;
use common::{message, submit};
use smallvec::smallvec;
use smsroute_carrier::{Accepted, Carrier, ReceiptSink, SubmitError, SubmitRequest};
use smsroute_engine::{EngineOptions, Router};
use smsroute_routing::HealthState;
use tokio::time::Instant;

/// Refuses every submit (ESME_RSYSERR) until `recover_at`, then accepts each after 3 s,
/// counting how many were in flight at once before the first acceptance came back.
struct Flaky {
    id: String,
    recover_at: Instant,
    in_flight: AtomicU32,
    most_before_first_answer: AtomicU32,
    answered: AtomicBool,
    counter: AtomicU32,
}

/// The carriers of the test: the flaky one (shared, to read its counts) or a perfect backup.
enum TestCarrier {
    Flaky(Arc<Flaky>),
    Backup,
}

impl Carrier for TestCarrier {
    fn id(&self) -> &str {
        match self {
            TestCarrier::Flaky(f) => &f.id,
            TestCarrier::Backup => "backup",
        }
    }

    async fn submit(&self, _request: SubmitRequest) -> Result<Accepted, SubmitError> {
        let TestCarrier::Flaky(flaky) = self else {
            return Ok(Accepted {
                message_ids: smallvec!["b".into()],
            });
        };
        if Instant::now() < flaky.recover_at {
            return Err(SubmitError::Rejected { status: 0x08 });
        }
        let now = flaky.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        if !flaky.answered.load(Ordering::SeqCst) {
            flaky
                .most_before_first_answer
                .fetch_max(now, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        flaky.answered.store(true, Ordering::SeqCst);
        flaky.in_flight.fetch_sub(1, Ordering::SeqCst);
        let n = flaky.counter.fetch_add(1, Ordering::SeqCst);
        Ok(Accepted {
            message_ids: smallvec![format!("f{n}").into_boxed_str()],
        })
    }

    fn attach_receipts(&self, _sink: ReceiptSink) {}
}

#[tokio::test(start_paused = true)]
async fn a_half_open_carrier_never_has_more_probes_in_flight_than_allowed() {
    let config = config(&[("flaky", 1000, "0.001"), ("backup", 1000, "0.01")], "");
    let options = EngineOptions::default().request_receipts(false);
    let probes = options.health_config().probes;
    let flaky = Arc::new(Flaky {
        id: "flaky".into(),
        recover_at: Instant::now() + Duration::from_secs(2),
        in_flight: AtomicU32::new(0),
        most_before_first_answer: AtomicU32::new(0),
        answered: AtomicBool::new(false),
        counter: AtomicU32::new(0),
    });
    let shared = flaky.clone();
    let (router, mut events) = Router::start(&config, options, move |c| {
        if c.id == "flaky" {
            TestCarrier::Flaky(shared.clone())
        } else {
            TestCarrier::Backup
        }
    })
    .unwrap();
    let flaky_slot = router.carrier_slot("flaky").unwrap();
    let (mut accepted, mut terminal, mut probed) = (0usize, 0usize, false);
    // 200 messages a second for 30 s: the outage ejects flaky, probing starts ~10 s later.
    for n in 0..6_000u64 {
        accepted += usize::from(submit(&router, message(n)).is_ok());
        while let Some(e) = events.try_recv() {
            terminal += usize::from(e.is_terminal());
        }
        probed |= router.health(flaky_slot).state == HealthState::Probing;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while terminal < accepted {
        let e = events.recv().await.unwrap();
        terminal += usize::from(e.is_terminal());
    }
    assert!(probed, "flaky went half-open");
    assert!(flaky.answered.load(Ordering::SeqCst), "probes reached it");
    let most = flaky.most_before_first_answer.load(Ordering::SeqCst);
    assert!(
        (1..=probes).contains(&most),
        "{most} submits in flight on a half-open carrier; at most {probes} probes"
    );
    // The probes proved it: closed again (degraded only by its 3 s latency).
    let state = router.health(flaky_slot).state;
    assert!(
        matches!(state, HealthState::Healthy | HealthState::Degraded),
        "{state:?}"
    );
}
