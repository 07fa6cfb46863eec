//! The `smsroute` binary against the CLI contract: exit codes, output shapes.

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;
use common::{Child, free_port};

fn smsroute(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsroute"))
        .args(args)
        .output()
        .expect("run smsroute")
}

fn example() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/routes.toml");
    root.to_str().unwrap().to_string()
}

fn write_temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("smsroute-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_summarises_a_good_config() {
    let out = smsroute(&["check", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.starts_with("ok: 3 carriers, 4 routes, 3 prefixes, 1 blocks, 1 ported numbers"),
        "{line}"
    );
}

#[test]
fn check_reports_path_line_col_and_exits_2() {
    let path = write_temp(
        "bad.toml",
        "[[carriers]]\nid = \"a\"\ntps = 0\n[[routes]]\nprefix = \"4x\"\ncarrier = \"a\"\ncost = 1\n",
    );
    let out = smsroute(&["check", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{path}:3:7: tps (segments per second) must be at least 1, got 0"),
            format!(
                "{path}:5:10: bad prefix digit 'x' at position 2 in \"4x\": expected digits 0-9 only (no '+')"
            ),
        ]
    );
    let missing = smsroute(&["check", "/nonexistent/smsroute.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).starts_with("/nonexistent/smsroute.toml:1:1: cannot read file"));
}

#[test]
fn explain_json_has_the_contract_shape() {
    let out = smsroute(&[
        "explain",
        &example(),
        "+44 7700 900123",
        "--json",
        "--text",
        &"a".repeat(200),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["number"], "447700900123");
    assert_eq!(v["blocked"], false);
    assert_eq!(v["segments"], 2);
    let candidates = v["candidates"].as_array().unwrap();
    let first = &candidates[0];
    assert_eq!(first["carrier"], "uk-beta");
    assert_eq!(first["prefix"], "447");
    assert_eq!(first["cost"].as_f64(), Some(0.0035));
    assert_eq!(first["cost"].to_string(), "0.0035");
    assert_eq!(
        (first["tier"].as_u64(), first["weight"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(first["health"], "healthy");
    assert_eq!(candidates[1]["carrier"], "uk-alpha");
    assert_eq!(candidates.len(), 2);
}

#[test]
fn explain_blocked_unserved_and_ported() {
    let blocked = smsroute(&["explain", &example(), "447009912345", "--json"]);
    assert_eq!(blocked.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&blocked)).unwrap();
    assert_eq!(
        (
            v["blocked"].as_bool(),
            v["candidates"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    assert_eq!(v["dropped"][0]["reason"], "blocked by 4470099");

    let unserved = smsroute(&["explain", &example(), "4915112345678", "--json"]);
    assert_eq!(unserved.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&unserved)).unwrap();
    assert_eq!(
        (
            v["blocked"].as_bool(),
            v["candidates"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );

    let ported = smsroute(&["explain", &example(), "447700900999"]);
    assert_eq!(ported.status.code(), Some(0));
    let text = stdout(&ported);
    assert!(text.contains("ported: routes as 4420"), "{text}");
    assert!(text.contains("1. uk-alpha"), "{text}");
    assert!(!text.contains("uk-beta"), "{text}");
}

#[test]
fn explain_rejects_bad_numbers_and_texts_with_exit_2() {
    let out = smsroute(&["explain", &example(), "07700 900123"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid number \"07700 900123\": number starts with 0"),
        "{}",
        stderr(&out)
    );
    let out = smsroute(&["explain", &example(), "44abc"]);
    assert_eq!(out.status.code(), Some(2));
    let out = smsroute(&[
        "explain",
        &example(),
        "447700900123",
        "--text",
        &"a".repeat(2000),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at most 10"), "{}", stderr(&out));
}

#[test]
fn send_goes_through_the_simulator_and_reports_every_event() {
    let port = free_port();
    let _sim = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_smsroute"))
            .args(["sim", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--system-id", "acme", "--password", "secret"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dir = std::env::temp_dir().join(format!("smsroute-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, password: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "[[carriers]]\nid = \"sim\"\ntps = 100\n[carriers.smpp]\nhost = \"127.0.0.1\"\n\
                 port = {port}\nsystem_id = \"acme\"\npassword = \"{password}\"\n\n\
                 [[routes]]\nprefix = \"44\"\ncarrier = \"sim\"\ncost = 0.01\n"
            ),
        )
        .unwrap();
        path
    };
    let good = write("good.toml", "secret");
    // Wait for the simulator to listen.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsroute"))
        .args(["send", good.to_str().unwrap(), "--to", "+44 7700 900123"])
        .args([
            "--text",
            &"Ж".repeat(80),
            "--count",
            "3",
            "--rate",
            "50",
            "--wait",
            "10",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |event: &str| lines.iter().filter(|l| l["event"] == event).count();
    assert_eq!(
        (count("accepted"), count("submitted"), count("delivered")),
        (3, 3, 3)
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "delivered")
            .all(|l| l["carrier"] == "sim")
    );
    // Two parts each: the SMSC's id of each on `submitted` and on the terminal line.
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "submitted" || l["event"] == "delivered")
            .all(|l| l["carrier_message_ids"].as_array().map(Vec::len) == Some(2)),
        "{stdout}"
    );

    // A wrong password: nothing is delivered, exit 1.
    let bad = write("bad.toml", "nope");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsroute"))
        .args([
            "send",
            bad.to_str().unwrap(),
            "--to",
            "447700900123",
            "--wait",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Why, on stderr (issue 14, defect 4: it printed only `failed(AttemptsExhausted)`).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not bound: bind refused: ESME_RINVPASWD"),
        "{stderr}"
    );
    // The same as JSON log lines; the password never appears.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsroute"))
        .args(["--log-format", "json", "send", bad.to_str().unwrap()])
        .args(["--to", "447700900123", "--wait", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failures: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["fields"]["message"] == "SMPP bind failed")
        .collect();
    assert!(!failures.is_empty(), "{stderr}");
    assert_eq!(failures[0]["level"], "WARN");
    assert_eq!(failures[0]["fields"]["carrier"], "sim");
    let reason = failures[0]["fields"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("ESME_RINVPASWD"), "{reason}");
    assert!(!stderr.contains("nope"), "a password in the logs: {stderr}");
    // Bad input: exit 2 with a message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsroute"))
        .args(["send", good.to_str().unwrap(), "--to", "12ab"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("message"));
    // Numbers out of range: exit 2 naming the flag, before anything is sent (issue 14,
    // defect 6: `--wait inf` panicked after submitting).
    for (flag, value) in [
        ("--wait", "inf"),
        ("--wait", "1e20"),
        ("--rate", "0"),
        ("--count", "0"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_smsroute"))
            .args([
                "send",
                good.to_str().unwrap(),
                "--to",
                "447700900123",
                flag,
                value,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.starts_with(flag), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing submitted");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn explain_says_what_the_policy_stage_would_do() {
    let dir = std::env::temp_dir().join(format!("smsroute-explain-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let optouts = dir.join("optouts.log");
    std::fs::write(&optouts, "out 447700900123 ACME\n").unwrap();
    let config = dir.join("policy.toml");
    std::fs::write(
        &config,
        format!(
            "[[carriers]]\nid = \"a\"\ntps = 10\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\ncost = 0.01\n\n\
             [policy]\nsuppression_file = {:?}\n\n[[classes]]\nname = \"marketing\"\nmax_per_recipient = 3\n\
             per_s = 86400\nquiet_hours = \"refuse\"\n\n[[quiet_hours]]\nprefix = \"44\"\nstart = \"00:00\"\nend = \"23:59\"\n",
            optouts.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let out = smsroute(&[
        "explain",
        cfg,
        "447700900123",
        "--json",
        "--from",
        "ACME",
        "--class",
        "marketing",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policy"]["opted_out"], true);
    assert_eq!(v["policy"]["frequency_cap"]["max"], 3);
    // 00:00-23:59 UTC: quiet almost all day (the one open minute aside).
    let quiet = &v["policy"]["quiet_hours"];
    assert!(quiet["action"] == "refuse" || quiet.is_null(), "{quiet}");
    let other = smsroute(&["explain", cfg, "447700900124", "--json", "--from", "ACME"]);
    let v: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_eq!(v["policy"]["opted_out"], false);
    assert!(v["policy"]["class"].is_null());
    let text = smsroute(&["explain", cfg, "447700900123", "--from", "ACME"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("opted out of ACME"));
    let unknown = smsroute(&["explain", cfg, "447700900123", "--class", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown class \"nope\""));
    assert_eq!(
        std::fs::read_to_string(&optouts).unwrap(),
        "out 447700900123 ACME\n",
        "read only"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn explain_drops_carriers_over_the_price_ceiling() {
    let out = smsroute(&[
        "explain",
        &example(),
        "+44 7700 900123",
        "--json",
        "--max-price",
        "0.0035",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["max_price"].as_f64(), Some(0.0035));
    let candidates = v["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0]["carrier"], "uk-beta");
    let dropped = v["dropped"].as_array().unwrap();
    assert!(
        dropped
            .iter()
            .any(|d| d["carrier"] == "uk-alpha" && d["reason"] == "over max_price 0.0035"),
        "{dropped:?}"
    );
    let none = smsroute(&[
        "explain",
        &example(),
        "+44 7700 900123",
        "--max-price",
        "0.001",
    ]);
    assert_eq!(none.status.code(), Some(0), "{}", stderr(&none));
    assert!(
        stdout(&none).contains("refused (over_max_price)"),
        "{}",
        stdout(&none)
    );
    let bad = smsroute(&["explain", &example(), "+44 7700 900123", "--max-price", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--max-price \"x\""),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn explain_shows_the_segments_smart_encoding_saves() {
    let text = format!("{} \u{201C}1234\u{201D} \u{2014} ok", "x".repeat(85));
    let run = |extra: &[&str]| {
        let example = example();
        let mut args = vec!["explain", &example, "+44 7700 900123", "--json", "--text"];
        args.push(&text);
        args.extend_from_slice(extra);
        let out = smsroute(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let plain = run(&[]);
    assert_eq!(
        (plain["segments"].as_u64(), plain["encoding"].as_str()),
        (Some(2), Some("ucs2"))
    );
    assert!(plain.get("smart_encoding").is_none_or(|v| v.is_null()));
    let smart = run(&["--smart-encoding"]);
    assert_eq!(
        (smart["segments"].as_u64(), smart["encoding"].as_str()),
        (Some(1), Some("gsm7"))
    );
    assert_eq!(smart["smart_encoding"]["segments_saved"].as_u64(), Some(1));
    assert_eq!(
        smart["smart_encoding"]["text"].as_str(),
        Some(format!("{} \"1234\" - ok", "x".repeat(85)).as_str())
    );
}

#[test]
fn explain_at_an_instant_uses_the_rows_in_force_then() {
    let dir = std::env::temp_dir().join(format!("smsroute-explain-at-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deck.toml");
    std::fs::write(
        &path,
        "[[carriers]]\nid = \"old\"\ntps = 10\n[[carriers]]\nid = \"new\"\ntps = 10\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"old\"\ncost = 0.004\nvalid_until = \"2030-01-01T00:00:00Z\"\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"new\"\ncost = 0.003\nvalid_from = \"2030-01-01T00:00:00Z\"\n\
         [[routes]]\nprefix = \"4479\"\ncarrier = \"new\"\ncost = 0.001\nhours = \"22:00-06:00\"\nzone = \"Europe/London\"\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let first_for = |number: &str, at: &str| {
        let out = smsroute(&["explain", &path, number, "--json", "--at", at]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["at"], at);
        let first = &v["candidates"][0];
        (
            first["carrier"].as_str().unwrap().to_string(),
            first["cost"].clone(),
        )
    };
    let first = |at: &str| first_for("447700900123", at).0;
    assert_eq!(first("2029-12-31T23:59:59Z"), "old");
    assert_eq!(first("2030-01-01T00:00:00Z"), "new");
    // A window in London's zone, decades ahead: 21:30Z is 22:30 BST in July (the night
    // price), 21:30 GMT in January (the day price).
    let night = |at: &str| first_for("447900900123", at).1;
    assert_eq!(night("2050-07-15T21:30:00Z"), night("2031-07-15T21:30:00Z"));
    assert_ne!(night("2050-07-15T21:30:00Z"), night("2050-01-15T21:30:00Z"));
    let bad = smsroute(&["explain", &path, "447700900123", "--at", "tomorrow"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--at \"tomorrow\""),
        "{}",
        stderr(&bad)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn explain_shows_every_bucket_on_the_path() {
    let dir = std::env::temp_dir().join(format!("smsroute-explain-buckets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deck.toml");
    std::fs::write(
        &path,
        "[[carriers]]\nid = \"big\"\ntps = 500\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"big\"\ncost = 0.004\ntps = 100\n\
         [[routes]]\nprefix = \"4477\"\ncarrier = \"big\"\ncost = 0.004\ntps = 50\nburst = 20\n\n\
         [[senders]]\nid = \"TENDLC\"\ntps = 5\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let out = smsroute(&[
        "explain",
        &path,
        "447700900123",
        "--json",
        "--from",
        "TENDLC",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let buckets = &v["candidates"][0]["buckets"];
    assert_eq!(
        buckets,
        &serde_json::json!([
            {"kind": "carrier", "tps": 500, "burst": 50},
            {"kind": "route", "prefix": "4477", "tps": 50, "burst": 20},
            {"kind": "sender", "sender": "TENDLC", "tps": 5, "burst": 10},
        ])
    );
    std::fs::remove_dir_all(&dir).ok();
}
