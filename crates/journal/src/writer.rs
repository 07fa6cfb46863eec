//! The writer: the owner appends encoded frames to its own buffer (no lock, no allocation
//! once warm), `flush` hands the buffer to the sync thread (one lock per batch, not per
//! record), and the sync thread fills in the frames' checksums, writes every handed batch
//! with one `fdatasync` (group commit), then publishes the last durable sequence number.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::record::Record;
use crate::segment::{self, HEADER, MAGIC, MAX_RECORD};
use crate::spare::NotTaken;
use crate::{JournalError, JournalOptions, SyncMode};

/// Called by the sync thread with the highest durable sequence number after every batch.
pub type OnDurable = Box<dyn Fn(u64) + Send + Sync>;

/// Appends records; owned by one thread (the engine's dispatcher).
pub struct Writer {
    shared: Arc<Shared>,
    buf: Vec<u8>,
    /// Sequence number of the last record appended (records count from 1).
    appended: u64,
    thread: Option<JoinHandle<()>>,
    compactor: Option<JoinHandle<()>>,
    /// Writes the spare segments (`preallocate`).
    preparer: Option<crate::spare::Preparer>,
    max_pending: usize,
    /// Bytes appended since the writer started.
    bytes: u64,
}

/// What [`Writer::flush`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Handed over; the disk keeps up.
    Ok,
    /// Handed over, but more than `max_pending_bytes` wait for the disk: the owner should
    /// refuse new work until it catches up.
    Backlogged,
}

struct Pending {
    bytes: Vec<u8>,
    last: u64,
    closing: bool,
    /// Stop without writing what waits (a simulated crash).
    abandoned: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
    durable: AtomicU64,
    failed: AtomicBool,
    on_durable: OnDurable,
    /// The directory's bytes and files, as the sync thread and the compactor last saw them.
    disk_bytes: AtomicU64,
    files: AtomicU64,
    /// The writer is closing: a compaction under way gives up.
    stop_compaction: AtomicBool,
}

impl Writer {
    /// Starts the sync thread on a new segment after what recovery found, and the compactor.
    pub(crate) fn start(
        options: &JournalOptions,
        recovered: &crate::Recovered,
        on_durable: OnDurable,
    ) -> Result<Writer, JournalError> {
        let number = recovered.next_segment;
        crate::spare::remove_unfinished(&options.dir);
        let preallocate = options.preallocate && options.sync != SyncMode::None;
        if !preallocate {
            // One written ahead by an earlier run would never be used.
            crate::spare::remove(&options.dir);
        }
        let min_spare = preallocate.then_some(options.segment_bytes);
        let (file, capacity) = open_segment(&options.dir, number, min_spare)?;
        let (closed_tx, closed_rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(1 << 16),
                last: 0,
                closing: false,
                abandoned: false,
            }),
            ready: Condvar::new(),
            durable: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            on_durable,
            disk_bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            stop_compaction: AtomicBool::new(false),
        });
        shared.measure_disk(&options.dir);
        let (preparer, spare_tx) = if preallocate {
            let (dir, measured) = (options.dir.clone(), shared.clone());
            let (preparer, tx) =
                crate::spare::Preparer::start(&options.dir, move || measured.measure_disk(&dir))
                    .map_err(|e| JournalError::io(&options.dir, e))?;
            (Some(preparer), Some(tx))
        } else {
            (None, None)
        };
        let compactor = {
            let (dir, every, shared) = (
                options.dir.clone(),
                options.compact_after_segments,
                shared.clone(),
            );
            // Segments left by earlier runs count as closed.
            let pending = recovered.segments as usize;
            std::thread::Builder::new()
                .name("journal-compact".into())
                .spawn(move || {
                    lower_priority();
                    run_compactor(&dir, every, pending, number - 1, closed_rx, &shared)
                })
                .map_err(|e| JournalError::io(&options.dir, e))?
        };
        let mut syncer = Syncer {
            shared: shared.clone(),
            dir: options.dir.clone(),
            file,
            number,
            written: MAGIC.len() as u64,
            mode: options.sync,
            interval: options.batch_interval,
            segment_bytes: options.segment_bytes,
            closed: closed_tx,
            marker: Vec::with_capacity(32),
            capacity,
            spare: spare_tx,
        };
        let thread = std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || syncer.run())
            .map_err(|e| JournalError::io(&options.dir, e))?;
        Ok(Writer {
            shared,
            buf: Vec::with_capacity(1 << 16),
            appended: 0,
            thread: Some(thread),
            compactor: Some(compactor),
            preparer,
            max_pending: options.max_pending_bytes,
            bytes: 0,
        })
    }

    /// Appends a record to the current batch; returns its sequence number. Not durable until
    /// [`Writer::durable`] reaches it (after a [`Writer::flush`]).
    pub fn append(&mut self, record: &Record<'_>) -> Result<u64, JournalError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(JournalError::Failed);
        }
        let start = self.buf.len();
        // The checksum is the sync thread's to fill in.
        let len = segment::write_unsealed(record, &mut self.buf);
        if len > MAX_RECORD {
            self.buf.truncate(start);
            return Err(JournalError::TooLarge(len));
        }
        self.bytes += (self.buf.len() - start) as u64;
        self.appended += 1;
        Ok(self.appended)
    }

    /// Hands the records appended since the last flush to the sync thread.
    pub fn flush(&mut self) -> Result<Flushed, JournalError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(JournalError::Failed);
        }
        if self.buf.is_empty() {
            return Ok(Flushed::Ok);
        }
        let waiting = {
            let mut pending = self.shared.pending.lock();
            if pending.bytes.is_empty() {
                std::mem::swap(&mut pending.bytes, &mut self.buf);
            } else {
                pending.bytes.extend_from_slice(&self.buf);
                self.buf.clear();
            }
            pending.last = self.appended;
            pending.bytes.len()
        };
        self.shared.ready.notify_one();
        Ok(if waiting > self.max_pending {
            Flushed::Backlogged
        } else {
            Flushed::Ok
        })
    }

    /// Bytes appended since the writer started.
    pub fn bytes_appended(&self) -> u64 {
        self.bytes
    }

    /// The journal directory's size in bytes, the spare segment included: measured at start,
    /// at each new segment, after each spare and each compaction, plus what grew the open
    /// segment since.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    /// Files in the journal directory (segments, the compacted file, the spare), as last
    /// measured.
    pub fn files(&self) -> u64 {
        self.shared.files.load(Ordering::Relaxed)
    }

    /// The sequence number of the last record appended.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Every record up to this sequence number is durable (as the sync mode defines it).
    pub fn durable(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Flushes, waits for the sync thread to write and sync everything, and stops it.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.flush()?;
        self.stop();
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(JournalError::Failed);
        }
        Ok(())
    }

    /// Stops as a crash of the process would: what was appended or handed over but not yet
    /// written is thrown away (what the sync thread already wrote stays, as the operating
    /// system would keep it). For fault injection.
    pub fn abandon(mut self) {
        {
            let mut pending = self.shared.pending.lock();
            pending.abandoned = true;
            pending.closing = true;
        }
        self.buf.clear();
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(preparer) = &self.preparer {
            preparer.stop();
        }
        self.shared.pending.lock().closing = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The sync thread's end closed the compactor's channel; a compaction under way gives
        // up rather than hold the closing thread (the next start compacts again).
        self.shared.stop_compaction.store(true, Ordering::Relaxed);
        if let Some(compactor) = self.compactor.take() {
            let _ = compactor.join();
        }
        // Its requests ended with the sync thread.
        if let Some(preparer) = &mut self.preparer {
            preparer.join();
        }
    }
}

impl Shared {
    /// Measures the directory: its bytes and files.
    fn measure_disk(&self, dir: &Path) {
        let (mut bytes, mut files) = (0, 0);
        if let Ok(entries) = std::fs::read_dir(dir) {
            // Files only: the router keeps its parked messages in a directory beside them.
            for meta in entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
            {
                bytes += meta.len();
                files += 1;
            }
        }
        self.disk_bytes.store(bytes, Ordering::Relaxed);
        self.files.store(files, Ordering::Relaxed);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The sync thread's side: the open segment and the batching rule.
struct Syncer {
    shared: Arc<Shared>,
    dir: PathBuf,
    file: File,
    number: u64,
    written: u64,
    mode: SyncMode,
    interval: Duration,
    segment_bytes: u64,
    /// Tells the compactor each segment that closes.
    closed: std::sync::mpsc::Sender<u64>,
    /// The `Synced` frame written before each batch.
    marker: Vec<u8>,
    /// The open segment's length when it opened (a spare's, or its header's): writes below
    /// it overwrite written blocks.
    capacity: u64,
    /// Asks for a spare segment of so many bytes (`preallocate`), once a segment is half
    /// full.
    spare: Option<std::sync::mpsc::Sender<u64>>,
}

impl Syncer {
    fn run(&mut self) {
        let mut batch = Vec::with_capacity(1 << 16);
        loop {
            let last = {
                let mut pending = self.shared.pending.lock();
                while pending.bytes.is_empty() && !pending.closing {
                    self.shared.ready.wait(&mut pending);
                }
                if pending.abandoned {
                    // As a crash: the segment keeps whatever it holds past its records.
                    return;
                }
                if pending.bytes.is_empty() {
                    drop(pending);
                    // Closing: synced as the mode says (`none`: never).
                    if let Err(error) = self.trim(self.mode != SyncMode::None) {
                        tracing::warn!(dir = %self.dir.display(), segment = self.number,
                            %error, "journal: the last segment keeps its unused space");
                    }
                    return;
                }
                std::mem::swap(&mut pending.bytes, &mut batch);
                pending.last
            };
            let started = Instant::now();
            segment::seal_frames(&mut batch);
            if let Err(e) = self.write(&batch) {
                tracing::error!(dir = %self.dir.display(), segment = self.number, error = %e,
                    "journal write failed: no further record will be durable");
                self.shared.failed.store(true, Ordering::Relaxed);
                return;
            }
            batch.clear();
            self.shared.durable.store(last, Ordering::Release);
            (self.shared.on_durable)(last);
            // Let the next batch gather: at most one sync per interval.
            if let Some(rest) = self.interval.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    /// Writes a batch and makes it durable as the mode says; opens the next segment past
    /// the size limit.
    fn write(&mut self, batch: &[u8]) -> std::io::Result<()> {
        let before = self.written;
        match self.mode {
            SyncMode::Always => {
                // One sync per record: each frame written and synced on its own.
                let mut at = 0;
                while at < batch.len() {
                    let len = u32::from_le_bytes([
                        batch[at],
                        batch[at + 1],
                        batch[at + 2],
                        batch[at + 3],
                    ]) as usize;
                    self.file.write_all(&batch[at..at + HEADER + len])?;
                    self.file.sync_data()?;
                    at += HEADER + len;
                }
            }
            SyncMode::Batch => {
                // What came before is synced: said first, so recovery can tell a half-done
                // write after a power loss from damage to synced records.
                self.marker.clear();
                segment::write_frame(&Record::Synced { upto: self.written }, &mut self.marker);
                self.file.write_all(&self.marker)?;
                self.file.write_all(batch)?;
                self.file.sync_data()?;
                self.written += self.marker.len() as u64;
            }
            SyncMode::None => self.file.write_all(batch)?,
        }
        self.written += batch.len() as u64;
        // Only what grew the file is new on the disk.
        let grown = self.written.saturating_sub(self.capacity.max(before));
        self.shared.disk_bytes.fetch_add(grown, Ordering::Relaxed);
        let half = self.segment_bytes / 2;
        if let Some(spare) = &self.spare
            && before < half
            && self.written >= half
        {
            let _ = spare.send(self.segment_bytes);
        }
        if self.written >= self.segment_bytes {
            self.trim(true)?;
            let _ = self.closed.send(self.number);
            self.number += 1;
            let min_spare = self.spare.as_ref().map(|_| self.segment_bytes);
            let (file, capacity) =
                open_segment(&self.dir, self.number, min_spare).map_err(std::io::Error::other)?;
            (self.file, self.capacity) = (file, capacity);
            self.written = MAGIC.len() as u64;
            self.shared.measure_disk(&self.dir);
            tracing::debug!(
                segment = self.number,
                spare = capacity > self.written,
                "journal segment opened"
            );
        }
        Ok(())
    }

    /// Cuts the open segment to its records (a spare's unused zeros go), and syncs it all
    /// when `sync`.
    fn trim(&mut self, sync: bool) -> std::io::Result<()> {
        if self.capacity > self.written {
            self.file.set_len(self.written)?;
            self.capacity = self.written;
        }
        if sync {
            self.file.sync_all()?;
        }
        Ok(())
    }
}

/// The compactor thread: once `every` segments have closed since the last compaction (those
/// left by earlier runs count), compacts up to the last closed one. Ends when the sync thread
/// does.
fn run_compactor(
    dir: &Path,
    every: usize,
    mut pending: usize,
    mut last_closed: u64,
    closed: std::sync::mpsc::Receiver<u64>,
    shared: &Shared,
) {
    loop {
        if every > 0 && pending >= every && last_closed > 0 {
            if let Err(error) = crate::compact::compact(dir, last_closed, &shared.stop_compaction) {
                tracing::warn!(dir = %dir.display(), %error,
                    "journal compaction failed; the segments stay as they are");
            }
            shared.measure_disk(dir);
            pending = 0;
        }
        match closed.recv() {
            Ok(number) => {
                pending += 1;
                last_closed = number;
            }
            Err(_) => return,
        }
    }
}

/// Opens segment `number`: the spare when there is one of at least `min_spare` bytes, else
/// a new file. Returns it positioned after its header, with its length.
fn open_segment(
    dir: &Path,
    number: u64,
    min_spare: Option<u64>,
) -> Result<(File, u64), JournalError> {
    if let Some(min) = min_spare {
        let path = dir.join(segment::file_name(number));
        match crate::spare::take(dir, &path, min) {
            Ok(taken) => return Ok(taken),
            Err(NotTaken::None) => {}
            Err(NotTaken::Unused(error)) => tracing::warn!(dir = %dir.display(), %error,
                "journal: the spare segment could not be used; a new one grows as written"),
            Err(NotTaken::Renamed(error)) => return Err(JournalError::io(dir, error)),
        }
    }
    Ok((create_segment(dir, number)?, MAGIC.len() as u64))
}

/// Creates segment `number` with its header, synced, and syncs the directory so the file
/// survives a crash.
fn create_segment(dir: &Path, number: u64) -> Result<File, JournalError> {
    let path = dir.join(segment::file_name(number));
    let io = |e| JournalError::io(&path, e);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    file.write_all(MAGIC).map_err(io)?;
    file.sync_all().map_err(io)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io(dir, e))?;
    Ok(file)
}

/// The nice value of the compaction thread: background work yields the CPU to the message
/// path (at full load it gets about a tenth of a core's share against a thread at 0) and
/// catches up when there is room.
const COMPACTION_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`COMPACTION_NICE`] (Linux keeps a nice value
/// per thread); elsewhere, or if refused, it keeps its priority.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority reads only its integer arguments; `who` 0 is the calling thread.
        #[allow(unsafe_code)]
        let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, COMPACTION_NICE) };
        if done != 0 {
            tracing::debug!(
                "journal background thread keeps its CPU priority (setpriority refused)"
            );
        }
    }
}
