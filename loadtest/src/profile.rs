//! Rate profiles: how many messages should have been sent by time t, and when message i is
//! due. Exact, so every message has its intended send time.

use serde::Deserialize;

use crate::scenario::Problem;

/// Messages per second over time: exactly one of `constant`, `ramp` or `steps`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateProfile {
    /// The same rate throughout.
    pub constant: Option<f64>,
    /// From one rate to another over the whole duration.
    pub ramp: Option<Ramp>,
    /// Rates from given times on.
    pub steps: Option<Vec<Step>>,
    /// The ramp's length, filled in from the scenario's duration.
    #[serde(skip)]
    pub ramp_s: f64,
}

/// A linear ramp.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Rate at the start.
    pub from: f64,
    /// Rate at the end.
    pub to: f64,
}

/// A rate from `at_s` on.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Seconds from the start.
    pub at_s: f64,
    /// Messages per second.
    pub rate: f64,
}

impl RateProfile {
    /// A constant rate.
    pub fn constant(rate: f64) -> Self {
        RateProfile {
            constant: Some(rate),
            ..RateProfile::default()
        }
    }

    /// Exactly one well-formed shape: a positive constant, a ramp, or steps rising from 0.
    pub(crate) fn check(&self) -> Result<(), Problem> {
        let ok = |r: f64| r >= 0.0 && r.is_finite();
        match (&self.constant, &self.ramp, &self.steps) {
            (Some(r), None, None) if ok(*r) && *r > 0.0 => Ok(()),
            (None, Some(r), None) if ok(r.from) && ok(r.to) && r.from + r.to > 0.0 => Ok(()),
            (None, None, Some(steps))
                if !steps.is_empty()
                    && steps[0].at_s == 0.0
                    && steps.iter().all(|s| ok(s.rate))
                    && steps.windows(2).all(|w| w[0].at_s < w[1].at_s) =>
            {
                Ok(())
            }
            _ => Err(Problem::RateShape),
        }
    }

    /// The rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        if let Some(r) = self.constant {
            return r;
        }
        if let Some(r) = self.ramp {
            let d = self.ramp_s.max(f64::MIN_POSITIVE);
            return r.from + (r.to - r.from) * (t / d).min(1.0);
        }
        let steps = self.steps.as_deref().unwrap_or(&[]);
        steps
            .iter()
            .rev()
            .find(|s| s.at_s <= t)
            .map_or(0.0, |s| s.rate)
    }

    /// Messages due by `t` seconds (the integral of the rate).
    pub fn count_until(&self, t: f64) -> f64 {
        if let Some(r) = self.constant {
            return r * t;
        }
        if let Some(r) = self.ramp {
            let d = self.ramp_s.max(f64::MIN_POSITIVE);
            let k = (r.to - r.from) / d;
            let within = t.min(d);
            return r.from * within + k * within * within / 2.0 + r.to * (t - d).max(0.0);
        }
        let steps = self.steps.as_deref().unwrap_or(&[]);
        let mut n = 0.0;
        for (i, s) in steps.iter().enumerate() {
            if s.at_s >= t {
                break;
            }
            let end = steps.get(i + 1).map_or(t, |next| next.at_s.min(t));
            n += s.rate * (end - s.at_s);
        }
        n
    }

    /// When message `i` (0-based) is due, in seconds: the time its count is reached.
    pub fn time_of(&self, i: u64) -> f64 {
        let i = i as f64;
        if let Some(r) = self.constant {
            return i / r;
        }
        if let Some(r) = self.ramp {
            let d = self.ramp_s.max(f64::MIN_POSITIVE);
            let k = (r.to - r.from) / d;
            let in_ramp = r.from * d + k * d * d / 2.0;
            if i >= in_ramp {
                return d + (i - in_ramp) / r.to.max(f64::MIN_POSITIVE);
            }
            if k.abs() < 1e-12 {
                return i / r.from;
            }
            // from·t + k·t²/2 = i
            return (-r.from + (r.from * r.from + 2.0 * k * i).max(0.0).sqrt()) / k;
        }
        let steps = self.steps.as_deref().unwrap_or(&[]);
        let mut n = 0.0;
        for (idx, s) in steps.iter().enumerate() {
            let span = steps.get(idx + 1).map(|next| next.at_s - s.at_s);
            let in_step = span.map_or(f64::INFINITY, |d| s.rate * d);
            if i < n + in_step {
                return s.at_s + (i - n) / s.rate;
            }
            n += in_step;
        }
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_inverse(p: &RateProfile, duration: f64) {
        let total = p.count_until(duration) as u64;
        assert!(total > 0);
        for i in (0..total).step_by((total / 97).max(1) as usize) {
            let t = p.time_of(i);
            assert!(
                (p.count_until(t) - i as f64).abs() < 1e-6 * (i as f64 + 1.0),
                "{i} at {t}"
            );
            assert!(t <= duration + 1e-9);
        }
    }

    #[test]
    fn constant_ramp_and_steps_invert_exactly() {
        let constant = RateProfile::constant(1000.0);
        assert_eq!(constant.count_until(2.5), 2500.0);
        check_inverse(&constant, 3.0);

        let mut ramp = RateProfile {
            ramp: Some(Ramp {
                from: 100.0,
                to: 1100.0,
            }),
            ..RateProfile::default()
        };
        ramp.ramp_s = 10.0;
        assert_eq!(ramp.count_until(10.0), 6000.0);
        assert_eq!(ramp.rate_at(5.0), 600.0);
        check_inverse(&ramp, 10.0);

        let steps = RateProfile {
            steps: Some(vec![
                Step {
                    at_s: 0.0,
                    rate: 100.0,
                },
                Step {
                    at_s: 2.0,
                    rate: 1000.0,
                },
                Step {
                    at_s: 3.0,
                    rate: 10.0,
                },
            ]),
            ..RateProfile::default()
        };
        assert_eq!(steps.count_until(4.0), 200.0 + 1000.0 + 10.0);
        assert_eq!(steps.rate_at(2.5), 1000.0);
        check_inverse(&steps, 4.0);
        assert!(steps.check().is_ok());
    }

    #[test]
    fn malformed_profiles_are_refused() {
        let none = RateProfile::default();
        assert!(none.check().is_err());
        let both = RateProfile {
            constant: Some(5.0),
            ramp: Some(Ramp { from: 1.0, to: 2.0 }),
            ..RateProfile::default()
        };
        assert!(both.check().is_err());
        let late_start = RateProfile {
            steps: Some(vec![Step {
                at_s: 1.0,
                rate: 5.0,
            }]),
            ..RateProfile::default()
        };
        assert!(late_start.check().is_err());
        assert!(RateProfile::constant(0.0).check().is_err());
    }
}
