//! The configuration file as written: plain serde data with spans, before any checks.

use serde::Deserialize;
use toml::{Spanned, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub carriers: Vec<Spanned<RawCarrier>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub block: Vec<Spanned<RawBlock>>,
    #[serde(default)]
    pub ported: Vec<Spanned<RawPorted>>,
    pub retry: Option<RawRetry>,
    pub limits: Option<RawLimits>,
    pub routing: Option<RawRouting>,
    pub journal: Option<Spanned<RawJournal>>,
    pub tls: Option<Spanned<RawTls>>,
    pub cluster: Option<Spanned<RawCluster>>,
    pub policy: Option<RawPolicy>,
    #[serde(default)]
    pub classes: Vec<Spanned<RawClass>>,
    #[serde(default)]
    pub quiet_hours: Vec<Spanned<RawQuietHours>>,
    #[serde(default)]
    pub accounts: Vec<Spanned<RawAccount>>,
    #[serde(default)]
    pub clients: Vec<Spanned<RawClient>>,
    #[serde(default)]
    pub senders: Vec<Spanned<RawSender>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub id: Spanned<String>,
    pub system_id: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_hash: Option<Spanned<String>>,
    pub api_keys: Option<Vec<Spanned<String>>>,
    pub account: Option<Spanned<String>>,
    pub senders: Option<Vec<Spanned<String>>>,
    pub tps: Option<Spanned<i64>>,
    pub window: Option<Spanned<i64>>,
    pub max_binds: Option<Spanned<i64>>,
    pub replies: Option<Vec<Spanned<String>>>,
    pub webhook_url: Option<Spanned<String>>,
    pub webhook_secret: Option<Spanned<String>>,
    pub webhook_ca: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub id: Spanned<String>,
    pub balance: Spanned<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub suppression_file: Option<Spanned<String>>,
    pub refund_on_failure: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    pub name: Spanned<String>,
    pub max_per_recipient: Option<Spanned<i64>>,
    pub per_s: Option<Spanned<i64>>,
    pub quiet_hours: Option<Spanned<String>>,
    pub max_price: Option<Spanned<Value>>,
    pub smart_encoding: Option<bool>,
    pub priority: Option<Spanned<i64>>,
    pub min_share_pct: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuietHours {
    pub prefix: Spanned<Value>,
    pub utc_offset: Option<Spanned<String>>,
    pub zone: Option<Spanned<String>>,
    pub start: Spanned<String>,
    pub end: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCarrier {
    pub id: Spanned<String>,
    pub tps: Spanned<i64>,
    pub burst: Option<Spanned<i64>>,
    pub window: Option<Spanned<i64>>,
    pub max_queue_wait_ms: Option<Spanned<i64>>,
    pub smpp: Option<Spanned<RawSmpp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmpp {
    pub host: Spanned<String>,
    pub port: Spanned<i64>,
    pub system_id: Spanned<String>,
    pub password: Spanned<Secret>,
    pub system_type: Option<Spanned<String>>,
    pub binds: Option<Spanned<i64>>,
}

/// A password as written: a string, and an error that never repeats what was written
/// instead (an unquoted `password = 13371337` must not end up in a log).
pub(super) struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        const WANTED: &str = "a quoted string (the value written is not repeated here)";
        fn refuse<E: serde::de::Error>() -> Result<Secret, E> {
            Err(E::custom(format!("invalid password: expected {WANTED}")))
        }
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(WANTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                refuse()
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                refuse()
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                refuse()
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                refuse()
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                refuse()
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                refuse()
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: Spanned<Value>,
    pub carrier: Spanned<String>,
    pub cost: Spanned<Value>,
    pub tier: Option<Spanned<i64>>,
    pub weight: Option<Spanned<i64>>,
    pub valid_from: Option<Spanned<String>>,
    pub valid_until: Option<Spanned<String>>,
    pub hours: Option<Spanned<String>>,
    pub utc_offset: Option<Spanned<String>>,
    pub zone: Option<Spanned<String>>,
    pub tps: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSender {
    pub id: Spanned<String>,
    pub tps: Spanned<i64>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlock {
    pub prefix: Spanned<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPorted {
    pub number: Spanned<Value>,
    pub route_as: Spanned<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub max_attempts: Option<Spanned<i64>>,
    pub backoff_base_ms: Option<Spanned<i64>>,
    pub backoff_cap_ms: Option<Spanned<i64>>,
    pub submit_timeout_ms: Option<Spanned<i64>>,
    pub receipt_timeout_s: Option<Spanned<i64>>,
    pub validity_s: Option<Spanned<i64>>,
    pub reroute_on_undeliverable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub smpp: Option<bool>,
    pub http: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJournal {
    pub dir: Option<Spanned<String>>,
    pub sync: Option<Spanned<String>>,
    pub batch_interval_ms: Option<Spanned<i64>>,
    pub preallocate: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_segments: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouting {
    pub max_queue_wait_ms: Option<Spanned<i64>>,
    pub equal_cost_band_pct: Option<Spanned<i64>>,
    pub quality_digits: Option<Spanned<i64>>,
    pub quality_min_samples: Option<Spanned<i64>>,
    pub quality_half_life_s: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub url: Option<Spanned<String>>,
    pub redis_cluster: Option<Spanned<Vec<Spanned<String>>>>,
    pub node_id: Option<Spanned<String>>,
    pub lease_ms: Option<Spanned<i64>>,
}
