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
    pub policy: Option<RawPolicy>,
    #[serde(default)]
    pub classes: Vec<Spanned<RawClass>>,
    #[serde(default)]
    pub quiet_hours: Vec<Spanned<RawQuietHours>>,
    #[serde(default)]
    pub accounts: Vec<Spanned<RawAccount>>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuietHours {
    pub prefix: Spanned<Value>,
    pub utc_offset: Option<Spanned<String>>,
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
    pub smpp: Option<Spanned<RawSmpp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmpp {
    pub host: Spanned<String>,
    pub port: Spanned<i64>,
    pub system_id: Spanned<String>,
    pub password: Spanned<String>,
    pub system_type: Option<Spanned<String>>,
    pub binds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: Spanned<Value>,
    pub carrier: Spanned<String>,
    pub cost: Spanned<Value>,
    pub tier: Option<Spanned<i64>>,
    pub weight: Option<Spanned<i64>>,
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
pub(super) struct RawLimits {
    pub max_segments: Option<Spanned<i64>>,
}
