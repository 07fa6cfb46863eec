//! The dispatcher: one task that owns every message's state machine and drives it.
//!
//! Submitters route on their own threads and hand the dispatcher a job through a lock-free
//! queue; everything mutable per message or per carrier (deliveries, lanes, windows, health
//! trackers, retry budgets, timers) belongs to this one task, so none of it needs a lock. Each
//! turn of its loop takes a batch of each input (carrier answers, receipts, new messages, due
//! timers), lets the consequences settle, hands the batch of events to the gateway, and parks
//! when there is nothing to do.
//!
//! Parts: this file has the loop (`run`, `turn`, `apply`, `settle`) and the snapshot sync;
//! `inputs` takes new messages, carrier answers, receipts, replies and timers; `lanes` owns
//! each carrier's queue, window, bucket and probe gate and sends submits; `events` hands
//! status events out; `journal` records every step and holds what must wait for the disk;
//! `drain` stops; `lookup` answers queries and cancels; `spill` chooses the lane with room
//! and moves what waits too long; `carrier` is the per-carrier state, `slab` the messages
//! and timers, `answers` what an answer means, `housekeeping` the 100 ms tick.

mod answers;
mod carrier;
mod drain;
mod events;
mod housekeeping;
mod inputs;
mod journal;
mod lane;
mod lanes;
mod lookup;
mod park;
mod quality;
mod resume;
mod slab;
mod spill;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use smsroute_carrier::{
    Accepted, Carrier, Inbound, Receipt, ReceiptAck, SubmitError, SubmitRequest,
};
use smsroute_delivery::Admission as Lane;
use smsroute_delivery::Label;
use smsroute_delivery::{
    Action, Actions, Delivery, DeliveryRequest, Event, FailReason, Nanos, RetryBudget, RetryPolicy,
    SubmitResult,
};
use smsroute_health::{Circuit, Outcome};
use smsroute_throttle::{AdaptiveConfig, Admission, Quota};
use smsroute_types::{CarrierMessageId, CarrierSlot, MessageId};
use tokio::sync::{mpsc, oneshot};

use crate::ShutdownReport;
use crate::dlr::{EntryKey, Matched, Target};
use crate::event::{EventSink, StatusEvent};
use crate::inbound::{InboundEvent, InboundKind};
use crate::registry::{SlotEntry, unpack_contract};
use crate::shared::{Job, Shared};
use answers::{health_outcome, metric_result};
use carrier::CarrierState;
use events::submitted_event;
use lanes::set_rate;
use slab::{Entry, InFlight, Slab, Timers, Wake};
use smsroute_policy::Keyword;

/// Inputs of each kind taken per turn, so no kind starves the others.
const BATCH: usize = 256;
/// Housekeeping period: health timers, adaptive rate, probe permits.
const TICK: Nanos = 100_000_000;
/// Receipts for parked messages held while there is no room to take their messages up.
const DEFERRED: usize = 1024;
/// Receipt-map purge period, in ticks.
const PURGE_TICKS: u32 = 10;

/// A carrier's answer to a submit that did not come at once.
pub(crate) struct Completion {
    key: EntryKey,
    attempt: u32,
    result: Result<Accepted, SubmitError>,
}

/// Requests from the router's handle.
pub(crate) enum Control {
    /// Stop taking new messages (the handle already refuses them), finish what is in flight
    /// until `deadline`, then report.
    Shutdown {
        deadline: Nanos,
        reply: Option<oneshot::Sender<ShutdownReport>>,
    },
    /// Stop at once, as a crash would (fault injection); answers once stopped.
    Abandon { reply: oneshot::Sender<()> },
    /// Where a message stands.
    Query {
        id: MessageId,
        reply: oneshot::Sender<Option<crate::router::MessageStatus>>,
    },
    /// Cancel a message no carrier holds.
    Cancel {
        id: MessageId,
        reply: oneshot::Sender<Result<(), crate::router::CancelError>>,
    },
}

pub(crate) struct Dispatcher<C: Carrier> {
    shared: Arc<Shared<C>>,
    generation: u64,
    policy: RetryPolicy,
    slots: Vec<Arc<SlotEntry<C>>>,
    carriers: Vec<CarrierState>,
    budgets: Vec<RetryBudget>,
    slab: Slab,
    timers: Timers,
    events: EventSink,
    results_tx: mpsc::UnboundedSender<Completion>,
    results_rx: mpsc::UnboundedReceiver<Completion>,
    matched_rx: mpsc::Receiver<(CarrierSlot, Receipt, ReceiptAck)>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    /// Replies from carriers, tagged with the carrier.
    inbound_rx: mpsc::Receiver<(CarrierSlot, Inbound)>,
    /// Replies out to the gateway (bounded; dropped and counted when full).
    replies_tx: mpsc::Sender<InboundEvent>,
    /// Answers that came at once, to handle once the current step is done.
    ready: VecDeque<Completion>,
    /// Lanes to pump once the current step is done.
    dirty: Vec<CarrierSlot>,
    ticks: u32,
    draining: Option<(Nanos, Option<oneshot::Sender<ShutdownReport>>)>,
    drained: u64,
    /// The router's handle is gone.
    handle_gone: bool,
    /// Router-wide counts since the last metric flush.
    counts: EngineCounts,
    /// The journal, when the router keeps one.
    journal: Option<journal::Durability>,
    /// Told to stop as a crash would (and whom to tell once stopped).
    abandoned: Option<oneshot::Sender<()>>,
    /// Messages parked out of memory while they wait for receipts (with a journal).
    parking: Option<park::Parking>,
    /// Carrier message ids → the parts waiting for their receipts.
    dlr: crate::dlr::DlrMap,
    /// Receipts for parked messages that wait for room to take them up, oldest first
    /// (at most [`DEFERRED`]; past it, no more receipts are taken until room frees).
    deferred: VecDeque<(Matched, ReceiptAck)>,
    /// Queries and cancels waiting for the new messages submitted before them.
    lookups: VecDeque<(lookup::Lookup, MessageId, u32)>,
    /// The snapshot generation whose prices the queued messages were last checked against.
    repriced: u64,
    /// Route and sender buckets of the current configuration.
    buckets: Arc<crate::buckets::Buckets>,
    /// Receipt outcomes by (carrier, network), and the penalties published from them.
    quality: crate::quality::QualityTracker,
    /// `smsroute_quality_penalty` series, by (carrier, network), and whether each is above 1.
    quality_gauges: std::collections::HashMap<(CarrierSlot, u64), (smsroute_metrics::Gauge, bool)>,
}

/// Router-wide counts the dispatcher accumulates between metric flushes.
#[derive(Clone, Copy, Debug, Default)]
struct EngineCounts {
    accepted: u64,
    outcomes: [u64; smsroute_delivery::Outcome::LABELS.len()],
    possible_duplicates: u64,
    /// Receipts matched to parked messages.
    receipts_late: u64,
    /// The shared totals already flushed.
    dropped_seen: u64,
    unknown_seen: u64,
    overloaded_seen: u64,
    /// Submits were refused as overloaded during the last tick (logged when it changes).
    refusing: bool,
}

impl<C: Carrier> Dispatcher<C> {
    pub fn new(
        shared: Arc<Shared<C>>,
        events: EventSink,
        matched_rx: mpsc::Receiver<(CarrierSlot, Receipt, ReceiptAck)>,
        control_rx: mpsc::UnboundedReceiver<Control>,
        inbound_rx: mpsc::Receiver<(CarrierSlot, Inbound)>,
        replies_tx: mpsc::Sender<InboundEvent>,
        journal: Option<(smsroute_journal::Writer, smsroute_journal::Recovered)>,
    ) -> Self {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (policy, quality, buckets) = {
            let snapshot = shared.snapshot.load();
            (snapshot.policy, snapshot.quality, snapshot.buckets.clone())
        };
        let mut dispatcher = Dispatcher {
            shared,
            generation: 0,
            policy,
            slots: Vec::new(),
            carriers: Vec::new(),
            budgets: Vec::new(),
            slab: Slab::default(),
            timers: Timers::default(),
            events,
            results_tx,
            results_rx,
            matched_rx,
            control_rx,
            inbound_rx,
            replies_tx,
            ready: VecDeque::new(),
            dirty: Vec::new(),
            ticks: 0,
            draining: None,
            drained: 0,
            handle_gone: false,
            counts: EngineCounts::default(),
            journal: None,
            abandoned: None,
            parking: None,
            dlr: crate::dlr::DlrMap::default(),
            deferred: VecDeque::new(),
            lookups: VecDeque::new(),
            repriced: 0,
            buckets,
            quality: crate::quality::QualityTracker::new(quality),
            quality_gauges: Default::default(),
        };
        dispatcher.sync();
        if let Some(options) = &dispatcher.shared.options.journal
            && journal.is_some()
        {
            let dir = options.dir.join("parked");
            match park::Parking::open(&dir) {
                Ok(parking) => dispatcher.parking = Some(parking),
                Err(error) => tracing::warn!(dir = %dir.display(), %error,
                    "parked side files unavailable: messages awaiting receipts stay in memory"),
            }
        }
        if let Some((writer, recovered)) = journal {
            let mut durability = journal::Durability::new(writer, &recovered);
            durability.reserve_ids_at_start(dispatcher.shared.next_id.load(Ordering::Relaxed));
            dispatcher.journal = Some(durability);
            let now = dispatcher.shared.now();
            dispatcher.resume(recovered, now);
            dispatcher.publish_stats();
        }
        dispatcher
    }

    /// Runs until shut down (or the router handle is dropped).
    pub async fn run(mut self) {
        self.timers.push(self.shared.now() + TICK, Wake::Tick);
        let mut sleep = pin!(tokio::time::sleep_until(self.shared.origin));
        let shared = self.shared.clone();
        loop {
            let now = self.shared.now();
            let worked = self.turn(now);
            if let Some(reply) = self.abandoned.take() {
                return self.abandon(reply);
            }
            if let Some((deadline, _)) = &self.draining {
                let idle = self.slab.live() == 0
                    && self.deferred.is_empty()
                    && self.shared.submitted.is_empty()
                    && self
                        .journal
                        .as_ref()
                        .is_none_or(journal::Durability::is_idle);
                if idle || now >= *deadline {
                    return self.finish();
                }
            }
            if worked {
                // Let the runtime's other tasks (carrier answers, receipt pumps) run.
                tokio::task::yield_now().await;
                continue;
            }
            let notified = shared.wake.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            self.shared.parked.store(true, Ordering::SeqCst);
            if !self.shared.submitted.is_empty() {
                self.shared.parked.store(false, Ordering::Relaxed);
                continue;
            }
            let mut next = self.timers.next();
            if let Some((deadline, _)) = &self.draining {
                next = Some(next.map_or(*deadline, |t| t.min(*deadline)));
            }
            if let Some(at) = next {
                let at = self.shared.origin + std::time::Duration::from_nanos(at);
                sleep.as_mut().reset(at);
            }
            tokio::select! {
                biased;
                control = self.control_rx.recv(), if !self.handle_gone => {
                    let now = self.shared.now();
                    self.control(control, now);
                }
                Some(done) = self.results_rx.recv() => {
                    let now = self.shared.now();
                    self.complete(done, now);
                }
                Some((carrier, receipt, ack)) = self.matched_rx.recv(), if self.deferred.len() < DEFERRED => {
                    let now = self.shared.now();
                    self.receipt_in(carrier, receipt, ack, now);
                }
                Some((carrier, inbound)) = self.inbound_rx.recv() => {
                    let now = self.shared.now();
                    self.inbound(carrier, inbound, now);
                }
                _ = &mut notified => {}
                _ = &mut sleep, if next.is_some() => {}
            }
            self.shared.parked.store(false, Ordering::Relaxed);
        }
    }

    /// One turn: a batch of every input, then the consequences. Returns whether it did work.
    fn turn(&mut self, now: Nanos) -> bool {
        let mut worked = false;
        while let Ok(control) = self.control_rx.try_recv() {
            self.control(Some(control), now);
            worked = true;
        }
        if self.abandoned.is_some() {
            return worked;
        }
        if self.shared.generation.load(Ordering::Acquire) != self.generation {
            self.sync();
        }
        for _ in 0..BATCH {
            let Ok(done) = self.results_rx.try_recv() else {
                break;
            };
            self.complete(done, now);
            worked = true;
        }
        worked |= self.retry_deferred(now);
        for _ in 0..BATCH {
            if self.deferred.len() >= DEFERRED {
                break;
            }
            let Ok((carrier, receipt, ack)) = self.matched_rx.try_recv() else {
                break;
            };
            self.receipt_in(carrier, receipt, ack, now);
            worked = true;
        }
        for _ in 0..BATCH {
            let Ok((carrier, inbound)) = self.inbound_rx.try_recv() else {
                break;
            };
            self.inbound(carrier, inbound, now);
            worked = true;
        }
        let mut started = 0;
        for _ in 0..BATCH {
            let Some(job) = self.shared.submitted.pop() else {
                break;
            };
            self.accept(job, now);
            started += 1;
        }
        if started > 0 {
            worked = true;
            self.shared.counters.announce_room();
        }
        while let Some((at, wake)) = self.timers.pop_due(now) {
            self.wake(at, wake, now);
            worked = true;
        }
        self.settle(now);
        if !self.lookups.is_empty() {
            self.answer_lookups(now);
            self.settle(now);
        }
        if self.journal_turn(now) {
            self.settle(now);
            worked = true;
        }
        self.publish_stats();
        self.events.flush();
        if self.timers.len() > 2 * self.slab.live() + 4 * BATCH {
            self.compact_timers();
        }
        worked
    }

    /// Picks up a new snapshot: the retry policy for new messages, new carriers, changed
    /// contracts.
    fn sync(&mut self) {
        let snapshot = self.shared.snapshot.load_full();
        self.generation = snapshot.generation;
        self.policy = snapshot.policy;
        self.quality.set_config(snapshot.quality);
        self.buckets = snapshot.buckets.clone();
        let shares = snapshot.rules.level_shares();
        let options = &self.shared.options;
        for slot in &snapshot.slots[self.slots.len()..] {
            let index = self.slots.len() as u64;
            let contract = slot.contract.load(Ordering::Acquire);
            let mut state =
                CarrierState::new(&slot.id, contract, options.health, options.seed ^ index)
                    .expect("health config validated at start");
            state.lease = slot.lease.clone();
            self.carriers.push(state);
            self.budgets.push(RetryBudget::new(
                options.retry_ratio,
                options.retry_floor_per_second,
            ));
            self.slots.push(slot.clone());
        }
        for (slot, state) in self.slots.iter().zip(&mut self.carriers) {
            state.lane.set_shares(shares);
            let contract = slot.contract.load(Ordering::Acquire);
            if contract != state.contract {
                state.contract = contract;
                let (tps, burst) = unpack_contract(contract);
                if let Ok(Some(rate)) = state
                    .adaptive
                    .set_contracted(AdaptiveConfig::new(f64::from(tps.max(1))))
                {
                    set_rate(slot, rate, burst);
                } else {
                    set_rate(slot, state.adaptive.rate(), burst);
                }
            }
        }
    }

    fn now_system_offset(&self, now: Nanos, at: SystemTime) -> Nanos {
        let ahead = at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_nanos();
        now.saturating_add(ahead.min(u128::from(u64::MAX)) as u64)
    }

    /// Carries out a state machine's actions.
    fn apply(&mut self, key: EntryKey, actions: Actions, now: Nanos) {
        for action in actions {
            match action {
                Action::Emit(event) => self.emit(key, event, now),
                Action::Admit { carrier, segments } => {
                    let carrier = self.place(key, carrier, now);
                    let Some(entry) = self.slab.get_mut(key) else {
                        continue;
                    };
                    entry.lane = Some(carrier);
                    // Waiting in the lane must not outlive the message.
                    entry.wake_at = entry.delivery.deadline();
                    self.timers.push(entry.wake_at, Wake::Entry(key));
                    let priority = entry.priority;
                    let state = &mut self.carriers[carrier.get()];
                    state.joined_lane(segments);
                    state.lane.push_back(priority, key);
                    self.mark_dirty(carrier);
                }
                Action::WakeAt(at) => {
                    if let Some(entry) = self.slab.get_mut(key) {
                        entry.wake_at = at;
                        self.timers.push(at, Wake::Entry(key));
                    }
                }
                Action::Submit { carrier, attempt } => self.submit(key, carrier, attempt, now),
            }
        }
    }

    /// The priority level of a message taken up again (after a restart, or from parking):
    /// its class's under the current rules.
    fn priority_of(&self, message: &smsroute_types::Message) -> u8 {
        let rules = &self.shared.snapshot.load().rules;
        rules.priority(rules.class_of(message))
    }

    fn mark_dirty(&mut self, carrier: CarrierSlot) {
        let state = &mut self.carriers[carrier.get()];
        if !state.dirty {
            state.dirty = true;
            self.dirty.push(carrier);
        }
    }

    /// Handles answers that came at once and pumps lanes until nothing more moves.
    fn settle(&mut self, now: Nanos) {
        loop {
            if let Some(done) = self.ready.pop_front() {
                self.complete(done, now);
            } else if let Some(carrier) = self.dirty.pop() {
                self.carriers[carrier.get()].dirty = false;
                self.pump(carrier, now);
            } else {
                return;
            }
        }
    }
}
