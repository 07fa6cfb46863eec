//! Lock-free publication of every carrier's health for the routers to read.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use smsroute_routing::{CarrierHealth, CarrierIndex, HealthState, HealthView};

/// One word per carrier: the penalty's `f32` bits and the state, so a reader always sees a
/// state and a penalty that were published together.
#[derive(Debug)]
pub struct HealthBoard {
    cells: Vec<AtomicU64>,
    max_ejected_share: f32,
}

fn pack(health: CarrierHealth) -> u64 {
    let state = match health.state {
        HealthState::Healthy => 0u64,
        HealthState::Degraded => 1,
        HealthState::Ejected => 2,
        HealthState::Probing => 3,
    };
    (state << 32) | u64::from(health.penalty.to_bits())
}

fn unpack(word: u64) -> CarrierHealth {
    let state = match word >> 32 {
        1 => HealthState::Degraded,
        2 => HealthState::Ejected,
        3 => HealthState::Probing,
        _ => HealthState::Healthy,
    };
    CarrierHealth {
        state,
        penalty: f32::from_bits(word as u32),
    }
}

impl HealthBoard {
    /// `carriers` healthy carriers; at most `max_ejected_share` of a prefix's carriers are
    /// skipped as ejected at once.
    pub fn new(carriers: usize, max_ejected_share: f32) -> Self {
        HealthBoard {
            cells: (0..carriers)
                .map(|_| AtomicU64::new(pack(CarrierHealth::HEALTHY)))
                .collect(),
            max_ejected_share,
        }
    }

    /// Publishes a carrier's health (from its tracker's snapshot).
    ///
    /// # Panics
    /// If `carrier` is outside the board.
    #[inline]
    pub fn publish(&self, carrier: CarrierIndex, health: CarrierHealth) {
        self.cells[carrier.get()].store(pack(health), Ordering::Release);
    }

    /// Carriers on the board.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// No carriers.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

impl HealthView for HealthBoard {
    /// One atomic load; carriers past the end count as healthy.
    #[inline]
    fn health(&self, carrier: CarrierIndex) -> CarrierHealth {
        self.cells
            .get(carrier.get())
            .map_or(CarrierHealth::HEALTHY, |c| {
                unpack(c.load(Ordering::Acquire))
            })
    }

    fn max_ejected_share(&self) -> f32 {
        self.max_ejected_share
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn publishes_and_reads_back() {
        let board = HealthBoard::new(3, 0.5);
        let h = CarrierHealth {
            state: HealthState::Degraded,
            penalty: 2.5,
        };
        board.publish(CarrierIndex(1), h);
        assert_eq!(board.health(CarrierIndex(1)), h);
        assert_eq!(board.health(CarrierIndex(0)), CarrierHealth::HEALTHY);
        assert_eq!(board.health(CarrierIndex(9)), CarrierHealth::HEALTHY);
        for state in [
            HealthState::Healthy,
            HealthState::Degraded,
            HealthState::Ejected,
            HealthState::Probing,
        ] {
            let h = CarrierHealth {
                state,
                penalty: 7.25,
            };
            assert_eq!(unpack(pack(h)), h);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// A reader racing two publications sees the initial value or one of them whole, never
    /// one's state with the other's penalty.
    #[test]
    fn readers_never_see_a_torn_pair() {
        loom::model(|| {
            let board = Arc::new(HealthBoard::new(1, 0.5));
            let a = CarrierHealth {
                state: HealthState::Degraded,
                penalty: 2.0,
            };
            let b = CarrierHealth {
                state: HealthState::Ejected,
                penalty: 9.0,
            };
            let writer = {
                let board = board.clone();
                loom::thread::spawn(move || {
                    board.publish(CarrierIndex(0), a);
                    board.publish(CarrierIndex(0), b);
                })
            };
            let seen = board.health(CarrierIndex(0));
            assert!(
                seen == CarrierHealth::HEALTHY || seen == a || seen == b,
                "{seen:?}"
            );
            writer.join().unwrap();
            assert_eq!(board.health(CarrierIndex(0)), b);
        });
    }
}
