//! Failed logins slowed down per source address, on both fronts: the answer to a refused
//! bind or an unknown API key waits longer the more such failures came from the address in
//! the last ten minutes (100 ms, doubling, at most 10 s), so guessing gets slower and slower
//! while a client that mistyped once hardly notices. Bounded: at most [`MAX_ADDRESSES`]
//! addresses are remembered (the stale ones are forgotten first).

use std::net::IpAddr;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

/// How long failures are remembered.
const WINDOW: Duration = Duration::from_secs(600);
/// The delay after the first failure; it doubles with each further one.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Addresses remembered at most.
pub const MAX_ADDRESSES: usize = 100_000;

/// Failures by source address: how many, since when.
#[derive(Default)]
pub struct Penalties {
    failures: DashMap<IpAddr, (u32, Instant)>,
}

impl Penalties {
    /// Records a failed login from `ip` at `now`; how long its answer should wait.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.failures.len() >= MAX_ADDRESSES {
            self.failures
                .retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if self.failures.len() >= MAX_ADDRESSES {
                // Every address is fresh: make room all the same (the penalty is a slowdown,
                // not a promise).
                self.failures.clear();
            }
        }
        let mut entry = self.failures.entry(ip).or_insert((0, now));
        let (count, since) = entry.value_mut();
        if now.duration_since(*since) >= WINDOW {
            *count = 0;
            *since = now;
        }
        *count += 1;
        FIRST_DELAY
            .saturating_mul(1 << (*count - 1).min(16))
            .min(MAX_DELAY)
    }

    /// Addresses remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn each_failure_from_an_address_waits_twice_as_long() {
        let p = Penalties::default();
        let now = Instant::now();
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let delays: Vec<u128> = (0..9).map(|_| p.failed(a, now).as_millis()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(
            p.failed(b, now),
            FIRST_DELAY,
            "another address starts afresh"
        );
        assert_eq!(
            p.failed(a, now + WINDOW),
            FIRST_DELAY,
            "forgotten after the window"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let p = Penalties::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            p.failed(IpAddr::V4(Ipv4Addr::from(i)), now);
        }
        assert!(p.len() <= MAX_ADDRESSES);
    }
}
