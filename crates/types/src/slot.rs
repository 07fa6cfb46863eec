//! A carrier's number inside one router.

/// A carrier's slot in a router: its number for the router's whole life. A route table
/// numbers its carriers afresh on every reload (`smsroute_routing::CarrierIndex`); a slot
/// stays with its carrier, and with it the carrier's connection, token bucket and health, and
/// is never reused for another.
///
/// ```
/// use smsroute_types::CarrierSlot;
/// let slot = CarrierSlot(3);
/// let per_carrier = [10, 20, 30, 40];
/// assert_eq!(per_carrier[slot.get()], 40);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CarrierSlot(pub u16);

impl CarrierSlot {
    /// As a `usize`, for indexing per-carrier arrays.
    #[inline]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Display for CarrierSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "slot {}", self.0)
    }
}
