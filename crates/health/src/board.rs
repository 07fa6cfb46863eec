//! Lock-free publication of every carrier's health for the routers to read.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use smsroute_routing::{CarrierHealth, CarrierIndex, HealthState, HealthView};
use smsroute_types::CarrierSlot;

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
    pub fn publish(&self, carrier: CarrierSlot, health: CarrierHealth) {
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

impl HealthBoard {
    /// A carrier's health: one atomic load; slots past the end count as healthy.
    #[inline]
    pub fn health(&self, carrier: CarrierSlot) -> CarrierHealth {
        self.cells
            .get(carrier.get())
            .map_or(CarrierHealth::HEALTHY, |c| {
                unpack(c.load(Ordering::Acquire))
            })
    }

    /// Most of a prefix's carriers routing skips as ejected at once.
    pub fn max_ejected_share(&self) -> f32 {
        self.max_ejected_share
    }

    /// Routing's view of the board for a route table whose carrier `i` has slot
    /// `slot_of[i]`.
    pub fn view<'a>(&'a self, slot_of: &'a [CarrierSlot]) -> BoardView<'a> {
        BoardView {
            board: self,
            slot_of,
        }
    }
}

/// The board as routing reads it ([`HealthBoard::view`]): a route table's carrier indices
/// read through to their slots. A table index with no slot counts as healthy.
#[derive(Clone, Copy, Debug)]
pub struct BoardView<'a> {
    board: &'a HealthBoard,
    slot_of: &'a [CarrierSlot],
}

impl HealthView for BoardView<'_> {
    #[inline]
    fn health(&self, carrier: CarrierIndex) -> CarrierHealth {
        match self.slot_of.get(carrier.get()) {
            Some(&slot) => self.board.health(slot),
            None => CarrierHealth::HEALTHY,
        }
    }

    fn max_ejected_share(&self) -> f32 {
        self.board.max_ejected_share
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
        board.publish(CarrierSlot(1), h);
        assert_eq!(board.health(CarrierSlot(1)), h);
        assert_eq!(board.health(CarrierSlot(0)), CarrierHealth::HEALTHY);
        assert_eq!(board.health(CarrierSlot(9)), CarrierHealth::HEALTHY);
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

    #[test]
    fn routing_reads_a_table_index_through_its_slot() {
        let board = HealthBoard::new(3, 0.25);
        let ejected = CarrierHealth {
            state: HealthState::Ejected,
            penalty: 4.0,
        };
        board.publish(CarrierSlot(2), ejected);
        // The table lists slot 2 first, slot 0 second (a reload reordered them).
        let slot_of = [CarrierSlot(2), CarrierSlot(0)];
        let view = board.view(&slot_of);
        assert_eq!(view.health(CarrierIndex(0)), ejected);
        assert_eq!(view.health(CarrierIndex(1)), CarrierHealth::HEALTHY);
        assert_eq!(view.health(CarrierIndex(7)), CarrierHealth::HEALTHY);
        assert_eq!(view.max_ejected_share(), 0.25);
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
                    board.publish(CarrierSlot(0), a);
                    board.publish(CarrierSlot(0), b);
                })
            };
            let seen = board.health(CarrierSlot(0));
            assert!(
                seen == CarrierHealth::HEALTHY || seen == a || seen == b,
                "{seen:?}"
            );
            writer.join().unwrap();
            assert_eq!(board.health(CarrierSlot(0)), b);
        });
    }
}
