//! Scenario files: what to run, against which carriers, at what rate, with which faults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use smsroute_config::Config;
use smsroute_sim::{Behaviour, ErrorMix, Latency, Outage, OutageKind, ReceiptMix, status};

use crate::profile::RateProfile;

const MS: u64 = 1_000_000;

/// Why a scenario cannot run; the message names the file and the item.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScenarioError {
    /// The scenario file (or `default`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A load test, as a scenario file describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name in the report.
    pub name: String,
    /// Where the simulated carriers run. Default `inproc`.
    #[serde(default)]
    pub mode: Mode,
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

/// Where a scenario's simulated carriers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In this process, behind the `Carrier` trait.
    #[default]
    Inproc,
    /// The same models behind SMPP sessions on loopback TCP (an SMSC simulator each).
    Smpp,
}

impl Mode {
    /// As scenario files and reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Inproc => "inproc",
            Mode::Smpp => "smpp",
        }
    }
}
fn default_drain() -> f64 {
    30.0
}
fn default_seed() -> u64 {
    1
}

/// Where the route table comes from: exactly one of the three.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSource {
    /// A configuration file, relative to the scenario file.
    pub path: Option<PathBuf>,
    /// The configuration itself.
    pub inline: Option<String>,
    /// The generated table of the default scenario.
    pub generate: Option<Generate>,
}

/// A generated table: `uk-alpha` and `uk-beta` (the cheaper) serve UK prefixes under 447,
/// `fr-gamma` serves French ones under 336; `prefixes` in all, every carrier at `tps`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Distinct prefixes (at least 10).
    pub prefixes: u32,
    /// Each carrier's contracted segments per second.
    pub tps: u32,
    /// Each carrier's in-flight window. Default 4096.
    #[serde(default = "default_window")]
    pub window: u32,
    /// TOML appended to the generated configuration (a `[retry]` or `[limits]` table).
    #[serde(default)]
    pub append: String,
}

fn default_window() -> u32 {
    4096
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
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            ucs2: 0.0,
            multipart: 0.0,
            senders: default_senders(),
            receipts: true,
        }
    }
}

fn default_senders() -> Vec<String> {
    vec!["ACME".into()]
}
fn yes() -> bool {
    true
}

/// A latency in milliseconds: `{ fixed = 5 }`, `{ min = 1, max = 10 }` or
/// `{ p50 = 20, p99 = 200 }`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// Always this long.
    pub fixed: Option<f64>,
    /// Uniform: shortest.
    pub min: Option<f64>,
    /// Uniform: longest.
    pub max: Option<f64>,
    /// Log-normal: median.
    pub p50: Option<f64>,
    /// Log-normal: 99th percentile.
    pub p99: Option<f64>,
}

impl LatencySpec {
    fn latency(&self) -> Result<Latency, String> {
        let ns = |ms: f64| (ms * MS as f64) as u64;
        match *self {
            LatencySpec {
                fixed: Some(f),
                min: None,
                max: None,
                p50: None,
                p99: None,
            } if f >= 0.0 => Ok(Latency::Fixed(ns(f))),
            LatencySpec {
                fixed: None,
                min: Some(a),
                max: Some(b),
                p50: None,
                p99: None,
            } if 0.0 <= a && a <= b => Ok(Latency::Uniform {
                min: ns(a),
                max: ns(b),
            }),
            LatencySpec {
                fixed: None,
                min: None,
                max: None,
                p50: Some(a),
                p99: Some(b),
            } if 0.0 < a && a <= b => Ok(Latency::LogNormal {
                p50: ns(a),
                p99: ns(b),
            }),
            LatencySpec {
                fixed: None,
                min: None,
                max: None,
                p50: None,
                p99: None,
            } => Ok(Latency::Fixed(0)),
            _ => Err(
                "a latency is { fixed = ms }, { min = ms, max = ms } (min <= max) or \
                      { p50 = ms, p99 = ms } (0 < p50 <= p99)"
                    .into(),
            ),
        }
    }
}

/// Shares of submits answered with an error.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorShares {
    /// ESME_RSYSERR (the router fails over).
    #[serde(default)]
    pub system: f64,
    /// ESME_RX_T_APPN (the router retries).
    #[serde(default)]
    pub temporary: f64,
    /// ESME_RINVDSTADR (the message fails).
    #[serde(default)]
    pub permanent: f64,
    /// ESME_RTHROTTLED.
    #[serde(default)]
    pub throttled: f64,
}

/// Shares of receipt outcomes.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptShares {
    /// DELIVRD.
    #[serde(default)]
    pub delivered: f64,
    /// UNDELIV.
    #[serde(default)]
    pub undeliverable: f64,
    /// EXPIRED.
    #[serde(default)]
    pub expired: f64,
}

/// How one simulated carrier behaves.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierBehaviour {
    /// Submit response latency.
    #[serde(default)]
    pub latency_ms: LatencySpec,
    /// Error shares.
    #[serde(default)]
    pub errors: ErrorShares,
    /// Share of submits never answered.
    #[serde(default)]
    pub hang: f64,
    /// The carrier's own limit, segments per second (it answers ESME_RTHROTTLED beyond).
    pub tps_limit: Option<f64>,
    /// Receipt outcomes (default: all delivered).
    pub receipts: Option<ReceiptShares>,
    /// Delay from accepting to the receipt.
    #[serde(default)]
    pub receipt_delay_ms: LatencySpec,
    /// `smpp` mode: the simulated SMSC drops each session after this many submits (the
    /// last one unanswered), so the ESME must reconnect.
    pub smpp_disconnect_after: Option<u64>,
}

/// One event of the fault timeline: `kind` says what, and each kind has its own fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The carrier refuses everything (ESME_RSYSERR).
    Outage {
        /// When, seconds from the start.
        at_s: f64,
        /// Which carrier.
        carrier: String,
        /// How long.
        duration_s: f64,
    },
    /// The carrier answers nothing.
    Hang {
        /// When, seconds from the start.
        at_s: f64,
        /// Which carrier.
        carrier: String,
        /// How long.
        duration_s: f64,
    },
    /// The carrier answers `latency_ms` later.
    LatencySpike {
        /// When, seconds from the start.
        at_s: f64,
        /// Which carrier.
        carrier: String,
        /// How long.
        duration_s: f64,
        /// The added latency.
        latency_ms: f64,
    },
    /// The carrier refuses `share` of submits as temporary errors.
    ErrorBurst {
        /// When, seconds from the start.
        at_s: f64,
        /// Which carrier.
        carrier: String,
        /// How long.
        duration_s: f64,
        /// The share of submits affected. Default 1.
        #[serde(default = "one")]
        share: f64,
    },
    /// The carrier throttles `share` of submits.
    ThrottleStorm {
        /// When, seconds from the start.
        at_s: f64,
        /// Which carrier.
        carrier: String,
        /// How long.
        duration_s: f64,
        /// The share of submits affected. Default 1.
        #[serde(default = "one")]
        share: f64,
    },
    /// The router reloads `config`.
    Reload {
        /// When, seconds from the start.
        at_s: f64,
        /// The configuration to reload to.
        config: ConfigSource,
    },
    /// `count` recipients reply `text` through `carrier`.
    Inbound {
        /// When, seconds from the start.
        at_s: f64,
        /// The carrier the replies come through.
        carrier: String,
        /// The reply text. Default STOP.
        #[serde(default = "stop")]
        text: String,
        /// How many distinct recipients reply. Default 1.
        #[serde(default = "one_recipient")]
        count: usize,
    },
}

impl Fault {
    /// When it starts, seconds from the start of the run.
    pub fn at_s(&self) -> f64 {
        match self {
            Fault::Outage { at_s, .. }
            | Fault::Hang { at_s, .. }
            | Fault::LatencySpike { at_s, .. }
            | Fault::ErrorBurst { at_s, .. }
            | Fault::ThrottleStorm { at_s, .. }
            | Fault::Reload { at_s, .. }
            | Fault::Inbound { at_s, .. } => *at_s,
        }
    }

    /// A carrier's misbehaviour window: its carrier, how long, and what the model does.
    pub fn window(&self) -> Option<(&str, f64, OutageKind)> {
        let (carrier, duration_s, kind) = match self {
            Fault::Outage {
                carrier,
                duration_s,
                ..
            } => (carrier, duration_s, OutageKind::Refuse),
            Fault::Hang {
                carrier,
                duration_s,
                ..
            } => (carrier, duration_s, OutageKind::Hang),
            Fault::LatencySpike {
                carrier,
                duration_s,
                latency_ms,
                ..
            } => (
                carrier,
                duration_s,
                OutageKind::Slow((latency_ms * MS as f64) as u64),
            ),
            Fault::ErrorBurst {
                carrier,
                duration_s,
                share,
                ..
            } => (
                carrier,
                duration_s,
                OutageKind::Errors {
                    share: *share,
                    status: status::TEMPORARY,
                },
            ),
            Fault::ThrottleStorm {
                carrier,
                duration_s,
                share,
                ..
            } => (
                carrier,
                duration_s,
                OutageKind::Errors {
                    share: *share,
                    status: status::THROTTLED,
                },
            ),
            Fault::Reload { .. } | Fault::Inbound { .. } => return None,
        };
        Some((carrier, *duration_s, kind))
    }

    /// Its kind as scenario files write it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Outage { .. } => "outage",
            Fault::Hang { .. } => "hang",
            Fault::LatencySpike { .. } => "latency_spike",
            Fault::ErrorBurst { .. } => "error_burst",
            Fault::ThrottleStorm { .. } => "throttle_storm",
            Fault::Reload { .. } => "reload",
            Fault::Inbound { .. } => "inbound",
        }
    }
}

fn stop() -> String {
    "STOP".into()
}

fn one_recipient() -> usize {
    1
}

fn one() -> f64 {
    1.0
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
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_outstanding: default_outstanding(),
            inbound_capacity: default_inbound(),
        }
    }
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
    /// Each configured carrier's simulated behaviour, faults included.
    pub behaviours: BTreeMap<String, Behaviour>,
    /// Reloads: when (s), and to what.
    pub reloads: Vec<(f64, Config)>,
    /// Replies: when (s), through which carrier, what text, from how many recipients.
    pub replies: Vec<(f64, String, String, usize)>,
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
                    message: format!("cannot read: {e}"),
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
            .map_err(|message| ScenarioError {
                path: name,
                message,
            })
    }

    /// Parses a scenario (not yet checked: see [`Scenario::prepare`]).
    pub fn parse(text: &str, name: &str) -> Result<Scenario, ScenarioError> {
        let fail = |message: String| ScenarioError {
            path: name.to_string(),
            message,
        };
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    let col = s.start - text[..s.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("{line}:{col}: ")
                })
                .unwrap_or_default();
            fail(format!("{at}{}", e.message()))
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
    pub fn prepare(mut self, base: &Path) -> Result<Prepared, String> {
        self.rate.ramp_s = self.duration_s;
        if !(self.duration_s > 0.0 && self.duration_s <= MAX_RUN_S) {
            return Err(format!(
                "duration_s = {:?}: expected more than 0 and at most {MAX_RUN_S} seconds",
                self.duration_s
            ));
        }
        if !(0.0..self.duration_s).contains(&self.warmup_s) {
            return Err("warmup_s must be at least 0 and shorter than duration_s".into());
        }
        if !(0.0..=MAX_RUN_S - self.duration_s).contains(&self.drain_s) {
            return Err(format!(
                "drain_s = {:?}: expected at least 0, and at most {MAX_RUN_S} seconds with duration_s",
                self.drain_s
            ));
        }
        self.rate.check()?;
        let planned = self.rate.count_until(self.duration_s);
        if !(0.0..=MAX_MESSAGES as f64).contains(&planned) {
            return Err(format!(
                "rate: plans {planned:.0} messages over duration_s = {:?}; at most {MAX_MESSAGES}",
                self.duration_s
            ));
        }
        for (name, share) in [
            ("mix.ucs2", self.mix.ucs2),
            ("mix.multipart", self.mix.multipart),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be a share in 0..=1"));
            }
        }
        if self.mix.senders.is_empty() {
            return Err("mix.senders must name at least one sender".into());
        }
        let config = self.config.load(base, "config")?;
        let mut behaviours = BTreeMap::new();
        for c in &config.carriers {
            let b = match self.carriers.get(&c.id) {
                Some(b) => b
                    .behaviour()
                    .map_err(|e| format!("carriers.{}: {e}", c.id))?,
                None => Behaviour::default(),
            };
            behaviours.insert(c.id.clone(), b);
        }
        if let Some(id) = self
            .carriers
            .keys()
            .find(|id| !behaviours.contains_key(*id))
        {
            return Err(format!("carriers.{id}: not a carrier of the configuration"));
        }
        let mut reloads = Vec::new();
        let mut replies = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            let at = format!("faults[{i}]");
            if !(f.at_s() >= 0.0 && f.at_s().is_finite()) {
                return Err(format!("{at}: at_s must be at least 0"));
            }
            let known = |carrier: &str| {
                if behaviours.contains_key(carrier) {
                    Ok(())
                } else {
                    Err(format!(
                        "{at}: carrier \"{carrier}\" is not in the configuration"
                    ))
                }
            };
            match f {
                Fault::Reload { at_s, config } => {
                    reloads.push((*at_s, config.load(base, &format!("{at}.config"))?));
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
                        return Err(format!("{at}: duration_s must be positive"));
                    }
                    if let OutageKind::Errors { share, .. } = kind
                        && !(0.0..=1.0).contains(&share)
                    {
                        return Err(format!("{at}: share must be in 0..=1"));
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
            behaviours,
            reloads,
            replies,
        })
    }
}

impl ConfigSource {
    fn load(&self, base: &Path, item: &str) -> Result<Config, String> {
        match (&self.path, &self.inline, &self.generate) {
            (Some(path), None, None) => {
                Config::from_file(&base.join(path)).map_err(|e| format!("{item}: {e}"))
            }
            (None, Some(text), None) => {
                Config::parse(text, item).map_err(|e| format!("{item}: {e}"))
            }
            (None, None, Some(g)) => g.config().map_err(|e| format!("{item}.generate: {e}")),
            _ => Err(format!(
                "{item}: give exactly one of `path`, `inline` or `generate`"
            )),
        }
    }
}

impl Generate {
    /// The generated configuration.
    pub fn config(&self) -> Result<Config, String> {
        if self.prefixes < 10 || self.prefixes > 100_000 {
            return Err("prefixes must be in 10..=100000".into());
        }
        let mut text = String::new();
        for id in ["uk-alpha", "uk-beta", "fr-gamma"] {
            text += &format!(
                "[[carriers]]\nid = \"{id}\"\ntps = {}\nwindow = {}\n\n",
                self.tps, self.window
            );
        }
        // Two thirds UK (both UK carriers price each), one third France.
        let uk = self.prefixes * 2 / 3;
        for i in 0..uk {
            let prefix = format!("447{:05}", i * 7);
            let (alpha, beta) = (3_500 + i % 300, 3_000 + i % 250);
            text += &format!(
                "[[routes]]\nprefix = \"{prefix}\"\ncarrier = \"uk-alpha\"\ncost = 0.{alpha:06}\n\n\
                 [[routes]]\nprefix = \"{prefix}\"\ncarrier = \"uk-beta\"\ncost = 0.{beta:06}\n\n"
            );
        }
        for i in 0..self.prefixes - uk {
            text += &format!(
                "[[routes]]\nprefix = \"336{:05}\"\ncarrier = \"fr-gamma\"\ncost = 0.{:06}\n\n",
                i * 7,
                5_000 + i % 400
            );
        }
        text += "\n";
        text += &self.append;
        Config::parse(&text, "generated").map_err(|e| e.to_string())
    }
}

impl CarrierBehaviour {
    /// The behaviour model this describes, checked.
    pub fn behaviour(&self) -> Result<Behaviour, String> {
        let shares = [
            self.errors.system,
            self.errors.temporary,
            self.errors.permanent,
            self.errors.throttled,
            self.hang,
        ];
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 {
            return Err("error shares and hang must be in 0..=1 and sum to at most 1".into());
        }
        if let Some(limit) = self.tps_limit
            && !(limit >= 1.0 && limit.is_finite())
        {
            return Err("tps_limit must be at least 1".into());
        }
        let receipts = match self.receipts {
            Some(r) => {
                if [r.delivered, r.undeliverable, r.expired]
                    .iter()
                    .any(|s| *s < 0.0)
                {
                    return Err("receipt shares must not be negative".into());
                }
                ReceiptMix {
                    delivered: r.delivered,
                    undeliverable: r.undeliverable,
                    expired: r.expired,
                }
            }
            None => ReceiptMix::default(),
        };
        Ok(Behaviour {
            latency: self
                .latency_ms
                .latency()
                .map_err(|e| format!("latency_ms: {e}"))?,
            errors: ErrorMix {
                system: self.errors.system,
                temporary: self.errors.temporary,
                permanent: self.errors.permanent,
                throttled: self.errors.throttled,
            },
            hang: self.hang,
            tps_limit: self.tps_limit,
            outages: Vec::new(),
            receipts,
            receipt_delay: self
                .receipt_delay_ms
                .latency()
                .map_err(|e| format!("receipt_delay_ms: {e}"))?,
        })
    }
}

/// The built-in default scenario: 3 carriers over 2 countries, ~1,000 prefixes, GSM and UCS-2
/// with multipart, 30 s, the cheapest UK carrier out for 10 s in the middle.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");
