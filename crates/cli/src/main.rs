//! The `smsroute` command: `check` a configuration, `explain` how a number is routed, run a
//! simulated SMSC (`sim`), `send` through real SMPP connections, run a `loadtest`.
//!
//! Exit codes: 0 success, 1 a load test that lost messages or left some in flight, or a
//! `send` whose messages were not all delivered, 2 bad input (configuration, scenario,
//! number, text or usage).

mod check;
mod cluster;
mod explain;
mod loadtest;
mod send;
mod serve;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// smsroute: a high-throughput SMS routing core.
#[derive(Parser)]
#[command(name = "smsroute", version, about)]
struct Cli {
    /// How log lines are written on stderr: `text` or `json`. What is logged: `RUST_LOG`
    /// (default `info`).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

/// Log lines on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        logs.json().init();
    } else {
        logs.with_ansi(false).init();
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file: a one-line summary, or `path:line:col: message` lines.
    Check {
        /// The configuration file (TOML).
        config: PathBuf,
    },
    /// Show how a number would be routed: ranked candidates, and why others were dropped.
    Explain {
        /// The configuration file (TOML).
        config: PathBuf,
        /// The destination number (E.164; `+`, `00`, spaces, dashes, dots, parentheses allowed).
        number: String,
        /// Message text, for the segment count.
        #[arg(long, default_value = "")]
        text: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The sender: whether the recipient opted out of it (from `[policy] suppression_file`).
        #[arg(long)]
        from: Option<String>,
        /// The message class: its quiet hours now, its cap and its price ceiling.
        #[arg(long)]
        class: Option<String>,
        /// The message's price ceiling per segment (its `max_price` tag): dearer carriers
        /// are dropped.
        #[arg(long)]
        max_price: Option<String>,
        /// Replace look-alike characters with GSM-7 ones when that saves segments (the
        /// message's `smart_encoding` tag; a class can ask for it too).
        #[arg(long)]
        smart_encoding: bool,
        /// Route as at this instant (RFC 3339, e.g. 2027-01-01T00:00:00Z): dated rows and
        /// daily windows in force then. Default: now.
        #[arg(long)]
        at: Option<String>,
    },
    /// Run a simulated SMSC (SMPP 3.4 server) until Ctrl-C.
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:2775")]
        listen: String,
        /// Behaviour profile (TOML: window, disconnect_after, seed, `[behaviour]` as a load-test
        /// scenario's carrier).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Accept only this system_id (with --password).
        #[arg(long)]
        system_id: Option<String>,
        /// Accept only this password (with --system-id).
        #[arg(long)]
        password: Option<String>,
    },
    /// Submit messages through the SMPP carriers of CONFIG; one JSON line per status event.
    Send {
        /// The configuration file (TOML) with `[carriers.smpp]` tables.
        config: PathBuf,
        /// Destination number.
        #[arg(long)]
        to: String,
        /// Message text.
        #[arg(long, default_value = "Hello from smsroute")]
        text: String,
        /// Sender id.
        #[arg(long, default_value = "smsroute")]
        from: String,
        /// Messages to send (1 to 1,000,000).
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Messages per second (at least one a day).
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Seconds to wait for terminal statuses after the last submit (0 to a week).
        #[arg(long, default_value_t = 30.0)]
        wait: f64,
    },
    /// Run the router as a process: the HTTP API for the config's [[clients]] (SMPP front:
    /// not yet), the config's SMPP carriers, a journal. SIGTERM or Ctrl-C drains and stops.
    Serve {
        /// The configuration file (TOML) with [[clients]] and [carriers.smpp] tables.
        config: PathBuf,
        /// Address of the SMPP server front.
        #[arg(long, default_value = "127.0.0.1:2775")]
        smpp: String,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// The journal's directory.
        #[arg(long, default_value = "smsroute-journal")]
        journal: PathBuf,
        /// Seconds to drain on SIGTERM (0 to 3,600).
        #[arg(long, default_value_t = 10.0)]
        grace: f64,
        /// Stop as on SIGTERM when the process that started this one is gone (for a
        /// supervisor or test harness that may be killed).
        #[arg(long)]
        exit_with_parent: bool,
    },
    /// Run a load test against simulated carriers; writes report.json and report.html.
    Loadtest {
        /// The scenario file (TOML); without one, the built-in default scenario.
        scenario: Option<PathBuf>,
        /// Override the scenario's duration, seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Override the scenario's rate profile with this constant rate, messages per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Where to write the reports.
        #[arg(long, default_value = "target/loadtest")]
        report_dir: PathBuf,
        /// Serve Prometheus metrics while it runs (default address 127.0.0.1:9000).
        #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:9000")]
        metrics: Option<String>,
    },
}

/// mimalloc in place of glibc's malloc: serve over SMPP spent ~30 % of its time in malloc,
/// free and their locks (A/B in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad input.
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let result = match cli.command {
        Command::Check { config } => check::run(&config),
        Command::Explain {
            config,
            number,
            text,
            json,
            from,
            class,
            max_price,
            smart_encoding,
            at,
        } => explain::run(
            &config,
            &explain::Request {
                number: &number,
                text: &text,
                json,
                from: from.as_deref(),
                class: class.as_deref(),
                max_price: max_price.as_deref(),
                smart_encoding,
                at: at.as_deref(),
            },
        ),
        Command::Sim {
            listen,
            profile,
            system_id,
            password,
        } => sim::run(&listen, profile.as_deref(), system_id, password),
        Command::Send {
            config,
            to,
            text,
            from,
            count,
            rate,
            wait,
        } => match send::run(send::SendArgs {
            config: &config,
            to: &to,
            text: &text,
            from: &from,
            count,
            rate,
            wait,
        }) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Serve {
            config,
            smpp,
            http,
            journal,
            grace,
            exit_with_parent,
        } => serve::run(serve::ServeArgs {
            config: &config,
            smpp: &smpp,
            http: &http,
            journal: &journal,
            grace,
            exit_with_parent,
        }),
        Command::Loadtest {
            scenario,
            duration,
            rate,
            report_dir,
            metrics,
        } => match loadtest::run(
            scenario.as_deref(),
            duration,
            rate,
            &report_dir,
            metrics.as_deref(),
        ) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(BAD_INPUT)
        }
    }
}
