//! A node's tokens of a contract several nodes share: what its current lease granted (from
//! `smsroute-cluster`'s Redis GCRA), usable until the lease's deadline. Taking is one
//! compare-and-swap; nothing here waits on the network.

use std::time::Instant;

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

/// The tokens a node holds for one shared bucket.
#[derive(Debug)]
pub struct LeasePool {
    /// Where the deadlines count from.
    epoch: Instant,
    /// Tokens left in the current lease.
    tokens: AtomicU64,
    /// The lease's deadline, nanoseconds after `epoch`; 0: no lease.
    deadline: AtomicU64,
    /// Tokens taken since the leaser last looked (demand).
    taken: AtomicU64,
    /// Tokens asked for and refused since the leaser last looked (unmet demand).
    refused: AtomicU64,
    /// The rate this node can expect from the shared contract, tokens a second (`f64` bits;
    /// 0: not known), as the leaser last judged it.
    rate: AtomicU64,
}

impl LeasePool {
    /// An empty pool: everything is refused until the first lease.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            tokens: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            rate: AtomicU64::new(0),
        }
    }

    /// Takes `n` tokens at `now`: `true` if the lease is still valid and holds them.
    #[inline]
    pub fn try_take(&self, n: u32, now: Instant) -> bool {
        let n = u64::from(n);
        if self.nanos(now) >= self.deadline.load(Ordering::Acquire) {
            self.refused.fetch_add(n, Ordering::Relaxed);
            return false;
        }
        let taken = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(n)
            });
        match taken {
            Ok(_) => self.taken.fetch_add(n, Ordering::Relaxed),
            Err(_) => self.refused.fetch_add(n, Ordering::Relaxed),
        };
        taken.is_ok()
    }

    /// Whether [`try_take`](Self::try_take) of `n` at `now` would succeed (nothing taken;
    /// a `false` counts as unmet demand, as a refused take does).
    #[inline]
    pub fn can_take(&self, n: u32, now: Instant) -> bool {
        let can = self.nanos(now) < self.deadline.load(Ordering::Acquire)
            && self.tokens.load(Ordering::Acquire) >= u64::from(n);
        if !can {
            self.refused.fetch_add(u64::from(n), Ordering::Relaxed);
        }
        can
    }

    /// Tokens left in the current lease (for metrics and tests).
    pub fn left(&self) -> u64 {
        self.tokens.load(Ordering::Acquire)
    }

    /// Ends the current lease: nothing can be taken until [`refill`](Self::refill); returns
    /// the tokens it left unused, and the demand since the last look: (unused, taken,
    /// refused).
    pub fn close(&self) -> (u64, u64, u64) {
        self.deadline.store(0, Ordering::Release);
        let unused = self.tokens.swap(0, Ordering::AcqRel);
        let taken = self.taken.swap(0, Ordering::Relaxed);
        let refused = self.refused.swap(0, Ordering::Relaxed);
        (unused, taken, refused)
    }

    /// Starts a lease of `tokens` valid until `deadline`.
    pub fn refill(&self, tokens: u64, deadline: Instant) {
        self.tokens.store(tokens, Ordering::Release);
        self.deadline
            .store(self.nanos(deadline).max(1), Ordering::Release);
    }

    /// The rate this node can expect from the contract, tokens a second: its share while
    /// the nodes together want more than the contract, else the contract's. 0: not known yet.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// Sets what [`rate`](Self::rate) says (the leaser, at each renewal).
    pub fn set_rate(&self, per_second: f64) {
        self.rate
            .store(per_second.max(0.0).to_bits(), Ordering::Relaxed);
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

impl Default for LeasePool {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn takes_within_the_lease_and_refuses_after_it() {
        let pool = LeasePool::new();
        let at = |ms| pool.epoch + Duration::from_millis(ms);
        assert!(!pool.try_take(1, at(0)), "no lease yet");
        pool.refill(5, at(50));
        assert!(pool.can_take(5, at(10)) && !pool.can_take(6, at(10)));
        assert!(pool.try_take(3, at(10)));
        assert!(!pool.try_take(3, at(20)), "only 2 left");
        assert!(pool.try_take(2, at(30)));
        pool.refill(5, at(50));
        assert!(!pool.try_take(1, at(50)), "deadline passed");
        assert_eq!(
            pool.close(),
            (5, 5, 11),
            "refused: 3 and 1 taking, 6 checking, 1 late"
        );
        assert!(!pool.try_take(1, at(10)), "closed");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn two_takers_of_the_last_token_one_wins() {
        loom::model(|| {
            let pool = Arc::new(LeasePool::new());
            let now = pool.epoch;
            pool.refill(1, now + std::time::Duration::from_secs(1));
            let takers: Vec<_> = (0..2)
                .map(|_| {
                    let pool = pool.clone();
                    loom::thread::spawn(move || pool.try_take(1, now))
                })
                .collect();
            let won = takers
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&w| w)
                .count();
            assert_eq!(won, 1);
        });
    }

    #[test]
    fn a_token_is_either_taken_or_given_back_never_both() {
        loom::model(|| {
            let pool = Arc::new(LeasePool::new());
            let now = pool.epoch;
            pool.refill(2, now + std::time::Duration::from_secs(1));
            let taker = {
                let pool = pool.clone();
                loom::thread::spawn(move || pool.try_take(1, now))
            };
            let (unused, _, _) = pool.close();
            let took = taker.join().unwrap();
            assert_eq!(unused + u64::from(took), 2);
            assert!(!pool.try_take(1, now), "closed until refilled");
        });
    }
}
