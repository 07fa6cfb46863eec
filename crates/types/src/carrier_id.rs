//! A carrier's message id, held inline up to SMPP's longest.

use std::fmt;
use std::ops::Deref;

/// Bytes of an id held inline: SMPP 3.4's `message_id` is at most 64 characters.
pub const INLINE_CARRIER_ID: usize = 64;

/// A carrier's message id for one part, as status events carry it. Ids up to
/// [`INLINE_CARRIER_ID`] bytes (every SMPP id) are held inline, so an event carries them
/// without an allocation: events are made on the router's thread and dropped on the gateway's,
/// and a heap block freed on another thread than the one that allocated it costs the
/// allocator far more than a copy. Longer ids (a carrier over another protocol) are boxed.
///
/// ```
/// use smsroute_types::CarrierMessageId;
/// let id = CarrierMessageId::new("5f3a9c01");
/// assert_eq!(id, "5f3a9c01");
/// assert_eq!(id.len(), 8);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CarrierMessageId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_CARRIER_ID],
    },
    Boxed(Box<str>),
}

impl CarrierMessageId {
    /// Copies `id`.
    pub fn new(id: &str) -> Self {
        if id.len() <= INLINE_CARRIER_ID {
            let mut bytes = [0; INLINE_CARRIER_ID];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            CarrierMessageId(Repr::Inline {
                len: id.len() as u8,
                bytes,
            })
        } else {
            CarrierMessageId(Repr::Boxed(id.into()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always whole UTF-8: copied from a `str` and cut at its end.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Boxed(id) => id,
        }
    }
}

impl Deref for CarrierMessageId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for CarrierMessageId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for CarrierMessageId {
    fn from(id: &str) -> Self {
        CarrierMessageId::new(id)
    }
}

impl PartialEq<str> for CarrierMessageId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CarrierMessageId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for CarrierMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CarrierMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_read_back_whole() {
        let longest = "x".repeat(INLINE_CARRIER_ID);
        let longer = "é".repeat(INLINE_CARRIER_ID);
        for id in ["", "1", "5f3a9c01-ffff", &longest, &longer] {
            let held = CarrierMessageId::new(id);
            assert_eq!(held.as_str(), id);
            assert_eq!(held, CarrierMessageId::from(id));
            assert_eq!(format!("{held:?}"), format!("{id:?}"));
        }
        assert!(matches!(
            CarrierMessageId::new(&longest).0,
            Repr::Inline { .. }
        ));
        assert!(matches!(CarrierMessageId::new(&longer).0, Repr::Boxed(_)));
        assert_ne!(CarrierMessageId::new("a"), CarrierMessageId::new("ab"));
    }
}
