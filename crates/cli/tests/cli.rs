//! The `smsroute` binary against the CLI contract: exit codes, output shapes.

use std::path::PathBuf;
use std::process::{Command, Output};

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
