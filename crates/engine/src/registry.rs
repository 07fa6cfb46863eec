//! Carriers by stable slot, and the routing snapshot that readers load without locking.
//!
//! A carrier keeps its slot (and with it its connection, token bucket and health) for the
//! router's whole life, whatever reloads do to the table's own carrier order: the snapshot maps
//! the table's indices to slots. Slots are only ever appended; a carrier a reload removes is
//! retired (no new traffic is routed to it) and drains what it already has.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use smsroute_delivery::RetryPolicy;
use smsroute_routing::{RouteDeck, RouteTable};
use smsroute_throttle::{Gcra, InvalidQuota, LeasePool, Quota};
use smsroute_types::CarrierSlot;

/// Most carriers one router can know over its life (slots are never reused, so reloads that
/// add carriers count too): the configuration's own limit, one for both.
pub use smsroute_config::MAX_CARRIERS;

/// `id` as a `&'static str`, the same one for every router of the process: events carry
/// carrier names at the cost of a pointer. Each distinct carrier id is kept once for the
/// process's life (ids come from configurations, so this is bounded by what operators name).
pub(crate) fn intern(id: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<parking_lot::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock();
    if let Some(name) = names.get(id) {
        return name;
    }
    let name: &'static str = Box::leak(id.into());
    names.insert(name);
    name
}

/// A carrier's contract as the bucket needs it, packed so it changes in one store.
pub(crate) fn pack_contract(tps: u32, burst: u32) -> u64 {
    (u64::from(tps) << 32) | u64::from(burst)
}

pub(crate) fn unpack_contract(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// One carrier: its connection and the state that must survive reloads.
pub(crate) struct SlotEntry<C> {
    pub id: Arc<str>,
    /// The id again, interned for the life of the process: what events carry.
    pub name: &'static str,
    pub carrier: Arc<C>,
    /// The token bucket (its quota follows the adaptive rate).
    pub bucket: Gcra,
    /// This node's lease of a contract shared with other nodes, if it is shared: a message
    /// needs its tokens too.
    pub lease: Option<Arc<LeasePool>>,
    /// Contracted tps and burst, packed ([`pack_contract`]).
    pub contract: AtomicU64,
    /// Most submits in flight.
    pub window: AtomicU32,
    /// The longest expected queue wait before a message is passed over, nanoseconds.
    pub max_queue_wait: AtomicU64,
    /// Probe messages routing may still steer here while the circuit is half-open.
    pub probe_permits: AtomicU32,
    /// Messages in the carrier's lane, as of the dispatcher's last tick.
    pub queued: AtomicU32,
    /// Submits in flight, as of the dispatcher's last tick.
    pub in_flight: AtomicU32,
}

impl<C> SlotEntry<C> {
    pub fn new(
        id: &str,
        carrier: Arc<C>,
        tps: u32,
        burst: u32,
        window: u32,
    ) -> Result<Self, InvalidQuota> {
        Ok(SlotEntry {
            id: id.into(),
            name: intern(id),
            carrier,
            bucket: Gcra::new(Quota::per_second(f64::from(tps), burst)?),
            lease: None,
            contract: AtomicU64::new(pack_contract(tps, burst)),
            window: AtomicU32::new(window),
            max_queue_wait: AtomicU64::new(
                smsroute_config::RoutingConfig::default().max_queue_wait_ms * 1_000_000,
            ),
            probe_permits: AtomicU32::new(0),
            queued: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
        })
    }

    /// Takes one probe permit if any is left.
    pub fn take_probe_permit(&self) -> bool {
        self.probe_permits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A carrier's longest expected queue wait under `config`, nanoseconds: its own, or the
/// `[routing]` default.
pub(crate) fn max_queue_wait(
    config: &smsroute_config::Config,
    carrier: &smsroute_config::CarrierConfig,
) -> u64 {
    let ms = carrier
        .max_queue_wait_ms
        .unwrap_or(config.routing.max_queue_wait_ms);
    ms.saturating_mul(1_000_000)
}

impl<C> Snapshot<C> {
    /// The route table in force at `wall_ms` (milliseconds since the Unix epoch; the
    /// dispatcher's tick keeps `Shared::wall_ms`, so a dated row takes effect within 100 ms).
    #[inline]
    pub fn table(&self, wall_ms: u64) -> &RouteTable {
        self.deck.at(wall_ms as i64)
    }
}

/// What one configuration compiles to; swapped whole on reload.
pub(crate) struct Snapshot<C> {
    /// Counts reloads; 1 for the configuration the router started with.
    pub generation: u64,
    /// The route tables by period (one unless rows are dated).
    pub deck: RouteDeck,
    /// Table carrier index → slot.
    pub slot_of: Vec<CarrierSlot>,
    /// Every slot so far (retired ones included), by slot index.
    pub slots: Vec<Arc<SlotEntry<C>>>,
    pub policy: RetryPolicy,
    pub max_segments: u32,
    /// Message classes: quiet hours and caps.
    pub rules: smsroute_policy::Rules,
    /// Refund a charge when no carrier took the message.
    pub refund_on_failure: bool,
    /// How delivery quality is measured.
    pub quality: crate::quality::QualityConfig,
    /// Route and sender buckets.
    pub buckets: Arc<crate::buckets::Buckets>,
}

impl<C> Snapshot<C> {
    /// Configuration `generation`: its compiled tables, slots and buckets, and the rest as
    /// `config` says.
    pub fn new(
        generation: u64,
        config: &smsroute_config::Config,
        deck: RouteDeck,
        slot_of: Vec<CarrierSlot>,
        slots: Vec<Arc<SlotEntry<C>>>,
        buckets: crate::buckets::Buckets,
    ) -> Self {
        Snapshot {
            generation,
            deck,
            slot_of,
            slots,
            buckets: Arc::new(buckets),
            policy: RetryPolicy::from(&config.retry),
            quality: crate::quality::QualityConfig::from(&config.routing),
            max_segments: config.limits.max_segments,
            rules: smsroute_policy::Rules::new(&config.policy),
            refund_on_failure: config.policy.refund_on_failure,
        }
    }
}
