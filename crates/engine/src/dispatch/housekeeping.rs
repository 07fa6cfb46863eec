//! The dispatcher's housekeeping, on its 100 ms tick and when timers pile up: health timers
//! and probe permits, adaptive rate recovery, the receipt map's TTL, metric flushes, timer
//! compaction.

use smsroute_carrier::LinkState;
use smsroute_routing::HealthState;

use super::*;

impl<C: Carrier> Dispatcher<C> {
    /// Housekeeping: health timers (ejection → probing), probe permits, adaptive rate
    /// recovery, the receipt map's TTL.
    pub(super) fn tick(&mut self, now: Nanos) {
        self.shared
            .wall_ms
            .store(crate::shared::wall_ms(), Ordering::Relaxed);
        for c in 0..self.carriers.len() {
            let link = self.slots[c].carrier.link();
            let state = &mut self.carriers[c];
            if link != state.link {
                let id = &*self.slots[c].id;
                match &link {
                    LinkState::Up => tracing::info!(carrier = id, "carrier up"),
                    LinkState::NotConfigured => {
                        tracing::info!(carrier = id, "carrier has no connection configured")
                    }
                    LinkState::Down { reason } => tracing::warn!(
                        carrier = id, %reason,
                        "carrier down: no candidate while another carrier is up"
                    ),
                    _ => {}
                }
                state.tracker.set_link(link == LinkState::Up);
                state.link = link;
            }
            state.tracker.poll(now);
            if let Some(rate) = state.adaptive.on_tick(now) {
                let (_, burst) = unpack_contract(state.contract);
                set_rate(&self.slots[c], rate, burst);
            }
            self.publish_health(CarrierSlot(c as u16));
        }
        self.ticks += 1;
        if self.ticks.is_multiple_of(PURGE_TICKS) {
            self.dlr.purge(now);
        }
        self.park_turn(now);
        self.compact_lanes();
        self.spill_queued(now);
        if self.repriced != self.generation {
            self.repriced = self.generation;
            self.reprice_queued(now);
        }
        self.publish_quality(now);
        self.flush_metrics();
        self.timers.push(now + TICK, Wake::Tick);
    }

    /// Publishes a carrier's health for routing and keeps its probe permits in step with
    /// its circuit.
    pub(super) fn publish_health(&mut self, carrier: CarrierSlot) {
        let c = carrier.get();
        let state = &mut self.carriers[c];
        let health = state.tracker.snapshot();
        if health.state != state.published.state {
            let (id, penalty) = (&*self.slots[c].id, health.penalty);
            let was = state.published.state;
            match health.state {
                HealthState::Ejected => {
                    tracing::warn!(carrier = id, ?was, penalty, "carrier ejected")
                }
                HealthState::Probing => {
                    tracing::info!(carrier = id, ?was, "carrier half-open: probing")
                }
                now => tracing::info!(carrier = id, ?was, ?now, penalty, "carrier health"),
            }
        }
        if health != state.published {
            state.published = health;
            self.shared.board.publish(carrier, health);
        }
        // Routing steers a message here per permit; the tracker's gate in the lane holds
        // any beyond its room, so permits are handed out again once all are taken.
        let permits = &self.slots[c].probe_permits;
        match state.tracker.circuit() {
            Circuit::Probing { .. } => {
                let room = state.tracker.probe_room();
                if room > 0 && permits.load(Ordering::Acquire) == 0 {
                    permits.store(room, Ordering::Release);
                    state.permits_issued = true;
                }
            }
            _ => {
                if std::mem::take(&mut state.permits_issued) {
                    permits.store(0, Ordering::Release);
                }
            }
        }
    }

    /// Adds the counts since the last flush to the metric handles and sets the gauges.
    pub(super) fn flush_metrics(&mut self) {
        let now = self.shared.now();
        for (state, slot) in self.carriers.iter_mut().zip(&self.slots) {
            slot.queued.store(state.queued, Ordering::Relaxed);
            slot.in_flight.store(state.in_flight, Ordering::Relaxed);
            let burst = unpack_contract(state.contract).1.max(1);
            let fill = f64::from(slot.bucket.available(now)) / f64::from(burst);
            state.metrics.bucket_fill.set(fill.min(1.0));
            state.flush_metrics();
        }
        let m = &self.shared.metrics;
        let c = std::mem::take(&mut self.counts);
        if c.accepted > 0 {
            m.accepted.increment(c.accepted);
        }
        self.shared.outcomes.add_counts(&c.outcomes);
        if c.possible_duplicates > 0 {
            m.possible_duplicates.increment(c.possible_duplicates);
        }
        if c.receipts_late > 0 {
            m.receipts_late.increment(c.receipts_late);
        }
        let dropped = self.shared.counters.dropped.load(Ordering::Relaxed);
        m.events_dropped.increment(dropped - c.dropped_seen);
        let unknown = self.dlr.unknown;
        m.receipts_unknown.increment(unknown - c.unknown_seen);
        self.counts.dropped_seen = dropped;
        self.counts.unknown_seen = unknown;
        let overloaded = self.shared.counters.overloaded.load(Ordering::Relaxed);
        let refusing = overloaded != c.overloaded_seen;
        self.counts.overloaded_seen = overloaded;
        self.counts.refusing = refusing;
        if refusing != c.refusing {
            let outstanding = self.shared.counters.outstanding.load(Ordering::Relaxed);
            if refusing {
                tracing::warn!(outstanding, "overloaded: refusing submits");
            } else {
                tracing::info!(outstanding, "overload over: taking submits again");
            }
        }
        m.outstanding
            .set(self.shared.counters.outstanding.load(Ordering::Relaxed) as f64);
        m.queue_depth.set(self.shared.submitted.len() as f64);
        m.opted_out.set(self.shared.suppression.len() as f64);
        m.awaiting_receipts.set(self.dlr.len() as f64);
        if let Some(parking) = &self.parking {
            m.parked.set(parking.live() as f64);
            m.parked_disk.set(parking.disk_bytes() as f64);
        }
        if let Some(journal) = &mut self.journal {
            journal.flush_metrics(m);
        }
        for (balance, gauge) in self.shared.account_gauges.lock().iter() {
            gauge.set(balance.load(Ordering::Relaxed) as f64);
        }
    }

    /// Drops the keys of messages that left a lane without reaching its front (expired or
    /// cancelled while a higher level kept it busy), once they outnumber the waiting ones.
    fn compact_lanes(&mut self) {
        for c in 0..self.carriers.len() {
            let state = &mut self.carriers[c];
            if state.lane.len() <= 2 * state.queued as usize + 1_024 {
                continue;
            }
            let (slab, carrier) = (&mut self.slab, CarrierSlot(c as u16));
            state
                .lane
                .retain(|key| slab.get_mut(key).is_some_and(|e| e.lane == Some(carrier)));
        }
    }

    pub(super) fn compact_timers(&mut self) {
        let (slab, carriers) = (&mut self.slab, &self.carriers);
        self.timers.compact(|at, wake| match wake {
            Wake::Tick => true,
            Wake::Lane(c) => carriers[usize::from(c)].lane_wake == Some(at),
            Wake::Entry(key) => slab.get_mut(key).is_some_and(|e| e.wake_at == at),
        });
    }
}
