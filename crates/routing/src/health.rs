//! Carrier health as routing sees it: an input, so this crate stays pure.

use crate::CarrierIndex;

/// A carrier's circuit state, as `explain` prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Working normally.
    #[default]
    Healthy,
    /// Working, with a penalty above 1.
    Degraded,
    /// Taken out of rotation; skipped unless every candidate is ejected.
    Ejected,
    /// Half-open: a few probe messages test whether it recovered.
    Probing,
}

impl HealthState {
    /// The contract's name: `healthy`, `degraded`, `ejected` or `probing`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Ejected => "ejected",
            HealthState::Probing => "probing",
        }
    }
}

/// One carrier's health: its state and the factor (≥ 1.0) its cost is multiplied by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CarrierHealth {
    /// Circuit state.
    pub state: HealthState,
    /// Effective cost = cost × penalty; 1.0 when healthy.
    pub penalty: f32,
}

impl CarrierHealth {
    /// Healthy, penalty 1.0.
    pub const HEALTHY: CarrierHealth = CarrierHealth {
        state: HealthState::Healthy,
        penalty: 1.0,
    };
}

impl Default for CarrierHealth {
    fn default() -> Self {
        Self::HEALTHY
    }
}

/// Where ranking reads carrier health. Reads must be cheap and lock-free: ranking calls this
/// once per candidate per message.
pub trait HealthView {
    /// Health of `carrier`.
    fn health(&self, carrier: CarrierIndex) -> CarrierHealth;

    /// Most of a number's candidates that may be skipped as ejected (0..=1); ejected carriers
    /// beyond that share are used anyway, in rank order. Default 1: skip every ejected one
    /// (unless all are: then all are used).
    fn max_ejected_share(&self) -> f32 {
        1.0
    }
}

/// Every carrier healthy, penalty 1.0: offline `explain`, tests, and benches.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllHealthy;

impl HealthView for AllHealthy {
    #[inline]
    fn health(&self, _: CarrierIndex) -> CarrierHealth {
        CarrierHealth::HEALTHY
    }
}

/// Health by carrier index; carriers past the end count as healthy.
impl HealthView for [CarrierHealth] {
    #[inline]
    fn health(&self, carrier: CarrierIndex) -> CarrierHealth {
        self.get(carrier.get()).copied().unwrap_or_default()
    }
}
