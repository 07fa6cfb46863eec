//! Routing by delivery quality: receipt outcomes (delivered share, time to delivery) per
//! (carrier, destination network), decayed over time, become a penalty on that carrier for
//! that network only, apart from the submit health the trackers keep.
//!
//! The dispatcher owns the statistics ([`QualityTracker`], at most [`MAX_TRACKED`] pairs);
//! on its tick it publishes the pairs whose penalty is above the equal-cost band
//! ([`QualityMap`], at most
//! [`MAX_PUBLISHED`], worst first) for submitters to read without a lock. A network is the
//! number's first `[routing] quality_digits` digits.

use std::collections::HashMap;

use smsroute_health::BoardView;
use smsroute_routing::{CarrierHealth, CarrierIndex, HealthState, HealthView};
use smsroute_types::{CarrierSlot, E164};

use smsroute_delivery::Nanos;

/// Most (carrier, network) pairs with statistics; past it the one with the fewest samples
/// makes room.
pub const MAX_TRACKED: usize = 4_096;
/// Most pairs with a published penalty (and a metric series).
pub const MAX_PUBLISHED: usize = 64;
/// Time to delivery that doubles the penalty, seconds.
const SLOW_DELIVERY_S: f64 = 600.0;
/// The lowest delivered share the penalty reads (so a dead route costs 20×, not infinity).
const FLOOR_SHARE: f64 = 0.05;

/// How quality is measured (`[routing]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityConfig {
    /// Leading digits that name a network.
    pub digits: usize,
    /// Samples (decayed) before a pair's penalty counts.
    pub min_samples: f64,
    /// Half-life of a sample, nanoseconds.
    pub half_life: Nanos,
    /// Penalties up to this (the equal-cost band) are not published: ranking would ignore
    /// them anyway.
    pub band: f32,
}

impl From<&smsroute_config::RoutingConfig> for QualityConfig {
    fn from(c: &smsroute_config::RoutingConfig) -> Self {
        QualityConfig {
            digits: usize::from(c.quality_digits),
            min_samples: f64::from(c.quality_min_samples),
            half_life: u64::from(c.quality_half_life_s) * 1_000_000_000,
            band: c.band_factor(),
        }
    }
}

/// The network of `number`: its first `digits` digits as a number (fewer if it is shorter).
pub fn network(number: &E164, digits: usize) -> u64 {
    let digits_of = number.as_str().as_bytes();
    crate::buckets::digits_value(&digits_of[..digits.min(digits_of.len())])
}

/// Decayed receipt outcomes of one (carrier, network).
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    delivered: f64,
    total: f64,
    /// Seconds to delivery, summed over the delivered.
    delivery_s: f64,
    at: Nanos,
}

impl Stats {
    fn decay(&mut self, now: Nanos, half_life: Nanos) {
        if now > self.at {
            let f = 0.5f64.powf((now - self.at) as f64 / half_life.max(1) as f64);
            self.delivered *= f;
            self.total *= f;
            self.delivery_s *= f;
            self.at = now;
        }
    }

    /// The penalty: 1 / delivered share, times 1 + mean time to delivery over 10 minutes.
    fn penalty(&self, min_samples: f64) -> f32 {
        if self.total < min_samples.max(1e-9) {
            return 1.0;
        }
        let share = (self.delivered / self.total).max(FLOOR_SHARE);
        let slow = if self.delivered > 0.0 {
            self.delivery_s / self.delivered / SLOW_DELIVERY_S
        } else {
            0.0
        };
        ((1.0 + slow) / share) as f32
    }
}

/// The dispatcher's statistics.
pub(crate) struct QualityTracker {
    config: QualityConfig,
    stats: HashMap<(CarrierSlot, u64), Stats>,
}

impl QualityTracker {
    pub fn new(config: QualityConfig) -> Self {
        QualityTracker {
            config,
            stats: HashMap::new(),
        }
    }

    pub fn set_config(&mut self, config: QualityConfig) {
        if config.digits != self.config.digits {
            self.stats.clear();
        }
        self.config = config;
    }

    /// One message's final receipt from `carrier`: delivered (after `delivery` ns) or not.
    pub fn record(
        &mut self,
        carrier: CarrierSlot,
        number: &E164,
        delivered: Option<Nanos>,
        now: Nanos,
    ) {
        let key = (carrier, network(number, self.config.digits));
        if !self.stats.contains_key(&key) && self.stats.len() >= MAX_TRACKED {
            let fewest = self
                .stats
                .iter()
                .min_by(|a, b| a.1.total.total_cmp(&b.1.total))
                .map(|(k, _)| *k);
            if let Some(k) = fewest {
                self.stats.remove(&k);
            }
        }
        let s = self.stats.entry(key).or_insert(Stats {
            at: now,
            ..Stats::default()
        });
        s.decay(now, self.config.half_life);
        s.total += 1.0;
        if let Some(after) = delivered {
            s.delivered += 1.0;
            s.delivery_s += after as f64 / 1e9;
        }
    }

    /// The pairs whose penalty is above the equal-cost band now, worst first (at most [`MAX_PUBLISHED`]), with
    /// their delivered share.
    pub fn degraded(&mut self, now: Nanos) -> Vec<((CarrierSlot, u64), f32, f64)> {
        let (half_life, min, band) = (
            self.config.half_life,
            self.config.min_samples,
            self.config.band,
        );
        let mut out: Vec<_> = self
            .stats
            .iter_mut()
            .filter_map(|(k, s)| {
                s.decay(now, half_life);
                let p = s.penalty(min);
                (p > band).then(|| (*k, p, s.delivered / s.total))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(MAX_PUBLISHED);
        // Pairs decayed to nothing leave.
        self.stats.retain(|_, s| s.total > 0.01);
        out
    }
}

/// The published penalties: immutable, swapped whole by the dispatcher.
#[derive(Debug, Default)]
pub(crate) struct QualityMap {
    pub digits: usize,
    pub penalties: HashMap<(CarrierSlot, u64), f32, ahash::RandomState>,
}

/// Routing's view for one number: the carriers' health, each penalty multiplied by the
/// number's network's quality penalty (a carrier with one turns degraded).
pub(crate) struct QualityView<'a> {
    pub board: BoardView<'a>,
    pub slot_of: &'a [CarrierSlot],
    pub map: Option<(&'a QualityMap, u64)>,
}

impl HealthView for QualityView<'_> {
    #[inline]
    fn health(&self, carrier: CarrierIndex) -> CarrierHealth {
        let mut health = self.board.health(carrier);
        let Some((map, network)) = self.map else {
            return health;
        };
        let Some(&slot) = self.slot_of.get(carrier.get()) else {
            return health;
        };
        if let Some(&penalty) = map.penalties.get(&(slot, network)) {
            health.penalty *= penalty;
            if health.state == HealthState::Healthy {
                health.state = HealthState::Degraded;
            }
        }
        health
    }

    fn max_ejected_share(&self) -> f32 {
        self.board.max_ejected_share()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn a_network_delivering_half_earns_a_penalty_that_fades_without_samples() {
        let config = QualityConfig {
            digits: 2,
            min_samples: 50.0,
            half_life: 60 * S,
            band: 1.05,
        };
        let mut tracker = QualityTracker::new(config);
        let (uk, fr) = (
            E164::parse("447700900123").unwrap(),
            E164::parse("33612345678").unwrap(),
        );
        let c = CarrierSlot(0);
        for i in 0..200u64 {
            let now = i * S / 10;
            tracker.record(c, &uk, (i % 2 == 0).then_some(S), now);
            tracker.record(c, &fr, Some(S), now);
        }
        let degraded = tracker.degraded(20 * S);
        assert_eq!(degraded.len(), 1, "{degraded:?}");
        let ((slot, net), penalty, share) = degraded[0];
        assert_eq!((slot, net), (c, 44));
        assert!((1.9..2.1).contains(&penalty), "{penalty}");
        assert!((0.49..0.51).contains(&share), "{share}");
        // Below the sample floor the penalty stops counting: 200 samples halve past 50
        // after two half-lives.
        assert!(tracker.degraded(20 * S + 121 * S).is_empty());
    }

    #[test]
    fn networks_are_leading_digits() {
        let n = E164::parse("447700900123").unwrap();
        assert_eq!(
            (network(&n, 2), network(&n, 3), network(&n, 40)),
            (44, 447, 447_700_900_123)
        );
    }
}
