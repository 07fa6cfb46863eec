//! Table-driven routing cases: the semantics of DESIGN.md, one row per behaviour.

use smsroute_config::Config;
use smsroute_routing::{AllHealthy, CarrierHealth, DropReason, HealthState, RouteTable};
use smsroute_types::E164;

const CONFIG: &str = r#"
[[carriers]]
id = "uk-alpha"
tps = 500
[[carriers]]
id = "uk-beta"
tps = 200
[[carriers]]
id = "uk-gamma"
tps = 100
[[carriers]]
id = "backup"
tps = 50

[[routes]]
prefix = "44"
carrier = "uk-alpha"
cost = 0.0040
[[routes]]
prefix = "447"
carrier = "uk-beta"
cost = 0.0035
[[routes]]
prefix = "447009912"
carrier = "uk-gamma"
cost = 0.0100
[[routes]]
prefix = "4474"
carrier = "uk-gamma"
cost = 0.0035
weight = 3
[[routes]]
prefix = "4474"
carrier = "uk-alpha"
cost = 0.0035
weight = 3
[[routes]]
prefix = "44"
carrier = "backup"
cost = 0.0001
tier = 1
[[routes]]
prefix = "33"
carrier = "uk-alpha"
cost = 0.02
[[routes]]
prefix = "3361"
carrier = "uk-beta"
cost = 0.01

[[block]]
prefix = "4470099"
[[block]]
prefix = "3361"
[[block]]
prefix = "449"

[[ported]]
number = "447400111222"
route_as = "447009912"
[[ported]]
number = "447555000111"
route_as = "4470099"
"#;

fn table() -> RouteTable {
    RouteTable::compile(&Config::parse(CONFIG, "cases.toml").unwrap()).unwrap()
}

/// Candidate ids in explain order, and the blocked flag.
fn explain(table: &RouteTable, number: &str) -> (Vec<String>, bool) {
    let e = table.explain(&E164::parse(number).unwrap(), &AllHealthy);
    let ids = e
        .candidates
        .iter()
        .map(|c| format!("{}@{}", table.carrier_id(c.carrier), c.prefix))
        .collect();
    (ids, e.blocked)
}

#[test]
fn table_driven_routing() {
    let table = table();
    let cases: &[(&str, &[&str], bool, &str)] = &[
        // Each carrier's own longest prefix decides; cheaper first, tier 1 last.
        (
            "447700900123",
            &["uk-beta@447", "uk-alpha@44", "backup@44"],
            false,
            "per-carrier longest match",
        ),
        (
            "441234567890",
            &["uk-alpha@44", "backup@44"],
            false,
            "only the 44 rows match",
        ),
        // Equal tier and cost: weight descending, then id (alpha before gamma by index).
        (
            "447400123456",
            &["uk-alpha@4474", "uk-gamma@4474", "uk-beta@447", "backup@44"],
            false,
            "equal group order",
        ),
        // A block on 4470099 removes carriers priced at 44 and 447, not one at 447009912.
        (
            "447009912345",
            &["uk-gamma@447009912"],
            false,
            "longer route survives a block",
        ),
        ("447009900000", &[], true, "block empties the list"),
        ("449000000000", &[], true, "block on 449"),
        (
            "336123456789",
            &[],
            true,
            "block as long as the carrier's prefix removes it",
        ),
        (
            "336223456789",
            &["uk-alpha@33"],
            false,
            "sibling of the block",
        ),
        ("491701234567", &[], false, "no carrier serves Germany"),
        // Ported numbers route as their route_as digits, routes and blocks included.
        (
            "447400111222",
            &["uk-gamma@447009912"],
            false,
            "ported to a gamma-only range",
        ),
        ("447555000111", &[], true, "ported into a blocked range"),
        // A ported number is exact: a longer number under it routes normally.
        (
            "4474001112223",
            &["uk-alpha@4474", "uk-gamma@4474", "uk-beta@447", "backup@44"],
            false,
            "exact only",
        ),
        (
            "44740011122",
            &["uk-alpha@4474", "uk-gamma@4474", "uk-beta@447", "backup@44"],
            false,
            "shorter than ported",
        ),
    ];
    for &(number, want, blocked, why) in cases {
        let (got, got_blocked) = explain(&table, number);
        assert_eq!(got, want, "{number}: {why}");
        assert_eq!(got_blocked, blocked, "{number}: {why} (blocked flag)");
    }
}

#[test]
fn explain_says_why_carriers_were_dropped() {
    let table = table();
    let e = table.explain(&E164::parse("447009912345").unwrap(), &AllHealthy);
    assert_eq!(e.block_prefix.as_deref(), Some("4470099"));
    let dropped: Vec<(String, String, DropReason)> = e
        .dropped
        .iter()
        .map(|d| {
            (
                table.carrier_id(d.carrier).to_string(),
                d.prefix.clone(),
                d.reason.clone(),
            )
        })
        .collect();
    let by_block = DropReason::Blocked {
        block_prefix: "4470099".into(),
    };
    assert_eq!(
        dropped,
        vec![
            ("uk-alpha".into(), "44".into(), by_block.clone()),
            ("uk-beta".into(), "447".into(), by_block.clone()),
            ("backup".into(), "44".into(), by_block),
        ]
    );
    let ported = table.explain(&E164::parse("447400111222").unwrap(), &AllHealthy);
    assert_eq!(ported.ported_as.as_deref(), Some("447009912"));
}

#[test]
fn health_reorders_skips_ejected_and_panics_when_all_are() {
    let table = table();
    let number = E164::parse("447700900123").unwrap();
    let alpha = table.carrier_index("uk-alpha").unwrap().get();
    let beta = table.carrier_index("uk-beta").unwrap().get();
    let backup = table.carrier_index("backup").unwrap().get();
    let mut health = vec![CarrierHealth::HEALTHY; table.carriers().len()];
    health[beta] = CarrierHealth {
        state: HealthState::Degraded,
        penalty: 2.0,
    };
    let ids = |route: &smsroute_routing::Route| -> Vec<String> {
        route
            .iter()
            .map(|c| table.carrier_id(c.carrier).to_string())
            .collect()
    };
    // beta: 0.0035 × 2 = 0.007 > alpha's 0.004; tier 1 stays last whatever its price.
    let route = table.route(&number, &health[..], 0);
    assert_eq!(ids(&route), ["uk-alpha", "uk-beta", "backup"]);

    health[alpha] = CarrierHealth {
        state: HealthState::Ejected,
        penalty: 1.0,
    };
    let e = table.explain(&number, &health[..]);
    assert_eq!(e.dropped.len(), 1);
    assert_eq!(
        (e.dropped[0].carrier.get(), &e.dropped[0].reason),
        (alpha, &DropReason::Ejected)
    );
    assert_eq!(
        ids(&table.route(&number, &health[..], 0)),
        ["uk-beta", "backup"]
    );

    for i in [alpha, beta, backup] {
        health[i] = CarrierHealth {
            state: HealthState::Ejected,
            penalty: 1.0,
        };
    }
    let route = table.route(&number, &health[..], 0);
    assert!(route.panic_mode);
    assert_eq!(
        ids(&route),
        ["uk-beta", "uk-alpha", "backup"],
        "panic mode uses every candidate"
    );
}

#[test]
fn route_agrees_with_candidates_when_all_healthy() {
    let table = table();
    let number = E164::parse("441234567890").unwrap();
    let route = table.route(&number, &AllHealthy, 12345);
    let offers = table.candidates(&number).offers;
    assert_eq!(route.len(), offers.len());
    assert!(!route.blocked && !route.panic_mode);
}

#[test]
fn stats_count_what_was_compiled() {
    let stats = table().stats();
    assert_eq!(
        (stats.carriers, stats.routes, stats.blocks, stats.ported),
        (4, 8, 3, 2)
    );
    assert_eq!(stats.prefixes, 6, "44, 447, 447009912, 4474, 33, 3361");
}

#[test]
fn builder_refuses_duplicates_and_bad_prefixes() {
    use smsroute_routing::{BuildError, CarrierInfo, TableBuilder};
    use smsroute_types::Money;

    let mut b = TableBuilder::new();
    let c = b.carrier(CarrierInfo::new("c")).unwrap();
    b.route("44", c, Money::from_micros(1), 0, 1).unwrap();
    b.route("44", c, Money::from_micros(2), 0, 1).unwrap();
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::DuplicateRoute {
            carrier: "c".into(),
            prefix: "44".into()
        }
    );

    let mut b = TableBuilder::new();
    let number = E164::parse("447700900123").unwrap();
    b.ported(number, "4474").unwrap();
    b.ported(number, "4475").unwrap();
    assert_eq!(
        b.build().unwrap_err(),
        BuildError::DuplicatePorted("447700900123".into())
    );

    let mut b = TableBuilder::new();
    let c = b.carrier(CarrierInfo::new("c")).unwrap();
    assert_eq!(
        b.route("4x", c, Money::ZERO, 0, 1),
        Err(BuildError::BadPrefix("4x".into()))
    );
    assert_eq!(b.block(""), Err(BuildError::BadPrefix(String::new())));
    assert!(matches!(
        b.route("44", smsroute_routing::CarrierIndex(9), Money::ZERO, 0, 1),
        Err(BuildError::UnknownCarrier(9))
    ));
}

#[test]
fn an_empty_configuration_routes_nothing() {
    let table = RouteTable::compile(&Config::parse("", "empty.toml").unwrap()).unwrap();
    let e = table.explain(&E164::parse("447700900123").unwrap(), &AllHealthy);
    assert!(e.candidates.is_empty() && !e.blocked);
    assert!(
        table
            .route(&E164::parse("447700900123").unwrap(), &AllHealthy, 1)
            .is_empty()
    );
}

#[test]
fn explain_drops_carriers_over_the_price_ceiling() {
    let table = table();
    let number = E164::parse("447700900123").unwrap();
    let all = table.explain(&number, &AllHealthy);
    assert!(all.candidates.len() >= 2, "{all:?}");
    let ceiling = smsroute_types::Money::parse_decimal("0.0035").unwrap();
    let e = table.explain_priced(&number, &AllHealthy, Some(ceiling));
    assert!(!e.candidates.is_empty());
    assert!(e.candidates.iter().all(|c| c.cost <= ceiling), "{e:?}");
    let over: Vec<&str> = e
        .dropped
        .iter()
        .filter(|d| d.reason == DropReason::OverMaxPrice { max_price: ceiling })
        .map(|d| table.carrier_id(d.carrier))
        .collect();
    assert_eq!(over.len(), all.candidates.len() - e.candidates.len());
    assert!(over.contains(&"uk-alpha"), "{over:?}");
}
