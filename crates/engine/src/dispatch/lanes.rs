//! Lanes: each carrier's queue, paced by its window, its token bucket and its health
//! tracker's probe gate; the submits that leave them, and the slots their answers free.

use super::*;
use crate::buckets::Bucket;

/// How soon a lane whose shared contract's lease is empty asks it again, nanoseconds.
const LEASE_RETRY_NANOS: Nanos = 1_000_000;

/// The carrier's own bucket, and this node's leases when contracts are shared (the
/// carrier's, and its route's and sender's among `extra`): the leases are taken only once the
/// bucket would admit, and the bucket charged only once every lease gave its tokens. An
/// empty or lapsed lease says "not before" a short retry: the leaser renews it in the
/// background, never on this path. `origin` is the instant `now` counts from.
fn admit_on_carrier<C>(
    slot: &SlotEntry<C>,
    extra: &[&Bucket],
    origin: tokio::time::Instant,
    segments: u32,
    now: Nanos,
) -> Admission {
    let shared = slot.lease.is_some() || extra.iter().any(|b| b.lease.is_some());
    if !shared {
        return slot.bucket.try_admit(segments, now);
    }
    match slot.bucket.check(segments, now) {
        Admission::Admitted => {
            // The route's and sender's leases were found with room when the message was
            // checked, on this thread; only a renewal in between can empty one (then the
            // tokens taken before it are spent on nothing, never sent without a token).
            let at = instant(origin, now);
            let leases = slot
                .lease
                .iter()
                .chain(extra.iter().filter_map(|b| b.lease.as_ref()));
            for lease in leases {
                if !lease.try_take(segments, at) {
                    return Admission::NotBefore(now + LEASE_RETRY_NANOS);
                }
            }
            slot.bucket.try_admit(segments, now)
        }
        other => other,
    }
}

/// `now` (nanoseconds since `origin`) as an instant, for the lease pools; computed only
/// where a lease is asked.
fn instant(origin: tokio::time::Instant, now: Nanos) -> std::time::Instant {
    origin.into_std() + std::time::Duration::from_nanos(now)
}

impl<C: Carrier> Dispatcher<C> {
    /// Attempt `attempt` to `carrier` takes its window slot; it is sent now, or with a
    /// journal once its record is durable.
    pub(super) fn submit(&mut self, key: EntryKey, carrier: CarrierSlot, attempt: u32, now: Nanos) {
        let Some(entry) = self.slab.get_mut(key) else {
            return;
        };
        entry.in_flight = Some(InFlight {
            carrier,
            attempt,
            started: now,
            task: None,
        });
        match &mut self.journal {
            Some(journal) => {
                let name = &self.slots[carrier.get()].id;
                journal.attempt(key, entry.delivery.id(), name, attempt);
            }
            None => self.send(key, attempt, now),
        }
    }

    /// Sends the submit in flight (unless the message ended or moved on meanwhile); an answer
    /// that comes at once is handled after this step, a later one comes back through the
    /// results channel.
    pub(super) fn send(&mut self, key: EntryKey, attempt: u32, now: Nanos) {
        let Some(entry) = self.slab.get_mut(key) else {
            return;
        };
        let Some(flight) = entry.in_flight.as_mut().filter(|f| f.attempt == attempt) else {
            return;
        };
        let carrier = flight.carrier;
        // Sent now: the carrier's latency counts from here.
        flight.started = now;
        if self.journal.is_some() {
            // It waited for its attempt's record: its timeout counts from now, not from then.
            // The wake-up armed then comes first: the machine arms the later one if the
            // submit is still unanswered (most are answered before either).
            entry.delivery.submit_sent(attempt, now);
        }
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
        if let Some(flight) = entry.in_flight.as_mut() {
            flight.task = task;
        }
    }

    /// Admits messages from a carrier's lane while its window and bucket allow; when the
    /// bucket says "not before t", arms one wake-up for the lane at t (no spinning).
    pub(super) fn pump(&mut self, carrier: CarrierSlot, now: Nanos) {
        let c = carrier.get();
        let window = self.slots[c].window.load(Ordering::Relaxed);
        let mut now = now.max(self.shared.now());
        self.release_held(carrier, now);
        let buckets = Arc::clone(&self.buckets);
        loop {
            // The carrier measures its contract on its own clock: the bucket is asked at the
            // time the submit really goes, not when the dispatcher's turn began (a turn, or
            // a thread descheduled within it, can be milliseconds old).
            now = now.max(self.shared.now());
            let Some((level, key)) = self.carriers[c].lane.front() else {
                return;
            };
            let Some(entry) = self.slab.get_mut(key).filter(|e| e.lane == Some(carrier)) else {
                // Finished (expired) while waiting.
                self.carriers[c].lane.pop_front(level);
                continue;
            };
            // The window, then the tracker's probe gate (half-open: at most `probes` in
            // flight); an answer frees both and marks the lane to pump again.
            if self.carriers[c].in_flight >= window || !self.carriers[c].tracker.may_send(now) {
                return;
            }
            let segments = entry.message.segments();
            let deadline = entry.delivery.deadline();
            // Its route's and sender's buckets first: one that says "not yet" sets the
            // message aside, and the lane goes on with the next.
            let extra = if buckets.is_empty() {
                smallvec::SmallVec::new()
            } else {
                let wall = self.shared.wall_ms.load(Ordering::Relaxed) as i64;
                buckets.of(carrier, &entry.message, wall)
            };
            let origin = self.shared.origin;
            let held = extra
                .iter()
                .find_map(|b| match b.gcra.check(segments, now) {
                    // A shared route's or sender's lease with too few tokens holds it as its
                    // bucket would.
                    Admission::Admitted
                        if b.lease
                            .as_ref()
                            .is_some_and(|l| !l.can_take(segments, instant(origin, now))) =>
                    {
                        Some(Admission::NotBefore(now + LEASE_RETRY_NANOS))
                    }
                    Admission::Admitted => None,
                    other => Some(other),
                });
            if let Some(Admission::NotBefore(at)) = held
                && at < deadline
            {
                let state = &mut self.carriers[c];
                state.lane.pop_front(level);
                state.counts.held += 1;
                state.held_seq += 1;
                state
                    .held
                    .push(std::cmp::Reverse((at, state.held_seq, key)));
                self.arm_lane(carrier, at, now);
                continue;
            }
            let answer = match may_go(entry, carrier, &self.shared.suppression) {
                Err(reason) => Err(reason),
                Ok(()) if held.is_some() => Ok(match held {
                    Some(Admission::ExceedsBurst) => Lane::TooLarge,
                    _ => Lane::TooLate,
                }),
                Ok(()) => match admit_on_carrier(&self.slots[c], &extra, origin, segments, now) {
                    Admission::Admitted => {
                        for b in &extra {
                            b.gcra.try_admit(segments, now);
                        }
                        Ok(Lane::Admitted)
                    }
                    Admission::NotBefore(at) if at < deadline => {
                        self.arm_lane(carrier, at, now);
                        return;
                    }
                    // It would expire before its turn; a message larger than the burst
                    // (possible only after a reload shrank it) never gets one.
                    Admission::NotBefore(_) => Ok(Lane::TooLate),
                    Admission::ExceedsBurst => Ok(Lane::TooLarge),
                },
            };
            // It leaves the lane: admitted, expiring, or stopped by a policy.
            self.carriers[c].lane.pop_front(level);
            self.carriers[c].left_lane(segments);
            entry.lane = None;
            let actions = match answer {
                Err(reason) => entry.delivery.abort(reason),
                Ok(admitted) => {
                    if admitted == Lane::Admitted {
                        let state = &mut self.carriers[c];
                        state.lane.served(level);
                        state.in_flight += 1;
                        state.tracker.on_sent();
                        state.counts.segments += u64::from(segments);
                    }
                    entry
                        .delivery
                        .handle_admission(admitted, now, &mut self.budgets[..])
                }
            };
            self.apply(key, actions, now);
        }
    }

    /// Arms the lane's one wake-up for `at` (or for a set-aside message due earlier),
    /// unless an earlier one is armed.
    fn arm_lane(&mut self, carrier: CarrierSlot, at: Nanos, now: Nanos) {
        let state = &mut self.carriers[carrier.get()];
        let at = state
            .held
            .peek()
            .map_or(at, |std::cmp::Reverse((due, ..))| at.min(*due));
        if state
            .lane_wake
            .is_none_or(|armed| armed > at || armed <= now)
        {
            state.lane_wake = Some(at);
            self.timers.push(at, Wake::Lane(carrier.0));
        }
    }

    /// Puts the messages whose route or sender bucket allows them by `now` back at the front
    /// of the lane, in the order they left it, and keeps a wake-up for the next one.
    fn release_held(&mut self, carrier: CarrierSlot, now: Nanos) {
        let state = &mut self.carriers[carrier.get()];
        let mut due: smallvec::SmallVec<[(u64, EntryKey); 8]> = smallvec::SmallVec::new();
        while let Some(&std::cmp::Reverse((at, seq, key))) = state.held.peek() {
            if at > now {
                break;
            }
            state.held.pop();
            due.push((seq, key));
        }
        due.sort_unstable();
        for &(_, key) in due.iter().rev() {
            let level = self
                .slab
                .get(key)
                .map_or(smsroute_config::DEFAULT_PRIORITY, |e| e.priority);
            state.lane.push_front(level, key);
        }
        if let Some(&std::cmp::Reverse((at, ..))) = state.held.peek() {
            self.arm_lane(carrier, at, now);
        }
    }

    /// Frees the window slot of a finished submit and folds its outcome into health.
    pub(super) fn end_submit(&mut self, flight: &InFlight, outcome: Outcome, now: Nanos) {
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
}

/// The policy checks a message passes again when it reaches the front of `carrier`'s lane:
/// no opt-out since it was last checked (looked up only when the list changed), and its
/// account pays the difference when this carrier is dearer than what it paid (refunded when
/// cheaper).
fn may_go(
    entry: &mut Entry,
    carrier: CarrierSlot,
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

/// Sets a carrier's bucket to `rate` with its contracted burst.
pub(super) fn set_rate<C>(slot: &SlotEntry<C>, rate: f64, burst: u32) {
    if let Ok(quota) = Quota::per_second(rate, burst) {
        slot.bucket.set_quota(quota);
    }
}
