//! The delivery state machine driven by a simulated engine: table tests of the paths and
//! property tests over random outcome sequences.

use proptest::prelude::*;
use smallvec::SmallVec;
use smsroute_delivery::*;
use smsroute_types::CarrierSlot;
use smsroute_types::{MessageId, SplitMix64};

const MS: Nanos = 1_000_000;
const SECOND: Nanos = 1_000 * MS;

fn c(i: u16) -> CarrierSlot {
    CarrierSlot(i)
}

fn request(candidates: &[u16], parts: u32, receipt: bool) -> DeliveryRequest {
    DeliveryRequest {
        id: MessageId(7),
        parts,
        candidates: candidates.iter().map(|&i| c(i)).collect(),
        receipt,
        validity: None,
        not_before: None,
    }
}

fn events(actions: &Actions) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| {
            if let Action::Emit(e) = a {
                Some(*e)
            } else {
                None
            }
        })
        .collect()
}

fn wake(actions: &Actions) -> Option<Nanos> {
    actions.iter().find_map(|a| {
        if let Action::WakeAt(t) = a {
            Some(*t)
        } else {
            None
        }
    })
}

/// Admits and submits the current attempt; returns its number.
fn submit(d: &mut Delivery, now: Nanos) -> u32 {
    let actions = d.handle_admission(Admission::Admitted, now, &mut Unlimited);
    actions
        .iter()
        .find_map(|a| {
            if let Action::Submit { attempt, .. } = a {
                Some(*attempt)
            } else {
                None
            }
        })
        .expect("a submit")
}

#[test]
fn accepted_without_receipt_is_sent() {
    let (mut d, actions) = Delivery::start(request(&[0, 1], 1, false), RetryPolicy::default(), 0);
    assert_eq!(events(&actions), [Event::Accepted]);
    let attempt = submit(&mut d, 0);
    let actions = d.handle_submit_result(attempt, SubmitResult::Accepted, 5 * MS, &mut Unlimited);
    assert_eq!(events(&actions), [Event::Sent]);
    assert_eq!(d.history()[0].outcome, AttemptOutcome::Accepted);
}

#[test]
fn multipart_is_delivered_when_every_part_is() {
    let (mut d, _) = Delivery::start(request(&[0], 3, true), RetryPolicy::default(), 0);
    let attempt = submit(&mut d, 0);
    let actions = d.handle_submit_result(attempt, SubmitResult::Accepted, MS, &mut Unlimited);
    // Receipts are waited for until the receipt timeout, or wakes at the validity first.
    let p = RetryPolicy::default();
    assert_eq!(
        wake(&actions),
        Some((MS + p.receipt_timeout).min(p.validity))
    );
    for part in [0, 2, 2] {
        let actions = d.handle_receipt(
            attempt,
            part,
            ReceiptStatus::Delivered,
            2 * MS,
            &mut Unlimited,
        );
        assert!(
            events(&actions).is_empty(),
            "part {part}: not yet, and a duplicate is ignored"
        );
    }
    let actions = d.handle_receipt(attempt, 1, ReceiptStatus::Delivered, 3 * MS, &mut Unlimited);
    assert_eq!(events(&actions), [Event::Delivered]);
    // A receipt after the end is ignored.
    assert!(
        d.handle_receipt(
            attempt,
            0,
            ReceiptStatus::Undeliverable,
            4 * MS,
            &mut Unlimited
        )
        .is_empty()
    );
}

#[test]
fn no_receipt_in_time_is_sent() {
    // Waiting for receipts shorter than the validity (the default waits 72 h, past it).
    let policy = RetryPolicy {
        receipt_timeout: 600 * SECOND,
        ..RetryPolicy::default()
    };
    let (mut d, _) = Delivery::start(request(&[0], 1, true), policy, 0);
    let attempt = submit(&mut d, 0);
    let actions = d.handle_submit_result(attempt, SubmitResult::Accepted, MS, &mut Unlimited);
    let until = wake(&actions).unwrap();
    assert!(
        d.handle_timer(until - 1, &mut Unlimited)
            .iter()
            .all(|a| matches!(a, Action::WakeAt(_)))
    );
    assert_eq!(
        events(&d.handle_timer(until, &mut Unlimited)),
        [Event::Sent]
    );
}

#[test]
fn each_error_class_takes_its_path() {
    // (status, first event after the failure)
    type Expect = fn(&Event) -> bool;
    let cases: [(u32, Expect, &str); 5] = [
        (
            0x58,
            |e| matches!(e, Event::Retrying { carrier, .. } if *carrier == c(0)),
            "throttled: same carrier",
        ),
        (
            0x14,
            |e| matches!(e, Event::Retrying { .. }),
            "queue full: same carrier",
        ),
        (
            0x08,
            |e| {
                *e == Event::FailedOver {
                    from: c(0),
                    to: c(1),
                }
            },
            "system error: fail over",
        ),
        (
            0x0B,
            |e| *e == Event::Failed(FailReason::Permanent { status: 0x0B }),
            "bad destination: stop",
        ),
        (
            0x9999,
            |e| matches!(e, Event::Retrying { .. }),
            "unknown code: temporary",
        ),
    ];
    for (status, expect, why) in cases {
        let (mut d, _) = Delivery::start(request(&[0, 1], 1, false), RetryPolicy::default(), 0);
        let attempt = submit(&mut d, 0);
        let actions = d.handle_submit_result(
            attempt,
            SubmitResult::Rejected { status },
            MS,
            &mut Unlimited,
        );
        let evs = events(&actions);
        assert!(expect(&evs[0]), "{why}: {evs:?}");
    }
}

#[test]
fn an_attempt_never_sent_fails_over_without_a_duplicate_flag() {
    let (mut d, _) = Delivery::start(request(&[0, 1], 1, false), RetryPolicy::default(), 0);
    let attempt = submit(&mut d, 0);
    let actions = d.handle_submit_result(attempt, SubmitResult::NotSent, MS, &mut Unlimited);
    let evs = events(&actions);
    assert!(matches!(evs[0], Event::FailedOver { .. }), "{evs:?}");
    assert!(!d.possible_duplicate());
    assert_eq!(d.history()[0].outcome, AttemptOutcome::NotSent);
}

#[test]
fn a_timeout_fails_over_and_flags_a_possible_duplicate() {
    let (mut d, _) = Delivery::start(request(&[0, 1], 1, false), RetryPolicy::default(), 0);
    let actions = d.handle_admission(Admission::Admitted, 0, &mut Unlimited);
    let timeout = wake(&actions).unwrap();
    assert_eq!(timeout, 10 * SECOND);
    let actions = d.handle_timer(timeout, &mut Unlimited);
    assert_eq!(
        events(&actions),
        [Event::FailedOver {
            from: c(0),
            to: c(1)
        }]
    );
    assert!(d.possible_duplicate());
    // The late answer to attempt 1 is stale.
    assert!(
        d.handle_submit_result(1, SubmitResult::Accepted, timeout + 1, &mut Unlimited)
            .is_empty()
    );
}

#[test]
fn a_lane_that_cannot_admit_in_time_expires_it_and_one_too_small_fails_it() {
    let policy = RetryPolicy {
        validity: SECOND,
        ..RetryPolicy::default()
    };
    let (mut d, _) = Delivery::start(request(&[0, 1], 1, false), policy, 0);
    // Waiting in the lane is the engine's: no wake-up is asked for meanwhile.
    assert!(d.handle_timer(SECOND / 2, &mut Unlimited).is_empty());
    let actions = d.handle_admission(Admission::TooLate, SECOND, &mut Unlimited);
    assert_eq!(events(&actions), [Event::Expired]);
    // Regression (issue 14): a message larger than its carrier's burst expired; it fails
    // with its own reason.
    let (mut d, _) = Delivery::start(request(&[0, 1], 3, false), policy, 0);
    let actions = d.handle_admission(Admission::TooLarge, 0, &mut Unlimited);
    assert_eq!(events(&actions), [Event::Failed(FailReason::TooLarge)]);
}

#[test]
fn scheduled_messages_wait_for_not_before() {
    let mut r = request(&[0], 1, false);
    r.not_before = Some(5 * SECOND);
    let (mut d, actions) = Delivery::start(r, RetryPolicy::default(), 0);
    assert_eq!(wake(&actions), Some(5 * SECOND));
    assert!(
        !d.handle_timer(SECOND, &mut Unlimited)
            .iter()
            .any(|a| matches!(a, Action::Admit { .. }))
    );
    assert!(
        d.handle_timer(5 * SECOND, &mut Unlimited)
            .iter()
            .any(|a| matches!(a, Action::Admit { .. }))
    );
}

#[test]
fn undeliverable_reroutes_only_when_configured() {
    for reroute in [false, true] {
        let policy = RetryPolicy {
            reroute_on_undeliverable: reroute,
            ..RetryPolicy::default()
        };
        let (mut d, _) = Delivery::start(request(&[0, 1], 1, true), policy, 0);
        let attempt = submit(&mut d, 0);
        d.handle_submit_result(attempt, SubmitResult::Accepted, MS, &mut Unlimited);
        let actions = d.handle_receipt(
            attempt,
            0,
            ReceiptStatus::Undeliverable,
            2 * MS,
            &mut Unlimited,
        );
        let want = if reroute {
            Event::FailedOver {
                from: c(0),
                to: c(1),
            }
        } else {
            Event::Failed(FailReason::Undeliverable)
        };
        assert_eq!(events(&actions), [want], "reroute = {reroute}");
    }
}

#[test]
fn an_exhausted_retry_budget_defers_to_the_cap() {
    let mut budgets = [RetryBudget::new(0.0, 0.0)]; // one banked retry, nothing more
    let (mut d, _) = Delivery::start(request(&[0], 1, false), RetryPolicy::default(), 0);
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..2 {
        let actions = d.handle_admission(Admission::Admitted, now, &mut budgets[..]);
        let attempt = actions.iter().find_map(|a| {
            if let Action::Submit { attempt, .. } = a {
                Some(*attempt)
            } else {
                None
            }
        });
        let actions = d.handle_submit_result(
            attempt.unwrap(),
            SubmitResult::Rejected { status: 0x58 },
            now,
            &mut budgets[..],
        );
        let until = wake(&actions).unwrap();
        delays.push(until - now);
        now = until;
        d.handle_timer(now, &mut budgets[..]);
    }
    assert!(
        delays[0] <= 50 * MS,
        "first retry from the budget: {delays:?}"
    );
    assert_eq!(delays[1], 5 * SECOND, "then the cap");
}

/// What the simulated network does with one submit.
#[derive(Clone, Copy, Debug)]
enum Net {
    Accept,
    Reject(u32),
    Hang,
    Drop,
}

fn net() -> impl Strategy<Value = Net> {
    prop_oneof![
        3 => Just(Net::Accept),
        1 => Just(Net::Reject(0x58)),
        1 => Just(Net::Reject(0x08)),
        1 => Just(Net::Reject(0x45)),
        1 => Just(Net::Reject(0x0B)),
        1 => Just(Net::Reject(0x1234)),
        1 => Just(Net::Hang),
        1 => Just(Net::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random networks: the machine always ends, with exactly one terminal event; never submits
    /// more than max_attempts times or after validity; stops at once on a permanent error; never
    /// returns to a carrier that failed it over unless all have; backs off within the cap.
    #[test]
    fn every_message_ends_exactly_once(
        outcomes in proptest::collection::vec(net(), 1..40),
        carriers in 1u16..4,
        parts in 1u32..4,
        receipt: bool,
        seed: u64,
        max_attempts in 1u32..8,
        validity_s in 1u64..120,
    ) {
        let policy = RetryPolicy { max_attempts, validity: validity_s * SECOND, ..RetryPolicy::default() };
        let candidates: SmallVec<[u16; 4]> = (0..carriers).collect();
        let (mut d, first) = Delivery::start(request(&candidates, parts, receipt), policy, 0);
        let mut rng = SplitMix64::new(seed);
        let mut pending: Vec<Action> = first.to_vec();
        let (mut now, mut wake_at) = (0u64, None::<Nanos>);
        let (mut terminals, mut submits, mut steps) = (0, 0u32, 0);
        let mut failed_over: Vec<CarrierSlot> = Vec::new();
        let mut outcomes = outcomes.into_iter().cycle();
        while steps < 10_000 {
            steps += 1;
            let Some(action) = pending.pop() else {
                // Nothing to do but wait.
                match wake_at.take() {
                    Some(t) => { now = now.max(t); pending.extend(d.handle_timer(now, &mut Unlimited)); continue; }
                    None => break,
                }
            };
            match action {
                Action::Emit(e) => {
                    if e.is_terminal() { terminals += 1; }
                    if let Event::Retrying { after, .. } = e { prop_assert!(after - now <= policy.backoff_cap); }
                    if let Event::FailedOver { from, .. } = e { failed_over.push(from); }
                }
                Action::WakeAt(t) => wake_at = Some(t),
                Action::Admit { .. } => {
                    // As the engine's lane: sometimes it waits for the bucket first, and a
                    // message still waiting at its deadline is too late.
                    if rng.chance(0.2) { now += rng.below(SECOND); }
                    let answer = if now >= d.deadline() { Admission::TooLate } else { Admission::Admitted };
                    pending.extend(d.handle_admission(answer, now, &mut Unlimited));
                }
                Action::Submit { carrier, attempt } => {
                    submits += 1;
                    prop_assert!(now < d.deadline(), "submit after validity");
                    let all_failed = (0..carriers).all(|i| failed_over.contains(&c(i)));
                    prop_assert!(!failed_over.contains(&carrier) || all_failed, "back to {:?} too early", carrier);
                    let outcome = outcomes.next().unwrap();
                    now += rng.below(200 * MS);
                    let result = match outcome {
                        Net::Accept => Some(SubmitResult::Accepted),
                        Net::Reject(status) => Some(SubmitResult::Rejected { status }),
                        Net::Drop => Some(SubmitResult::ConnectionLost),
                        Net::Hang => None, // the submit timeout will fire
                    };
                    if let Some(result) = result {
                        let actions = d.handle_submit_result(attempt, result, now, &mut Unlimited);
                        if matches!(outcome, Net::Reject(s) if classify_status(s) == ErrorClass::Permanent) {
                            prop_assert_eq!(d.terminal(), Some(Event::Failed(FailReason::Permanent { status: 0x0B })));
                        }
                        pending.extend(actions);
                        if result == SubmitResult::Accepted && receipt && rng.chance(0.7) {
                            // Receipts for some parts, some of them twice.
                            for part in 0..parts + 1 {
                                let status = match rng.below(4) {
                                    0 => ReceiptStatus::Undeliverable,
                                    1 => ReceiptStatus::Expired,
                                    _ => ReceiptStatus::Delivered,
                                };
                                pending.extend(d.handle_receipt(attempt, part % parts, status, now, &mut Unlimited));
                            }
                        }
                    }
                }
            }
        }
        prop_assert_eq!(terminals, 1, "exactly one terminal event");
        prop_assert!(d.terminal().is_some());
        prop_assert!(submits <= max_attempts, "{} submits, max {}", submits, max_attempts);
        prop_assert_eq!(d.history().len() as u32, submits);
    }
}

#[test]
fn abort_ends_a_waiting_message_but_not_one_in_flight() {
    let request = DeliveryRequest {
        id: MessageId(1),
        parts: 1,
        candidates: smallvec::smallvec![CarrierSlot(0)],
        receipt: false,
        validity: None,
        not_before: None,
    };
    let (mut d, _) = Delivery::start(request.clone(), RetryPolicy::default(), 0);
    let actions = d.abort(FailReason::OptedOut);
    assert_eq!(
        actions[..],
        [Action::Emit(Event::Failed(FailReason::OptedOut))]
    );
    assert!(d.abort(FailReason::OptedOut).is_empty(), "once");
    let (mut d, _) = Delivery::start(request, RetryPolicy::default(), 0);
    d.handle_admission(Admission::Admitted, 0, &mut Unlimited);
    assert!(
        d.abort(FailReason::OptedOut).is_empty(),
        "in flight: the answer decides"
    );
}

#[test]
fn a_message_no_carrier_holds_can_be_cancelled_once() {
    // Queued for its first carrier.
    let (mut d, _) = Delivery::start(request(&[0, 1], 1, true), RetryPolicy::default(), 0);
    assert_eq!(d.phase(), Phase::Queued { carrier: c(0) });
    let actions = d.cancel().expect("queued: cancellable");
    assert_eq!(events(&actions), [Event::Failed(FailReason::Cancelled)]);
    assert_eq!(d.phase(), Phase::Done);
    assert!(d.cancel().is_none(), "finished: nothing more");

    // Scheduled for later.
    let mut later = request(&[0], 1, true);
    later.not_before = Some(60 * SECOND);
    let (mut d, _) = Delivery::start(later, RetryPolicy::default(), 0);
    assert_eq!(d.phase(), Phase::Scheduled);
    assert!(d.cancel().is_some());

    // In flight, then accepted and awaiting its receipt: too late.
    let (mut d, _) = Delivery::start(request(&[0], 1, true), RetryPolicy::default(), 0);
    let attempt = submit(&mut d, 0);
    assert_eq!(d.phase(), Phase::InFlight { carrier: c(0) });
    assert!(d.cancel().is_none());
    d.handle_submit_result(attempt, SubmitResult::Accepted, MS, &mut Unlimited);
    assert_eq!(d.phase(), Phase::AwaitingReceipt { carrier: c(0) });
    assert!(d.cancel().is_none());
    assert_eq!(d.terminal(), None);

    // Waiting to retry after a throttled attempt: no carrier holds it.
    let (mut d, _) = Delivery::start(request(&[0], 1, true), RetryPolicy::default(), 0);
    let attempt = submit(&mut d, 0);
    d.handle_submit_result(
        attempt,
        SubmitResult::Rejected { status: 0x58 },
        MS,
        &mut Unlimited,
    );
    assert!(matches!(d.phase(), Phase::RetryWait { carrier, .. } if carrier == c(0)));
    assert!(d.cancel().is_some());
    assert_eq!(d.terminal(), Some(Event::Failed(FailReason::Cancelled)));
}

#[test]
fn only_a_queued_message_moves_and_only_to_a_candidate() {
    let (mut d, _) = Delivery::start(request(&[0, 1, 2], 1, false), RetryPolicy::default(), 0);
    assert_eq!(d.phase(), Phase::Queued { carrier: c(0) });
    assert!(!d.move_queued(c(5), None), "not a candidate");
    assert!(d.move_queued(c(2), None));
    assert_eq!(d.phase(), Phase::Queued { carrier: c(2) });
    // A reroute replaces the candidates, so a failover walks the new order.
    let rerouted: SmallVec<[CarrierSlot; 8]> = [c(3), c(2)].into_iter().collect();
    assert!(d.move_queued(c(3), Some(rerouted)));
    assert_eq!(d.candidates(), [c(3), c(2)]);
    let attempt = submit(&mut d, MS);
    assert!(!d.move_queued(c(2), None), "in flight: too late to move");
    let actions = d.handle_submit_result(attempt, SubmitResult::NotSent, 2 * MS, &mut Unlimited);
    assert_eq!(
        events(&actions),
        [Event::FailedOver {
            from: c(3),
            to: c(2)
        }]
    );
}
