//! What the journal's tests share: temporary directories, messages, their records, syncs.
#![allow(dead_code)]

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smsroute_journal::{Finish, Record, Writer};
use smsroute_types::{Message, MessageId};

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "smsroute-journal-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn message(n: u64) -> Message {
    Message::builder(&format!("4477009{n:05}"), "ACME", &format!("code {n}"))
        .id(MessageId(n))
        .client_ref(&format!("ref-{n}"))
        .validity(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// Message n's life, as far as `steps` goes: accepted, attempt 1, submitted, finished sent
/// (n in the acknowledgement order), acknowledged up to it.
pub fn life(writer: &mut Writer, n: u64, steps: usize) {
    let m = message(n);
    let ids: Vec<Box<str>> = vec![format!("c{n}").into()];
    let records = [
        Record::Accepted {
            message: Cow::Borrowed(&m),
            at: 1_000 + n,
        },
        Record::Attempt {
            id: MessageId(n),
            carrier: "uk-alpha".into(),
            attempt: 1,
        },
        Record::Submitted {
            id: MessageId(n),
            carrier: "uk-alpha".into(),
            carrier_ids: Cow::Borrowed(&ids),
        },
        Record::Finished {
            id: MessageId(n),
            status: Finish::Sent,
            ack: n,
            possible_duplicate: false,
        },
        Record::Acknowledged { upto: n },
    ];
    for record in records.iter().take(steps) {
        writer.append(record).unwrap();
    }
}

/// Hands what `writer` appended to its sync thread and waits until all of it is durable.
pub fn make_durable(writer: &mut Writer) {
    writer.flush().unwrap();
    let started = Instant::now();
    while writer.durable() < writer.appended() {
        assert!(started.elapsed() < Duration::from_secs(30), "never durable");
        std::thread::sleep(Duration::from_micros(100));
    }
}
