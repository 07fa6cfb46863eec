//! Delivery-receipt correlation: carrier message id → the attempt and part it belongs to.
//!
//! The dispatcher registers each part's id when the carrier accepts a submit and matches each
//! receipt as it takes it from the carriers' pumps, so a receipt always finds its message
//! where it is at that moment (in memory, or parked out of it). The map is the
//! dispatcher's own (no lock); the router's handle reads its figures as the dispatcher
//! publishes them each turn. A receipt can beat its submit's answer (the
//! carrier's receipt and its response race), so an unknown id is held as an early receipt and
//! matched when the id is registered; early receipts expire after a short TTL (then they count
//! as unknown).
//!
//! Compact, because millions of messages may wait days for their receipts: an id is kept as
//! a 64-bit hash of the carrier and the id (keyed per process), 24 bytes an entry with the
//! part it points to; the id itself is not kept in memory. Two ids colliding on all 64 bits
//! (about one chance in 6·10¹² per receipt with 3 million waiting) would match a receipt to
//! the wrong part. A registered id stays until its final receipt comes or its owner stops
//! waiting and [`DlrMap::forget`]s it: there is no scan over the waiting ids.

use smallvec::SmallVec;
use smsroute_carrier::Receipt;
use smsroute_delivery::{Nanos, ReceiptStatus};
use smsroute_types::CarrierSlot;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// A message's place in the dispatcher: its slab index and that slot's generation, so a key
/// outliving its message never reaches the next one in the same slot. Keys of parked
/// messages (awaiting receipts out of memory, `dispatch::park`) have [`EntryKey::PARKED`] set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EntryKey(pub u64);

impl EntryKey {
    /// Set on the keys of parked messages.
    pub const PARKED: u64 = 1 << 63;

    pub fn is_parked(self) -> bool {
        self.0 & Self::PARKED != 0
    }
}

/// Which part of which attempt a receipt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub key: EntryKey,
    pub attempt: u32,
    pub part: u32,
}

/// A receipt matched to its part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Matched {
    pub target: Target,
    pub status: ReceiptStatus,
    /// The id's key in the map ([`DlrMap::restore`]).
    pub hash: u64,
}

/// Final receipt statuses, by their place in an early receipt.
const STATUSES: [ReceiptStatus; 4] = [
    ReceiptStatus::Delivered,
    ReceiptStatus::Undeliverable,
    ReceiptStatus::Rejected,
    ReceiptStatus::Expired,
];

/// A map value: a registered part, or a receipt that came before its id was registered.
/// Packed in a [`Target`]'s 16 bytes (attempts count from 1, so attempt 0 marks an early
/// receipt: `key` holds its expiry, `part` its status).
#[derive(Clone, Copy, Debug)]
struct Pending(Target);

impl Pending {
    fn early(status: ReceiptStatus, expires: Nanos) -> Pending {
        Pending(Target {
            key: EntryKey(expires),
            attempt: 0,
            part: STATUSES.iter().position(|s| *s == status).unwrap_or(0) as u32,
        })
    }

    /// The part waiting, when this is one.
    fn awaiting(self) -> Option<Target> {
        (self.0.attempt != 0).then_some(self.0)
    }

    /// The early receipt's status and expiry, when this is one.
    fn early_receipt(self) -> Option<(ReceiptStatus, Nanos)> {
        let status = STATUSES.get(self.0.part as usize).copied();
        (self.0.attempt == 0).then(|| (status.unwrap_or(ReceiptStatus::Delivered), self.0.key.0))
    }
}

/// The correlation map.
#[derive(Debug, Default)]
pub(crate) struct DlrMap {
    /// Ids (hashed) → the part waiting, or an early receipt.
    map: HashMap<u64, Pending, ahash::RandomState>,
    /// Keys the ids' hashes (one per process: the map is rebuilt at each start).
    hasher: ahash::RandomState,
    /// Early receipts held.
    early: usize,
    /// Receipts for ids never registered (or no longer waited for).
    pub unknown: u64,
}

impl DlrMap {
    fn hash(&self, carrier: CarrierSlot, id: &str) -> u64 {
        self.hasher.hash_one((carrier.0, id))
    }

    /// Registers a part's id; a receipt that came early is returned to apply now.
    pub fn expect(
        &mut self,
        carrier: CarrierSlot,
        id: &str,
        target: Target,
    ) -> Option<ReceiptStatus> {
        // Attempts count from 1; attempt 0 would read as an early receipt.
        let target = Target {
            attempt: target.attempt.max(1),
            ..target
        };
        match self.map.entry(self.hash(carrier, id)) {
            Entry::Occupied(mut o) => match o.get().early_receipt() {
                Some((status, _)) => {
                    o.remove();
                    self.early -= 1;
                    Some(status)
                }
                None => {
                    // The carrier reused an id: the newer submit owns it.
                    o.insert(Pending(target));
                    None
                }
            },
            Entry::Vacant(v) => {
                v.insert(Pending(target));
                None
            }
        }
    }

    /// The owner `key` stops waiting for `id` (finished, moved on to another attempt).
    pub fn forget(&mut self, carrier: CarrierSlot, id: &str, key: EntryKey) {
        let hash = self.hash(carrier, id);
        if let Entry::Occupied(o) = self.map.entry(hash)
            && o.get().awaiting().is_some_and(|t| t.key == key)
        {
            o.remove();
        }
    }

    /// Points `id`, if `from` still waits for it, at `to` (the message moved in or out of
    /// memory). Returns whether it did.
    pub fn retarget(&mut self, carrier: CarrierSlot, id: &str, from: EntryKey, to: Target) -> bool {
        let hash = self.hash(carrier, id);
        match self.map.get_mut(&hash) {
            Some(p) if p.awaiting().is_some_and(|t| t.key == from) => {
                *p = Pending(to);
                true
            }
            _ => false,
        }
    }

    /// Points every part's id (`ids`, in part order) that `from` still waits for at the same
    /// part of attempt `attempt` under `to`.
    pub fn retarget_all(
        &mut self,
        carrier: CarrierSlot,
        ids: &[impl AsRef<str>],
        from: EntryKey,
        to: EntryKey,
        attempt: u32,
    ) {
        for (part, id) in ids.iter().enumerate() {
            let target = Target {
                key: to,
                attempt,
                part: part as u32,
            };
            self.retarget(carrier, id.as_ref(), from, target);
        }
    }

    /// Registers every part's id (`ids`, in part order) of attempt `attempt` of entry `key`;
    /// the receipts that came early, to apply now.
    pub fn expect_all(
        &mut self,
        carrier: CarrierSlot,
        ids: &[impl AsRef<str>],
        key: EntryKey,
        attempt: u32,
    ) -> SmallVec<[Matched; 1]> {
        let mut early = SmallVec::new();
        for (part, id) in ids.iter().enumerate() {
            let target = Target {
                key,
                attempt,
                part: part as u32,
            };
            if let Some(status) = self.expect(carrier, id.as_ref(), target) {
                let hash = self.hash(carrier, id.as_ref());
                early.push(Matched {
                    target,
                    status,
                    hash,
                });
            }
        }
        early
    }

    /// A receipt arrived from `carrier`: its part, or `None` when it was held as early.
    /// Intermediate receipts (ENROUTE, ACCEPTD) leave the part waiting for its final one.
    pub fn arrive(
        &mut self,
        carrier: CarrierSlot,
        receipt: Receipt,
        now: Nanos,
        early_ttl: Nanos,
    ) -> Option<Matched> {
        let key = self.hash(carrier, &receipt.message_id);
        let status = receipt.status;
        let intermediate = status == ReceiptStatus::Intermediate;
        match self.map.entry(key) {
            Entry::Occupied(mut o) => match o.get().awaiting() {
                Some(target) => {
                    if !intermediate {
                        o.remove();
                    }
                    Some(Matched {
                        target,
                        status,
                        hash: key,
                    })
                }
                None => {
                    // A second early receipt for the id: the later one is the newer news.
                    if !intermediate {
                        o.insert(Pending::early(status, now + early_ttl));
                    }
                    None
                }
            },
            Entry::Vacant(v) => {
                if !intermediate {
                    v.insert(Pending::early(status, now + early_ttl));
                    self.early += 1;
                }
                None
            }
        }
    }

    /// Waits again for the id of a receipt that matched but could not be taken (its carrier
    /// offers it again), unless something else took the id meanwhile.
    pub fn restore(&mut self, matched: &Matched) {
        self.map
            .entry(matched.hash)
            .or_insert(Pending(matched.target));
    }

    /// Drops early receipts past their TTL (they count as unknown). Walks the whole map, so
    /// it runs only while early receipts are held.
    pub fn purge(&mut self, now: Nanos) {
        if self.early == 0 {
            return;
        }
        let mut dropped = 0;
        self.map.retain(|_, p| match p.early_receipt() {
            Some((_, expires)) if expires <= now => {
                dropped += 1;
                false
            }
            _ => true,
        });
        self.early -= dropped;
        self.unknown += dropped as u64;
    }

    /// Ids waited for.
    pub fn len(&self) -> usize {
        self.map.len().saturating_sub(self.early)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, status: ReceiptStatus) -> Receipt {
        Receipt {
            message_id: id.into(),
            status,
            error: 0,
            possible_duplicate: false,
        }
    }

    const T: Target = Target {
        key: EntryKey(7),
        attempt: 2,
        part: 1,
    };

    #[test]
    fn matches_in_either_order_and_per_carrier() {
        let mut map = DlrMap::default();
        let (a, b) = (CarrierSlot(0), CarrierSlot(1));
        assert_eq!(map.expect(a, "m1", T), None);
        // Same id from another carrier is another message.
        assert_eq!(
            map.arrive(b, receipt("m1", ReceiptStatus::Delivered), 0, 10),
            None
        );
        assert_eq!(
            map.arrive(a, receipt("m1", ReceiptStatus::Delivered), 0, 10),
            Some(Matched {
                target: T,
                status: ReceiptStatus::Delivered,
                hash: map.hash(a, "m1"),
            })
        );
        // Early: held, then handed back when the id is registered.
        assert_eq!(map.expect(b, "m1", T), Some(ReceiptStatus::Delivered));
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn intermediate_receipts_keep_waiting_and_early_ones_expire() {
        let mut map = DlrMap::default();
        let a = CarrierSlot(0);
        map.expect(a, "m1", T);
        let r = map.arrive(a, receipt("m1", ReceiptStatus::Intermediate), 0, 10);
        assert_eq!(r.map(|m| m.status), Some(ReceiptStatus::Intermediate));
        assert_eq!(map.len(), 1);
        assert_eq!(
            map.arrive(a, receipt("zz", ReceiptStatus::Rejected), 50, 10),
            None
        );
        map.purge(59);
        assert_eq!(map.unknown, 0, "held until 60");
        map.purge(60);
        assert_eq!(map.unknown, 1, "the early one expired");
        assert_eq!(map.len(), 1, "a registered id does not expire");
        // Registered after it expired: nothing to apply.
        assert_eq!(map.expect(a, "zz", T), None);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn an_early_receipt_keeps_its_status() {
        let mut map = DlrMap::default();
        let a = CarrierSlot(3);
        for status in STATUSES {
            let id = format!("{status:?}");
            assert_eq!(map.arrive(a, receipt(&id, status), 0, 10), None);
            assert_eq!(map.expect(a, &id, T), Some(status));
        }
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn forget_and_retarget_only_touch_their_owner() {
        let mut map = DlrMap::default();
        let a = CarrierSlot(0);
        let other = Target {
            key: EntryKey(9),
            ..T
        };
        map.expect(a, "m1", T);
        map.forget(a, "m1", other.key);
        assert_eq!(map.len(), 1, "another owner's forget leaves it");
        assert!(!map.retarget(a, "m1", other.key, other));
        let parked = Target {
            key: EntryKey(EntryKey::PARKED | 5),
            ..T
        };
        assert!(map.retarget(a, "m1", T.key, parked));
        let m = map.arrive(a, receipt("m1", ReceiptStatus::Delivered), 0, 10);
        assert_eq!(m.map(|m| m.target), Some(parked));
        map.expect(a, "m2", T);
        map.forget(a, "m2", T.key);
        assert_eq!(map.len(), 0);
    }
}
