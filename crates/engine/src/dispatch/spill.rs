//! Capacity-aware lanes: a message goes to the first candidate, in rank (cost) order, whose
//! queue would hold it no longer than that carrier's `max_queue_wait_ms` and its own
//! deadline; and messages queued past that wait move to a cheaper or equally priced carrier
//! with room (on the tick, with the current route table, so after a reload too).
//!
//! A lane's expected wait is its queued segments over the carrier's current rate (the
//! adaptive rate its bucket runs at, or this node's part of a contract shared with other
//! nodes when that is less: `CarrierState::lane_rate`). When no candidate has room the message joins the lane
//! with the shortest wait, so every carrier stays busy while demand exceeds the contracts.

use smsroute_types::SplitMix64;

use super::*;

/// Most queued messages looked at per lane and tick when moving the excess.
const MOVE_BUDGET: usize = 2_048;

/// How long a message joining `state`'s lane would wait for the segments ahead of it.
pub(super) fn queue_wait(state: &CarrierState) -> Nanos {
    let rate = state.lane_rate().max(1e-3);
    (state.queued_segments as f64 / rate * 1e9).min(Nanos::MAX as f64) as Nanos
}

/// Whether carrier `c`'s lane has room for a message with `left` ns before its deadline
/// (its wait within the carrier's longest and the deadline), and that wait.
fn room<C>(
    slots: &[Arc<SlotEntry<C>>],
    carriers: &[CarrierState],
    c: CarrierSlot,
    left: Nanos,
) -> (bool, Nanos) {
    let wait = queue_wait(&carriers[c.get()]);
    let max = slots[c.get()].max_queue_wait.load(Ordering::Relaxed);
    (wait <= max.min(left), wait)
}

impl<C: Carrier> Dispatcher<C> {
    /// The lane a message the machine admits to `intended` joins: `intended` if it has room,
    /// else the first later candidate that has (cheapest capacity first), else the one that
    /// would hold it the shortest. A move is the machine's to make ([`Delivery::move_queued`]).
    pub(super) fn place(
        &mut self,
        key: EntryKey,
        intended: CarrierSlot,
        now: Nanos,
    ) -> CarrierSlot {
        let Some(entry) = self.slab.get_mut(key) else {
            return intended;
        };
        let left = entry.delivery.deadline().saturating_sub(now);
        let (has_room, wait) = room(&self.slots, &self.carriers, intended, left);
        if has_room {
            return intended;
        }
        let candidates = entry.delivery.candidates();
        let start = candidates.iter().position(|&c| c == intended);
        let mut shortest = (intended, wait);
        let mut chosen = None;
        for &c in start.map_or(&[][..], |i| &candidates[i + 1..]) {
            if c.get() >= self.carriers.len() {
                continue;
            }
            let (has_room, wait) = room(&self.slots, &self.carriers, c, left);
            if has_room {
                chosen = Some(c);
                break;
            }
            if wait < shortest.1 {
                shortest = (c, wait);
            }
        }
        let to = chosen.unwrap_or(shortest.0);
        if to != intended && entry.delivery.move_queued(to, None) {
            self.carriers[intended.get()].counts.spillovers += 1;
            return to;
        }
        intended
    }

    /// Moves messages queued past each lane's longest wait, newest first, to a cheaper or
    /// equally priced carrier (by the current route table) that has room for them.
    pub(super) fn spill_queued(&mut self, now: Nanos) {
        // Routes come from the current snapshot: know every slot it may name first.
        if self.shared.generation.load(Ordering::Acquire) != self.generation {
            self.sync();
        }
        let snapshot = self.shared.snapshot.load_full();
        let mut kept = Vec::new();
        for c in 0..self.carriers.len() {
            let state = &self.carriers[c];
            let max = self.slots[c].max_queue_wait.load(Ordering::Relaxed);
            if state.queued == 0 || queue_wait(state) <= max {
                continue;
            }
            // Segments beyond what the longest wait holds.
            let holds = (state.lane_rate() * max as f64 / 1e9) as u64;
            let mut excess = state.queued_segments.saturating_sub(holds);
            for _ in 0..MOVE_BUDGET {
                if excess == 0 {
                    break;
                }
                let Some((level, key)) = self.carriers[c].lane.pop_back() else {
                    break;
                };
                match self.move_cheaper(key, c, level, &snapshot, now, false) {
                    Some(Some(segments)) => excess = excess.saturating_sub(u64::from(segments)),
                    Some(None) => kept.push((level, key)),
                    None => {} // left the lane already
                }
            }
            // What could not move goes back, in its order.
            let lane = &mut self.carriers[c].lane;
            for (level, key) in kept.drain(..).rev() {
                lane.push_back(level, key);
            }
        }
    }

    /// After a reload: every queued message whose carrier the new table prices above
    /// another with room (or no longer lists) moves there, in queue order.
    pub(super) fn reprice_queued(&mut self, now: Nanos) {
        let snapshot = self.shared.snapshot.load_full();
        let mut moved = 0usize;
        for c in 0..self.carriers.len() {
            if self.carriers[c].queued == 0 {
                continue;
            }
            let keys = self.carriers[c].lane.take_all();
            for (level, key) in keys {
                match self.move_cheaper(key, c, level, &snapshot, now, true) {
                    Some(Some(_)) => moved += 1,
                    Some(None) => self.carriers[c].lane.push_back(level, key),
                    None => {}
                }
            }
        }
        if moved > 0 {
            tracing::info!(
                moved,
                "queued messages moved to carriers the reload made cheaper"
            );
        }
    }

    /// Moves queued message `key` (taken out of carrier `c`'s lane at `level`) to the first
    /// carrier the current table ranks that has room for it and is cheaper (`strictly`) or no
    /// dearer than `c` for it. `None`: it had left the lane; `Some(None)`: it stays (the caller
    /// puts it back); `Some(Some(segments))`: it moved.
    fn move_cheaper(
        &mut self,
        key: EntryKey,
        c: usize,
        level: u8,
        snapshot: &crate::registry::Snapshot<C>,
        now: Nanos,
        strictly: bool,
    ) -> Option<Option<u32>> {
        let from = CarrierSlot(c as u16);
        let shared = Arc::clone(&self.shared);
        let entry = self.slab.get_mut(key).filter(|e| e.lane == Some(from))?;
        let pick = SplitMix64::new(entry.message.id().0 ^ shared.options.seed).next_u64();
        let wall = shared.wall_ms.load(Ordering::Relaxed);
        let mut quality = None;
        let health = shared.health_view(snapshot, entry.message.to(), &mut quality);
        let route = snapshot
            .table(wall)
            .route(entry.message.to(), &health, pick);
        let class = snapshot.rules.class_of(&entry.message);
        let ceiling =
            crate::router::max_price(&entry.message, class, &snapshot.rules).unwrap_or(None);
        let slot_of = |o: &smsroute_routing::Offer| snapshot.slot_of[o.carrier.get()];
        let here = route
            .iter()
            .find(|o| slot_of(o) == from)
            .map(|o| (o.tier, o.cost));
        let better = |o: &smsroute_routing::Offer| match here {
            None => true,
            Some(h) if strictly => (o.tier, o.cost) < h,
            Some(h) => (o.tier, o.cost) <= h,
        };
        let left = entry.delivery.deadline().saturating_sub(now);
        let (carriers, slots) = (&self.carriers, &self.slots);
        let target = route.iter().find(|o| {
            let s = slot_of(o);
            s != from
                && o.within(ceiling)
                && better(o)
                && s.get() < carriers.len()
                && room(slots, carriers, s, left).0
        });
        let Some(to) = target.map(slot_of) else {
            return Some(None);
        };
        let candidates = route
            .iter()
            .filter(|o| o.within(ceiling))
            .map(slot_of)
            .collect();
        if !entry.delivery.move_queued(to, Some(candidates)) {
            return Some(None);
        }
        let segments = entry.message.segments();
        entry.lane = Some(to);
        self.carriers[c].left_lane(segments);
        self.carriers[c].counts.spillovers += 1;
        let target = &mut self.carriers[to.get()];
        target.joined_lane(segments);
        target.lane.push_back(level, key);
        self.mark_dirty(to);
        Some(Some(segments))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use smsroute_health::HealthConfig;
    use smsroute_throttle::LeasePool;

    use super::queue_wait;
    use crate::dispatch::carrier::CarrierState;
    use crate::registry::pack_contract;

    fn lane(queued_segments: u64) -> CarrierState {
        let contract = pack_contract(1_000, 100);
        let mut state = CarrierState::new("c", contract, HealthConfig::default(), 1).unwrap();
        state.queued = 1;
        state.queued_segments = queued_segments;
        state
    }

    #[test]
    fn a_lane_drains_at_its_contract_without_a_lease() {
        let state = lane(500);
        assert_eq!(
            queue_wait(&state),
            500_000_000,
            "500 segments at 1,000 a second"
        );
    }

    #[test]
    fn a_shared_contracts_lane_drains_at_this_nodes_part_of_it() {
        let mut state = lane(500);
        let lease = Arc::new(LeasePool::new());
        state.lease = Some(lease.clone());
        // Not judged yet: the contract's rate.
        assert_eq!(queue_wait(&state), 500_000_000);
        // A third of the contract: three times the wait.
        lease.set_rate(1_000.0 / 3.0);
        assert_eq!(queue_wait(&state), 1_500_000_000);
        // A share above the carrier's own rate changes nothing.
        lease.set_rate(5_000.0);
        assert_eq!(queue_wait(&state), 500_000_000);
    }
}
