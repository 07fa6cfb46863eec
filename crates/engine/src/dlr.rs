//! Delivery-receipt correlation: carrier message id → the attempt and part it belongs to.
//!
//! A concurrent map, because two sides touch it at once: the dispatcher registers each part's
//! id when the carrier accepts a submit, and one receipt pump per carrier looks receipts up as
//! they arrive. A receipt can beat its submit's answer (the carrier's receipt and its
//! response race), so an unknown id is held as an early receipt and matched when the id is
//! registered. Entries expire: registered ids when the message stops waiting for receipts,
//! early receipts after a short TTL (then they count as unknown).

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use smsroute_carrier::Receipt;
use smsroute_delivery::{Nanos, ReceiptStatus};
use smsroute_types::CarrierSlot;

/// A message's place in the dispatcher: its slab index and that slot's generation, so a key
/// outliving its message never reaches the next one in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EntryKey(pub u64);

/// A carrier's message id, qualified by the carrier (ids are only unique per carrier).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct DlrKey {
    carrier: u16,
    id: Box<str>,
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    /// A part waits for its receipt.
    Awaiting { target: Target, expires: Nanos },
    /// A receipt came before the id was registered.
    Early {
        status: ReceiptStatus,
        expires: Nanos,
    },
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
}

/// The correlation map.
#[derive(Debug, Default)]
pub(crate) struct DlrMap {
    map: DashMap<DlrKey, Pending, ahash::RandomState>,
    /// Receipts for ids never registered (or registered too long ago).
    pub unknown: AtomicU64,
}

impl DlrMap {
    /// Registers a part's id; a receipt that came early is returned to apply now.
    pub fn expect(
        &self,
        carrier: CarrierSlot,
        id: Box<str>,
        target: Target,
        expires: Nanos,
    ) -> Option<ReceiptStatus> {
        let key = DlrKey {
            carrier: carrier.0,
            id,
        };
        match self.map.entry(key) {
            Entry::Occupied(mut o) => match *o.get() {
                Pending::Early { status, .. } => {
                    o.remove();
                    Some(status)
                }
                Pending::Awaiting { .. } => {
                    // The carrier reused an id: the newer submit owns it.
                    o.insert(Pending::Awaiting { target, expires });
                    None
                }
            },
            Entry::Vacant(v) => {
                v.insert(Pending::Awaiting { target, expires });
                None
            }
        }
    }

    /// A receipt arrived from `carrier`: its part, or `None` when it was held as early.
    /// Intermediate receipts (ENROUTE, ACCEPTD) leave the part waiting for its final one.
    pub fn arrive(
        &self,
        carrier: CarrierSlot,
        receipt: Receipt,
        now: Nanos,
        early_ttl: Nanos,
    ) -> Option<Matched> {
        let key = DlrKey {
            carrier: carrier.0,
            id: receipt.message_id,
        };
        let status = receipt.status;
        match self.map.entry(key) {
            Entry::Occupied(mut o) => match *o.get() {
                Pending::Awaiting { target, .. } => {
                    if status != ReceiptStatus::Intermediate {
                        o.remove();
                    }
                    Some(Matched { target, status })
                }
                Pending::Early { .. } => {
                    // A second early receipt for the id: the later one is the newer news.
                    if status != ReceiptStatus::Intermediate {
                        o.insert(Pending::Early {
                            status,
                            expires: now + early_ttl,
                        });
                    }
                    None
                }
            },
            Entry::Vacant(v) => {
                if status != ReceiptStatus::Intermediate {
                    v.insert(Pending::Early {
                        status,
                        expires: now + early_ttl,
                    });
                }
                None
            }
        }
    }

    /// Drops every entry past its expiry; early receipts dropped count as unknown.
    pub fn purge(&self, now: Nanos) {
        let mut unknown = 0;
        self.map.retain(|_, pending| match *pending {
            Pending::Awaiting { expires, .. } => expires > now,
            Pending::Early { expires, .. } => {
                let keep = expires > now;
                unknown += u64::from(!keep);
                keep
            }
        });
        self.unknown.fetch_add(unknown, Ordering::Relaxed);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
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
        }
    }

    const T: Target = Target {
        key: EntryKey(7),
        attempt: 2,
        part: 1,
    };

    #[test]
    fn matches_in_either_order_and_per_carrier() {
        let map = DlrMap::default();
        let (a, b) = (CarrierSlot(0), CarrierSlot(1));
        assert_eq!(map.expect(a, "m1".into(), T, 100), None);
        // Same id from another carrier is another message.
        assert_eq!(
            map.arrive(b, receipt("m1", ReceiptStatus::Delivered), 0, 10),
            None
        );
        assert_eq!(
            map.arrive(a, receipt("m1", ReceiptStatus::Delivered), 0, 10),
            Some(Matched {
                target: T,
                status: ReceiptStatus::Delivered
            })
        );
        // Early: held, then handed back when the id is registered.
        assert_eq!(
            map.expect(b, "m1".into(), T, 100),
            Some(ReceiptStatus::Delivered)
        );
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn intermediate_receipts_keep_waiting_and_old_entries_expire() {
        let map = DlrMap::default();
        let a = CarrierSlot(0);
        map.expect(a, "m1".into(), T, 100);
        let r = map.arrive(a, receipt("m1", ReceiptStatus::Intermediate), 0, 10);
        assert_eq!(r.map(|m| m.status), Some(ReceiptStatus::Intermediate));
        assert_eq!(map.len(), 1);
        assert_eq!(
            map.arrive(a, receipt("zz", ReceiptStatus::Delivered), 50, 10),
            None
        );
        map.purge(99);
        assert_eq!(map.len(), 1, "the registered id lives until 100");
        assert_eq!(
            map.unknown.load(Ordering::Relaxed),
            1,
            "the early one expired at 60"
        );
        map.purge(100);
        assert_eq!(map.len(), 0);
    }
}
