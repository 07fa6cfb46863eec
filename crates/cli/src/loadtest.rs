//! `smsroute loadtest [SCENARIO] [--duration S] [--rate R] [--report-dir DIR]`.

use std::path::Path;

use smsroute_loadtest::{RunOptions, Scenario, run as run_scenario};

/// Runs the scenario (the built-in default without one), writes the reports, prints the
/// summary. `Ok(false)` when the run lost messages or left some in flight.
pub fn run(
    scenario: Option<&Path>,
    duration: Option<f64>,
    rate: Option<f64>,
    report_dir: &Path,
    metrics: Option<&str>,
) -> Result<bool, String> {
    let metrics = metrics
        .map(|a| {
            a.parse::<std::net::SocketAddr>()
                .map_err(|e| format!("--metrics {a}: {e} (expected host:port)"))
        })
        .transpose()?;
    let prepared = Scenario::load(scenario, duration, rate).map_err(|e| e.to_string())?;
    eprintln!(
        "smsroute loadtest: scenario {} ({} s, {} carriers), reports in {}",
        prepared.scenario.name,
        prepared.scenario.duration_s,
        prepared.config.carriers.len(),
        report_dir.display()
    );
    if let Some(addr) = metrics {
        eprintln!("smsroute loadtest: metrics on http://{addr}/metrics");
    }
    let options = RunOptions {
        progress: true,
        metrics,
    };
    let report = run_scenario(&prepared, options).map_err(|e| e.to_string())?;
    report
        .write(report_dir)
        .map_err(|e| format!("{}: cannot write the reports: {e}", report_dir.display()))?;
    println!("{}", report.summary());
    if !report.passed() {
        eprintln!(
            "FAILED: lost {}, in flight at end {}, double terminal {}, sent after opt-out {}",
            report.lost, report.in_flight_at_end, report.double_terminal, report.sent_after_opt_out
        );
    }
    Ok(report.passed())
}
