//! Resuming a message recovered from a journal after a restart, in the state it was in.

use super::*;

/// Where a message recovered after a restart stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Not handed to a carrier, or waiting to be tried again: starts at its first candidate,
    /// not before the request's `not_before`.
    Queued,
    /// Attempt `attempt` to `carrier` was in flight: it may have reached the carrier, so it
    /// ends as a timeout does (a possible duplicate) and the message retries or fails over.
    Lost {
        /// Where it went.
        carrier: CarrierSlot,
        /// Its number.
        attempt: u32,
    },
    /// The carrier accepted attempt `attempt`: receipts are awaited until `until`.
    AwaitingReceipt {
        /// The carrier.
        carrier: CarrierSlot,
        /// The accepted attempt.
        attempt: u32,
        /// When waiting ends as `Sent`.
        until: Nanos,
        /// When it was submitted, if known (else: now), for its history.
        sent_at: Option<Nanos>,
    },
}

/// What a message brings from before a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// When it expires (absolute: validity is not reset).
    pub deadline: Nanos,
    /// Submits made before.
    pub attempts: u32,
    /// One of them may have reached its carrier twice.
    pub possible_duplicate: bool,
    /// Where it stood.
    pub at: Resume,
}

impl Delivery {
    /// The submit of `attempt` leaves only now (it waited for the journal to record it): its
    /// timeout counts from `now`. Returns the new timeout (none when that attempt is not in
    /// flight). A wake-up armed for the old one needs no replacing: [`Delivery::handle_timer`]
    /// before the new timeout arms it.
    pub fn submit_sent(&mut self, attempt: u32, now: Nanos) -> Option<Nanos> {
        match &mut self.state {
            State::InFlight {
                attempt: current,
                timeout_at,
                ..
            } if *current == attempt => {
                *timeout_at = now.saturating_add(self.policy.submit_timeout);
                Some(*timeout_at)
            }
            _ => None,
        }
    }

    /// The attempt a recovered message stood at, as its history's one record (the earlier
    /// ones are not kept across a restart).
    fn restore_attempt(
        &mut self,
        carrier: CarrierSlot,
        attempt: u32,
        outcome: AttemptOutcome,
        at: Nanos,
    ) {
        self.attempts = self.attempts.max(attempt);
        self.history.push(AttemptRecord {
            attempt,
            carrier,
            at,
            outcome,
        });
    }

    /// Takes up a message recovered after a restart, from where it stood. Emits no `Accepted`
    /// (that was said before the restart), only what follows.
    ///
    /// # Panics
    /// If the request has 0 or more than 256 parts.
    pub fn resume(
        request: DeliveryRequest,
        policy: RetryPolicy,
        now: Nanos,
        recovery: Recovery,
        budgets: &mut (impl RetryBudgets + ?Sized),
    ) -> (Delivery, Actions) {
        let Recovery {
            deadline,
            attempts,
            possible_duplicate,
            at,
        } = recovery;
        assert!((1..=256).contains(&request.parts), "1 to 256 parts");
        let not_before = request.not_before;
        let mut d = Delivery::new(request, policy, deadline);
        d.attempts = attempts;
        d.possible_duplicate = possible_duplicate;
        let mut actions = Actions::new();
        match at {
            Resume::Queued if now >= deadline => d.finish(Event::Expired, &mut actions),
            Resume::Queued => d.first_step(not_before, now, &mut actions),
            Resume::Lost { carrier, attempt } => {
                d.restore_attempt(carrier, attempt, AttemptOutcome::Pending, now);
                d.state = State::InFlight {
                    carrier,
                    attempt,
                    timeout_at: now,
                };
                if d.candidates.is_empty() {
                    // No route any more: the lost attempt's carrier stays the only candidate, so the
                    // timeout is counted against it and a retry goes back to it.
                    d.candidates.push(carrier);
                }
                actions = d.handle_submit_result(attempt, SubmitResult::TimedOut, now, budgets);
            }
            Resume::AwaitingReceipt {
                carrier,
                attempt,
                until,
                sent_at,
            } => {
                let at = sent_at.unwrap_or(now);
                d.restore_attempt(carrier, attempt, AttemptOutcome::Accepted, at);
                if now >= until {
                    d.finish(Event::Sent, &mut actions);
                } else {
                    d.state = State::AwaitingReceipt {
                        carrier,
                        attempt,
                        until,
                    };
                    actions.push(Action::WakeAt(until));
                }
            }
        }
        (d, actions)
    }
}
