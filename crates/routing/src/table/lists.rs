//! Candidate lists, interned: every distinct list (offers in rank order, plus whether a block
//! emptied it) is stored once and named by a `u32`.

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
    /// Whether the offer is within a price ceiling (none: any price is).
    #[inline]
    pub fn within(&self, max_price: Option<Money>) -> bool {
        max_price.is_none_or(|max| self.cost <= max)
    }

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

/// A list id packs where the list starts and what it is, so a lookup reads no header:
/// bits 0–3 the length (15: "15 or more", the true length then sits in a header slot before the
/// offers), bit 4 the blocked flag, bits 5–31 the slot offset.
const LEN_BITS: u32 = 0xF;
const LONG: u32 = 0xF;
const BLOCKED_BIT: u32 = 1 << 4;
const OFFSET_SHIFT: u32 = 5;
/// Slots per 64-byte cache line.
const SLOTS_PER_LINE: usize = 64 / size_of::<Offer>();

/// The empty list of a number no carrier serves.
pub(crate) const EMPTY: u32 = 0;
/// The empty list of a number a block rule emptied.
pub(crate) const BLOCKED: u32 = BLOCKED_BIT;

/// All candidate lists of a table, back to back in one array. Lists of up to four offers never
/// straddle a cache line, so ranking reads one line per message.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lists {
    /// Offers, padding and, for long lists, a header slot whose `weight` is the length.
    slots: Vec<Offer>,
    count: usize,
}

/// Filler for padding and long-list headers; never part of a returned slice.
fn filler(weight: u32) -> Offer {
    Offer {
        cost: Money::ZERO,
        weight,
        carrier: CarrierIndex(u16::MAX),
        tier: 0,
        own: false,
    }
}

impl Lists {
    #[inline]
    pub fn get(&self, id: u32) -> (&[Offer], bool) {
        let blocked = id & BLOCKED_BIT != 0;
        let at = (id >> OFFSET_SHIFT) as usize;
        let len = id & LEN_BITS;
        if len < LONG {
            (&self.slots[at..at + len as usize], blocked)
        } else {
            let len = self.slots[at].weight as usize;
            (&self.slots[at + 1..at + 1 + len], blocked)
        }
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
        Interner {
            lists: Lists::default(),
            by_hash: Default::default(),
            hasher: RandomState::with_seeds(1, 2, 3, 4),
        }
    }

    /// The id of this list (offers already in rank order), adding it if new.
    pub fn intern(&mut self, offers: &[Offer], blocked: bool) -> u32 {
        if offers.is_empty() {
            return if blocked { BLOCKED } else { EMPTY };
        }
        let ids = self
            .by_hash
            .entry(self.hasher.hash_one(offers))
            .or_default();
        for &id in ids.iter() {
            if self.lists.get(id).0 == offers {
                return id;
            }
        }
        let slots = &mut self.lists.slots;
        let long = offers.len() >= LONG as usize;
        let needed = offers.len() + usize::from(long);
        let in_line = slots.len() % SLOTS_PER_LINE;
        if needed <= SLOTS_PER_LINE && in_line + needed > SLOTS_PER_LINE {
            slots.resize(slots.len() + SLOTS_PER_LINE - in_line, filler(0));
        }
        let offset = u32::try_from(slots.len())
            .ok()
            .filter(|o| *o < (1 << (32 - OFFSET_SHIFT)) - 1);
        let offset = offset.expect("candidate lists fit in 2^27 - 1 slots");
        if long {
            slots.push(filler(offers.len() as u32));
        }
        slots.extend_from_slice(offers);
        let len = if long { LONG } else { offers.len() as u32 };
        let id = (offset << OFFSET_SHIFT) | len;
        self.lists.count += 1;
        ids.push(id);
        id
    }

    /// The finished lists, copied so that slot 0 sits on a cache-line boundary, and the number
    /// of filler slots put in front: pass every id through [`shift_id`] with it.
    pub fn finish(self) -> (Lists, u32) {
        let mut slots = Vec::with_capacity(self.lists.slots.len() + SLOTS_PER_LINE);
        let misaligned = (slots.as_ptr() as usize % 64) / size_of::<Offer>();
        let shift = if (slots.as_ptr() as usize).is_multiple_of(size_of::<Offer>()) {
            (SLOTS_PER_LINE - misaligned) % SLOTS_PER_LINE
        } else {
            0 // Not slot-aligned: line alignment is out of reach, correctness is not affected.
        };
        slots.resize(shift, filler(0));
        slots.extend_from_slice(&self.lists.slots);
        (
            Lists {
                slots,
                count: self.lists.count,
            },
            shift as u32,
        )
    }
}

/// Moves a list id `shift` slots on (empty lists have no slots and stay as they are).
pub(crate) fn shift_id(id: u32, shift: u32) -> u32 {
    if id & LEN_BITS == 0 {
        id
    } else {
        id + (shift << OFFSET_SHIFT)
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
        let (lists, shift) = interner.finish();
        assert_eq!(lists.count(), 2);
        assert_eq!(
            lists.get(shift_id(a, shift)).0,
            &[offer(0, 10), offer(1, 20)]
        );
        assert_eq!(lists.get(shift_id(c, shift)).0, &[offer(1, 20)]);
    }

    #[test]
    fn short_lists_stay_within_a_line_and_long_lists_round_trip() {
        let mut interner = Interner::new();
        let lists: Vec<Vec<Offer>> = (1..=20u16)
            .map(|n| (0..n).map(|c| offer(c, u64::from(n))).collect())
            .collect();
        let ids: Vec<u32> = lists.iter().map(|l| interner.intern(l, false)).collect();
        let (built, shift) = interner.finish();
        for (list, id) in lists.iter().zip(ids) {
            let (got, blocked) = built.get(shift_id(id, shift));
            assert_eq!((got, blocked), (&list[..], false));
            if list.len() <= SLOTS_PER_LINE {
                let start = got.as_ptr() as usize;
                let end = start + size_of_val(got) - 1;
                assert_eq!(
                    start / 64,
                    end / 64,
                    "a list of {} offers straddles a line",
                    list.len()
                );
            }
        }
    }
}
