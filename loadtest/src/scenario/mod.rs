//! Scenario files: what to run, against which carriers, at what rate, with which faults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use smsroute_config::Config;
use smsroute_sim::{Behaviour, Outage, OutageKind};

use crate::profile::RateProfile;

mod carrier;
mod config;
mod error;
mod fault;

pub use carrier::{CarrierBehaviour, ErrorShares, LatencySpec, ReceiptShares};
pub use config::{ConfigSource, Generate};
pub use error::{BehaviourError, FaultError, GenerateError, Problem, ScenarioError};
pub use fault::Fault;

/// A load test, as a scenario file describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name in the report.
    pub name: String,
    /// Where the simulated carriers run. Default `inproc`.
    #[serde(default)]
    pub mode: Mode,
    /// Mode `serve`: how many `smsroute serve` processes share the carriers' contracts
    /// through a `redis-server` the harness starts (`[cluster]`). Default 1: no cluster.
    #[serde(default = "one")]
    pub nodes: u32,
    /// With `nodes` above 1: the Redis the harness starts for them, one `redis-server`
    /// (`"server"`, the default) or a Redis Cluster of three (`"cluster"`).
    #[serde(default)]
    pub redis: SharedRedis,
    /// Seconds of load.
    pub duration_s: f64,
    /// Seconds at the start whose messages are not in the latency figures.
    #[serde(default)]
    pub warmup_s: f64,
    /// Most seconds to wait after the load for messages to finish. Default 30.
    #[serde(default = "default_drain")]
    pub drain_s: f64,
    /// Seed of the message mix and the simulated carriers.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The route table.
    pub config: ConfigSource,
    /// Messages per second over time.
    pub rate: RateProfile,
    /// What the messages look like.
    #[serde(default)]
    pub mix: Mix,
    /// How each simulated carrier behaves (default: perfect and instant).
    #[serde(default)]
    pub carriers: BTreeMap<String, CarrierBehaviour>,
    /// Things that go wrong, and when.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Engine bounds.
    #[serde(default)]
    pub engine: EngineSettings,
}

/// The Redis a scenario's nodes share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedRedis {
    /// One `redis-server`, persisting every write.
    #[default]
    Server,
    /// A Redis Cluster of three primaries.
    Cluster,
}

/// Where a scenario's simulated carriers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In this process, behind the `Carrier` trait.
    #[default]
    Inproc,
    /// The same models behind SMPP sessions on loopback TCP (an SMSC simulator each).
    Smpp,
    /// `smsroute serve` as a child process with a journal, in front of those simulators,
    /// driven by SMPP client binds: a message counts accepted at its `submit_sm_resp` and
    /// terminal at its receipt.
    Serve,
}

impl Mode {
    /// As scenario files and reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Inproc => "inproc",
            Mode::Smpp => "smpp",
            Mode::Serve => "serve",
        }
    }
}
fn default_drain() -> f64 {
    30.0
}
fn default_seed() -> u64 {
    1
}
fn one() -> u32 {
    1
}

/// The message mix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Share of messages in UCS-2 (the rest GSM-7).
    #[serde(default)]
    pub ucs2: f64,
    /// Share of messages long enough for several parts.
    #[serde(default)]
    pub multipart: f64,
    /// Sender ids, used in turn.
    #[serde(default = "default_senders")]
    pub senders: Vec<String>,
    /// Ask for delivery receipts.
    #[serde(default = "yes")]
    pub receipts: bool,
    /// Message classes: a steady stream of one under bursts of another (modes inproc and
    /// smpp).
    #[serde(default)]
    pub classes: Option<ClassMix>,
}

/// `[mix.classes]`: `base_rate` messages a second are of class `base`, everything above it
/// (a burst in the rate profile) of class `burst`. The classes are the route table's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassMix {
    /// The steady class (transactional).
    pub base: String,
    /// Its rate, messages per second.
    pub base_rate: f64,
    /// The class of everything above it (marketing).
    pub burst: String,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            ucs2: 0.0,
            multipart: 0.0,
            senders: default_senders(),
            receipts: true,
            classes: None,
        }
    }
}

fn default_senders() -> Vec<String> {
    vec!["ACME".into()]
}
fn yes() -> bool {
    true
}

/// Engine bounds for the run.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// `EngineOptions::max_outstanding`.
    #[serde(default = "default_outstanding")]
    pub max_outstanding: usize,
    /// `EngineOptions::inbound_capacity`.
    #[serde(default = "default_inbound")]
    pub inbound_capacity: usize,
    /// Keep a journal (`docs/durability.md`) in a directory of the run's own under the
    /// system's temporary directory, removed when the run ends. Default true.
    #[serde(default = "default_journal")]
    pub journal: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_outstanding: default_outstanding(),
            inbound_capacity: default_inbound(),
            journal: default_journal(),
        }
    }
}

fn default_journal() -> bool {
    true
}

fn default_outstanding() -> usize {
    65_536
}
fn default_inbound() -> usize {
    8_192
}

/// The longest run, duration and drain together, seconds (send times are kept as 32-bit
/// microseconds).
pub const MAX_RUN_S: f64 = 3_600.0;
/// The most messages one run may plan.
pub const MAX_MESSAGES: u64 = 100_000_000;

/// A scenario with everything resolved and checked: ready to run.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The scenario as written (with overrides applied).
    pub scenario: Scenario,
    /// The route table.
    pub config: Config,
    /// The route table as written (generated: as generated): what mode `serve` gives the
    /// process, with the simulators' addresses and a client added.
    pub config_text: String,
    /// Each configured carrier's simulated behaviour, faults included.
    pub behaviours: BTreeMap<String, Behaviour>,
    /// Reloads: when (s), and to what.
    pub reloads: Vec<(f64, Config)>,
    /// Replies: when (s), through which carrier, what text, from how many recipients.
    pub replies: Vec<(f64, String, String, usize)>,
    /// Crashes (mode `serve`: kills): when (s), and how long the router stays down (ms).
    pub crashes: Vec<(f64, f64)>,
    /// Mode `serve` with several nodes: when (s) their `redis-server` is killed, and for how
    /// long (ms).
    pub redis_downs: Vec<(f64, f64)>,
    /// When the carriers release the receipts they hold (s).
    pub releases: Vec<f64>,
}

impl Scenario {
    /// Reads a scenario file (`None`: the built-in default), applies the overrides and checks
    /// everything.
    pub fn load(
        path: Option<&Path>,
        duration_s: Option<f64>,
        rate: Option<f64>,
    ) -> Result<Prepared, ScenarioError> {
        let (text, name, base) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|e| ScenarioError {
                    path: path.display().to_string(),
                    problem: Problem::Read(e),
                })?,
                path.display().to_string(),
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            ),
            None => (
                DEFAULT_SCENARIO.to_string(),
                "default".into(),
                PathBuf::from("."),
            ),
        };
        Scenario::parse(&text, &name)?
            .with_overrides(duration_s, rate)
            .prepare(&base)
            .map_err(|problem| ScenarioError {
                path: name,
                problem,
            })
    }

    /// Parses a scenario (not yet checked: see [`Scenario::prepare`]).
    pub fn parse(text: &str, name: &str) -> Result<Scenario, ScenarioError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let col = s.start - text[..s.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                (line, col)
            });
            ScenarioError {
                path: name.to_string(),
                problem: Problem::Syntax {
                    at,
                    message: e.message().to_string(),
                },
            }
        })
    }

    /// Applies command-line overrides: a duration and a constant rate.
    pub fn with_overrides(mut self, duration_s: Option<f64>, rate: Option<f64>) -> Scenario {
        if let Some(d) = duration_s {
            self.duration_s = d;
        }
        if let Some(r) = rate {
            self.rate = RateProfile::constant(r);
        }
        self
    }

    /// Resolves the config, behaviours and faults, checking every reference.
    pub fn prepare(mut self, base: &Path) -> Result<Prepared, Problem> {
        self.rate.ramp_s = self.duration_s;
        if !(self.duration_s > 0.0 && self.duration_s <= MAX_RUN_S) {
            return Err(Problem::Duration(self.duration_s));
        }
        if !(0.0..self.duration_s).contains(&self.warmup_s) {
            return Err(Problem::Warmup(self.warmup_s));
        }
        if !(0.0..=MAX_RUN_S - self.duration_s).contains(&self.drain_s) {
            return Err(Problem::Drain(self.drain_s));
        }
        self.rate.check()?;
        let planned = self.rate.count_until(self.duration_s);
        if !(0.0..=MAX_MESSAGES as f64).contains(&planned) {
            return Err(Problem::TooManyMessages {
                planned,
                duration_s: self.duration_s,
            });
        }
        for (item, value) in [
            ("mix.ucs2", self.mix.ucs2),
            ("mix.multipart", self.mix.multipart),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Problem::Share { item, value });
            }
        }
        if self.mix.senders.is_empty() {
            return Err(Problem::NoSenders);
        }
        let config = self.config.load(base, "config")?;
        let config_text = self.config.text(base, "config")?;
        if self.mode == Mode::Serve && !self.mix.receipts {
            return Err(Problem::ServeWithoutReceipts);
        }
        if !(1..=8).contains(&self.nodes) || (self.nodes > 1 && self.mode != Mode::Serve) {
            return Err(Problem::Nodes(self.nodes));
        }
        if self.redis == SharedRedis::Cluster && self.nodes < 2 {
            return Err(Problem::RedisClusterWithoutNodes);
        }
        let mut behaviours = BTreeMap::new();
        for c in &config.carriers {
            let b = match self.carriers.get(&c.id) {
                Some(b) => b.behaviour().map_err(|error| Problem::Behaviour {
                    carrier: c.id.clone(),
                    error,
                })?,
                None => Behaviour::default(),
            };
            behaviours.insert(c.id.clone(), b);
        }
        if let Some(id) = self
            .carriers
            .keys()
            .find(|id| !behaviours.contains_key(*id))
        {
            return Err(Problem::UnknownCarrier(id.clone()));
        }
        let mut reloads = Vec::new();
        let mut replies = Vec::new();
        let mut crashes = Vec::new();
        let mut redis_downs = Vec::new();
        let mut releases = Vec::new();
        for (index, f) in self.faults.iter().enumerate() {
            let fail = |error| Problem::Fault { index, error };
            if !(f.at_s() >= 0.0 && f.at_s().is_finite()) {
                return Err(fail(FaultError::Start(f.at_s())));
            }
            let known = |carrier: &str| {
                if behaviours.contains_key(carrier) {
                    Ok(())
                } else {
                    Err(fail(FaultError::UnknownCarrier(carrier.to_string())))
                }
            };
            match f {
                Fault::Reload { .. } | Fault::Crash { .. } if self.mode == Mode::Serve => {
                    return Err(fail(FaultError::NotInServe(f.kind())));
                }
                Fault::Reload { at_s, config } => {
                    let item = format!("faults[{index}].config");
                    reloads.push((*at_s, config.load(base, &item)?));
                }
                Fault::Kill {
                    at_s,
                    restart_after_ms,
                } => {
                    if self.mode != Mode::Serve {
                        return Err(fail(FaultError::KillOutsideServe));
                    }
                    if !(restart_after_ms.is_finite() && *restart_after_ms >= 0.0) {
                        return Err(fail(FaultError::Restart(*restart_after_ms)));
                    }
                    crashes.push((*at_s, *restart_after_ms));
                }
                Fault::Crash {
                    at_s,
                    restart_after_ms,
                } => {
                    if !self.engine.journal {
                        return Err(fail(FaultError::CrashWithoutJournal));
                    }
                    if !(restart_after_ms.is_finite() && *restart_after_ms >= 0.0) {
                        return Err(fail(FaultError::Restart(*restart_after_ms)));
                    }
                    crashes.push((*at_s, *restart_after_ms));
                }
                Fault::RedisDown { at_s, duration_s } => {
                    if self.nodes < 2 || self.redis != SharedRedis::Server {
                        return Err(fail(FaultError::RedisWithoutCluster));
                    }
                    if !(duration_s.is_finite() && *duration_s >= 0.0) {
                        return Err(fail(FaultError::Restart(*duration_s * 1e3)));
                    }
                    redis_downs.push((*at_s, *duration_s * 1e3));
                }
                Fault::ReleaseReceipts { at_s } => {
                    if self.mode != Mode::Inproc {
                        return Err(fail(FaultError::ReleaseOverSmpp));
                    }
                    releases.push(*at_s);
                }
                Fault::Inbound {
                    at_s,
                    carrier,
                    text,
                    count,
                } => {
                    known(carrier)?;
                    replies.push((*at_s, carrier.clone(), text.clone(), (*count).max(1)));
                }
                _ => {
                    let Some((carrier, duration_s, kind)) = f.window() else {
                        unreachable!("every other kind is a carrier's window")
                    };
                    known(carrier)?;
                    if duration_s.is_nan() || duration_s <= 0.0 {
                        return Err(fail(FaultError::Duration(duration_s)));
                    }
                    if let OutageKind::Errors { share, .. } = kind
                        && !(0.0..=1.0).contains(&share)
                    {
                        return Err(fail(FaultError::Share(share)));
                    }
                    if let Fault::GreyRoute {
                        prefix,
                        delivered_share,
                        ..
                    } = f
                    {
                        if prefix.is_empty()
                            || prefix.len() > 15
                            || !prefix.bytes().all(|b| b.is_ascii_digit())
                        {
                            return Err(fail(FaultError::Prefix(prefix.clone())));
                        }
                        if !(0.0..=1.0).contains(delivered_share) {
                            return Err(fail(FaultError::Share(*delivered_share)));
                        }
                    }
                    if let Some(behaviour) = behaviours.get_mut(carrier) {
                        behaviour.outages.push(Outage {
                            start: (f.at_s() * 1e9) as u64,
                            duration: (duration_s * 1e9) as u64,
                            kind,
                        });
                    }
                }
            }
        }
        Ok(Prepared {
            scenario: self,
            config,
            config_text,
            behaviours,
            reloads,
            replies,
            crashes: {
                crashes.sort_by(|a, b| a.0.total_cmp(&b.0));
                crashes
            },
            redis_downs: {
                redis_downs.sort_by(|a, b| a.0.total_cmp(&b.0));
                redis_downs
            },
            releases: {
                releases.sort_by(f64::total_cmp);
                releases
            },
        })
    }
}

/// The built-in default scenario: 3 carriers over 2 countries, ~1,000 prefixes, GSM and UCS-2
/// with multipart, 30 s, the cheapest UK carrier out for 10 s in the middle.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");
