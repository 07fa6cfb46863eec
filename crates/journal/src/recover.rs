//! Recovery: every segment read in order and folded into each message's last state. A torn
//! tail of the newest segment is cut off (the file truncated to its last whole record);
//! damage anywhere else stops recovery with the file and offset.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use smsroute_types::{Message, MessageId};

use crate::JournalError;
use crate::record::{Finish, Record};
use crate::segment::{self, End};

/// What a message was doing when the journal stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Accepted, not yet handed to a carrier (queued, or scheduled by its not-before).
    Queued,
    /// Attempt `attempt` was handed to `carrier` and no answer was recorded: it may or may
    /// not have reached the carrier (the timeout class; a resend is a possible duplicate).
    InFlight {
        /// The carrier's id.
        carrier: String,
        /// 1-based.
        attempt: u32,
    },
    /// The carrier accepted it; waiting for receipts under these ids.
    AwaitingReceipt {
        /// The carrier's id.
        carrier: String,
        /// The carrier's message id of each part.
        carrier_ids: Vec<Box<str>>,
    },
    /// Waiting to be tried again not before `at` (Unix nanoseconds).
    Retrying {
        /// Unix nanoseconds.
        at: u64,
    },
}

/// A message with no terminal status in the journal.
#[derive(Clone, Debug, PartialEq)]
pub struct Unfinished {
    /// The message as accepted (its id, validity and not-before included).
    pub message: Message,
    /// When it was accepted, Unix nanoseconds: its deadline is this plus its validity.
    pub accepted_at: u64,
    /// Attempts handed to carriers so far.
    pub attempts: u32,
    /// Where it was.
    pub state: State,
}

/// A finished message whose terminal event the gateway had not acknowledged.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// The message as accepted.
    pub message: Message,
    /// What it ended as.
    pub status: Finish,
    /// Its place in the acknowledgement order.
    pub ack: u64,
    /// Attempts handed to carriers.
    pub attempts: u32,
    /// The carrier of the last attempt, if any.
    pub carrier: Option<String>,
    /// The carrier's message ids of the last accepted attempt.
    pub carrier_ids: Vec<Box<str>>,
    /// A submit may have reached the carrier twice.
    pub possible_duplicate: bool,
}

/// Everything the journal held.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Messages to resume, in the order they were accepted.
    pub unfinished: Vec<Unfinished>,
    /// Finished messages whose terminal event the gateway has not acknowledged, in their
    /// acknowledgement order: to emit again, flagged as replays.
    pub unacknowledged: Vec<Replay>,
    /// The gateway's acknowledgement watermark.
    pub acknowledged: u64,
    /// The highest place in the acknowledgement order given (the next terminal event's
    /// follows it).
    pub last_ack: u64,
    /// The highest message id recorded (the next assigned id follows it).
    pub last_id: MessageId,
    /// Records read.
    pub records: u64,
    /// Segments read.
    pub segments: u64,
    /// Bytes of a torn tail cut off the newest segment.
    pub torn_bytes: u64,
    /// The number the next segment takes.
    pub next_segment: u64,
    /// How long reading took.
    pub elapsed: std::time::Duration,
}

struct Entry {
    order: u64,
    message: Option<Message>,
    accepted_at: u64,
    attempts: u32,
    state: State,
    carrier: Option<String>,
    carrier_ids: Vec<Box<str>>,
    /// Status, acknowledgement place, possible duplicate.
    finished: Option<(Finish, u64, bool)>,
}

/// The fold of every record read so far.
#[derive(Default)]
struct Fold {
    entries: HashMap<u64, Entry>,
    /// Finished, not yet acknowledged: acknowledgement place → message id.
    waiting: BTreeMap<u64, u64>,
    acknowledged: u64,
    last_ack: u64,
}

/// Reads every segment of `dir` (which must exist).
pub(crate) fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let started = Instant::now();
    let segments = segment::list(dir).map_err(|e| JournalError::io(dir, e))?;
    let mut fold = Fold::default();
    let mut out = Recovered {
        next_segment: segments.last().map_or(1, |(n, _)| n + 1),
        segments: segments.len() as u64,
        ..Recovered::default()
    };
    let mut order = 0u64;
    for (i, (_, path)) in segments.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
        let last = i + 1 == segments.len();
        let end = segment::scan(&bytes, last, |_, record| {
            out.records += 1;
            if let Some(id) = record.id() {
                out.last_id = out.last_id.max(id);
            }
            order += 1;
            fold.apply(order, record);
        });
        match end {
            End::Clean => {}
            End::Torn { offset } => {
                out.torn_bytes = bytes.len() as u64 - offset;
                tracing::warn!(segment = %path.display(), offset, cut = out.torn_bytes,
                    "journal: torn tail cut off at the last whole record");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| JournalError::io(path, e))?;
                file.set_len(offset)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| JournalError::io(path, e))?;
            }
            End::Corrupt { offset, problem } => {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset,
                    problem,
                });
            }
        }
    }
    let mut unfinished = Vec::new();
    let mut unacknowledged = Vec::new();
    for (_, entry) in fold.entries {
        match (entry.finished, entry.message) {
            (Some((status, ack, possible_duplicate)), Some(message)) => {
                unacknowledged.push(Replay {
                    message,
                    status,
                    ack,
                    attempts: entry.attempts,
                    carrier: entry.carrier,
                    carrier_ids: entry.carrier_ids,
                    possible_duplicate,
                })
            }
            (None, Some(message)) => unfinished.push((
                entry.order,
                Unfinished {
                    message,
                    accepted_at: entry.accepted_at,
                    attempts: entry.attempts,
                    state: entry.state,
                },
            )),
            // Steps of a message whose acceptance was compacted away once it was finished and
            // acknowledged.
            (_, None) => {}
        }
    }
    unfinished.sort_by_key(|(order, _)| *order);
    unacknowledged.sort_by_key(|r| r.ack);
    out.unfinished = unfinished.into_iter().map(|(_, u)| u).collect();
    out.unacknowledged = unacknowledged;
    out.acknowledged = fold.acknowledged;
    out.last_ack = fold.last_ack;
    out.elapsed = started.elapsed();
    Ok(out)
}

impl Fold {
    fn apply(&mut self, order: u64, record: Record<'static>) {
        let id = match record {
            Record::Acknowledged { upto } => {
                self.acknowledged = self.acknowledged.max(upto);
                while let Some(entry) = self.waiting.first_entry() {
                    if *entry.key() > upto {
                        break;
                    }
                    self.entries.remove(&entry.remove());
                }
                return;
            }
            ref r => r.id().expect("every other record names its message").0,
        };
        let entry = self.entries.entry(id).or_insert(Entry {
            order,
            message: None,
            accepted_at: 0,
            attempts: 0,
            state: State::Queued,
            carrier: None,
            carrier_ids: Vec::new(),
            finished: None,
        });
        match record {
            Record::Accepted { message, at } => {
                entry.message = Some(message.into_owned());
                entry.accepted_at = at;
                entry.order = order;
            }
            Record::Attempt {
                carrier, attempt, ..
            } => {
                entry.attempts = entry.attempts.max(attempt);
                entry.carrier = Some(carrier.to_string());
                entry.state = State::InFlight {
                    carrier: carrier.into_owned(),
                    attempt,
                };
            }
            Record::Submitted {
                carrier,
                carrier_ids,
                ..
            } => {
                entry.carrier_ids = carrier_ids.to_vec();
                entry.state = State::AwaitingReceipt {
                    carrier: carrier.into_owned(),
                    carrier_ids: carrier_ids.into_owned(),
                };
            }
            Record::Retrying { at, .. } => entry.state = State::Retrying { at },
            Record::Finished {
                status,
                ack,
                possible_duplicate,
                ..
            } => {
                self.last_ack = self.last_ack.max(ack);
                if ack <= self.acknowledged {
                    self.entries.remove(&id);
                } else {
                    entry.finished = Some((status, ack, possible_duplicate));
                    self.waiting.insert(ack, id);
                }
            }
            Record::Acknowledged { .. } => unreachable!("handled above"),
        }
    }
}
