//! What the dispatcher keeps per carrier: health tracker, adaptive rate, lane, window use.

use smsroute_carrier::LinkState;
use smsroute_delivery::Nanos;
use smsroute_delivery::{Label, ReceiptStatus};
use smsroute_health::{CarrierTracker, HealthConfig, InvalidHealthConfig};
use smsroute_metrics::{CarrierMetrics, LabelCounters, SubmitResult};
use smsroute_routing::{CarrierHealth, HealthState};
use smsroute_throttle::{AdaptiveConfig, AdaptiveRate};

use crate::dlr::EntryKey;
use crate::registry::unpack_contract;

/// One carrier as the dispatcher drives it.
pub(crate) struct CarrierState {
    pub tracker: CarrierTracker,
    pub adaptive: AdaptiveRate,
    /// The packed contract the adaptive rate was set up for.
    pub contract: u64,
    /// Messages waiting for the window and the bucket, in arrival order. Entries that left
    /// (expired) stay until they reach the front and are skipped there.
    pub lane: super::lane::Lane,
    /// Messages in the lane (not counting keys left behind by messages that left it).
    pub queued: u32,
    /// Their segments: what the lane's expected wait is measured by.
    pub queued_segments: u64,
    /// Messages a route or sender bucket holds, by the time it allows them (then the order
    /// they left the lane in): aside, so they never block the lane.
    pub held: std::collections::BinaryHeap<std::cmp::Reverse<(Nanos, u64, EntryKey)>>,
    /// Messages set aside so far (their order among equal times).
    pub held_seq: u64,
    /// The lane's bucket wake-up, if one is armed.
    pub lane_wake: Option<Nanos>,
    /// Submits in flight.
    pub in_flight: u32,
    /// The lane needs pumping.
    pub dirty: bool,
    /// The health last published.
    pub published: CarrierHealth,
    /// Probe permits were handed out for the current half-open spell.
    pub permits_issued: bool,
    /// Metric handles, registered once.
    pub metrics: CarrierMetrics,
    /// `smsroute_receipts_total` of this carrier, by status.
    pub receipts: LabelCounters<ReceiptStatus>,
    /// Counts since the last flush to the metric handles (the hot path only adds here).
    pub counts: CarrierCounts,
    /// The carrier's link as last read on the tick (`Up` until read).
    pub link: LinkState,
    /// This node's lease of the carrier's contract when nodes share it: its rate is this
    /// node's part of the contract.
    pub lease: Option<std::sync::Arc<smsroute_throttle::LeasePool>>,
}

/// Receipt statuses counted apart (one per [`ReceiptStatus`] label).
const RECEIPT_STATUSES: usize = ReceiptStatus::LABELS.len();

/// Per-carrier counts the dispatcher accumulates between metric flushes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CarrierCounts {
    pub submits: [u64; SubmitResult::ALL.len()],
    pub retries: u64,
    pub failovers: u64,
    pub segments: u64,
    pub spillovers: u64,
    pub held: u64,
    pub receipts: [u64; RECEIPT_STATUSES],
}

impl CarrierState {
    /// Adds the accumulated counts to the metric handles and the gauges' current values.
    pub fn flush_metrics(&mut self) {
        let c = std::mem::take(&mut self.counts);
        let m = &self.metrics;
        for (result, n) in SubmitResult::ALL.iter().zip(c.submits) {
            if n > 0 {
                m.submit(*result).increment(n);
            }
        }
        let throttled = c.submits[SubmitResult::Throttled as usize];
        for (counter, n) in [
            (&m.throttled, throttled),
            (&m.retries, c.retries),
            (&m.failovers, c.failovers),
            (&m.segments, c.segments),
            (&m.spillovers, c.spillovers),
            (&m.held, c.held),
        ] {
            if n > 0 {
                counter.increment(n);
            }
        }
        self.receipts.add_counts(&c.receipts);
        let health = self.published;
        m.health.set(1.0 / f64::from(health.penalty.max(1.0)));
        m.circuit.set(match health.state {
            HealthState::Ejected => 1.0,
            HealthState::Probing => 2.0,
            _ => 0.0,
        });
        m.inflight.set(f64::from(self.in_flight));
        m.lane_depth.set(f64::from(self.queued));
        m.queue_wait
            .set(super::spill::queue_wait(self) as f64 / 1e9);
        m.rate.set(self.adaptive.rate());
        m.contract_tps
            .set(f64::from(unpack_contract(self.contract).0));
    }
}

impl CarrierState {
    /// The rate the lane drains at, segments a second: the adaptive rate, or this node's
    /// part of the carrier's shared contract when that is less (a route's or a sender's
    /// shared contract holds only its own messages and does not count here).
    pub fn lane_rate(&self) -> f64 {
        let rate = self.adaptive.rate();
        match &self.lease {
            Some(lease) if lease.rate() > 0.0 => rate.min(lease.rate()),
            _ => rate,
        }
    }

    /// A message of `segments` joined the lane.
    pub fn joined_lane(&mut self, segments: u32) {
        self.queued += 1;
        self.queued_segments += u64::from(segments);
    }

    /// A message of `segments` left the lane (admitted, expired, cancelled or moved).
    pub fn left_lane(&mut self, segments: u32) {
        self.queued = self.queued.saturating_sub(1);
        self.queued_segments = self.queued_segments.saturating_sub(u64::from(segments));
    }

    pub fn new(
        id: &str,
        contract: u64,
        health: HealthConfig,
        seed: u64,
    ) -> Result<Self, InvalidHealthConfig> {
        let (tps, _) = unpack_contract(contract);
        Ok(CarrierState {
            tracker: CarrierTracker::new(health, seed)?,
            adaptive: AdaptiveRate::new(AdaptiveConfig::new(f64::from(tps.max(1))))
                .expect("the defaults for a rate of at least 1 are valid"),
            contract,
            lane: Default::default(),
            queued: 0,
            queued_segments: 0,
            held: Default::default(),
            held_seq: 0,
            lane_wake: None,
            in_flight: 0,
            dirty: false,
            published: CarrierHealth::HEALTHY,
            permits_issued: false,
            metrics: CarrierMetrics::register(id),
            receipts: LabelCounters::register_for_carrier(
                smsroute_metrics::names::RECEIPTS,
                id,
                "status",
            ),
            counts: CarrierCounts::default(),
            link: LinkState::Up,
            lease: None,
        })
    }
}
