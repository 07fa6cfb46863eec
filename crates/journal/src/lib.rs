//! The smsroute journal: every step of a message's life (accepted, each attempt, the carrier's
//! ids, the terminal status, the gateway's acknowledgement) appended to a segmented log, with
//! group commit (one `fdatasync` covers every record of a batch), and recovered after a crash
//! into each unfinished message's last state. Frames carry a CRC-32; a torn tail is cut off at
//! the last whole record, damage anywhere else is reported with its file and offset. Closed
//! segments are compacted in the background into one file that holds only the unfinished and
//! unacknowledged messages, so the directory and recovery follow the live messages.
//!
//! The owner (the engine's dispatcher) appends to its own buffer without a lock; a sync thread
//! writes what each [`Writer::flush`] hands it and reports the durable sequence number.
//! `docs/journal.md` describes the format and the measurements.
//!
//! # Example
//! ```
//! use std::borrow::Cow;
//! use smsroute_journal::{Journal, JournalOptions, Record, State};
//! use smsroute_types::{Message, MessageId};
//!
//! let dir = std::env::temp_dir().join(format!("journal-doc-{}", std::process::id()));
//! let options = JournalOptions::new(&dir);
//! let (mut writer, recovered) = Journal::open(&options, Box::new(|_durable| {})).unwrap();
//! assert!(recovered.unfinished.is_empty());
//!
//! let message = Message::builder("447700900123", "ACME", "Your code is 1234")
//!     .id(MessageId(1))
//!     .build()
//!     .unwrap();
//! let seq = writer
//!     .append(&Record::Accepted { message: Cow::Borrowed(&message), at: 1 })
//!     .unwrap();
//! writer.close().unwrap(); // flushes and syncs
//!
//! let (writer, recovered) = Journal::open(&options, Box::new(|_| {})).unwrap();
//! assert_eq!(seq, 1);
//! assert_eq!(recovered.unfinished[0].message.id(), MessageId(1));
//! assert_eq!(recovered.unfinished[0].state, State::Queued);
//! drop(writer);
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod compact;
mod record;
mod recover;
mod segment;
mod spare;
mod writer;

pub use compact::Compacted;
pub use record::{DecodeError, Finish, Record, unix_nanos};
pub use recover::{Recovered, Replay, State, Unfinished};
pub use segment::{Damage, MAX_RECORD};
pub use writer::{Flushed, OnDurable, Writer};

/// When a record counts as durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// After the `fdatasync` that covers its batch (group commit). The default.
    #[default]
    Batch,
    /// After an `fdatasync` of its own: one per record, for comparison.
    Always,
    /// Once written to the operating system, never synced: survives a crash of the process,
    /// not of the machine.
    None,
}

/// How the journal is kept.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// The directory of the segments (created if missing).
    pub dir: PathBuf,
    /// When a record is durable.
    pub sync: SyncMode,
    /// At most one sync per interval: records arriving meanwhile join the next batch.
    /// Default 1 ms.
    pub batch_interval: Duration,
    /// A segment past this size is closed and the next one opened. Default 64 MiB.
    pub segment_bytes: u64,
    /// Bytes waiting for the disk past which [`Writer::flush`] says [`Flushed::Backlogged`].
    /// Default 64 MiB.
    pub max_pending_bytes: usize,
    /// Once this many segments have closed since the last compaction, a background thread
    /// folds them into one compacted file (0: never). Default 4.
    pub compact_after_segments: usize,
    /// Write each next segment ahead of use (zeros, synced, by a background thread), so
    /// syncs overwrite written blocks rather than grow the file: faster syncs, at the cost of
    /// writing each segment's bytes twice. Ignored with `sync = "none"`. Default true.
    pub preallocate: bool,
}

impl JournalOptions {
    /// The defaults, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalOptions {
            dir: dir.into(),
            sync: SyncMode::Batch,
            batch_interval: Duration::from_millis(1),
            segment_bytes: 64 << 20,
            max_pending_bytes: 64 << 20,
            compact_after_segments: 4,
            preallocate: true,
        }
    }
}

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file or directory operation failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        error: std::io::Error,
    },
    /// A record before the end of the journal is damaged.
    #[error("{}: offset {offset}: {problem}", path.display())]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damaged frame starts.
        offset: u64,
        /// What is wrong.
        problem: Damage,
    },
    /// A record larger than [`MAX_RECORD`] bytes.
    #[error("a record of {0} bytes is larger than the journal's limit of {MAX_RECORD}")]
    TooLarge(usize),
    /// An earlier write or sync failed (logged then): nothing more can be made durable.
    #[error("the journal failed earlier; nothing more can be made durable")]
    Failed,
}

impl JournalError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        JournalError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Opening a journal directory.
pub struct Journal;

impl Journal {
    /// Recovers what `options.dir` holds (creating it if missing), then starts a writer on a
    /// new segment; `on_durable` hears each durable sequence number.
    pub fn open(
        options: &JournalOptions,
        on_durable: OnDurable,
    ) -> Result<(Writer, Recovered), JournalError> {
        std::fs::create_dir_all(&options.dir).map_err(|e| JournalError::io(&options.dir, e))?;
        let recovered = recover::recover(&options.dir)?;
        tracing::info!(dir = %options.dir.display(), segments = recovered.segments,
            records = recovered.records, unfinished = recovered.unfinished.len(),
            elapsed_ms = recovered.elapsed.as_millis() as u64, "journal recovered");
        let writer = Writer::start(options, &recovered, on_durable)?;
        Ok((writer, recovered))
    }

    /// Compacts `dir` now: every segment folded into one compacted file (torn tails cut off
    /// first, as recovery does). For a journal no writer has open (offline, or a test); a
    /// running writer compacts in the background (`compact_after_segments`).
    pub fn compact(dir: &Path) -> Result<Compacted, JournalError> {
        recover::recover(dir)?;
        compact::compact(dir, u64::MAX, &std::sync::atomic::AtomicBool::new(false))
    }
}
