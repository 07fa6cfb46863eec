//! The router with a journal, across crashes: a crash is the runtime dropped under a running
//! router (no shutdown, nothing flushed on the way out), and a restart a new router on the same
//! directory.
//!
//! Length: past 600 lines because each test is one crash story told whole (the router, the
//! crash, the restart, what the journal gave back), sharing only `common` and the helpers at
//! the top; split by concern they would repeat those helpers in every file.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use smsroute_carrier::Receipt;
use smsroute_carrier::mock::MockCarrier;
use smsroute_delivery::{Event, ReceiptStatus};
use smsroute_engine::{EngineOptions, EventStream, Router, StatusEvent};
use smsroute_sim::Behaviour;
use smsroute_types::{CarrierSlot, Message, MessageId};
use tokio::runtime::Runtime;

use common::JournalDir;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn message(n: u64) -> Message {
    Message::builder(&format!("4477009{n:05}"), "ACME", "hello")
        .client_ref(&format!("ref-{n}"))
        .build()
        .unwrap()
}

/// Takes events until `terminal` terminal ones came (at most 20 s of quiet).
async fn until_terminal(events: &mut EventStream, terminal: usize) -> Vec<StatusEvent> {
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|e: &&StatusEvent| e.is_terminal())
        .count()
        < terminal
    {
        let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an event within 20 s")
            .expect("the stream is open");
        seen.push(event);
    }
    seen
}

/// Terminal events by id.
fn terminal_by_id(events: &[StatusEvent]) -> BTreeMap<MessageId, StatusEvent> {
    let mut out = BTreeMap::new();
    for e in events.iter().filter(|e| e.is_terminal()) {
        assert!(
            out.insert(e.id, e.clone()).is_none(),
            "two terminal events for {}",
            e.id
        );
    }
    out
}

#[test]
fn a_crash_loses_nothing_accepted_and_flags_what_was_in_flight() {
    let dir = JournalDir::new("journal-crash");
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    const N: u64 = 10;

    // Life 1: the carrier never answers. Every message is accepted and handed to it, then
    // the process dies.
    let rt = runtime();
    let hanging = Behaviour {
        hang: 1.0,
        ..Behaviour::default()
    };
    let (router, mut events) = {
        let _enter = rt.enter();
        common::start(&config, dir.options(), &[("alpha", hanging)])
    };
    let ids: Vec<MessageId> = (1..=N)
        .map(|n| router.try_submit(message(n)).unwrap())
        .collect();
    rt.block_on(async {
        let mut accepted = HashSet::new();
        while accepted.len() < N as usize {
            let e = tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .expect("accepted within 20 s")
                .unwrap();
            assert_eq!(e.event, Event::Accepted, "nothing else happens: {e:?}");
            accepted.insert(e.id);
        }
        // Every submit is on its way to the carrier (published on the 100 ms tick).
        while router.carriers()[0].in_flight < N as u32 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    drop(rt);
    drop((router, events));

    // Life 2: the carrier answers. Each message is resumed as a lost submit: sent again and
    // flagged as a possible duplicate; none is accepted a second time.
    let rt = runtime();
    let (router, mut events) = {
        let _enter = rt.enter();
        common::start(&config, dir.options(), &[])
    };
    let seen = rt.block_on(until_terminal(&mut events, N as usize));
    assert!(
        seen.iter().all(|e| e.event != Event::Accepted),
        "accepted once, before the crash"
    );
    let first = terminal_by_id(&seen);
    assert_eq!(first.keys().copied().collect::<Vec<_>>(), ids);
    for (id, e) in &first {
        assert_eq!(e.event, Event::Delivered, "{id}");
        assert!(
            e.possible_duplicate,
            "{id}: its first submit may have arrived"
        );
        assert_eq!(e.attempts, 2, "{id}");
        assert_eq!(e.client_ref(), Some(format!("ref-{}", id.0).as_str()));
        assert!(!e.replay);
    }
    let mut acks: Vec<u64> = first.values().map(|e| e.ack).collect();
    acks.sort_unstable();
    assert_eq!(
        acks,
        (1..=N).collect::<Vec<_>>(),
        "each its own place, from 1"
    );
    let report = rt.block_on(router.shutdown(Duration::from_secs(1)));
    assert!(report.unfinished.is_empty());
    drop((router, events));
    drop(rt);

    // Life 3: nothing was acknowledged, so every terminal event comes again, flagged.
    let rt = runtime();
    let (router, mut events) = {
        let _enter = rt.enter();
        common::start(&config, dir.options(), &[])
    };
    let again = terminal_by_id(&rt.block_on(until_terminal(&mut events, N as usize)));
    assert_eq!(again.len(), first.len());
    for (id, e) in &again {
        let before = &first[id];
        assert!(e.replay, "{id}");
        assert_eq!(
            (e.event, e.ack, e.possible_duplicate, e.client_ref()),
            (before.event, before.ack, true, before.client_ref())
        );
    }
    // The gateway acknowledges all but the last two.
    router.acknowledge(N - 2);
    rt.block_on(router.shutdown(Duration::from_secs(1)));
    drop((router, events));
    drop(rt);

    // Life 4: only the two unacknowledged ones come again; a new message gets a new id.
    let rt = runtime();
    let (router, mut events) = {
        let _enter = rt.enter();
        common::start(&config, dir.options(), &[])
    };
    let replayed = rt.block_on(until_terminal(&mut events, 2));
    assert_eq!(
        replayed.iter().map(|e| e.ack).collect::<Vec<_>>(),
        [N - 1, N],
        "in acknowledgement order"
    );
    let next = router.try_submit(message(99)).unwrap();
    assert!(next > ids[ids.len() - 1], "ids are never reused: {next}");
    let fresh = rt.block_on(until_terminal(&mut events, 1));
    let last = fresh.iter().find(|e| e.is_terminal()).unwrap();
    assert_eq!((last.id, last.ack, last.replay), (next, N + 1, false));
    router.acknowledge(N + 1);
    rt.block_on(router.shutdown(Duration::from_secs(1)));
    drop((router, events));
    drop(rt);

    // Life 5: everything acknowledged: nothing comes back.
    let rt = runtime();
    let (router, mut events) = {
        let _enter = rt.enter();
        common::start(&config, dir.options(), &[])
    };
    assert_eq!(router.stats().outstanding, 0);
    rt.block_on(async {
        let quiet = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
        assert!(quiet.is_err(), "no event: {quiet:?}");
    });
    rt.block_on(router.shutdown(Duration::from_secs(1)));
}

#[test]
fn receipts_awaited_at_a_crash_are_matched_after_the_restart() {
    let dir = JournalDir::new("journal-receipts");
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    let start = |rt: &Runtime| {
        let _enter = rt.enter();
        Router::start(&config, dir.options(), |c| MockCarrier::new(&c.id)).unwrap()
    };

    // Life 1: the carrier accepts three messages; their receipts have not come at the crash.
    let rt = runtime();
    let (router, mut events) = start(&rt);
    let ids: Vec<MessageId> = (1..=3)
        .map(|n| router.try_submit(message(n)).unwrap())
        .collect();
    rt.block_on(async {
        let mut submitted = 0;
        while submitted < 3 {
            let e = tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .unwrap()
                .unwrap();
            submitted += usize::from(matches!(e.event, Event::Submitted { .. }));
        }
        // The ids are recorded in the turn that hears the answers: let the sync take them.
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    drop(rt);
    drop((router, events));

    // Life 2: the receipts arrive at the new process and find their messages.
    let rt = runtime();
    let (router, mut events) = start(&rt);
    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    let seen = rt.block_on(async {
        for id in &ids {
            carrier
                .send_receipt(Receipt {
                    message_id: MockCarrier::message_id(id.0, 1, 0),
                    status: ReceiptStatus::Delivered,
                    error: 0,
                    possible_duplicate: false,
                })
                .await;
        }
        until_terminal(&mut events, 3).await
    });
    let terminal = terminal_by_id(&seen);
    assert_eq!(terminal.keys().copied().collect::<Vec<_>>(), ids);
    for (id, e) in &terminal {
        assert_eq!(e.event, Event::Delivered, "{id}");
        assert_eq!((e.attempts, e.possible_duplicate), (1, false), "{id}");
        assert_eq!(
            e.carrier_message_ids[0].as_str(),
            &*MockCarrier::message_id(id.0, 1, 0)
        );
        assert_eq!(e.carrier_message_ids.len(), 1);
        assert_eq!(e.carrier_name, Some("alpha"));
    }
    assert!(carrier.submitted().is_empty(), "nothing was sent again");
    assert_eq!(router.stats().unknown_receipts, 0);
    rt.block_on(router.shutdown(Duration::from_secs(1)));
}

#[test]
fn without_a_journal_events_carry_no_acknowledgement_place() {
    let rt = runtime();
    let _enter = rt.enter();
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    let (router, mut events) = common::start(&config, EngineOptions::default(), &[]);
    let id = router.try_submit(message(1)).unwrap();
    let seen = rt.block_on(until_terminal(&mut events, 1));
    let last = seen.last().unwrap();
    assert_eq!((last.id, last.event), (id, Event::Delivered));
    assert_eq!((last.ack, last.replay), (0, false));
    router.acknowledge(5); // nothing to record, nothing changes
    let report = rt.block_on(router.shutdown(Duration::from_secs(1)));
    assert!(report.unfinished.is_empty());
}

#[test]
fn the_configuration_can_ask_for_the_journal() {
    let dir = JournalDir::new("journal-configured");
    let extra = format!(
        "[journal]\ndir = {:?}\nsync = \"always\"\n",
        dir.0.display().to_string()
    );
    let config = common::config(&[("alpha", 1000, "0.004")], &extra);
    for life in 1..=2u64 {
        let rt = runtime();
        let (router, mut events) = {
            let _enter = rt.enter();
            common::start(&config, EngineOptions::default(), &[])
        };
        router.try_submit(message(life)).unwrap();
        // Life 2 first hears life 1's unacknowledged terminal event again.
        let seen = rt.block_on(until_terminal(&mut events, life as usize));
        let acks: Vec<(u64, bool)> = seen
            .iter()
            .filter(|e| e.is_terminal())
            .map(|e| (e.ack, e.replay))
            .collect();
        let want: Vec<(u64, bool)> = (1..=life).map(|a| (a, a < life)).collect();
        assert_eq!(acks, want);
        rt.block_on(router.shutdown(Duration::from_secs(1)));
    }
    let segments = std::fs::read_dir(&dir.0).unwrap().count();
    assert_eq!(
        segments, 2,
        "a segment per start, in the configured directory"
    );
}

#[tokio::test]
async fn an_abandoned_router_keeps_every_promise_it_made() {
    use smsroute_sim::Latency;
    let dir = JournalDir::new("journal-abandon");
    // The carrier does not survive the crash: receipts owed by the old one never come, so
    // messages awaiting them end `sent` after the receipt timeout.
    let config = common::config(
        &[("alpha", 1000, "0.004")],
        "[retry]\nreceipt_timeout_s = 1\n",
    );
    let slow = Behaviour {
        latency: Latency::Fixed(20 * common::MS),
        ..Behaviour::default()
    };
    // Life 1: 200 messages, abandoned while most are queued or in flight.
    let (router, mut events) = common::start(&config, dir.options(), &[("alpha", slow)]);
    let submitted: HashSet<MessageId> = (1..=200)
        .map(|n| router.try_submit(message(n)).unwrap())
        .collect();
    let mut accepted = HashSet::new();
    let mut first: BTreeMap<MessageId, StatusEvent> = BTreeMap::new();
    while first.len() < 5 {
        let e = events.recv().await.unwrap();
        if e.event == Event::Accepted {
            accepted.insert(e.id);
        } else if e.is_terminal() {
            first.insert(e.id, e);
        }
    }
    router.abandon().await;
    // What was handed out before the crash is all there is; then the stream ends.
    while let Some(e) = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("the stream ends")
    {
        if e.event == Event::Accepted {
            accepted.insert(e.id);
        } else if e.is_terminal() {
            first.insert(e.id, e);
        }
    }
    assert!(
        router.try_submit(message(999)).is_err(),
        "an abandoned router takes nothing"
    );
    let owed: HashSet<MessageId> = accepted
        .iter()
        .filter(|id| !first.contains_key(id))
        .copied()
        .collect();
    assert!(!owed.is_empty(), "the crash left messages unfinished");

    // Life 2: every terminal event heard comes again, the same; every message accepted and
    // not finished gets exactly one terminal event; nothing else but messages submitted in
    // life 1 whose acceptance was durable without its event heard.
    let (router2, mut events2) = common::start(&config, dir.options(), &[]);
    let mut replays = BTreeMap::new();
    let mut finished = BTreeMap::new();
    while replays.len() < first.len() || !owed.iter().all(|id| finished.contains_key(id)) {
        let Ok(e) = tokio::time::timeout(Duration::from_secs(20), events2.recv()).await else {
            let missing: Vec<_> = owed
                .iter()
                .filter(|id| !finished.contains_key(*id))
                .collect();
            let unreplayed: Vec<_> = first
                .keys()
                .filter(|id| !replays.contains_key(*id))
                .collect();
            panic!("no event within 20 s: owed {missing:?}, not replayed {unreplayed:?}");
        };
        let e = e.unwrap();
        if !e.is_terminal() {
            continue;
        }
        let seen = if e.replay {
            &mut replays
        } else {
            &mut finished
        };
        assert!(
            seen.insert(e.id, e.clone()).is_none(),
            "two terminal events: {e:?}"
        );
    }
    for (id, e) in &replays {
        let before = &first[id];
        assert_eq!(
            (e.event, e.ack),
            (before.event, before.ack),
            "{id} replayed as it was"
        );
    }
    for (id, e) in &finished {
        assert!(submitted.contains(id), "{id} was never submitted");
        assert!(!first.contains_key(id), "{id} finished twice: {e:?}");
    }
    router.shutdown(Duration::from_secs(1)).await;
    router2.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn an_acknowledgement_past_what_was_handed_out_covers_only_that() {
    let dir = JournalDir::new("journal-ack-ahead");
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    for life in 1..=2 {
        let rt = runtime();
        let (router, mut events) = {
            let _enter = rt.enter();
            common::start(&config, dir.options(), &[])
        };
        if life == 1 {
            // A gateway's slip: a watermark no terminal event has reached yet.
            router.acknowledge(1_000);
            for n in 1..=2 {
                router.try_submit(message(n)).unwrap();
            }
        }
        let seen = rt.block_on(until_terminal(&mut events, 2));
        let terminal: Vec<(u64, bool)> = seen
            .iter()
            .filter(|e| e.is_terminal())
            .map(|e| (e.ack, e.replay))
            .collect();
        // Life 2: neither was acknowledged, so both come again.
        assert_eq!(terminal, [(1, life == 2), (2, life == 2)]);
        rt.block_on(router.shutdown(Duration::from_secs(1)));
    }
}

#[test]
fn a_possible_duplicate_stays_flagged_across_a_restart() {
    let dir = JournalDir::new("journal-flagged");
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    // Life 1: the first submit times out (the carrier may have it), the retry is accepted;
    // the receipt has not come at the crash.
    let rt = runtime();
    let (router, mut events) = {
        let _enter = rt.enter();
        Router::start(&config, dir.options(), |c| {
            let carrier = MockCarrier::new(&c.id);
            carrier.push_result(Err(smsroute_carrier::SubmitError::Timeout));
            carrier
        })
        .unwrap()
    };
    let id = router.try_submit(message(1)).unwrap();
    rt.block_on(async {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .unwrap()
                .unwrap();
            if matches!(e.event, Event::Submitted { attempt: 2, .. }) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    drop(rt);
    drop((router, events));

    // Life 2: the receipt comes; the terminal event still says the carrier may have two.
    let rt = runtime();
    let (router, mut events) = {
        let _enter = rt.enter();
        Router::start(&config, dir.options(), |c| MockCarrier::new(&c.id)).unwrap()
    };
    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    let seen = rt.block_on(async {
        carrier
            .send_receipt(Receipt {
                message_id: MockCarrier::message_id(id.0, 2, 0),
                status: ReceiptStatus::Delivered,
                error: 0,
                possible_duplicate: false,
            })
            .await;
        until_terminal(&mut events, 1).await
    });
    let last = seen.last().unwrap();
    assert_eq!(
        (last.id, last.event, last.attempts),
        (id, Event::Delivered, 2)
    );
    assert!(
        last.possible_duplicate,
        "flagged before the crash, flagged after"
    );
    rt.block_on(router.shutdown(Duration::from_secs(1)));
}

#[test]
fn an_id_handed_out_before_a_crash_is_never_handed_out_again() {
    let dir = JournalDir::new("journal-ids");
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    let mut given = Vec::new();
    for _life in 0..3 {
        let rt = runtime();
        let (router, events) = {
            let _enter = rt.enter();
            common::start(&config, dir.options(), &[])
        };
        // Killed at once: the message may never have reached the journal.
        given.push(router.try_submit(message(1)).unwrap());
        drop(rt);
        drop((router, events));
    }
    let mut unique = given.clone();
    unique.dedup();
    assert_eq!(unique, given, "ids handed out: {given:?}");
}

/// A carrier's receipt is answered "taken" only once what it did is durable: a crash right
/// after never forgets a receipt its carrier was told was taken (the carrier would not send it
/// again, and the message would wait for the receipt timeout, then end `sent`). Receipts not
/// answered taken (the crash came first) are offered again and match after the restart.
/// Crashes at several moments after the receipts arrive, one journal each.
#[tokio::test]
async fn a_receipt_is_answered_taken_only_once_its_effect_is_durable() {
    use smsroute_carrier::ReceiptAck;
    use std::sync::{Arc, Mutex};
    let config = common::config(&[("alpha", 100_000, "0.004")], "");
    let mut taken_total = 0;
    for (round, wait_us) in [0u64, 200, 500, 1_000, 2_000, 5_000]
        .into_iter()
        .enumerate()
    {
        let dir = JournalDir::new(&format!("journal-receipt-answers-{round}"));
        let start = || Router::start(&config, dir.options(), |c| MockCarrier::new(&c.id)).unwrap();
        // Life 1: 100 messages accepted by the carrier, their ids durable.
        let (router, mut events) = start();
        let ids: Vec<MessageId> = (1..=100)
            .map(|n| router.try_submit(message(n)).unwrap())
            .collect();
        let mut submitted = 0;
        while submitted < ids.len() {
            let e = events.recv().await.unwrap();
            submitted += usize::from(matches!(e.event, Event::Submitted { .. }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Their receipts come; the router crashes `wait_us` later.
        let answers = Arc::new(Mutex::new(BTreeMap::new()));
        let carrier = router.carrier(CarrierSlot(0)).unwrap();
        for id in &ids {
            let (answers, id) = (answers.clone(), *id);
            let ack = ReceiptAck::new(move |taken| {
                answers.lock().unwrap().insert(id, taken);
            });
            let receipt = Receipt {
                message_id: MockCarrier::message_id(id.0, 1, 0),
                status: ReceiptStatus::Delivered,
                error: 0,
                possible_duplicate: false,
            };
            carrier.send_receipt_answered(receipt, ack).await;
        }
        tokio::time::sleep(Duration::from_micros(wait_us)).await;
        router.abandon().await;
        drop((router, events));
        let answers = answers.lock().unwrap().clone();
        assert_eq!(
            answers.len(),
            ids.len(),
            "every receipt answered, taken or not"
        );
        let taken: HashSet<MessageId> = answers
            .iter()
            .filter(|(_, t)| **t)
            .map(|(id, _)| *id)
            .collect();
        taken_total += taken.len();

        // Life 2: every message whose receipt was taken is finished without it coming again;
        // the others get theirs again and finish too.
        let (router, mut events) = start();
        let carrier = router.carrier(CarrierSlot(0)).unwrap();
        let mut delivered = HashSet::new();
        while !taken.iter().all(|id| delivered.contains(id)) {
            let Ok(e) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await else {
                let lost: Vec<_> = taken.difference(&delivered).collect();
                panic!("round {round}: receipts answered taken were lost: {lost:?}");
            };
            let e = e.unwrap();
            if e.event == Event::Delivered {
                delivered.insert(e.id);
            }
        }
        for id in ids.iter().filter(|id| !taken.contains(id)) {
            let receipt = Receipt {
                message_id: MockCarrier::message_id(id.0, 1, 0),
                status: ReceiptStatus::Delivered,
                error: 0,
                possible_duplicate: false,
            };
            carrier.send_receipt(receipt).await;
        }
        while delivered.len() < ids.len() {
            let e = tokio::time::timeout(Duration::from_secs(20), events.recv())
                .await
                .expect("the rest finish")
                .unwrap();
            if e.event == Event::Delivered {
                delivered.insert(e.id);
            }
        }
        assert!(carrier.submitted().is_empty(), "nothing was sent again");
        router.shutdown(Duration::from_secs(1)).await;
    }
    assert!(taken_total > 0, "some receipts were taken before a crash");
}

/// A multipart message's delivered parts survive a crash: the receipt of one part, answered
/// taken, is recorded, so after the restart the other part's receipt alone finishes it. Once
/// with the message in memory, once parked.
#[tokio::test]
async fn a_delivered_part_survives_a_crash() {
    use smsroute_carrier::ReceiptAck;
    let config = common::config(&[("alpha", 1000, "0.004")], "");
    for park in [false, true] {
        let dir = JournalDir::new(&format!("journal-parts-{park}"));
        let start = || Router::start(&config, dir.options(), |c| MockCarrier::new(&c.id)).unwrap();
        let receipt = |id: MessageId, part: u32| Receipt {
            message_id: MockCarrier::message_id(id.0, 1, part),
            status: ReceiptStatus::Delivered,
            error: 0,
            possible_duplicate: false,
        };
        let (router, mut events) = start();
        let long = Message::builder("447700900123", "ACME", &"x".repeat(200))
            .build()
            .unwrap();
        let id = router.try_submit(long).unwrap();
        loop {
            let e = events.recv().await.unwrap();
            if matches!(e.event, Event::Submitted { .. }) {
                break;
            }
        }
        if park {
            while router.stats().parked == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let ack = ReceiptAck::new(move |taken| {
            let _ = answer.send(taken);
        });
        let carrier = router.carrier(CarrierSlot(0)).unwrap();
        carrier.send_receipt_answered(receipt(id, 0), ack).await;
        assert_eq!(answered.await, Ok(true), "park {park}");
        router.abandon().await;
        drop((router, events));

        let (router, mut events) = start();
        // Only the other part's id is awaited again.
        let pending = |router: &Router<MockCarrier>, want: usize| {
            let router = router.clone();
            async move {
                for _ in 0..500 {
                    if router.stats().receipts_pending == want {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!(
                    "receipts pending {} not {want}",
                    router.stats().receipts_pending
                );
            }
        };
        pending(&router, 1).await;
        let carrier = router.carrier(CarrierSlot(0)).unwrap();
        carrier.send_receipt(receipt(id, 1)).await;
        let e = until_terminal(&mut events, 1).await.pop().unwrap();
        assert_eq!((e.id, e.event), (id, Event::Delivered), "park {park}");
        pending(&router, 0).await;
        router.shutdown(Duration::from_secs(1)).await;
    }
}

/// A receipt for a parked message that cannot be read back (its side file lost) is answered
/// "not taken", again when offered again; after a restart, which resumes the message from
/// the journal, it is taken and finishes the message.
#[tokio::test]
async fn a_receipt_for_a_message_that_cannot_be_read_back_is_not_taken() {
    use smsroute_carrier::ReceiptAck;
    let config = common::config(&[("alpha", 100_000, "0.004")], "");
    let dir = JournalDir::new("journal-unreadable");
    let start = || Router::start(&config, dir.options(), |c| MockCarrier::new(&c.id)).unwrap();
    let (router, mut events) = start();
    // Enough parked messages that the first ones are written out (past the side files'
    // 64 KiB write buffer), where losing the file loses them.
    let ids: Vec<MessageId> = (1..=2000)
        .map(|n| router.try_submit(message(n)).unwrap())
        .collect();
    let id = ids[0];
    let mut submitted = 0;
    while submitted < ids.len() {
        let e = events.recv().await.unwrap();
        submitted += usize::from(matches!(e.event, Event::Submitted { .. }));
    }
    while router.stats().parked < ids.len() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for file in std::fs::read_dir(dir.0.join("parked")).unwrap() {
        let path = file.unwrap().path();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    let receipt = Receipt {
        message_id: MockCarrier::message_id(id.0, 1, 0),
        status: ReceiptStatus::Delivered,
        error: 0,
        possible_duplicate: false,
    };
    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    for offer in 0..2 {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let ack = ReceiptAck::new(move |taken| {
            let _ = answer.send(taken);
        });
        carrier.send_receipt_answered(receipt.clone(), ack).await;
        assert_eq!(answered.await, Ok(false), "offer {offer}: not taken");
    }
    router.shutdown(Duration::from_secs(1)).await;
    drop(events);

    let (router, mut events) = start();
    let carrier = router.carrier(CarrierSlot(0)).unwrap();
    let (answer, answered) = tokio::sync::oneshot::channel();
    let ack = ReceiptAck::new(move |taken| {
        let _ = answer.send(taken);
    });
    carrier.send_receipt_answered(receipt, ack).await;
    let e = until_terminal(&mut events, 1).await.pop().unwrap();
    assert_eq!((e.id, e.event), (id, Event::Delivered));
    assert_eq!(answered.await, Ok(true));
    router.shutdown(Duration::from_secs(1)).await;
}
