//! The harness as an SMPP client of `smsroute serve`: a few windowed binds; each message a
//! task that submits it until it gets an answer (as a gateway's queue does: sent again after
//! a submit the hub never answered, and flagged so), and a reader that matches receipts to
//! messages by the ids the answers gave.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use smsroute_carrier::{Carrier, Receipt, SubmitError, SubmitRequest};
use smsroute_delivery::ReceiptStatus;
use smsroute_smpp::{EsmeConfig, SmppCarrier};
use smsroute_types::Message;

use super::process::{BINDS, PASSWORD, SYSTEM_ID};
use crate::ledger::{Books, REASONS, Tally};

/// How long a message waits for the hub to come back before the client gives up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// Pause between tries while the hub is down.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What a receipt's id means to the client.
enum Known {
    /// Part `part` (0-based) of message `id`.
    Part { id: u64, part: usize },
    /// Receipts for an id no answer has given yet: (outcome index, flagged, µs).
    Early(Vec<(usize, bool, u64)>),
}

/// Figures only this mode has.
#[derive(Default)]
pub(crate) struct ClientFigures {
    /// Submits sent again after the hub gave no answer (in flight at a kill).
    pub resubmitted: AtomicU64,
    /// Receipts flagged possible duplicate by the hub.
    pub flagged_by_hub: AtomicU64,
    /// Messages given up on after [`GIVE_UP_AFTER`] with the hub unreachable.
    pub given_up: AtomicU64,
}

/// The binds, the ledger they feed, and the receipt matching.
pub(crate) struct Client {
    smpp: SmppCarrier,
    books: Arc<Books>,
    pub tally: Mutex<Tally>,
    known: Mutex<HashMap<Box<str>, Known>>,
    pub figures: ClientFigures,
    origin: std::time::Instant,
    receipts: bool,
}

/// The outcome index (delivered, sent, failed, expired) of a receipt from the hub. The hub
/// sends receipts only for terminal statuses, so `ACCEPTD` (read as intermediate) is "sent".
fn outcome(status: ReceiptStatus) -> usize {
    match status {
        ReceiptStatus::Delivered => 0,
        ReceiptStatus::Intermediate => 1,
        ReceiptStatus::Undeliverable | ReceiptStatus::Rejected => 2,
        ReceiptStatus::Expired => 3,
    }
}

/// The refusal reason (an index into [`REASONS`]) of a hub's SMPP status (docs/serve.md).
fn reason(status: u32) -> usize {
    let name = match status {
        0x0B => "invalid",
        0x45 => "no_route",
        0x14 | 0x58 => "overloaded",
        0x400 => "opted_out",
        0x401 => "frequency_cap",
        0x402 => "quiet_hours",
        0x403 => "insufficient_funds",
        _ => "invalid",
    };
    REASONS.iter().position(|r| *r == name).unwrap_or(0)
}

impl Client {
    /// Opens the binds to `port` (they connect, and reconnect after a kill, by themselves) and
    /// starts the receipt reader. Call inside the runtime.
    pub fn start(
        port: u16,
        window: u32,
        books: Arc<Books>,
        tally: Tally,
        origin: std::time::Instant,
        receipts: bool,
    ) -> Arc<Client> {
        let mut config = EsmeConfig::new("127.0.0.1", port, SYSTEM_ID, PASSWORD);
        config.endpoint.binds = BINDS;
        config.window = window;
        config.submit_timeout = Duration::from_secs(20);
        config.reconnect_min = Duration::from_millis(20);
        config.reconnect_max = Duration::from_millis(200);
        let client = Arc::new(Client {
            smpp: SmppCarrier::connect("hub", config),
            books,
            tally: Mutex::new(tally),
            known: Mutex::default(),
            figures: ClientFigures::default(),
            origin,
            receipts,
        });
        let (sink, mut rx) = tokio::sync::mpsc::channel(4096);
        client.smpp.attach_receipts(sink);
        let reader = client.clone();
        tokio::spawn(async move {
            while let Some((receipt, ack)) = rx.recv().await {
                reader.receipt(receipt);
                ack.taken();
            }
        });
        client
    }

    /// Sessions bound now.
    pub fn bound(&self) -> usize {
        self.smpp.bound()
    }

    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    /// Submits message `id` (intended in `second`) until the hub answers it or stays
    /// unreachable for [`GIVE_UP_AFTER`].
    pub async fn send(self: Arc<Self>, message: Arc<Message>, id: u64, second: usize) {
        let books = &self.books;
        let give_up = tokio::time::Instant::now() + GIVE_UP_AFTER;
        let mut attempt = 1;
        loop {
            let request = SubmitRequest {
                message: message.clone(),
                attempt,
                receipt: self.receipts,
            };
            match self.smpp.submit(request).await {
                Ok(accepted) => {
                    books.accepted[second].fetch_add(1, Ordering::Relaxed);
                    self.tally.lock().accepted_id(id);
                    self.answered(id, &accepted.message_ids);
                    return;
                }
                Err(SubmitError::Rejected { status }) => {
                    books.rejected_by_reason[reason(status)].fetch_add(1, Ordering::Relaxed);
                    books.rejected[second].fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // The hub may have it: sent again, flagged as a possible duplicate.
                Err(SubmitError::Timeout | SubmitError::ConnectionLost) => {
                    self.figures.resubmitted.fetch_add(1, Ordering::Relaxed);
                    self.tally.lock().flag(id);
                }
                // Not sent: the hub is down.
                Err(SubmitError::Unavailable(_)) => {}
            }
            if tokio::time::Instant::now() >= give_up {
                self.figures.given_up.fetch_add(1, Ordering::Relaxed);
                let shutting_down = REASONS.iter().position(|r| *r == "shutting_down");
                books.rejected_by_reason[shutting_down.unwrap_or(0)]
                    .fetch_add(1, Ordering::Relaxed);
                books.rejected[second].fetch_add(1, Ordering::Relaxed);
                return;
            }
            attempt += 1;
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The hub's ids for message `id`'s parts: receipts that came first are counted now.
    fn answered(&self, id: u64, parts: &[Box<str>]) {
        let mut early = Vec::new();
        {
            let mut known = self.known.lock();
            for (part, hub_id) in parts.iter().enumerate() {
                let now = Known::Part { id, part };
                match known.entry(hub_id.clone()) {
                    Entry::Vacant(v) => {
                        v.insert(now);
                    }
                    Entry::Occupied(mut o) => {
                        if let Known::Early(receipts) = std::mem::replace(o.get_mut(), now)
                            && part == 0
                        {
                            early = receipts;
                        }
                    }
                }
            }
        }
        let mut tally = self.tally.lock();
        for (kind, flagged, at) in early {
            tally.receipt(id, kind, flagged, at, &self.books);
        }
    }

    /// A receipt: the message's terminal status when it is for its first part.
    fn receipt(&self, receipt: Receipt) {
        let at = self.now_us();
        let kind = outcome(receipt.status);
        if receipt.possible_duplicate {
            self.figures.flagged_by_hub.fetch_add(1, Ordering::Relaxed);
        }
        let first = {
            let mut known = self.known.lock();
            match known.get_mut(&receipt.message_id) {
                Some(Known::Part { id, part: 0 }) => Some(*id),
                Some(Known::Part { .. }) => None,
                Some(Known::Early(receipts)) => {
                    receipts.push((kind, receipt.possible_duplicate, at));
                    None
                }
                None => {
                    let early = Known::Early(vec![(kind, receipt.possible_duplicate, at)]);
                    known.insert(receipt.message_id, early);
                    None
                }
            }
        };
        if let Some(id) = first {
            let flagged = receipt.possible_duplicate;
            self.tally
                .lock()
                .receipt(id, kind, flagged, at, &self.books);
        }
    }

    /// Receipts for ids no answer ever gave: messages the hub took whose `submit_sm_resp`
    /// died with it (the client sent them again).
    pub fn receipts_for_unknown_ids(&self) -> u64 {
        self.known
            .lock()
            .values()
            .filter(|k| matches!(k, Known::Early(_)))
            .count() as u64
    }

    /// The hub's id of message `id`'s first part, for each of `ids` that has one.
    pub fn hub_ids(&self, ids: &[u64]) -> HashMap<u64, Box<str>> {
        let wanted: std::collections::HashSet<u64> = ids.iter().copied().collect();
        self.known
            .lock()
            .iter()
            .filter_map(|(hub_id, k)| match k {
                Known::Part { id, part: 0 } if wanted.contains(id) => Some((*id, hub_id.clone())),
                _ => None,
            })
            .collect()
    }

    /// Unbinds.
    pub async fn close(&self) {
        self.smpp.close(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_statuses_map_to_the_routers_refusal_reasons() {
        assert_eq!(REASONS[reason(0x0B)], "invalid");
        assert_eq!(REASONS[reason(0x45)], "no_route");
        assert_eq!(REASONS[reason(0x14)], "overloaded");
        assert_eq!(REASONS[reason(0x400)], "opted_out");
        assert_eq!(REASONS[reason(0x403)], "insufficient_funds");
    }
}
