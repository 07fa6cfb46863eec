//! Parking (`docs/durability.md`): with a journal, a message that has waited
//! [`PARK_AFTER`] for its receipts leaves memory (the side files of [`crate::park`] keep its
//! bytes, a 48-byte record and its ids in the receipt map what finishing it takes) and stops
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
    /// Marks `part` delivered.
    fn deliver(&mut self, part: u32) {
        if part < self.parts.min(256) {
            self.delivered[(part / 64) as usize] |= 1 << (part % 64);
        }
    }

    /// Whether `part`'s delivery would make every part delivered.
    fn completed_by(&self, part: u32) -> bool {
        let mut after = *self;
        after.deliver(part);
        after.delivered.iter().map(|w| w.count_ones()).sum::<u32>() == self.parts
    }
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
        (0..self.table.capacity()).filter_map(|i| {
            let key = self.table.key_at(i)?;
            self.table.get(key).map(|p| p.id)
        })
    }

    /// The side files' bytes and count.
    pub fn disk(&self) -> (u64, usize) {
        (self.store.bytes(), self.store.files())
    }
}

impl<C: Carrier> Dispatcher<C> {
    /// Entry `key` started waiting for its receipts: parked if still waiting after
    /// [`PARK_AFTER`].
    pub(super) fn awaiting_since(&mut self, key: EntryKey, now: Nanos) {
        if let Some(parking) = &mut self.parking {
            parking.waiting.push_back((now, key));
        }
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
        let parts = entry.message.segments();
        if entry.in_flight.is_some()
            || entry.lane.is_some()
            || entry.carrier_ids.is_empty()
            || entry.ids_carrier != carrier
        {
            return;
        }
        let d = &entry.delivery;
        let resumable = Resumable {
            sent_at: d.history().last().map_or(0, |a| a.at),
            deadline: d.deadline(),
            attempt,
            attempts: d.attempts(),
        };
        parking.scratch.clear();
        crate::park::encode(
            resumable,
            &entry.message,
            &entry.carrier_ids,
            &mut parking.scratch,
        );
        let at = match parking.store.put(&parking.scratch) {
            Ok(at) => at,
            Err(error) => {
                tracing::warn!(%error, "parking a message failed: it stays in memory");
                return;
            }
        };
        let mut flags = 0;
        if d.possible_duplicate() {
            flags |= Parked::DUPLICATE;
        }
        if parts > 1 {
            flags |= Parked::MULTIPART;
        }
        let parked = Parked::new(d.id(), at, seconds(until, true), carrier, flags);
        let delivered = d.delivered_parts();
        let parked_key = parking.table.insert(parked);
        if parts > 1 {
            parking
                .multipart
                .insert(parked_key, Multipart { parts, delivered });
        }
        for (part, id) in entry.carrier_ids.iter().enumerate() {
            let to = Target {
                key: parked_key,
                attempt,
                part: part as u32,
            };
            self.shared.dlr.retarget(carrier, id.as_str(), key, to);
        }
        self.shared
            .parked_messages
            .store(parking.live(), Ordering::Relaxed);
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
        ids: &[Box<str>],
    ) -> bool {
        let Some(parking) = &mut self.parking else {
            return false;
        };
        if ids.is_empty() {
            return false;
        }
        let carrier_ids: Vec<CarrierMessageId> =
            ids.iter().map(|id| CarrierMessageId::new(id)).collect();
        parking.scratch.clear();
        crate::park::encode(resumable, message, &carrier_ids, &mut parking.scratch);
        let Ok(at) = parking.store.put(&parking.scratch) else {
            return false;
        };
        let parts = message.segments();
        let mut flags = 0;
        if flagged {
            flags |= Parked::DUPLICATE;
        }
        if parts > 1 {
            flags |= Parked::MULTIPART;
        }
        let key = parking.table.insert(Parked::new(
            message.id(),
            at,
            seconds(until, true),
            carrier,
            flags,
        ));
        if parts > 1 {
            let delivered = [0; 4];
            parking
                .multipart
                .insert(key, Multipart { parts, delivered });
        }
        self.shared
            .parked_messages
            .store(parking.live(), Ordering::Relaxed);
        // Counted as outstanding when recovery began.
        self.shared
            .counters
            .outstanding
            .fetch_sub(1, Ordering::AcqRel);
        let now = self.shared.now();
        // Every id registered before any early receipt is applied (one may take it up).
        let mut early = Vec::new();
        for (part, id) in ids.iter().enumerate() {
            let target = Target {
                key,
                attempt: resumable.attempt,
                part: part as u32,
            };
            if let Some(status) = self.shared.dlr.expect(carrier, id, target) {
                early.push(Matched { target, status });
            }
        }
        for matched in early {
            self.receipt(matched, now);
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
        let read = self.parking.as_mut().and_then(|parking| {
            let parked = *parking.table.get(key)?;
            let bytes = parking.store.get(parked.at());
            Some((parked, bytes.ok().as_deref().and_then(crate::park::decode)))
        });
        let Some((parked, Some((resumable, message, ids)))) = read else {
            counters.outstanding.fetch_sub(1, Ordering::AcqRel);
            if let Some((parked, None)) = read
                && let Some(parking) = &mut self.parking
            {
                // Its slot is never used again, so a late receipt for it stays unknown.
                parking.table.retire(key);
                parking.multipart.remove(&key);
                self.shared
                    .parked_messages
                    .store(parking.live(), Ordering::Relaxed);
                tracing::error!(id = %parked.id, "a parked message could not be read back: \
                    it stays unfinished in the journal until the next start");
            }
            return Unparked::Unreadable;
        };
        let Some(parking) = &mut self.parking else {
            return Unparked::Unreadable;
        };
        parking.table.remove(key);
        parking.store.release(parked.at());
        self.shared
            .parked_messages
            .store(parking.live(), Ordering::Relaxed);
        let mut delivered = parking
            .multipart
            .remove(&key)
            .map_or([0; 4], |m| m.delivered);
        let until = u64::from(parked.until_s) * 1_000_000_000;
        if let Some(part) = deliver.filter(|p| *p < 256) {
            delivered[(part / 64) as usize] |= 1 << (part % 64);
        }
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
            if delivered[(part / 64) as usize] & (1 << (part % 64)) != 0 {
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
        entry.ids_carrier = parked.carrier;
        let new_key = self.slab.insert(entry);
        for (part, id) in ids.iter().enumerate() {
            let to = Target {
                key: new_key,
                attempt,
                part: part as u32,
            };
            self.shared
                .dlr
                .retarget(parked.carrier, id.as_str(), key, to);
        }
        if let Some(entry) = self.slab.get_mut(new_key) {
            entry.carrier_ids = ids.into_iter().collect();
        }
        if let Some(parking) = &mut self.parking {
            parking.waiting.push_back((now, new_key));
        }
        for held in self.deferred.iter_mut().filter(|m| m.target.key == key) {
            held.target.key = new_key;
        }
        self.apply(new_key, actions, now);
        Unparked::Taken(new_key)
    }

    /// A receipt for a parked message. Returns it back when it must wait for room to take
    /// the message up.
    pub(super) fn parked_receipt(&mut self, matched: Matched, now: Nanos) -> Option<Matched> {
        let t = matched.target;
        let parking = self.parking.as_mut()?;
        let Some(parked) = parking.table.get(t.key).copied() else {
            self.shared.dlr.unknown.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let deliver = match matched.status {
            ReceiptStatus::Intermediate => {
                self.count_late(parked.carrier, matched.status);
                return None;
            }
            ReceiptStatus::Delivered if parked.flags & Parked::MULTIPART != 0 => {
                let parts = parking.multipart.get_mut(&t.key)?;
                if !parts.completed_by(t.part) {
                    parts.deliver(t.part);
                    self.count_late(parked.carrier, matched.status);
                    return None;
                }
                // The last part: taking it up with it finishes it.
                Some(t.part)
            }
            _ => None,
        };
        let key = match self.unpark(t.key, now, deliver, true) {
            Unparked::NoRoom => return Some(matched),
            Unparked::Unreadable => return None,
            Unparked::Taken(key) => key,
        };
        if deliver.is_some() {
            // Taken up with its last part delivered: finished already.
            self.count_late(parked.carrier, matched.status);
        } else {
            // In memory again: the receipt goes the way of every other.
            self.counts.receipts_late += 1;
            let target = Target { key, ..t };
            self.receipt(Matched { target, ..matched }, now);
        }
        None
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
        while let Some(&matched) = self.deferred.front() {
            if !matched.target.key.is_parked() {
                // Taken up meanwhile (another receipt, the sweep): it is in memory.
                self.deferred.pop_front();
                self.receipt(matched, now);
            } else if self.parked_receipt(matched, now).is_some() {
                // Still no room: the rest wait too.
                break;
            } else {
                // Handled (it stayed in front meanwhile; only keys change).
                self.deferred.pop_front();
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
            let Some(key) = parking.table.key_at(index) else {
                continue;
            };
            let parked = *parking.table.get(key).expect("live slot");
            if parked.until_s <= now_s {
                overdue.push(key);
            } else if parking.store.evacuating(parked.at()) {
                let moved = parking.store.get(parked.at()).and_then(|bytes| {
                    let at = parking.store.put(&bytes)?;
                    Ok(at)
                });
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
