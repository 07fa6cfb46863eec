//! Messages parked out of memory while they wait for receipts (`docs/durability.md`).
//!
//! A message a carrier accepted that has waited a while for its receipts needs nothing in
//! memory but what routes its receipts: a [`Parked`] record of 24 bytes, and its ids in the
//! receipt map. The message itself and its carrier ids go to a side file on disk, read back
//! when a receipt or the receipt timeout takes it up again. The journal stays the record of
//! truth: side files are never synced, are removed at every start, and a crash loses nothing
//! in them that recovery does not rebuild from the journal.
//!
//! The side files are in `store`; this file has the record, the table of parked messages and
//! the bytes a parked message is kept as.

use std::borrow::Cow;

use smsroute_delivery::Nanos;
use smsroute_journal::Record;
use smsroute_types::{CarrierMessageId, CarrierSlot, Message, MessageId};

use crate::dlr::EntryKey;

mod store;

pub(crate) use store::{Location, ParkStore};

/// What a parked message keeps in memory (24 bytes): what routes its receipts and finds it
/// overdue. The rest of what taking it up needs is in its side file ([`Resumable`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parked {
    pub id: MessageId,
    offset: u32,
    /// Waiting ends as `Sent` at this second of the router clock.
    pub until_s: u32,
    file: u16,
    /// Set by the table (a stale key is one a receipt carried for milliseconds, so 16 bits
    /// of generation tell it apart).
    generation: u16,
    pub carrier: CarrierSlot,
    /// [`Parked::LIVE`], [`Parked::MULTIPART`], [`Parked::DUPLICATE`].
    pub flags: u8,
}

impl Parked {
    pub fn new(id: MessageId, at: Location, until_s: u32, carrier: CarrierSlot, flags: u8) -> Self {
        Parked {
            id,
            offset: at.offset,
            until_s,
            file: at.file,
            generation: 0,
            carrier,
            flags,
        }
    }

    /// Where its bytes are.
    pub fn at(&self) -> Location {
        Location {
            file: self.file,
            offset: self.offset,
        }
    }

    /// Its bytes moved.
    pub fn moved_to(&mut self, at: Location) {
        (self.file, self.offset) = (at.file, at.offset);
    }

    /// The slot holds a parked message.
    pub const LIVE: u8 = 1;
    /// More than one part: the dispatcher tracks which are delivered.
    pub const MULTIPART: u8 = 2;
    /// A submit may have reached a carrier twice.
    pub const DUPLICATE: u8 = 4;

    fn live(&self) -> bool {
        self.flags & Self::LIVE != 0
    }
}

/// What taking a parked message up needs besides its record, kept with it on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resumable {
    /// When the attempt was sent (router clock).
    pub sent_at: Nanos,
    /// When it expires (router clock); `Nanos::MAX`: never.
    pub deadline: Nanos,
    /// The attempt whose receipts it waits for.
    pub attempt: u32,
    /// Submits made so far.
    pub attempts: u32,
}

/// Router-clock nanoseconds as whole seconds, rounded up or down.
pub(crate) fn seconds(t: Nanos, up: bool) -> u32 {
    let s = t / 1_000_000_000 + u64::from(up && !t.is_multiple_of(1_000_000_000));
    s.min(u64::from(u32::MAX)) as u32
}

/// Parked messages by index; a key carries the slot's generation, as the dispatcher's slab.
#[derive(Default)]
pub(crate) struct ParkedTable {
    slots: Vec<Parked>,
    free: Vec<u32>,
    live: usize,
}

impl ParkedTable {
    pub fn insert(&mut self, mut parked: Parked) -> EntryKey {
        parked.flags |= Parked::LIVE;
        self.live += 1;
        let index = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                parked.generation = slot.generation;
                *slot = parked;
                index
            }
            None => {
                parked.generation = 0;
                self.slots.push(parked);
                self.slots.len() as u32 - 1
            }
        };
        key(index, u32::from(parked.generation))
    }

    pub fn get(&self, key: EntryKey) -> Option<&Parked> {
        let (index, generation) = split(key)?;
        self.slots
            .get(index)
            .filter(|p| p.live() && u32::from(p.generation) == generation)
    }

    pub fn get_mut(&mut self, key: EntryKey) -> Option<&mut Parked> {
        let (index, generation) = split(key)?;
        self.slots
            .get_mut(index)
            .filter(|p| p.live() && u32::from(p.generation) == generation)
    }

    pub fn remove(&mut self, key: EntryKey) -> Option<Parked> {
        let (index, generation) = split(key)?;
        let slot = self.slots.get_mut(index)?;
        if !slot.live() || u32::from(slot.generation) != generation {
            return None;
        }
        let parked = *slot;
        slot.flags = 0;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.live -= 1;
        Some(parked)
    }

    /// Whether `key`'s message was retired (its side file lost).
    pub fn retired(&self, key: EntryKey) -> bool {
        split(key).is_some_and(|(index, generation)| {
            self.slots
                .get(index)
                .is_some_and(|p| !p.live() && u32::from(p.generation) == generation)
        })
    }

    /// Frees `key`'s message without ever using its slot again (its side file was lost: a
    /// late receipt for it must find nothing).
    pub fn retire(&mut self, key: EntryKey) {
        if let Some(slot) = self.get_mut(key) {
            slot.flags = 0;
            self.live -= 1;
        }
    }

    /// The parked message in slot `index` and its key, if one is there.
    pub fn at(&self, index: usize) -> Option<(EntryKey, Parked)> {
        let p = *self.slots.get(index)?;
        p.live()
            .then(|| (key(index as u32, u32::from(p.generation)), p))
    }

    /// Slots, live or free (what a sweep walks).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Messages parked.
    pub fn live(&self) -> usize {
        self.live
    }
}

fn key(index: u32, generation: u32) -> EntryKey {
    EntryKey(EntryKey::PARKED | (u64::from(index) << 32) | u64::from(generation))
}

fn split(key: EntryKey) -> Option<(usize, u32)> {
    key.is_parked()
        .then_some((((key.0 & !EntryKey::PARKED) >> 32) as usize, key.0 as u32))
}

/// A parked message's bytes: what taking it up needs, the message as the journal records it,
/// then its carrier ids.
pub(crate) fn encode(
    resumable: Resumable,
    message: &Message,
    ids: &[CarrierMessageId],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&resumable.sent_at.to_le_bytes());
    out.extend_from_slice(&resumable.deadline.to_le_bytes());
    out.extend_from_slice(&resumable.attempt.to_le_bytes());
    out.extend_from_slice(&resumable.attempts.to_le_bytes());
    let record = Record::Accepted {
        message: Cow::Borrowed(message),
        at: 0,
    };
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    record.encode(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(ids.len() as u16).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
    }
}

/// Reads back what [`encode`] wrote; `None` if the bytes are damaged.
pub(crate) fn decode(bytes: &[u8]) -> Option<(Resumable, Message, Vec<CarrierMessageId>)> {
    let take = |at: &mut usize, n: usize| {
        let part = bytes.get(*at..*at + n)?;
        *at += n;
        Some(part)
    };
    let mut at = 0;
    let resumable = Resumable {
        sent_at: u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?),
        deadline: u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?),
        attempt: u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?),
        attempts: u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?),
    };
    let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?) as usize;
    let message = match Record::decode(take(&mut at, len)?).ok()? {
        Record::Accepted { message, .. } => message.into_owned(),
        _ => return None,
    };
    let count = u16::from_le_bytes(take(&mut at, 2)?.try_into().ok()?);
    let mut ids = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let n = u16::from_le_bytes(take(&mut at, 2)?.try_into().ok()?);
        let id = std::str::from_utf8(take(&mut at, usize::from(n))?).ok()?;
        ids.push(CarrierMessageId::new(id));
    }
    Some((resumable, message, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, text: &str) -> Message {
        let mut m = Message::builder("+4915112345678", "ACME", text)
            .client_ref("ref-1")
            .build()
            .expect("valid");
        m.set_id(MessageId(id));
        m
    }

    #[test]
    fn a_message_and_its_ids_read_back_as_they_were() {
        let m = message(42, "Grüße, 你好");
        let ids = [
            CarrierMessageId::new("abc-1"),
            CarrierMessageId::new("abc-2"),
        ];
        let resumable = Resumable {
            sent_at: 12_345,
            deadline: Nanos::MAX,
            attempt: 3,
            attempts: 4,
        };
        let mut bytes = Vec::new();
        encode(resumable, &m, &ids, &mut bytes);
        let (back_resumable, back, back_ids) = decode(&bytes).expect("decodes");
        assert_eq!(back_resumable, resumable);
        assert_eq!(back, m);
        assert_eq!(back_ids, ids);
        assert!(
            decode(&bytes[..bytes.len() - 1]).is_none(),
            "a cut id is damage"
        );
    }

    #[test]
    fn parked_keys_never_reach_a_later_message_in_the_same_slot() {
        let mut table = ParkedTable::default();
        let parked = Parked::new(
            MessageId(1),
            Location { file: 0, offset: 0 },
            10,
            CarrierSlot(0),
            0,
        );
        let a = table.insert(parked);
        assert!(a.is_parked());
        assert_eq!(table.remove(a).map(|p| p.id), Some(MessageId(1)));
        let b = table.insert(Parked {
            id: MessageId(2),
            ..parked
        });
        assert!(table.get_mut(a).is_none(), "the old key is stale");
        assert_eq!(table.get_mut(b).map(|p| p.id), Some(MessageId(2)));
        assert!(
            table.get_mut(EntryKey(0)).is_none(),
            "a memory key is not a parked one"
        );
        assert_eq!(table.live(), 1);
        assert_eq!(std::mem::size_of::<Parked>(), 24);
    }

    #[test]
    fn seconds_round_as_asked() {
        assert_eq!(seconds(1_500_000_000, true), 2);
        assert_eq!(seconds(1_500_000_000, false), 1);
        assert_eq!(seconds(2_000_000_000, true), 2);
        assert_eq!(seconds(u64::MAX, true), u32::MAX);
    }
}
