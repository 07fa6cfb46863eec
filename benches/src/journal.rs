//! What the journal benches write: realistic messages and the records of their lives, in a
//! scratch directory of their own.

use std::borrow::Cow;
use std::path::PathBuf;

use smsroute_journal::{Finish, Record};
use smsroute_types::{Message, MessageId};

/// A directory of its own under the system's temporary directory, empty.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smsroute-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Message `n`: a UK number, a one-part text, a client reference.
pub fn message(n: u64) -> Message {
    Message::builder(
        &format!("4477009{:05}", n % 100_000),
        "ACME",
        "Your code is 123456",
    )
    .id(MessageId(n))
    .client_ref(&format!("order-{n}"))
    .build()
    .expect("a valid message")
}

/// The carrier's id of message `id`'s one part.
pub fn carrier_ids(id: MessageId) -> [Box<str>; 1] {
    [format!("c{:x}", id.0).into_boxed_str()]
}

/// A message's records up to awaiting its receipt (accepted, attempt, carrier ids), and its
/// end (delivered) when `finished`.
pub fn life<'a>(message: &'a Message, ids: &'a [Box<str>], finished: bool) -> Vec<Record<'a>> {
    let id = message.id();
    let mut records = vec![
        Record::Accepted {
            message: Cow::Borrowed(message),
            at: 1,
        },
        Record::Attempt {
            id,
            carrier: "uk-alpha".into(),
            attempt: 1,
        },
        Record::Submitted {
            id,
            carrier: "uk-alpha".into(),
            carrier_ids: Cow::Borrowed(ids),
        },
    ];
    if finished {
        records.push(Record::Finished {
            id,
            status: Finish::Delivered,
            ack: id.0,
            possible_duplicate: false,
        });
    }
    records
}
