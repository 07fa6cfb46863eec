//! The embedding API: start a router, submit messages, reload, shut down.

mod lifecycle;
mod lookup;
mod pumps;
mod submit;
mod types;

pub use lookup::{CancelError, MessageStatus};
pub(crate) use submit::max_price;
pub use types::{
    CarrierStats, NotReady, Refused, Rejection, ReloadReport, RouterStats, SetupError,
    ShutdownReport,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use parking_lot::Mutex;
use smsroute_carrier::{Carrier, Inbound, LinkState};
use smsroute_config::Config;
use smsroute_delivery::Nanos;
use smsroute_health::HealthBoard;
use smsroute_routing::{CarrierHealth, RouteDeck};
use smsroute_types::CarrierSlot;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::EngineOptions;
use crate::buckets::Buckets;
use crate::dispatch::{Control, Dispatcher};
use crate::event::{Counters, EventSink, EventStream};
use crate::inbound::InboundStream;
use crate::registry::{MAX_CARRIERS, SlotEntry, Snapshot, max_queue_wait, pack_contract};
use crate::shared::Shared;

/// Builds a carrier connection for a configured carrier (at start, and on reload for ids
/// the router has not seen yet).
pub type CarrierFactory<C> = Box<dyn FnMut(&smsroute_config::CarrierConfig) -> C + Send>;

/// Receipts buffered between a carrier and its pump.
const RECEIPT_QUEUE: usize = 1024;

/// An smsroute router: messages in, status events out. See the crate docs.
///
/// A cheap handle: clones share one router (submit from any task or thread). The router
/// stops when [`Router::shutdown`] is called or when its last handle is dropped.
pub struct Router<C: Carrier> {
    shared: Arc<Shared<C>>,
    handle: Arc<Handle<C>>,
}

impl<C: Carrier> Clone for Router<C> {
    fn clone(&self) -> Self {
        Router {
            shared: self.shared.clone(),
            handle: self.handle.clone(),
        }
    }
}

/// What the router's handles share besides the state the dispatcher sees.
struct Handle<C: Carrier> {
    control: mpsc::UnboundedSender<Control>,
    /// Receipts from the carriers, tagged with the carrier.
    matched_tx: mpsc::Sender<(
        CarrierSlot,
        smsroute_carrier::Receipt,
        smsroute_carrier::ReceiptAck,
    )>,
    /// Builds connections; its lock also serialises reloads.
    factory: Mutex<CarrierFactory<C>>,
    pumps: Mutex<Vec<AbortHandle>>,
    inbound_tx: mpsc::Sender<(CarrierSlot, Inbound)>,
    replies: Mutex<Option<InboundStream>>,
}

impl<C: Carrier> Router<C> {
    /// Starts a router for `config` on the current tokio runtime, with a connection from
    /// `factory` for each carrier. Returns the router and its status-event stream.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(
        config: &Config,
        options: EngineOptions,
        factory: impl FnMut(&smsroute_config::CarrierConfig) -> C + Send + 'static,
    ) -> Result<(Router<C>, EventStream), SetupError> {
        options.health.validate()?;
        let mut factory: CarrierFactory<C> = Box::new(factory);
        let deck = RouteDeck::compile(config)?;
        if config.carriers.len() > MAX_CARRIERS {
            return Err(SetupError::TooManyCarriers);
        }
        let mut slots = Vec::with_capacity(config.carriers.len());
        for c in &config.carriers {
            let mut slot = SlotEntry::new(&c.id, Arc::new(factory(c)), c.tps, c.burst, c.window)
                .map_err(|source| SetupError::Quota {
                    id: c.id.clone(),
                    source,
                })?;
            slot.lease = options.leases.get(&c.id).cloned();
            slot.max_queue_wait
                .store(max_queue_wait(config, c), Ordering::Relaxed);
            slots.push(Arc::new(slot));
        }
        let slot_of: Vec<CarrierSlot> = (0..slots.len() as u16).map(CarrierSlot).collect();
        let buckets = Buckets::build(config, &slot_of, &Buckets::default(), &options.leases)
            .map_err(bucket_quota)?;
        let snapshot = Snapshot::new(1, config, deck, slot_of, slots, buckets);
        let file = options
            .suppression_file
            .clone()
            .or_else(|| config.policy.suppression_file.as_ref().map(Into::into));
        let suppression = Arc::new(match &file {
            Some(path) => smsroute_policy::Suppression::open(path)?,
            None => smsroute_policy::Suppression::in_memory(),
        });
        let cap_capacity = options.cap_capacity;
        let wake = Arc::new(Notify::new());
        let journal_options = options
            .journal
            .clone()
            .or_else(|| config.journal.as_ref().map(crate::options::journal_from));
        let journal = match &journal_options {
            None => None,
            Some(journal) => {
                let wake = wake.clone();
                let on_durable = Box::new(move |_durable: u64| wake.notify_one());
                Some(smsroute_journal::Journal::open(journal, on_durable)?)
            }
        };
        let next_id = journal.as_ref().map_or(1, |(_, r)| r.last_id.0 + 1);
        let acknowledged = journal.as_ref().map_or(0, |(_, r)| r.acknowledged);
        let counters = Arc::new(Counters::default());
        let limit = options.max_outstanding + options.progress_headroom;
        let (sink, stream) = EventSink::new(counters.clone(), limit, options.progress_events);
        let shared = Arc::new(Shared {
            board: HealthBoard::new(MAX_CARRIERS, options.health.max_ejected_share),
            submitted: ArrayQueue::new(options.inbound_capacity.max(1)),
            snapshot: ArcSwap::from_pointee(snapshot),
            generation: AtomicU64::new(1),
            wake,
            parked: AtomicBool::new(false),
            counters,
            receipts_pending: Default::default(),
            receipts_unknown: Default::default(),
            origin: Instant::now(),
            origin_unix: smsroute_journal::unix_nanos(std::time::SystemTime::now()),
            acknowledged: AtomicU64::new(acknowledged),
            handed_out: AtomicU64::new(acknowledged),
            parked_messages: Default::default(),
            options,
            next_id: AtomicU64::new(next_id),
            ids: Default::default(),
            stopped: AtomicBool::new(false),
            metrics: smsroute_metrics::EngineMetrics::register(),
            rejected: smsroute_metrics::LabelCounters::register(
                smsroute_metrics::names::REJECTED,
                "reason",
            ),
            outcomes: smsroute_metrics::LabelCounters::register(
                smsroute_metrics::names::OUTCOMES,
                "outcome",
            ),
            inbound: smsroute_metrics::LabelCounters::register(
                smsroute_metrics::names::INBOUND,
                "keyword",
            ),
            suppression,
            caps: Arc::new(smsroute_policy::FrequencyCaps::new(cap_capacity)),
            wall_ms: AtomicU64::new(crate::shared::wall_ms()),
            quality: Default::default(),
            quality_any: AtomicBool::new(false),
            accounts: Default::default(),
            account_gauges: Default::default(),
        });
        for account in &config.policy.accounts {
            shared.add_account(account);
        }
        {
            let snapshot = shared.snapshot.load();
            shared.metrics.table_generation.set(1.0);
            shared.metrics.table_prefixes.set(
                snapshot
                    .table(shared.wall_ms.load(Ordering::Relaxed))
                    .stats()
                    .prefixes as f64,
            );
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let (matched_tx, matched_rx) = mpsc::channel(RECEIPT_QUEUE);
        let (inbound_tx, inbound_rx) = mpsc::channel(RECEIPT_QUEUE);
        let (replies_tx, replies_rx) = mpsc::channel(shared.options.replies_capacity.max(1));
        let router = Router {
            shared: shared.clone(),
            handle: Arc::new(Handle {
                control,
                matched_tx,
                factory: Mutex::new(factory),
                pumps: Mutex::new(Vec::new()),
                inbound_tx,
                replies: Mutex::new(Some(InboundStream { rx: replies_rx })),
            }),
        };
        let slots = shared.snapshot.load().slots.clone();
        for (index, slot) in slots.iter().enumerate() {
            router.attach_receipts(CarrierSlot(index as u16), slot);
        }
        let dispatcher = Dispatcher::new(
            shared, sink, matched_rx, control_rx, inbound_rx, replies_tx, journal,
        );
        tokio::spawn(dispatcher.run());
        Ok((router, stream))
    }

    /// Every carrier the router knows (removed ones while they drain included), in slot
    /// order: link, health, queue, in flight and rate. Reads no metrics recorder.
    pub fn carriers(&self) -> Vec<CarrierStats> {
        let snapshot = self.shared.snapshot.load();
        snapshot
            .slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let index = CarrierSlot(i as u16);
                CarrierStats {
                    id: slot.id.clone(),
                    slot: index,
                    link: slot.carrier.link(),
                    health: self.shared.board.health(index),
                    queued: slot.queued.load(Ordering::Relaxed),
                    in_flight: slot.in_flight.load(Ordering::Relaxed),
                    rate: slot.bucket.quota().rate(),
                    configured: snapshot.slot_of.contains(&index),
                }
            })
            .collect()
    }

    /// The most segments a message may have under the current configuration
    /// (`[limits] max_segments`): `submit` refuses a longer one as
    /// `Invalid(TooManySegments)`.
    pub fn max_segments(&self) -> u32 {
        self.shared.snapshot.load().max_segments
    }

    /// With a journal: the gateway has handled every terminal event up to acknowledgement
    /// place `upto` ([`StatusEvent::ack`](crate::StatusEvent::ack)), so none of them is
    /// replayed after a restart. Recorded within the dispatcher's next turn, never past the
    /// last place handed out; a lower value than before changes nothing. Without a journal,
    /// nothing to do.
    pub fn acknowledge(&self, upto: u64) {
        // Later terminal events must not count as acknowledged before the gateway saw them.
        let upto = upto.min(self.shared.handed_out.load(Ordering::Acquire));
        let before = self.shared.acknowledged.fetch_max(upto, Ordering::AcqRel);
        if upto > before {
            self.shared.wake.notify_one();
        }
    }

    /// Now on the router's clock (nanoseconds since start), as events' `at` counts it.
    pub fn now(&self) -> Nanos {
        self.shared.now()
    }

    /// The id of a carrier slot, as events name carriers.
    pub fn carrier_id(&self, carrier: CarrierSlot) -> Option<Arc<str>> {
        let snapshot = self.shared.snapshot.load();
        snapshot.slots.get(carrier.get()).map(|s| s.id.clone())
    }

    /// The slot of a carrier id.
    pub fn carrier_slot(&self, id: &str) -> Option<CarrierSlot> {
        let snapshot = self.shared.snapshot.load();
        snapshot
            .slots
            .iter()
            .position(|s| &*s.id == id)
            .map(|i| CarrierSlot(i as u16))
    }

    /// A carrier's health as routing sees it now.
    pub fn health(&self, carrier: CarrierSlot) -> CarrierHealth {
        self.shared.board.health(carrier)
    }

    /// The connection of a carrier slot.
    pub fn carrier(&self, carrier: CarrierSlot) -> Option<Arc<C>> {
        let snapshot = self.shared.snapshot.load();
        snapshot.slots.get(carrier.get()).map(|s| s.carrier.clone())
    }

    /// The replies stream (taken once): inbound messages after their keywords were applied.
    /// A router whose replies nobody takes still applies every opt-out.
    pub fn take_inbound(&self) -> Option<InboundStream> {
        self.handle.replies.lock().take()
    }

    /// An account's balance now (with [`EngineOptions::leased_balances`], what this node
    /// holds of it).
    pub fn balance(&self, account: &str) -> Option<smsroute_types::Money> {
        let balance = self.shared.accounts.get(account)?;
        Some(smsroute_types::Money::from_micros(
            balance.load(Ordering::Acquire),
        ))
    }

    /// Adds `micros` to an account's balance here; `false` for an account not configured.
    pub fn credit(&self, account: &str, micros: u64) -> bool {
        let Some(balance) = self.shared.accounts.get(account) else {
            return false;
        };
        balance.fetch_add(micros, Ordering::AcqRel);
        true
    }

    /// Takes up to `micros` out of an account's balance here (what it holds, if less):
    /// how much was taken. Messages already charged are not affected.
    pub fn debit_up_to(&self, account: &str, micros: u64) -> u64 {
        let Some(balance) = self.shared.accounts.get(account) else {
            return 0;
        };
        match balance.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
            Some(b - b.min(micros))
        }) {
            Ok(before) => before.min(micros),
            Err(_) => 0,
        }
    }

    /// The per-recipient frequency caps: to share them with other nodes (`smsroute-cluster`).
    pub fn frequency_caps(&self) -> &Arc<smsroute_policy::FrequencyCaps> {
        &self.shared.caps
    }

    /// The suppression list: for bulk import and export, to check a number, and to share it
    /// with other nodes (`smsroute-cluster`).
    pub fn suppression(&self) -> &Arc<smsroute_policy::Suppression> {
        &self.shared.suppression
    }

    /// Live figures.
    pub fn stats(&self) -> RouterStats {
        let counters = &self.shared.counters;
        RouterStats {
            outstanding: counters.outstanding.load(Ordering::Acquire),
            events_dropped: counters.dropped.load(Ordering::Relaxed),
            unknown_receipts: self.shared.receipts_unknown.load(Ordering::Relaxed),
            receipts_pending: self.shared.receipts_pending.load(Ordering::Relaxed),
            parked: self.shared.parked_messages.load(Ordering::Relaxed),
            generation: self.shared.generation.load(Ordering::Acquire),
        }
    }
}

impl<C: Carrier> Drop for Handle<C> {
    fn drop(&mut self) {
        for pump in self.pumps.get_mut().drain(..) {
            pump.abort();
        }
    }
}

/// A route or sender bucket whose rate the token bucket cannot hold.
fn bucket_quota(source: smsroute_throttle::InvalidQuota) -> SetupError {
    SetupError::Quota {
        id: "a route or sender bucket".to_string(),
        source,
    }
}
