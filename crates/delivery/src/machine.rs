//! The per-message state machine: inputs with `now`, actions out, exactly one terminal event.
//! Its inputs and outputs are in `types`; taking a message up again after a restart in
//! `resume`.

use smallvec::{SmallVec, smallvec};
use smsroute_types::CarrierSlot;
use smsroute_types::{Label, MessageId, SplitMix64};

use crate::{ErrorClass, Nanos, ReceiptStatus, RetryBudget, RetryPolicy, classify_status};

mod resume;
mod types;
pub use resume::{Recovery, Resume};
pub use types::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Scheduled {
        at: Nanos,
    },
    Admitting {
        carrier: CarrierSlot,
    },
    InFlight {
        carrier: CarrierSlot,
        attempt: u32,
        timeout_at: Nanos,
    },
    Backoff {
        carrier: CarrierSlot,
        until: Nanos,
    },
    AwaitingReceipt {
        carrier: CarrierSlot,
        attempt: u32,
        until: Nanos,
    },
    Done,
}

/// What a new delivery needs to know about its message.
#[derive(Clone, Debug)]
pub struct DeliveryRequest {
    /// The message.
    pub id: MessageId,
    /// Parts (segments): every attempt sends all of them to one carrier.
    pub parts: u32,
    /// Carriers in rank order (the routing decision).
    pub candidates: SmallVec<[CarrierSlot; 8]>,
    /// Ask for delivery receipts.
    pub receipt: bool,
    /// The message's own validity, overriding the policy's.
    pub validity: Option<Nanos>,
    /// Hold until then.
    pub not_before: Option<Nanos>,
}

/// One message on its way to exactly one terminal status.
#[derive(Clone, Debug)]
pub struct Delivery {
    id: MessageId,
    parts: u32,
    candidates: SmallVec<[CarrierSlot; 8]>,
    policy: RetryPolicy,
    receipt: bool,
    deadline: Nanos,
    state: State,
    attempts: u32,
    history: SmallVec<[AttemptRecord; 2]>,
    possible_duplicate: bool,
    /// Parts whose receipt said delivered, as a bitset (parts ≤ 256).
    delivered: [u64; 4],
    terminal: Option<Event>,
    rng: SplitMix64,
}

impl Delivery {
    /// Accepts a message at `now`: emits `Accepted` and the first step.
    ///
    /// # Panics
    /// If `parts` is 0 or more than 256.
    pub fn start(request: DeliveryRequest, policy: RetryPolicy, now: Nanos) -> (Delivery, Actions) {
        assert!((1..=256).contains(&request.parts), "1 to 256 parts");
        let not_before = request.not_before;
        let deadline = now.saturating_add(request.validity.unwrap_or(policy.validity));
        let mut d = Delivery::new(request, policy, deadline);
        let mut actions: Actions = smallvec![Action::Emit(Event::Accepted)];
        d.first_step(not_before, now, &mut actions);
        (d, actions)
    }

    /// The first step of a message not yet sent anywhere: no route, held until its
    /// not-before, or admitted to its first candidate.
    fn first_step(&mut self, not_before: Option<Nanos>, now: Nanos, actions: &mut Actions) {
        match (self.candidates.first().copied(), not_before) {
            (None, _) => self.finish(Event::Failed(FailReason::NoRoute), actions),
            (Some(_), Some(at)) if at > now => {
                self.state = State::Scheduled { at };
                self.wake(at, actions);
            }
            (Some(first), _) => self.admit(first, actions),
        }
    }

    /// A delivery of `request` expiring at `deadline`, before its first step.
    fn new(request: DeliveryRequest, policy: RetryPolicy, deadline: Nanos) -> Delivery {
        Delivery {
            id: request.id,
            parts: request.parts,
            candidates: request.candidates,
            policy,
            receipt: request.receipt,
            deadline,
            state: State::Done,
            attempts: 0,
            history: SmallVec::new(),
            possible_duplicate: false,
            delivered: [0; 4],
            terminal: None,
            rng: SplitMix64::new(request.id.0 ^ 0x5EED_DE11_7E7E),
        }
    }

    /// The message.
    pub fn id(&self) -> MessageId {
        self.id
    }
    /// Submits made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
    /// Every attempt so far.
    pub fn history(&self) -> &[AttemptRecord] {
        &self.history
    }
    /// A submit timed out or was lost in flight: the carrier may have sent a copy.
    pub fn possible_duplicate(&self) -> bool {
        self.possible_duplicate
    }
    /// The terminal event, once there is one.
    pub fn terminal(&self) -> Option<Event> {
        self.terminal
    }
    /// The attempt in flight (its carrier and number), if a submit awaits its answer.
    pub fn in_flight(&self) -> Option<(CarrierSlot, u32)> {
        match self.state {
            State::InFlight {
                carrier, attempt, ..
            } => Some((carrier, attempt)),
            _ => None,
        }
    }
    /// When the message expires unless accepted by a carrier before.
    pub fn deadline(&self) -> Nanos {
        self.deadline
    }
    /// The attempt whose receipts it waits for (its carrier and number) and until when, if
    /// that is all it does.
    pub fn awaiting_receipt(&self) -> Option<(CarrierSlot, u32, Nanos)> {
        match self.state {
            State::AwaitingReceipt {
                carrier,
                attempt,
                until,
            } => Some((carrier, attempt, until)),
            _ => None,
        }
    }
    /// Parts whose receipt said delivered, as a bitset (part `n` is bit `n % 64` of word
    /// `n / 64`).
    pub fn delivered_parts(&self) -> [u64; 4] {
        self.delivered
    }

    /// Carriers in rank order, as routed (or rerouted by [`Delivery::move_queued`]).
    pub fn candidates(&self) -> &[CarrierSlot] {
        &self.candidates
    }

    /// Moves a message still queued for a carrier (not yet submitted there) to `to`, one of
    /// its candidates or of `rerouted` (the current route table's, which then replaces
    /// them): the engine does so when `to` has room and the queued carrier does not. Returns
    /// false, changing nothing, when the message is not queued or `to` is no candidate.
    pub fn move_queued(
        &mut self,
        to: CarrierSlot,
        rerouted: Option<SmallVec<[CarrierSlot; 8]>>,
    ) -> bool {
        let State::Admitting { .. } = self.state else {
            return false;
        };
        let list = rerouted.as_deref().unwrap_or(&self.candidates);
        if !list.contains(&to) {
            return false;
        }
        if let Some(candidates) = rerouted {
            self.candidates = candidates;
        }
        self.state = State::Admitting { carrier: to };
        true
    }

    /// The lane's answer to [`Action::Admit`].
    pub fn handle_admission(
        &mut self,
        admission: Admission,
        now: Nanos,
        budgets: &mut (impl RetryBudgets + ?Sized),
    ) -> Actions {
        let mut actions = Actions::new();
        let State::Admitting { carrier } = self.state else {
            return actions;
        };
        match admission {
            Admission::TooLate => self.finish(Event::Expired, &mut actions),
            Admission::TooLarge => self.finish(Event::Failed(FailReason::TooLarge), &mut actions),
            Admission::Admitted => {
                self.attempts += 1;
                if self.attempts == 1 {
                    budgets.deposit(carrier, now);
                }
                let attempt = self.attempts;
                let timeout_at = now.saturating_add(self.policy.submit_timeout);
                self.state = State::InFlight {
                    carrier,
                    attempt,
                    timeout_at,
                };
                self.history.push(AttemptRecord {
                    attempt,
                    carrier,
                    at: now,
                    outcome: AttemptOutcome::Pending,
                });
                actions.push(Action::Emit(Event::Submitted { carrier, attempt }));
                actions.push(Action::Submit { carrier, attempt });
                actions.push(Action::WakeAt(timeout_at));
            }
        }
        actions
    }

    /// Where the message stands, as a gateway reports it.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Scheduled { .. } => Phase::Scheduled,
            State::Admitting { carrier } => Phase::Queued { carrier },
            State::InFlight { carrier, .. } => Phase::InFlight { carrier },
            State::Backoff { carrier, until } => Phase::RetryWait { carrier, until },
            State::AwaitingReceipt { carrier, .. } => Phase::AwaitingReceipt { carrier },
            State::Done => Phase::Done,
        }
    }

    /// Cancels the message, if no carrier holds it: scheduled, queued, or waiting to retry
    /// after a failed attempt. It ends `Failed(Cancelled)`; otherwise `None` and nothing
    /// changes (in flight or accepted by a carrier: too late; finished already).
    pub fn cancel(&mut self) -> Option<Actions> {
        match self.state {
            State::Scheduled { .. } | State::Admitting { .. } | State::Backoff { .. } => {
                let mut actions = Actions::new();
                self.finish(Event::Failed(FailReason::Cancelled), &mut actions);
                Some(actions)
            }
            _ => None,
        }
    }

    /// Ends the message now with `Failed(reason)`, unless it is already finished or a submit
    /// is in flight (its answer decides); for a policy that forbids sending it any further.
    pub fn abort(&mut self, reason: FailReason) -> Actions {
        let mut actions = Actions::new();
        if self.terminal.is_none() && !matches!(self.state, State::InFlight { .. }) {
            self.finish(Event::Failed(reason), &mut actions);
        }
        actions
    }

    /// The outcome of attempt `attempt`. Results for any other attempt are stale and ignored.
    pub fn handle_submit_result(
        &mut self,
        attempt: u32,
        result: SubmitResult,
        now: Nanos,
        budgets: &mut (impl RetryBudgets + ?Sized),
    ) -> Actions {
        let mut actions = Actions::new();
        let State::InFlight {
            carrier,
            attempt: current,
            ..
        } = self.state
        else {
            return actions;
        };
        if attempt != current {
            return actions;
        }
        let (outcome, class, status) = match result {
            SubmitResult::Accepted => (AttemptOutcome::Accepted, None, 0),
            SubmitResult::Rejected { status } => {
                let class = classify_status(status);
                (
                    AttemptOutcome::Refused { class, status },
                    Some(class),
                    status,
                )
            }
            SubmitResult::TimedOut | SubmitResult::ConnectionLost => {
                self.possible_duplicate = true;
                (AttemptOutcome::Unknown, Some(ErrorClass::Unknown), 0)
            }
            SubmitResult::NotSent => (AttemptOutcome::NotSent, Some(ErrorClass::Failover), 0),
        };
        if let Some(record) = self.history.last_mut() {
            record.outcome = outcome;
        }
        match class {
            None if self.receipt => {
                let until = now.saturating_add(self.policy.receipt_timeout);
                self.state = State::AwaitingReceipt {
                    carrier,
                    attempt,
                    until,
                };
                self.wake(until, &mut actions);
            }
            None => self.finish(Event::Sent, &mut actions),
            Some(class) => self.after_failure(carrier, class, status, now, budgets, &mut actions),
        }
        actions
    }

    /// A delivery receipt for `part` (0-based) of attempt `attempt`. Receipts for another
    /// attempt, a finished message or a part already delivered are ignored (no actions): the
    /// engine counts them.
    pub fn handle_receipt(
        &mut self,
        attempt: u32,
        part: u32,
        status: ReceiptStatus,
        now: Nanos,
        budgets: &mut (impl RetryBudgets + ?Sized),
    ) -> Actions {
        let mut actions = Actions::new();
        let State::AwaitingReceipt {
            carrier,
            attempt: current,
            ..
        } = self.state
        else {
            return actions;
        };
        if attempt != current || part >= self.parts {
            return actions;
        }
        let (word, bit) = ((part / 64) as usize, 1u64 << (part % 64));
        match status {
            ReceiptStatus::Intermediate => {}
            ReceiptStatus::Delivered if self.delivered[word] & bit != 0 => {}
            ReceiptStatus::Delivered => {
                self.delivered[word] |= bit;
                let done: u32 = self.delivered.iter().map(|w| w.count_ones()).sum();
                if done == self.parts {
                    self.finish(Event::Delivered, &mut actions);
                }
            }
            ReceiptStatus::Expired => self.finish(Event::Expired, &mut actions),
            ReceiptStatus::Undeliverable | ReceiptStatus::Rejected => {
                let reason = if status == ReceiptStatus::Rejected {
                    FailReason::Rejected
                } else {
                    FailReason::Undeliverable
                };
                let can_reroute = self.policy.reroute_on_undeliverable
                    && self.candidates.len() > 1
                    && self.attempts < self.policy.max_attempts
                    && now < self.deadline;
                if can_reroute {
                    self.after_failure(
                        carrier,
                        ErrorClass::Failover,
                        0,
                        now,
                        budgets,
                        &mut actions,
                    );
                } else {
                    self.finish(Event::Failed(reason), &mut actions);
                }
            }
        }
        actions
    }

    /// Time reached a wake-up: start a scheduled message, retry after backoff or tokens, time
    /// out a submit, give up waiting for a receipt, or expire.
    pub fn handle_timer(
        &mut self,
        now: Nanos,
        budgets: &mut (impl RetryBudgets + ?Sized),
    ) -> Actions {
        let mut actions = Actions::new();
        match self.state {
            State::Done | State::Admitting { .. } => {}
            State::InFlight {
                attempt,
                timeout_at,
                ..
            } if now >= timeout_at => {
                return self.handle_submit_result(attempt, SubmitResult::TimedOut, now, budgets);
            }
            State::AwaitingReceipt { until, .. } if now >= until => {
                self.finish(Event::Sent, &mut actions)
            }
            State::InFlight {
                timeout_at: until, ..
            }
            | State::AwaitingReceipt { until, .. } => {
                actions.push(Action::WakeAt(until));
            }
            State::Scheduled { .. } | State::Backoff { .. } if now >= self.deadline => {
                self.finish(Event::Expired, &mut actions);
            }
            State::Scheduled { at: until } | State::Backoff { until, .. } if now < until => {
                self.wake(until, &mut actions);
            }
            State::Scheduled { .. } => {
                let first = self.candidates[0];
                self.admit(first, &mut actions);
            }
            State::Backoff { carrier, .. } => self.admit(carrier, &mut actions),
        }
        actions
    }

    /// Decides the next step after attempt on `carrier` failed with `class`.
    fn after_failure(
        &mut self,
        carrier: CarrierSlot,
        class: ErrorClass,
        status: u32,
        now: Nanos,
        budgets: &mut (impl RetryBudgets + ?Sized),
        actions: &mut Actions,
    ) {
        if class == ErrorClass::Permanent {
            return self.finish(Event::Failed(FailReason::Permanent { status }), actions);
        }
        if self.attempts >= self.policy.max_attempts {
            return self.finish(Event::Failed(FailReason::AttemptsExhausted), actions);
        }
        if now >= self.deadline {
            return self.finish(Event::Expired, actions);
        }
        let next = match class {
            ErrorClass::Throttled | ErrorClass::Temporary => carrier,
            _ => self.next_candidate(carrier),
        };
        // The retry is charged to the carrier that failed; without budget it waits the cap.
        let delay = if budgets.try_withdraw(carrier, now) {
            self.policy.backoff(self.attempts, &mut self.rng)
        } else {
            self.policy.backoff_cap
        };
        let until = now.saturating_add(delay);
        self.state = State::Backoff {
            carrier: next,
            until,
        };
        actions.push(Action::Emit(if next == carrier {
            Event::Retrying {
                carrier,
                after: until,
            }
        } else {
            Event::FailedOver {
                from: carrier,
                to: next,
            }
        }));
        self.wake(until, actions);
    }

    /// The next carrier in rank order after `current`, wrapping round; the best one when
    /// `current` is not a candidate (any more: a restart or a move rerouted the message).
    /// Attempts start at the best candidate and only a failover moves on, one step at a time,
    /// so every carrier after the current one has not yet failed this message over, and once
    /// the walk wraps, all have.
    fn next_candidate(&self, current: CarrierSlot) -> CarrierSlot {
        match self.candidates.iter().position(|&c| c == current) {
            Some(at) => self.candidates[(at + 1) % self.candidates.len()],
            None => self.candidates[0],
        }
    }

    fn admit(&mut self, carrier: CarrierSlot, actions: &mut Actions) {
        self.state = State::Admitting { carrier };
        actions.push(Action::Admit {
            carrier,
            segments: self.parts,
        });
    }

    /// Wakes at `until`, or at the deadline if that comes first.
    fn wake(&self, until: Nanos, actions: &mut Actions) {
        actions.push(Action::WakeAt(until.min(self.deadline)));
    }

    fn finish(&mut self, event: Event, actions: &mut Actions) {
        debug_assert!(event.is_terminal() && self.terminal.is_none());
        self.state = State::Done;
        self.terminal = Some(event);
        actions.push(Action::Emit(event));
    }
}
