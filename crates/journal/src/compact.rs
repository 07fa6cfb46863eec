//! Compaction: the newest compacted file and the closed segments after it copied into one
//! compacted file without the messages that are finished and acknowledged, so the directory
//! and the recovery time follow the live messages, not the history.
//!
//! Two streaming passes over the inputs, neither holding a file or the live messages in
//! memory (millions of messages may wait days for their receipts): the first notes the
//! watermark, the counters and each finished message's acknowledgement place (memory for the
//! messages that finished in the inputs only); the second copies every record as it is, in
//! its order, except those of a message's life that ended at or below the watermark, and the
//! bookkeeping records (`Synced`, `Counters`, `Acknowledged`) the compacted file replaces
//! with one `Counters` and one `Acknowledged` at its head. Recovery reads the result exactly
//! as it read the inputs, less what was dropped.
//!
//! Crash-safe by order: the new file is written under a `.tmp` name and synced, renamed (one
//! atomic step), the directory synced; only then are the files it supersedes removed, and a
//! leftover of any step is ignored or removed by the next recovery.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use smallvec::SmallVec;
use smsroute_types::MessageId;

use crate::JournalError;
use crate::record::{ACCEPTED, ACKNOWLEDGED, COUNTERS, DecodeError, FINISHED, Record};
use crate::segment::{self, MAGIC};

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// The last segment the compacted file covers (0: there was nothing to compact).
    pub covered: u64,
    /// Files folded in (and removed).
    pub files: usize,
    /// Their bytes.
    pub bytes_before: u64,
    /// The compacted file's bytes.
    pub bytes_after: u64,
    /// Records in the compacted file.
    pub records: u64,
}

/// Buffered bytes written out at a time.
const CHUNK: usize = 1 << 20;

/// What the first pass learns.
#[derive(Default)]
struct Plan {
    acknowledged: u64,
    last_id: MessageId,
    last_ack: u64,
    /// Each message that finished in the inputs: the acknowledgement place of each of its
    /// lives, in order (a gateway's own id may start a new message once the first finished).
    finished: HashMap<u64, SmallVec<[u64; 1]>, ahash::RandomState>,
}

impl Plan {
    fn note(&mut self, payload: &[u8]) -> Result<(), DecodeError> {
        let peek = Record::peek(payload)?;
        match (peek.kind, peek.id) {
            (ACCEPTED, Some(id)) => self.last_id = self.last_id.max(id),
            (FINISHED, Some(id)) => {
                self.last_ack = self.last_ack.max(peek.value);
                self.finished.entry(id.0).or_default().push(peek.value);
            }
            (ACKNOWLEDGED, _) => self.acknowledged = self.acknowledged.max(peek.value),
            (COUNTERS, _) => {
                self.last_id = self.last_id.max(MessageId(peek.value));
                self.last_ack = self.last_ack.max(peek.second);
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the second pass copies this record; `lives` counts each finished message's
    /// lives passed so far.
    fn keep(&self, payload: &[u8], lives: &mut HashMap<u64, u32>) -> Result<bool, DecodeError> {
        let peek = Record::peek(payload)?;
        // Bookkeeping (no message): replaced by the head of the compacted file.
        let Some(id) = peek.id else {
            return Ok(false);
        };
        let Some(acks) = self.finished.get(&id.0) else {
            return Ok(true);
        };
        let life = lives.entry(id.0).or_default();
        let done = acks
            .get(*life as usize)
            .is_some_and(|ack| *ack <= self.acknowledged);
        *life += u32::from(peek.kind == FINISHED);
        Ok(!done)
    }
}

/// Compacts the newest compacted file and every segment up to `upto` (all closed). Gives up
/// early, changing nothing, once `stop` is set (the writer is closing): the next run starts
/// over.
pub(crate) fn compact(dir: &Path, upto: u64, stop: &AtomicBool) -> Result<Compacted, JournalError> {
    let started = Instant::now();
    let listing = segment::list(dir).map_err(|e| JournalError::io(dir, e))?;
    let segments: Vec<&(u64, PathBuf)> = listing
        .segments
        .iter()
        .filter(|(n, _)| *n <= upto)
        .collect();
    let Some((covered, _)) = segments.last().copied() else {
        return Ok(Compacted::default());
    };
    let covered = *covered;
    let inputs: Vec<&PathBuf> = listing
        .compacted
        .iter()
        .chain(segments.iter().copied())
        .map(|(_, p)| p)
        .collect();
    let gave_up = || stop.load(Ordering::Relaxed);
    let mut plan = Plan::default();
    let mut bytes_before = 0;
    for path in &inputs {
        if gave_up() {
            return Ok(Compacted::default());
        }
        bytes_before += std::fs::metadata(path).map_or(0, |m| m.len());
        segment::read_closed(path, |_, payload| plan.note(payload))?;
    }
    let path = dir.join(segment::compacted_name(covered));
    let tmp = dir.join(format!("{}.tmp", segment::compacted_name(covered)));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| JournalError::io(&p, e)
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    buf.extend_from_slice(MAGIC);
    segment::write_frame(
        &Record::Counters {
            last_id: plan.last_id,
            last_ack: plan.last_ack,
        },
        &mut buf,
    );
    segment::write_frame(
        &Record::Acknowledged {
            upto: plan.acknowledged,
        },
        &mut buf,
    );
    let (mut records, mut bytes_after) = (2u64, 0u64);
    let mut lives = HashMap::new();
    let mut copy = |path: &Path, buf: &mut Vec<u8>| -> Result<bool, JournalError> {
        if gave_up() {
            return Ok(false);
        }
        let mut failed = None;
        segment::read_closed(path, |_, payload| {
            if failed.is_none() && plan.keep(payload, &mut lives)? {
                segment::write_payload(payload, buf);
                records += 1;
                if buf.len() >= CHUNK {
                    bytes_after += buf.len() as u64;
                    failed = file.write_all(buf).err();
                    buf.clear();
                }
            }
            Ok(())
        })?;
        match failed {
            Some(e) => Err(JournalError::io(&tmp, e)),
            None => Ok(true),
        }
    };
    for path in &inputs {
        match copy(path, &mut buf) {
            Ok(true) => {}
            outcome => {
                let _ = std::fs::remove_file(&tmp);
                return outcome.map(|_| Compacted::default());
            }
        }
    }
    bytes_after += buf.len() as u64;
    file.write_all(&buf)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    let superseded: Vec<PathBuf> = inputs
        .iter()
        .map(|p| (*p).clone())
        .chain(listing.stale.iter().cloned())
        .collect();
    segment::remove_stale(&superseded);
    tracing::info!(
        covered,
        files = inputs.len(),
        bytes_before,
        bytes_after,
        records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "journal compacted"
    );
    Ok(Compacted {
        covered,
        files: inputs.len(),
        bytes_before,
        bytes_after,
        records,
    })
}
