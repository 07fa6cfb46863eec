//! Messages parked out of memory while they wait for receipts (`docs/durability.md`).
//!
//! A message a carrier accepted that has waited a while for its receipts needs nothing in
//! memory but what routes its receipts: a [`Parked`] record of 24 bytes, and its ids in the
//! receipt map. The message itself and its carrier ids go to a side file on disk, read back
//! when a receipt or the receipt timeout takes it up again. The journal stays the record of
//! truth: side files are never synced, are removed at every start, and a crash loses nothing
//! in them that recovery does not rebuild from the journal.
//!
//! Side files are written in turn (a new one past [`ROTATE_BYTES`]); one is removed when the
//! last message in it is taken up. A file whose messages are mostly gone is evacuated: the
//! dispatcher's sweep copies the few left to the newest file, so a handful of receipts that
//! never come do not keep old files on disk for days.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use smsroute_delivery::Nanos;
use smsroute_journal::Record;
use smsroute_types::{CarrierMessageId, CarrierSlot, Message, MessageId};

use crate::dlr::EntryKey;

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
    file: u16,
    offset: u32,
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
        if let Some(newest) = self.files.back_mut()
            && newest.live == 0
            && let Some(_) = newest.file.take()
        {
            self.bytes = self.bytes.saturating_sub(newest.written);
            let _ = std::fs::remove_file(&newest.path);
        }
        while self.files.front().is_some_and(|f| f.file.is_none()) {
            self.files.pop_front();
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
        if side.live > 0 || newest {
            return;
        }
        if side.file.take().is_some() {
            self.bytes = self.bytes.saturating_sub(side.written);
            if let Err(error) = std::fs::remove_file(&side.path) {
                tracing::warn!(path = %side.path.display(), %error, "parked side file not removed");
            }
        }
        // Numbers stay contiguous: an emptied file in the middle keeps its place until the
        // ones before it are gone too.
        while self.files.len() > 1 && self.files.front().is_some_and(|f| f.file.is_none()) {
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
    pub fn files(&self) -> usize {
        self.files.iter().filter(|f| f.file.is_some()).count()
    }
}

/// What a parked message keeps in memory (24 bytes): what routes its receipts and finds it
/// overdue. The rest of what taking it up needs is in its side file ([`Resumable`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parked {
    pub id: MessageId,
    offset: u32,
    /// Waiting ends as `Sent` at this second of the router clock.
    pub until_s: u32,
    file: u16,
    /// Set by the table (a stale key is one a receipt carried for milliseconds, so 16 bits
    /// of generation tell it apart).
    generation: u16,
    pub carrier: CarrierSlot,
    /// [`Parked::LIVE`], [`Parked::MULTIPART`], [`Parked::DUPLICATE`].
    pub flags: u8,
}

impl Parked {
    pub fn new(id: MessageId, at: Location, until_s: u32, carrier: CarrierSlot, flags: u8) -> Self {
        Parked {
            id,
            offset: at.offset,
            until_s,
            file: at.file,
            generation: 0,
            carrier,
            flags,
        }
    }

    /// Where its bytes are.
    pub fn at(&self) -> Location {
        Location {
            file: self.file,
            offset: self.offset,
        }
    }

    /// Its bytes moved.
    pub fn moved_to(&mut self, at: Location) {
        (self.file, self.offset) = (at.file, at.offset);
    }

    /// The slot holds a parked message.
    pub const LIVE: u8 = 1;
    /// More than one part: the dispatcher tracks which are delivered.
    pub const MULTIPART: u8 = 2;
    /// A submit may have reached a carrier twice.
    pub const DUPLICATE: u8 = 4;

    fn live(&self) -> bool {
        self.flags & Self::LIVE != 0
    }
}

/// What taking a parked message up needs besides its record, kept with it on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resumable {
    /// When the attempt was sent (router clock).
    pub sent_at: Nanos,
    /// When it expires (router clock); `Nanos::MAX`: never.
    pub deadline: Nanos,
    /// The attempt whose receipts it waits for.
    pub attempt: u32,
    /// Submits made so far.
    pub attempts: u32,
}

/// Router-clock nanoseconds as whole seconds, rounded up or down.
pub(crate) fn seconds(t: Nanos, up: bool) -> u32 {
    let s = t / 1_000_000_000 + u64::from(up && !t.is_multiple_of(1_000_000_000));
    s.min(u64::from(u32::MAX)) as u32
}

/// Parked messages by index; a key carries the slot's generation, as the dispatcher's slab.
#[derive(Default)]
pub(crate) struct ParkedTable {
    slots: Vec<Parked>,
    free: Vec<u32>,
    live: usize,
}

impl ParkedTable {
    pub fn insert(&mut self, mut parked: Parked) -> EntryKey {
        parked.flags |= Parked::LIVE;
        self.live += 1;
        let index = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                parked.generation = slot.generation;
                *slot = parked;
                index
            }
            None => {
                parked.generation = 0;
                self.slots.push(parked);
                self.slots.len() as u32 - 1
            }
        };
        key(index, u32::from(parked.generation))
    }

    pub fn get(&self, key: EntryKey) -> Option<&Parked> {
        let (index, generation) = split(key)?;
        self.slots
            .get(index)
            .filter(|p| p.live() && u32::from(p.generation) == generation)
    }

    pub fn get_mut(&mut self, key: EntryKey) -> Option<&mut Parked> {
        let (index, generation) = split(key)?;
        self.slots
            .get_mut(index)
            .filter(|p| p.live() && u32::from(p.generation) == generation)
    }

    pub fn remove(&mut self, key: EntryKey) -> Option<Parked> {
        let (index, generation) = split(key)?;
        let slot = self.slots.get_mut(index)?;
        if !slot.live() || u32::from(slot.generation) != generation {
            return None;
        }
        let parked = *slot;
        slot.flags = 0;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.live -= 1;
        Some(parked)
    }

    /// Frees `key`'s message without ever using its slot again (its side file was lost: a
    /// late receipt for it must find nothing).
    pub fn retire(&mut self, key: EntryKey) {
        if let Some(slot) = self.get_mut(key) {
            slot.flags = 0;
            self.live -= 1;
        }
    }

    /// The key of the parked message in slot `index`, if one is there.
    pub fn key_at(&self, index: usize) -> Option<EntryKey> {
        let p = self.slots.get(index)?;
        p.live().then(|| key(index as u32, u32::from(p.generation)))
    }

    /// Slots, live or free (what a sweep walks).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Messages parked.
    pub fn live(&self) -> usize {
        self.live
    }
}

fn key(index: u32, generation: u32) -> EntryKey {
    EntryKey(EntryKey::PARKED | (u64::from(index) << 32) | u64::from(generation))
}

fn split(key: EntryKey) -> Option<(usize, u32)> {
    key.is_parked()
        .then_some((((key.0 & !EntryKey::PARKED) >> 32) as usize, key.0 as u32))
}

/// A parked message's bytes: what taking it up needs, the message as the journal records it,
/// then its carrier ids.
pub(crate) fn encode(
    resumable: Resumable,
    message: &Message,
    ids: &[CarrierMessageId],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&resumable.sent_at.to_le_bytes());
    out.extend_from_slice(&resumable.deadline.to_le_bytes());
    out.extend_from_slice(&resumable.attempt.to_le_bytes());
    out.extend_from_slice(&resumable.attempts.to_le_bytes());
    let record = Record::Accepted {
        message: Cow::Borrowed(message),
        at: 0,
    };
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    record.encode(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(ids.len() as u16).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
    }
}

/// Reads back what [`encode`] wrote; `None` if the bytes are damaged.
pub(crate) fn decode(bytes: &[u8]) -> Option<(Resumable, Message, Vec<CarrierMessageId>)> {
    let take = |at: &mut usize, n: usize| {
        let part = bytes.get(*at..*at + n)?;
        *at += n;
        Some(part)
    };
    let mut at = 0;
    let resumable = Resumable {
        sent_at: u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?),
        deadline: u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?),
        attempt: u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?),
        attempts: u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?),
    };
    let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?) as usize;
    let message = match Record::decode(take(&mut at, len)?).ok()? {
        Record::Accepted { message, .. } => message.into_owned(),
        _ => return None,
    };
    let count = u16::from_le_bytes(take(&mut at, 2)?.try_into().ok()?);
    let mut ids = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let n = u16::from_le_bytes(take(&mut at, 2)?.try_into().ok()?);
        let id = std::str::from_utf8(take(&mut at, usize::from(n))?).ok()?;
        ids.push(CarrierMessageId::new(id));
    }
    Some((resumable, message, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, text: &str) -> Message {
        let mut m = Message::builder("+4915112345678", "ACME", text)
            .client_ref("ref-1")
            .build()
            .expect("valid");
        m.set_id(MessageId(id));
        m
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("smsroute-park-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_message_and_its_ids_read_back_as_they_were() {
        let m = message(42, "Grüße, 你好");
        let ids = [
            CarrierMessageId::new("abc-1"),
            CarrierMessageId::new("abc-2"),
        ];
        let resumable = Resumable {
            sent_at: 12_345,
            deadline: Nanos::MAX,
            attempt: 3,
            attempts: 4,
        };
        let mut bytes = Vec::new();
        encode(resumable, &m, &ids, &mut bytes);
        let (back_resumable, back, back_ids) = decode(&bytes).expect("decodes");
        assert_eq!(back_resumable, resumable);
        assert_eq!(back, m);
        assert_eq!(back_ids, ids);
        assert!(
            decode(&bytes[..bytes.len() - 1]).is_none(),
            "a cut id is damage"
        );
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

    #[test]
    fn parked_keys_never_reach_a_later_message_in_the_same_slot() {
        let mut table = ParkedTable::default();
        let parked = Parked::new(
            MessageId(1),
            Location { file: 0, offset: 0 },
            10,
            CarrierSlot(0),
            0,
        );
        let a = table.insert(parked);
        assert!(a.is_parked());
        assert_eq!(table.remove(a).map(|p| p.id), Some(MessageId(1)));
        let b = table.insert(Parked {
            id: MessageId(2),
            ..parked
        });
        assert!(table.get_mut(a).is_none(), "the old key is stale");
        assert_eq!(table.get_mut(b).map(|p| p.id), Some(MessageId(2)));
        assert!(
            table.get_mut(EntryKey(0)).is_none(),
            "a memory key is not a parked one"
        );
        assert_eq!(table.live(), 1);
        assert_eq!(std::mem::size_of::<Parked>(), 24);
    }

    #[test]
    fn seconds_round_as_asked() {
        assert_eq!(seconds(1_500_000_000, true), 2);
        assert_eq!(seconds(1_500_000_000, false), 1);
        assert_eq!(seconds(2_000_000_000, true), 2);
        assert_eq!(seconds(u64::MAX, true), u32::MAX);
    }
}
