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
use smsroute_smpp::pdu::status::{self, vendor};
use smsroute_smpp::{EsmeConfig, SmppCarrier};
use smsroute_types::Message;

use super::process::{BINDS, PASSWORD, SYSTEM_ID};
use crate::ledger::{Books, REASONS, Tally};

/// How long after its first try the client gives up on a message the hub never answered.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// First pause between tries while the hub is down; it doubles up to [`MAX_RETRY_PAUSE`].
const RETRY_PAUSE: Duration = Duration::from_millis(20);
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What a hub id (of a message's first part) means to the client.
enum HubId {
    /// The first part of this message.
    Message(u64),
    /// Receipts for an id no answer has given yet: (outcome index, flagged, µs).
    Early(Vec<(usize, bool, u64)>),
}

/// Figures only this mode has.
#[derive(Default)]
pub(crate) struct ClientFigures {
    /// Submits that got no answer (in flight at a kill, or `ESME_RSYSERR`: the hub could
    /// not say in time whether it took the message): each message flagged, and sent again.
    pub unanswered: AtomicU64,
    /// Receipts flagged possible duplicate by the hub.
    pub flagged_by_hub: AtomicU64,
    /// Messages given up on [`GIVE_UP_AFTER`] after their first try, the hub unreachable.
    pub given_up: AtomicU64,
}

/// The binds, the ledger they feed, and the receipt matching.
pub(crate) struct Client {
    smpp: SmppCarrier,
    books: Arc<Books>,
    /// Shared by the clients of every node.
    pub tally: Arc<Mutex<Tally>>,
    known: Mutex<HashMap<Box<str>, HubId>>,
    pub figures: ClientFigures,
    origin: std::time::Instant,
    receipts: bool,
    /// The run is over: messages not yet answered are not sent again.
    stopping: std::sync::atomic::AtomicBool,
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

/// Whether a hub id names part K > 1 of a message (`N-K`).
fn later_part(hub_id: &str) -> bool {
    hub_id
        .split_once('-')
        .is_some_and(|(_, k)| k.parse::<u32>().is_ok_and(|k| k > 1))
}

/// The refusal reason (an index into [`REASONS`]) of a hub's SMPP status (docs/serve.md):
/// the router's own refusals by name, the client's throttle and a full queue as overloaded,
/// every other status (a malformed submit) as invalid.
fn reason(code: u32) -> usize {
    let name = match code {
        status::INVALID_DESTINATION_ADDRESS => "invalid",
        status::SUBMIT_FAILED => "no_route",
        status::QUEUE_FULL | status::THROTTLED => "overloaded",
        vendor::OPTED_OUT => "opted_out",
        vendor::FREQUENCY_CAP => "frequency_cap",
        vendor::QUIET_HOURS => "quiet_hours",
        vendor::INSUFFICIENT_FUNDS => "insufficient_funds",
        _ => "invalid",
    };
    reason_index(name)
}

/// The index of a refusal reason in [`REASONS`] (0, `invalid`, for a name it does not have).
fn reason_index(name: &str) -> usize {
    REASONS.iter().position(|r| *r == name).unwrap_or(0)
}

impl Client {
    /// Opens the binds to `port` (they connect, and reconnect after a kill, by themselves) and
    /// starts the receipt reader. Call inside the runtime.
    pub fn start(
        port: u16,
        window: u32,
        books: Arc<Books>,
        tally: Arc<Mutex<Tally>>,
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
            tally,
            known: Mutex::default(),
            figures: ClientFigures::default(),
            origin,
            receipts,
            stopping: Default::default(),
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

    /// Submits message `id` (intended in `second`) until the hub answers it, the hub stays
    /// unreachable [`GIVE_UP_AFTER`] its first try, or the run stops.
    pub async fn send(self: Arc<Self>, message: Arc<Message>, id: u64, second: usize) {
        let books = &self.books;
        let give_up = tokio::time::Instant::now() + GIVE_UP_AFTER;
        let mut attempt = 1;
        let mut pause = RETRY_PAUSE;
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
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
                // The hub may have it: sent again, flagged as a possible duplicate.
                Err(
                    SubmitError::Timeout
                    | SubmitError::ConnectionLost
                    | SubmitError::Rejected {
                        status: status::SYSTEM_ERROR,
                    },
                ) => {
                    self.figures.unanswered.fetch_add(1, Ordering::Relaxed);
                    self.tally.lock().flag_possible_duplicate(id);
                }
                Err(SubmitError::Rejected { status }) => {
                    self.refused(reason(status), second);
                    return;
                }
                // Not sent: the hub is down.
                Err(SubmitError::Unavailable(_)) => {}
            }
            if tokio::time::Instant::now() >= give_up {
                self.figures.given_up.fetch_add(1, Ordering::Relaxed);
                self.refused(reason_index("shutting_down"), second);
                return;
            }
            attempt += 1;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// A message of `second` counted refused, for reason `reason` (an index into [`REASONS`]).
    fn refused(&self, reason: usize, second: usize) {
        self.books.rejected_by_reason[reason].fetch_add(1, Ordering::Relaxed);
        self.books.rejected[second].fetch_add(1, Ordering::Relaxed);
    }

    /// The hub's ids for message `id`'s parts (the first part's is the one kept): receipts
    /// that came first are counted now.
    fn answered(&self, id: u64, parts: &[Box<str>]) {
        let Some(first) = parts.first() else {
            return;
        };
        let early = match self.known.lock().entry(first.clone()) {
            Entry::Vacant(v) => {
                v.insert(HubId::Message(id));
                Vec::new()
            }
            Entry::Occupied(mut o) => match std::mem::replace(o.get_mut(), HubId::Message(id)) {
                HubId::Early(receipts) => receipts,
                HubId::Message(_) => Vec::new(),
            },
        };
        let mut tally = self.tally.lock();
        for (kind, flagged, at) in early {
            tally.receipt(id, kind, flagged, at, &self.books);
        }
    }

    /// A receipt: the message's terminal status when it is for its first part (the hub
    /// names part K > 1 of message N `N-K`).
    fn receipt(&self, receipt: Receipt) {
        if later_part(&receipt.message_id) {
            return;
        }
        let at = self.now_us();
        let kind = outcome(receipt.status);
        if receipt.possible_duplicate {
            self.figures.flagged_by_hub.fetch_add(1, Ordering::Relaxed);
        }
        let first = {
            let mut known = self.known.lock();
            match known.get_mut(&receipt.message_id) {
                Some(HubId::Message(id)) => Some(*id),
                Some(HubId::Early(receipts)) => {
                    receipts.push((kind, receipt.possible_duplicate, at));
                    None
                }
                None => {
                    let early = HubId::Early(vec![(kind, receipt.possible_duplicate, at)]);
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
            .filter(|k| matches!(k, HubId::Early(_)))
            .count() as u64
    }

    /// The hub's id of message `id`'s first part, for each of `ids` that has one.
    pub fn hub_ids(&self, ids: &[u64]) -> HashMap<u64, Box<str>> {
        let wanted: std::collections::HashSet<u64> = ids.iter().copied().collect();
        self.known
            .lock()
            .iter()
            .filter_map(|(hub_id, k)| match k {
                HubId::Message(id) if wanted.contains(id) => Some((*id, hub_id.clone())),
                _ => None,
            })
            .collect()
    }

    /// Stops sending again what is unanswered, and unbinds.
    pub async fn close(&self) {
        self.stopping.store(true, Ordering::Release);
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

    #[test]
    fn receipts_of_later_parts_are_told_apart() {
        assert!(later_part("17-2") && later_part("17-10"));
        assert!(!later_part("17") && !later_part("17-1") && !later_part("17-x"));
    }
}
