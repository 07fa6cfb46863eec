//! The two journal designs of issue 16 side by side, same records, same disk, same run:
//! `smsroute-journal` (our segmented log) and fjall 3 (an LSM store with its own write-ahead
//! journal), each used as the engine would use it.
//!
//! - append: `LIVES` message lives (accepted with the whole message, attempt, carrier ids,
//!   finished and acknowledged), committed in groups of 256 lives (one dispatcher turn): lives
//!   per second and the p99 of a group's commit (hand-over to durable);
//! - disk: the directory's size once the run is closed (finished messages compacted away);
//! - recover: `UNFINISHED` messages accepted and awaiting their receipts, read back into their
//!   states.
//!
//! Our log appends frames to one file and compacts finished messages away by rewriting what
//! is live; the fjall prototype keys each record by (message id, kind), removes a message's
//! keys when it is finished and acknowledged, and persists (`SyncData`) once per group.
//!
//! Groups are committed one after the other here (each waits for the previous one's sync),
//! so our sync thread's batch interval (at most one sync per interval, to gather records
//! under concurrent load) shows as idle time; it is measured with its default and with 0.
//!
//! `cargo run --release -p smsroute-benches --example journal_compare -- [LIVES] [UNFINISHED]`
//! (defaults 1,000,000 and 1,000,000; the directories live in the system's temporary
//! directory).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use hdrhistogram::Histogram;
use smsroute_benches::journal::{carrier_ids, life, message, scratch};
use smsroute_journal::{Journal, JournalOptions, Record};
use smsroute_types::{Message, MessageId};

const GROUP: u64 = 256;

fn main() {
    let mut args = std::env::args().skip(1);
    let lives: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let unfinished: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "| design | append lives/s | commit p50 / p99 | disk after {lives} lives | recover {unfinished} unfinished |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let recover = ours_recover(unfinished);
    row(
        "smsroute-journal, batch interval 1 ms (default)",
        (ours_append(lives, Duration::from_millis(1)), recover),
    );
    row(
        "smsroute-journal, batch interval 0",
        (ours_append(lives, Duration::ZERO), recover),
    );
    let lsm = (fjall_append(lives), fjall_recover(unfinished));
    row("fjall 3", lsm);
}

struct Append {
    per_second: f64,
    commit: Histogram<u64>,
    disk: u64,
}

fn row(name: &str, (append, recover): (Append, Duration)) {
    println!(
        "| {name} | {:.0} | {:.2} / {:.2} ms | {:.1} MB | {:.2} s |",
        append.per_second,
        append.commit.value_at_quantile(0.5) as f64 / 1e3,
        append.commit.value_at_quantile(0.99) as f64 / 1e3,
        append.disk as f64 / 1e6,
        recover.as_secs_f64()
    );
}

fn size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn ours_append(lives: u64, interval: Duration) -> Append {
    let dir = scratch("ours-append");
    let options = JournalOptions {
        batch_interval: interval,
        ..JournalOptions::new(&dir)
    };
    let (mut writer, _) = Journal::open(&options, Box::new(|_| {})).expect("opens");
    let mut commit = Histogram::<u64>::new(3).expect("a histogram");
    let started = Instant::now();
    for group in 0..lives.div_ceil(GROUP) {
        let last = ((group + 1) * GROUP).min(lives);
        for n in group * GROUP + 1..=last {
            let m = message(n);
            for record in life(&m, &carrier_ids(MessageId(n)), true) {
                writer.append(&record).expect("appended");
            }
        }
        let seq = writer
            .append(&Record::Acknowledged { upto: last })
            .expect("appended");
        let handed = Instant::now();
        writer.flush().expect("handed over");
        while writer.durable() < seq {
            std::thread::yield_now();
        }
        commit.saturating_record(handed.elapsed().as_micros() as u64);
    }
    let per_second = lives as f64 / started.elapsed().as_secs_f64();
    writer.close().expect("closed");
    // What a restart leaves: finished messages compacted away.
    Journal::compact(&dir).expect("compacted");
    let disk = size(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    Append {
        per_second,
        commit,
        disk,
    }
}

fn ours_recover(unfinished: u64) -> Duration {
    let dir = scratch("ours-recover");
    {
        let (mut writer, _) =
            Journal::open(&JournalOptions::new(&dir), Box::new(|_| {})).expect("opens");
        for n in 1..=unfinished {
            for record in life(&message(n), &carrier_ids(MessageId(n)), false) {
                writer.append(&record).expect("appended");
            }
            if n % GROUP == 0 {
                writer.flush().expect("handed over");
            }
        }
        writer.close().expect("closed");
    }
    let started = Instant::now();
    let (writer, recovered) =
        Journal::open(&JournalOptions::new(&dir), Box::new(|_| {})).expect("opens");
    let elapsed = started.elapsed();
    assert_eq!(recovered.unfinished.len() as u64, unfinished);
    drop((writer, recovered));
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}

/// A record's key in the fjall prototype: the message id, then the record's kind.
fn key(id: MessageId, kind: u8) -> [u8; 9] {
    let mut key = [0; 9];
    key[..8].copy_from_slice(&id.0.to_be_bytes());
    key[8] = kind;
    key
}

fn kind_of(record: &Record<'_>) -> u8 {
    match record {
        Record::Accepted { .. } => 1,
        Record::Attempt { .. } => 2,
        Record::Submitted { .. } => 3,
        Record::Retrying { .. } => 4,
        _ => 5,
    }
}

fn fjall_open(dir: &Path) -> (Database, Keyspace) {
    let db = Database::builder(dir).open().expect("fjall opens");
    let keyspace = db
        .keyspace("messages", KeyspaceCreateOptions::default)
        .expect("a keyspace");
    (db, keyspace)
}

fn fjall_put(keyspace: &Keyspace, record: &Record<'_>, buf: &mut Vec<u8>) {
    buf.clear();
    record.encode(buf);
    let id = match record {
        Record::Accepted { message, .. } => message.id(),
        other => other.id().expect("a message's record"),
    };
    keyspace
        .insert(key(id, kind_of(record)), buf.as_slice())
        .expect("inserted");
}

fn fjall_append(lives: u64) -> Append {
    let dir = scratch("fjall-append");
    let (db, keyspace) = fjall_open(&dir);
    let mut commit = Histogram::<u64>::new(3).expect("a histogram");
    let mut buf = Vec::new();
    let started = Instant::now();
    for group in 0..lives.div_ceil(GROUP) {
        let last = ((group + 1) * GROUP).min(lives);
        for n in group * GROUP + 1..=last {
            let m = message(n);
            let ids = carrier_ids(MessageId(n));
            for record in life(&m, &ids, false) {
                fjall_put(&keyspace, &record, &mut buf);
            }
        }
        // Finished and acknowledged: the message's keys go.
        for n in group * GROUP + 1..=last {
            for kind in 1..=3 {
                keyspace.remove(key(MessageId(n), kind)).expect("removed");
            }
        }
        let handed = Instant::now();
        db.persist(PersistMode::SyncData).expect("persisted");
        commit.saturating_record(handed.elapsed().as_micros() as u64);
    }
    let per_second = lives as f64 / started.elapsed().as_secs_f64();
    drop((keyspace, db));
    let disk = size(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    Append {
        per_second,
        commit,
        disk,
    }
}

fn fjall_recover(unfinished: u64) -> Duration {
    let dir = scratch("fjall-recover");
    {
        let (db, keyspace) = fjall_open(&dir);
        let mut buf = Vec::new();
        for n in 1..=unfinished {
            for record in life(&message(n), &carrier_ids(MessageId(n)), false) {
                fjall_put(&keyspace, &record, &mut buf);
            }
            if n % GROUP == 0 {
                db.persist(PersistMode::SyncData).expect("persisted");
            }
        }
        db.persist(PersistMode::SyncData).expect("persisted");
    }
    let started = Instant::now();
    let (db, keyspace) = fjall_open(&dir);
    // The same work as our recovery: every record decoded, folded into its message's state.
    let mut states: HashMap<u64, (Option<Message>, u32, usize)> = HashMap::new();
    for guard in keyspace.iter() {
        let (k, v) = guard.into_inner().expect("read");
        let id = u64::from_be_bytes(k[..8].try_into().expect("an 8-byte id"));
        let state = states.entry(id).or_default();
        match Record::decode(&v).expect("a record") {
            Record::Accepted { message, .. } => state.0 = Some(message.into_owned()),
            Record::Attempt { attempt, .. } => state.1 = attempt,
            Record::Submitted { carrier_ids, .. } => state.2 = carrier_ids.len(),
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(states.len() as u64, unfinished);
    drop((keyspace, db));
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}
