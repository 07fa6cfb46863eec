//! Shared vocabulary of smsroute: E.164 numbers, sender ids, messages, GSM-7 / UCS-2
//! segmentation and money in integer micro-units.
//!
//! Everything here is pure: no I/O, no clock, no allocation on the lookups the hot path makes.
//!
//! # Example
//! ```
//! use smsroute_types::{E164, Encoding, Message, Money, segment};
//!
//! let number = E164::parse("+44 7700 900123").unwrap();
//! assert_eq!(number.as_str(), "447700900123");
//!
//! let parts = segment("Grüße aus Köln"); // ü, ö are GSM-7; ß too
//! assert_eq!((parts.encoding, parts.segments), (Encoding::Gsm7, 1));
//!
//! let cost = Money::parse_decimal("0.0040").unwrap();
//! assert_eq!(cost.micros(), 4_000);
//!
//! let msg = Message::builder("447700900123", "ACME", "hello").build().unwrap();
//! assert_eq!(msg.segments(), 1);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod carrier_id;
mod e164;
mod encoding;
mod label;
mod lookalike;
mod message;
mod money;
mod rng;
mod sender;
mod slot;

pub use carrier_id::{CarrierMessageId, INLINE_CARRIER_ID};
pub use e164::{E164, InvalidNumber, MAX_DIGITS, MIN_DIGITS, pack_digits};
pub use encoding::{
    Encoding, GSM7_MULTI, GSM7_SINGLE, Segmentation, UCS2_MULTI, UCS2_SINGLE, gsm7_decode,
    gsm7_encode, gsm7_width, is_gsm7, segment, split_parts, ucs2_decode, ucs2_encode,
};
pub use label::Label;
pub use lookalike::{LOOKALIKES, lookalike, smart_gsm7};
pub use message::{
    DEFAULT_MAX_SEGMENTS, InvalidMessage, MAX_ANNOTATIONS, MAX_SEGMENTS, Message, MessageBuilder,
    MessageId,
};
pub use money::{InvalidMoney, Money};
pub use rng::SplitMix64;
pub use sender::{InvalidSender, MAX_ALPHANUMERIC, MAX_NUMERIC, Sender};
pub use slot::CarrierSlot;

/// Nanoseconds on a monotonic clock with the caller's origin: the one time unit every
/// sans-IO crate takes `now` in (the engine's clock counts from the router's start).
pub type Nanos = u64;
