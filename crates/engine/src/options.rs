//! Engine tuning that is not part of the route configuration.

use smsroute_health::HealthConfig;

/// How the engine runs: queue bounds, receipts, health tuning. `EngineOptions::default()`
/// suits a gateway; tests shrink the bounds.
///
/// Quick advice: raise `max_outstanding` when the gateway's traffic waits long for receipts
/// (every message awaiting one counts); keep `inbound_capacity` small, since it only absorbs
/// bursts between the gateway's threads and the dispatcher.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Most messages accepted whose terminal event the gateway has not yet taken: past it,
    /// `submit` answers `Overloaded`. Bounds the engine's memory. Default 65,536.
    pub max_outstanding: usize,
    /// Submitted messages waiting for the dispatcher. Default 8,192.
    pub inbound_capacity: usize,
    /// Room for progress events (accepted, submitted, retrying, failed over) beyond the room
    /// every outstanding message's terminal event has reserved; when the gateway lags further,
    /// progress events are dropped (and counted), terminal events never. Default 65,536.
    pub progress_headroom: usize,
    /// Emit progress events at all (terminal events always). Default true.
    pub progress_events: bool,
    /// Ask carriers for delivery receipts. Default true.
    pub request_receipts: bool,
    /// A receipt that arrives before its submit's answer waits this long for it, in ms.
    /// Default 10,000.
    pub early_receipt_ttl_ms: u64,
    /// Carrier health tuning (`docs/health.md`).
    pub health: HealthConfig,
    /// Retries allowed per carrier as a share of its first submits (default 0.2), plus
    /// `retry_floor_per_second` (default 10).
    pub retry_ratio: f64,
    /// See `retry_ratio`.
    pub retry_floor_per_second: f64,
    /// Seed of the engine's randomness (weighted splits, backoff jitter, ejection jitter).
    pub seed: u64,
    /// Where opt-outs persist (an append-only log, replayed at start); `None`: the
    /// configuration's `[policy] suppression_file`, else in memory.
    pub suppression_file: Option<std::path::PathBuf>,
    /// Inbound events (replies, keywords) waiting for the gateway; beyond, they are dropped
    /// and counted (the opt-outs they carry are applied all the same). Default 4,096.
    pub replies_capacity: usize,
    /// (recipient, class) pairs the frequency caps keep at once; when full of live pairs,
    /// new recipients of a capped class are refused. Default 1,048,576.
    pub cap_capacity: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_outstanding: 65_536,
            inbound_capacity: 8_192,
            progress_headroom: 65_536,
            progress_events: true,
            request_receipts: true,
            early_receipt_ttl_ms: 10_000,
            health: HealthConfig::default(),
            retry_ratio: 0.2,
            retry_floor_per_second: 10.0,
            seed: 0x5EED,
            suppression_file: None,
            replies_capacity: 4_096,
            cap_capacity: 1 << 20,
        }
    }
}
