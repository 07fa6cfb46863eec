//! The Generic Cell Rate Algorithm on one atomic word: the theoretical arrival time (TAT).
//!
//! A carrier's contract is a rate (segments per second, as an emission interval `T` in
//! nanoseconds) and a burst (segments). Admitting `n` segments at `now` moves the TAT to
//! `max(TAT, now) + n·T`, allowed while that stays within `burst·T` of `now`. Over any window
//! `[a, b]` the admitted segments `k` then satisfy `k·T ≤ (b − a) + burst·T`: at most
//! `rate·t + burst`.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

pub use smsroute_types::Nanos;

/// Nanoseconds in a second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A rate and a burst, as the bucket stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nanoseconds per segment (1..=u32::MAX, so rates from 0.24 to 10⁹ segments a second).
    interval: u32,
    /// Bucket depth in segments (≥ 1).
    burst: u32,
}

/// Why a rate or burst cannot be a quota.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidQuota {
    /// Not a finite rate in the supported range.
    #[error("rate {0} segments/s is out of range (0.25 to 1e9)")]
    Rate(f64),
    /// A burst of zero would admit nothing.
    #[error("burst must be at least 1 segment")]
    ZeroBurst,
}

impl Quota {
    /// `rate` segments per second with a bucket of `burst` segments.
    ///
    /// ```
    /// use smsroute_throttle::Quota;
    /// let q = Quota::per_second(500.0, 50).unwrap();
    /// assert_eq!((q.interval_nanos(), q.burst()), (2_000_000, 50));
    /// assert!(Quota::per_second(0.0, 50).is_err());
    /// ```
    pub fn per_second(rate: f64, burst: u32) -> Result<Self, InvalidQuota> {
        if burst == 0 {
            return Err(InvalidQuota::ZeroBurst);
        }
        let interval = NANOS_PER_SEC as f64 / rate;
        if !interval.is_finite() || !(1.0..=f64::from(u32::MAX)).contains(&interval.round()) {
            return Err(InvalidQuota::Rate(rate));
        }
        Ok(Quota {
            interval: interval.round() as u32,
            burst,
        })
    }

    /// Nanoseconds per segment.
    pub fn interval_nanos(self) -> u64 {
        u64::from(self.interval)
    }

    /// Bucket depth in segments.
    pub fn burst(self) -> u32 {
        self.burst
    }

    /// The rate the interval stands for, in segments per second.
    pub fn rate(self) -> f64 {
        NANOS_PER_SEC as f64 / f64::from(self.interval)
    }

    fn pack(self) -> u64 {
        (u64::from(self.interval) << 32) | u64::from(self.burst)
    }

    fn unpack(word: u64) -> Self {
        Quota {
            interval: (word >> 32) as u32,
            burst: word as u32,
        }
    }
}

/// What the bucket answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send now; the segments are charged.
    Admitted,
    /// Not before this time; nothing was charged. Wait until then (no spinning).
    NotBefore(Nanos),
    /// More segments than the burst: never admissible under this quota.
    ExceedsBurst,
}

/// One carrier's token bucket, shared by all its binds. Lock-free: admits are a load and a
/// compare-and-swap; the quota can change at any time without losing the bucket's state.
#[derive(Debug)]
pub struct Gcra {
    /// Theoretical arrival time of the next segment, in the caller's nanoseconds.
    tat: AtomicU64,
    /// The packed [`Quota`].
    quota: AtomicU64,
}

impl Gcra {
    /// A full bucket with `quota`.
    pub fn new(quota: Quota) -> Self {
        Gcra {
            tat: AtomicU64::new(0),
            quota: AtomicU64::new(quota.pack()),
        }
    }

    /// The current quota.
    pub fn quota(&self) -> Quota {
        Quota::unpack(self.quota.load(Ordering::Relaxed))
    }

    /// Changes rate and burst from now on; segments already charged stay charged.
    pub fn set_quota(&self, quota: Quota) {
        self.quota.store(quota.pack(), Ordering::Relaxed);
    }

    /// Segments that could be admitted at `now` (the bucket's fill, 0 ..= burst).
    ///
    /// ```
    /// use smsroute_throttle::{Gcra, Quota};
    /// let bucket = Gcra::new(Quota::per_second(10.0, 5).unwrap());
    /// assert_eq!(bucket.available(1_000_000_000), 5);
    /// bucket.try_admit(3, 1_000_000_000);
    /// assert_eq!(bucket.available(1_000_000_000), 2);
    /// ```
    pub fn available(&self, now: Nanos) -> u32 {
        let quota = self.quota();
        let interval = u64::from(quota.interval).max(1);
        let owed = self.tat.load(Ordering::Relaxed).saturating_sub(now);
        let depth = u64::from(quota.burst) * interval;
        (depth.saturating_sub(owed) / interval) as u32
    }

    /// What [`Gcra::try_admit`] would answer at `now`, without charging anything (for a
    /// caller that must pass several buckets and charges them only when all agree).
    ///
    /// ```
    /// use smsroute_throttle::{Admission, Gcra, Quota};
    /// let bucket = Gcra::new(Quota::per_second(10.0, 1).unwrap());
    /// let t0 = 1_000_000_000;
    /// assert_eq!(bucket.check(1, t0), Admission::Admitted);
    /// assert_eq!(bucket.check(1, t0), Admission::Admitted, "nothing was charged");
    /// bucket.try_admit(1, t0);
    /// assert_eq!(bucket.check(1, t0), Admission::NotBefore(t0 + 100_000_000));
    /// ```
    pub fn check(&self, cost: u32, now: Nanos) -> Admission {
        let quota = Quota::unpack(self.quota.load(Ordering::Relaxed));
        if cost > quota.burst {
            return Admission::ExceedsBurst;
        }
        let interval = u64::from(quota.interval);
        let depth = u64::from(quota.burst) * interval;
        let new_tat = self
            .tat
            .load(Ordering::Relaxed)
            .max(now)
            .saturating_add(u64::from(cost) * interval);
        if new_tat - now > depth {
            Admission::NotBefore(new_tat - depth)
        } else {
            Admission::Admitted
        }
    }

    /// Charges `cost` segments at `now` if the bucket allows it.
    ///
    /// ```
    /// use smsroute_throttle::{Admission, Gcra, Quota};
    /// let bucket = Gcra::new(Quota::per_second(10.0, 2).unwrap()); // one segment / 100 ms
    /// let t0 = 1_000_000_000;
    /// assert_eq!(bucket.try_admit(2, t0), Admission::Admitted);
    /// assert_eq!(bucket.try_admit(1, t0), Admission::NotBefore(t0 + 100_000_000));
    /// assert_eq!(bucket.try_admit(1, t0 + 100_000_000), Admission::Admitted);
    /// assert_eq!(bucket.try_admit(3, t0), Admission::ExceedsBurst);
    /// ```
    #[inline]
    pub fn try_admit(&self, cost: u32, now: Nanos) -> Admission {
        let quota = Quota::unpack(self.quota.load(Ordering::Relaxed));
        if cost > quota.burst {
            return Admission::ExceedsBurst;
        }
        let interval = u64::from(quota.interval);
        let depth = u64::from(quota.burst) * interval;
        let charge = u64::from(cost) * interval;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let new_tat = tat.max(now).saturating_add(charge);
            if new_tat - now > depth {
                // Admissible once `now` reaches new_tat − depth (then new_tat − now = depth).
                return Admission::NotBefore(new_tat - depth);
            }
            // Relaxed suffices: the TAT is the only state and publishes nothing else.
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Admission::Admitted,
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_steady_rate() {
        let g = Gcra::new(Quota::per_second(1_000.0, 5).unwrap()); // 1 ms per segment
        let t0 = 10 * NANOS_PER_SEC;
        for _ in 0..5 {
            assert_eq!(g.try_admit(1, t0), Admission::Admitted);
        }
        assert_eq!(g.try_admit(1, t0), Admission::NotBefore(t0 + 1_000_000));
        assert_eq!(
            g.try_admit(2, t0 + 1_000_000),
            Admission::NotBefore(t0 + 2_000_000)
        );
        assert_eq!(g.try_admit(2, t0 + 2_000_000), Admission::Admitted);
    }

    #[test]
    fn quota_changes_keep_what_was_charged() {
        let g = Gcra::new(Quota::per_second(1_000.0, 10).unwrap());
        let t0 = NANOS_PER_SEC;
        assert_eq!(g.try_admit(10, t0), Admission::Admitted); // TAT = t0 + 10 ms
        g.set_quota(Quota::per_second(100.0, 10).unwrap()); // 10 ms per segment, depth 100 ms
        assert_eq!(g.quota().burst(), 10);
        // Bucket state survives: 10 ms still owed, so 9 more segments fit (10 + 90 = 100 ms).
        assert_eq!(g.try_admit(9, t0), Admission::Admitted);
        assert_eq!(g.try_admit(1, t0), Admission::NotBefore(t0 + 10_000_000));
    }

    #[test]
    fn invalid_quotas_are_refused() {
        assert_eq!(Quota::per_second(100.0, 0), Err(InvalidQuota::ZeroBurst));
        assert!(matches!(
            Quota::per_second(f64::NAN, 1),
            Err(InvalidQuota::Rate(_))
        ));
        assert!(matches!(
            Quota::per_second(0.1, 1),
            Err(InvalidQuota::Rate(_))
        ));
        assert!(matches!(
            Quota::per_second(3e9, 1),
            Err(InvalidQuota::Rate(_))
        ));
        assert!((Quota::per_second(0.25, 1).unwrap().rate() - 0.25).abs() < 1e-9);
    }

    proptest! {
        /// In every window [a, b] between two admissions, admitted segments k satisfy
        /// k·T ≤ (b − a) + burst·T; and a "not before" answer is honest: admitting at that
        /// time succeeds.
        #[test]
        fn never_more_than_rate_times_t_plus_burst(
            rate in 1.0f64..5_000.0,
            burst in 1u32..20,
            steps in proptest::collection::vec((1u32..20, 0u64..5_000_000), 1..300),
        ) {
            let quota = Quota::per_second(rate, burst).unwrap();
            let g = Gcra::new(quota);
            let mut now = NANOS_PER_SEC;
            let mut admitted: Vec<(Nanos, u64)> = Vec::new();
            for (cost, dt) in steps {
                now += dt;
                match g.try_admit(cost, now) {
                    Admission::Admitted => admitted.push((now, u64::from(cost))),
                    Admission::NotBefore(t) => {
                        prop_assert!(t > now);
                        let probe = Gcra::new(quota);
                        probe.tat.store(g.tat.load(Ordering::Relaxed), Ordering::Relaxed);
                        // Tight: one nanosecond earlier is still too early, at t it fits.
                        prop_assert_eq!(probe.try_admit(cost, t - 1), Admission::NotBefore(t));
                        prop_assert_eq!(probe.try_admit(cost, t), Admission::Admitted);
                    }
                    Admission::ExceedsBurst => prop_assert!(cost > burst),
                }
            }
            let t = quota.interval_nanos();
            for i in 0..admitted.len() {
                let mut segments = 0u64;
                for j in i..admitted.len() {
                    segments += admitted[j].1;
                    let window = admitted[j].0 - admitted[i].0;
                    prop_assert!(segments * t <= window + u64::from(burst) * t,
                        "{} segments in {} ns at T = {} ns, burst {}", segments, window, t, burst);
                }
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Concurrent admits never hand out more than the burst at one instant, and every
    /// segment the burst allows is handed out.
    #[test]
    fn concurrent_admits_respect_the_burst() {
        loom::model(|| {
            let g = Arc::new(Gcra::new(Quota::per_second(1.0, 2).unwrap()));
            let now = 5 * NANOS_PER_SEC;
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let g = g.clone();
                    loom::thread::spawn(move || g.try_admit(1, now) == Admission::Admitted)
                })
                .collect();
            let admitted = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|a| *a)
                .count();
            assert_eq!(admitted, 2);
        });
    }

    /// A quota change racing with admits leaves the bucket consistent: every admit was judged
    /// under one of the two quotas.
    #[test]
    fn quota_change_during_admits() {
        loom::model(|| {
            let g = Arc::new(Gcra::new(Quota::per_second(1.0, 1).unwrap()));
            let now = 5 * NANOS_PER_SEC;
            let admitter = {
                let g = g.clone();
                loom::thread::spawn(move || {
                    (0..2)
                        .filter(|_| g.try_admit(1, now) == Admission::Admitted)
                        .count()
                })
            };
            g.set_quota(Quota::per_second(1.0, 2).unwrap());
            let admitted = admitter.join().unwrap();
            assert!((1..=2).contains(&admitted), "{admitted}");
        });
    }
}
