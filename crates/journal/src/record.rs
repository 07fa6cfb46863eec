//! What the journal records about a message, and its byte encoding (times fixed 8 bytes
//! little-endian, other numbers and string lengths LEB128). Records borrow what they write and own what they read back.
//!
//! Length: past 500 lines because every record's encoding and decoding sit side by side, with
//! their tests.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smsroute_delivery::FailReason;
use smsroute_types::{Message, MessageId, Sender};

/// One journal record: a step of one message's life.
#[derive(Clone, Debug, PartialEq)]
pub enum Record<'a> {
    /// Accepted: the whole message (id, text, tags, reference, validity, not-before), and when,
    /// so its deadline is absolute across restarts.
    Accepted {
        /// The message, its id set.
        message: Cow<'a, Message>,
        /// When it was accepted, nanoseconds since the Unix epoch.
        at: u64,
    },
    /// Attempt `attempt` handed to `carrier`: in flight until its answer is recorded.
    Attempt {
        /// The message.
        id: MessageId,
        /// The carrier's id in the configuration.
        carrier: Cow<'a, str>,
        /// 1-based.
        attempt: u32,
    },
    /// The carrier accepted every part: awaiting receipts under these carrier message ids.
    Submitted {
        /// The message.
        id: MessageId,
        /// The carrier's id in the configuration.
        carrier: Cow<'a, str>,
        /// The carrier's message id of each part.
        carrier_ids: Cow<'a, [Box<str>]>,
    },
    /// A delivered receipt for one part of a multipart message that still waits for others
    /// (the attempt of the last `Submitted` record).
    PartDelivered {
        /// The message.
        id: MessageId,
        /// 0-based.
        part: u32,
    },
    /// To be tried again (same carrier or the next) not before `at` (Unix nanoseconds).
    Retrying {
        /// The message.
        id: MessageId,
        /// Unix nanoseconds.
        at: u64,
    },
    /// The one terminal status.
    Finished {
        /// The message.
        id: MessageId,
        /// What it ended as.
        status: Finish,
        /// The terminal event's place in the acknowledgement order (from 1, increasing).
        ack: u64,
        /// A submit may have reached the carrier twice (flagged on the event).
        possible_duplicate: bool,
    },
    /// The gateway has handled every terminal event up to `upto` in the acknowledgement
    /// order: nothing up to it is replayed.
    Acknowledged {
        /// The watermark.
        upto: u64,
    },
    /// A submit of the message may have reached its carrier twice (a timeout or a lost link):
    /// its terminal event will say `possible_duplicate`.
    Flagged {
        /// The message.
        id: MessageId,
    },
    /// Written by the sync thread before each batch (`sync = "batch"`): every byte of this
    /// segment before `upto` was synced. Damage past it in the newest segment is a write a
    /// crash of the machine left half done, cut like a torn tail.
    Synced {
        /// An offset in the segment.
        upto: u64,
    },
    /// What a compaction keeps of the messages it dropped: the highest id and
    /// acknowledgement place given, so neither is given again.
    Counters {
        /// The highest message id recorded.
        last_id: MessageId,
        /// The highest acknowledgement place given.
        last_ack: u64,
    },
}

/// A terminal status as the journal keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Every part's receipt said delivered.
    Delivered,
    /// Accepted by the carrier, no receipt asked for or none in time.
    Sent,
    /// Failed, and why.
    Failed(FailReason),
    /// Validity ran out.
    Expired,
}

/// Why bytes are not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The record ends before its fields do.
    #[error("record truncated: {0} needs more bytes")]
    Truncated(&'static str),
    /// An unknown record kind (a newer journal, or damage the checksum missed).
    #[error("unknown record kind {0}")]
    Kind(u8),
    /// A string field is not UTF-8.
    #[error("{0} is not UTF-8")]
    Utf8(&'static str),
    /// An unknown terminal status or failure reason.
    #[error("unknown status {0}")]
    Status(u8),
    /// The stored message does not build (changed validation rules).
    #[error("the stored message is invalid: {0}")]
    Message(String),
    /// Bytes left after the last field.
    #[error("{0} bytes after the record's last field")]
    Trailing(usize),
    /// A number written in more bytes than its type holds.
    #[error("{0} is out of range")]
    Varint(&'static str),
}

pub(crate) const ACCEPTED: u8 = 1;
const ATTEMPT: u8 = 2;
const SUBMITTED: u8 = 3;
const RETRYING: u8 = 4;
pub(crate) const FINISHED: u8 = 5;
pub(crate) const ACKNOWLEDGED: u8 = 6;
pub(crate) const COUNTERS: u8 = 7;
const FLAGGED: u8 = 8;
pub(crate) const SYNCED: u8 = 9;
const PART_DELIVERED: u8 = 10;

/// An encoded record's kind, message and numbers ([`Record::peek`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peek {
    pub kind: u8,
    pub id: Option<MessageId>,
    pub value: u64,
    pub second: u64,
}

impl Record<'_> {
    /// The message the record is about (none for a watermark).
    pub fn id(&self) -> Option<MessageId> {
        match self {
            Record::Accepted { message, .. } => Some(message.id()),
            Record::Attempt { id, .. }
            | Record::Submitted { id, .. }
            | Record::PartDelivered { id, .. }
            | Record::Retrying { id, .. }
            | Record::Finished { id, .. }
            | Record::Flagged { id } => Some(*id),
            Record::Acknowledged { .. } | Record::Counters { .. } | Record::Synced { .. } => None,
        }
    }

    /// Appends the record's bytes (kind first) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Accepted { message, at } => {
                out.push(ACCEPTED);
                put_u64(out, *at);
                encode_message(message, out);
            }
            Record::Attempt {
                id,
                carrier,
                attempt,
            } => {
                out.push(ATTEMPT);
                put_var(out, id.0);
                put_str(out, carrier);
                put_u32(out, *attempt);
            }
            Record::Submitted {
                id,
                carrier,
                carrier_ids,
            } => {
                out.push(SUBMITTED);
                put_var(out, id.0);
                put_str(out, carrier);
                put_u32(out, carrier_ids.len() as u32);
                for part in carrier_ids.iter() {
                    put_str(out, part);
                }
            }
            Record::PartDelivered { id, part } => {
                out.push(PART_DELIVERED);
                put_var(out, id.0);
                put_u32(out, *part);
            }
            Record::Retrying { id, at } => {
                out.push(RETRYING);
                put_var(out, id.0);
                put_u64(out, *at);
            }
            Record::Finished {
                id,
                status,
                ack,
                possible_duplicate,
            } => {
                out.push(FINISHED);
                put_var(out, id.0);
                put_var(out, *ack);
                let (kind, detail) = match status {
                    Finish::Delivered => (0, 0),
                    Finish::Sent => (1, 0),
                    Finish::Expired => (2, 0),
                    Finish::Failed(reason) => {
                        let (code, status) = reason.to_code();
                        (10 + code, status)
                    }
                };
                out.push(kind);
                put_u32(out, detail);
                out.push(u8::from(*possible_duplicate));
            }
            Record::Acknowledged { upto } => {
                out.push(ACKNOWLEDGED);
                put_var(out, *upto);
            }
            Record::Flagged { id } => {
                out.push(FLAGGED);
                put_var(out, id.0);
            }
            Record::Synced { upto } => {
                out.push(SYNCED);
                // Fixed width: recovery looks for these frames by their shape.
                put_u64(out, *upto);
            }
            Record::Counters { last_id, last_ack } => {
                out.push(COUNTERS);
                put_var(out, last_id.0);
                put_var(out, *last_ack);
            }
        }
    }

    /// What compaction needs of an encoded record, read without decoding its strings: its
    /// kind, its message, and its one or two numbers (a `Finished` record's acknowledgement
    /// place; an `Acknowledged` or `Synced` record's `upto`; a `Counters` record's last id and
    /// last acknowledgement place).
    pub(crate) fn peek(bytes: &[u8]) -> Result<Peek, DecodeError> {
        let mut r = Reader(bytes);
        let kind = r.u8("kind")?;
        let (id, value, second) = match kind {
            ACCEPTED => {
                r.u64("accepted at")?;
                (Some(MessageId(r.var("id")?)), 0, 0)
            }
            ATTEMPT | SUBMITTED | RETRYING | FLAGGED | PART_DELIVERED => {
                (Some(MessageId(r.var("id")?)), 0, 0)
            }
            FINISHED => {
                let id = MessageId(r.var("id")?);
                (Some(id), r.var("acknowledgement sequence")?, 0)
            }
            ACKNOWLEDGED => (None, r.var("watermark")?, 0),
            SYNCED => (None, r.u64("synced offset")?, 0),
            COUNTERS => (
                None,
                r.var("last id")?,
                r.var("last acknowledgement place")?,
            ),
            kind => return Err(DecodeError::Kind(kind)),
        };
        Ok(Peek {
            kind,
            id,
            value,
            second,
        })
    }

    /// The time and message id of an encoded `Accepted` record, without reading the message.
    pub(crate) fn accepted_header(bytes: &[u8]) -> Result<(u64, MessageId), DecodeError> {
        let mut r = Reader(bytes.get(1..).unwrap_or_default());
        let at = r.u64("accepted at")?;
        let id = MessageId(r.var("id")?);
        Ok((at, id))
    }

    /// Reads one record from exactly `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Record<'static>, DecodeError> {
        let mut r = Reader(bytes);
        let record = match r.u8("kind")? {
            ACCEPTED => {
                let at = r.u64("accepted at")?;
                let message = decode_message(&mut r)?;
                Record::Accepted {
                    message: Cow::Owned(message),
                    at,
                }
            }
            ATTEMPT => Record::Attempt {
                id: MessageId(r.var("id")?),
                carrier: Cow::Owned(r.string("carrier")?),
                attempt: r.u32("attempt")?,
            },
            SUBMITTED => {
                let id = MessageId(r.var("id")?);
                let carrier = Cow::Owned(r.string("carrier")?);
                let parts = r.u32("part count")? as usize;
                // Each id takes at least its 1-byte length: a damaged count cannot allocate
                // more than the record holds.
                let mut ids = Vec::with_capacity(parts.min(r.0.len()));
                for _ in 0..parts {
                    ids.push(r.string("carrier message id")?.into_boxed_str());
                }
                Record::Submitted {
                    id,
                    carrier,
                    carrier_ids: Cow::Owned(ids),
                }
            }
            PART_DELIVERED => Record::PartDelivered {
                id: MessageId(r.var("id")?),
                part: r.u32("part")?,
            },
            RETRYING => Record::Retrying {
                id: MessageId(r.var("id")?),
                at: r.u64("retry time")?,
            },
            FINISHED => {
                let id = MessageId(r.var("id")?);
                let ack = r.var("acknowledgement sequence")?;
                let kind = r.u8("status")?;
                let detail = r.u32("status detail")?;
                let status = match kind {
                    0 => Finish::Delivered,
                    1 => Finish::Sent,
                    2 => Finish::Expired,
                    k if k >= 10 => Finish::Failed(
                        FailReason::from_code(k - 10, detail).ok_or(DecodeError::Status(k))?,
                    ),
                    k => return Err(DecodeError::Status(k)),
                };
                let possible_duplicate = r.u8("possible duplicate")? != 0;
                Record::Finished {
                    id,
                    status,
                    ack,
                    possible_duplicate,
                }
            }
            ACKNOWLEDGED => Record::Acknowledged {
                upto: r.var("watermark")?,
            },
            FLAGGED => Record::Flagged {
                id: MessageId(r.var("id")?),
            },
            SYNCED => Record::Synced {
                upto: r.u64("synced offset")?,
            },
            COUNTERS => Record::Counters {
                last_id: MessageId(r.var("last id")?),
                last_ack: r.var("last acknowledgement place")?,
            },
            kind => return Err(DecodeError::Kind(kind)),
        };
        match r.0.len() {
            0 => Ok(record),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

fn encode_message(m: &Message, out: &mut Vec<u8>) {
    // One reservation for the whole record: every field's length and at most 5 bytes of
    // length or flag before each, 10 for the id, 9 for each optional time.
    let reference = m.client_ref().map_or(0, str::len);
    out.reserve(64 + m.text().len() + m.from().as_str().len() + reference);
    put_var(out, m.id().0);
    put_bytes(out, m.to().as_bytes());
    // As written: a numeric sender keeps its `+` (its TON).
    match m.from() {
        Sender::Numeric {
            digits,
            international: true,
        } => {
            put_u32(out, digits.len() as u32 + 1);
            out.push(b'+');
            out.extend_from_slice(digits.as_bytes());
        }
        from => put_str(out, from.as_str()),
    }
    put_str(out, m.text());
    put_opt_u64(out, m.validity().map(|v| v.as_nanos() as u64));
    put_opt_u64(out, m.not_before().map(unix_nanos));
    match m.client_ref() {
        Some(r) => {
            out.push(1);
            put_str(out, r);
        }
        None => out.push(0),
    }
    if !m.has_tags() {
        out.push(0);
        return;
    }
    let count = m.tags().count();
    put_u32(out, count as u32);
    for (key, value) in m.tags() {
        put_str(out, key);
        put_str(out, value);
    }
}

fn decode_message(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let id = MessageId(r.var("message id")?);
    let to = r.str("to")?;
    let from = r.str("from")?;
    let text = r.str("text")?;
    let mut builder = Message::builder(to, from, text).id(id);
    if let Some(ns) = r.opt_u64("validity")? {
        builder = builder.validity(Duration::from_nanos(ns));
    }
    if let Some(ns) = r.opt_u64("not before")? {
        builder = builder.not_before(UNIX_EPOCH + Duration::from_nanos(ns));
    }
    if r.u8("client reference flag")? == 1 {
        builder = builder.client_ref(r.str("client reference")?);
    }
    for _ in 0..r.u32("tag count")? {
        let key = r.str("tag key")?;
        let value = r.str("tag value")?;
        builder = builder.tag(key, value);
    }
    builder
        .build()
        .map_err(|e| DecodeError::Message(e.to_string()))
}

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A count, length or small number: LEB128 (7 bits a byte, low first; 1 byte below 128).
fn put_u32(out: &mut Vec<u8>, v: u32) {
    put_var(out, u64::from(v));
}

/// An id, acknowledgement place or watermark: LEB128, as [`put_u32`] (ids the router assigns
/// and places stay small, so most take 2-4 bytes instead of 8).
fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            put_u64(out, v);
        }
        None => out.push(0),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// A cursor over a record's bytes; every read names its field when the bytes run out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated(field));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.var(field)?).map_err(|_| DecodeError::Varint(field))
    }

    /// A LEB128 number of at most 64 bits (10 bytes).
    fn var(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(field)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::Varint(field));
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Varint(field))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_le_bytes(b))
    }

    fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        match self.u8(field)? {
            0 => Ok(None),
            _ => self.u64(field).map(Some),
        }
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = self.u32(field)? as usize;
        std::str::from_utf8(self.take(len, field)?).map_err(|_| DecodeError::Utf8(field))
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.str(field).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(record: Record<'_>) {
        let mut bytes = Vec::new();
        record.encode(&mut bytes);
        assert_eq!(Record::decode(&bytes).unwrap(), record);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn every_record_reads_back_as_written_and_a_short_one_is_refused() {
        let message = Message::builder("447700900123", "ACME", "Привет, code 1234")
            .id(MessageId(42))
            .client_ref("order-17")
            .tag("class", "otp")
            .tag("account", "acme")
            .validity(Duration::from_secs(600))
            .not_before(UNIX_EPOCH + Duration::from_secs(1_900_000_000))
            .build()
            .unwrap();
        round_trip(Record::Accepted {
            message: Cow::Borrowed(&message),
            at: 1_800_000_000_123_456_789,
        });
        let plain = Message::builder("33612345678", "+33700000000", "hi")
            .id(MessageId(7))
            .build()
            .unwrap();
        round_trip(Record::Accepted {
            message: Cow::Owned(plain),
            at: 1,
        });
        round_trip(Record::Attempt {
            id: MessageId(42),
            carrier: "uk-alpha".into(),
            attempt: 3,
        });
        let ids: Vec<Box<str>> = vec!["a1".into(), "b2".into()];
        round_trip(Record::Submitted {
            id: MessageId(42),
            carrier: "uk-alpha".into(),
            carrier_ids: Cow::Borrowed(&ids),
        });
        round_trip(Record::PartDelivered {
            id: MessageId(7),
            part: 2,
        });
        round_trip(Record::Retrying {
            id: MessageId(42),
            at: 99,
        });
        for status in [
            Finish::Delivered,
            Finish::Sent,
            Finish::Expired,
            Finish::Failed(FailReason::NoRoute),
            Finish::Failed(FailReason::Permanent { status: 0x0B }),
            Finish::Failed(FailReason::AttemptsExhausted),
            Finish::Failed(FailReason::Undeliverable),
            Finish::Failed(FailReason::Rejected),
            Finish::Failed(FailReason::OptedOut),
            Finish::Failed(FailReason::InsufficientFunds),
            Finish::Failed(FailReason::TooLarge),
            Finish::Failed(FailReason::Cancelled),
        ] {
            round_trip(Record::Finished {
                id: MessageId(42),
                status,
                ack: 7,
                possible_duplicate: true,
            });
        }
        round_trip(Record::Acknowledged { upto: 42 });
        round_trip(Record::Flagged { id: MessageId(3) });
        round_trip(Record::Synced { upto: 4096 });
        round_trip(Record::Counters {
            last_id: MessageId(9),
            last_ack: 4,
        });
    }

    #[test]
    fn damaged_records_say_what_is_wrong() {
        assert_eq!(Record::decode(&[99]), Err(DecodeError::Kind(99)));
        let mut bytes = Vec::new();
        Record::Acknowledged { upto: 1 }.encode(&mut bytes);
        bytes.push(0);
        assert_eq!(Record::decode(&bytes), Err(DecodeError::Trailing(1)));
        let mut bytes = vec![SUBMITTED];
        put_var(&mut bytes, 1);
        put_str(&mut bytes, "c");
        put_u32(&mut bytes, u32::MAX);
        assert_eq!(
            Record::decode(&bytes),
            Err(DecodeError::Truncated("carrier message id"))
        );
        let mut bytes = vec![FINISHED];
        put_var(&mut bytes, 1);
        put_var(&mut bytes, 9);
        bytes.push(200);
        put_u32(&mut bytes, 0);
        assert_eq!(Record::decode(&bytes), Err(DecodeError::Status(200)));
        // Numbers: the smallest and largest round-trip; 11 bytes, or a 10th byte past 64
        // bits, are refused.
        for v in [0, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = Vec::new();
            put_var(&mut bytes, v);
            assert_eq!(Reader(&bytes).var("n"), Ok(v), "{v}");
            assert_eq!(
                bytes.len(),
                (64 - v.leading_zeros().min(63) as usize).div_ceil(7)
            );
        }
        let mut long = vec![0xff; 9];
        long.push(0x02);
        assert_eq!(Reader(&long).var("n"), Err(DecodeError::Varint("n")));
        assert_eq!(Reader(&[0x80; 11]).var("n"), Err(DecodeError::Varint("n")));
        let mut big = Vec::new();
        put_var(&mut big, u64::from(u32::MAX) + 1);
        assert_eq!(Reader(&big).u32("n"), Err(DecodeError::Varint("n")));
    }
}
