//! Submits held for the journal: an attempt is sent once its record is durable, and its
//! submit timeout counts from that send, not from when the attempt was decided.

mod common;

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
