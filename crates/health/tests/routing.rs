//! Health feeding routing: outcomes move a carrier out of rotation, through probing, and back,
//! and `explain` shows each candidate's state.

use smsroute_config::Config;
use smsroute_health::{CarrierSlot, CarrierTracker, HealthBoard, HealthConfig, Outcome};
use smsroute_routing::{DropReason, HealthState, RouteTable};
use smsroute_types::E164;

const CONFIG: &str = r#"
[[carriers]]
id = "cheap"
tps = 100
[[carriers]]
id = "dear"
tps = 100

[[routes]]
prefix = "44"
carrier = "cheap"
cost = 0.003
[[routes]]
prefix = "44"
carrier = "dear"
cost = 0.005
"#;

const MS: u64 = 1_000_000;

#[test]
fn failures_eject_probing_restores_and_explain_tells() {
    let table = RouteTable::compile(&Config::parse(CONFIG, "t.toml").unwrap()).unwrap();
    let cheap = table.carrier_index("cheap").unwrap();
    let number = E164::parse("447700900123").unwrap();
    let board = HealthBoard::new(
        table.carriers().len(),
        HealthConfig::default().max_ejected_share,
    );
    // One slot per table carrier, in the table's order (no reload has reordered them).
    let slots: Vec<CarrierSlot> = (0..table.carriers().len() as u16)
        .map(CarrierSlot)
        .collect();
    let cheap_slot = CarrierSlot(cheap.0);
    let mut tracker = CarrierTracker::new(HealthConfig::default(), 3).unwrap();
    let first = |board: &HealthBoard| {
        table
            .carrier_id(
                table
                    .route(&number, &board.view(&slots), 0)
                    .first()
                    .unwrap()
                    .carrier,
            )
            .to_string()
    };
    assert_eq!(first(&board), "cheap");

    // A slow but working carrier is penalised: 2 s latency = penalty 4, 0.003 × 4 > 0.005.
    tracker.record(
        Outcome::Success {
            latency: 2_000 * MS,
        },
        0,
    );
    board.publish(cheap_slot, tracker.snapshot());
    assert_eq!(first(&board), "dear");
    let e = table.explain(&number, &board.view(&slots));
    assert_eq!(
        (e.candidates[1].health.state, e.candidates[1].health.penalty),
        (HealthState::Degraded, 4.0)
    );

    // Five failures eject it: one of two candidates may be skipped.
    for i in 1..=5 {
        tracker.record(Outcome::Failure, i * MS);
    }
    board.publish(cheap_slot, tracker.snapshot());
    let route = table.route(&number, &board.view(&slots), 0);
    assert_eq!(route.len(), 1);
    let e = table.explain(&number, &board.view(&slots));
    assert_eq!(e.dropped.len(), 1);
    assert_eq!(
        (e.dropped[0].carrier, &e.dropped[0].reason),
        (cheap, &DropReason::Ejected)
    );

    // After the ejection time it is probing: a candidate again, with its penalty.
    let later = 20_000 * MS;
    assert!(tracker.try_send(later));
    board.publish(cheap_slot, tracker.snapshot());
    let e = table.explain(&number, &board.view(&slots));
    assert!(
        e.candidates
            .iter()
            .any(|c| c.carrier == cheap && c.health.state == HealthState::Probing)
    );
}
