//! Malformed configurations: each names the file, line and column, and says what was expected.

use smsroute_config::{Config, RedisAddress};

const CARRIER: &str = "[[carriers]]\nid = \"uk-alpha\"\ntps = 500\n";

/// (config, expected "line:col", fragment of the message)
fn cases() -> Vec<(String, &'static str, &'static str)> {
    let with = |rest: &str| format!("{CARRIER}{rest}");
    vec![
        ("[[carriers]]\nid = \"uk-alpha\"\ntps = \n".into(), "3:7", "string values must be quoted"),
        ("[[carriers]]\nid = \"UK Alpha\"\ntps = 5\n".into(), "2:6", "carrier id \"UK Alpha\" is invalid"),
        ("[[carriers]]\nid = \"a\"\ntps = 0\n".into(), "3:7", "tps (segments per second) must be at least 1, got 0"),
        ("[[carriers]]\nid = \"a\"\ntps = 500\nburst = 5\n".into(), "4:9", "burst 5 is less than max_segments 10"),
        (with("[[carriers]]\nid = \"uk-alpha\"\ntps = 1\n"), "5:6", "duplicate carrier id \"uk-alpha\" (first defined on line 1)"),
        ("[[carriers]]\nid = \"a\"\ntsp = 5\n".into(), "3:1", "unknown field `tsp`"),
        ("[[carriers]]\nid = \"a\"\n".into(), "1:1", "missing field `tps`"),
        (with("[[routes]]\nprefix = \"44\"\ncarrier = \"uk-beta\"\ncost = 0.004\n"), "6:11", "unknown carrier \"uk-beta\" in route (known carriers: uk-alpha)"),
        (with("[[routes]]\nprefix = \"4a4\"\ncarrier = \"uk-alpha\"\ncost = 0.004\n"), "5:10", "bad prefix digit 'a' at position 2"),
        (with("[[routes]]\nprefix = \"+44\"\ncarrier = \"uk-alpha\"\ncost = 0.004\n"), "5:10", "bad prefix digit '+' at position 1"),
        (with("[[routes]]\nprefix = 44\ncarrier = \"uk-alpha\"\ncost = 0.004\n"), "5:10", "prefix must be a quoted string of digits (\"44\")"),
        (with("[[routes]]\nprefix = \"44\"\ncarrier = \"uk-alpha\"\ncost = -0.004\n"), "7:8", "cost must not be negative"),
        (with("[[routes]]\nprefix = \"44\"\ncarrier = \"uk-alpha\"\ncost = 0.0000001\n"), "7:8", "cost has 7 decimals, at most 6"),
        (with("[[routes]]\nprefix = \"44\"\ncarrier = \"uk-alpha\"\ncost = true\n"), "7:8", "cost must be a decimal number, found a boolean"),
        (
            with("[[routes]]\nprefix = \"44\"\ncarrier = \"uk-alpha\"\ncost = 1\n[[routes]]\nprefix = \"44\"\ncarrier = \"uk-alpha\"\ncost = 2\n"),
            "9:10",
            "duplicate route for carrier \"uk-alpha\" and prefix \"44\" (first on line 4)",
        ),
        (with("[[routes]]\nprefix = \"44\"\ncarrier = \"uk-alpha\"\ncost = 1\ntier = 300\n"), "8:8", "tier must be between 0 and 255, got 300"),
        (with("[[routes]]\nprefix = \"44\"\ncarrier = \"uk-alpha\"\ncost = 1\nweight = 0\n"), "8:10", "weight must be at least 1, got 0"),
        (with("[[routes]]\nprefix = \"1234567890123456\"\ncarrier = \"uk-alpha\"\ncost = 1\n"), "5:10", "has 16 digits, at most 15"),
        (with("[[block]]\nprefix = \"\"\n"), "5:10", "block prefix is empty"),
        (with("[[ported]]\nnumber = \"0770\"\nroute_as = \"44\"\n"), "5:10", "ported number \"0770\" is invalid: number has 4 digits"),
        (with("[[ported]]\nnumber = \"447700900123\"\nroute_as = \"4x\"\n"), "6:12", "bad route_as digit 'x'"),
        (with("[retry]\nbackoff_base_ms = 500\nbackoff_cap_ms = 100\n"), "6:18", "backoff_cap_ms 100 is less than backoff_base_ms 500"),
        (with("[retry]\nmax_attempts = 0\n"), "5:16", "max_attempts must be between 1 and 1000, got 0"),
        (with("[limits]\nmax_segments = 0\n"), "5:16", "max_segments must be between 1 and 255, got 0"),
        (
            "[[carriers]]\nid = \"a\"\ntps = 5\n[carriers.smpp]\nhost = \"127.0.0.1\"\nport = 70000\nsystem_id = \"x\"\npassword = \"toolongpassword\"\n".into(),
            "6:8",
            "port must be between 1 and 65535, got 70000",
        ),
        (
            "[[carriers]]\nid = \"a\"\ntps = 5\n[carriers.smpp]\nhost = \"h\"\nport = 2775\nsystem_id = \"x\"\npassword = \"toolongpassword\"\n".into(),
            "8:12",
            "password has 15 characters, SMPP 3.4 allows at most 8",
        ),
        (with("[[block]]\nprefix = \"44\"\n[[block]]\nprefix = \"44\"\n"), "7:10", "duplicate block for prefix \"44\" (first on line 4)"),
        (with("[[classes]]\nname = \"Marketing\"\n"), "5:8", "class name must be [a-z0-9_-]+, got \"Marketing\""),
        (with("[[classes]]\nname = \"m\"\n[[classes]]\nname = \"m\"\n"), "7:8", "duplicate class \"m\""),
        (with("[[classes]]\nname = \"m\"\nper_s = 60\n"), "6:9", "per_s needs max_per_recipient"),
        (with("[[classes]]\nname = \"m\"\nquiet_hours = \"later\"\n"), "6:15", "quiet_hours must be \"defer\" or \"refuse\""),
        (with("[[quiet_hours]]\nprefix = \"44\"\nstart = \"25:00\"\nend = \"08:00\"\n"), "6:9", "start must be a time HH:MM, got \"25:00\""),
        (with("[[quiet_hours]]\nprefix = \"44\"\nutc_offset = \"1:00\"\nstart = \"21:00\"\nend = \"08:00\"\n"), "6:14", "utc_offset must be +HH:MM or -HH:MM"),
        (with("[[quiet_hours]]\nprefix = \"44\"\nzone = \"Europe/Londn\"\nstart = \"21:00\"\nend = \"08:00\"\n"), "6:8", "zone must be an IANA time zone such as \"Europe/London\", got \"Europe/Londn\""),
        (with("[[quiet_hours]]\nprefix = \"44\"\nutc_offset = \"+01:00\"\nzone = \"Europe/London\"\nstart = \"21:00\"\nend = \"08:00\"\n"), "7:8", "give utc_offset or zone, not both"),
        (with("[policy]\nsuppression_file = \"\"\n"), "5:20", "suppression_file must name a file"),
        (with("[journal]\nsync = \"batch\"\n"), "4:1", "[journal] needs dir"),
        (with("[cluster]\nnode_id = \"a\"\n"), "4:1", "[cluster] needs url (redis://host:port) or redis_cluster"),
        (with("[cluster]\nurl = \"redis://h:6379\"\nredis_cluster = [\"redis://h:7000\"]\nnode_id = \"a\"\n"), "5:7", "url (one Redis server) or redis_cluster (a Redis Cluster's nodes), not both"),
        (with("[cluster]\nredis_cluster = []\nnode_id = \"a\"\n"), "5:17", "redis_cluster needs at least one node"),
        (with("[cluster]\nredis_cluster = [\"redis://h:7000\", \"h:7001\"]\nnode_id = \"a\"\n"), "5:36", "redis_cluster node must be redis://host:port"),
        (with("[cluster]\nurl = \"http://:pw@h:6379\"\nnode_id = \"a\"\n"), "5:7", "cluster url must be redis://host:port"),
        (with("[cluster]\nurl = \"rediss://h:6379\"\nnode_id = \"a\"\n"), "5:7", "TLS to Redis (rediss://) is not supported by this build"),
        (with("[cluster]\nurl = \"redis://h:6379\"\nnode_id = \"Node A\"\n"), "6:11", "node_id must be [a-z0-9_-]+, got \"Node A\""),
        (with("[cluster]\nurl = \"redis://h:6379\"\nnode_id = \"a\"\nlease_ms = 5000\n"), "7:12", "lease_ms must be between 1 and 1000, got 5000"),
        (with("[journal]\ndir = \" \"\n"), "5:7", "journal dir must name a directory"),
        (with("[journal]\ndir = \"j\"\nsync = \"fast\"\n"), "6:8", "sync must be \"batch\", \"always\" or \"none\", not \"fast\""),
        (with("[journal]\ndir = \"j\"\nbatch_interval_ms = 5000\n"), "6:21", "batch_interval_ms must be between 0 and 1000, got 5000"),
        (with("[tls]\ncert = \"c.pem\"\n"), "4:1", "[tls] needs key"),
        (with("[tls]\ncert = \"\"\nkey = \"k.pem\"\n"), "5:8", "tls cert must name a PEM file"),
        (with("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nsmpp = false\nhttp = false\n"), "4:1", "secures nothing"),
        (with("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nport = 1\n"), "7:1", "unknown field `port`"),
    ]
}

#[test]
fn every_malformed_config_names_line_column_and_problem() {
    let cases = cases();
    assert!(cases.len() >= 15);
    for (text, at, fragment) in cases {
        let err = Config::parse(&text, "bad.toml").expect_err(&format!("should reject:\n{text}"));
        let rendered = err.to_string();
        let first = rendered.lines().next().unwrap();
        let want_prefix = format!("bad.toml:{at}: ");
        assert!(
            first.starts_with(&want_prefix),
            "want {want_prefix:?}, got {first:?} for:\n{text}"
        );
        assert!(
            first.contains(fragment),
            "want {fragment:?} in {first:?} for:\n{text}"
        );
    }
}

#[test]
fn several_problems_are_all_reported_in_file_order() {
    let text = "[[carriers]]\nid = \"Bad\"\ntps = 0\n[[routes]]\nprefix = \"4x\"\ncarrier = \"nope\"\ncost = -1\n";
    let err = Config::parse(text, "multi.toml").unwrap_err();
    let lines: Vec<String> = err.to_string().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines[0].starts_with("multi.toml:2:6: carrier id \"Bad\""));
    assert!(lines[1].starts_with("multi.toml:3:7: tps"));
    assert!(lines[2].starts_with("multi.toml:5:10: bad prefix digit"));
    assert!(lines[3].starts_with("multi.toml:6:11: unknown carrier \"nope\""));
    assert!(lines[4].starts_with("multi.toml:7:8: cost must not be negative"));
}

#[test]
fn defaults_fill_in_and_a_full_contract_file_parses() {
    let text = r#"
[[carriers]]
id = "uk-alpha"
tps = 500
burst = 50
window = 64
[carriers.smpp]
host = "127.0.0.1"
port = 2775
system_id = "acme"
password = "secret"
binds = 2

[[carriers]]
id = "slow_1"
tps = 20

[[routes]]
prefix = "44"
carrier = "uk-alpha"
cost = 0.0040
tier = 0
weight = 1

[[block]]
prefix = "4470099"

[[ported]]
number = "+44 7700 900123"
route_as = "447400"

[retry]
max_attempts = 5
backoff_base_ms = 50
backoff_cap_ms = 5000
submit_timeout_ms = 10000
receipt_timeout_s = 600
validity_s = 3600
reroute_on_undeliverable = true

[limits]
max_segments = 6

[tls]
cert = "certs/hub.pem"
key = "certs/hub.key"
smpp = false

[journal]
dir = "var/journal"
sync = "always"
batch_interval_ms = 0
preallocate = false
"#;
    let config = Config::parse(text, "full.toml").unwrap();
    assert_eq!(
        config.carriers[0].smpp.as_ref().map(|s| (s.port, s.binds)),
        Some((2775, 2))
    );
    // Default burst: max(tps / 10, max_segments) = max(2, 6).
    assert_eq!(
        (config.carriers[1].burst, config.carriers[1].window),
        (6, 64)
    );
    assert_eq!(config.ported[0].number.as_str(), "447700900123");
    assert!(config.retry.reroute_on_undeliverable);
    assert_eq!(config.limits.max_segments, 6);
    assert_eq!(
        config.journal,
        Some(smsroute_config::JournalConfig {
            dir: "var/journal".into(),
            sync: smsroute_config::JournalSync::Always,
            batch_interval_ms: 0,
            preallocate: false,
        })
    );
    assert_eq!(
        config.tls,
        Some(smsroute_config::TlsConfig {
            cert: "certs/hub.pem".into(),
            key: "certs/hub.key".into(),
            smpp: false,
            http: true,
        })
    );
    let without = Config::parse(CARRIER, "bare.toml").unwrap();
    assert_eq!(without.journal, None, "no journal unless configured");
    assert_eq!(without.tls, None, "no TLS unless configured");
}

#[test]
fn policy_tables_parse_into_checked_values() {
    let text = format!(
        "{CARRIER}[policy]\nsuppression_file = \"optouts.log\"\n\n[[classes]]\nname = \"marketing\"\n\
         max_per_recipient = 3\nper_s = 86400\nquiet_hours = \"defer\"\n\n[[classes]]\nname = \"otp\"\n\n\
         [[quiet_hours]]\nprefix = \"44\"\nutc_offset = \"+01:00\"\nstart = \"21:30\"\nend = \"08:00\"\n"
    );
    let config = Config::parse(&text, "policy.toml").unwrap();
    let p = &config.policy;
    assert_eq!(p.suppression_file.as_deref(), Some("optouts.log"));
    assert_eq!(p.classes.len(), 2);
    let m = &p.classes[0];
    assert_eq!(
        (m.name.as_str(), m.cap, m.cap_window_s),
        ("marketing", Some(3), 86_400)
    );
    assert_eq!(m.quiet_hours, Some(smsroute_config::QuietAction::Defer));
    assert_eq!((p.classes[1].cap, p.classes[1].quiet_hours), (None, None));
    let q = &p.quiet_hours[0];
    assert_eq!(
        (
            q.prefix.as_str(),
            &q.window.zone,
            q.window.start_min,
            q.window.end_min
        ),
        ("44", &smsroute_config::Zone::Fixed(60), 21 * 60 + 30, 480)
    );
}

#[test]
fn accounts_parse_and_bad_ones_are_named() {
    let text = format!(
        "{CARRIER}[policy]\nrefund_on_failure = false\n\n[[accounts]]\nid = \"acme\"\nbalance = 12.5\n"
    );
    let config = Config::parse(&text, "a.toml").unwrap();
    assert!(!config.policy.refund_on_failure);
    assert_eq!(config.policy.accounts[0].id, "acme");
    assert_eq!(config.policy.accounts[0].balance.micros(), 12_500_000);
    let dup = format!(
        "{CARRIER}[[accounts]]\nid = \"a\"\nbalance = 1\n[[accounts]]\nid = \"a\"\nbalance = 2\n"
    );
    let err = Config::parse(&dup, "a.toml").unwrap_err().to_string();
    assert!(err.contains("a.toml:8:6: duplicate account \"a\""), "{err}");
    let neg = format!("{CARRIER}[[accounts]]\nid = \"a\"\nbalance = -1\n");
    let err = Config::parse(&neg, "a.toml").unwrap_err().to_string();
    assert!(err.contains("a.toml:6:11:"), "{err}");
}

/// Regression (issue 14, deliverable 4): an unquoted password was echoed in the error, and
/// `Debug` of the checked configuration printed it.
#[test]
fn a_password_never_appears_in_an_error_or_a_debug_print() {
    let smpp = |password: &str| {
        format!(
            "[[carriers]]\nid = \"a\"\ntps = 5\n[carriers.smpp]\nhost = \"h\"\nport = 2775\n\
             system_id = \"x\"\npassword = {password}\n"
        )
    };
    for written in [
        "13371337",
        "[\"13371337\"]",
        "{ a = \"13371337\" }",
        "13.371337",
    ] {
        let err = Config::parse(&smpp(written), "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:8:12: invalid password"), "{err}");
        assert!(!err.contains("1337"), "{err}");
    }
    let err = Config::parse(&smpp("\"133713371337\""), "p.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("password has 12 characters") && !err.contains("1337"),
        "{err}"
    );
    let config = Config::parse(&smpp("\"s3cr3t\""), "p.toml").unwrap();
    let debug = format!("{config:?}");
    assert!(
        debug.contains("system_id: \"x\"") && !debug.contains("s3cr3t"),
        "{debug}"
    );
}

#[test]
fn a_cluster_section_parses_and_hides_its_url() {
    let text = format!(
        "{CARRIER}[cluster]\nurl = \"redis://:hunter2@10.0.0.5:6379\"\nnode_id = \"node-a\"\n"
    );
    let config = smsroute_config::Config::parse(&text, "c.toml").unwrap();
    let cluster = config.cluster.as_ref().unwrap();
    let RedisAddress::Server(url) = &cluster.redis else {
        panic!("one server: {:?}", cluster.redis);
    };
    assert_eq!(url.expose(), "redis://:hunter2@10.0.0.5:6379");
    assert_eq!((cluster.node_id.as_str(), cluster.lease_ms), ("node-a", 50));
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn a_redis_cluster_is_given_by_its_nodes() {
    let text = format!(
        "{CARRIER}[cluster]\nredis_cluster = [\"redis://:pw@10.0.0.5:7000\", \"redis://:pw@10.0.0.6:7000\"]\nnode_id = \"node-a\"\n"
    );
    let config = smsroute_config::Config::parse(&text, "c.toml").unwrap();
    let RedisAddress::Cluster(nodes) = &config.cluster.as_ref().unwrap().redis else {
        panic!("a Redis Cluster");
    };
    let nodes: Vec<&str> = nodes.iter().map(|n| n.expose()).collect();
    assert_eq!(
        nodes,
        ["redis://:pw@10.0.0.5:7000", "redis://:pw@10.0.0.6:7000"]
    );
}
