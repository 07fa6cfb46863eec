//! Parking (`docs/durability.md`): with a journal, a message that has waited
//! [`PARK_AFTER`] for its receipts leaves memory (the side files of [`crate::park`] keep its
//! bytes, a 24-byte record and its ids in the receipt map what finishing it takes) and stops
//! counting against `max_outstanding`. A final receipt, or the receipt timeout found by the
//! sweep, takes it up again: read back, resumed as after a restart at the same attempt, and
//! handed the receipt, so every rule about receipts stays in the state machine. Receipts are
//! matched by the dispatcher as it takes them (`receipt_in`), so one always finds its message
//! where it is at that moment.

use std::collections::HashMap;

use smsroute_delivery::{ReceiptStatus, Recovery, Resume};
use smsroute_types::Message;

use super::*;
use crate::park::{ParkStore, Parked, ParkedTable, Resumable, seconds};

/// How long a message waits for its receipts in memory before it is parked: most receipts
/// come within seconds and never pay for a read back.
pub(super) const PARK_AFTER: Nanos = 2_000_000_000;
/// Parked slots the sweep looks at per tick (a full pass over 3 million takes 5 s).
const SWEEP_PER_TICK: usize = 65_536;

/// A parked multipart message's parts.
#[derive(Clone, Copy, Debug)]
struct Multipart {
    parts: u32,
    /// Delivered parts, as a bitset.
    delivered: [u64; 4],
}

impl Multipart {
    /// None of `parts` delivered yet.
    fn new(parts: u32) -> Self {
        Multipart {
            parts,
            delivered: [0; 4],
        }
    }

    /// Marks `part` delivered.
    fn deliver(&mut self, part: u32) {
        if part < self.parts.min(256) {
            self.delivered[(part / 64) as usize] |= 1 << (part % 64);
        }
    }

    /// Whether `part` is delivered.
    fn delivered(&self, part: u32) -> bool {
        part < 256 && self.delivered[(part / 64) as usize] & (1 << (part % 64)) != 0
    }

    /// Whether `part`'s delivery would make every part delivered.
    fn completed_by(&self, part: u32) -> bool {
        let mut after = *self;
        after.deliver(part);
        after.delivered.iter().map(|w| w.count_ones()).sum::<u32>() == self.parts
    }
}

/// What became of a receipt for a parked message.
pub(super) enum ParkedReceipt {
    /// Handed to its message (or counted, as an intermediate or unknown receipt).
    Handled,
    /// No room to take its message up yet: held, to be tried again.
    NoRoom(Matched),
    /// Its message cannot take it now (its side file was lost): its carrier is answered "not
    /// taken", to offer it again (after the next start it finds the message).
    Unrecorded,
}

/// What became of taking a parked message up.
enum Unparked {
    /// In memory again under this key.
    Taken(EntryKey),
    /// No room yet: nothing changed.
    NoRoom,
    /// Gone, or its side file could not be read (logged; it stays in the journal).
    Unreadable,
}

/// The parked messages and what moves them.
pub(super) struct Parking {
    store: ParkStore,
    table: ParkedTable,
    /// Parked multipart messages: their parts, and those delivered.
    multipart: HashMap<EntryKey, Multipart, ahash::RandomState>,
    /// Messages that started waiting for receipts, oldest first, with when.
    waiting: VecDeque<(Nanos, EntryKey)>,
    /// Where the sweep goes on.
    sweep_at: usize,
    scratch: Vec<u8>,
}

impl Parking {
    /// Parked message `id` read back: what resuming it takes, the message, its carrier (a
    /// scan of the table and one read: for rare lookups).
    pub fn read(&self, id: MessageId) -> Option<(crate::park::Resumable, Message, CarrierSlot)> {
        let parked = (0..self.table.capacity())
            .filter_map(|i| self.table.at(i))
            .map(|(_, p)| p)
            .find(|p| p.id == id)?;
        let bytes = self.store.get(parked.at()).ok()?;
        let (resumable, message, _) = crate::park::decode(&bytes)?;
        Some((resumable, message, parked.carrier))
    }

    pub fn open(dir: &std::path::Path) -> std::io::Result<Parking> {
        Ok(Parking {
            store: ParkStore::open(dir)?,
            table: ParkedTable::default(),
            multipart: HashMap::default(),
            waiting: VecDeque::new(),
            sweep_at: 0,
            scratch: Vec::with_capacity(1024),
        })
    }

    /// Messages parked.
    pub fn live(&self) -> usize {
        self.table.live()
    }

    /// Ids of every parked message (for the shutdown report).
    pub fn ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        (0..self.table.capacity()).filter_map(|i| self.table.at(i).map(|(_, p)| p.id))
    }

    /// Bytes in the side files.
    pub fn disk_bytes(&self) -> u64 {
        self.store.bytes()
    }

    /// Stores a message and parks it; its key. `None` (logged) when its side file cannot
    /// take it: it stays where it is.
    fn put(&mut self, message: &Message, ids: &[CarrierMessageId], at: ParkAt) -> Option<EntryKey> {
        self.scratch.clear();
        crate::park::encode(at.resumable, message, ids, &mut self.scratch);
        let location = match self.store.put(&self.scratch) {
            Ok(location) => location,
            Err(error) => {
                tracing::warn!(%error, "parking a message failed: it stays in memory");
                return None;
            }
        };
        let parts = message.segments();
        let mut flags = 0;
        if at.possible_duplicate {
            flags |= Parked::DUPLICATE;
        }
        if parts > 1 {
            flags |= Parked::MULTIPART;
        }
        let until_s = seconds(at.until, true);
        let key = self.table.insert(Parked::new(
            message.id(),
            location,
            until_s,
            at.carrier,
            flags,
        ));
        if parts > 1 {
            let mut multipart = Multipart::new(parts);
            multipart.delivered = at.delivered;
            self.multipart.insert(key, multipart);
        }
        Some(key)
    }
}

/// Where a message being parked stands.
struct ParkAt {
    carrier: CarrierSlot,
    /// Waiting for receipts ends then.
    until: Nanos,
    possible_duplicate: bool,
    /// Parts delivered already.
    delivered: [u64; 4],
    resumable: Resumable,
}

impl<C: Carrier> Dispatcher<C> {
    /// Entry `key` started waiting for its receipts: parked if still waiting after
    /// [`PARK_AFTER`].
    pub(super) fn awaiting_since(&mut self, key: EntryKey, now: Nanos) {
        if let Some(parking) = &mut self.parking {
            parking.waiting.push_back((now, key));
        }
    }

    /// Tells the router's handle how many messages are parked and how many ids await their
    /// receipts (once a turn).
    pub(super) fn publish_stats(&self) {
        let shared = &self.shared;
        if let Some(parking) = &self.parking {
            shared
                .parked_messages
                .store(parking.live(), Ordering::Relaxed);
        }
        (shared.receipts_pending).store(self.dlr.len(), Ordering::Relaxed);
        (shared.receipts_unknown).store(self.dlr.unknown, Ordering::Relaxed);
    }

    /// On the tick: parks what has waited long enough, takes up parked messages whose
    /// receipts are overdue, and evacuates mostly empty side files.
    pub(super) fn park_turn(&mut self, now: Nanos) {
        let Some(parking) = &mut self.parking else {
            return;
        };
        let mut due = Vec::new();
        while let Some(&(since, key)) = parking.waiting.front() {
            if since.saturating_add(PARK_AFTER) > now {
                break;
            }
            parking.waiting.pop_front();
            due.push(key);
        }
        for key in due {
            self.park(key);
        }
        self.sweep(now);
    }

    /// Parks entry `key` if all it does is wait for receipts.
    fn park(&mut self, key: EntryKey) {
        let Some(parking) = &mut self.parking else {
            return;
        };
        let Some(entry) = self.slab.get_mut(key) else {
            return;
        };
        let Some((carrier, attempt, until)) = entry.delivery.awaiting_receipt() else {
            return;
        };
        if entry.in_flight.is_some()
            || entry.lane.is_some()
            || entry.carrier_ids.is_empty()
            || entry.ids_carrier != carrier
        {
            return;
        }
        let d = &entry.delivery;
        let at = ParkAt {
            carrier,
            until,
            possible_duplicate: d.possible_duplicate(),
            delivered: d.delivered_parts(),
            resumable: Resumable {
                sent_at: d.history().last().map_or(0, |a| a.at),
                deadline: d.deadline(),
                attempt,
                attempts: d.attempts(),
            },
        };
        let Some(parked_key) = parking.put(&entry.message, &entry.carrier_ids, at) else {
            return;
        };
        let (dlr, ids) = (&mut self.dlr, &entry.carrier_ids);
        dlr.retarget_all(carrier, ids, key, parked_key, attempt);
        self.slab.remove(key);
        let counters = &self.shared.counters;
        counters.outstanding.fetch_sub(1, Ordering::AcqRel);
        counters.announce_room();
    }

    /// A message recovered awaiting receipts under `ids`: parked at once (it never holds an
    /// outstanding slot after the restart). `false`, changing nothing, when it cannot be.
    pub(super) fn park_recovered(
        &mut self,
        message: &Message,
        carrier: CarrierSlot,
        until: Nanos,
        flagged: bool,
        resumable: Resumable,
        (ids, delivered): (&[Box<str>], &[u32]),
    ) -> bool {
        let Some(parking) = &mut self.parking else {
            return false;
        };
        if ids.is_empty() {
            return false;
        }
        let carrier_ids: Vec<CarrierMessageId> =
            ids.iter().map(|id| CarrierMessageId::new(id)).collect();
        let mut parts = Multipart::new(message.segments());
        for &part in delivered {
            parts.deliver(part);
        }
        let at = ParkAt {
            carrier,
            until,
            possible_duplicate: flagged,
            delivered: parts.delivered,
            resumable,
        };
        let Some(key) = parking.put(message, &carrier_ids, at) else {
            return false;
        };
        // Counted as outstanding when recovery began.
        self.shared
            .counters
            .outstanding
            .fetch_sub(1, Ordering::AcqRel);
        super::inputs::announce_waiting(&self.shared, &self.slots, carrier, &carrier_ids);
        let early = self
            .dlr
            .expect_all(carrier, &carrier_ids, key, resumable.attempt);
        // Delivered parts wait for nothing more (as when their receipts came).
        for &part in delivered {
            if let Some(id) = ids.get(part as usize) {
                self.dlr.forget(carrier, id, key);
            }
        }
        let now = self.shared.now();
        for matched in early {
            self.receipt(matched, ReceiptAck::none(), now);
        }
        true
    }

    /// Takes up parked message `key` again: in memory, waiting for the same attempt's
    /// receipts with the parts delivered so far (and `deliver`, a part whose delivered
    /// receipt came now). `for_receipt`: a receipt takes it up, so waiting has not ended even
    /// if the receipt waited for room past the timeout. Receipts held for room under the old
    /// key follow it to the new one.
    fn unpark(
        &mut self,
        key: EntryKey,
        now: Nanos,
        deliver: Option<u32>,
        for_receipt: bool,
    ) -> Unparked {
        // A slot first, reserved before anything changes (gateway threads take slots at the
        // same time). Taking messages up may go past `max_outstanding`, which only bounds
        // what submits bring in, by half of it, so submits never starve their receipts.
        let counters = &self.shared.counters;
        let max = self.shared.options.max_outstanding;
        if counters.outstanding.fetch_add(1, Ordering::AcqRel) >= max.saturating_add(max / 2) {
            counters.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Unparked::NoRoom;
        }
        let Some(parking) = &mut self.parking else {
            counters.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Unparked::Unreadable;
        };
        let Some(parked) = parking.table.get(key).copied() else {
            counters.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Unparked::Unreadable;
        };
        let read = parking.store.get(parked.at()).ok();
        let Some((resumable, message, ids)) = read.as_deref().and_then(crate::park::decode) else {
            counters.outstanding.fetch_sub(1, Ordering::AcqRel);
            // Its slot is never used again, so a late receipt for it stays unknown.
            parking.table.retire(key);
            parking.multipart.remove(&key);
            tracing::error!(id = %parked.id, "a parked message could not be read back: it \
                stays unfinished in the journal until the next start");
            return Unparked::Unreadable;
        };
        parking.table.remove(key);
        parking.store.release(parked.at());
        let mut parts =
            (parking.multipart.remove(&key)).unwrap_or_else(|| Multipart::new(message.segments()));
        if let Some(part) = deliver {
            parts.deliver(part);
        }
        let until = u64::from(parked.until_s) * 1_000_000_000;
        let message = Arc::new(message);
        let candidates = self.route_again(&message);
        let attempt = resumable.attempt;
        let request = DeliveryRequest {
            id: message.id(),
            parts: message.segments(),
            candidates,
            receipt: true,
            validity: None,
            not_before: None,
        };
        let (mut delivery, mut actions) = Delivery::resume(
            request,
            self.policy,
            now,
            Recovery {
                deadline: resumable.deadline,
                attempts: resumable.attempts,
                possible_duplicate: parked.flags & Parked::DUPLICATE != 0,
                at: Resume::AwaitingReceipt {
                    carrier: parked.carrier,
                    attempt,
                    until: if for_receipt {
                        until.max(now.saturating_add(1))
                    } else {
                        until
                    },
                    sent_at: Some(resumable.sent_at),
                },
            },
            &mut self.budgets[..],
        );
        for part in 0..message.segments() {
            if parts.delivered(part) {
                let more = delivery.handle_receipt(
                    attempt,
                    part,
                    ReceiptStatus::Delivered,
                    now,
                    &mut self.budgets[..],
                );
                actions.extend(more);
            }
        }
        let mut entry = Entry::new(delivery, message, u64::MAX, None);
        entry.priority = self.priority_of(&entry.message);
        entry.ids_carrier = parked.carrier;
        entry.carrier_ids = ids.into_iter().collect();
        let new_key = self.slab.insert(entry);
        if let Some(entry) = self.slab.get(new_key) {
            let dlr = &mut self.dlr;
            dlr.retarget_all(parked.carrier, &entry.carrier_ids, key, new_key, attempt);
        }
        self.awaiting_since(new_key, now);
        for (held, _) in self
            .deferred
            .iter_mut()
            .filter(|(m, _)| m.target.key == key)
        {
            held.target.key = new_key;
        }
        self.apply(new_key, actions, now);
        Unparked::Taken(new_key)
    }

    /// A receipt for a parked message. Returns it back when it must wait for room to take
    /// the message up.
    pub(super) fn parked_receipt(&mut self, matched: Matched, now: Nanos) -> ParkedReceipt {
        let t = matched.target;
        let Some(parking) = self.parking.as_mut() else {
            return ParkedReceipt::Unrecorded;
        };
        let Some(parked) = parking.table.get(t.key).copied() else {
            if parking.table.retired(t.key) {
                // Its message could not be read back: it waits in the journal for the next
                // start, where this receipt must find it again.
                return ParkedReceipt::Unrecorded;
            }
            self.dlr.unknown += 1;
            return ParkedReceipt::Handled;
        };
        let deliver = match matched.status {
            ReceiptStatus::Intermediate => {
                self.count_late(parked.carrier, matched.status);
                return ParkedReceipt::Handled;
            }
            ReceiptStatus::Delivered if parked.flags & Parked::MULTIPART != 0 => {
                let Some(parts) = parking.multipart.get_mut(&t.key) else {
                    return ParkedReceipt::Unrecorded;
                };
                if !parts.completed_by(t.part) {
                    if !parts.delivered(t.part) {
                        parts.deliver(t.part);
                        if let Some(journal) = &mut self.journal {
                            journal.part_delivered(parked.id, t.part);
                        }
                    }
                    self.count_late(parked.carrier, matched.status);
                    return ParkedReceipt::Handled;
                }
                // The last part: taking it up with it finishes it.
                Some(t.part)
            }
            _ => None,
        };
        let key = match self.unpark(t.key, now, deliver, true) {
            Unparked::NoRoom => return ParkedReceipt::NoRoom(matched),
            Unparked::Unreadable => return ParkedReceipt::Unrecorded,
            Unparked::Taken(key) => key,
        };
        if deliver.is_some() {
            // Taken up with its last part delivered: finished already.
            self.count_late(parked.carrier, matched.status);
        } else {
            // In memory again: the receipt goes the way of every other.
            self.counts.receipts_late += 1;
            let target = Target { key, ..t };
            self.receipt(Matched { target, ..matched }, ReceiptAck::none(), now);
        }
        ParkedReceipt::Handled
    }

    /// Counts a receipt matched to a parked message.
    fn count_late(&mut self, carrier: CarrierSlot, status: ReceiptStatus) {
        self.carriers[carrier.get()].counts.receipts[status.index()] += 1;
        self.counts.receipts_late += 1;
    }

    /// Tries the receipts that waited for room again, oldest first; whether any went.
    pub(super) fn retry_deferred(&mut self, now: Nanos) -> bool {
        let mut worked = false;
        // In place: taking one message up moves the other receipts held for it to its new key.
        while let Some(&(matched, _)) = self.deferred.front() {
            if !matched.target.key.is_parked() {
                // Taken up meanwhile (another receipt, the sweep): it is in memory.
                let (_, ack) = self.deferred.pop_front().expect("the front");
                self.receipt(matched, ack, now);
            } else {
                match self.parked_receipt(matched, now) {
                    // Still no room: the rest wait too.
                    ParkedReceipt::NoRoom(_) => break,
                    // Handled (it stayed in front meanwhile; only keys change).
                    ParkedReceipt::Handled => {
                        let (_, ack) = self.deferred.pop_front().expect("the front");
                        self.receipt_done(ack);
                    }
                    // Dropped unanswered: "not taken" (offered again, found the same way).
                    ParkedReceipt::Unrecorded => {
                        self.dlr.restore(&matched);
                        drop(self.deferred.pop_front());
                    }
                }
            }
            worked = true;
        }
        worked
    }

    /// Part of a pass over the parked messages: overdue ones are taken up (and turn `sent`),
    /// ones in a side file being evacuated are copied to the newest.
    fn sweep(&mut self, now: Nanos) {
        let now_s = seconds(now, false);
        let Some(parking) = &mut self.parking else {
            return;
        };
        let end = parking.table.capacity();
        let (from, to) = (
            parking.sweep_at,
            (parking.sweep_at + SWEEP_PER_TICK).min(end),
        );
        let mut overdue = Vec::new();
        for index in from..to {
            let Some((key, parked)) = parking.table.at(index) else {
                continue;
            };
            if parked.until_s <= now_s {
                overdue.push(key);
            } else if parking.store.evacuating(parked.at()) {
                let store = &mut parking.store;
                let moved = store.get(parked.at()).and_then(|bytes| store.put(&bytes));
                match moved {
                    Ok(at) => {
                        parking.store.release(parked.at());
                        if let Some(p) = parking.table.get_mut(key) {
                            p.moved_to(at);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "evacuating a parked message failed"),
                }
            }
        }
        parking.sweep_at = to;
        if to >= end {
            parking.sweep_at = 0;
            parking.store.plan_evacuation();
        }
        for key in overdue {
            // No room now: the next pass comes back to it.
            self.unpark(key, now, None, false);
        }
    }
}
