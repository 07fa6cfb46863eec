//! The smsroute load-test harness, used by `smsroute loadtest`: a scenario (carriers with
//! simulated behaviour, a route table, a rate profile, a message mix, a fault timeline) runs
//! against the engine in this process (its carriers in-process or SMSC simulators over SMPP),
//! or against a `smsroute serve` child process as its SMPP client, with an open-loop
//! generator. Latency is measured from each
//! message's intended send time (no coordinated omission); an independent ledger counts what
//! was accepted, what each simulated carrier accepted and what came back, and `lost` comes from
//! it, never from the engine's counters. The report is `report.json` (the contract) and a
//! self-contained `report.html`. `docs/loadtest.md` explains scenarios and reports.
//!
//! # Example
//! ```
//! use smsroute_loadtest::{RunOptions, Scenario, run};
//!
//! let scenario = Scenario::parse(r#"
//!     name = "tiny"
//!     duration_s = 0.5
//!     drain_s = 5
//!     rate = { constant = 200 }
//!     config = { generate = { prefixes = 30, tps = 1000 } }
//! "#, "tiny.toml").unwrap();
//! let prepared = scenario.prepare(std::path::Path::new(".")).unwrap();
//! let report = run(&prepared, RunOptions::default()).unwrap();
//! assert!(report.passed());
//! assert_eq!(report.accepted, 100);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod html;
mod inproc_mode;
mod ledger;
mod lives;
mod profile;
mod progress;
mod report;
mod run;
mod scenario;
mod serve_mode;
mod smpp_mode;
mod spend;
mod stall;

pub use ledger::PerMessage;
pub use profile::{Ramp, RateProfile, Step};
pub use report::{CarrierReport, Marker, Quantiles, Report, ServeFigures, Terminal, Timeline};
pub use run::{RunError, RunOptions, run};
pub use scenario::{
    BehaviourError, CarrierBehaviour, ConfigSource, DEFAULT_SCENARIO, EngineSettings, ErrorShares,
    Fault, FaultError, Generate, GenerateError, LatencySpec, MAX_MESSAGES, MAX_RUN_S, Mix, Mode,
    Prepared, Problem, ReceiptShares, Scenario, ScenarioError,
};
