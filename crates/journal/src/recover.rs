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
        /// Parts whose delivered receipt came already (0-based), in the order they came.
        delivered: Vec<u32>,
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
    /// A submit may have reached a carrier twice already.
    pub possible_duplicate: bool,
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

/// An `Accepted` record as read: its bytes, decoded into a message only if recovery hands it
/// out (most messages finish and never need it).
pub(crate) struct Stored {
    payload: Box<[u8]>,
    /// Where it was read, for the error if it does not decode: the file's index in the fold's
    /// list, and the frame's offset.
    file: u32,
    offset: u64,
}

pub(crate) struct Entry {
    order: u64,
    message: Option<Stored>,
    accepted_at: u64,
    attempts: u32,
    state: State,
    carrier: Option<String>,
    carrier_ids: Vec<Box<str>>,
    /// Status, acknowledgement place, possible duplicate.
    finished: Option<(Finish, u64, bool)>,
    /// A `Flagged` record came.
    flagged: bool,
}

/// The fold of every record read so far: each message's last state.
#[derive(Default)]
pub(crate) struct Fold {
    /// Messages not finished, by id.
    entries: HashMap<u64, Entry>,
    /// Finished, not yet acknowledged, by acknowledgement place: the id and the message (kept
    /// apart from `entries`, so a gateway's own id used again after the first message finished
    /// starts a message of its own).
    finished: BTreeMap<u64, (u64, Entry)>,
    pub acknowledged: u64,
    pub last_ack: u64,
    pub last_id: MessageId,
    /// Records read.
    pub records: u64,
    /// The files read, in order.
    files: Vec<std::path::PathBuf>,
    /// The file being read was synced up to this offset (its last `Synced` record).
    synced: u64,
}

/// Reads `dir` (which must exist): the newest compacted file, then every segment after it.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let started = Instant::now();
    let listing = segment::list(dir).map_err(|e| JournalError::io(dir, e))?;
    segment::remove_stale(&listing.stale);
    let mut fold = Fold::default();
    let mut out = Recovered {
        next_segment: listing.next_segment(),
        segments: listing.segments.len() as u64,
        ..Recovered::default()
    };
    if let Some((_, path)) = &listing.compacted {
        fold.read(path, false)?;
    }
    for (i, (_, path)) in listing.segments.iter().enumerate() {
        let last = i + 1 == listing.segments.len();
        out.torn_bytes += fold.read(path, last)?;
    }
    out.records = fold.records;
    out.acknowledged = fold.acknowledged;
    out.last_ack = fold.last_ack;
    out.last_id = fold.last_id;
    let mut unfinished = Vec::new();
    let mut unacknowledged = Vec::new();
    let files = std::mem::take(&mut fold.files);
    let finished = std::mem::take(&mut fold.finished).into_values();
    for entry in fold.entries.into_values().chain(finished.map(|(_, e)| e)) {
        let message = match &entry.message {
            Some(stored) => Some(stored.message(&files)?),
            None => None,
        };
        match (entry.finished, message) {
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
                    possible_duplicate: entry.flagged,
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
    out.elapsed = started.elapsed();
    Ok(out)
}

/// How many zeros end `bytes`: a segment written ahead holds them after its last record.
fn zeros_at_end(bytes: &[u8]) -> usize {
    bytes.iter().rev().take_while(|b| **b == 0).count()
}

impl Fold {
    /// Folds one file's records in; `last` says whether it is the newest segment, whose torn
    /// tail is cut off (returns how many bytes were cut, zeros after them not counted).
    pub fn read(&mut self, path: &Path, last: bool) -> Result<u64, JournalError> {
        let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
        let file = self.files.len() as u32;
        self.files.push(path.to_path_buf());
        self.synced = 0;
        let end = segment::scan(&bytes, last, |offset, payload| {
            self.apply_payload(file, offset, payload)
        });
        match end {
            End::Clean => Ok(0),
            End::Torn { offset: 0 } => {
                // Created, header not yet whole: the crash came before any record. Removed,
                // or it would be a damaged older segment once the next one is created.
                tracing::warn!(segment = %path.display(), bytes = bytes.len(),
                    "journal: a segment without a whole header removed");
                let dir = path.parent().unwrap_or(Path::new("."));
                std::fs::remove_file(path)
                    .and_then(|()| std::fs::File::open(dir)?.sync_all())
                    .map_err(|e| JournalError::io(path, e))?;
                Ok(bytes.len() as u64)
            }
            // Zeros after the last record: a segment written ahead that a crash kept from
            // being cut to its records on closing (or a file the system left longer than
            // what was written): nothing was torn.
            // (At least a frame header of them: a frame cut short is shorter or not zeros.)
            End::Torn { offset }
                if bytes.len() - offset as usize >= segment::HEADER
                    && zeros_at_end(&bytes) >= bytes.len() - offset as usize =>
            {
                tracing::info!(segment = %path.display(), offset,
                    "journal: zeros after the last record cut off");
                truncate(path, offset)?;
                Ok(0)
            }
            End::Torn { offset } => {
                let cut = bytes.len() as u64 - offset;
                tracing::warn!(segment = %path.display(), offset, cut,
                    "journal: torn tail cut off at the last whole record");
                truncate(path, offset)?;
                Ok(cut)
            }
            // Past the last synced point of the newest segment (no `Synced` frame, before or
            // after the damage, vouches for it): a write a crash of the machine left half
            // done (pages persisted out of order), never reported durable.
            End::Corrupt { offset, problem }
                if last
                    && offset >= self.synced
                    && segment::synced_after(&bytes, offset) <= offset =>
            {
                // The zeros after the damage (a segment written ahead) were never written.
                let written = bytes.len() - zeros_at_end(&bytes);
                let cut = (written as u64).saturating_sub(offset);
                tracing::warn!(segment = %path.display(), offset, cut, %problem,
                    "journal: unsynced tail damaged (a crash of the machine?) cut off");
                truncate(path, offset)?;
                Ok(cut)
            }
            End::Corrupt { offset, problem } => Err(JournalError::Corrupt {
                path: path.to_path_buf(),
                offset,
                problem,
            }),
        }
    }

    /// One frame's payload: an `Accepted` record is kept as read (its message decoded only
    /// if it is handed out), any other is decoded and applied.
    fn apply_payload(
        &mut self,
        file: u32,
        offset: u64,
        payload: &[u8],
    ) -> Result<(), crate::DecodeError> {
        if payload.first() != Some(&crate::record::ACCEPTED) {
            self.apply(Record::decode(payload)?);
            return Ok(());
        }
        let (at, id) = Record::accepted_header(payload)?;
        let stored = Stored {
            payload: payload.into(),
            file,
            offset,
        };
        self.accepted(id, at, stored);
        Ok(())
    }

    fn accepted(&mut self, id: MessageId, at: u64, stored: Stored) {
        self.records += 1;
        let order = self.records;
        self.last_id = self.last_id.max(id);
        // A new message: anything recorded under its id before belongs to an earlier one.
        let mut entry = Entry::new(order);
        entry.message = Some(stored);
        entry.accepted_at = at;
        self.entries.insert(id.0, entry);
    }

    fn apply(&mut self, record: Record<'static>) {
        if let Record::Accepted { message, at } = &record {
            let mut payload = Vec::new();
            record.encode(&mut payload);
            let stored = Stored {
                payload: payload.into(),
                file: 0,
                offset: 0,
            };
            return self.accepted(message.id(), *at, stored);
        }
        self.records += 1;
        let order = self.records;
        if let Some(id) = record.id() {
            self.last_id = self.last_id.max(id);
        }
        let id = match record {
            Record::Counters { last_id, last_ack } => {
                self.last_id = self.last_id.max(last_id);
                self.last_ack = self.last_ack.max(last_ack);
                return;
            }
            Record::Synced { upto } => {
                self.synced = self.synced.max(upto);
                return;
            }
            Record::Acknowledged { upto } => {
                self.acknowledged = self.acknowledged.max(upto);
                while let Some(entry) = self.finished.first_entry() {
                    if *entry.key() > upto {
                        break;
                    }
                    entry.remove();
                }
                return;
            }
            Record::Finished {
                id,
                status,
                ack,
                possible_duplicate,
            } => {
                self.last_ack = self.last_ack.max(ack);
                let mut entry = self
                    .entries
                    .remove(&id.0)
                    .unwrap_or_else(|| Entry::new(order));
                if ack > self.acknowledged {
                    entry.finished = Some((status, ack, possible_duplicate));
                    self.finished.insert(ack, (id.0, entry));
                }
                return;
            }
            ref r => r.id().expect("every other record names its message").0,
        };
        let entry = self.entries.entry(id).or_insert_with(|| Entry::new(order));
        match record {
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
                    delivered: Vec::new(),
                };
            }
            Record::PartDelivered { part, .. } => {
                if let State::AwaitingReceipt { delivered, .. } = &mut entry.state
                    && !delivered.contains(&part)
                {
                    delivered.push(part);
                }
            }
            Record::Retrying { at, .. } => entry.state = State::Retrying { at },
            Record::Flagged { .. } => entry.flagged = true,
            Record::Accepted { .. }
            | Record::Finished { .. }
            | Record::Acknowledged { .. }
            | Record::Counters { .. }
            | Record::Synced { .. } => unreachable!("handled above"),
        }
    }
}

/// Cuts `path` to `len` bytes, synced.
fn truncate(path: &Path, len: u64) -> Result<(), JournalError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| JournalError::io(path, e))
}

impl Stored {
    /// The message, decoded; an error names the file and offset it was read at.
    fn message(&self, files: &[std::path::PathBuf]) -> Result<Message, JournalError> {
        let damage = |problem| JournalError::Corrupt {
            path: files.get(self.file as usize).cloned().unwrap_or_default(),
            offset: self.offset,
            problem,
        };
        match Record::decode(&self.payload) {
            Ok(Record::Accepted { message, .. }) => Ok(message.into_owned()),
            Ok(_) => Err(damage(crate::Damage::Record(crate::DecodeError::Kind(
                self.payload[0],
            )))),
            Err(e) => Err(damage(crate::Damage::Record(e))),
        }
    }
}

impl Entry {
    fn new(order: u64) -> Entry {
        Entry {
            order,
            message: None,
            accepted_at: 0,
            attempts: 0,
            state: State::Queued,
            carrier: None,
            carrier_ids: Vec::new(),
            finished: None,
            flagged: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{MAGIC, write_payload};

    #[test]
    fn a_stored_message_that_does_not_decode_names_its_file_and_offset() {
        let dir = std::env::temp_dir().join(format!("smsroute-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let message = Message::builder("447700900123", "ACME", "hi")
            .id(MessageId(7))
            .build()
            .unwrap();
        let mut payload = Vec::new();
        Record::Accepted {
            message: std::borrow::Cow::Borrowed(&message),
            at: 1,
        }
        .encode(&mut payload);
        // The destination's digits become letters: the frame is whole, the message is not.
        let to = payload
            .windows(12)
            .position(|w| w == b"447700900123")
            .unwrap();
        payload[to..to + 3].copy_from_slice(b"abc");
        let mut bytes = MAGIC.to_vec();
        let mut first = Vec::new();
        Record::Acknowledged { upto: 0 }.encode(&mut first);
        write_payload(&first, &mut bytes);
        let offset = bytes.len() as u64;
        write_payload(&payload, &mut bytes);
        std::fs::write(dir.join(segment::file_name(1)), &bytes).unwrap();
        match recover(&dir) {
            Err(JournalError::Corrupt {
                path,
                offset: at,
                problem: crate::Damage::Record(crate::DecodeError::Message(_)),
            }) => {
                assert_eq!(path, dir.join(segment::file_name(1)));
                assert_eq!(at, offset);
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
