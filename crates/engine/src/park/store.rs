//! Side files of parked messages: written in turn (a new one past [`ROTATE_BYTES`]), never
//! synced, removed at every start; one goes once the last message in it is taken up, and one
//! whose messages are mostly gone is evacuated (the dispatcher's sweep copies what is left to
//! the newest file), so a handful of receipts that never come do not keep old files for days.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A side file is closed and the next one started past this size.
pub(crate) const ROTATE_BYTES: u64 = 64 << 20;
/// Written to the file once this much is buffered.
const WRITE_CHUNK: usize = 64 << 10;
/// A file is evacuated once fewer than one in this many of its messages are left.
const EVACUATE_BELOW: u32 = 4;

/// Where a parked message's bytes are: a side file's number (they wrap at 65,536; far fewer
/// are ever on disk at once) and the offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(super) file: u16,
    pub(super) offset: u32,
}

struct SideFile {
    number: u16,
    /// `None` once emptied and removed.
    file: Option<File>,
    path: PathBuf,
    /// Bytes written to the file (the newest file's buffer comes after).
    written: u64,
    /// Messages in it not yet taken up.
    live: u32,
    /// Messages ever put in it.
    total: u32,
    /// Its messages are being copied to the newest file.
    evacuating: bool,
}

/// The side files.
pub(crate) struct ParkStore {
    dir: PathBuf,
    /// Oldest first; the last is the one written to.
    files: VecDeque<SideFile>,
    next_number: u16,
    /// Bytes put in the newest file and not yet written.
    buf: Vec<u8>,
    /// Bytes in every file.
    bytes: u64,
    /// A write failed: nothing more is parked.
    failed: bool,
}

impl ParkStore {
    /// Opens `dir` (created if missing), removing what an earlier run left there.
    pub fn open(dir: &Path) -> std::io::Result<ParkStore> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "park") {
                std::fs::remove_file(&path)?;
            }
        }
        let mut store = ParkStore {
            dir: dir.to_path_buf(),
            files: VecDeque::new(),
            next_number: 0,
            buf: Vec::with_capacity(WRITE_CHUNK * 2),
            bytes: 0,
            failed: false,
        };
        store.start_file()?;
        Ok(store)
    }

    fn start_file(&mut self) -> std::io::Result<()> {
        if self.files.len() >= usize::from(u16::MAX) {
            // Numbers would repeat: the newest file grows instead (offsets stop at 4 GiB).
            return Ok(());
        }
        self.write_out()?;
        // The newest file, emptied before it filled, goes now (`release` keeps the newest).
        if self.files.back().is_some_and(|f| f.live == 0) {
            self.remove(self.files.len() - 1);
        }
        let number = self.next_number;
        self.next_number = self.next_number.wrapping_add(1);
        let path = self.dir.join(format!("{number:08}.park"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        self.files.push_back(SideFile {
            number,
            file: Some(file),
            path,
            written: 0,
            live: 0,
            total: 0,
            evacuating: false,
        });
        Ok(())
    }

    /// Writes the buffered bytes to the newest file. After a failed write the store takes
    /// nothing more (what it holds is still read back: the buffer keeps what was not written).
    fn write_out(&mut self) -> std::io::Result<()> {
        if let Some(newest) = self.files.back_mut()
            && !self.buf.is_empty()
        {
            if let Some(file) = &mut newest.file
                && let Err(error) = file.write_all(&self.buf)
            {
                self.failed = true;
                return Err(error);
            }
            newest.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn position(&self, number: u16) -> Option<usize> {
        let first = self.files.front()?.number;
        let at = number.wrapping_sub(first) as usize;
        (at < self.files.len()).then_some(at)
    }

    /// Stores `bytes`; where they are.
    pub fn put(&mut self, bytes: &[u8]) -> std::io::Result<Location> {
        if self.failed {
            return Err(std::io::Error::other(
                "an earlier write to the side files failed",
            ));
        }
        let newest = self.files.back().expect("a newest file");
        if newest.written + self.buf.len() as u64 + bytes.len() as u64 + 4 > ROTATE_BYTES {
            self.start_file()?;
        }
        let newest = self.files.back_mut().expect("a newest file");
        let offset = newest.written + self.buf.len() as u64;
        if offset + bytes.len() as u64 + 4 > u64::from(u32::MAX) {
            return Err(std::io::Error::other("side file full"));
        }
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(bytes);
        newest.live += 1;
        newest.total += 1;
        self.bytes += bytes.len() as u64 + 4;
        let at = Location {
            file: newest.number,
            offset: offset as u32,
        };
        if self.buf.len() >= WRITE_CHUNK {
            self.write_out()?;
        }
        Ok(at)
    }

    /// The bytes stored at `at`.
    pub fn get(&self, at: Location) -> std::io::Result<Vec<u8>> {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such side file");
        let side = &self.files[self.position(at.file).ok_or_else(missing)?];
        let offset = u64::from(at.offset);
        let newest = self.position(at.file) == Some(self.files.len() - 1);
        if newest && offset >= side.written {
            let start = (offset - side.written) as usize;
            let len = self
                .buf
                .get(start..start + 4)
                .ok_or_else(missing)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)?;
            return self
                .buf
                .get(start + 4..start + 4 + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(missing);
        }
        let file = side.file.as_ref().ok_or_else(missing)?;
        let mut len = [0u8; 4];
        file.read_exact_at(&mut len, offset)?;
        let len = u32::from_le_bytes(len) as usize;
        if len as u64 > ROTATE_BYTES {
            return Err(std::io::Error::other("side file damaged: record length"));
        }
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, offset + 4)?;
        Ok(bytes)
    }

    /// The message at `at` is taken up: its file goes once nothing in it is left.
    pub fn release(&mut self, at: Location) {
        let Some(i) = self.position(at.file) else {
            return;
        };
        let newest = i + 1 == self.files.len();
        let side = &mut self.files[i];
        side.live = side.live.saturating_sub(1);
        if side.live == 0 && !newest {
            self.remove(i);
        }
    }

    /// Removes file `i`, emptied, from the disk. Numbers stay contiguous: an emptied file in
    /// the middle keeps its place until the ones before it are gone too.
    fn remove(&mut self, i: usize) {
        let side = &mut self.files[i];
        if side.file.take().is_some() {
            self.bytes = self.bytes.saturating_sub(side.written);
            if let Err(error) = std::fs::remove_file(&side.path) {
                tracing::warn!(path = %side.path.display(), %error, "parked side file not removed");
            }
        }
        // Only `start_file` empties the newest, right before it opens the next.
        while self.files.front().is_some_and(|f| f.file.is_none()) {
            self.files.pop_front();
        }
    }

    /// Marks the files (all but the newest) whose messages are mostly gone: the sweep that
    /// starts now copies what is left in them to the newest file.
    pub fn plan_evacuation(&mut self) {
        let last = self.files.len().saturating_sub(1);
        for side in self.files.iter_mut().take(last) {
            side.evacuating = side.live > 0 && side.live < side.total / EVACUATE_BELOW;
        }
    }

    /// Whether the message at `at` is to be copied to the newest file.
    pub fn evacuating(&self, at: Location) -> bool {
        self.position(at.file)
            .is_some_and(|i| self.files[i].evacuating)
    }

    /// Bytes in the side files.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Side files with messages in them.
    #[cfg(test)]
    pub fn files(&self) -> usize {
        self.files.iter().filter(|f| f.file.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("smsroute-park-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn stored_bytes_read_back_from_buffer_and_file_and_files_go_when_empty() {
        let dir = scratch("store");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000007.park"), b"left by a crash").unwrap();
        let mut store = ParkStore::open(&dir).unwrap();
        assert!(!dir.join("00000007.park").exists(), "leftovers are removed");
        let first = store.put(b"first").unwrap();
        assert_eq!(store.get(first).unwrap(), b"first", "from the buffer");
        // Enough to roll over to a second file.
        let big = vec![7u8; 1 << 20];
        let mut spots = Vec::new();
        while store.files.len() < 2 {
            spots.push(store.put(&big).unwrap());
        }
        assert_eq!(store.get(first).unwrap(), b"first", "from the first file");
        assert_eq!(store.get(spots[0]).unwrap(), big);
        let in_first: Vec<_> = std::iter::once(first)
            .chain(spots.iter().copied())
            .filter(|l| l.file == first.file)
            .collect();
        for at in &in_first {
            store.release(*at);
        }
        assert_eq!(
            store.files(),
            1,
            "the first file went with its last message"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_newest_file_emptied_before_it_filled_goes_at_the_next_rotation() {
        let dir = scratch("emptied");
        let mut store = ParkStore::open(&dir).unwrap();
        let first = store.put(b"taken up soon").unwrap();
        store.release(first);
        assert_eq!(
            store.files(),
            1,
            "the newest file stays while it is written"
        );
        // Filled close to the rotation, every message taken up again before it comes.
        let big = vec![3u8; 1 << 20];
        for _ in 0..(ROTATE_BYTES >> 20) - 1 {
            let at = store.put(&big).unwrap();
            store.release(at);
        }
        store.put(&big).unwrap();
        store.put(&big).unwrap();
        assert_ne!(store.files.back().unwrap().number, first.file, "rotated");
        assert!(
            store.position(first.file).is_none(),
            "the emptied file is gone, not left at the front"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_length_is_an_error_not_an_allocation() {
        let dir = scratch("damaged");
        let mut store = ParkStore::open(&dir).unwrap();
        let at = store.put(b"abc").unwrap();
        store.write_out().unwrap();
        let path = dir.join(format!("{:08}.park", at.file));
        std::fs::write(&path, u32::MAX.to_le_bytes()).unwrap();
        assert!(store.get(at).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_mostly_empty_file_is_planned_for_evacuation() {
        let dir = scratch("evacuate");
        let mut store = ParkStore::open(&dir).unwrap();
        let big = vec![1u8; 1 << 20];
        let mut spots = Vec::new();
        while store.files.len() < 2 {
            spots.push(store.put(&big).unwrap());
        }
        let old: Vec<_> = spots
            .iter()
            .filter(|l| l.file == spots[0].file)
            .copied()
            .collect();
        for at in &old[1..] {
            store.release(*at);
        }
        store.plan_evacuation();
        assert!(store.evacuating(old[0]), "one of {} left", old.len());
        assert!(
            !store.evacuating(*spots.last().unwrap()),
            "the newest file stays"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
