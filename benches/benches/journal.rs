//! `journal/append/10000`: 10,000 records of one message's life each (accepted with its whole
//! message, attempt, carrier ids, finished) appended, handed to the sync thread and waited for
//! until durable (`sync = "batch"`, on the disk of the system's temporary directory).
//! `journal/encode/10000`: the same records encoded into a reused buffer, nothing written:
//! the dispatcher's share of a record's cost.
//! `journal/recover/N`: reading a journal that holds N unfinished messages (each accepted and
//! awaiting its receipt: three records) back into their states. Sizes:
//! `SMSROUTE_BENCH_SIZES=100k,1M` (the default).

use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smsroute_benches::journal::{carrier_ids, life, message, scratch};
use smsroute_journal::{Journal, JournalOptions, Writer};
use smsroute_types::Message;

const APPEND: usize = 10_000;

fn wanted(label: &str) -> bool {
    match std::env::var("SMSROUTE_BENCH_SIZES") {
        Ok(list) => list.split(',').any(|s| s.trim() == label),
        Err(_) => true,
    }
}

/// Appends message `message`'s life (see `life`); the last record's sequence number.
fn append_life(writer: &mut Writer, message: &Message, finished: bool) -> u64 {
    let ids = carrier_ids(message.id());
    let mut seq = 0;
    for record in life(message, &ids, finished) {
        seq = writer.append(&record).expect("appended");
    }
    seq
}

fn open(dir: &Path) -> (Writer, smsroute_journal::Recovered) {
    Journal::open(&JournalOptions::new(dir), Box::new(|_| {})).expect("the journal opens")
}

fn journal(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let dir = scratch("journal-append");
    let (mut writer, _) = open(&dir);
    let messages: Vec<Message> = (1..=APPEND as u64).map(message).collect();
    group.throughput(Throughput::Elements(APPEND as u64));
    group.bench_function(BenchmarkId::new("append", APPEND), |b| {
        b.iter(|| {
            let mut last = 0;
            for message in &messages {
                last = append_life(&mut writer, message, true);
            }
            writer.flush().expect("handed over");
            while writer.durable() < last {
                std::thread::yield_now();
            }
        })
    });
    drop(writer);
    let _ = std::fs::remove_dir_all(&dir);

    let ids: Vec<_> = messages.iter().map(|m| carrier_ids(m.id())).collect();
    let lives: Vec<_> = messages
        .iter()
        .zip(&ids)
        .map(|(message, ids)| life(message, ids, true))
        .collect();
    let mut buf = Vec::with_capacity(1 << 16);
    group.bench_function(BenchmarkId::new("encode", APPEND), |b| {
        b.iter(|| {
            let mut bytes = 0;
            for life in &lives {
                for record in life {
                    record.encode(&mut buf);
                }
                bytes += buf.len();
                buf.clear();
            }
            bytes
        })
    });

    for (label, n) in [("100k", 100_000u64), ("1M", 1_000_000)] {
        if !wanted(label) {
            continue;
        }
        let dir = scratch(&format!("journal-recover-{label}"));
        {
            let (mut writer, _) = open(&dir);
            for i in 1..=n {
                append_life(&mut writer, &message(i), false);
                if i % 4096 == 0 {
                    writer.flush().expect("handed over");
                }
            }
            writer.close().expect("synced");
        }
        group.throughput(Throughput::Elements(n));
        group.bench_function(BenchmarkId::new("recover", label), |b| {
            b.iter_batched(
                || (),
                |()| {
                    let (writer, recovered) = open(&dir);
                    assert_eq!(recovered.unfinished.len() as u64, n);
                    drop(writer);
                    recovered
                },
                BatchSize::PerIteration,
            )
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, journal);
criterion_main!(benches);
