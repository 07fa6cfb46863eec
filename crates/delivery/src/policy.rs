//! Retry policy: attempts, full-jitter exponential backoff, deadlines, and the per-carrier
//! retry budget that keeps failures from snowballing into a retry storm.

use smsroute_config::RetryConfig;
use smsroute_types::SplitMix64;

use crate::Nanos;

const MS: Nanos = 1_000_000;
const SECOND: Nanos = 1_000 * MS;

/// The retry policy of every message (from `[retry]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Submits per message, the first and failovers included (≥ 1).
    pub max_attempts: u32,
    /// Backoff base.
    pub backoff_base: Nanos,
    /// Backoff cap (≥ base).
    pub backoff_cap: Nanos,
    /// No submit response by then: outcome unknown.
    pub submit_timeout: Nanos,
    /// No receipt by then: terminal `sent`.
    pub receipt_timeout: Nanos,
    /// Default validity (the message may set its own).
    pub validity: Nanos,
    /// Fail over when a receipt says undeliverable or rejected.
    pub reroute_on_undeliverable: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from(&RetryConfig::default())
    }
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(c: &RetryConfig) -> Self {
        RetryPolicy {
            max_attempts: c.max_attempts,
            backoff_base: c.backoff_base_ms * MS,
            backoff_cap: c.backoff_cap_ms * MS,
            submit_timeout: c.submit_timeout_ms * MS,
            receipt_timeout: c.receipt_timeout_s * SECOND,
            validity: c.validity_s * SECOND,
            reroute_on_undeliverable: c.reroute_on_undeliverable,
        }
    }
}

impl RetryPolicy {
    /// Full-jitter backoff before retry number `retry` (1 for the first retry): uniform in
    /// `[0, min(cap, base × 2^(retry−1))]`.
    ///
    /// ```
    /// use smsroute_delivery::RetryPolicy;
    /// use smsroute_types::SplitMix64;
    /// let p = RetryPolicy::default(); // base 50 ms, cap 5 s
    /// let mut rng = SplitMix64::new(1);
    /// assert!(p.backoff(1, &mut rng) <= 50_000_000);
    /// assert!(p.backoff(30, &mut rng) <= 5_000_000_000);
    /// ```
    pub fn backoff(&self, retry: u32, rng: &mut SplitMix64) -> Nanos {
        let exp = retry.saturating_sub(1).min(63);
        let ceiling = self
            .backoff_base
            .saturating_mul(1u64 << exp)
            .min(self.backoff_cap);
        rng.below(ceiling.saturating_add(1))
    }
}

/// Limits retries charged to one carrier to a share of its recent submits, plus a floor:
/// every first submit deposits `ratio`, time adds `floor_per_second`, each retry withdraws one.
/// The balance is capped (ten seconds of floor plus twenty retries), so a long quiet spell
/// cannot bank a storm. Kept in thousandths of a retry, so shares add up exactly. Sans-IO; the
/// engine keeps one per carrier.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    ratio_milli: u64,
    floor_milli_per_second: u64,
    cap_milli: u64,
    balance_milli: u64,
    last: Nanos,
}

const ONE: u64 = 1_000;

impl RetryBudget {
    /// Retries up to `ratio` of submits (default 0.2) plus `floor_per_second` (default 10).
    pub fn new(ratio: f64, floor_per_second: f64) -> Self {
        let floor = (floor_per_second.max(0.0) * ONE as f64) as u64;
        let cap = (floor * 10).max(ONE) + 20 * ONE;
        RetryBudget {
            ratio_milli: (ratio.clamp(0.0, 1.0) * ONE as f64).round() as u64,
            floor_milli_per_second: floor,
            cap_milli: cap,
            balance_milli: (floor * 10).max(ONE),
            last: 0,
        }
    }

    fn refill(&mut self, now: Nanos) {
        if now <= self.last || self.floor_milli_per_second == 0 {
            self.last = self.last.max(now);
            return;
        }
        let elapsed = u128::from(now - self.last);
        let earned =
            (elapsed * u128::from(self.floor_milli_per_second) / u128::from(SECOND)) as u64;
        // Advance only by the time that was paid out, so small steps are not lost.
        let paid_for = (u128::from(earned) * u128::from(SECOND)
            / u128::from(self.floor_milli_per_second)) as u64;
        self.last += paid_for;
        self.balance_milli = (self.balance_milli + earned).min(self.cap_milli);
    }

    /// A first submit went to the carrier.
    pub fn deposit(&mut self, now: Nanos) {
        self.refill(now);
        self.balance_milli = (self.balance_milli + self.ratio_milli).min(self.cap_milli);
    }

    /// May a retry charged to this carrier go now? Takes one if so.
    pub fn try_withdraw(&mut self, now: Nanos) -> bool {
        self.refill(now);
        if self.balance_milli >= ONE {
            self.balance_milli -= ONE;
            true
        } else {
            false
        }
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(0.2, 10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn budget_limits_a_storm_and_refills() {
        let mut b = RetryBudget::new(0.2, 1.0); // starts with 10 s of floor
        let granted = (0..100).filter(|_| b.try_withdraw(0)).count();
        assert_eq!(granted, 10, "the banked floor only");
        // 50 submits earn 10 retries.
        for _ in 0..50 {
            b.deposit(0);
        }
        assert_eq!((0..100).filter(|_| b.try_withdraw(0)).count(), 10);
        // Time earns the floor: 3 s → 3 retries.
        assert_eq!((0..100).filter(|_| b.try_withdraw(3 * SECOND)).count(), 3);
    }

    proptest! {
        #[test]
        fn backoff_within_bounds(retry in 1u32..100, seed: u64, base in 1u64..1_000_000_000, extra in 0u64..10_000_000_000) {
            let p = RetryPolicy { backoff_base: base, backoff_cap: base + extra, ..RetryPolicy::default() };
            let d = p.backoff(retry, &mut SplitMix64::new(seed));
            let ceiling = base.saturating_mul(1u64 << (retry - 1).min(63)).min(base + extra);
            prop_assert!(d <= ceiling);
        }
    }
}
