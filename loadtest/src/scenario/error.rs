//! What can be wrong with a scenario, typed: each error names the item and the value.

use smsroute_config::ConfigError;

use super::{MAX_MESSAGES, MAX_RUN_S};

/// Why a scenario cannot run: the file (or `default`) and what is wrong in it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ScenarioError {
    /// The scenario file (or `default`).
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a scenario.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// The TOML is malformed or does not fit a scenario (unknown field, missing field, wrong
    /// type, unknown mode or fault kind); `at` is the 1-based line and column where known.
    #[error("{}{message}", at.map(|(line, col)| format!("{line}:{col}: ")).unwrap_or_default())]
    Syntax {
        /// Line and column.
        at: Option<(usize, usize)>,
        /// The parser's description.
        message: String,
    },
    /// `duration_s` is not in (0, [`MAX_RUN_S`]].
    #[error("duration_s = {0:?}: expected more than 0 and at most {MAX_RUN_S} seconds")]
    Duration(f64),
    /// `warmup_s` is negative or not shorter than the duration.
    #[error("warmup_s = {0:?}: expected at least 0 and shorter than duration_s")]
    Warmup(f64),
    /// `drain_s` is negative or makes the run longer than [`MAX_RUN_S`].
    #[error(
        "drain_s = {0:?}: expected at least 0, and at most {MAX_RUN_S} seconds with duration_s"
    )]
    Drain(f64),
    /// The rate profile is not exactly one well-formed shape.
    #[error(
        "rate: give one of `constant = R` (R > 0), `ramp = {{ from, to }}`, or \
         `steps = [{{ at_s = 0, rate }}, …]` (times rising from 0)"
    )]
    RateShape,
    /// The rate plans more than [`MAX_MESSAGES`] messages.
    #[error(
        "rate: plans {planned:.0} messages over duration_s = {duration_s:?}; at most {MAX_MESSAGES}"
    )]
    TooManyMessages {
        /// Messages the profile plans.
        planned: f64,
        /// Over this long.
        duration_s: f64,
    },
    /// A share of the mix is outside 0..=1.
    #[error("{item} = {value:?}: expected a share in 0..=1")]
    Share {
        /// `mix.ucs2` or `mix.multipart`.
        item: &'static str,
        /// The value given.
        value: f64,
    },
    /// Mode `serve` without receipts.
    #[error(
        "mode = \"serve\" counts a message terminal at its receipt: it needs mix.receipts = true"
    )]
    ServeWithoutReceipts,
    /// `nodes` out of range, or above 1 outside mode `serve`.
    #[error("nodes = {0}: expected 1 to 8, and above 1 only with mode = \"serve\"")]
    Nodes(u32),
    /// `redis = "cluster"` with one node: nothing to share.
    #[error("redis = \"cluster\" needs nodes above 1 (mode = \"serve\")")]
    RedisClusterWithoutNodes,
    /// `mix.senders` is empty.
    #[error("mix.senders must name at least one sender")]
    NoSenders,
    /// A route table (`config`, or a reload's) is not exactly one of its three sources.
    #[error("{item}: give exactly one of `path`, `inline` or `generate`")]
    ConfigSource {
        /// `config` or `faults[i].config`.
        item: String,
    },
    /// A route table is invalid.
    #[error("{item}: {error}")]
    Config {
        /// `config` or `faults[i].config`.
        item: String,
        /// Every problem, positioned in the table's own text.
        error: ConfigError,
    },
    /// A generated route table cannot be made.
    #[error("{item}.generate: {error}")]
    Generate {
        /// `config` or `faults[i].config`.
        item: String,
        /// Why.
        error: GenerateError,
    },
    /// A carrier's behaviour is invalid.
    #[error("carriers.{carrier}: {error}")]
    Behaviour {
        /// The carrier.
        carrier: String,
        /// What is wrong.
        error: BehaviourError,
    },
    /// `[carriers.X]` describes a carrier the route table does not have.
    #[error("carriers.{0}: not a carrier of the configuration")]
    UnknownCarrier(String),
    /// A fault is invalid.
    #[error("faults[{index}]: {error}")]
    Fault {
        /// Its position in `faults`, from 0.
        index: usize,
        /// What is wrong.
        error: FaultError,
    },
}

/// Why a generated route table cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// `prefixes` is out of range.
    #[error("prefixes = {0}: expected 10..=100000")]
    Prefixes(u32),
    /// The generated table is refused (a bad `append`, a zero `tps`).
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// Why a carrier's behaviour is invalid.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BehaviourError {
    /// An error share or `hang` is outside 0..=1, or together they pass 1.
    #[error("error shares and hang must be in 0..=1 and sum to at most 1")]
    Shares,
    /// `tps_limit` is below 1 or not finite.
    #[error("tps_limit = {0:?}: expected at least 1")]
    TpsLimit(f64),
    /// A receipt share is negative.
    #[error("receipt shares must not be negative")]
    ReceiptShares,
    /// A latency is not one of the three shapes.
    #[error(
        "{0}: a latency is {{ fixed = ms }}, {{ min = ms, max = ms }} (min <= max) or \
         {{ p50 = ms, p99 = ms }} (0 < p50 <= p99)"
    )]
    Latency(&'static str),
}

/// Why a fault is invalid.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// `at_s` is negative or not finite.
    #[error("at_s = {0:?}: expected at least 0")]
    Start(f64),
    /// The carrier is not in the route table.
    #[error("carrier \"{0}\" is not in the configuration")]
    UnknownCarrier(String),
    /// `duration_s` is not positive.
    #[error("duration_s = {0:?}: expected more than 0")]
    Duration(f64),
    /// `share` is outside 0..=1.
    #[error("share = {0:?}: expected a share in 0..=1")]
    Share(f64),
    /// A grey route's `prefix` is not 1 to 15 digits.
    #[error("prefix = {0:?}: expected a quoted string of 1 to 15 digits")]
    Prefix(String),
    /// `restart_after_ms` is negative or not finite.
    #[error("restart_after_ms = {0:?}: expected at least 0")]
    Restart(f64),
    /// `kill` stops a `smsroute serve` process: only mode `serve` has one.
    #[error("kill (of the `smsroute serve` process) needs mode = \"serve\"")]
    KillOutsideServe,
    /// `redis_down` kills the `redis-server` several `serve` nodes share: only `nodes` above 1
    /// with `redis = "server"` have one.
    #[error("redis_down needs mode = \"serve\" with nodes above 1 and redis = \"server\"")]
    RedisWithoutCluster,
    /// A fault mode `serve` cannot inject.
    #[error("{0} is not available in mode = \"serve\" (use kill for a crash)")]
    NotInServe(&'static str),
    /// A crash without a journal would lose everything in flight.
    #[error("a crash needs [engine] journal = true")]
    CrashWithoutJournal,
    /// Receipts held and released are the in-process carriers' (SMPP simulators schedule their
    /// own).
    #[error("release_receipts needs mode = \"inproc\"")]
    ReleaseOverSmpp,
}
