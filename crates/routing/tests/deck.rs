//! Rate decks with dates and hours (issue 18 item 5): the table in force at an instant.

use smsroute_config::{Config, parse_instant};
use smsroute_routing::{AllHealthy, RouteDeck};
use smsroute_types::E164;

const DECK: &str = r#"
[[carriers]]
id = "alpha"
tps = 100
[[carriers]]
id = "night"
tps = 100

[[routes]]
prefix = "44"
carrier = "alpha"
cost = 0.0040
valid_until = "2027-01-01T00:00:00Z"
[[routes]]
prefix = "44"
carrier = "alpha"
cost = 0.0030
valid_from = "2027-01-01T00:00:00Z"
[[routes]]
prefix = "447"
carrier = "night"
cost = 0.0020
hours = "22:00-06:00"
utc_offset = "+01:00"
"#;

fn order(deck: &RouteDeck, at: &str) -> Vec<(String, u64)> {
    let table = deck.at(parse_instant(at).unwrap());
    let number = E164::parse("447700900123").unwrap();
    table
        .route(&number, &AllHealthy, 0)
        .iter()
        .map(|o| (table.carrier_id(o.carrier).to_string(), o.cost.micros()))
        .collect()
}

#[test]
fn each_instant_routes_with_the_rows_in_force_then() {
    let deck = RouteDeck::compile(&Config::parse(DECK, "deck.toml").unwrap()).unwrap();
    // Four periods: old or new price, night window open or shut.
    assert_eq!(deck.tables().len(), 4);
    let alpha = |cost| ("alpha".to_string(), cost);
    let night = ("night".to_string(), 2_000);
    // Noon in London (+01:00 as configured) before the new year: the old price alone.
    assert_eq!(order(&deck, "2026-12-31T11:00:00Z"), [alpha(4_000)]);
    // 23:00 local (22:00 UTC): the night window is open.
    assert_eq!(
        order(&deck, "2026-12-31T22:00:00Z"),
        [night.clone(), alpha(4_000)]
    );
    // The new price takes effect at its instant, inside the same night window.
    assert_eq!(
        order(&deck, "2027-01-01T00:00:00Z"),
        [night.clone(), alpha(3_000)]
    );
    assert_eq!(order(&deck, "2027-01-01T04:59:59Z"), [night, alpha(3_000)]);
    assert_eq!(order(&deck, "2027-01-01T05:00:00Z"), [alpha(3_000)]);
}

#[test]
fn rows_of_one_carrier_and_prefix_may_repeat_only_when_never_in_force_together() {
    let overlapping = DECK.replace(
        "valid_from = \"2027-01-01T00:00:00Z\"",
        "valid_from = \"2026-06-01T00:00:00Z\"",
    );
    let error = Config::parse(&overlapping, "deck.toml")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "route in force at the same time as another for carrier \"alpha\" and prefix \"44\" (first on line 9)"
        ),
        "{error}"
    );
    let bad = DECK.replace("22:00-06:00", "22:00-22:00");
    let error = Config::parse(&bad, "deck.toml").unwrap_err().to_string();
    assert!(error.contains("hours must be \"HH:MM-HH:MM\""), "{error}");
    let bad = DECK.replace(
        "2027-01-01T00:00:00Z\"\n[[routes]]",
        "2027-01-01\"\n[[routes]]",
    );
    let error = Config::parse(&bad, "deck.toml").unwrap_err().to_string();
    assert!(
        error.contains("valid_until must be an RFC 3339 instant"),
        "{error}"
    );
}

/// A night route in London's zone: 22:00-06:00 on the local clock, GMT in winter, BST in
/// summer.
const ZONED: &str = r#"
[[carriers]]
id = "alpha"
tps = 100
[[carriers]]
id = "night"
tps = 100

[[routes]]
prefix = "44"
carrier = "alpha"
cost = 0.0040
[[routes]]
prefix = "447"
carrier = "night"
cost = 0.0020
hours = "22:00-06:00"
zone = "Europe/London"
"#;

#[test]
fn a_window_in_a_zone_follows_its_daylight_saving() {
    let config = Config::parse(ZONED, "deck.toml").unwrap();
    let deck =
        RouteDeck::compile_around(&config, parse_instant("2027-01-01T00:00:00Z").unwrap()).unwrap();
    let first = |at| order(&deck, at)[0].0.clone();
    // Winter (GMT): 22:00-06:00 local is 22:00-06:00Z.
    assert_eq!(first("2027-01-15T21:30:00Z"), "alpha");
    assert_eq!(first("2027-01-15T22:00:00Z"), "night");
    assert_eq!(first("2027-01-16T05:59:00Z"), "night");
    // Summer (BST): 21:00-05:00Z.
    assert_eq!(first("2027-07-15T21:00:00Z"), "night");
    assert_eq!(first("2027-07-16T04:59:00Z"), "night");
    assert_eq!(first("2027-07-16T05:00:00Z"), "alpha");
    // The night clocks go forward (01:00Z, 28 March 2027): 06:00 BST is 05:00Z.
    assert_eq!(first("2027-03-28T04:30:00Z"), "night");
    assert_eq!(first("2027-03-28T05:00:00Z"), "alpha");
    // Years ahead, within the horizon, as in a compile around then.
    let later = parse_instant("2033-07-15T21:30:00Z").unwrap();
    assert_eq!(first("2033-07-15T21:30:00Z"), "night");
    let around_later = RouteDeck::compile_around(&config, later).unwrap();
    let table = around_later.at(later);
    let number = E164::parse("447700900123").unwrap();
    let first_offer = table.route(&number, &AllHealthy, 0).iter().next().unwrap();
    assert_eq!(table.carrier_id(first_offer.carrier), "night");
}

#[test]
fn a_zone_must_be_known_and_place_a_window() {
    let error = |text: &str| Config::parse(text, "deck.toml").unwrap_err().to_string();
    let unknown = error(&ZONED.replace("Europe/London", "Europe/Lundon"));
    assert!(
        unknown.contains("deck.toml:18:8: zone must be an IANA time zone such as \"Europe/London\", got \"Europe/Lundon\""),
        "{unknown}"
    );
    let both = error(&ZONED.replace("zone =", "utc_offset = \"+01:00\"\nzone ="));
    assert!(both.contains("give utc_offset or zone, not both"), "{both}");
    let alone = error(&ZONED.replace("hours = \"22:00-06:00\"\n", ""));
    assert!(
        alone.contains("utc_offset and zone need hours (the window they place)"),
        "{alone}"
    );
}
