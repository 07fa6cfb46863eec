//! Receipts for SMPP clients: the deliver_sm a terminal event turns into (one per part that
//! asked for one), and the acknowledgement watermark: a terminal event is acknowledged to the
//! router only once every receipt made from it was answered by the client, so a receipt lost
//! in a crash is sent again after the restart.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smsroute_delivery::{Event, FailReason};
use smsroute_engine::StatusEvent;
use smsroute_smpp::pdu::{Address, ShortMessage};
use smsroute_smpp::sm::{FinalState, receipt_in_state, source_address};
use smsroute_types::Message;

/// The tag an SMPP submit leaves on its message: `SECONDS FLAGS`, the Unix time it was
/// submitted and one `registered_delivery` digit per part (`0` none, `1` a final receipt,
/// `2` a receipt on failure only).
pub const RECEIPT_TAG: &str = "smpp.dlr";

/// The [`RECEIPT_TAG`] value for parts asking `flags` (their `registered_delivery`).
pub fn receipt_tag(submitted: SystemTime, flags: impl Iterator<Item = u8>) -> String {
    let secs = submitted
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let flags: String = flags.map(|f| char::from(b'0' + (f & 0x03))).collect();
    format!("{secs} {flags}")
}

/// The id a client was given for part `k` (1-based) of message `id` with `parts` parts:
/// the message id alone for a single part, `ID-K` for each part of a multipart message.
pub fn part_id(id: u64, parts: usize, k: usize) -> String {
    if parts <= 1 {
        id.to_string()
    } else {
        format!("{id}-{k}")
    }
}

/// The receipts `event` (terminal) owes its SMPP client, dated `done`; none when its message
/// did not come over SMPP or asked for none. A message that may have reached its carrier
/// twice says so in every receipt (the vendor TLV `POSSIBLE_DUPLICATE_TAG`).
pub fn receipts_for(event: &StatusEvent, done: SystemTime) -> Vec<ShortMessage> {
    let flagged = event.possible_duplicate;
    receipts(event.id.0, &event.message, &event.event, flagged, done)
}

/// [`receipts_for`] the terminal `outcome` of message `id`.
fn receipts(
    id: u64,
    message: &Message,
    outcome: &Event,
    possible_duplicate: bool,
    done: SystemTime,
) -> Vec<ShortMessage> {
    let Some((secs, flags)) = message.tag(RECEIPT_TAG).and_then(|v| v.split_once(' ')) else {
        return Vec::new();
    };
    let state = match outcome {
        Event::Delivered => FinalState::Delivered,
        Event::Sent => FinalState::Accepted,
        Event::Expired => FinalState::Expired,
        Event::Failed(FailReason::Cancelled) => FinalState::Deleted,
        Event::Failed(_) => FinalState::Undeliverable,
        _ => return Vec::new(),
    };
    let failed = matches!(
        state,
        FinalState::Expired | FinalState::Undeliverable | FinalState::Deleted
    );
    let submitted = UNIX_EPOCH + Duration::from_secs(secs.parse().unwrap_or(0));
    let recipient = Address {
        ton: 1,
        npi: 1,
        addr: message.to().as_str().trim_start_matches('+').to_string(),
    };
    let sender = source_address(message.from());
    let parts = flags.len();
    flags
        .bytes()
        .enumerate()
        .filter(|&(_, f)| f == b'1' || (f == b'2' && failed))
        .map(|(i, _)| {
            let id = part_id(id, parts, i + 1);
            let mut receipt = receipt_in_state(
                recipient.clone(),
                sender.clone(),
                &id,
                state,
                (submitted, done),
            );
            receipt.possible_duplicate = possible_duplicate;
            receipt
        })
        .collect()
}

/// Terminal events handed out and not yet acknowledged to the router, by acknowledgement
/// number, with the receipts each still waits for.
#[derive(Debug, Default)]
pub struct Watermark {
    waiting: BTreeMap<u64, u32>,
    highest: u64,
    acknowledged: u64,
}

impl Watermark {
    /// Terminal event `ack` was handed out, waiting for `receipts` answers (0: done).
    pub fn handed_out(&mut self, ack: u64, receipts: u32) {
        if ack == 0 {
            return;
        }
        self.highest = self.highest.max(ack);
        if receipts > 0 {
            *self.waiting.entry(ack).or_default() += receipts;
        }
    }

    /// One receipt of terminal event `ack` was answered by the client.
    pub fn answered(&mut self, ack: u64) {
        if let Some(left) = self.waiting.get_mut(&ack) {
            *left -= 1;
            if *left == 0 {
                self.waiting.remove(&ack);
            }
        }
    }

    /// The new watermark to acknowledge, if it moved: everything below the oldest event
    /// still waiting, or every event when none waits.
    pub fn advance(&mut self) -> Option<u64> {
        let upto = match self.waiting.keys().next() {
            Some(&oldest) => oldest - 1,
            None => self.highest,
        };
        (upto > self.acknowledged).then(|| {
            self.acknowledged = upto;
            upto
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_the_oldest_unanswered_receipt() {
        let mut w = Watermark::default();
        w.handed_out(1, 0);
        w.handed_out(2, 2);
        w.handed_out(3, 0);
        assert_eq!(w.advance(), Some(1));
        w.answered(2);
        assert_eq!(w.advance(), None, "one receipt of event 2 is still out");
        w.answered(2);
        assert_eq!(w.advance(), Some(3));
        w.handed_out(0, 5);
        assert_eq!(
            w.advance(),
            None,
            "events without a journal are not counted"
        );
    }

    #[test]
    fn receipt_tags_and_part_ids() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_084_660);
        assert_eq!(receipt_tag(at, [1u8, 0, 2].into_iter()), "1764084660 102");
        assert_eq!(part_id(42, 1, 1), "42");
        assert_eq!(part_id(42, 3, 2), "42-2");
    }

    #[test]
    fn a_possible_duplicate_says_so_in_every_receipt() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_084_660);
        let message = smsroute_types::Message::builder("447700900123", "SHOP", "hi")
            .tag(RECEIPT_TAG, &receipt_tag(at, [1u8, 1].into_iter()))
            .build()
            .unwrap();
        let flagged = receipts(7, &message, &Event::Delivered, true, at);
        assert_eq!(flagged.len(), 2);
        assert!(flagged.iter().all(|r| r.possible_duplicate));
        let plain = receipts(7, &message, &Event::Delivered, false, at);
        assert!(plain.iter().all(|r| !r.possible_duplicate));
    }
}
