//! The harness's own books: what it sent, what carriers accepted, what came back. Nothing here
//! reads the engine's counters; `lost` is computed from these.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use hdrhistogram::Histogram;
use smsroute_delivery::{Event, Label};
use smsroute_engine::StatusEvent;

/// Per-message facts shared by the generator, the simulated carriers and the event reader,
/// indexed by message id − 1 (the harness numbers messages itself).
pub struct Books {
    /// Intended send time, µs from the start (0 = not sent).
    pub intended_us: PerMessage<AtomicU32>,
    /// First carrier acceptance (answer time), µs from the start, + 1 (0 = none).
    pub ack_us: PerMessage<AtomicU32>,
    /// Acceptances by simulated carriers (more than one: a duplicate).
    pub accepts: PerMessage<AtomicU8>,
    /// Accepted by the router, per second of the run.
    pub accepted: Vec<AtomicU64>,
    /// Refused by the router, per second.
    pub rejected: Vec<AtomicU64>,
    /// Sent more than [`LATE_US`] after their intended time, per second.
    pub late: Vec<AtomicU64>,
    /// Refusals by reason (`Rejection::reason`).
    pub rejected_by_reason: [AtomicU64; REASONS.len()],
    /// Terminal events seen (the reader bumps it; the progress line and the drain read it).
    pub terminal: AtomicU64,
    /// Failovers seen.
    pub failovers: AtomicU64,
    /// p99 of accept → terminal over the last second, µs (for the progress line).
    pub recent_p99_us: AtomicU64,
    /// Destination and sender of each message template (message n uses template
    /// n % templates): how a carrier's acceptance is matched against opt-outs.
    pub destinations: std::sync::OnceLock<Vec<Recipient>>,
    /// (number, sender) → when the router processed its STOP, µs.
    pub stopped: parking_lot::Mutex<std::collections::HashMap<Recipient, u64>>,
    /// Acceptances by a carrier of a message to a number after its STOP was processed.
    pub sent_after_opt_out: AtomicU64,
    /// Some STOP was processed (a free check before the lock).
    pub any_stopped: std::sync::atomic::AtomicBool,
}

/// Terminal outcomes counted apart (one per `Outcome` label).
pub(crate) const OUTCOMES: usize = <smsroute_delivery::Outcome as Label>::LABELS.len();

/// A (number, sender) pair; sender `*` for every sender.
pub type Recipient = (Box<str>, Box<str>);

/// Rejection reasons, in report order (the metrics' `reason` labels).
pub const REASONS: &[&str] = <smsroute_engine::Rejection as smsroute_metrics::Label>::LABELS;

/// A send this late counts as late, µs.
pub const LATE_US: u64 = 10_000;

fn zeroed<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// Messages per chunk of a [`PerMessage`].
const CHUNK: usize = 1 << 16;

/// One value per planned message, allocated a chunk of 65,536 at a time when a message in it
/// is first touched: a run holds memory for the messages it sent, not for all its rate and
/// duration plan (the chunk table itself is 8 bytes per 65,536 planned messages).
pub struct PerMessage<T> {
    chunks: Box<[std::sync::OnceLock<Box<[T]>>]>,
    len: usize,
}

impl<T: Default> PerMessage<T> {
    /// Room for `len` messages, none allocated yet.
    pub fn new(len: usize) -> Self {
        PerMessage {
            chunks: (0..len.div_ceil(CHUNK))
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            len,
        }
    }

    /// Message `i`'s value, allocating its chunk if needed; `None` past the plan.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let chunk = self.chunks[i / CHUNK].get_or_init(|| zeroed(CHUNK).into_boxed_slice());
        Some(&chunk[i % CHUNK])
    }

    /// Message `i`'s value if its chunk exists (an untouched one reads as default).
    pub fn peek(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get().map(|c| &c[i % CHUNK])
    }

    /// Every value allocated so far.
    pub fn allocated(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .filter_map(|c| c.get())
            .flat_map(|c| c.iter())
    }

    /// Chunks allocated (for tests: memory follows messages sent).
    pub fn chunks_allocated(&self) -> usize {
        self.chunks.iter().filter(|c| c.get().is_some()).count()
    }
}

impl Books {
    /// Room for `messages` messages over `seconds` seconds.
    pub fn new(messages: usize, seconds: usize) -> Self {
        Books {
            intended_us: PerMessage::new(messages),
            ack_us: PerMessage::new(messages),
            accepts: PerMessage::new(messages),
            accepted: zeroed(seconds),
            rejected: zeroed(seconds),
            late: zeroed(seconds),
            rejected_by_reason: Default::default(),
            terminal: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            recent_p99_us: AtomicU64::new(0),
            destinations: std::sync::OnceLock::new(),
            stopped: parking_lot::Mutex::default(),
            sent_after_opt_out: AtomicU64::new(0),
            any_stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A simulated carrier accepted message `id`, answering `after_ns` from `now_us`.
    pub fn carrier_accepted(&self, id: u64, now_us: u64, after_ns: u64) {
        let Some(i) = (id as usize).checked_sub(1) else {
            return;
        };
        if let Some(count) = self.accepts.get(i) {
            count.fetch_add(1, Ordering::Relaxed);
            self.check_opt_out(i, now_us);
            let at = (now_us + after_ns / 1_000 + 1).min(u64::from(u32::MAX)) as u32;
            if let Some(ack) = self.ack_us.get(i) {
                let _ = ack.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Counts an acceptance of message `i` at `now_us` that came after its recipient's STOP.
    fn check_opt_out(&self, i: usize, now_us: u64) {
        if !self.any_stopped.load(Ordering::Acquire) {
            return;
        }
        let stopped = self.stopped.lock();
        let Some(destinations) = self.destinations.get() else {
            return;
        };
        let (number, sender) = &destinations[i % destinations.len()];
        let since = |sender: &str| stopped.get(&(number.clone(), sender.into())).copied();
        if since(sender)
            .or_else(|| since("*"))
            .is_some_and(|at| at <= now_us)
        {
            self.sent_after_opt_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The router processed a STOP (`sender` `*`: STOPALL) from `number` at `at_us`.
    pub fn stopped(&self, number: &str, sender: &str, at_us: u64) {
        self.stopped
            .lock()
            .entry((number.into(), sender.into()))
            .or_insert(at_us);
        self.any_stopped.store(true, Ordering::Release);
    }

    /// The router processed a START from `number`: it may be sent to again.
    pub fn started(&self, number: &str) {
        self.stopped.lock().retain(|(n, _), _| &**n != number);
    }

    /// Acceptances beyond the first, over all messages.
    pub fn duplicates(&self) -> u64 {
        self.accepts
            .allocated()
            .map(|a| u64::from(a.load(Ordering::Relaxed).saturating_sub(1)))
            .sum()
    }

    /// Sum of a per-second column.
    pub fn total(column: &[AtomicU64]) -> u64 {
        column.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// [`Tally`]'s per-message bits: the outcome's index + 1, the `Accepted` event, the
/// terminal event's `possible_duplicate`.
const OUTCOME: u8 = 0x0f;
const ACCEPTED: u8 = 0x10;
const FLAGGED: u8 = 0x20;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// One second of the run, as the event reader saw it.
#[derive(Clone)]
pub struct Second {
    /// Attempts submitted, per carrier slot.
    pub submits: Vec<u64>,
    /// Terminal events: delivered, sent, failed, expired.
    pub terminal: [u64; OUTCOMES],
    /// Failovers.
    pub failovers: u64,
    /// Accept → terminal latency of messages finishing this second, per carrier slot.
    pub latency: Vec<Histogram<u64>>,
}

/// The event reader's tallies (one thread owns them).
pub struct Tally {
    /// Carrier slots known.
    carriers: usize,
    /// Per message (grown as events come): the terminal outcome's index + 1 in the low bits
    /// (0: none yet), [`ACCEPTED`] and [`FLAGGED`].
    seen: Vec<u8>,
    /// Messages planned: ids past it are strays.
    planned: usize,
    /// Terminal events by kind: delivered, sent, failed, expired.
    pub terminal: [u64; OUTCOMES],
    /// Second terminal events for one message (must stay 0): a replay that differs from the
    /// first counts too.
    pub double_terminal: u64,
    /// Terminal events emitted again after a restart, the same as the first.
    pub replays: u64,
    /// Events for ids the harness never sent.
    pub strays: u64,
    pub retries: u64,
    pub failovers: u64,
    /// Accept → terminal, µs, after the warm-up.
    pub latency: Histogram<u64>,
    /// Accept → first carrier acceptance, µs, after the warm-up.
    pub ack_latency: Histogram<u64>,
    pub seconds: Vec<Second>,
    warmup_us: u64,
    /// The last second's latencies, for the progress line.
    recent: Histogram<u64>,
    recent_second: usize,
    /// Submits by price, when the run measures them.
    pub spend: Option<crate::spend::Spend>,
    /// With `[mix.classes]`: per class, first submits after the warm-up and their waits
    /// (intended send → submitted to a carrier), µs.
    pub classes: Option<std::collections::BTreeMap<String, (u64, Histogram<u64>)>>,
}

impl Tally {
    pub fn new(messages: usize, carriers: usize, warmup_us: u64) -> Self {
        Tally {
            carriers,
            seen: Vec::new(),
            planned: messages,
            terminal: [0; OUTCOMES],
            double_terminal: 0,
            replays: 0,
            strays: 0,
            retries: 0,
            failovers: 0,
            latency: histogram(),
            ack_latency: histogram(),
            seconds: Vec::new(),
            warmup_us,
            recent: histogram(),
            recent_second: 0,
            spend: None,
            classes: None,
        }
    }

    fn second(&mut self, at_us: u64) -> &mut Second {
        let s = (at_us / 1_000_000) as usize;
        while self.seconds.len() <= s {
            self.seconds.push(Second {
                submits: vec![0; self.carriers],
                terminal: [0; OUTCOMES],
                failovers: 0,
                latency: (0..self.carriers)
                    .map(|_| Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("bounds"))
                    .collect(),
            });
        }
        &mut self.seconds[s]
    }

    fn carrier(&mut self, slot: usize) {
        if slot >= self.carriers {
            self.carriers = slot + 1;
            for s in &mut self.seconds {
                s.submits.resize(self.carriers, 0);
                s.latency.resize_with(self.carriers, || {
                    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("bounds")
                });
            }
        }
    }

    /// Folds one event in; `at_us` is its time on the harness clock.
    pub fn record(&mut self, event: &StatusEvent, at_us: u64, books: &Books) {
        let Some(i) = (event.id.0 as usize)
            .checked_sub(1)
            .filter(|i| *i < self.planned)
        else {
            self.strays += 1;
            return;
        };
        if let Some(spend) = &mut self.spend {
            spend.record(event, at_us);
        }
        match event.event {
            Event::Submitted { carrier, attempt } => {
                self.carrier(carrier.get());
                self.second(at_us).submits[carrier.get()] += 1;
                if let (Some(classes), 1, Some(class)) =
                    (&mut self.classes, attempt, event.message.tag("class"))
                {
                    let intended = books
                        .intended_us
                        .peek(i)
                        .map_or(0, |t| u64::from(t.load(Ordering::Relaxed)));
                    if intended >= self.warmup_us {
                        let (submitted, waits) = classes
                            .entry(class.to_string())
                            .or_insert_with(|| (0, histogram()));
                        *submitted += 1;
                        let _ = waits.record(at_us.saturating_sub(intended).max(1));
                    }
                }
            }
            Event::Retrying { .. } => self.retries += 1,
            Event::FailedOver { .. } => {
                self.failovers += 1;
                books.failovers.fetch_add(1, Ordering::Relaxed);
                self.second(at_us).failovers += 1;
            }
            _ => {}
        }
        if i >= self.seen.len() {
            self.seen.resize(i + 1, 0);
        }
        if event.event == Event::Accepted {
            self.seen[i] |= ACCEPTED;
        }
        let Some(kind) = event.event.outcome().map(|o| o.index()) else {
            return;
        };
        let carrier = event.carrier.map(|c| c.get());
        let flags = (event.replay, event.possible_duplicate);
        self.terminal_at(i, kind, flags, carrier, at_us, books);
    }

    /// Mode `serve`: makes room for every message up to `id`, so that the duplicate check
    /// sees them all (ids no event named included).
    pub fn cover(&mut self, id: u64) {
        let _ = self.index(id);
    }

    /// Mode `serve`: message `id`'s `submit_sm_resp` came (its acceptance).
    pub fn accepted_id(&mut self, id: u64) {
        if let Some(i) = self.index(id) {
            self.seen[i] |= ACCEPTED;
        }
    }

    /// Mode `serve`: message `id` may have reached a carrier twice (the client sent it again
    /// after a submit got no answer).
    pub fn flag_possible_duplicate(&mut self, id: u64) {
        if let Some(i) = self.index(id) {
            self.seen[i] |= FLAGGED;
        }
    }

    /// Mode `serve`: a receipt for message `id` with outcome `kind` (a repeat of an earlier
    /// one is a replay), flagged `possible_duplicate` or not, at `at_us`.
    pub fn receipt(&mut self, id: u64, kind: usize, flagged: bool, at_us: u64, books: &Books) {
        match self.index(id) {
            Some(i) => self.terminal_at(i, kind, (true, flagged), None, at_us, books),
            None => self.strays += 1,
        }
    }

    /// Message `id`'s index in `seen`, grown to hold it; `None` past the plan.
    fn index(&mut self, id: u64) -> Option<usize> {
        let i = (id as usize).checked_sub(1).filter(|i| *i < self.planned)?;
        if i >= self.seen.len() {
            self.seen.resize(i + 1, 0);
        }
        Some(i)
    }

    /// Message `i`'s terminal status `kind`: `(replay, possible_duplicate)` as its event said,
    /// through `carrier` (a slot) when known.
    fn terminal_at(
        &mut self,
        i: usize,
        kind: usize,
        (replay, possible_duplicate): (bool, bool),
        carrier: Option<usize>,
        at_us: u64,
        books: &Books,
    ) {
        let before = self.seen[i] & OUTCOME;
        if before != 0 {
            if replay && before == kind as u8 + 1 {
                self.replays += 1;
            } else {
                self.double_terminal += 1;
            }
            return;
        }
        self.seen[i] |= kind as u8 + 1;
        if possible_duplicate {
            self.seen[i] |= FLAGGED;
        }
        self.terminal[kind] += 1;
        books.terminal.fetch_add(1, Ordering::Relaxed);
        let read = |v: Option<&AtomicU32>| u64::from(v.map_or(0, |v| v.load(Ordering::Relaxed)));
        let intended = read(books.intended_us.peek(i));
        let latency = at_us.saturating_sub(intended).max(1);
        if let Some(carrier) = carrier {
            self.carrier(carrier);
            let _ = self.second(at_us).latency[carrier].record(latency);
        }
        self.second(at_us).terminal[kind] += 1;
        let second = (at_us / 1_000_000) as usize;
        if second != self.recent_second {
            books
                .recent_p99_us
                .store(self.recent.value_at_quantile(0.99), Ordering::Relaxed);
            self.recent.reset();
            self.recent_second = second;
        }
        let _ = self.recent.record(latency);
        if intended >= self.warmup_us {
            let _ = self.latency.record(latency);
            let ack = read(books.ack_us.peek(i));
            if ack > 0 {
                let _ = self
                    .ack_latency
                    .record((ack - 1).saturating_sub(intended).max(1));
            }
        }
    }

    fn flags(&self, id: u64) -> u8 {
        (id as usize)
            .checked_sub(1)
            .and_then(|i| self.seen.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Whether message `id` has its terminal event.
    pub fn is_terminal(&self, id: u64) -> bool {
        self.flags(id) & OUTCOME != 0
    }

    /// Messages whose `Accepted` event came (mode `serve`: their `submit_sm_resp`).
    pub fn accepted_count(&self) -> u64 {
        self.seen.iter().filter(|s| **s & ACCEPTED != 0).count() as u64
    }

    /// Whether message `id`'s `Accepted` event came.
    pub fn was_accepted(&self, id: u64) -> bool {
        self.flags(id) & ACCEPTED != 0
    }

    /// Messages a carrier accepted more than once whose terminal event did not say
    /// `possible_duplicate` (must be 0).
    pub fn unflagged_duplicates(&self, books: &Books) -> u64 {
        (0..self.seen.len())
            .filter(|&i| {
                let accepts = books
                    .accepts
                    .peek(i)
                    .map_or(0, |a| a.load(Ordering::Relaxed));
                accepts > 1 && self.seen[i] & FLAGGED == 0
            })
            .count() as u64
    }
}
