//! Health tuning, with defaults sized for the 2–5 carriers a prefix usually has.

use crate::Nanos;

const SECOND: Nanos = 1_000_000_000;

/// How outcomes turn into penalties, ejections and probes. `HealthConfig::default()` holds the
/// documented defaults (`docs/health.md` says why each differs from Envoy's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthConfig {
    /// Weight of each new outcome in the success-ratio EWMA (0 < α ≤ 1). Default 0.05: about
    /// the last 20 outcomes.
    pub success_alpha: f64,
    /// Weight of each new sample in the latency peak-EWMA when the sample is lower than the
    /// average (higher samples are taken at once). Default 0.1.
    pub latency_alpha: f64,
    /// Submit latency up to which no latency penalty applies. Default 500 ms.
    pub latency_target: Nanos,
    /// Weight of each outcome in the throttled-ratio EWMA. Default 0.05.
    pub throttle_alpha: f64,
    /// Consecutive failures that eject a carrier. Default 5.
    pub consecutive_failures: u32,
    /// Failure share (0..=1) over the window that ejects a carrier. Default 0.5.
    pub failure_share: f64,
    /// Length of the failure-share window. Default 10 s.
    pub failure_window: Nanos,
    /// Outcomes the window must hold before the share counts. Default 20.
    pub min_volume: u32,
    /// First ejection time; the n-th lasts n × this. Default 10 s.
    pub base_ejection: Nanos,
    /// Longest ejection. Default 120 s.
    pub max_ejection: Nanos,
    /// Ejection times vary by ± this share, so carriers ejected together return apart.
    /// Default 0.1.
    pub jitter: f64,
    /// Healthy time after which the ejection count drops by one. Default 60 s.
    pub decay_interval: Nanos,
    /// Probe messages in flight at once while half-open, and successes needed to close.
    /// Default 3.
    pub probes: u32,
    /// Most of a prefix's carriers that may be skipped as ejected at once. Default 0.5.
    pub max_ejected_share: f32,
    /// Largest penalty. Default 100.
    pub max_penalty: f64,
    /// The penalty's EWMAs (failure, latency, throttling) fade toward healthy with this
    /// half-life while no new outcome comes, so a carrier that routing stopped using for its
    /// penalty is tried again. Default 5 s.
    pub penalty_half_life: Nanos,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            success_alpha: 0.05,
            latency_alpha: 0.1,
            latency_target: SECOND / 2,
            throttle_alpha: 0.05,
            consecutive_failures: 5,
            failure_share: 0.5,
            failure_window: 10 * SECOND,
            min_volume: 20,
            base_ejection: 10 * SECOND,
            max_ejection: 120 * SECOND,
            jitter: 0.1,
            decay_interval: 60 * SECOND,
            probes: 3,
            max_ejected_share: 0.5,
            max_penalty: 100.0,
            penalty_half_life: 5 * SECOND,
        }
    }
}

/// Why a health configuration is unusable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid health configuration: {0}")]
pub struct InvalidHealthConfig(pub &'static str);

impl HealthConfig {
    /// Checks the invariants the tracker relies on.
    pub fn validate(&self) -> Result<(), InvalidHealthConfig> {
        let unit = |x: f64| x > 0.0 && x <= 1.0;
        let checks: [(bool, &'static str); 10] = [
            (
                unit(self.success_alpha) && unit(self.latency_alpha) && unit(self.throttle_alpha),
                "EWMA weights must be in (0, 1]",
            ),
            (
                self.consecutive_failures >= 1,
                "consecutive_failures must be at least 1",
            ),
            (unit(self.failure_share), "failure_share must be in (0, 1]"),
            (
                self.failure_window >= 10 && self.latency_target > 0,
                "failure_window and latency_target must be positive",
            ),
            (
                self.base_ejection > 0 && self.max_ejection >= self.base_ejection,
                "need 0 < base_ejection <= max_ejection",
            ),
            (
                (0.0..1.0).contains(&self.jitter),
                "jitter must be in [0, 1)",
            ),
            (
                self.decay_interval > 0 && self.probes >= 1,
                "decay_interval and probes must be positive",
            ),
            (
                (0.0..=1.0).contains(&self.max_ejected_share),
                "max_ejected_share must be in [0, 1]",
            ),
            (self.max_penalty >= 1.0, "max_penalty must be at least 1"),
            (
                self.penalty_half_life > 0,
                "penalty_half_life must be positive",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(InvalidHealthConfig(why)),
            None => Ok(()),
        }
    }
}
