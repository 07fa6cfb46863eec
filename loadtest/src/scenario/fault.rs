//! The fault timeline: what goes wrong, when, and to which carrier.

use serde::Deserialize;
use smsroute_sim::{OutageKind, status};

use super::ConfigSource;

const MS: u64 = 1_000_000;

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
    /// The router crashes: abandoned at once, as by a kill (what its journal had not yet
    /// written is lost), and started again from its journal `restart_after_ms` later. The
    /// simulated carriers survive it (and count what they are sent twice); the load goes on,
    /// refused while the router is down. Needs `[engine] journal = true`.
    Crash {
        /// When, seconds from the start.
        at_s: f64,
        /// How long the router stays down. Default 500 ms.
        #[serde(default = "half_a_second")]
        restart_after_ms: f64,
    },
    /// Mode `serve`: the `smsroute serve` process gets SIGKILL, and is started again on its
    /// journal `restart_after_ms` later; the client binds reconnect and send again what got
    /// no answer. The simulated carriers survive it.
    Kill {
        /// When, seconds from the start.
        at_s: f64,
        /// How long the process stays down. Default 500 ms.
        #[serde(default = "half_a_second")]
        restart_after_ms: f64,
    },
    /// Mode `serve` with `nodes` above 1: the `redis-server` the nodes share is killed, and
    /// started again on what it persisted `duration_s` later.
    RedisDown {
        /// When, seconds from the start.
        at_s: f64,
        /// How long it stays down.
        duration_s: f64,
    },
    /// Every carrier sends all the receipts it still holds, at once (receipts delayed past the
    /// load, as phones that were off come back). In-process carriers only.
    ReleaseReceipts {
        /// When, seconds from the start (may be after the load, during the drain).
        at_s: f64,
    },
    /// The carrier keeps acking everything, but only `delivered_share` of its receipts for
    /// numbers under `prefix` say delivered (the rest undeliverable): a grey route.
    GreyRoute {
        /// When, seconds from the start.
        at_s: f64,
        /// Which carrier.
        carrier: String,
        /// How long.
        duration_s: f64,
        /// The destinations affected: a quoted string of 1 to 15 digits.
        prefix: String,
        /// The share of their receipts that say delivered.
        delivered_share: f64,
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
            | Fault::GreyRoute { at_s, .. }
            | Fault::Reload { at_s, .. }
            | Fault::Crash { at_s, .. }
            | Fault::Kill { at_s, .. }
            | Fault::RedisDown { at_s, .. }
            | Fault::ReleaseReceipts { at_s }
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
            Fault::GreyRoute {
                carrier,
                duration_s,
                prefix,
                delivered_share,
                ..
            } => (
                carrier,
                duration_s,
                OutageKind::Grey {
                    // Checked when the scenario is prepared (digits, at most 15).
                    prefix: prefix.parse().unwrap_or(u64::MAX),
                    len: prefix.len().min(255) as u8,
                    delivered: *delivered_share,
                },
            ),
            Fault::Reload { .. }
            | Fault::Crash { .. }
            | Fault::Kill { .. }
            | Fault::RedisDown { .. }
            | Fault::ReleaseReceipts { .. }
            | Fault::Inbound { .. } => return None,
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
            Fault::GreyRoute { .. } => "grey_route",
            Fault::Reload { .. } => "reload",
            Fault::Crash { .. } => "crash",
            Fault::Kill { .. } => "kill",
            Fault::RedisDown { .. } => "redis_down",
            Fault::ReleaseReceipts { .. } => "release_receipts",
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

fn half_a_second() -> f64 {
    500.0
}

fn one() -> f64 {
    1.0
}
