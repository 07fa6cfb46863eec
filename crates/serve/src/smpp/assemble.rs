//! Multipart messages from a client put back together: parts of one message share a
//! reference (UDH, 8- or 16-bit, or the SAR TLVs), a source and a destination. Bounded per
//! session; a message whose parts do not all come within [`PART_TIMEOUT`] is refused.

use std::collections::HashMap;
use std::time::Duration;

use smsroute_smpp::sm::Concat;
use tokio::time::Instant;

/// How long the parts of one message may take to come in.
pub const PART_TIMEOUT: Duration = Duration::from_secs(60);

/// Incomplete messages one session may hold at once.
pub const MAX_PARTIAL: usize = 256;

/// One part as it came: its submit_sm's sequence number, text and `registered_delivery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub sequence: u32,
    pub text: String,
    pub receipt: u8,
}

/// What adding a part did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Held until the other parts come.
    Held,
    /// The last part came: every part, in order.
    Complete(Vec<Part>),
    /// This part cannot be taken: answer it with this status.
    Refused(u32),
}

type Key = (u16, String, String);

struct Partial {
    parts: Vec<Option<Part>>,
    held: usize,
    deadline: Instant,
}

/// A session's incomplete multipart messages.
#[derive(Default)]
pub struct Assembler {
    partial: HashMap<Key, Partial>,
}

impl Assembler {
    /// Adds part `concat` of the message from `source` to `destination`.
    pub fn add(
        &mut self,
        concat: Concat,
        source: &str,
        destination: &str,
        part: Part,
        now: Instant,
    ) -> Added {
        use smsroute_smpp::pdu::status;
        if concat.total == 0 || concat.part == 0 || concat.part > concat.total {
            return Added::Refused(status::SUBMIT_FAILED);
        }
        if concat.total == 1 {
            return Added::Complete(vec![part]);
        }
        let key = (
            concat.reference,
            source.to_string(),
            destination.to_string(),
        );
        if !self.partial.contains_key(&key) && self.partial.len() >= MAX_PARTIAL {
            return Added::Refused(status::THROTTLED);
        }
        let entry = self.partial.entry(key.clone()).or_insert_with(|| Partial {
            parts: vec![None; usize::from(concat.total)],
            held: 0,
            deadline: now + PART_TIMEOUT,
        });
        let index = usize::from(concat.part - 1);
        if entry.parts.len() != usize::from(concat.total) || entry.parts[index].is_some() {
            // A part that disagrees with the ones held (another total, a repeated number).
            return Added::Refused(status::SUBMIT_FAILED);
        }
        entry.parts[index] = Some(part);
        entry.held += 1;
        if entry.held < entry.parts.len() {
            return Added::Held;
        }
        let whole = self
            .partial
            .remove(&key)
            .map(|p| p.parts)
            .unwrap_or_default();
        Added::Complete(whole.into_iter().flatten().collect())
    }

    /// The sequence numbers of the parts of messages that timed out (dropped).
    pub fn expire(&mut self, now: Instant) -> Vec<u32> {
        let mut gone = Vec::new();
        self.partial.retain(|_, p| {
            let keep = p.deadline > now;
            if !keep {
                gone.extend(p.parts.iter().flatten().map(|part| part.sequence));
            }
            keep
        });
        gone
    }

    /// When the next incomplete message times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.partial.values().map(|p| p.deadline).min()
    }

    /// Parts held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.partial.values().map(|p| p.held).sum()
    }

    /// Every held part's sequence number, dropping them (the session ends).
    pub fn drain(&mut self) -> Vec<u32> {
        self.expire(Instant::now() + PART_TIMEOUT + Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(sequence: u32, text: &str) -> Part {
        Part {
            sequence,
            text: text.into(),
            receipt: 1,
        }
    }

    fn concat(reference: u16, total: u8, part: u8) -> Concat {
        Concat {
            reference,
            total,
            part,
        }
    }

    #[test]
    fn parts_in_any_order_make_one_message() {
        let mut a = Assembler::default();
        let now = Instant::now();
        assert_eq!(
            a.add(concat(7, 3, 3), "S", "44", part(3, "c"), now),
            Added::Held
        );
        assert_eq!(
            a.add(concat(7, 3, 1), "S", "44", part(1, "a"), now),
            Added::Held
        );
        // Same reference, other destination: another message.
        assert_eq!(
            a.add(concat(7, 2, 1), "S", "45", part(9, "x"), now),
            Added::Held
        );
        assert_eq!(a.held(), 3);
        let Added::Complete(parts) = a.add(concat(7, 3, 2), "S", "44", part(2, "b"), now) else {
            panic!("complete")
        };
        let text: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(text, "abc");
        assert_eq!(
            parts.iter().map(|p| p.sequence).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(a.held(), 1);
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        let mut a = Assembler::default();
        let now = Instant::now();
        let refused = Added::Refused(smsroute_smpp::pdu::status::SUBMIT_FAILED);
        assert_eq!(
            a.add(concat(1, 2, 3), "S", "44", part(1, "a"), now),
            refused
        );
        assert_eq!(
            a.add(concat(1, 0, 0), "S", "44", part(1, "a"), now),
            refused
        );
        assert_eq!(
            a.add(concat(1, 2, 1), "S", "44", part(1, "a"), now),
            Added::Held
        );
        assert_eq!(
            a.add(concat(1, 2, 1), "S", "44", part(2, "a"), now),
            refused
        );
        assert_eq!(
            a.add(concat(1, 3, 2), "S", "44", part(3, "b"), now),
            refused
        );
    }

    #[test]
    fn incomplete_messages_time_out_and_are_bounded() {
        let mut a = Assembler::default();
        let now = Instant::now();
        for r in 0..MAX_PARTIAL as u16 {
            assert_eq!(
                a.add(concat(r, 2, 1), "S", "44", part(u32::from(r), "a"), now),
                Added::Held
            );
        }
        assert_eq!(
            a.add(concat(9999, 2, 1), "S", "44", part(1, "a"), now),
            Added::Refused(smsroute_smpp::pdu::status::THROTTLED)
        );
        assert_eq!(a.next_deadline(), Some(now + PART_TIMEOUT));
        assert!(a.expire(now + PART_TIMEOUT / 2).is_empty());
        assert_eq!(a.expire(now + PART_TIMEOUT).len(), MAX_PARTIAL);
        assert_eq!(a.held(), 0);
    }
}
