//! The smsroute configuration file (TOML): carriers and their SMPP endpoints, rate-deck
//! routes, blocks, ported numbers, retry, limits and the policy stage (classes, quiet hours,
//! accounts). [`Config::parse`] checks everything and reports every problem it finds as
//! `path:line:col: message`, in time linear in the file (a million-row rate deck is checked in
//! seconds). Routing compiles a checked `Config`; the engine, the SMPP carrier and the policy
//! stage read their parts of it; none of them reads files.
//!
//! # Example
//! ```
//! use smsroute_config::Config;
//!
//! let config = Config::parse(r#"
//!     [[carriers]]
//!     id = "uk-alpha"
//!     tps = 500
//!
//!     [[routes]]
//!     prefix = "44"
//!     carrier = "uk-alpha"
//!     cost = 0.0040
//! "#, "inline.toml").unwrap();
//! assert_eq!(config.carrier_index("uk-alpha"), Some(0));
//!
//! let bad = "[[routes]]\nprefix = \"44\"\ncarrier = \"nope\"\ncost = 0.004\n";
//! let err = Config::parse(bad, "bad.toml").unwrap_err();
//! assert!(err.to_string().starts_with("bad.toml:3:11: unknown carrier \"nope\""), "{err}");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clients;
mod cluster;
mod dated;
mod journal;

pub use clients::{ClientConfig, Password, Secret, SmppLogin, Webhook};
pub use dated::{format_instant, parse_instant};
pub use zone::Zone;
mod policy;
mod raw;
mod routing;
mod validate;
mod zone;

use std::fmt;
use std::path::Path;

use smsroute_types::{E164, Money};

pub use validate::MAX_CARRIERS;

/// A checked configuration: every id unique, every reference resolved, every number in range.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Carriers in file order; a route's `carrier` is an index into this list.
    pub carriers: Vec<CarrierConfig>,
    /// Rate-deck rows in file order.
    pub routes: Vec<RouteConfig>,
    /// Block rules.
    pub blocks: Vec<BlockConfig>,
    /// Ported numbers.
    pub ported: Vec<PortedConfig>,
    /// Retry and timeout policy.
    pub retry: RetryConfig,
    /// The policy stage: opt-out persistence, message classes, quiet hours.
    pub policy: PolicyConfig,
    /// Message limits.
    pub limits: LimitsConfig,
    /// Capacity-aware ranking (`[routing]`).
    pub routing: RoutingConfig,
    /// The crash-safe journal (`[journal]`), when configured.
    pub journal: Option<JournalConfig>,
    /// The certificate of `smsroute serve`'s fronts (`[tls]`), when they speak TLS.
    pub tls: Option<TlsConfig>,
    /// The client accounts of `smsroute serve` (`[[clients]]`).
    pub clients: Vec<ClientConfig>,
    /// Contracts shared with other nodes through Redis (`[cluster]`), when configured.
    pub cluster: Option<ClusterConfig>,
    /// Sender ids with their own throughput (`[[senders]]`).
    pub senders: Vec<SenderConfig>,
}

/// TLS on `smsroute serve`'s fronts (`[tls]`): the certificate chain and private key (PEM
/// files, paths as written), and which fronts speak it (both by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, PEM.
    pub cert: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key: String,
    /// The SMPP server takes TLS connections only.
    pub smpp: bool,
    /// The HTTP API is HTTPS only.
    pub http: bool,
}

/// Several nodes sharing each carrier's contract through Redis (`[cluster]`;
/// `docs/cluster.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Where the nodes' Redis is (no TLS in this build).
    pub redis: RedisAddress,
    /// This node's name among the nodes, `[a-z0-9_-]+`.
    pub node_id: String,
    /// How long a lease of tokens lasts, milliseconds (1..=1000).
    pub lease_ms: u64,
}

/// Where the nodes of a `[cluster]` share their state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisAddress {
    /// One server (`url = "redis://[:password@]host:port[/db]"`).
    Server(Secret),
    /// A Redis Cluster, through any of these nodes (`redis_cluster = ["redis://host:port", …]`).
    Cluster(Vec<Secret>),
}

/// The default `[cluster] lease_ms`.
pub const DEFAULT_LEASE_MS: u64 = 50;

/// Where and how the router keeps its journal (`[journal]`; `docs/durability.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// The directory of its segments, as written (relative to the working directory).
    pub dir: String,
    /// When a record counts as durable.
    pub sync: JournalSync,
    /// At most one sync per this many milliseconds (0 to 1,000; default 1).
    pub batch_interval_ms: u64,
    /// Write each next segment ahead of use, so syncs overwrite written blocks (default
    /// true).
    pub preallocate: bool,
}

/// `[journal] sync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JournalSync {
    /// `"batch"` (the default): one `fdatasync` covers every record of a batch.
    #[default]
    Batch,
    /// `"always"`: a sync per record.
    Always,
    /// `"none"`: written, never synced (survives a crash of the process, not of the machine).
    None,
}

/// One carrier's contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarrierConfig {
    /// Unique id, `[a-z0-9_-]+`.
    pub id: String,
    /// Contracted segments per second over the whole carrier (≥ 1).
    pub tps: u32,
    /// Token-bucket depth in segments (≥ `max_segments`).
    pub burst: u32,
    /// Most submits in flight over all binds (≥ 1).
    pub window: u32,
    /// Longest expected wait in this carrier's queue before a message is passed over for the
    /// next candidate; `None`: `[routing] max_queue_wait_ms`.
    pub max_queue_wait_ms: Option<u64>,
    /// A real SMPP connection, when configured.
    pub smpp: Option<SmppConfig>,
}

/// Where and how to bind to a carrier's SMSC. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmppConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port (1..=65535).
    pub port: u16,
    /// SMPP system_id (at most 15 characters).
    pub system_id: String,
    /// SMPP password (at most 8 characters).
    pub password: String,
    /// SMPP system_type (at most 12 characters, default empty).
    pub system_type: String,
    /// Sessions to open (≥ 1); they share the carrier's tps and window.
    pub binds: u32,
}

impl std::fmt::Debug for SmppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .field("system_type", &self.system_type)
            .field("binds", &self.binds)
            .finish()
    }
}

/// One rate-deck row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// Digits, 1..=15.
    pub prefix: String,
    /// Index into [`Config::carriers`].
    pub carrier: usize,
    /// Price per segment.
    pub cost: Money,
    /// Lower tiers are tried first (0..=255).
    pub tier: u8,
    /// Share of traffic among equal-cost healthy carriers (≥ 1).
    pub weight: u32,
    /// When the row is in force (always, unless dated).
    pub period: RoutePeriod,
    /// Its own throughput `(tps, burst)` towards numbers under `prefix` on this carrier,
    /// on top of the carrier's.
    pub limit: Option<(u32, u32)>,
}

/// A sender id's own throughput (`[[senders]]`: a 10DLC number's or campaign's limit),
/// enforced on every carrier together with theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderConfig {
    /// The sender id, as messages give it.
    pub id: String,
    /// Segments per second (≥ 1).
    pub tps: u32,
    /// Bucket depth in segments (default max(tps / 10, max_segments)).
    pub burst: u32,
}

/// When a rate-deck row is in force: from `valid_from` (inclusive) to `valid_until`
/// (exclusive), and within its daily window if it has one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutePeriod {
    /// Milliseconds since the Unix epoch.
    pub valid_from: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub valid_until: Option<i64>,
    /// A daily window in local time.
    pub hours: Option<DailyWindow>,
}

/// A daily window `hours = "HH:MM-HH:MM"` on a local clock: a fixed `utc_offset` or an IANA
/// `zone` with its daylight saving; an end before the start spans midnight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyWindow {
    /// Local minute of day it opens.
    pub start_min: u32,
    /// Local minute of day it closes.
    pub end_min: u32,
    /// Its clock.
    pub zone: Zone,
}

/// A block rule: numbers under `prefix` lose every carrier whose own match is not longer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockConfig {
    /// Digits, 1..=15.
    pub prefix: String,
}

/// A ported number: routes exactly as the digits `route_as` would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortedConfig {
    /// The full number.
    pub number: E164,
    /// Digits whose routing (routes and blocks) this number takes.
    pub route_as: String,
}

/// Retry, failover and expiry policy (`[retry]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    /// Submits per message, the first and failovers included (≥ 1).
    pub max_attempts: u32,
    /// Backoff base in milliseconds (≥ 1).
    pub backoff_base_ms: u64,
    /// Backoff cap in milliseconds (≥ base).
    pub backoff_cap_ms: u64,
    /// No submit response by then: outcome unknown (timeout class).
    pub submit_timeout_ms: u64,
    /// No receipt by then: terminal `sent`.
    pub receipt_timeout_s: u64,
    /// Default message validity.
    pub validity_s: u64,
    /// Fail over when a receipt says undeliverable.
    pub reroute_on_undeliverable: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_base_ms: 50,
            backoff_cap_ms: 5_000,
            submit_timeout_ms: 10_000,
            receipt_timeout_s: 72 * 3600,
            validity_s: 3_600,
            reroute_on_undeliverable: false,
        }
    }
}

/// The policy stage (`[policy]`, `[[classes]]`, `[[quiet_hours]]`, `[[accounts]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Where opt-outs persist (an append-only log), as written in the file.
    pub suppression_file: Option<String>,
    /// Message classes (a message names its class in its `class` tag).
    pub classes: Vec<ClassConfig>,
    /// Local quiet windows per destination prefix (country).
    pub quiet_hours: Vec<QuietHoursConfig>,
    /// Accounts with a balance (a message names its account in its `account` tag).
    pub accounts: Vec<AccountConfig>,
    /// Give the charge back when a message fails before any carrier took it (default true).
    pub refund_on_failure: bool,
}

/// An account's starting balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountConfig {
    /// Name, `[a-z0-9_-]+`, unique.
    pub id: String,
    /// Balance, in the configuration's one currency.
    pub balance: smsroute_types::Money,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            suppression_file: None,
            classes: Vec::new(),
            quiet_hours: Vec::new(),
            accounts: Vec::new(),
            refund_on_failure: true,
        }
    }
}

/// A message class and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassConfig {
    /// Name, `[a-z0-9_-]+`, unique.
    pub name: String,
    /// At most this many messages of the class per recipient within `cap_window_s`.
    pub cap: Option<u32>,
    /// The cap's sliding window, seconds.
    pub cap_window_s: u64,
    /// What quiet hours do to the class (none: they do not apply).
    pub quiet_hours: Option<QuietAction>,
    /// Carriers dearer than this per segment are never used for the class.
    pub max_price: Option<Money>,
    /// Look-alike characters that alone force UCS-2 are replaced by GSM-7 ones.
    pub smart_encoding: bool,
    /// Each carrier's throughput serves higher priorities first (0 to 3; messages without
    /// a class: [`DEFAULT_PRIORITY`]).
    pub priority: u8,
    /// The share (percent) of a carrier's admissions its priority level gets whenever it has
    /// messages waiting, whatever waits above it: so it never starves.
    pub min_share_pct: Option<u8>,
}

/// The priority of a message without a class (or whose class sets none).
pub const DEFAULT_PRIORITY: u8 = 1;
/// Priority levels: 0 (lowest) to 3 (highest).
pub const PRIORITY_LEVELS: usize = 4;

/// What a quiet window does to a message of a class it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuietAction {
    /// Hold it until the window ends.
    Defer,
    /// Refuse it.
    Refuse,
}

/// A local quiet window for numbers under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuietHoursConfig {
    /// Destination prefix (the longest matching one applies).
    pub prefix: String,
    /// When, on the numbers' local clock.
    pub window: DailyWindow,
}

/// Message limits (`[limits]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Most parts a message may need (1..=255).
    pub max_segments: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_segments: smsroute_types::DEFAULT_MAX_SEGMENTS,
        }
    }
}

/// `[routing]`: how ranking weighs queues and small health differences (`docs/routing.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// A carrier whose queue would hold a new message longer than this (its queued segments
    /// over its current rate) is passed over for the next candidate in cost order, unless
    /// the carrier sets its own (0 to 86,400,000; default 1,000).
    pub max_queue_wait_ms: u64,
    /// Health penalties up to 1 + this percentage rank as healthy (penalty 1), so carriers
    /// of equal price keep sharing traffic through small health differences (0 to 100;
    /// default 5).
    pub equal_cost_band_pct: u8,
    /// Leading digits of a number that name its network for delivery quality (1 to 15;
    /// default 3).
    pub quality_digits: u8,
    /// Receipts (decayed) a (carrier, network) needs before its quality counts (default 50).
    pub quality_min_samples: u32,
    /// Half-life of a receipt in the quality figures, seconds (default 60).
    pub quality_half_life_s: u32,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            max_queue_wait_ms: 1_000,
            equal_cost_band_pct: 5,
            quality_digits: 3,
            quality_min_samples: 50,
            quality_half_life_s: 60,
        }
    }
}

impl RoutingConfig {
    /// The band as a factor: penalties up to this rank as 1.
    pub fn band_factor(&self) -> f32 {
        1.0 + f32::from(self.equal_cost_band_pct) / 100.0
    }
}

/// One problem in a configuration file, at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

/// Everything wrong with a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, as the user named it.
    pub path: String,
    /// The problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    /// One `path:line:col: message` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.path, d.line, d.col, d.message)?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: label.clone(),
            diagnostics: vec![Diagnostic {
                line: 1,
                col: 1,
                message: format!("cannot read file: {e}"),
            }],
        })?;
        Self::parse(&text, &label)
    }

    /// Parses and checks configuration text; `path` labels the errors.
    ///
    /// ```
    /// use smsroute_config::Config;
    /// let config = Config::parse(r#"
    /// [[carriers]]
    /// id = "uk-alpha"
    /// tps = 500
    ///
    /// [[routes]]
    /// prefix = "44"
    /// carrier = "uk-alpha"
    /// cost = 0.0040
    /// "#, "example.toml").unwrap();
    /// assert_eq!(config.carriers[0].burst, 50);
    /// assert_eq!(config.routes[0].cost.micros(), 4_000);
    ///
    /// let err = Config::parse("[[carriers]]\nid = \"UK\"\ntps = 0\n", "bad.toml").unwrap_err();
    /// assert!(err.to_string().starts_with("bad.toml:2:6: carrier id \"UK\""));
    /// ```
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        validate::parse(text, path)
    }

    /// Index of the carrier with this id.
    pub fn carrier_index(&self, id: &str) -> Option<usize> {
        self.carriers.iter().position(|c| c.id == id)
    }
}
