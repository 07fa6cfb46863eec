//! Pre-written segments (`preallocate`): the spare the background thread writes becomes the
//! next segment, its unused zeros are cut when it closes or when recovery reads it after a
//! crash, and every record written into it comes back, nothing more.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TempDir, life, make_durable};
use smsroute_journal::{Journal, JournalOptions, SyncMode, Writer};

const SEGMENT: u64 = 64 << 10;

fn options(dir: &Path) -> JournalOptions {
    JournalOptions {
        segment_bytes: SEGMENT,
        batch_interval: Duration::ZERO,
        compact_after_segments: 0,
        ..JournalOptions::new(dir)
    }
}

/// Messages `from..from + count` accepted and in flight to their first carrier, durable.
fn accept(writer: &mut Writer, from: u64, count: u64) {
    for n in from..from + count {
        life(writer, n, 2);
    }
    make_durable(writer);
}

fn segment(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:010}.log"))
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Messages accepted ten at a time after `last` until segment `next` exists (segment `next -
/// 1` open and empty at the call), the spare written before the rollover; returns the last
/// message.
fn fill_until(
    dir: &Path,
    writer: &mut Writer,
    segment_bytes: u64,
    next: u64,
    mut last: u64,
) -> u64 {
    let started = Instant::now();
    let base = writer.bytes_appended();
    while !segment(dir, next).exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no rollover");
        if writer.bytes_appended() - base > segment_bytes * 3 / 4 {
            // Past half: the spare is asked for; let it be written before the rollover.
            while !dir.join("spare.zero").exists() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "no spare written"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        accept(writer, last + 1, 10);
        last += 10;
    }
    last
}

fn fill_first_segment(dir: &Path, writer: &mut Writer) -> u64 {
    fill_until(dir, writer, SEGMENT, 2, 0)
}

fn recovered_ids(dir: &Path) -> (Vec<u64>, u64) {
    let (_writer, recovered) = Journal::open(&options(dir), Box::new(|_| {})).unwrap();
    let ids = recovered
        .unfinished
        .iter()
        .map(|u| u.message.id().0)
        .collect();
    (ids, recovered.torn_bytes)
}

#[test]
fn a_segment_made_from_a_spare_gives_back_its_records_after_a_close_or_a_crash() {
    for crash in [false, true] {
        let dir = TempDir::new(if crash { "crash" } else { "close" });
        let (mut writer, _) = Journal::open(&options(&dir.0), Box::new(|_| {})).unwrap();
        let mut last = fill_first_segment(&dir.0, &mut writer);
        assert!(
            !dir.0.join("spare.zero").exists(),
            "the spare became segment 2"
        );
        assert_eq!(len(&segment(&dir.0, 2)), SEGMENT, "written ahead, whole");
        accept(&mut writer, last + 1, 10);
        last += 10;
        if crash {
            writer.abandon();
            assert_eq!(
                len(&segment(&dir.0, 2)),
                SEGMENT,
                "a crash leaves the zeros"
            );
        } else {
            writer.close().unwrap();
            assert!(
                len(&segment(&dir.0, 2)) < SEGMENT / 4,
                "closed: cut to its records"
            );
        }
        let (ids, torn) = recovered_ids(&dir.0);
        assert_eq!(ids, (1..=last).collect::<Vec<_>>(), "crash: {crash}");
        assert_eq!(torn, 0, "zeros are not a torn write");
        assert!(len(&segment(&dir.0, 2)) < SEGMENT / 4, "the zeros are cut");
        // Compacted, the same messages.
        Journal::compact(&dir.0).unwrap();
        assert_eq!(recovered_ids(&dir.0).0, ids);
    }
}

#[test]
fn a_larger_spare_an_earlier_run_left_is_used_and_cut_at_the_rollover() {
    let dir = TempDir::new("larger");
    // The earlier run: segments of 512 KiB, a spare of that size (two chunks) left behind.
    let earlier = JournalOptions {
        segment_bytes: 8 * SEGMENT,
        ..options(&dir.0)
    };
    let (mut writer, _) = Journal::open(&earlier, Box::new(|_| {})).unwrap();
    let mut last = 0;
    let started = Instant::now();
    while !dir.0.join("spare.zero").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no spare written"
        );
        accept(&mut writer, last + 1, 10);
        last += 10;
    }
    writer.close().unwrap();
    assert_eq!(len(&dir.0.join("spare.zero")), 8 * SEGMENT);
    // This run: segments of 64 KiB; its first segment (2) is the spare, cut when it closes.
    let (mut writer, _) = Journal::open(&options(&dir.0), Box::new(|_| {})).unwrap();
    assert_eq!(
        len(&segment(&dir.0, 2)),
        8 * SEGMENT,
        "the spare became segment 2"
    );
    last = fill_until(&dir.0, &mut writer, SEGMENT, 3, last);
    let closed = len(&segment(&dir.0, 2));
    assert!(
        (SEGMENT..SEGMENT + 4096).contains(&closed),
        "segment 2 cut to its records at the rollover: {closed}"
    );
    writer.close().unwrap();
    assert_eq!(recovered_ids(&dir.0).0, (1..=last).collect::<Vec<_>>());
}

#[test]
fn a_frame_torn_inside_a_written_ahead_segment_is_cut_and_the_rest_recovers() {
    let dir = TempDir::new("torn");
    let (mut writer, _) = Journal::open(&options(&dir.0), Box::new(|_| {})).unwrap();
    let last = fill_first_segment(&dir.0, &mut writer) + 5;
    accept(&mut writer, last - 4, 5);
    writer.abandon();
    // Where the records of segment 2 end, a frame a crash cut short: its length and the start
    // of its payload written, zeros after.
    let path = segment(&dir.0, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    let end = records_end(&bytes);
    bytes[end..end + 6].copy_from_slice(&[40, 0, 0, 0, 9, 9]);
    std::fs::write(&path, &bytes).unwrap();
    let (_writer, recovered) = Journal::open(&options(&dir.0), Box::new(|_| {})).unwrap();
    assert_eq!(recovered.unfinished.len() as u64, last);
    assert_eq!(
        recovered.torn_bytes, 6,
        "the torn frame's bytes, not the zeros after it"
    );
}

/// Where a segment's frames end: after its 8-byte header, each frame is its payload's length
/// (u32, little-endian), a checksum (u32) and the payload; a zero length is the spare's zeros.
fn records_end(bytes: &[u8]) -> usize {
    let mut at = 8;
    loop {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            return at;
        }
        at += 8 + len;
    }
}

#[test]
fn a_journal_that_writes_no_spares_removes_one_an_earlier_run_left() {
    let dir = TempDir::new("off");
    let (mut writer, _) = Journal::open(&options(&dir.0), Box::new(|_| {})).unwrap();
    let mut n = fill_first_segment(&dir.0, &mut writer);
    while !dir.0.join("spare.zero").exists() {
        assert!(n < 100_000, "no spare written for segment 3");
        accept(&mut writer, n + 1, 10);
        n += 10;
        std::thread::sleep(Duration::from_millis(1));
    }
    writer.close().unwrap();
    let off = JournalOptions {
        preallocate: false,
        ..options(&dir.0)
    };
    let (writer, _) = Journal::open(&off, Box::new(|_| {})).unwrap();
    assert!(!dir.0.join("spare.zero").exists());
    writer.close().unwrap();
}

#[test]
fn a_segment_made_from_a_spare_gives_back_its_records_with_a_sync_per_record() {
    let dir = TempDir::new("always");
    let always = JournalOptions {
        sync: SyncMode::Always,
        ..options(&dir.0)
    };
    let (mut writer, _) = Journal::open(&always, Box::new(|_| {})).unwrap();
    let mut last = fill_first_segment(&dir.0, &mut writer);
    assert_eq!(len(&segment(&dir.0, 2)), SEGMENT, "written ahead, whole");
    accept(&mut writer, last + 1, 10);
    last += 10;
    writer.abandon();
    let (ids, torn) = recovered_ids(&dir.0);
    assert_eq!(ids, (1..=last).collect::<Vec<_>>());
    assert_eq!(torn, 0);
}
