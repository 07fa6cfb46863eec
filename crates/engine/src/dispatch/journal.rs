//! The dispatcher's journal (`docs/durability.md`): every step it records and what waits for
//! its record to be durable (what it takes up again after a restart is in `resume.rs`).
//!
//! Four things wait for the sync that covers their record, in the order they were recorded:
//! a new message's `Accepted` event (the message itself starts at once: its first submit
//! waits for its attempt's record, which the log orders after the acceptance), a submit (sent
//! once its attempt is durable, so a crash can never forget a submit that reached a carrier),
//! a terminal event (handed to the gateway once durable, so it is never heard and then
//! forgotten), and the answer to a carrier's receipt (given once what the receipt did is
//! durable, so a crash never loses a receipt its carrier thinks delivered). The events a turn
//! holds go to the gateway together, as the batch they were written into, once the turn's
//! records are durable: never copied or read again by the dispatcher. Everything else
//! (receipt ids, retries) is recorded without waiting: losing it in a crash only makes
//! recovery more cautious.

use std::borrow::Cow;

use smsroute_journal::{Finish, Flushed, Record, Recovered, Writer};

use super::*;

/// What waits for its record to be durable, besides events ([`HeldEvents`]).
pub(super) enum Held {
    /// A new message the journal could not record (it failed): never started.
    Start(Job),
    /// A submit: sent once its attempt is durable.
    Submit { key: EntryKey, attempt: u32 },
    /// A carrier's receipt, answered once what it did is durable.
    Receipt(ReceiptAck),
}

/// `Accepted` and terminal events held in one turn (up to [`HELD_EVENTS`]), in the order
/// they were made: handed to the gateway as one batch once every record up to `seq` is
/// durable.
#[derive(Default)]
pub(super) struct HeldEvents {
    /// The last record appended when they were closed.
    seq: u64,
    pub events: Vec<StatusEvent>,
    /// How many of them are terminal.
    pub terminals: u64,
    /// The highest acknowledgement place among them (0: none terminal).
    pub last_ack: u64,
}

/// Held events a batch: a full one is closed at once (its records are appended, so it waits
/// for them), the size of the event sink's own batches.
const HELD_EVENTS: usize = 1024;

impl HeldEvents {
    fn new() -> Self {
        HeldEvents {
            events: Vec::with_capacity(HELD_EVENTS),
            ..HeldEvents::default()
        }
    }
}

/// The journal's writer and what waits for it.
pub(super) struct Durability {
    writer: Writer,
    /// Held items by the sequence number of their record, oldest first.
    waiting: VecDeque<(u64, Held)>,
    /// The events this turn holds so far.
    open: HeldEvents,
    /// Earlier turns' held events, oldest first.
    held_events: VecDeque<HeldEvents>,
    /// The next terminal event's place in the acknowledgement order.
    next_ack: u64,
    /// The acknowledgement watermark last recorded.
    acknowledged: u64,
    /// More bytes wait for the disk than the journal allows (logged when it changes).
    backlogged: bool,
    /// The journal failed: nothing more becomes durable.
    failed: bool,
    /// Each hand-over to the sync thread not yet durable: its last sequence number and when.
    flushes: VecDeque<(u64, std::time::Instant)>,
    /// Bytes appended as of the last metric flush.
    bytes_seen: u64,
    /// Ids up to this one are reserved (recorded, durable or on their way).
    reserved_ids: u64,
}

/// Held items that will never be released: recorded after the journal failed.
const NEVER: u64 = u64::MAX;

/// Assigned ids are reserved in the journal this many at a time, ahead of use, so an id
/// `submit` returned is never given again after a crash (a restart skips what is left).
const ID_BLOCK: u64 = 1 << 20;

impl Durability {
    pub fn new(writer: Writer, recovered: &Recovered) -> Self {
        Durability {
            writer,
            waiting: VecDeque::new(),
            open: HeldEvents::new(),
            held_events: VecDeque::new(),
            next_ack: recovered.last_ack + 1,
            acknowledged: recovered.acknowledged,
            backlogged: false,
            failed: false,
            flushes: VecDeque::new(),
            bytes_seen: 0,
            reserved_ids: recovered.last_id.0,
        }
    }

    /// Reserves the next block of ids once fewer than half a block remain past `next` (the
    /// next id the router assigns); the record's sequence number when it did.
    fn reserve_ids(&mut self, next: u64) -> Option<u64> {
        if next.saturating_add(ID_BLOCK / 2) <= self.reserved_ids {
            return None;
        }
        self.reserved_ids = next.saturating_add(ID_BLOCK);
        Some(self.append(&Record::Counters {
            last_id: MessageId(self.reserved_ids),
            last_ack: self.next_ack - 1,
        }))
    }

    /// At start, before any id is handed out: reserves the first block and waits until the
    /// reservation is durable (a few milliseconds; at most 10 s on a failing disk, then the
    /// journal's failure speaks for itself).
    pub fn reserve_ids_at_start(&mut self, next: u64) {
        let Some(seq) = self.reserve_ids(next) else {
            return;
        };
        let started = std::time::Instant::now();
        while self.flush() && self.writer.durable() < seq && started.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Appends a record; its sequence number, or [`NEVER`] once the journal has failed.
    fn append(&mut self, record: &Record<'_>) -> u64 {
        if self.failed {
            return NEVER;
        }
        match self.writer.append(record) {
            Ok(seq) => seq,
            Err(error) => {
                self.fail(&error);
                NEVER
            }
        }
    }

    fn fail(&mut self, error: &smsroute_journal::JournalError) {
        if !self.failed {
            self.failed = true;
            // Receipts waiting for the disk will never be recorded: answered "not taken".
            self.waiting
                .retain(|(_, held)| !matches!(held, Held::Receipt(_)));
            tracing::error!(%error, "journal failed: no new message is accepted; messages \
                waiting for it stay unfinished");
        }
    }

    fn hold(&mut self, seq: u64, held: Held) {
        self.waiting.push_back((seq, held));
    }

    /// The oldest held item whose record is durable.
    fn next_durable(&mut self) -> Option<Held> {
        let durable = self.writer.durable();
        match self.waiting.front() {
            Some((seq, _)) if *seq <= durable => self.waiting.pop_front().map(|(_, held)| held),
            _ => None,
        }
    }

    /// A terminal event: recorded with the next acknowledgement place, held until durable.
    pub fn finish(&mut self, mut status: StatusEvent) {
        status.ack = self.next_ack;
        self.next_ack += 1;
        self.append(&Record::Finished {
            id: status.id,
            status: finish_of(&status.event),
            ack: status.ack,
            possible_duplicate: status.possible_duplicate,
        });
        self.open.terminals += 1;
        self.open.last_ack = status.ack;
        self.hold_event(status);
    }

    fn hold_event(&mut self, status: StatusEvent) {
        self.open.events.push(status);
        if self.open.events.len() >= HELD_EVENTS {
            self.close_events();
        }
    }

    /// Closes the held events (at the end of a turn, or full): they wait for every record so
    /// far (forever once the journal failed).
    fn close_events(&mut self) {
        if self.open.events.is_empty() {
            return;
        }
        let events = HeldEvents {
            seq: if self.failed {
                NEVER
            } else {
                self.writer.appended()
            },
            events: crate::event::take_batch(&mut self.open.events, HELD_EVENTS),
            terminals: std::mem::take(&mut self.open.terminals),
            last_ack: std::mem::take(&mut self.open.last_ack),
        };
        self.held_events.push_back(events);
    }

    /// The oldest turn's held events, once durable.
    fn durable_events(&mut self) -> Option<HeldEvents> {
        let durable = self.writer.durable();
        match self.held_events.front() {
            Some(events) if events.seq <= durable => self.held_events.pop_front(),
            _ => None,
        }
    }

    /// Records attempt `attempt` of message `id` (entry `key`) to `carrier`; its submit waits
    /// until the record is durable.
    pub fn attempt(&mut self, key: EntryKey, id: MessageId, carrier: &str, attempt: u32) {
        let seq = self.append(&Record::Attempt {
            id,
            carrier: Cow::Borrowed(carrier),
            attempt,
        });
        self.hold(seq, Held::Submit { key, attempt });
    }

    /// Records that `carrier` accepted message `id` under these ids (none when it gave none).
    pub fn submitted(&mut self, id: MessageId, carrier: &str, ids: &[Box<str>]) {
        self.append(&Record::Submitted {
            id,
            carrier: Cow::Borrowed(carrier),
            carrier_ids: Cow::Borrowed(ids),
        });
    }

    /// A receipt handled now: its carrier is answered once every record so far is durable
    /// (what the receipt did among them). After the journal failed nothing becomes durable: the
    /// ack is dropped unanswered ("not taken"), so the carrier keeps the receipt for a router
    /// that can record it.
    pub fn receipt_done(&mut self, ack: ReceiptAck) {
        if self.failed {
            return;
        }
        let seq = self.writer.appended();
        if seq <= self.writer.durable() && self.waiting.is_empty() {
            ack.taken();
        } else {
            self.hold(seq, Held::Receipt(ack));
        }
    }

    /// Records that part `part` of message `id` was delivered while others still wait.
    pub fn part_delivered(&mut self, id: MessageId, part: u32) {
        self.append(&Record::PartDelivered { id, part });
    }

    /// A new message's `Accepted` event: handed out once its acceptance (recorded this turn)
    /// is durable.
    pub fn accepted(&mut self, status: StatusEvent) {
        self.hold_event(status);
    }

    /// Whether anything waits for the disk.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.held_events.is_empty() && self.open.events.is_empty()
    }

    /// Hands this turn's records to the sync thread.
    fn flush(&mut self) -> bool {
        let appended = self.writer.appended();
        if self.flushes.back().is_none_or(|(seq, _)| *seq < appended) && !self.failed {
            self.flushes
                .push_back((appended, std::time::Instant::now()));
        }
        match self.writer.flush() {
            Ok(Flushed::Ok) => {
                if std::mem::take(&mut self.backlogged) {
                    tracing::info!("journal caught up with the disk");
                }
                true
            }
            Ok(Flushed::Backlogged) => {
                if !std::mem::replace(&mut self.backlogged, true) {
                    tracing::warn!(
                        "journal: the disk falls behind; new messages wait longer \
                        for their acceptance"
                    );
                }
                true
            }
            Err(error) => {
                self.fail(&error);
                false
            }
        }
    }

    /// Records how long each hand-over now durable took (one histogram sample per hand-over).
    fn commits(&mut self, histogram: &smsroute_metrics::Histogram) {
        let durable = self.writer.durable();
        while let Some(&(seq, at)) = self.flushes.front() {
            if seq > durable {
                break;
            }
            histogram.record(at.elapsed().as_secs_f64());
            self.flushes.pop_front();
        }
    }

    /// The journal's figures, on the housekeeping tick.
    pub fn flush_metrics(&mut self, m: &smsroute_metrics::EngineMetrics) {
        let bytes = self.writer.bytes_appended();
        m.journal_bytes.increment(bytes - self.bytes_seen);
        self.bytes_seen = bytes;
        m.journal_disk.set(self.writer.disk_bytes() as f64);
        m.journal_files.set(self.writer.files() as f64);
        let events: usize = self.held_events.iter().map(|e| e.events.len()).sum();
        m.journal_waiting
            .set((self.waiting.len() + events + self.open.events.len()) as f64);
    }

    /// Stops the writer as a crash would (what is not written is lost).
    pub fn abandon(self) {
        self.writer.abandon();
    }

    /// Syncs what is recorded and stops the writer; the items and events held are returned,
    /// all durable unless the journal failed.
    pub fn close(mut self) -> (bool, VecDeque<(u64, Held)>, VecDeque<HeldEvents>) {
        let open = std::mem::take(&mut self.open);
        self.held_events.push_back(open);
        let ok = !self.failed && self.writer.close().is_ok();
        (ok, self.waiting, self.held_events)
    }
}

/// The journal's form of a terminal event.
fn finish_of(event: &Event) -> Finish {
    match event {
        Event::Delivered => Finish::Delivered,
        Event::Sent => Finish::Sent,
        Event::Failed(reason) => Finish::Failed(*reason),
        _ => Finish::Expired,
    }
}

impl<C: Carrier> Dispatcher<C> {
    /// A new message from a submitter: started now without a journal, else recorded and
    /// started once durable.
    pub(super) fn accept(&mut self, job: Job, now: Nanos) {
        let unix = self.shared.unix(now);
        match &mut self.journal {
            None => self.start(job, now),
            Some(journal) => {
                let seq = journal.append(&Record::Accepted {
                    message: Cow::Borrowed(&job.message),
                    at: unix,
                });
                if seq == NEVER {
                    // Nothing more can be durable: stop taking messages.
                    self.shared.stopped.store(true, Ordering::Release);
                    journal.hold(seq, Held::Start(job));
                    return;
                }
                self.start(job, now);
            }
        }
    }

    /// Records that a message waits to be tried again, not before `at` (router clock), and,
    /// when its last submit may have reached the carrier, that it is a possible duplicate.
    pub(super) fn record_retry(&mut self, id: MessageId, at: Nanos, possible_duplicate: bool) {
        let unix = self.shared.unix(at);
        if let Some(journal) = &mut self.journal {
            if possible_duplicate {
                journal.append(&Record::Flagged { id });
            }
            journal.append(&Record::Retrying { id, at: unix });
        }
    }

    /// Once a turn: records the gateway's new watermark, hands the records to the sync
    /// thread, and releases what became durable. Returns whether it released anything.
    pub(super) fn journal_turn(&mut self, now: Nanos) -> bool {
        let Some(journal) = &mut self.journal else {
            return false;
        };
        let upto = self.shared.acknowledged.load(Ordering::Acquire);
        if upto > journal.acknowledged {
            journal.acknowledged = upto;
            journal.append(&Record::Acknowledged { upto });
        }
        journal.reserve_ids(self.shared.next_id.load(Ordering::Relaxed));
        if !journal.flush() {
            self.shared.stopped.store(true, Ordering::Release);
        }
        journal.commits(&self.shared.metrics.journal_commit);
        journal.close_events();
        let mut released = false;
        // Events first: a message's `Accepted` event goes before anything its released submit
        // reports.
        while let Some(events) = self.journal.as_mut().and_then(Durability::durable_events) {
            released = true;
            self.hand_out_held(events);
        }
        while let Some(held) = self.journal.as_mut().and_then(Durability::next_durable) {
            released = true;
            match held {
                Held::Start(job) => self.start(job, now),
                Held::Submit { key, attempt } => self.send(key, attempt, now),
                Held::Receipt(ack) => ack.taken(),
            }
        }
        released
    }
}
