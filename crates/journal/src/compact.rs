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
use crate::segment::{self, Checksums, MAGIC};

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
    /// Each message that finished in the inputs: where each of its lives ended.
    finished: Lives,
}

/// Where each message that finished in the inputs ended: for each of its lives in order (a
/// gateway's own id may start a new message once the first finished), the position of its
/// `Finished` record and its acknowledgement place. The router assigns ids in order and
/// messages finish roughly in order, so most sit in a table indexed by id, where looking one
/// up touches memory next to the last one (a map spreads them: a cache miss a record, the
/// most of a compaction's time); ids outside the table's window, and ids with several lives,
/// are in a map.
#[derive(Default)]
struct Lives {
    /// The id of `dense[0]`.
    base: u64,
    /// (end, acknowledgement place) by id - `base`: place 0 (places start at 1) for none,
    /// [`SEVERAL`] for lives kept in `sparse`.
    dense: Vec<(u64, u64)>,
    /// Ids with a life in `dense`.
    in_dense: usize,
    /// Times the window moved ([`MAX_REBASES`]).
    rebases: u32,
    sparse: HashMap<u64, SmallVec<[(u64, u64); 1]>, ahash::RandomState>,
}

/// In [`Lives::dense`]: this id's lives are in the map.
const SEVERAL: u64 = u64::MAX;

/// The table grows to at most 4 slots per id it holds, plus this many.
const DENSE_SLACK: usize = 1 << 16;

/// The window moves at most this many times (ids not in order, as a gateway's own may be,
/// would move it at every message): past that, ids that do not fit go to the map.
const MAX_REBASES: u32 = 16;

impl Lives {
    fn note(&mut self, id: u64, end: u64, ack: u64) {
        if self.in_dense < 1024 && self.rebases < MAX_REBASES && !self.fits(id) {
            self.rebases += 1;
            // Few so far (outliers ahead of the run of ids): the window starts here.
            for (i, &(end, ack)) in self.dense.iter().enumerate() {
                if ack != 0 && ack != SEVERAL {
                    // Newer than any life of the id already in the map.
                    let lives = self.sparse.entry(self.base + i as u64).or_default();
                    lives.push((end, ack));
                }
            }
            self.dense.clear();
            self.in_dense = 0;
            // Room for ids a little older than this one, finishing a little later.
            self.base = id.saturating_sub(4096);
        }
        if self.fits(id) {
            let index = (id - self.base) as usize;
            if index >= self.dense.len() {
                self.dense.resize(index + 1, (0, 0));
            }
            let slot = &mut self.dense[index];
            match slot.1 {
                0 => {
                    *slot = (end, ack);
                    self.in_dense += 1;
                    return;
                }
                SEVERAL => {}
                _ => {
                    let first = std::mem::replace(slot, (0, SEVERAL));
                    self.sparse.entry(id).or_default().push(first);
                }
            }
        }
        self.sparse.entry(id).or_default().push((end, ack));
    }

    /// Whether `id` has (or may take) a slot in the table.
    fn fits(&self, id: u64) -> bool {
        id.checked_sub(self.base).is_some_and(|index| {
            index < self.dense.len() as u64 || index < 4 * (self.in_dense + DENSE_SLACK) as u64
        })
    }

    /// The lives of `id` that finished, in order (none: every record of it is still live). An
    /// id with a life in the map from before the table reached it and a later one in the table
    /// answers with the later one only: its earlier records are then judged by the later
    /// life's place, which is higher, so they are kept a compaction longer at worst, never
    /// dropped while their own life is unacknowledged.
    fn get(&self, id: u64) -> &[(u64, u64)] {
        let slot = id
            .checked_sub(self.base)
            .and_then(|index| self.dense.get(usize::try_from(index).ok()?));
        match slot {
            Some(slot) if slot.1 != 0 && slot.1 != SEVERAL => std::slice::from_ref(slot),
            _ if self.sparse.is_empty() => &[],
            _ => self.sparse.get(&id).map_or(&[], |lives| lives.as_slice()),
        }
    }
}

/// A record's place in the inputs: the input's index, then its offset in that file.
fn position(input: usize, offset: u64) -> u64 {
    ((input as u64) << 40) | offset
}

impl Plan {
    fn note(&mut self, position: u64, payload: &[u8]) -> Result<(), DecodeError> {
        let peek = Record::peek(payload)?;
        match (peek.kind, peek.id) {
            (ACCEPTED, Some(id)) => self.last_id = self.last_id.max(id),
            (FINISHED, Some(id)) => {
                self.last_ack = self.last_ack.max(peek.value);
                self.finished.note(id.0, position, peek.value);
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

    /// Whether the second pass copies the record at `position`: it belongs to the life that
    /// ends at the first `Finished` record at or after it (none: a life still going on).
    fn keep(&self, position: u64, payload: &[u8]) -> Result<bool, DecodeError> {
        let peek = Record::peek(payload)?;
        // Bookkeeping (no message): replaced by the head of the compacted file.
        let Some(id) = peek.id else {
            return Ok(false);
        };
        let done = (self.finished.get(id.0).iter())
            .find(|(end, _)| *end >= position)
            .is_some_and(|(_, ack)| *ack <= self.acknowledged);
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
    for (input, path) in inputs.iter().enumerate() {
        if gave_up() {
            return Ok(Compacted::default());
        }
        bytes_before += std::fs::metadata(path).map_or(0, |m| m.len());
        segment::read_closed(path, Checksums::Verify, |offset, _, payload| {
            plan.note(position(input, offset), payload)
        })?;
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
    let mut copy = |input: usize, path: &Path, buf: &mut Vec<u8>| -> Result<bool, JournalError> {
        if gave_up() {
            return Ok(false);
        }
        let mut failed = None;
        // The first pass checked every checksum: each kept frame is copied with its own.
        segment::read_closed(path, Checksums::PassOn, |offset, crc, payload| {
            if failed.is_none() && plan.keep(position(input, offset), payload)? {
                segment::copy_frame(payload, crc, buf);
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
    for (input, path) in inputs.iter().enumerate() {
        match copy(input, path, &mut buf) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Finish;
    use proptest::prelude::*;

    /// Which of `records` the second pass keeps: by the plan, and by the plain rule (each
    /// finished message's lives counted in a map as the records go by).
    fn decisions(records: &[Vec<u8>]) -> (Vec<bool>, Vec<bool>) {
        let mut plan = Plan::default();
        for (i, payload) in records.iter().enumerate() {
            plan.note(position(0, i as u64), payload).unwrap();
        }
        let mut acks: HashMap<u64, Vec<u64>> = HashMap::new();
        for payload in records {
            let peek = Record::peek(payload).unwrap();
            if let (FINISHED, Some(id)) = (peek.kind, peek.id) {
                acks.entry(id.0).or_default().push(peek.value);
            }
        }
        let mut lives: HashMap<u64, usize> = HashMap::new();
        let (mut by_plan, mut plain) = (Vec::new(), Vec::new());
        for (i, payload) in records.iter().enumerate() {
            by_plan.push(plan.keep(position(0, i as u64), payload).unwrap());
            let peek = Record::peek(payload).unwrap();
            plain.push(match peek.id {
                None => false,
                Some(id) => {
                    let life = lives.entry(id.0).or_default();
                    let done = acks
                        .get(&id.0)
                        .and_then(|a| a.get(*life))
                        .is_some_and(|ack| *ack <= plan.acknowledged);
                    *life += usize::from(peek.kind == FINISHED);
                    !done
                }
            });
        }
        (by_plan, plain)
    }

    proptest! {
        /// The table never drops a record the plain rule keeps (dropping one loses a live
        /// message), and decides exactly as it does for the router's ids in order.
        #[test]
        fn the_table_drops_only_what_the_plain_rule_drops(
            ops in proptest::collection::vec((0u64..48, 0u8..4), 1..300),
            scattered in any::<bool>(),
        ) {
            let mut records = Vec::new();
            let mut next_ack = 1;
            for (n, kind) in ops {
                let id = MessageId(if scattered {
                    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
                } else {
                    1_000 + n
                });
                let record = match kind {
                    0 | 1 => Record::Flagged { id },
                    2 => {
                        next_ack += 1;
                        Record::Finished {
                            id,
                            status: Finish::Sent,
                            ack: next_ack - 1,
                            possible_duplicate: false,
                        }
                    }
                    _ => Record::Acknowledged { upto: next_ack / 2 + n % 3 },
                };
                let mut bytes = Vec::new();
                record.encode(&mut bytes);
                records.push(bytes);
            }
            let (by_plan, plain) = decisions(&records);
            for (i, (kept, should)) in by_plan.iter().zip(&plain).enumerate() {
                prop_assert!(*kept || !*should, "record {i} dropped, live by the plain rule");
            }
            if !scattered {
                prop_assert_eq!(by_plan, plain);
            }
        }
    }

    #[test]
    fn lives_are_found_in_the_table_or_the_map() {
        let mut lives = Lives::default();
        // Outliers first (an old message finishing late), then a run of ids in order.
        lives.note(5, 1, 1);
        for id in 1_000_000..1_010_000 {
            lives.note(id, id * 10, id);
        }
        lives.note(999_000, 7, 2); // a little older than the run
        lives.note(1_000_005, 99, 3); // a second life
        lives.note(u64::MAX - 1, 8, 4); // far away
        assert!(lives.in_dense >= 9_999, "the run is in the table");
        assert_eq!(lives.get(5), &[(1, 1)]);
        assert_eq!(lives.get(1_000_001), &[(10_000_010, 1_000_001)]);
        assert_eq!(lives.get(999_000), &[(7, 2)]);
        assert_eq!(lives.get(1_000_005), &[(10_000_050, 1_000_005), (99, 3)]);
        assert_eq!(lives.get(u64::MAX - 1), &[(8, 4)]);
        assert_eq!(lives.get(1_010_000), &[] as &[(u64, u64)], "never finished");
        assert_eq!(lives.get(6), &[] as &[(u64, u64)]);
        assert!(lives.dense.len() < 4 * (lives.in_dense + DENSE_SLACK));
    }

    #[test]
    fn ids_out_of_order_go_to_the_map_without_moving_the_window_each_time() {
        let mut lives = Lives::default();
        let mut id = 1u64;
        for n in 0..10_000u64 {
            // Scattered over the whole range, as random own ids are.
            id = id
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lives.note(id | 1, n, n + 1);
        }
        assert!(lives.rebases <= MAX_REBASES);
        assert!(lives.dense.len() <= 4 * (lives.in_dense + DENSE_SLACK));
        assert!(lives.sparse.len() + lives.in_dense >= 9_990);
    }
}
