//! What the dispatcher keeps per carrier: health tracker, adaptive rate, lane, window use.

use std::collections::VecDeque;

use smsroute_delivery::Nanos;
use smsroute_health::{CarrierTracker, HealthConfig, InvalidHealthConfig};
use smsroute_routing::CarrierHealth;
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
    pub lane: VecDeque<EntryKey>,
    /// The lane's bucket wake-up, if one is armed.
    pub lane_wake: Option<Nanos>,
    /// Submits in flight.
    pub in_flight: u32,
    /// The lane needs pumping.
    pub dirty: bool,
    /// The health last published.
    pub published: CarrierHealth,
    /// When probe permits were last handed out.
    pub permits_at: Option<Nanos>,
}

impl CarrierState {
    pub fn new(
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
            lane: VecDeque::new(),
            lane_wake: None,
            in_flight: 0,
            dirty: false,
            published: CarrierHealth::HEALTHY,
            permits_at: None,
        })
    }
}
