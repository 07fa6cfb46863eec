//! Compaction: the newest compacted file and the closed segments after it folded into one
//! compacted file that holds only what recovery needs (every unfinished message in its last
//! state, finished ones the gateway has not acknowledged, the counters and the watermark), so
//! the directory and the recovery time follow the live messages, not the history.
//!
//! Crash-safe by order: the new file is written under a `.tmp` name and synced, renamed (one
//! atomic step), the directory synced; only then are the files it supersedes removed, and a
//! leftover of any step is ignored or removed by the next recovery.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::JournalError;
use crate::recover::Fold;
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
    let mut fold = Fold::default();
    let mut bytes_before = 0;
    for path in &inputs {
        if stop.load(Ordering::Relaxed) {
            return Ok(Compacted::default());
        }
        bytes_before += std::fs::metadata(path).map_or(0, |m| m.len());
        fold.read(path, false)?;
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
    let (mut records, mut bytes_after, mut failed) = (0u64, 0u64, None);
    fold.compacted(|payload| {
        if failed.is_some() {
            return;
        }
        if stop.load(Ordering::Relaxed) {
            failed = Some(std::io::Error::from(std::io::ErrorKind::Interrupted));
            return;
        }
        segment::write_payload(payload, &mut buf);
        records += 1;
        if buf.len() >= CHUNK {
            bytes_after += buf.len() as u64;
            failed = file.write_all(&buf).err();
            buf.clear();
        }
    });
    if let Some(e) = failed {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(Compacted::default());
        }
        return Err(JournalError::io(&tmp, e));
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
