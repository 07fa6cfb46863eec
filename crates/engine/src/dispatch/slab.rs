//! The dispatcher's messages in flight and its timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use smsroute_delivery::{Delivery, Nanos};
use smsroute_types::CarrierSlot;
use smsroute_types::Message;
use tokio::task::AbortHandle;

use crate::dlr::EntryKey;

/// A submit on its way to a carrier.
pub(crate) struct InFlight {
    pub carrier: CarrierSlot,
    pub attempt: u32,
    pub started: Nanos,
    /// The task awaiting the carrier's answer, when it did not answer at once.
    pub task: Option<AbortHandle>,
}

/// One accepted message.
pub(crate) struct Entry {
    pub delivery: Delivery,
    pub message: Arc<Message>,
    /// The wake-up the delivery asked for (`u64::MAX`: none).
    pub wake_at: Nanos,
    /// Queued in this carrier's lane, waiting for its window and bucket.
    pub lane: Option<CarrierSlot>,
    pub in_flight: Option<InFlight>,
    /// The suppression list's generation it was last checked at.
    pub checked: u64,
    /// What its account paid, when it names one.
    pub charge: Option<Box<crate::shared::Charge>>,
    /// The carrier's ids of the last attempt a carrier accepted.
    pub carrier_ids: smallvec::SmallVec<[smsroute_types::CarrierMessageId; 1]>,
    /// The carrier that gave them.
    pub ids_carrier: CarrierSlot,
    /// Its priority level (its class's): which of the lane's queues it waits in.
    pub priority: u8,
}

impl Entry {
    /// A message just taken up: no wake-up, not in a lane, nothing in flight, no carrier ids.
    pub fn new(
        delivery: Delivery,
        message: Arc<Message>,
        checked: u64,
        charge: Option<Box<crate::shared::Charge>>,
    ) -> Entry {
        Entry {
            delivery,
            message,
            wake_at: Nanos::MAX,
            lane: None,
            in_flight: None,
            checked,
            charge,
            carrier_ids: smallvec::SmallVec::new(),
            ids_carrier: CarrierSlot(0),
            priority: smsroute_config::DEFAULT_PRIORITY,
        }
    }
}

struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// Entries by index, reused through a free list; a key carries the slot's generation, so a
/// late answer for a finished message never reaches the next one in the same slot.
#[derive(Default)]
pub(crate) struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

pub(crate) fn key(index: u32, generation: u32) -> EntryKey {
    EntryKey((u64::from(index) << 32) | u64::from(generation))
}

fn split(key: EntryKey) -> (usize, u32) {
    ((key.0 >> 32) as usize, key.0 as u32)
}

impl Slab {
    pub fn insert(&mut self, entry: Entry) -> EntryKey {
        self.live += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.entry = Some(entry);
                key(index, slot.generation)
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: Some(entry),
                });
                key(self.slots.len() as u32 - 1, 0)
            }
        }
    }

    pub fn get(&self, key: EntryKey) -> Option<&Entry> {
        let (index, generation) = split(key);
        let slot = self.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.as_ref()
    }

    pub fn get_mut(&mut self, key: EntryKey) -> Option<&mut Entry> {
        let (index, generation) = split(key);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.as_mut()
    }

    pub fn remove(&mut self, key: EntryKey) -> Option<Entry> {
        let (index, generation) = split(key);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.live -= 1;
        Some(entry)
    }

    /// Messages not yet terminal.
    pub fn live(&self) -> usize {
        self.live
    }

    /// The key of the first live entry `matches` (a scan: for rare lookups).
    pub fn find(&self, matches: impl Fn(&Entry) -> bool) -> Option<EntryKey> {
        self.slots.iter().enumerate().find_map(|(index, slot)| {
            slot.entry
                .as_ref()
                .filter(|e| matches(e))
                .map(|_| key(index as u32, slot.generation))
        })
    }

    /// Every live entry.
    pub fn drain(&mut self) -> impl Iterator<Item = Entry> + '_ {
        self.live = 0;
        self.free.clear();
        self.slots.drain(..).filter_map(|s| s.entry)
    }
}

/// What a timer wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Wake {
    /// A message (its key).
    Entry(EntryKey),
    /// A carrier's lane: its bucket will have tokens.
    Lane(u16),
    /// Housekeeping.
    Tick,
}

/// A min-heap of wake-ups. Cancelled ones are left in place and skipped when they come up
/// (the owner checks them against what it expects); when they outnumber the live ones the heap
/// is rebuilt, so its size stays within a constant factor of the live wake-ups.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Nanos, Wake)>>,
}

impl Timers {
    pub fn push(&mut self, at: Nanos, wake: Wake) {
        self.heap.push(Reverse((at, wake)));
    }

    /// The earliest wake-up.
    pub fn next(&self) -> Option<Nanos> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest wake-up due by `now`.
    pub fn pop_due(&mut self, now: Nanos) -> Option<(Nanos, Wake)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps only the wake-ups `current` says are still wanted.
    pub fn compact(&mut self, mut current: impl FnMut(Nanos, Wake) -> bool) {
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_vec()
            .into_iter()
            .filter(|Reverse((at, wake))| current(*at, *wake))
            .collect();
    }
}
