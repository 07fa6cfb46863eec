//! Parking (`docs/durability.md`): with a journal, a message that has waited
//! [`PARK_AFTER`] for its receipts leaves memory (the side files of [`crate::park`] keep its
//! bytes, a 48-byte record and its ids in the receipt map what finishing it takes) and stops
//! counting against `max_outstanding`. A final receipt, or the receipt timeout found by the
//! sweep, takes it up again: read back, resumed as after a restart at the same attempt, and
//! handed the receipt, so every rule about receipts stays in the state machine.

use std::collections::HashMap;

use smsroute_delivery::{ReceiptStatus, Recovery, Resume};

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
    /// Marks `part` delivered; whether every part now is.
    fn deliver(&mut self, part: u32) -> bool {
        if part < self.parts {
            self.delivered[(part / 64) as usize] |= 1 << (part % 64);
        }
        self.delivered.iter().map(|w| w.count_ones()).sum::<u32>() == self.parts
    }
}

/// The parked messages and what moves them.
pub(super) struct Parking {
    store: ParkStore,
    table: ParkedTable,
    /// Parked multipart messages: their parts, and those delivered.
    multipart: HashMap<EntryKey, Multipart, ahash::RandomState>,
    /// Messages that started waiting for receipts, oldest first, with when.
    waiting: VecDeque<(Nanos, EntryKey)>,
    /// Keys that changed (parked, taken up) this and the last purge period, for receipts
    /// matched under the old key and not yet handled.
    moved: [HashMap<EntryKey, EntryKey, ahash::RandomState>; 2],
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
            moved: Default::default(),
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

    /// Receipts matched under an old key go to the new one.
    fn resolve(&self, key: EntryKey) -> EntryKey {
        let mut key = key;
        // A message may have moved twice within the window (parked, then taken up).
        for _ in 0..2 {
            match self.moved[0].get(&key).or_else(|| self.moved[1].get(&key)) {
                Some(next) => key = *next,
                None => break,
            }
        }
        key
    }

    fn moved(&mut self, from: EntryKey, to: EntryKey) {
        self.moved[0].insert(from, to);
    }

    /// Once a purge period: forgets moves older than the last period.
    pub fn age_moves(&mut self) {
        self.moved[1] = std::mem::take(&mut self.moved[0]);
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

    /// The key a matched receipt's message has now.
    pub(super) fn current_key(&self, key: EntryKey) -> EntryKey {
        self.parking.as_ref().map_or(key, |p| p.resolve(key))
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
        parking.moved(key, parked_key);
        self.shared
            .parked_messages
            .store(parking.live(), Ordering::Relaxed);
        self.slab.remove(key);
        let counters = &self.shared.counters;
        counters.outstanding.fetch_sub(1, Ordering::AcqRel);
        counters.announce_room();
    }

    /// Takes up parked message `key` again: in memory, waiting for the same attempt's
    /// receipts with the parts delivered so far; its new key. `None` (nothing changed) when
    /// there is no room for it yet (`max_outstanding`); also `None`, the message left in
    /// the journal for the next start, when its side file cannot be read.
    fn unpark(&mut self, key: EntryKey, now: Nanos) -> Option<EntryKey> {
        let counters = &self.shared.counters;
        if counters.outstanding.load(Ordering::Acquire) >= self.shared.options.max_outstanding {
            return None;
        }
        let parking = self.parking.as_mut()?;
        let parked = parking.table.remove(key)?;
        self.shared
            .parked_messages
            .store(parking.live(), Ordering::Relaxed);
        let delivered = parking
            .multipart
            .remove(&key)
            .map_or([0; 4], |m| m.delivered);
        let read = parking.store.get(parked.at());
        parking.store.release(parked.at());
        let Some((resumable, message, ids)) = read.ok().as_deref().and_then(crate::park::decode)
        else {
            tracing::error!(id = %parked.id, "a parked message could not be read back: it \
                stays unfinished in the journal until the next start");
            return None;
        };
        counters.outstanding.fetch_add(1, Ordering::AcqRel);
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
                    until: u64::from(parked.until_s) * 1_000_000_000,
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
            parking.moved(key, new_key);
            parking.waiting.push_back((now, new_key));
        }
        self.apply(new_key, actions, now);
        Some(new_key)
    }

    /// A receipt for a parked message. Returns it back when it must wait for room
    /// (`max_outstanding`) to take the message up.
    pub(super) fn parked_receipt(&mut self, matched: Matched, now: Nanos) -> Option<Matched> {
        let t = matched.target;
        let room = self.shared.counters.outstanding.load(Ordering::Acquire)
            < self.shared.options.max_outstanding;
        let parking = self.parking.as_mut()?;
        let Some(parked) = parking.table.get(t.key).copied() else {
            self.shared.dlr.unknown.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if matched.status.is_final() && !room {
            return Some(matched);
        }
        self.carriers[parked.carrier.get()].counts.receipts[matched.status.index()] += 1;
        self.counts.receipts_late += 1;
        match matched.status {
            ReceiptStatus::Intermediate => return None,
            ReceiptStatus::Delivered if parked.flags & Parked::MULTIPART != 0 => {
                let all = parking
                    .multipart
                    .get_mut(&t.key)
                    .is_none_or(|m| m.deliver(t.part));
                if all {
                    // The last part: taking it up finishes it.
                    self.unpark(t.key, now);
                }
                return None;
            }
            _ => {}
        }
        if let Some(key) = self.unpark(t.key, now)
            && let Some(entry) = self.slab.get_mut(key)
        {
            if let Some(attempt) = entry.delivery.history().last() {
                self.carriers[parked.carrier.get()]
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
            self.apply(key, actions, now);
        }
        None
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
            self.unpark(key, now);
        }
    }
}
