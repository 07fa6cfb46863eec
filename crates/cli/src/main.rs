//! The `smsroute` command: `check` a configuration, `explain` how a number is routed.
//!
//! Exit codes: 0 success, 2 bad input (configuration, number, text or usage).

mod check;
mod explain;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// smsroute: a high-throughput SMS routing core.
#[derive(Parser)]
#[command(name = "smsroute", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    },
}

/// Exit code for bad input.
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => check::run(&config),
        Command::Explain {
            config,
            number,
            text,
            json,
        } => explain::run(&config, &number, &text, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(BAD_INPUT)
        }
    }
}
