//! One carrier's health as a sans-IO state machine: outcomes and time in, penalty and circuit
//! state out. Single writer (the carrier's dispatcher owns it); readers see what it publishes
//! on a [`crate::HealthBoard`].
//!
//! Length: past 500 lines with its tests (a third of the file).

use smsroute_routing::{CarrierHealth, HealthState};
use smsroute_types::SplitMix64;

use crate::{HealthConfig, InvalidHealthConfig, Nanos};

/// What a submit to the carrier came to, as health sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (submit response OK) after `latency`.
    Success {
        /// Submit to response.
        latency: Nanos,
    },
    /// The carrier failed: a system or submit error, a timeout, a lost connection.
    Failure,
    /// The carrier asked us to slow down: a load signal (penalty), never a failure.
    Throttled,
    /// Not the carrier's doing (an invalid number, say): ignored.
    Neutral,
}

/// The circuit: closed, ejected until a time, or half-open with a few probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    /// Normal traffic.
    Closed,
    /// No traffic until `until` (unless every candidate is ejected).
    Ejected {
        /// When probing starts.
        until: Nanos,
    },
    /// Up to `probes` messages in flight test the carrier; enough successes close it.
    Probing {
        /// Probes sent and not yet answered.
        in_flight: u32,
        /// Probes answered with success.
        successes: u32,
    },
}

const WINDOW_SLOTS: usize = 10;

/// The EWMAs fade in steps of at least this long.
const FADE_STEP: Nanos = 1_000_000;

/// Failure counts over a sliding window of ten slots.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    epoch: u64,
    total: u32,
    failures: u32,
}

/// One carrier's health.
#[derive(Clone, Debug)]
pub struct CarrierTracker {
    config: HealthConfig,
    /// EWMA of success (1) / failure (0).
    success: f64,
    /// Peak-EWMA of submit latency, nanoseconds.
    latency: f64,
    /// EWMA of throttled (1) / answered (0).
    throttled: f64,
    consecutive_failures: u32,
    window: [Slot; WINDOW_SLOTS],
    circuit: Circuit,
    /// Ejections not yet forgiven: the next ejection lasts `(ejections + 1) × base`.
    ejections: u32,
    /// Since when the carrier has been closed without an ejection (for the decay).
    healthy_since: Nanos,
    /// Up to when the EWMAs have faded.
    faded_at: Nanos,
    rng: SplitMix64,
    /// The carrier has no usable connection (no bound session).
    link_down: bool,
}

impl CarrierTracker {
    /// A healthy carrier; `seed` fixes the ejection jitter (deterministic simulations).
    pub fn new(config: HealthConfig, seed: u64) -> Result<Self, InvalidHealthConfig> {
        config.validate()?;
        Ok(CarrierTracker {
            config,
            success: 1.0,
            latency: 0.0,
            throttled: 0.0,
            consecutive_failures: 0,
            window: [Slot::default(); WINDOW_SLOTS],
            circuit: Circuit::Closed,
            ejections: 0,
            healthy_since: 0,
            faded_at: 0,
            rng: SplitMix64::new(seed),
            link_down: false,
        })
    }

    /// The carrier's connection came up (`true`) or went down. While down it is published
    /// ejected, whatever its circuit (routing passes it over while another candidate is up,
    /// and uses it only in panic mode) and takes no probes; its circuit and EWMAs carry on
    /// when it comes back.
    pub fn set_link(&mut self, up: bool) {
        self.link_down = !up;
    }

    /// Whether the connection is up (as last set).
    pub fn link_up(&self) -> bool {
        !self.link_down
    }

    /// The circuit state.
    pub fn circuit(&self) -> Circuit {
        self.circuit
    }

    /// Ejections not yet forgiven by healthy time.
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// Folds one outcome in.
    pub fn record(&mut self, outcome: Outcome, now: Nanos) {
        self.poll(now);
        let c = self.config;
        if matches!(outcome, Outcome::Neutral | Outcome::Throttled)
            && let Circuit::Probing { in_flight, .. } = &mut self.circuit
        {
            // An answer that proves nothing still ends its probe.
            *in_flight = in_flight.saturating_sub(1);
        }
        match outcome {
            Outcome::Neutral => {}
            Outcome::Throttled => self.throttled += c.throttle_alpha * (1.0 - self.throttled),
            Outcome::Success { latency } => {
                self.throttled -= c.throttle_alpha * self.throttled;
                self.success += c.success_alpha * (1.0 - self.success);
                let sample = latency as f64;
                // Peak-EWMA: a slower sample counts at once, a faster one only gradually.
                self.latency = if sample > self.latency {
                    sample
                } else {
                    self.latency + c.latency_alpha * (sample - self.latency)
                };
                self.consecutive_failures = 0;
                self.count(now, false);
                if let Circuit::Probing {
                    in_flight,
                    successes,
                } = self.circuit
                {
                    let successes = successes + 1;
                    self.circuit = if successes >= c.probes {
                        // The probes proved it: the failures of the outage no longer count,
                        // or their penalty would keep it out of rotation for good.
                        self.healthy_since = now;
                        self.window = [Slot::default(); WINDOW_SLOTS];
                        self.success = 1.0;
                        self.consecutive_failures = 0;
                        Circuit::Closed
                    } else {
                        Circuit::Probing {
                            in_flight: in_flight.saturating_sub(1),
                            successes,
                        }
                    };
                }
            }
            Outcome::Failure => {
                self.throttled -= c.throttle_alpha * self.throttled;
                self.success -= c.success_alpha * self.success;
                self.consecutive_failures += 1;
                self.count(now, true);
                match self.circuit {
                    Circuit::Probing { .. } => self.eject(now),
                    Circuit::Closed if self.should_eject(now) => self.eject(now),
                    _ => {}
                }
            }
        }
    }

    /// Lets time pass: an ejection that is over turns into probing; healthy time forgives
    /// past ejections one `decay_interval` at a time.
    pub fn poll(&mut self, now: Nanos) {
        self.fade(now);
        match self.circuit {
            Circuit::Ejected { until } if now >= until => {
                self.circuit = Circuit::Probing {
                    in_flight: 0,
                    successes: 0,
                };
            }
            Circuit::Closed if self.ejections > 0 => {
                let healthy_for = now.saturating_sub(self.healthy_since);
                let forgiven = (healthy_for / self.config.decay_interval)
                    .min(u64::from(self.ejections)) as u32;
                if forgiven > 0 {
                    self.ejections -= forgiven;
                    self.healthy_since += u64::from(forgiven) * self.config.decay_interval;
                }
            }
            _ => {}
        }
    }

    /// Lets the EWMAs fade toward healthy for the time since the last fade. At most once a
    /// millisecond: at high rates the elapsed time accumulates instead of costing an `exp`
    /// per outcome.
    fn fade(&mut self, now: Nanos) {
        let elapsed = now.saturating_sub(self.faded_at);
        if elapsed < FADE_STEP {
            return;
        }
        self.faded_at = now;
        let keep = (-(elapsed as f64) * std::f64::consts::LN_2
            / self.config.penalty_half_life as f64)
            .exp();
        self.success = 1.0 - (1.0 - self.success) * keep;
        self.throttled *= keep;
        self.latency *= keep;
    }

    /// May a message go to this carrier now, if routing chose it? Closed: yes. Ejected or
    /// down: no. Probing: yes while fewer than `probes` probes are in flight (and the probe
    /// is counted, as [`CarrierTracker::on_sent`] does).
    pub fn try_send(&mut self, now: Nanos) -> bool {
        self.poll(now);
        if self.link_down || matches!(self.circuit, Circuit::Ejected { .. }) {
            return false;
        }
        let go = self.may_send(now);
        if go {
            self.on_sent();
        }
        go
    }

    /// The probe gate of a submit routing already chose: no while the carrier is half-open
    /// with every probe it allows in flight or proven, else yes (an ejected or down carrier
    /// gets what routing still sends it in panic mode; that is routing's call, not this
    /// gate's). The engine holds the carrier's lane while it says no.
    pub fn may_send(&mut self, now: Nanos) -> bool {
        self.poll(now);
        match self.circuit {
            Circuit::Probing {
                in_flight,
                successes,
            } => in_flight + successes < self.config.probes,
            _ => true,
        }
    }

    /// A submit went to the carrier: while half-open it is a probe, in flight until its
    /// outcome is recorded.
    pub fn on_sent(&mut self) {
        if let Circuit::Probing { in_flight, .. } = &mut self.circuit {
            *in_flight += 1;
        }
    }

    /// Probes that may still start now (0 unless half-open): what routing may steer here.
    pub fn probe_room(&self) -> u32 {
        match self.circuit {
            Circuit::Probing {
                in_flight,
                successes,
            } => self.config.probes.saturating_sub(in_flight + successes),
            _ => 0,
        }
    }

    /// What routing reads: the circuit state and the cost penalty (≥ 1).
    pub fn snapshot(&self) -> CarrierHealth {
        let c = &self.config;
        let failure = 1.0 / self.success.max(0.01);
        let latency = (self.latency / c.latency_target as f64).max(1.0);
        let throttle = 1.0 + 4.0 * self.throttled;
        let penalty = (failure * latency * throttle).clamp(1.0, c.max_penalty);
        // Tiny penalties (one failure among many successes) still rank, but do not mark the
        // carrier degraded.
        if self.link_down {
            return CarrierHealth {
                state: HealthState::Ejected,
                penalty: c.max_penalty as f32,
            };
        }
        let state = match self.circuit {
            Circuit::Ejected { .. } => HealthState::Ejected,
            Circuit::Probing { .. } => HealthState::Probing,
            Circuit::Closed if penalty >= 1.1 => HealthState::Degraded,
            Circuit::Closed => HealthState::Healthy,
        };
        // Below 1.0001 the EWMAs are noise: report exactly 1 so ranking keeps its fast path.
        let penalty = if penalty < 1.0001 {
            1.0
        } else {
            penalty as f32
        };
        CarrierHealth { state, penalty }
    }

    fn slot_len(&self) -> Nanos {
        (self.config.failure_window / WINDOW_SLOTS as u64).max(1)
    }

    fn count(&mut self, now: Nanos, failure: bool) {
        let epoch = now / self.slot_len();
        let slot = &mut self.window[(epoch % WINDOW_SLOTS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                total: 0,
                failures: 0,
            };
        }
        slot.total += 1;
        slot.failures += u32::from(failure);
    }

    fn should_eject(&self, now: Nanos) -> bool {
        if self.consecutive_failures >= self.config.consecutive_failures {
            return true;
        }
        let epoch = now / self.slot_len();
        let recent = self
            .window
            .iter()
            .filter(|s| epoch.saturating_sub(s.epoch) < WINDOW_SLOTS as u64);
        let (total, failures) =
            recent.fold((0u32, 0u32), |(t, f), s| (t + s.total, f + s.failures));
        total >= self.config.min_volume
            && f64::from(failures) >= self.config.failure_share * f64::from(total)
    }

    fn eject(&mut self, now: Nanos) {
        let c = self.config;
        self.ejections += 1;
        let base = c
            .base_ejection
            .saturating_mul(u64::from(self.ejections))
            .min(c.max_ejection);
        let factor = 1.0 + c.jitter * (2.0 * self.rng.next_f64() - 1.0);
        self.circuit = Circuit::Ejected {
            until: now + (base as f64 * factor) as Nanos,
        };
        self.consecutive_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Nanos = 1_000_000;
    const S: Nanos = 1_000 * MS;

    fn tracker() -> CarrierTracker {
        CarrierTracker::new(HealthConfig::default(), 42).unwrap()
    }

    #[test]
    fn a_carrier_with_its_link_down_is_ejected_and_takes_no_probe_until_it_is_back() {
        let mut t = CarrierTracker::new(HealthConfig::default(), 1).unwrap();
        assert_eq!(t.snapshot().state, HealthState::Healthy);
        t.set_link(false);
        assert!(!t.link_up());
        assert_eq!(t.snapshot().state, HealthState::Ejected);
        assert!(t.snapshot().penalty > 1.0);
        assert!(!t.try_send(0));
        t.set_link(true);
        assert_eq!(t.snapshot(), CarrierHealth::HEALTHY);
        assert!(t.try_send(0));
    }

    #[test]
    fn consecutive_failures_eject_then_probes_restore() {
        let mut t = tracker();
        for i in 0..4 {
            t.record(Outcome::Failure, i * MS);
            assert_eq!(t.circuit(), Circuit::Closed, "after {} failures", i + 1);
        }
        t.record(Outcome::Failure, 4 * MS);
        let Circuit::Ejected { until } = t.circuit() else {
            panic!("not ejected: {:?}", t.circuit())
        };
        // 10 s ± 10 % jitter.
        assert!((9 * S..=11 * S).contains(&(until - 4 * MS)), "{until}");
        assert_eq!(t.snapshot().state, HealthState::Ejected);
        assert!(!t.try_send(until - 1));

        // Half-open: three probes at once, no fourth until they are answered.
        assert!(t.try_send(until) && t.try_send(until) && t.try_send(until));
        assert!(!t.try_send(until));
        assert_eq!(t.snapshot().state, HealthState::Probing);
        for _ in 0..3 {
            t.record(Outcome::Success { latency: 50 * MS }, until + MS);
        }
        assert_eq!(t.circuit(), Circuit::Closed);
        assert!(t.try_send(until + 2 * MS));
        // The outage's failures are forgiven: back to full health, ranked by price again.
        assert_eq!(t.snapshot(), CarrierHealth::HEALTHY);
    }

    #[test]
    fn a_penalty_fades_while_no_outcome_comes() {
        let mut t = tracker();
        for i in 0..3 {
            t.record(Outcome::Failure, i * MS);
        }
        let hurt = t.snapshot().penalty;
        assert!(hurt > 1.1, "{hurt}");
        // One half-life later, half the distance to healthy is gone.
        t.poll(5 * S + 2 * MS);
        let faded = t.snapshot().penalty;
        let success_then = 1.0 / f64::from(hurt);
        let success_now = 1.0 / f64::from(faded);
        let expect = 1.0 - (1.0 - success_then) / 2.0;
        assert!(
            (success_now - expect).abs() < 1e-3,
            "{success_now} vs {expect}"
        );
        t.poll(60 * S);
        assert_eq!(t.snapshot(), CarrierHealth::HEALTHY);
        // Fading forgives the penalty, not the consecutive failures or the circuit.
        t.record(Outcome::Failure, 60 * S);
        t.record(Outcome::Failure, 60 * S);
        assert!(matches!(t.circuit(), Circuit::Ejected { .. }));
    }

    #[test]
    fn a_failed_probe_ejects_for_longer_and_time_forgives() {
        let mut t = tracker();
        for i in 0..5 {
            t.record(Outcome::Failure, i * MS);
        }
        let Circuit::Ejected { until: first } = t.circuit() else {
            panic!()
        };
        assert!(t.try_send(first));
        t.record(Outcome::Failure, first + MS);
        let Circuit::Ejected { until: second } = t.circuit() else {
            panic!()
        };
        // Second ejection: 2 × 10 s ± 10 %.
        assert!(
            (18 * S..=22 * S).contains(&(second - first - MS)),
            "{}",
            second - first
        );
        assert_eq!(t.ejections(), 2);

        for _ in 0..3 {
            assert!(t.try_send(second));
            t.record(Outcome::Success { latency: MS }, second);
        }
        assert_eq!(t.circuit(), Circuit::Closed);
        t.poll(second + 60 * S);
        assert_eq!(t.ejections(), 1);
        t.poll(second + 120 * S);
        assert_eq!(t.ejections(), 0);
    }

    #[test]
    fn failure_share_over_the_window_ejects_with_enough_volume() {
        let mut t = tracker();
        // Alternating: never two failures in a row, half of all outcomes fail.
        for i in 0..19u64 {
            let outcome = if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success { latency: MS }
            };
            t.record(outcome, i * 10 * MS);
        }
        assert_eq!(
            t.circuit(),
            Circuit::Closed,
            "19 outcomes: below min_volume"
        );
        t.record(Outcome::Failure, 190 * MS);
        assert!(
            matches!(t.circuit(), Circuit::Ejected { .. }),
            "10 of 20 failed"
        );

        // The same share spread thinner than the window's minimum volume does not eject.
        let mut t = tracker();
        for i in 0..40u64 {
            let outcome = if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success { latency: MS }
            };
            t.record(outcome, i * S);
        }
        assert_eq!(t.circuit(), Circuit::Closed);
    }

    #[test]
    fn throttling_is_a_penalty_not_a_failure() {
        let mut t = tracker();
        for i in 0..200 {
            t.record(Outcome::Throttled, i * MS);
        }
        assert_eq!(t.circuit(), Circuit::Closed);
        let h = t.snapshot();
        assert_eq!(h.state, HealthState::Degraded);
        assert!(h.penalty > 4.0 && h.penalty <= 5.0, "{}", h.penalty);
        for i in 0..200 {
            t.record(Outcome::Success { latency: MS }, S + i * MS);
        }
        assert!(t.snapshot().penalty < 1.01, "{}", t.snapshot().penalty);
    }

    #[test]
    fn slow_answers_count_at_once_and_fade_gradually() {
        let mut t = tracker();
        t.record(Outcome::Success { latency: 100 * MS }, 0);
        assert_eq!(t.snapshot(), CarrierHealth::HEALTHY);
        t.record(Outcome::Success { latency: 2 * S }, MS);
        assert!(
            (t.snapshot().penalty - 4.0).abs() < 0.01,
            "{}",
            t.snapshot().penalty
        );
        t.record(Outcome::Success { latency: 100 * MS }, 2 * MS);
        let after_one = t.snapshot().penalty;
        assert!(after_one > 3.0 && after_one < 4.0, "{after_one}");
    }

    #[test]
    fn neutral_outcomes_change_nothing() {
        let mut t = tracker();
        for i in 0..100 {
            t.record(Outcome::Neutral, i);
        }
        assert_eq!(
            (t.circuit(), t.snapshot()),
            (Circuit::Closed, CarrierHealth::HEALTHY)
        );
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = [
            HealthConfig {
                success_alpha: 0.0,
                ..HealthConfig::default()
            },
            HealthConfig {
                consecutive_failures: 0,
                ..HealthConfig::default()
            },
            HealthConfig {
                max_ejection: 1,
                ..HealthConfig::default()
            },
            HealthConfig {
                jitter: 1.0,
                ..HealthConfig::default()
            },
            HealthConfig {
                probes: 0,
                ..HealthConfig::default()
            },
            HealthConfig {
                max_penalty: 0.5,
                ..HealthConfig::default()
            },
        ];
        for config in bad {
            assert!(CarrierTracker::new(config, 1).is_err(), "{config:?}");
        }
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            (0u64..3_000_000_000).prop_map(|latency| Outcome::Success { latency }),
            Just(Outcome::Failure),
            Just(Outcome::Throttled),
            Just(Outcome::Neutral),
        ]
    }

    proptest! {
        /// Whatever happens, the penalty stays in [1, max], the state agrees with the circuit,
        /// and the same seed replays the same history.
        #[test]
        fn penalty_bounded_and_replayable(events in proptest::collection::vec((outcome(), 0u64..2_000_000_000), 1..200)) {
            let mut a = tracker();
            let mut b = tracker();
            let mut now = 0;
            for (o, dt) in events {
                now += dt;
                a.try_send(now);
                b.try_send(now);
                a.record(o, now);
                b.record(o, now);
                let h = a.snapshot();
                prop_assert!(h.penalty >= 1.0 && f64::from(h.penalty) <= HealthConfig::default().max_penalty);
                let expected = match a.circuit() {
                    Circuit::Ejected { .. } => Some(HealthState::Ejected),
                    Circuit::Probing { .. } => Some(HealthState::Probing),
                    Circuit::Closed => None,
                };
                if let Some(state) = expected {
                    prop_assert_eq!(h.state, state);
                }
                prop_assert_eq!(h, b.snapshot());
                prop_assert_eq!(a.circuit(), b.circuit());
            }
        }
    }
}
