//! Candidate lists, interned: every distinct list (offers in rank order, plus whether a block
//! emptied it) is stored once and named by a `u32`.

use std::hash::{BuildHasher, Hash, Hasher};

use ahash::RandomState;
use smsroute_types::Money;

/// A carrier's position in the table's carrier list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CarrierIndex(pub u16);

impl CarrierIndex {
    /// As a `usize`, for indexing per-carrier arrays.
    #[inline]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// What one carrier offers for a number: the terms of its own longest matching rate-deck row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Offer {
    /// Price per segment.
    pub cost: Money,
    /// Share among equal-cost healthy carriers.
    pub weight: u32,
    /// The carrier.
    pub carrier: CarrierIndex,
    /// Lower tiers first.
    pub tier: u8,
    /// The row is the carrier's own at the prefix holding this list; false when inherited
    /// from a shorter prefix. Carries no digits, so prefixes of one network at different
    /// lengths share a list; `explain` finds each carrier's prefix from this flag.
    pub own: bool,
}

impl Offer {
    /// Static rank order: tier, cost, weight descending, carrier index.
    fn order_key(&self) -> (u8, Money, std::cmp::Reverse<u32>, CarrierIndex) {
        (
            self.tier,
            self.cost,
            std::cmp::Reverse(self.weight),
            self.carrier,
        )
    }
}

/// Sorts offers into their static rank order.
pub(crate) fn sort_offers(offers: &mut [Offer]) {
    offers.sort_unstable_by_key(Offer::order_key);
}

/// The empty list of a number no carrier serves.
pub(crate) const EMPTY: u32 = 0;
/// The empty list of a number a block rule emptied.
pub(crate) const BLOCKED: u32 = 1;

/// All candidate lists of a table, back to back in one array, each behind a header slot: a
/// list's id is the index of its header, so a lookup reaches the header and the first offers
/// in one cache line, with no separate index array to miss on.
#[derive(Clone, Debug)]
pub(crate) struct Lists {
    /// Headers and offers. A header is an `Offer` whose `weight` is the list's length and
    /// whose `tier` is 1 when a block emptied the list.
    slots: Vec<Offer>,
    count: usize,
}

fn header(len: usize, blocked: bool) -> Offer {
    Offer {
        cost: Money::ZERO,
        weight: len as u32,
        carrier: CarrierIndex(u16::MAX),
        tier: u8::from(blocked),
        own: false,
    }
}

impl Lists {
    #[inline]
    pub fn get(&self, id: u32) -> (&[Offer], bool) {
        let at = id as usize;
        let header = self.slots[at];
        (
            &self.slots[at + 1..at + 1 + header.weight as usize],
            header.tier != 0,
        )
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * size_of::<Offer>()
    }
}

/// Builds [`Lists`], handing out one id per distinct list.
pub(crate) struct Interner {
    lists: Lists,
    by_hash: ahash::AHashMap<u64, smallvec::SmallVec<[u32; 1]>>,
    hasher: RandomState,
}

impl Interner {
    pub fn new() -> Self {
        let mut interner = Interner {
            lists: Lists {
                slots: Vec::new(),
                count: 0,
            },
            by_hash: Default::default(),
            hasher: RandomState::with_seeds(1, 2, 3, 4),
        };
        let empty = interner.intern(&[], false);
        let blocked = interner.intern(&[], true);
        debug_assert_eq!((empty, blocked), (EMPTY, BLOCKED));
        interner
    }

    /// The id of this list (offers already in rank order), adding it if new.
    pub fn intern(&mut self, offers: &[Offer], blocked: bool) -> u32 {
        let blocked = blocked && offers.is_empty();
        let mut h = self.hasher.build_hasher();
        offers.hash(&mut h);
        blocked.hash(&mut h);
        let ids = self.by_hash.entry(h.finish()).or_default();
        for &id in ids.iter() {
            let (existing, was_blocked) = self.lists.get(id);
            if existing == offers && was_blocked == blocked {
                return id;
            }
        }
        let id = u32::try_from(self.lists.slots.len()).expect("candidate lists fit in u32 slots");
        self.lists.slots.push(header(offers.len(), blocked));
        self.lists.slots.extend_from_slice(offers);
        self.lists.count += 1;
        ids.push(id);
        id
    }

    pub fn finish(mut self) -> Lists {
        self.lists.slots.shrink_to_fit();
        self.lists
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(carrier: u16, cost: u64) -> Offer {
        Offer {
            cost: Money::from_micros(cost),
            weight: 1,
            carrier: CarrierIndex(carrier),
            tier: 0,
            own: true,
        }
    }

    #[test]
    fn identical_lists_share_one_id() {
        let mut interner = Interner::new();
        let a = interner.intern(&[offer(0, 10), offer(1, 20)], false);
        let b = interner.intern(&[offer(0, 10), offer(1, 20)], false);
        let c = interner.intern(&[offer(1, 20)], false);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(interner.intern(&[], true), BLOCKED);
        assert_eq!(interner.intern(&[], false), EMPTY);
        let lists = interner.finish();
        assert_eq!(lists.count(), 4);
        assert_eq!(lists.get(a).0.len(), 2);
    }
}
