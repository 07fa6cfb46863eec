//! Submits and events held for the journal: an attempt is sent once its record is durable,
//! and its submit timeout counts from that send, not from when the attempt was decided; the
//! events held go to the gateway in the order they were made.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use smsroute_delivery::Event;
use smsroute_engine::EngineOptions;
use smsroute_journal::JournalOptions;
use smsroute_sim::Behaviour;

use common::JournalDir;

#[test]
fn a_submit_held_for_the_disk_times_out_counting_from_its_send() {
    let dir = JournalDir::new("held-timeout");
    let config = common::config(
        &[("alpha", 1000, "0.004")],
        "[retry]\nsubmit_timeout_ms = 500\n",
    );
    // At most one sync every 300 ms: the second message's attempt waits for the disk.
    let mut journal = JournalOptions::new(&dir.0);
    journal.batch_interval = Duration::from_millis(300);
    let hung = Behaviour {
        hang: 1.0,
        ..Behaviour::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let options = EngineOptions::default().journal(journal);
    let (router, mut events) = common::start(&config, options, &[("alpha", hung)]);
    // The first message's records are synced at once; the second's wait for the next sync.
    router.try_submit(common::message(1)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let second = router.try_submit(common::message(2)).unwrap();
    let (mut accepted, mut given_up) = (None, None);
    rt.block_on(async {
        while given_up.is_none() {
            let e = tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .expect("the held submit times out")
                .expect("the stream is open");
            match e.event {
                Event::Accepted if e.id == second => accepted = Some(e.at),
                // Reported once given up on, stamped with when it was sent.
                Event::Submitted { attempt: 1, .. } if e.id == second => {
                    given_up = Some((e.at, router.now()));
                }
                _ => {}
            }
        }
    });
    let (sent, timed_out) = given_up.unwrap();
    let held = sent - accepted.expect("accepted before it was sent");
    assert!(
        held >= 100_000_000,
        "the attempt waited {held} ns for the disk: the test needs a long hold"
    );
    assert!(
        timed_out - sent >= 500_000_000,
        "timed out {} ns after it was sent, before the submit timeout",
        timed_out - sent
    );
    drop(_enter);
    rt.block_on(router.shutdown(Duration::from_secs(1)));
}

#[test]
fn held_events_come_in_order_each_message_accepted_first_and_finished_last() {
    let dir = JournalDir::new("held-order");
    let config = common::config(&[("alpha", 100_000, "0.004")], "");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let options = EngineOptions::default().journal(JournalOptions::new(&dir.0));
    let (router, mut events) = common::start(&config, options, &[("alpha", Behaviour::default())]);
    // A burst: several turns' worth, so held events go out in many batches.
    const N: u64 = 3_000;
    for n in 1..=N {
        router.try_submit(common::message(n)).unwrap();
    }
    let mut by_id: HashMap<_, Vec<Event>> = HashMap::new();
    let mut acks = Vec::new();
    rt.block_on(async {
        while acks.len() < N as usize {
            let e = tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .expect("every message finishes")
                .expect("the stream is open");
            if e.is_terminal() {
                acks.push(e.ack);
            }
            by_id.entry(e.id).or_default().push(e.event);
        }
    });
    assert_eq!(by_id.len(), N as usize);
    for (id, seen) in &by_id {
        assert_eq!(seen.first(), Some(&Event::Accepted), "{id}: {seen:?}");
        assert_eq!(
            seen.iter().filter(|e| **e == Event::Accepted).count(),
            1,
            "{id}"
        );
        assert!(
            seen.last().is_some_and(Event::is_terminal),
            "{id}: {seen:?}"
        );
        assert_eq!(seen.iter().filter(|e| e.is_terminal()).count(), 1, "{id}");
    }
    // Handed out in the acknowledgement order, each place once.
    assert!(
        acks.windows(2).all(|w| w[0] < w[1]),
        "out of order: {acks:?}"
    );
    drop(_enter);
    rt.block_on(router.shutdown(Duration::from_secs(1)));
}
