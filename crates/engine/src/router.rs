//! The embedding API: start a router, submit messages, reload, shut down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use parking_lot::Mutex;
use smallvec::SmallVec;
use smsroute_carrier::{Carrier, Inbound, Receipt};
use smsroute_delivery::{Nanos, RetryPolicy};
use smsroute_health::{HealthBoard, InvalidHealthConfig};
use smsroute_routing::{
    BuildError, CarrierHealth, CarrierIndex, Config, HealthState, HealthView, RouteTable,
};
use smsroute_throttle::InvalidQuota;
use smsroute_types::{InvalidMessage, Message, MessageId, SplitMix64};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::EngineOptions;
use crate::dispatch::{Control, Dispatcher};
use crate::dlr::{DlrMap, Matched};
use crate::event::{Counters, EventSink, EventStream};
use crate::inbound::InboundStream;
use crate::registry::{CarrierSlot, MAX_CARRIERS, SlotHealth, Snapshot, pack_contract};
use crate::shared::{Job, Shared};

/// Builds a carrier connection for a configured carrier (at start, and on reload for ids
/// the router has not seen yet).
pub type CarrierFactory<C> = Box<dyn FnMut(&smsroute_routing::config::CarrierConfig) -> C + Send>;

/// Why `submit` refused a message. Nothing about a refused message stays in the router.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The message breaks a configured limit (too many segments).
    #[error("invalid message: {0}")]
    Invalid(#[from] InvalidMessage),
    /// A block rule covers the number.
    #[error("blocked: a block rule covers the destination")]
    Blocked,
    /// No carrier serves the number.
    #[error("no route: no carrier serves the destination")]
    NoRoute,
    /// The router is full (the gateway is not taking events fast enough, or the burst is
    /// larger than the inbound queue): try again later.
    #[error("overloaded: too many messages outstanding, try again later")]
    Overloaded,
    /// The router has stopped.
    #[error("the router has shut down")]
    ShuttingDown,
    /// The recipient opted out of this sender (or of all).
    #[error("opted out: the recipient asked not to get messages from this sender")]
    OptedOut,
    /// The recipient already got its class's most messages within the class's window.
    #[error("frequency cap: the recipient already got the most messages of this class")]
    FrequencyCap,
    /// The message's account cannot pay for its best route (or names no configured account).
    #[error("insufficient funds: the account cannot pay for the best route")]
    InsufficientFunds,
    /// The destination is in its quiet hours and the message's class refuses then.
    #[error("quiet hours at the destination")]
    QuietHours,
    /// Another outstanding message has the id the gateway gave this one.
    #[error("duplicate id: another outstanding message has this id")]
    DuplicateId,
}

impl From<smsroute_policy::Refusal> for Rejection {
    fn from(refusal: smsroute_policy::Refusal) -> Self {
        match refusal {
            smsroute_policy::Refusal::FrequencyCap => Rejection::FrequencyCap,
            smsroute_policy::Refusal::QuietHours => Rejection::QuietHours,
        }
    }
}

impl Rejection {
    /// Position in `smsroute_metrics::REJECTION_REASONS`.
    fn index(&self) -> usize {
        match self {
            Rejection::Invalid(_) => 0,
            Rejection::Blocked => 1,
            Rejection::NoRoute => 2,
            Rejection::Overloaded => 3,
            Rejection::ShuttingDown => 4,
            Rejection::OptedOut => 5,
            Rejection::FrequencyCap => 6,
            Rejection::QuietHours => 7,
            Rejection::InsufficientFunds => 8,
            Rejection::DuplicateId => 9,
        }
    }

    /// A short name for metrics and reports: `invalid`, `blocked`, `no_route`, `overloaded`,
    /// `shutting_down`, `opted_out`, `frequency_cap`, `quiet_hours`, `insufficient_funds`,
    /// `duplicate_id` (the `reason` label of `smsroute_messages_rejected_total`).
    pub fn reason(&self) -> &'static str {
        smsroute_metrics::REJECTION_REASONS[self.index()]
    }
}

/// Why a configuration could not be started or reloaded; the running router is untouched.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The route table does not compile.
    #[error("route table: {0}")]
    Table(#[from] BuildError),
    /// Health tuning out of range.
    #[error("health config: {0}")]
    Health(#[from] InvalidHealthConfig),
    /// A carrier's tps and burst make no token bucket.
    #[error("carrier {id}: {source}")]
    Quota {
        /// The carrier.
        id: String,
        /// What is wrong.
        source: InvalidQuota,
    },
    /// A router knows at most this many carriers over its life.
    #[error("more than {MAX_CARRIERS} carriers")]
    TooManyCarriers,
    /// The suppression file could not be read or opened for writing.
    #[error("suppression file: {0}")]
    Suppression(#[from] smsroute_policy::ImportError),
}

/// What a reload changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new table's generation (1 is the start configuration).
    pub generation: u64,
    /// Carriers new to the router.
    pub added: Vec<String>,
    /// Carriers no longer configured: they get no new traffic and drain what they have.
    pub removed: Vec<String>,
}

/// How a shutdown went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Messages that reached their terminal status during the shutdown.
    pub drained: u64,
    /// Messages still unfinished at the deadline (no terminal event was sent for them).
    pub unfinished: Vec<MessageId>,
    /// Progress events dropped over the router's life because the gateway lagged.
    pub events_dropped: u64,
}

/// Live figures of a router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Accepted messages whose terminal event the gateway has not taken.
    pub outstanding: usize,
    /// Progress events dropped because the gateway lagged.
    pub events_dropped: u64,
    /// Receipts that matched no message (unknown ids, or for messages already finished).
    pub unknown_receipts: u64,
    /// Carrier message ids waiting for receipts, and early receipts held.
    pub receipts_pending: usize,
    /// The route table's generation.
    pub generation: u64,
}

/// Receipts buffered between a carrier and its pump.
const RECEIPT_QUEUE: usize = 1024;

/// An smsroute router: messages in, status events out. See the crate docs.
pub struct Router<C: Carrier> {
    shared: Arc<Shared<C>>,
    control: mpsc::UnboundedSender<Control>,
    matched_tx: mpsc::Sender<Matched>,
    /// Builds connections; its lock also serialises reloads.
    factory: Mutex<CarrierFactory<C>>,
    pumps: Mutex<Vec<AbortHandle>>,
    inbound_tx: mpsc::Sender<(CarrierIndex, Inbound)>,
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
        factory: impl FnMut(&smsroute_routing::config::CarrierConfig) -> C + Send + 'static,
    ) -> Result<(Router<C>, EventStream), SetupError> {
        options.health.validate()?;
        let mut factory: CarrierFactory<C> = Box::new(factory);
        let table = RouteTable::compile(config)?;
        if config.carriers.len() > MAX_CARRIERS {
            return Err(SetupError::TooManyCarriers);
        }
        let mut slots = Vec::with_capacity(config.carriers.len());
        for c in &config.carriers {
            let slot = CarrierSlot::new(&c.id, Arc::new(factory(c)), c.tps, c.burst, c.window)
                .map_err(|source| SetupError::Quota {
                    id: c.id.clone(),
                    source,
                })?;
            slots.push(Arc::new(slot));
        }
        let snapshot = Snapshot {
            generation: 1,
            table,
            slot_of: (0..slots.len() as u16).map(CarrierIndex).collect(),
            slots,
            policy: RetryPolicy::from(&config.retry),
            max_segments: config.limits.max_segments,
            rules: smsroute_policy::Rules::new(&config.policy),
            refund_on_failure: config.policy.refund_on_failure,
        };
        let file = options
            .suppression_file
            .clone()
            .or_else(|| config.policy.suppression_file.as_ref().map(Into::into));
        let suppression = Arc::new(match &file {
            Some(path) => smsroute_policy::Suppression::open(path)?,
            None => smsroute_policy::Suppression::in_memory(),
        });
        let cap_capacity = options.cap_capacity;
        let counters = Arc::new(Counters::default());
        let limit = options.max_outstanding + options.progress_headroom;
        let (sink, stream) = EventSink::new(counters.clone(), limit, options.progress_events);
        let shared = Arc::new(Shared {
            board: HealthBoard::new(MAX_CARRIERS, options.health.max_ejected_share),
            submitted: ArrayQueue::new(options.inbound_capacity.max(1)),
            snapshot: ArcSwap::from_pointee(snapshot),
            generation: AtomicU64::new(1),
            wake: Notify::new(),
            parked: AtomicBool::new(false),
            counters,
            dlr: Arc::new(DlrMap::default()),
            origin: Instant::now(),
            options,
            next_id: AtomicU64::new(1),
            ids: Default::default(),
            stopped: AtomicBool::new(false),
            metrics: smsroute_metrics::EngineMetrics::register(),
            suppression,
            caps: smsroute_policy::FrequencyCaps::new(cap_capacity),
            wall_ms: AtomicU64::new(crate::shared::wall_ms()),
            accounts: Default::default(),
            account_gauges: Default::default(),
        });
        for account in &config.policy.accounts {
            shared.add_account(account);
        }
        {
            let snapshot = shared.snapshot.load();
            shared.metrics.table_generation.set(1.0);
            shared
                .metrics
                .table_prefixes
                .set(snapshot.table.stats().prefixes as f64);
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let (matched_tx, matched_rx) = mpsc::channel(RECEIPT_QUEUE);
        let (inbound_tx, inbound_rx) = mpsc::channel(RECEIPT_QUEUE);
        let (replies_tx, replies_rx) = mpsc::channel(shared.options.replies_capacity.max(1));
        let router = Router {
            shared: shared.clone(),
            control,
            matched_tx,
            factory: Mutex::new(factory),
            pumps: Mutex::new(Vec::new()),
            inbound_tx,
            replies: Mutex::new(Some(InboundStream { rx: replies_rx })),
        };
        let slots = shared.snapshot.load().slots.clone();
        for (index, slot) in slots.iter().enumerate() {
            router.attach_receipts(CarrierIndex(index as u16), slot);
        }
        let dispatcher =
            Dispatcher::new(shared, sink, matched_rx, control_rx, inbound_rx, replies_tx);
        tokio::spawn(dispatcher.run());
        Ok((router, stream))
    }

    /// Routes a message and queues it for its carriers; never waits. The id is the message's
    /// own when it has one (non-zero), else the router assigns the next one.
    pub fn submit(&self, message: Message) -> Result<MessageId, Rejection> {
        let answer = self.route_and_queue(message);
        if let Err(refusal) = &answer {
            self.shared.metrics.rejected[refusal.index()].increment(1);
        }
        answer
    }

    fn route_and_queue(&self, mut message: Message) -> Result<MessageId, Rejection> {
        let shared = &*self.shared;
        if shared.stopped.load(Ordering::Relaxed) {
            return Err(Rejection::ShuttingDown);
        }
        let snapshot = shared.snapshot.load();
        let segments = message.segments();
        if segments > snapshot.max_segments {
            return Err(InvalidMessage::TooManySegments {
                segments,
                max: snapshot.max_segments,
            }
            .into());
        }
        // Read the generation first: a change after it makes the dispatcher look again.
        let checked = shared.suppression.generation();
        if shared
            .suppression
            .is_suppressed(message.to(), message.from().as_str())
        {
            return Err(Rejection::OptedOut);
        }
        // Class rules: quiet hours may hold the message or refuse it.
        let class = snapshot.rules.class_of(&message);
        let wall = class.map(|_| {
            let ms = shared.wall_ms.load(Ordering::Relaxed);
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
        });
        if let Some(class) = class {
            // The cap's line is taken after routing; start fetching it now.
            snapshot
                .rules
                .prefetch_cap(&shared.caps, class, message.to());
        }
        if let (Some(class), Some(now)) = (class, wall)
            && let Some(until) = snapshot.rules.quiet_hours(class, message.to(), now)?
        {
            let later = message.not_before().is_some_and(|t| t > until);
            if !later {
                message.set_not_before(Some(until));
            }
        }
        let health = SlotHealth {
            board: &shared.board,
            slot_of: &snapshot.slot_of,
        };
        // From here on every reservation is held by the guard, released on any refusal.
        let mut reserved = Reservation::new(shared);
        let id = reserved.id(message.id())?;
        let pick = SplitMix64::new(id.0 ^ shared.options.seed).next_u64();
        let route = snapshot.table.route(message.to(), &health, pick);
        if route.is_empty() {
            return Err(if route.blocked {
                Rejection::Blocked
            } else {
                Rejection::NoRoute
            });
        }
        let mut candidates: SmallVec<[CarrierIndex; 8]> = route
            .iter()
            .map(|offer| snapshot.slot_of[offer.carrier.get()])
            .collect();
        let steered = steer_probe(&shared.board, &snapshot.slots, &mut candidates);
        // An account pays its best route now; the dispatcher settles the difference when a
        // failover moves the message to another carrier.
        let charge = match message.tag("account") {
            None => None,
            Some(account) => {
                let balance = shared
                    .accounts
                    .get(account)
                    .map(|b| b.clone())
                    .ok_or(Rejection::InsufficientFunds)?;
                // Prices in the candidates' order: the route's, with the same probe steering.
                let mut per_segment: SmallVec<[u64; 8]> =
                    route.iter().map(|o| o.cost.micros()).collect();
                if let Some(i) = steered {
                    per_segment[..=i].rotate_right(1);
                }
                Some(Box::new(crate::shared::Charge {
                    account: balance,
                    charged: per_segment[0] * u64::from(segments),
                    slots: candidates.clone(),
                    per_segment,
                }))
            }
        };
        reserved.outstanding_slot()?;
        // The cap last: only a message that will be accepted counts toward it.
        if let (Some(class), Some(now)) = (class, wall) {
            reserved.cap = snapshot
                .rules
                .take_cap(&shared.caps, class, message.to(), now)?;
        }
        if let Some(charge) = &charge {
            reserved.debit(&charge.account, charge.charged)?;
        }
        message.set_id(id);
        let job = Job {
            message: Arc::new(message),
            candidates,
            checked,
            charge,
        };
        if shared.submitted.push(job).is_err() {
            return Err(Rejection::Overloaded);
        }
        reserved.commit();
        // Pairs with the dispatcher's store of `parked` before its last look at the queue:
        // either it sees this message or this sees it parked.
        std::sync::atomic::fence(Ordering::SeqCst);
        if shared.parked.load(Ordering::SeqCst) {
            shared.wake.notify_one();
        }
        Ok(id)
    }

    /// Swaps in a new configuration: compiled here, off the hot path, then published in one
    /// atomic store. Carriers keep their connection, bucket and health by id; new ones are
    /// connected; removed ones drain. Messages already accepted keep their candidates and
    /// retry policy; new messages use the new table.
    pub fn reload(&self, config: &Config) -> Result<ReloadReport, SetupError> {
        let answer = self.swap_in(config);
        let m = &self.shared.metrics;
        match &answer {
            Ok(report) => {
                m.reloads_ok.increment(1);
                m.table_generation.set(report.generation as f64);
                let prefixes = self.shared.snapshot.load().table.stats().prefixes;
                m.table_prefixes.set(prefixes as f64);
            }
            Err(_) => m.reloads_failed.increment(1),
        }
        answer
    }

    fn swap_in(&self, config: &Config) -> Result<ReloadReport, SetupError> {
        let mut factory = self.factory.lock();
        let table = RouteTable::compile(config)?;
        let current = self.shared.snapshot.load_full();
        let mut slots = current.slots.clone();
        let mut slot_of = Vec::with_capacity(config.carriers.len());
        let mut added = Vec::new();
        for c in &config.carriers {
            if let Some(index) = slots.iter().position(|s| &*s.id == c.id.as_str()) {
                slot_of.push(CarrierIndex(index as u16));
                continue;
            }
            if slots.len() >= MAX_CARRIERS {
                return Err(SetupError::TooManyCarriers);
            }
            let slot = CarrierSlot::new(&c.id, Arc::new(factory(c)), c.tps, c.burst, c.window)
                .map_err(|source| SetupError::Quota {
                    id: c.id.clone(),
                    source,
                })?;
            slot_of.push(CarrierIndex(slots.len() as u16));
            slots.push(Arc::new(slot));
            added.push(c.id.clone());
        }
        // Everything is valid: apply.
        for (c, &index) in config.carriers.iter().zip(&slot_of) {
            let slot = &slots[index.get()];
            slot.contract
                .store(pack_contract(c.tps, c.burst), Ordering::Release);
            slot.window.store(c.window, Ordering::Relaxed);
        }
        // Configured before, not now: retired (no new traffic; they drain).
        let removed = current
            .slot_of
            .iter()
            .filter(|old| !slot_of.contains(old))
            .map(|old| slots[old.get()].id.to_string())
            .collect();
        for (index, slot) in slots.iter().enumerate().skip(current.slots.len()) {
            self.attach_receipts(CarrierIndex(index as u16), slot);
        }
        let generation = current.generation + 1;
        self.shared.snapshot.store(Arc::new(Snapshot {
            generation,
            table,
            slot_of,
            slots,
            policy: RetryPolicy::from(&config.retry),
            max_segments: config.limits.max_segments,
            rules: smsroute_policy::Rules::new(&config.policy),
            refund_on_failure: config.policy.refund_on_failure,
        }));
        for account in &config.policy.accounts {
            self.shared.add_account(account);
        }
        self.shared.generation.store(generation, Ordering::Release);
        self.shared.wake.notify_one();
        Ok(ReloadReport {
            generation,
            added,
            removed,
        })
    }

    /// Stops taking messages, lets those in flight finish until `grace` has passed, and
    /// reports what did not. The event stream ends once its last events are taken.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        let deadline = self.shared.now().saturating_add(grace.as_nanos() as Nanos);
        let (reply, report) = oneshot::channel();
        let sent = self.control.send(Control::Shutdown {
            deadline,
            reply: Some(reply),
        });
        self.shared.wake.notify_one();
        match sent {
            Ok(()) => report.await.unwrap_or_default(),
            Err(_) => ShutdownReport::default(),
        }
    }

    /// Now on the router's clock (nanoseconds since start), as events' `at` counts it.
    pub fn now(&self) -> Nanos {
        self.shared.now()
    }

    /// The id of a carrier slot, as events name carriers.
    pub fn carrier_id(&self, carrier: CarrierIndex) -> Option<Arc<str>> {
        let snapshot = self.shared.snapshot.load();
        snapshot.slots.get(carrier.get()).map(|s| s.id.clone())
    }

    /// The slot of a carrier id.
    pub fn carrier_index(&self, id: &str) -> Option<CarrierIndex> {
        let snapshot = self.shared.snapshot.load();
        snapshot
            .slots
            .iter()
            .position(|s| &*s.id == id)
            .map(|i| CarrierIndex(i as u16))
    }

    /// A carrier's health as routing sees it now.
    pub fn health(&self, carrier: CarrierIndex) -> CarrierHealth {
        self.shared.board.health(carrier)
    }

    /// The connection of a carrier slot.
    pub fn carrier(&self, carrier: CarrierIndex) -> Option<Arc<C>> {
        let snapshot = self.shared.snapshot.load();
        snapshot.slots.get(carrier.get()).map(|s| s.carrier.clone())
    }

    /// The replies stream (taken once): inbound messages after their keywords were applied.
    /// A router whose replies nobody takes still applies every opt-out.
    pub fn take_inbound(&self) -> Option<InboundStream> {
        self.replies.lock().take()
    }

    /// An account's balance now.
    pub fn balance(&self, account: &str) -> Option<smsroute_types::Money> {
        let balance = self.shared.accounts.get(account)?;
        Some(smsroute_types::Money::from_micros(
            balance.load(Ordering::Acquire),
        ))
    }

    /// The suppression list: for bulk import and export, and to check a number.
    pub fn suppression(&self) -> &smsroute_policy::Suppression {
        &self.shared.suppression
    }

    /// Live figures.
    pub fn stats(&self) -> RouterStats {
        let counters = &self.shared.counters;
        RouterStats {
            outstanding: counters.outstanding.load(Ordering::Acquire),
            events_dropped: counters.dropped.load(Ordering::Relaxed),
            unknown_receipts: self.shared.dlr.unknown.load(Ordering::Relaxed),
            receipts_pending: self.shared.dlr.len(),
            generation: self.shared.generation.load(Ordering::Acquire),
        }
    }

    /// Gives a carrier its receipt sink and starts the pump that correlates its receipts.
    fn attach_receipts(&self, index: CarrierIndex, slot: &CarrierSlot<C>) {
        let (tx, mut rx) = mpsc::channel::<Receipt>(RECEIPT_QUEUE);
        slot.carrier.attach_receipts(tx);
        let (shared, matched) = (self.shared.clone(), self.matched_tx.clone());
        let early_ttl = shared.options.early_receipt_ttl_ms * 1_000_000;
        let pump = tokio::spawn(async move {
            while let Some(receipt) = rx.recv().await {
                let now = shared.now();
                if let Some(m) = shared.dlr.arrive(index, receipt, now, early_ttl)
                    && matched.send(m).await.is_err()
                {
                    return;
                }
            }
        });
        self.pumps.lock().push(pump.abort_handle());
        let (tx, mut rx) = mpsc::channel::<Inbound>(RECEIPT_QUEUE);
        slot.carrier.attach_inbound(tx);
        let forward = self.inbound_tx.clone();
        let pump = tokio::spawn(async move {
            while let Some(inbound) = rx.recv().await {
                if forward.send((index, inbound)).await.is_err() {
                    return;
                }
            }
        });
        self.pumps.lock().push(pump.abort_handle());
    }
}

impl<C: Carrier> Drop for Router<C> {
    fn drop(&mut self) {
        for pump in self.pumps.get_mut().drain(..) {
            pump.abort();
        }
    }
}

/// What an accepted message holds while `submit` decides: its id among the outstanding ones,
/// a slot of `max_outstanding`, a frequency-cap ticket, an account's debit. Dropped before
/// [`Reservation::commit`], it gives every one back: a refused message leaves nothing behind.
struct Reservation<'a, C> {
    shared: &'a Shared<C>,
    id: Option<MessageId>,
    outstanding: bool,
    cap: Option<smsroute_policy::CapTicket>,
    debit: Option<(Arc<AtomicU64>, u64)>,
}

impl<'a, C> Reservation<'a, C> {
    fn new(shared: &'a Shared<C>) -> Self {
        Reservation {
            shared,
            id: None,
            outstanding: false,
            cap: None,
            debit: None,
        }
    }

    /// The message's id: its own (refused while another outstanding message has it), or the
    /// next free one the router assigns (never one a gateway chose and still uses).
    fn id(&mut self, own: MessageId) -> Result<MessageId, Rejection> {
        let shared = self.shared;
        let id = if own.0 != 0 {
            if !shared.ids.insert(own) {
                return Err(Rejection::DuplicateId);
            }
            // Assigned ids stay above every own id seen, so they do not meet again later.
            if own.0 >= shared.next_id.load(Ordering::Relaxed) {
                shared
                    .next_id
                    .fetch_max(own.0.saturating_add(1), Ordering::Relaxed);
            }
            own
        } else {
            loop {
                let n = MessageId(shared.next_id.fetch_add(1, Ordering::Relaxed));
                if n.0 != 0 && shared.ids.insert(n) {
                    break n;
                }
            }
        };
        self.id = Some(id);
        Ok(id)
    }

    /// One of the `max_outstanding` slots.
    fn outstanding_slot(&mut self) -> Result<(), Rejection> {
        let outstanding = &self.shared.counters.outstanding;
        if outstanding.fetch_add(1, Ordering::AcqRel) >= self.shared.options.max_outstanding {
            outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejection::Overloaded);
        }
        self.outstanding = true;
        Ok(())
    }

    /// Takes `amount` from an account.
    fn debit(&mut self, account: &Arc<AtomicU64>, amount: u64) -> Result<(), Rejection> {
        if !crate::shared::debit(account, amount) {
            return Err(Rejection::InsufficientFunds);
        }
        self.debit = Some((account.clone(), amount));
        Ok(())
    }

    /// The message is the dispatcher's now: keep everything.
    fn commit(mut self) {
        self.id = None;
        self.outstanding = false;
        self.cap = None;
        self.debit = None;
    }
}

impl<C> Drop for Reservation<'_, C> {
    fn drop(&mut self) {
        let shared = self.shared;
        if let Some(id) = self.id {
            shared.ids.remove(&id);
        }
        if self.outstanding {
            shared.counters.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(ticket) = self.cap.take() {
            shared.caps.give_back(ticket);
        }
        if let Some((account, amount)) = self.debit.take() {
            account.fetch_add(amount, Ordering::AcqRel);
        }
    }
}

/// While a candidate carrier is half-open, one message in a few takes a probe permit and
/// tries it first: otherwise its penalty would keep it last and it would never be tested.
/// Returns the position the probed carrier was moved from (`candidates[..=i]` rotated).
fn steer_probe<C>(
    board: &HealthBoard,
    slots: &[Arc<CarrierSlot<C>>],
    candidates: &mut SmallVec<[CarrierIndex; 8]>,
) -> Option<usize> {
    for i in 1..candidates.len() {
        let slot = candidates[i];
        if board.health(slot).state == HealthState::Probing && slots[slot.get()].take_probe_permit()
        {
            candidates[..=i].rotate_right(1);
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use smallvec::smallvec;

    use super::*;

    #[test]
    fn probes_are_steered_first_while_permits_last() {
        let board = HealthBoard::new(3, 0.5);
        let slots: Vec<Arc<CarrierSlot<()>>> = ["a", "b", "c"]
            .iter()
            .map(|id| Arc::new(CarrierSlot::new(id, Arc::new(()), 10, 10, 8).unwrap()))
            .collect();
        let probing = CarrierHealth {
            state: HealthState::Probing,
            penalty: 20.0,
        };
        board.publish(CarrierIndex(2), probing);
        slots[2].probe_permits.store(2, Ordering::Relaxed);
        let order = || {
            let mut c: SmallVec<[CarrierIndex; 8]> =
                smallvec![CarrierIndex(0), CarrierIndex(1), CarrierIndex(2)];
            steer_probe(&board, &slots, &mut c);
            c.iter().map(|c| c.0).collect::<Vec<_>>()
        };
        assert_eq!(order(), [2, 0, 1]);
        assert_eq!(order(), [2, 0, 1]);
        assert_eq!(order(), [0, 1, 2], "permits used up");
        // A carrier that is not half-open is never steered, permits or not.
        slots[1].probe_permits.store(5, Ordering::Relaxed);
        assert_eq!(order(), [0, 1, 2]);
    }
}
