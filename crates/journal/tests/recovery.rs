//! Writing, crashing and recovering journals on the real disk.

mod common;

use common::{TempDir, life, make_durable, message};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use smsroute_delivery::FailReason;
use smsroute_journal::{
    Finish, Journal, JournalError, JournalOptions, Record, State, SyncMode, Writer,
};
use smsroute_types::{Message, MessageId};

fn open(dir: &Path) -> (Writer, smsroute_journal::Recovered) {
    Journal::open(&JournalOptions::new(dir), Box::new(|_| {})).unwrap()
}

#[test]
fn each_message_comes_back_in_its_last_state() {
    let dir = TempDir::new("states");
    let (mut writer, _) = open(&dir.0);
    // 4 finishes first in the acknowledgement order; the watermark reaches 5's place only.
    for (n, steps) in [(1, 1), (2, 2), (3, 3), (5, 5), (6, 4)] {
        life(&mut writer, n, steps);
    }
    writer
        .append(&Record::Retrying {
            id: MessageId(2),
            at: 77,
        })
        .unwrap();
    // One part of 3 delivered (its receipt came twice).
    for _ in 0..2 {
        writer
            .append(&Record::PartDelivered {
                id: MessageId(3),
                part: 1,
            })
            .unwrap();
    }
    writer
        .append(&Record::Finished {
            id: MessageId(1),
            status: Finish::Failed(FailReason::Permanent { status: 0x0B }),
            ack: 7,
            possible_duplicate: true,
        })
        .unwrap();
    writer.close().unwrap();

    let (_writer, recovered) = open(&dir.0);
    let states: Vec<(u64, &State)> = recovered
        .unfinished
        .iter()
        .map(|u| (u.message.id().0, &u.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (2, &State::Retrying { at: 77 }),
            (
                3,
                &State::AwaitingReceipt {
                    carrier: "uk-alpha".into(),
                    carrier_ids: vec!["c3".into()],
                    delivered: vec![1],
                }
            ),
        ]
    );
    let three = &recovered.unfinished[1];
    assert_eq!(
        three.message,
        message(3),
        "the whole message, reference included"
    );
    assert_eq!(three.accepted_at, 1_003);
    assert_eq!(three.attempts, 1);
    let replays: Vec<(u64, Finish, u64)> = recovered
        .unacknowledged
        .iter()
        .map(|r| (r.message.id().0, r.status, r.ack))
        .collect();
    assert_eq!(
        replays,
        vec![
            (6, Finish::Sent, 6),
            (1, Finish::Failed(FailReason::Permanent { status: 0x0B }), 7),
        ],
        "terminal events past the watermark are replayed in order; 5 was acknowledged"
    );
    assert!(recovered.unacknowledged[1].possible_duplicate);
    let six = &recovered.unacknowledged[0];
    assert!(!six.possible_duplicate);
    assert_eq!(six.message, message(6));
    assert_eq!(
        (six.attempts, six.carrier.as_deref(), &six.carrier_ids[..]),
        (1, Some("uk-alpha"), &["c6".into()][..])
    );
    assert_eq!((recovered.acknowledged, recovered.last_ack), (5, 7));
    assert_eq!(recovered.last_id, MessageId(6));
    drop(_writer);

    // Compaction keeps every unfinished message's state, delivered parts included.
    Journal::compact(&dir.0).unwrap();
    let (_writer, compacted) = open(&dir.0);
    assert_eq!(compacted.unfinished, recovered.unfinished);
}

#[test]
fn records_are_durable_only_after_the_sync_that_covers_them() {
    let dir = TempDir::new("durable");
    let heard = Arc::new(AtomicU64::new(0));
    let told = heard.clone();
    let options = JournalOptions::new(&dir.0);
    let (mut writer, _) = Journal::open(
        &options,
        Box::new(move |seq| told.store(seq, Ordering::Release)),
    )
    .unwrap();
    life(&mut writer, 1, 3);
    assert_eq!(writer.appended(), 3);
    assert_eq!(writer.durable(), 0, "nothing handed over yet");
    writer.flush().unwrap();
    for _ in 0..1000 {
        if writer.durable() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(writer.durable(), 3);
    assert_eq!(heard.load(Ordering::Acquire), 3, "the callback heard it");
}

#[test]
fn segments_roll_over_and_are_read_in_order() {
    let dir = TempDir::new("segments");
    let options = JournalOptions {
        segment_bytes: 4096,
        sync: SyncMode::None,
        batch_interval: Duration::ZERO,
        compact_after_segments: 0,
        ..JournalOptions::new(&dir.0)
    };
    let (mut writer, _) = Journal::open(&options, Box::new(|_| {})).unwrap();
    for n in 1..=400 {
        life(&mut writer, n, if n % 2 == 0 { 4 } else { 2 });
        if n % 10 == 0 {
            make_durable(&mut writer);
        }
    }
    writer.close().unwrap();
    let (_writer, recovered) = open(&dir.0);
    assert!(recovered.segments > 5, "{} segments", recovered.segments);
    let ids: Vec<u64> = recovered
        .unfinished
        .iter()
        .map(|u| u.message.id().0)
        .collect();
    assert_eq!(ids, (1..=400).step_by(2).collect::<Vec<_>>());
    assert_eq!(recovered.unacknowledged.len(), 200);
}

#[test]
fn damage_before_the_end_is_reported_with_file_and_offset() {
    let dir = TempDir::new("corrupt");
    let (mut writer, _) = open(&dir.0);
    for n in 1..=5 {
        life(&mut writer, n, 1);
    }
    make_durable(&mut writer);
    let synced = segment_len(&dir.0);
    // A second batch: its `Synced` record says the first one was synced.
    life(&mut writer, 6, 1);
    writer.close().unwrap();
    let segment = only_segment(&dir.0);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    match Journal::open(&JournalOptions::new(&dir.0), Box::new(|_| {})) {
        Err(JournalError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, segment);
            assert!(
                (8..synced).contains(&offset),
                "a frame of the synced batch: {offset}"
            );
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("damage was skipped"),
    }
}

#[test]
fn an_unsynced_tail_left_with_holes_by_a_power_loss_is_cut() {
    let dir = TempDir::new("holes");
    let (mut writer, _) = open(&dir.0);
    for n in 1..=5 {
        life(&mut writer, n, 1);
    }
    make_durable(&mut writer);
    let synced = segment_len(&dir.0) as usize;
    for n in 6..=20 {
        life(&mut writer, n, 1);
    }
    writer.close().unwrap();
    // The power went during the second batch's sync: a page of it never reached the disk
    // (zeros), later ones did.
    let segment = only_segment(&dir.0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let hole = synced + 60;
    bytes[hole..hole + 200].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    let (writer, recovered) = open(&dir.0);
    let ids: Vec<u64> = recovered
        .unfinished
        .iter()
        .map(|u| u.message.id().0)
        .collect();
    assert_eq!(&ids[..5], &[1, 2, 3, 4, 5], "the synced batch is whole");
    assert!(
        ids.len() < 20,
        "the damaged part of the unsynced batch is cut: {ids:?}"
    );
    assert!(recovered.torn_bytes > 0);
    drop(writer);
    // And the journal opens again, the cut tail gone for good.
    let (_writer, again) = open(&dir.0);
    assert_eq!(again.unfinished.len(), ids.len());
}

#[test]
fn an_own_id_used_again_after_its_message_finished_is_a_message_of_its_own() {
    for acknowledge_first in [false, true] {
        let dir = TempDir::new("reuse");
        let (mut writer, _) = open(&dir.0);
        let first = message(7);
        let second = Message::builder("447700900999", "ACME", "again")
            .id(MessageId(7))
            .build()
            .unwrap();
        let records = [
            Record::Accepted {
                message: Cow::Borrowed(&first),
                at: 1,
            },
            Record::Finished {
                id: MessageId(7),
                status: Finish::Sent,
                ack: 1,
                possible_duplicate: false,
            },
            Record::Accepted {
                message: Cow::Borrowed(&second),
                at: 2,
            },
        ];
        for record in &records {
            writer.append(record).unwrap();
        }
        if acknowledge_first {
            writer.append(&Record::Acknowledged { upto: 1 }).unwrap();
        }
        writer.close().unwrap();
        for compacted in [false, true] {
            if compacted {
                Journal::compact(&dir.0).unwrap();
            }
            let (_writer, recovered) = open(&dir.0);
            let unfinished: Vec<&Message> =
                recovered.unfinished.iter().map(|u| &u.message).collect();
            assert_eq!(unfinished, [&second], "the second message resumes");
            let replays: Vec<(&Message, u64)> = recovered
                .unacknowledged
                .iter()
                .map(|r| (&r.message, r.ack))
                .collect();
            let want: Vec<(&Message, u64)> = if acknowledge_first {
                vec![]
            } else {
                vec![(&first, 1)]
            };
            assert_eq!(replays, want, "the first is replayed unless acknowledged");
        }
    }
}

#[test]
fn background_compaction_keeps_the_directory_to_the_live_messages() {
    let dir = TempDir::new("background");
    let options = JournalOptions {
        segment_bytes: 4096,
        sync: SyncMode::None,
        batch_interval: Duration::ZERO,
        compact_after_segments: 4,
        ..JournalOptions::new(&dir.0)
    };
    let files = || -> (usize, usize) {
        let names: Vec<String> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let count = |suffix: &str| names.iter().filter(|f| f.ends_with(suffix)).count();
        (count(".compact"), count(".log"))
    };
    let (mut writer, _) = Journal::open(&options, Box::new(|_| {})).unwrap();
    for n in 1..=400 {
        life(&mut writer, n, if n % 2 == 0 { 4 } else { 2 });
        if n % 10 == 0 {
            make_durable(&mut writer);
        }
    }
    // About 30 segments closed; the compactor catches up in the background, down to one
    // compacted file and at most 4 closed segments waiting beside the open one.
    let waited = std::time::Instant::now();
    while files().1 > 5 && waited.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (compacted, segments) = files();
    assert_eq!(compacted, 1);
    assert!(segments <= 5, "{segments} segments left");
    writer.close().unwrap();
    let recovered = open(&dir.0).1;
    let ids: Vec<u64> = recovered
        .unfinished
        .iter()
        .map(|u| u.message.id().0)
        .collect();
    assert_eq!(ids, (1..=400).step_by(2).collect::<Vec<_>>());
    assert_eq!(recovered.unacknowledged.len(), 200);
}

/// Copies every file of `from` into a new directory.
fn copy(from: &Path, to: &TempDir) {
    std::fs::create_dir_all(&to.0).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.0.join(entry.file_name())).unwrap();
    }
}

/// The parts of a recovery a router acts on.
fn seen(
    r: &smsroute_journal::Recovered,
) -> (
    Vec<smsroute_journal::Unfinished>,
    Vec<smsroute_journal::Replay>,
    u64,
    u64,
    MessageId,
) {
    (
        r.unfinished.clone(),
        r.unacknowledged.clone(),
        r.acknowledged,
        r.last_ack,
        r.last_id,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A journal cut at any byte (a crash in the middle of a write) recovers every record
    /// before the cut and nothing after it, and a new writer appends after it cleanly.
    #[test]
    fn a_journal_cut_anywhere_recovers_to_its_last_whole_record(
        count in 1u64..40,
        cut_share in 0.0f64..1.0,
    ) {
        let dir = TempDir::new("cut");
        let (mut writer, _) = open(&dir.0);
        let mut ends = Vec::new();
        for n in 1..=count {
            life(&mut writer, n, 1);
            make_durable(&mut writer);
            ends.push(segment_len(&dir.0));
        }
        writer.close().unwrap();
        let full = segment_len(&dir.0);
        let cut = 8 + ((full - 8) as f64 * cut_share) as u64;
        let path = only_segment(&dir.0);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();

        let (mut writer, recovered) = open(&dir.0);
        let whole = ends.iter().filter(|end| **end <= cut).count() as u64;
        prop_assert_eq!(recovered.unfinished.len() as u64, whole);
        // Whole frames end at each life's end and, 17 bytes into each batch, after the
        // `Synced` frame the sync thread wrote before it.
        let mut boundaries = vec![8];
        for (i, end) in ends.iter().enumerate() {
            let before = if i == 0 { 8 } else { ends[i - 1] };
            boundaries.extend([before + 17, *end]);
        }
        let kept = boundaries.iter().copied().filter(|b| *b <= cut).max().unwrap_or(8);
        prop_assert_eq!(recovered.torn_bytes, cut - kept);
        life(&mut writer, 1000, 1);
        writer.close().unwrap();
        let (_w, again) = open(&dir.0);
        prop_assert_eq!(again.unfinished.len() as u64, whole + 1);
        prop_assert_eq!(again.torn_bytes, 0);
    }
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 8)
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs.pop().unwrap()
}

fn segment_len(dir: &Path) -> u64 {
    std::fs::metadata(only_segment(dir)).unwrap().len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Compaction changes nothing recovery sees, before or after more is written; the
    /// compacted directory holds one file.
    #[test]
    fn compaction_keeps_what_recovery_sees(
        steps in proptest::collection::vec(1usize..=5, 1..60),
        later in proptest::collection::vec(1usize..=5, 0..20),
        retry_every in 2u64..7,
    ) {
        let (a, b) = (TempDir::new("compact-a"), TempDir::new("compact-b"));
        let options = |dir: &Path| JournalOptions {
            segment_bytes: 1024,
            sync: SyncMode::None,
            batch_interval: Duration::ZERO,
            compact_after_segments: 0,
            ..JournalOptions::new(dir)
        };
        let write = |dir: &Path, from: u64, steps: &[usize]| {
            let (mut writer, _) = Journal::open(&options(dir), Box::new(|_| {})).unwrap();
            for (i, s) in steps.iter().enumerate() {
                let n = from + i as u64;
                life(&mut writer, n, *s);
                if *s == 3 && n.is_multiple_of(retry_every) {
                    writer.append(&Record::Retrying { id: MessageId(n), at: 5_000 + n }).unwrap();
                } else if *s == 3 && n % 5 == 1 {
                    // Accepted by one carrier, then in flight to another.
                    writer
                        .append(&Record::Attempt {
                            id: MessageId(n),
                            carrier: "uk-beta".into(),
                            attempt: 2,
                        })
                        .unwrap();
                }
                writer.flush().unwrap();
            }
            writer.close().unwrap();
        };
        write(&a.0, 1, &steps);
        copy(&a.0, &b);
        let compacted = Journal::compact(&b.0).unwrap();
        prop_assert!(compacted.covered > 0);
        prop_assert_eq!(std::fs::read_dir(&b.0).unwrap().count(), 1, "one compacted file");
        prop_assert_eq!(seen(&open(&a.0).1), seen(&open(&b.0).1));
        // More lives on top of the compacted file, in both.
        let from = steps.len() as u64 + 1;
        write(&a.0, from, &later);
        write(&b.0, from, &later);
        prop_assert_eq!(seen(&open(&a.0).1), seen(&open(&b.0).1));
    }
}

#[test]
fn a_segment_cut_inside_its_header_is_removed_and_the_journal_opens_again() {
    let dir = TempDir::new("header");
    let (mut writer, _) = open(&dir.0);
    life(&mut writer, 1, 1);
    writer.close().unwrap();
    // A crash while the next segment was being created: 3 of its 8 header bytes written.
    std::fs::write(dir.0.join("0000000009.log"), b"SMS").unwrap();
    for _ in 0..2 {
        let (writer, recovered) = open(&dir.0);
        assert_eq!(recovered.unfinished.len(), 1);
        drop(writer);
    }
    assert!(!dir.0.join("0000000009.log").exists());
}
