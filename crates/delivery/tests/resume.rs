//! Messages recovered after a restart take up where they stood.

use smsroute_delivery::*;
use smsroute_types::{CarrierSlot, MessageId};

const SECOND: Nanos = 1_000_000_000;

fn request(candidates: &[u16], receipt: bool) -> DeliveryRequest {
    DeliveryRequest {
        id: MessageId(9),
        parts: 1,
        candidates: candidates.iter().map(|&i| CarrierSlot(i)).collect(),
        receipt,
        validity: None,
        not_before: None,
    }
}

fn emitted(actions: &Actions) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(*e),
            _ => None,
        })
        .collect()
}

#[test]
fn a_queued_message_starts_again_without_a_second_accepted() {
    let (d, actions) = Delivery::resume(
        request(&[0, 1], true),
        RetryPolicy::default(),
        10 * SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: 0,
            possible_duplicate: false,
            at: Resume::Queued,
        },
        &mut Unlimited,
    );
    assert!(emitted(&actions).is_empty(), "{actions:?}");
    assert_eq!(
        actions[..],
        [Action::Admit {
            carrier: CarrierSlot(0),
            segments: 1
        }]
    );
    assert_eq!(d.deadline(), 60 * SECOND, "the deadline is kept, not reset");
}

#[test]
fn a_queued_message_past_its_deadline_expires() {
    let (d, actions) = Delivery::resume(
        request(&[0], true),
        RetryPolicy::default(),
        61 * SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: 1,
            possible_duplicate: false,
            at: Resume::Queued,
        },
        &mut Unlimited,
    );
    assert_eq!(emitted(&actions), [Event::Expired]);
    assert_eq!(d.attempts(), 1);
}

#[test]
fn a_submit_lost_in_flight_is_a_possible_duplicate_and_fails_over() {
    let (mut d, actions) = Delivery::resume(
        request(&[0, 1], true),
        RetryPolicy::default(),
        SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: 1,
            possible_duplicate: false,
            at: Resume::Lost {
                carrier: CarrierSlot(0),
                attempt: 1,
            },
        },
        &mut Unlimited,
    );
    assert!(d.possible_duplicate());
    assert_eq!(
        emitted(&actions),
        [Event::FailedOver {
            from: CarrierSlot(0),
            to: CarrierSlot(1)
        }]
    );
    assert_eq!(d.history()[0].outcome, AttemptOutcome::Unknown);
    // The next attempt is the second.
    let wake = actions
        .iter()
        .find_map(|a| match a {
            Action::WakeAt(t) => Some(*t),
            _ => None,
        })
        .unwrap();
    let actions = d.handle_timer(wake, &mut Unlimited);
    assert!(matches!(
        actions[0],
        Action::Admit {
            carrier: CarrierSlot(1),
            ..
        }
    ));
    let actions = d.handle_admission(Admission::Admitted, wake, &mut Unlimited);
    assert!(actions.contains(&Action::Submit {
        carrier: CarrierSlot(1),
        attempt: 2
    }));
}

#[test]
fn a_lost_submit_at_the_last_attempt_fails() {
    let policy = RetryPolicy::default();
    let (d, actions) = Delivery::resume(
        request(&[0, 1], true),
        policy,
        SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: policy.max_attempts,
            possible_duplicate: false,
            at: Resume::Lost {
                carrier: CarrierSlot(1),
                attempt: policy.max_attempts,
            },
        },
        &mut Unlimited,
    );
    assert_eq!(
        emitted(&actions),
        [Event::Failed(FailReason::AttemptsExhausted)]
    );
    assert!(d.possible_duplicate());
}

#[test]
fn a_message_awaiting_its_receipt_is_matched_by_it() {
    let (mut d, actions) = Delivery::resume(
        request(&[0, 1], true),
        RetryPolicy::default(),
        SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: 2,
            possible_duplicate: false,
            at: Resume::AwaitingReceipt {
                carrier: CarrierSlot(1),
                attempt: 2,
                until: 600 * SECOND,
                sent_at: None,
            },
        },
        &mut Unlimited,
    );
    assert_eq!(actions[..], [Action::WakeAt(600 * SECOND)]);
    let actions = d.handle_receipt(2, 0, ReceiptStatus::Delivered, 2 * SECOND, &mut Unlimited);
    assert_eq!(emitted(&actions), [Event::Delivered]);
    assert!(!d.possible_duplicate());
}

#[test]
fn a_receipt_wait_that_ran_out_during_the_restart_ends_sent() {
    let (_, actions) = Delivery::resume(
        request(&[0], true),
        RetryPolicy::default(),
        700 * SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: 1,
            possible_duplicate: false,
            at: Resume::AwaitingReceipt {
                carrier: CarrierSlot(0),
                attempt: 1,
                until: 600 * SECOND,
                sent_at: None,
            },
        },
        &mut Unlimited,
    );
    assert_eq!(emitted(&actions), [Event::Sent]);
}

#[test]
fn a_possible_duplicate_flagged_before_the_restart_stays_flagged() {
    let (d, _) = Delivery::resume(
        request(&[0], true),
        RetryPolicy::default(),
        10 * SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: 1,
            possible_duplicate: true,
            at: Resume::Queued,
        },
        &mut Unlimited,
    );
    assert!(d.possible_duplicate());
}

#[test]
fn a_submit_that_waited_for_the_journal_times_out_from_when_it_left() {
    let policy = RetryPolicy::default();
    let (mut d, _) = Delivery::start(request(&[0], true), policy, 0);
    d.handle_admission(Admission::Admitted, 0, &mut Unlimited);
    // The journal took 3 s to sync: the submit leaves at 3 s.
    let leaves = 3 * SECOND;
    assert_eq!(
        d.submit_sent(1, leaves),
        Some(leaves + policy.submit_timeout)
    );
    let at_first_timeout = d.handle_timer(policy.submit_timeout, &mut Unlimited);
    assert_eq!(
        at_first_timeout[..],
        [Action::WakeAt(leaves + policy.submit_timeout)],
        "not timed out yet"
    );
    assert_eq!(d.submit_sent(2, leaves), None, "no attempt 2 in flight");
}

/// Regression (issue 18 review): a lost attempt's carrier the current table no longer lists
/// failed over to the second candidate, skipping the best.
#[test]
fn a_lost_attempt_on_a_carrier_no_longer_listed_fails_over_to_the_best() {
    let (_, actions) = Delivery::resume(
        request(&[0, 1], true),
        RetryPolicy::default(),
        10 * SECOND,
        Recovery {
            deadline: 60 * SECOND,
            attempts: 1,
            possible_duplicate: false,
            at: Resume::Lost {
                carrier: CarrierSlot(7),
                attempt: 1,
            },
        },
        &mut Unlimited,
    );
    assert_eq!(
        emitted(&actions),
        [Event::FailedOver {
            from: CarrierSlot(7),
            to: CarrierSlot(0)
        }]
    );
}
