//! Segment files: a magic header, then frames of `length (u32 LE) | CRC-32 of the payload
//! (u32 LE) | payload` where the payload is one encoded [`Record`]. Reading tells a torn tail
//! (the last frame of the newest segment cut short by a crash: dropped) from corruption
//! anywhere else (reported with its file and offset, never skipped).

use std::path::{Path, PathBuf};

use crate::record::{DecodeError, Record};

/// Every segment starts with these bytes (format 2: numbers other than times in LEB128).
pub const MAGIC: &[u8; 8] = b"SMSRJNL2";

/// The magic of format 1 (before 2026-12-02: fixed-width integers), refused by name.
const MAGIC_1: &[u8; 8] = b"SMSRJNL1";
/// Frame header: length and checksum.
pub const HEADER: usize = 8;
/// The largest payload a frame may carry; a longer length is damage, not a record.
pub const MAX_RECORD: usize = 1 << 20;

/// Appends `record` as one frame to `out`; returns the payload's length.
pub fn write_frame(record: &Record<'_>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    record.encode(out);
    let end = out.len();
    seal(out, start, end)
}

/// Appends `record` as one frame to `out` with its checksum left to fill in: the engine's
/// writer leaves the CRC to the sync thread ([`seal_frames`]), off the message's path.
/// Returns the payload's length.
pub fn write_unsealed(record: &Record<'_>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    record.encode(out);
    let len = out.len() - start - HEADER;
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    len
}

/// Fills in the checksum of every frame of `frames`, whole frames from [`write_unsealed`].
pub fn seal_frames(frames: &mut [u8]) {
    let mut at = 0;
    while at + HEADER <= frames.len() {
        let len = u32::from_le_bytes([frames[at], frames[at + 1], frames[at + 2], frames[at + 3]])
            as usize;
        seal(frames, at, at + HEADER + len);
        at += HEADER + len;
    }
}

/// Appends a frame read back whole (its payload and the checksum that came with it) to `out`:
/// no checksum computed, the original travels with the bytes.
pub fn copy_frame(payload: &[u8], crc: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends an encoded record (a payload read back) as one frame to `out`.
#[cfg(test)]
pub fn write_payload(payload: &[u8], out: &mut Vec<u8>) {
    copy_frame(payload, crc32fast::hash(payload), out);
}

/// Fills in the header of the frame from `start` to `end`; returns the payload's length.
fn seal(out: &mut [u8], start: usize, end: usize) -> usize {
    let payload = &out[start + HEADER..end];
    let (len, crc) = (payload.len(), crc32fast::hash(payload));
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    len
}

/// Where a segment's records end.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// At the end of the file, after a whole record.
    Clean,
    /// A last frame cut short (or zeros after the last record): whole records end at
    /// `offset`, the rest is a write the crash interrupted.
    Torn {
        /// Length of the whole records, header included.
        offset: u64,
    },
    /// Damage before the end of the file.
    Corrupt {
        /// Where the damaged frame starts.
        offset: u64,
        /// What is wrong with it.
        problem: Damage,
    },
}

/// What is wrong with a damaged frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The file does not start with the segment magic (`SMSRJNL2`).
    #[error("not a journal segment (bad header)")]
    Header,
    /// Written in format 1 by an older smsroute.
    #[error(
        "a journal of format 1, written by an older smsroute: finish its messages with that \
         version, then move the directory away"
    )]
    OldFormat,
    /// A length of 0 or past [`MAX_RECORD`].
    #[error("frame length {0} out of range")]
    Length(u32),
    /// The payload's checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// The checksum matches but the payload is not a record.
    #[error("{0}")]
    Record(#[from] DecodeError),
}

/// What is wrong with a file whose first bytes are not [`MAGIC`].
fn header_damage(first: &[u8]) -> Damage {
    if first.starts_with(MAGIC_1) {
        Damage::OldFormat
    } else {
        Damage::Header
    }
}

/// Reads every whole frame of a segment's bytes in order, calling `each(offset, payload)`,
/// which reads the record (an error is damage at that offset); `last` says whether this is
/// the newest segment, the only one that may have a torn tail.
pub fn scan(
    bytes: &[u8],
    last: bool,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), DecodeError>,
) -> End {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return if last && MAGIC.starts_with(bytes) {
            End::Torn { offset: 0 }
        } else {
            End::Corrupt {
                offset: 0,
                problem: header_damage(bytes),
            }
        };
    }
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = End::Torn { offset: at as u64 };
        let corrupt = |problem| End::Corrupt {
            offset: at as u64,
            problem,
        };
        if rest.len() < HEADER {
            return if last {
                torn
            } else {
                corrupt(Damage::Length(0))
            };
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len == 0 || len as usize > MAX_RECORD {
            // A crash can leave the file longer than what was written, zero-filled.
            let zeros = rest.iter().all(|b| *b == 0);
            return if last && zeros {
                torn
            } else {
                corrupt(Damage::Length(len))
            };
        }
        let end = HEADER + len as usize;
        if rest.len() < end {
            return if last {
                torn
            } else {
                corrupt(Damage::Length(len))
            };
        }
        let payload = &rest[HEADER..end];
        if crc32fast::hash(payload) != crc {
            // The newest segment's final frame may hold a partly written payload.
            return if last && rest.len() == end {
                torn
            } else {
                corrupt(Damage::Checksum)
            };
        }
        if let Err(e) = each(at as u64, payload) {
            return corrupt(Damage::Record(e));
        }
        at += end;
    }
    End::Clean
}

/// What [`read_closed`] does with each frame's checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksums {
    /// Checked: a mismatch is damage.
    Verify,
    /// Passed on unchecked: a read of the same closed file checked them already, and the
    /// caller keeps each with its payload ([`copy_frame`]), so damage since is still found by
    /// the next read that checks.
    PassOn,
}

/// Reads every frame of a closed file (a compacted file, or a segment the writer is done
/// with) in order without holding the file in memory, calling `each(offset, crc, payload)`.
/// Any damage, a cut last frame included, is reported with the file and offset.
pub fn read_closed(
    path: &Path,
    checksums: Checksums,
    mut each: impl FnMut(u64, u32, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), crate::JournalError> {
    use std::io::Read;
    let io = |e| crate::JournalError::io(path, e);
    let corrupt = |offset, problem| crate::JournalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        problem,
    };
    let mut file =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(io)?);
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(corrupt(0, header_damage(&magic)));
    }
    let (mut at, mut header, mut payload) = (MAGIC.len() as u64, [0u8; HEADER], Vec::new());
    loop {
        // A clean end is one at a frame boundary.
        let mut got = 0;
        while got < HEADER {
            match file.read(&mut header[got..]).map_err(io)? {
                0 if got == 0 => return Ok(()),
                0 => return Err(corrupt(at, Damage::Length(0))),
                n => got += n,
            }
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len as usize > MAX_RECORD {
            return Err(corrupt(at, Damage::Length(len)));
        }
        payload.resize(len as usize, 0);
        if file.read_exact(&mut payload).is_err() {
            return Err(corrupt(at, Damage::Length(len)));
        }
        if checksums == Checksums::Verify && crc32fast::hash(&payload) != crc {
            return Err(corrupt(at, Damage::Checksum));
        }
        each(at, crc, &payload).map_err(|e| corrupt(at, Damage::Record(e)))?;
        at += (HEADER + payload.len()) as u64;
    }
}

/// The file name of segment `n`.
pub fn file_name(n: u64) -> String {
    format!("{n:010}.log")
}

/// The furthest synced offset that whole `Synced` frames found after byte `from` vouch for
/// (0: none), looking past damage: only frames of that one shape are tried, so the search is
/// cheap whatever the bytes are.
pub fn synced_after(bytes: &[u8], from: u64) -> u64 {
    let mut furthest = 0;
    let start = (from as usize).saturating_add(1);
    const PAYLOAD: usize = 9;
    for at in start..bytes.len().saturating_sub(HEADER + PAYLOAD - 1) {
        let frame = &bytes[at..at + HEADER + PAYLOAD];
        if frame[0..4] != (PAYLOAD as u32).to_le_bytes() || frame[HEADER] != crate::record::SYNCED {
            continue;
        }
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let payload = &frame[HEADER..];
        if crc32fast::hash(payload) == crc
            && let Ok(Record::Synced { upto }) = Record::decode(payload)
        {
            furthest = furthest.max(upto);
        }
    }
    furthest
}

/// What a journal directory holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// The newest compacted file and the last segment it covers.
    pub compacted: Option<(u64, PathBuf)>,
    /// Segments after it, oldest first, with their numbers.
    pub segments: Vec<(u64, PathBuf)>,
    /// Files a compaction superseded (or left half-written): safe to remove.
    pub stale: Vec<PathBuf>,
}

impl Listing {
    /// The number the next segment takes.
    pub fn next_segment(&self) -> u64 {
        let compacted = self.compacted.as_ref().map_or(0, |(n, _)| *n);
        let segment = self.segments.last().map_or(0, |(n, _)| *n);
        compacted.max(segment) + 1
    }
}

/// The file name of the compacted file covering segments up to `n`.
pub fn compacted_name(n: u64) -> String {
    format!("{n:010}.compact")
}

/// What `dir` holds: a compacted file supersedes every segment up to the one it covers and
/// every older compacted file; a `.tmp` file is a compaction a crash interrupted.
pub fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut segments = Vec::new();
    let mut compacted = Vec::new();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let number = |suffix| {
            name.strip_suffix(suffix)
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let Some(n) = number(".log") {
            segments.push((n, path));
        } else if let Some(n) = number(".compact") {
            compacted.push((n, path));
        } else if name.ends_with(".compact.tmp") {
            stale.push(path);
        }
    }
    segments.sort();
    compacted.sort();
    let newest = compacted.pop();
    stale.extend(compacted.into_iter().map(|(_, p)| p));
    if let Some((covered, _)) = &newest {
        let (old, live): (Vec<_>, Vec<_>) = segments.into_iter().partition(|(n, _)| n <= covered);
        stale.extend(old.into_iter().map(|(_, p)| p));
        segments = live;
    }
    Ok(Listing {
        compacted: newest,
        segments,
        stale,
    })
}

/// Removes superseded files (a failure is logged: they stay superseded).
pub fn remove_stale(stale: &[PathBuf]) {
    for path in stale {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::debug!(file = %path.display(), "journal: superseded file removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(file = %path.display(), %error,
                "journal: could not remove a superseded file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(n: u64) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for i in 0..n {
            write_frame(&Record::Acknowledged { upto: i }, &mut bytes);
        }
        bytes
    }

    fn ids(bytes: &[u8], last: bool) -> (Vec<u64>, End) {
        let mut seen = Vec::new();
        let end = scan(bytes, last, |_, payload| {
            match Record::decode(payload)? {
                Record::Acknowledged { upto } => seen.push(upto),
                other => panic!("{other:?}"),
            }
            Ok(())
        });
        (seen, end)
    }

    #[test]
    fn frames_sealed_later_are_the_frames_sealed_at_once() {
        let records = [
            Record::Acknowledged { upto: 7 },
            Record::Flagged {
                id: smsroute_types::MessageId(300),
            },
            Record::Acknowledged { upto: 0 },
        ];
        let (mut now, mut later) = (MAGIC.to_vec(), MAGIC.to_vec());
        for record in &records {
            write_frame(record, &mut now);
            write_unsealed(record, &mut later);
        }
        assert_ne!(now, later, "checksums not yet filled in");
        seal_frames(&mut later[MAGIC.len()..]);
        assert_eq!(now, later);
    }

    #[test]
    fn frames_passed_on_unchecked_keep_their_own_checksums() {
        let path =
            std::env::temp_dir().join(format!("smsroute-journal-pass-on-{}", std::process::id()));
        let mut bytes = segment(3);
        // The last frame's payload damaged: its checksum no longer matches.
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let mut copied = MAGIC.to_vec();
        let read = read_closed(&path, Checksums::PassOn, |_, crc, payload| {
            copy_frame(payload, crc, &mut copied);
            Ok(())
        });
        let checked = read_closed(&path, Checksums::Verify, |_, _, _| Ok(()));
        let _ = std::fs::remove_file(&path);
        assert!(read.is_ok());
        assert_eq!(
            copied, bytes,
            "each frame copied as it was, the damaged one too"
        );
        assert!(
            matches!(
                checked,
                Err(crate::JournalError::Corrupt {
                    problem: Damage::Checksum,
                    ..
                })
            ),
            "{checked:?}"
        );
    }

    #[test]
    fn whole_segments_read_clean() {
        assert_eq!(ids(&segment(3), false), (vec![0, 1, 2], End::Clean));
        assert_eq!(ids(MAGIC, true), (vec![], End::Clean));
    }

    #[test]
    fn a_cut_tail_is_torn_in_the_newest_segment_and_corrupt_in_an_older_one() {
        let whole = segment(3);
        let two = segment(2).len() as u64;
        let (seen, end) = ids(&whole[..whole.len() - 3], true);
        assert_eq!((seen, end), (vec![0, 1], End::Torn { offset: two }));
        let (_, end) = ids(&whole[..whole.len() - 3], false);
        assert!(matches!(end, End::Corrupt { offset, .. } if offset == two));
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(
            ids(&zeros, true).1,
            End::Torn {
                offset: whole.len() as u64
            }
        );
    }

    #[test]
    fn a_segment_of_the_old_format_is_refused_by_name() {
        let mut old = b"SMSRJNL1".to_vec();
        old.extend_from_slice(&segment(2)[MAGIC.len()..]);
        for last in [false, true] {
            assert_eq!(
                ids(&old, last).1,
                End::Corrupt {
                    offset: 0,
                    problem: Damage::OldFormat
                }
            );
        }
        assert!(Damage::OldFormat.to_string().contains("older smsroute"));
    }

    #[test]
    fn a_flipped_bit_before_the_end_is_reported_where_it_is() {
        let mut bytes = segment(3);
        let second = segment(1).len();
        // The watermark's byte (the payload is the kind, then one byte).
        bytes[second + HEADER + 1] ^= 0x10;
        let (seen, end) = ids(&bytes, true);
        assert_eq!(seen, vec![0]);
        assert_eq!(
            end,
            End::Corrupt {
                offset: second as u64,
                problem: Damage::Checksum
            }
        );
        let mut bad_header = segment(1);
        bad_header[0] = b'X';
        assert!(matches!(
            ids(&bad_header, true).1,
            End::Corrupt {
                offset: 0,
                problem: Damage::Header
            }
        ));
    }
}
