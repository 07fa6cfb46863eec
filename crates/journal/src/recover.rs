//! Recovery: every segment read in order and folded into each message's last state. A torn
//! tail of the newest segment is cut off (the file truncated to its last whole record);
//! damage anywhere else stops recovery with the file and offset.

use std::collections::HashMap;
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

/// Everything the journal held.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Messages to resume, in the order they were accepted.
    pub unfinished: Vec<Unfinished>,
    /// Finished messages whose terminal event the gateway has not acknowledged: to emit
    /// again, flagged as replays.
    pub unacknowledged: Vec<(MessageId, Finish)>,
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
    finished: Option<Finish>,
}

/// Reads every segment of `dir` (which must exist).
pub(crate) fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let started = Instant::now();
    let segments = segment::list(dir).map_err(|e| JournalError::io(dir, e))?;
    let mut entries: HashMap<u64, Entry> = HashMap::new();
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
            let id = record.id();
            out.last_id = out.last_id.max(id);
            order += 1;
            apply(&mut entries, order, record);
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
    for (id, entry) in entries {
        match (entry.finished, entry.message) {
            (Some(finish), _) => unacknowledged.push((entry.order, MessageId(id), finish)),
            (None, Some(message)) => unfinished.push((
                entry.order,
                Unfinished {
                    message,
                    accepted_at: entry.accepted_at,
                    attempts: entry.attempts,
                    state: entry.state,
                },
            )),
            // Steps of a message whose acceptance was compacted away after it finished.
            (None, None) => {}
        }
    }
    unfinished.sort_by_key(|(order, _)| *order);
    unacknowledged.sort_by_key(|(order, ..)| *order);
    out.unfinished = unfinished.into_iter().map(|(_, u)| u).collect();
    out.unacknowledged = unacknowledged
        .into_iter()
        .map(|(_, id, f)| (id, f))
        .collect();
    out.elapsed = started.elapsed();
    Ok(out)
}

fn apply(entries: &mut HashMap<u64, Entry>, order: u64, record: Record<'static>) {
    let id = record.id().0;
    if let Record::Acknowledged { .. } = record {
        entries.remove(&id);
        return;
    }
    let entry = entries.entry(id).or_insert(Entry {
        order,
        message: None,
        accepted_at: 0,
        attempts: 0,
        state: State::Queued,
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
            entry.state = State::AwaitingReceipt {
                carrier: carrier.into_owned(),
                carrier_ids: carrier_ids.into_owned(),
            };
        }
        Record::Retrying { at, .. } => entry.state = State::Retrying { at },
        Record::Finished { status, .. } => {
            entry.finished = Some(status);
            entry.message = None;
        }
        Record::Acknowledged { .. } => unreachable!("handled above"),
    }
}
