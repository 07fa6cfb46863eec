//! `smsroute loadtest` in mode `serve`: the harness starts `smsroute serve` as a child
//! process, kills it with SIGKILL under load, starts it again on its journal, and its ledger
//! finds nothing lost (a short, slow run: the full `serve-kill` scenario runs in CI).

use std::process::Command;

/// A directory removed when the test ends, however it ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_killed_serve_process_loses_nothing_it_answered() {
    let temp = TempDir(
        std::env::temp_dir().join(format!("smsroute-loadtest-serve-{}", std::process::id())),
    );
    let dir = &temp.0;
    std::fs::create_dir_all(dir).unwrap();
    let scenario = dir.join("kill.toml");
    std::fs::write(
        &scenario,
        r#"
name = "serve-kill-test"
mode = "serve"
duration_s = 4
drain_s = 20
config = { generate = { prefixes = 30, tps = 5000 } }
rate = { constant = 300 }
mix = { multipart = 0.2, ucs2 = 0.2 }
carriers.uk-beta = { receipt_delay_ms = { p50 = 100, p99 = 500 } }

[[faults]]
at_s = 2
kind = "kill"
restart_after_ms = 300
"#,
    )
    .unwrap();
    let reports = dir.join("report");
    let out = Command::new(env!("CARGO_BIN_EXE_smsroute"))
        .arg("loadtest")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadtest failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["mode"], "serve");
    assert_eq!(report["serve"]["kills"], 1, "{report}");
    assert!(report["accepted"].as_u64().unwrap() > 1_000, "{report}");
    for zero in [
        "lost",
        "in_flight_at_end",
        "double_terminal",
        "duplicates_unflagged",
    ] {
        assert_eq!(report[zero], 0, "{zero}: {report}");
    }
}
