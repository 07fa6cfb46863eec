//! The dispatcher: one task that owns every message's state machine and drives it.
//!
//! Submitters route on their own threads and hand the dispatcher a job through a lock-free
//! queue; everything mutable per message or per carrier (deliveries, lanes, windows, health
//! trackers, retry budgets, timers) belongs to this one task, so none of it needs a lock. Each
//! turn of its loop takes a batch of each input (carrier answers, receipts, new messages, due
//! timers), lets the consequences settle, hands the batch of events to the gateway, and parks
//! when there is nothing to do.

mod answers;
mod carrier;
mod housekeeping;
mod slab;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use smsroute_carrier::{Accepted, Carrier, Inbound, SubmitError, SubmitRequest};
use smsroute_delivery::{
    Action, Actions, Delivery, DeliveryRequest, Event, FailReason, Nanos, RetryBudget, RetryPolicy,
    SubmitResult,
};
use smsroute_health::{Circuit, Outcome};
use smsroute_routing::CarrierIndex;
use smsroute_throttle::{AdaptiveConfig, Admission, Quota};
use smsroute_types::MessageId;
use tokio::sync::{mpsc, oneshot};

use crate::ShutdownReport;
use crate::dlr::{EntryKey, Matched, Target};
use crate::event::{EventSink, StatusEvent};
use crate::inbound::InboundEvent;
use crate::registry::{CarrierSlot, unpack_contract};
use crate::shared::{Job, Shared};
use answers::{health_outcome, metric_result, receipt_index};
use carrier::CarrierState;
use slab::{Entry, InFlight, Slab, Timers, Wake};
use smsroute_policy::Keyword;

/// Inputs of each kind taken per turn, so no kind starves the others.
const BATCH: usize = 256;
/// Housekeeping period: health timers, adaptive rate, probe permits.
const TICK: Nanos = 100_000_000;
/// Receipt-map purge period, in ticks.
const PURGE_TICKS: u32 = 10;
/// Receipt ids are kept this much longer than messages wait for them.
const RECEIPT_MARGIN: Nanos = 1_000_000_000;

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
}

pub(crate) struct Dispatcher<C: Carrier> {
    shared: Arc<Shared<C>>,
    generation: u64,
    policy: RetryPolicy,
    slots: Vec<Arc<CarrierSlot<C>>>,
    carriers: Vec<CarrierState>,
    budgets: Vec<RetryBudget>,
    slab: Slab,
    timers: Timers,
    events: EventSink,
    results_tx: mpsc::UnboundedSender<Completion>,
    results_rx: mpsc::UnboundedReceiver<Completion>,
    matched_rx: mpsc::Receiver<Matched>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    /// Replies from carriers, tagged with the carrier.
    inbound_rx: mpsc::Receiver<(CarrierIndex, Inbound)>,
    /// Replies out to the gateway (bounded; dropped and counted when full).
    replies_tx: mpsc::Sender<InboundEvent>,
    /// Answers that came at once, to handle once the current step is done.
    ready: VecDeque<Completion>,
    /// Lanes to pump once the current step is done.
    dirty: Vec<CarrierIndex>,
    ticks: u32,
    draining: Option<(Nanos, Option<oneshot::Sender<ShutdownReport>>)>,
    drained: u64,
    /// The router's handle is gone.
    handle_gone: bool,
    /// Router-wide counts since the last metric flush.
    counts: EngineCounts,
}

/// Router-wide counts the dispatcher accumulates between metric flushes.
#[derive(Clone, Copy, Debug, Default)]
struct EngineCounts {
    accepted: u64,
    outcomes: [u64; 4],
    possible_duplicates: u64,
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
        matched_rx: mpsc::Receiver<Matched>,
        control_rx: mpsc::UnboundedReceiver<Control>,
        inbound_rx: mpsc::Receiver<(CarrierIndex, Inbound)>,
        replies_tx: mpsc::Sender<InboundEvent>,
    ) -> Self {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let policy = shared.snapshot.load().policy;
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
        };
        dispatcher.sync();
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
            if let Some((deadline, _)) = &self.draining {
                let idle = self.slab.live() == 0 && self.shared.submitted.is_empty();
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
                Some(matched) = self.matched_rx.recv() => {
                    let now = self.shared.now();
                    self.receipt(matched, now);
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
        for _ in 0..BATCH {
            let Ok(matched) = self.matched_rx.try_recv() else {
                break;
            };
            self.receipt(matched, now);
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
            self.start(job, now);
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
        self.events.flush();
        if self.timers.len() > 2 * self.slab.live() + 4 * BATCH {
            self.compact_timers();
        }
        worked
    }

    fn control(&mut self, control: Option<Control>, now: Nanos) {
        match control {
            Some(Control::Shutdown { deadline, reply }) => self.draining = Some((deadline, reply)),
            None => {
                self.handle_gone = true;
                // Gone without a shutdown: stop now.
                self.draining.get_or_insert((now, None));
            }
        }
    }

    /// Picks up a new snapshot: the retry policy for new messages, new carriers, changed
    /// contracts.
    fn sync(&mut self) {
        let snapshot = self.shared.snapshot.load_full();
        self.generation = snapshot.generation;
        self.policy = snapshot.policy;
        let options = &self.shared.options;
        for slot in &snapshot.slots[self.slots.len()..] {
            let index = self.slots.len() as u64;
            let contract = slot.contract.load(Ordering::Acquire);
            let state = CarrierState::new(&slot.id, contract, options.health, options.seed ^ index)
                .expect("health config validated at start");
            self.carriers.push(state);
            self.budgets.push(RetryBudget::new(
                options.retry_ratio,
                options.retry_floor_per_second,
            ));
            self.slots.push(slot.clone());
        }
        for (slot, state) in self.slots.iter().zip(&mut self.carriers) {
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

    /// A new message: start its state machine.
    fn start(&mut self, job: Job, now: Nanos) {
        if job.candidates.iter().any(|c| c.get() >= self.slots.len()) {
            self.sync();
        }
        let (message, checked, charge) = (job.message, job.checked, job.charge);
        let request = DeliveryRequest {
            id: message.id(),
            parts: message.segments(),
            candidates: job.candidates,
            receipt: self.shared.options.request_receipts,
            validity: message.validity().map(|d| d.as_nanos() as Nanos),
            not_before: message
                .not_before()
                .map(|at| self.now_system_offset(now, at)),
        };
        self.counts.accepted += 1;
        let (delivery, actions) = Delivery::start(request, self.policy, now);
        let key = self.slab.insert(Entry {
            delivery,
            message,
            wake_at: Nanos::MAX,
            lane: None,
            in_flight: None,
            checked,
            charge,
            carrier_ids: smallvec::SmallVec::new(),
        });
        self.apply(key, actions, now);
    }

    /// A reply from a recipient: its keyword changes the suppression list here, in the
    /// dispatcher, so every dispatch after it sees the change; then the gateway hears of it.
    fn inbound(&mut self, carrier: CarrierIndex, inbound: Inbound, now: Nanos) {
        let keyword = Keyword::parse(&inbound.text);
        let changed = match (keyword, smsroute_types::E164::parse(&inbound.from)) {
            (Some(k), Ok(number)) => self
                .shared
                .suppression
                .apply(k, &number, &inbound.to)
                .unwrap_or(true),
            _ => false,
        };
        let m = &self.shared.metrics;
        m.inbound[keyword.map_or(smsroute_metrics::INBOUND_NONE, |k| k as usize)].increment(1);
        let event = InboundEvent {
            carrier,
            from: inbound.from,
            to: inbound.to,
            text: inbound.text,
            keyword,
            changed,
            at: now,
        };
        if self.replies_tx.try_send(event).is_err() {
            m.inbound[smsroute_metrics::INBOUND_DROPPED].increment(1);
        }
    }

    /// Carries out a state machine's actions.
    fn apply(&mut self, key: EntryKey, actions: Actions, now: Nanos) {
        for action in actions {
            match action {
                Action::Emit(event) => self.emit(key, event, now),
                Action::Admit { carrier, .. } => {
                    let Some(entry) = self.slab.get_mut(key) else {
                        continue;
                    };
                    entry.lane = Some(carrier);
                    // Waiting in the lane must not outlive the message.
                    entry.wake_at = entry.delivery.deadline();
                    self.timers.push(entry.wake_at, Wake::Entry(key));
                    let state = &mut self.carriers[carrier.get()];
                    state.lane.push_back(key);
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

    fn mark_dirty(&mut self, carrier: CarrierIndex) {
        let state = &mut self.carriers[carrier.get()];
        if !state.dirty {
            state.dirty = true;
            self.dirty.push(carrier);
        }
    }

    /// Hands an event to the gateway; a terminal one also frees the message.
    fn emit(&mut self, key: EntryKey, event: Event, now: Nanos) {
        if !event.is_terminal() {
            let Some(entry) = self.slab.get_mut(key) else {
                return;
            };
            match event {
                Event::Retrying { carrier, .. } => self.carriers[carrier.get()].counts.retries += 1,
                Event::FailedOver { from, .. } => self.carriers[from.get()].counts.failovers += 1,
                // Reported with the carrier's ids once the attempt's answer is known.
                Event::Submitted { .. } => return,
                _ => {}
            }
            let status = progress_event(entry, event, now, smallvec::SmallVec::new());
            let live = self.slab.live();
            self.events.progress(status, live);
            return;
        }
        let Some(mut entry) = self.slab.remove(key) else {
            return;
        };
        self.shared.ids.remove(&entry.delivery.id());
        if let Some(flight) = entry.in_flight.take() {
            // Ended with its submit unanswered (expired in flight).
            if let Some(task) = &flight.task {
                task.abort();
            }
            let status = submitted_event(&entry, &flight, smallvec::SmallVec::new());
            let live = self.slab.live() + 1;
            self.events.progress(status, live);
        }
        let d = &entry.delivery;
        let history = d.history();
        if let Some(charge) = &entry.charge {
            // No carrier took it: nothing was sent to pay for.
            let taken = history
                .iter()
                .any(|a| a.outcome == smsroute_delivery::AttemptOutcome::Accepted);
            if !taken && self.shared.snapshot.load().refund_on_failure {
                charge.account.fetch_add(charge.charged, Ordering::AcqRel);
            }
        }
        if let Some(outcome) = event.terminal_index() {
            self.counts.outcomes[outcome] += 1;
        }
        self.counts.possible_duplicates += u64::from(d.possible_duplicate());
        self.events.terminal(StatusEvent {
            id: d.id(),
            at: now,
            event,
            attempts: d.attempts(),
            possible_duplicate: d.possible_duplicate(),
            carrier: history.last().map(|a| a.carrier),
            history: (history.len() > 1).then(|| history.into()),
            carrier_message_ids: entry.carrier_ids,
            message: entry.message,
        });
        if self.draining.is_some() {
            self.drained += 1;
        }
    }

    /// Sends attempt `attempt` to `carrier`; an answer that comes at once is handled after
    /// this step, a later one comes back through the results channel.
    fn submit(&mut self, key: EntryKey, carrier: CarrierIndex, attempt: u32, now: Nanos) {
        let Some(entry) = self.slab.get_mut(key) else {
            return;
        };
        let request = SubmitRequest {
            message: entry.message.clone(),
            attempt,
            receipt: self.shared.options.request_receipts,
        };
        let connection = self.slots[carrier.get()].carrier.clone();
        let mut answer: Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(async move { connection.submit(request).await });
        let task = match answer
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => {
                self.ready.push_back(Completion {
                    key,
                    attempt,
                    result,
                });
                None
            }
            Poll::Pending => {
                let results = self.results_tx.clone();
                let handle = tokio::spawn(async move {
                    let result = answer.await;
                    let _ = results.send(Completion {
                        key,
                        attempt,
                        result,
                    });
                });
                Some(handle.abort_handle())
            }
        };
        entry.in_flight = Some(InFlight {
            carrier,
            attempt,
            started: now,
            task,
        });
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

    /// Admits messages from a carrier's lane while its window and bucket allow; when the
    /// bucket says "not before t", arms one wake-up for the lane at t (no spinning).
    fn pump(&mut self, carrier: CarrierIndex, now: Nanos) {
        let c = carrier.get();
        let window = self.slots[c].window.load(Ordering::Relaxed);
        loop {
            let Some(&key) = self.carriers[c].lane.front() else {
                return;
            };
            let Some(entry) = self.slab.get_mut(key).filter(|e| e.lane == Some(carrier)) else {
                // Finished (expired) while waiting.
                self.carriers[c].lane.pop_front();
                continue;
            };
            // The window, then the tracker's probe gate (half-open: at most `probes` in
            // flight); an answer frees both and marks the lane to pump again.
            if self.carriers[c].in_flight >= window || !self.carriers[c].tracker.may_send(now) {
                return;
            }
            let answer = match may_go(entry, carrier, &self.shared.suppression) {
                Err(reason) => Err(reason),
                Ok(()) => match self.slots[c]
                    .bucket
                    .try_admit(entry.message.segments(), now)
                {
                    Admission::Admitted => Ok(Ok(())),
                    Admission::NotBefore(at) if at < entry.delivery.deadline() => {
                        let state = &mut self.carriers[c];
                        if state
                            .lane_wake
                            .is_none_or(|armed| armed > at || armed <= now)
                        {
                            state.lane_wake = Some(at);
                            self.timers.push(at, Wake::Lane(carrier.0));
                        }
                        return;
                    }
                    // It would expire before its turn; a message larger than the burst
                    // (possible only after a reload shrank it) never gets one.
                    Admission::NotBefore(at) => Ok(Err(at)),
                    Admission::ExceedsBurst => Ok(Err(Nanos::MAX)),
                },
            };
            // It leaves the lane: admitted, expiring, or stopped by a policy.
            self.carriers[c].lane.pop_front();
            entry.lane = None;
            let actions = match answer {
                Err(reason) => entry.delivery.abort(reason),
                Ok(admitted) => {
                    if admitted.is_ok() {
                        let state = &mut self.carriers[c];
                        state.in_flight += 1;
                        state.tracker.on_sent();
                        state.counts.segments += u64::from(entry.message.segments());
                    }
                    entry
                        .delivery
                        .handle_admission(admitted, now, &mut self.budgets[..])
                }
            };
            self.apply(key, actions, now);
        }
    }

    /// A carrier answered attempt `attempt` of a message.
    fn complete(&mut self, done: Completion, now: Nanos) {
        let live = self.slab.live();
        let Some(entry) = self.slab.get_mut(done.key) else {
            return;
        };
        let current = entry.in_flight.as_ref().map(|f| f.attempt);
        if current != Some(done.attempt) {
            return; // timed out already
        }
        let flight = entry.in_flight.take().expect("checked above");
        let result = match &done.result {
            Ok(_) => SubmitResult::Accepted,
            Err(e) => e.as_submit_result(),
        };
        let actions =
            entry
                .delivery
                .handle_submit_result(done.attempt, result, now, &mut self.budgets[..]);
        let mut early = smallvec::SmallVec::<[(u32, smsroute_delivery::ReceiptStatus); 2]>::new();
        let ids = match done.result {
            Ok(accepted) => accepted.message_ids,
            Err(_) => smallvec::SmallVec::new(),
        };
        if !ids.is_empty() && self.shared.options.request_receipts {
            // A little past the receipt timeout: by then the message has turned `sent`.
            let expires = now.saturating_add(self.policy.receipt_timeout + RECEIPT_MARGIN);
            for (part, id) in ids.iter().enumerate() {
                let target = Target {
                    key: done.key,
                    attempt: done.attempt,
                    part: part as u32,
                };
                if let Some(status) =
                    self.shared
                        .dlr
                        .expect(flight.carrier, id.clone(), target, expires)
                {
                    early.push((part as u32, status));
                }
            }
        }
        if self.events.wants_progress() {
            let status = submitted_event(entry, &flight, ids.clone());
            self.events.progress(status, live);
        }
        if !ids.is_empty() {
            entry.carrier_ids = ids;
        }
        let state = &mut self.carriers[flight.carrier.get()];
        state.counts.submits[metric_result(result) as usize] += 1;
        state
            .metrics
            .submit_latency
            .record((now - flight.started) as f64 / 1e9);
        self.end_submit(&flight, health_outcome(result, now - flight.started), now);
        self.apply(done.key, actions, now);
        for (part, status) in early {
            self.receipt(
                Matched {
                    target: Target {
                        key: done.key,
                        attempt: done.attempt,
                        part,
                    },
                    status,
                },
                now,
            );
        }
    }

    /// Frees the window slot of a finished submit and folds its outcome into health.
    fn end_submit(&mut self, flight: &InFlight, outcome: Outcome, now: Nanos) {
        if let Some(task) = &flight.task {
            task.abort();
        }
        let c = flight.carrier.get();
        let state = &mut self.carriers[c];
        state.in_flight = state.in_flight.saturating_sub(1);
        state.tracker.record(outcome, now);
        if outcome == Outcome::Throttled
            && let Some(rate) = state.adaptive.on_throttled(now)
        {
            let (_, burst) = unpack_contract(state.contract);
            set_rate(&self.slots[c], rate, burst);
        }
        self.publish_health(flight.carrier);
        self.mark_dirty(flight.carrier);
    }

    /// A matched delivery receipt.
    fn receipt(&mut self, matched: Matched, now: Nanos) {
        let Some(entry) = self.slab.get_mut(matched.target.key) else {
            self.shared.dlr.unknown.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let t = matched.target;
        if let Some(status) = receipt_index(matched.status)
            && let Some(attempt) = entry.delivery.history().last()
        {
            let state = &mut self.carriers[attempt.carrier.get()];
            state.counts.receipts[status] += 1;
            state
                .metrics
                .dlr_latency
                .record(now.saturating_sub(attempt.at) as f64 / 1e9);
        }
        let actions = entry.delivery.handle_receipt(
            t.attempt,
            t.part,
            matched.status,
            now,
            &mut self.budgets[..],
        );
        self.apply(t.key, actions, now);
    }

    fn wake(&mut self, at: Nanos, wake: Wake, now: Nanos) {
        match wake {
            Wake::Tick => self.tick(now),
            Wake::Lane(carrier) => {
                let state = &mut self.carriers[usize::from(carrier)];
                if state.lane_wake == Some(at) {
                    state.lane_wake = None;
                    self.mark_dirty(CarrierIndex(carrier));
                }
            }
            Wake::Entry(key) => self.wake_entry(key, at, now),
        }
    }

    fn wake_entry(&mut self, key: EntryKey, at: Nanos, now: Nanos) {
        let live = self.slab.live();
        let Some(entry) = self.slab.get_mut(key) else {
            return;
        };
        if entry.wake_at != at {
            return; // replaced by a later wake-up
        }
        entry.wake_at = Nanos::MAX;
        if entry.lane.take().is_some() {
            // Still waiting for its carrier at its deadline: expired.
            let deadline = entry.delivery.deadline();
            let actions =
                entry
                    .delivery
                    .handle_admission(Err(deadline), now, &mut self.budgets[..]);
            return self.apply(key, actions, now);
        }
        let actions = entry.delivery.handle_timer(now, &mut self.budgets[..]);
        // A submit the machine gave up on (timeout) frees its window slot.
        let ended = match &entry.in_flight {
            Some(f) => entry.delivery.in_flight() != Some((f.carrier, f.attempt)),
            None => false,
        };
        if ended {
            let flight = entry.in_flight.take().expect("checked above");
            let status = submitted_event(entry, &flight, smallvec::SmallVec::new());
            self.events.progress(status, live);
            let result = SubmitResult::TimedOut;
            self.carriers[flight.carrier.get()].counts.submits[metric_result(result) as usize] += 1;
            self.end_submit(&flight, health_outcome(result, now - flight.started), now);
        }
        self.apply(key, actions, now);
    }

    /// Ends the dispatcher: whatever is not terminal is reported unfinished.
    fn finish(mut self) {
        let mut unfinished: Vec<MessageId> = Vec::new();
        for entry in self.slab.drain() {
            if let Some(task) = entry.in_flight.and_then(|f| f.task) {
                task.abort();
            }
            unfinished.push(entry.delivery.id());
        }
        while let Some(job) = self.shared.submitted.pop() {
            unfinished.push(job.message.id());
        }
        for id in &unfinished {
            self.shared.ids.remove(id);
        }
        self.shared
            .counters
            .outstanding
            .fetch_sub(unfinished.len(), Ordering::AcqRel);
        self.events.flush();
        self.flush_metrics();
        self.shared.stopped.store(true, Ordering::Release);
        unfinished.sort_unstable();
        let report = ShutdownReport {
            drained: self.drained,
            unfinished,
            events_dropped: self.shared.counters.dropped.load(Ordering::Relaxed),
        };
        if let Some((_, Some(reply))) = self.draining.take() {
            let _ = reply.send(report);
        }
    }
}

/// The policy checks a message passes again when it reaches the front of `carrier`'s lane:
/// no opt-out since it was last checked (looked up only when the list changed), and its
/// account pays the difference when this carrier is dearer than what it paid (refunded when
/// cheaper).
fn may_go(
    entry: &mut Entry,
    carrier: CarrierIndex,
    suppression: &smsroute_policy::Suppression,
) -> Result<(), FailReason> {
    let generation = suppression.generation();
    if entry.checked != generation {
        entry.checked = generation;
        let m = &entry.message;
        if suppression.is_suppressed(m.to(), m.from().as_str()) {
            return Err(FailReason::OptedOut);
        }
    }
    let segments = entry.message.segments();
    match entry.charge.as_mut().map(|c| c.move_to(carrier, segments)) {
        Some(false) => Err(FailReason::InsufficientFunds),
        _ => Ok(()),
    }
}

/// A progress event of a live message.
fn progress_event(
    entry: &Entry,
    event: Event,
    at: Nanos,
    carrier_message_ids: smallvec::SmallVec<[Box<str>; 1]>,
) -> StatusEvent {
    StatusEvent {
        id: entry.delivery.id(),
        at,
        event,
        attempts: 0,
        possible_duplicate: false,
        carrier: None,
        history: None,
        carrier_message_ids,
        message: entry.message.clone(),
    }
}

/// The `Submitted` event of an attempt whose answer is now known, at the time it was sent.
fn submitted_event(
    entry: &Entry,
    flight: &InFlight,
    ids: smallvec::SmallVec<[Box<str>; 1]>,
) -> StatusEvent {
    let event = Event::Submitted {
        carrier: flight.carrier,
        attempt: flight.attempt,
    };
    progress_event(entry, event, flight.started, ids)
}

/// Sets a carrier's bucket to `rate` with its contracted burst.
fn set_rate<C>(slot: &CarrierSlot<C>, rate: f64, burst: u32) {
    if let Ok(quota) = Quota::per_second(rate, burst) {
        slot.bucket.set_quota(quota);
    }
}
