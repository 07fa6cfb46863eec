//! Adaptive rate: back off when the carrier says "throttled", creep back when it is quiet.
//!
//! AIMD, as TCP does it: each throttling response (ESME_RTHROTTLED) multiplies the effective
//! rate by `decrease` (0.7), at most once per `cooldown` (the throttles that follow a cut
//! answer traffic sent before it); every `quiet` period without one adds `increase` × the
//! contracted rate back. The rate stays within `[min, contracted]`.

use crate::{NANOS_PER_SEC, Nanos};

/// Tuning of [`AdaptiveRate`]; `AdaptiveConfig::new(contracted)` gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveConfig {
    /// The contracted rate, segments per second: the ceiling.
    pub contracted: f64,
    /// The floor, segments per second (default: 5% of the contract, at least 1).
    pub min: f64,
    /// Factor applied on a throttle (default 0.7).
    pub decrease: f64,
    /// Share of the contracted rate restored per quiet period (default 0.05).
    pub increase: f64,
    /// A period without throttles that earns one increase (default 1 s).
    pub quiet: Nanos,
    /// Throttles within this long after a cut do not cut again (default 500 ms).
    pub cooldown: Nanos,
}

impl AdaptiveConfig {
    /// The defaults for a carrier contracted at `contracted` segments per second.
    pub fn new(contracted: f64) -> Self {
        AdaptiveConfig {
            contracted,
            min: (contracted * 0.05).max(1.0).min(contracted),
            decrease: 0.7,
            increase: 0.05,
            quiet: NANOS_PER_SEC,
            cooldown: NANOS_PER_SEC / 2,
        }
    }
}

/// Why an adaptive configuration is unusable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidAdaptive {
    /// `0 < min ≤ contracted` does not hold.
    #[error("need 0 < min ({min}) <= contracted ({contracted})")]
    Bounds {
        /// The floor given.
        min: f64,
        /// The ceiling given.
        contracted: f64,
    },
    /// `decrease` outside (0, 1) or `increase` outside (0, 1].
    #[error("decrease must be in (0, 1) and increase in (0, 1]")]
    Factors,
    /// A zero quiet period.
    #[error("quiet period must be positive")]
    Quiet,
}

/// The effective rate of one carrier. Sans-IO: feed it events with `now`, read [`rate`].
///
/// ```
/// use smsroute_throttle::{AdaptiveConfig, AdaptiveRate, NANOS_PER_SEC};
/// let mut r = AdaptiveRate::new(AdaptiveConfig::new(100.0)).unwrap();
/// assert_eq!(r.on_throttled(0), Some(70.0));           // cut to 70%
/// assert_eq!(r.on_throttled(NANOS_PER_SEC / 10), None); // within the cooldown
/// assert_eq!(r.on_tick(NANOS_PER_SEC), None);           // quiet only since the last throttle
/// assert_eq!(r.on_tick(NANOS_PER_SEC * 11 / 10), Some(75.0)); // one quiet second: +5% of 100
/// ```
///
/// [`rate`]: AdaptiveRate::rate
#[derive(Clone, Debug)]
pub struct AdaptiveRate {
    config: AdaptiveConfig,
    current: f64,
    /// When the rate was last cut.
    last_cut: Option<Nanos>,
    /// Start of the quiet period being counted.
    quiet_since: Nanos,
}

impl AdaptiveRate {
    /// Starts at the contracted rate.
    pub fn new(config: AdaptiveConfig) -> Result<Self, InvalidAdaptive> {
        if !(config.min > 0.0 && config.min <= config.contracted) {
            return Err(InvalidAdaptive::Bounds {
                min: config.min,
                contracted: config.contracted,
            });
        }
        if !(config.decrease > 0.0
            && config.decrease < 1.0
            && config.increase > 0.0
            && config.increase <= 1.0)
        {
            return Err(InvalidAdaptive::Factors);
        }
        if config.quiet == 0 {
            return Err(InvalidAdaptive::Quiet);
        }
        Ok(AdaptiveRate {
            config,
            current: config.contracted,
            last_cut: None,
            quiet_since: 0,
        })
    }

    /// The effective rate, segments per second.
    pub fn rate(&self) -> f64 {
        self.current
    }

    /// The configuration.
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The carrier answered "throttled" at `now`. Returns the new rate if it changed.
    pub fn on_throttled(&mut self, now: Nanos) -> Option<f64> {
        self.quiet_since = now;
        if self
            .last_cut
            .is_some_and(|cut| now.saturating_sub(cut) < self.config.cooldown)
        {
            return None;
        }
        self.last_cut = Some(now);
        let cut = (self.current * self.config.decrease).max(self.config.min);
        self.change_to(cut)
    }

    /// Time passed; restores the rate for every full quiet period since the last throttle or
    /// increase. Returns the new rate if it changed.
    pub fn on_tick(&mut self, now: Nanos) -> Option<f64> {
        let periods = now.saturating_sub(self.quiet_since) / self.config.quiet;
        if periods == 0 || self.current >= self.config.contracted {
            return None;
        }
        self.quiet_since += periods * self.config.quiet;
        let step = self.config.contracted * self.config.increase;
        let raised = (self.current + step * periods as f64).min(self.config.contracted);
        self.change_to(raised)
    }

    /// The contract changed (reload): keeps the current share of it, within the new bounds.
    pub fn set_contracted(
        &mut self,
        config: AdaptiveConfig,
    ) -> Result<Option<f64>, InvalidAdaptive> {
        let share = self.current / self.config.contracted;
        let next = AdaptiveRate::new(config)?;
        self.config = next.config;
        let rate = (config.contracted * share).clamp(config.min, config.contracted);
        Ok(self.change_to(rate))
    }

    fn change_to(&mut self, rate: f64) -> Option<f64> {
        if rate == self.current {
            return None;
        }
        self.current = rate;
        Some(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = NANOS_PER_SEC;

    /// The whole curve for one scenario, step by step.
    #[test]
    fn cut_hold_and_restore_curve() {
        let mut r = AdaptiveRate::new(AdaptiveConfig::new(200.0)).unwrap();
        let events: &[(&str, Nanos, Option<f64>)] = &[
            ("throttle", 0, Some(140.0)),
            ("throttle", S / 4, None),   // cooldown: same overload
            ("tick", S / 2, None),       // quiet period restarted at S/4
            ("throttle", S, Some(98.0)), // cooldown over: cut again
            ("tick", S + S / 2, None),
            ("tick", 2 * S, Some(108.0)), // one quiet second: +5% of 200
            ("tick", 4 * S + S / 2, Some(128.0)), // two more full seconds (2 s, 3 s → 4 s)
            ("tick", 20 * S, Some(200.0)), // capped at the contract
            ("tick", 30 * S, None),
        ];
        for (what, now, want) in events {
            let got = match *what {
                "throttle" => r.on_throttled(*now),
                _ => r.on_tick(*now),
            };
            let rounded = got.map(|g| (g * 1e6).round() / 1e6);
            assert_eq!(rounded, *want, "{what} at {now}");
        }
        assert_eq!(r.rate(), 200.0);
    }

    #[test]
    fn never_below_the_floor() {
        let mut config = AdaptiveConfig::new(100.0);
        config.min = 30.0;
        let mut r = AdaptiveRate::new(config).unwrap();
        let rates: Vec<f64> = (0..6).filter_map(|i| r.on_throttled(i * S)).collect();
        assert_eq!(rates.len(), 4); // 70, 49, 34.3, 30 — then unchanged
        assert_eq!(r.rate(), 30.0);
    }

    #[test]
    fn reload_keeps_the_share() {
        let mut r = AdaptiveRate::new(AdaptiveConfig::new(100.0)).unwrap();
        r.on_throttled(0);
        assert_eq!(
            r.set_contracted(AdaptiveConfig::new(1_000.0)).unwrap(),
            Some(700.0)
        );
        assert_eq!(r.on_tick(S), Some(750.0));
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = AdaptiveConfig::new(100.0);
        c.min = 0.0;
        assert!(matches!(
            AdaptiveRate::new(c),
            Err(InvalidAdaptive::Bounds { .. })
        ));
        let mut c = AdaptiveConfig::new(100.0);
        c.decrease = 1.0;
        assert_eq!(AdaptiveRate::new(c).unwrap_err(), InvalidAdaptive::Factors);
        let mut c = AdaptiveConfig::new(100.0);
        c.quiet = 0;
        assert_eq!(AdaptiveRate::new(c).unwrap_err(), InvalidAdaptive::Quiet);
    }
}
