//! Submitting: the route, the policy stage's checks, the reservations a message holds, and
//! the hand-over to the dispatcher; nothing here waits or locks.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use smallvec::SmallVec;
use smsroute_carrier::Carrier;
use smsroute_health::HealthBoard;
use smsroute_routing::HealthState;
use smsroute_types::CarrierSlot;
use smsroute_types::{InvalidMessage, Message, MessageId, Money, SplitMix64};

use super::{Refused, Rejection, Router};
use crate::registry::SlotEntry;
use crate::shared::{Job, Shared};

impl<C: Carrier> Router<C> {
    /// Routes a message and queues it for its carriers; never waits. The id is the message's
    /// own when it has one (non-zero), else the router assigns the next one. A refused
    /// message comes back in the [`Refused`].
    #[allow(clippy::result_large_err)] // the message comes back by value, as tokio's TrySendError
    pub fn try_submit(&self, message: Message) -> Result<MessageId, Refused> {
        self.offer(message)
            .inspect_err(|refused| self.count_refusal(&refused.reason))
    }

    /// [`Router::try_submit`], waiting while the router is full (`Overloaded`) until room
    /// frees: a terminal event taken by the gateway, or the dispatcher catching up. Any other
    /// refusal comes back at once. Room only frees while someone takes the events. Waiting
    /// is not a refusal: only the refusal it returns is counted.
    #[allow(clippy::result_large_err)] // as try_submit
    pub async fn submit(&self, message: Message) -> Result<MessageId, Refused> {
        let counters = &*self.shared.counters;
        let mut message = message;
        loop {
            message = match self.unless_full(self.offer(message)) {
                ControlFlow::Continue(message) => message,
                ControlFlow::Break(answer) => return answer,
            };
            // Full: register for room, then look once more, so room freed in between is
            // not missed; only then wait.
            let room = counters.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            let _waiting = Waiting::new(&counters.room_waiters);
            message = match self.unless_full(self.offer(message)) {
                ControlFlow::Continue(message) => message,
                ControlFlow::Break(answer) => return answer,
            };
            room.await;
        }
    }

    /// While the router is full, the message comes back to wait with; any other answer is the
    /// submit's (a refusal counted).
    #[allow(clippy::result_large_err)] // as try_submit
    fn unless_full(
        &self,
        answer: Result<MessageId, Refused>,
    ) -> ControlFlow<Result<MessageId, Refused>, Message> {
        match answer {
            Err(Refused {
                reason: Rejection::Overloaded,
                message,
            }) => ControlFlow::Continue(message),
            answer => ControlFlow::Break(answer.inspect_err(|r| self.count_refusal(&r.reason))),
        }
    }

    /// Refuses at once, counted as `try_submit`'s `overloaded` refusal is, when the router has
    /// no room for one more message (`max_outstanding` messages unfinished): for a front that
    /// can then skip building a message it would have to refuse anyway. `false` when there is
    /// room now (a `try_submit` may still be refused).
    pub fn refuse_if_full(&self) -> bool {
        let shared = &*self.shared;
        let full =
            shared.counters.outstanding.load(Ordering::Acquire) >= shared.options.max_outstanding;
        if full {
            self.count_refusal(&Rejection::Overloaded);
        }
        full
    }

    /// A refusal returned to the gateway: its metric, and the overload log's counter.
    fn count_refusal(&self, reason: &Rejection) {
        self.shared.rejected.get(reason).increment(1);
        if *reason == Rejection::Overloaded {
            self.shared
                .counters
                .overloaded
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One try: routed and queued, or refused with the message back (counted by the caller).
    #[allow(clippy::result_large_err)] // as try_submit
    fn offer(&self, message: Message) -> Result<MessageId, Refused> {
        let shared = &*self.shared;
        let mut message = message;
        let given = (message.id(), message.not_before());
        let answer = match self.route(&mut message) {
            Ok(routed) => {
                message.set_id(routed.id);
                let job = Job {
                    message: Arc::new(message),
                    candidates: routed.candidates,
                    checked: routed.checked,
                    charge: routed.charge,
                    priority: routed.priority,
                };
                match shared.submitted.push(job) {
                    Ok(()) => {
                        routed.reserved.commit();
                        // Pairs with the dispatcher's store of `parked` before its last look
                        // at the queue: either it sees this message or this sees it parked.
                        std::sync::atomic::fence(Ordering::SeqCst);
                        if shared.parked.load(Ordering::SeqCst) {
                            shared.wake.notify_one();
                        }
                        return Ok(routed.id);
                    }
                    Err(job) => {
                        // Nobody else ever saw this Arc: the message comes back whole.
                        message = Arc::try_unwrap(job.message).unwrap_or_else(|m| (*m).clone());
                        Rejection::Overloaded
                    }
                }
            }
            Err(reason) => reason,
        };
        message.set_id(given.0);
        message.set_not_before(given.1);
        Err(Refused {
            reason: answer,
            message,
        })
    }

    /// Everything up to the hand-over: checks, route, reservations. Quiet hours may set the
    /// message's `not_before`.
    fn route(&self, message: &mut Message) -> Result<Routed<'_, C>, Rejection> {
        let shared = &*self.shared;
        if shared.stopped.load(Ordering::Relaxed) {
            return Err(Rejection::ShuttingDown);
        }
        let snapshot = shared.snapshot.load();
        let class = snapshot.rules.class_of(message);
        // Smart encoding first: it may bring a long UCS-2 text under the segment limit.
        let smart = class.is_some_and(|c| snapshot.rules.smart_encoding(c))
            || message.tag("smart_encoding") == Some("true");
        if smart && message.segmentation().encoding == smsroute_types::Encoding::Ucs2 {
            let saved = message.smart_encode();
            if saved > 0 {
                shared.metrics.segments_saved.increment(u64::from(saved));
            }
        }
        let segments = message.segments();
        if segments > snapshot.max_segments {
            return Err(InvalidMessage::TooManySegments {
                segments,
                max: snapshot.max_segments,
            }
            .into());
        }
        // Read the generation first: a change after it makes the dispatcher look again.
        let checked = shared.suppression.generation();
        if shared
            .suppression
            .is_suppressed(message.to(), message.from().as_str())
        {
            return Err(Rejection::OptedOut);
        }
        // Class rules: quiet hours may hold the message or refuse it.
        let wall = class.map(|_| {
            let ms = shared.wall_ms.load(Ordering::Relaxed);
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
        });
        if let Some(class) = class {
            // The cap's line is taken after routing; start fetching it now.
            snapshot
                .rules
                .prefetch_cap(&shared.caps, class, message.to());
        }
        if let (Some(class), Some(now)) = (class, wall)
            && let Some(until) = snapshot.rules.quiet_hours(class, message.to(), now)?
        {
            let later = message.not_before().is_some_and(|t| t > until);
            if !later {
                message.set_not_before(Some(until));
            }
        }
        let mut quality = None;
        let health = shared.health_view(&snapshot, message.to(), &mut quality);
        // From here on every reservation is held by the guard, released on any refusal.
        let mut reserved = Reservation::new(shared);
        let id = reserved.id(message.id())?;
        let pick = SplitMix64::new(id.0 ^ shared.options.seed).next_u64();
        let table = snapshot.table(shared.wall_ms.load(Ordering::Relaxed));
        let route = table.route(message.to(), &health, pick);
        if route.is_empty() {
            return Err(if route.blocked {
                Rejection::Blocked
            } else {
                Rejection::NoRoute
            });
        }
        let max_price = max_price(message, class, &snapshot.rules)?;
        let mut candidates: SmallVec<[CarrierSlot; 8]> = route
            .iter()
            .filter(|offer| offer.within(max_price))
            .map(|offer| snapshot.slot_of[offer.carrier.get()])
            .collect();
        if candidates.is_empty() {
            return Err(Rejection::OverMaxPrice);
        }
        let steered = steer_probe(&shared.board, &snapshot.slots, &mut candidates);
        // An account pays its best route now; the dispatcher settles the difference when a
        // failover moves the message to another carrier.
        let charge = match message.tag("account") {
            None => None,
            Some(account) => {
                let balance = shared
                    .accounts
                    .get(account)
                    .map(|b| b.clone())
                    .ok_or(Rejection::InsufficientFunds)?;
                // Prices in the candidates' order: the route's, with the same probe steering.
                let mut per_segment: SmallVec<[u64; 8]> = route
                    .iter()
                    .filter(|o| o.within(max_price))
                    .map(|o| o.cost.micros())
                    .collect();
                if let Some(i) = steered {
                    per_segment[..=i].rotate_right(1);
                }
                Some(Box::new(crate::shared::Charge {
                    account: balance,
                    charged: per_segment[0] * u64::from(segments),
                    slots: candidates.clone(),
                    per_segment,
                }))
            }
        };
        reserved.outstanding_slot()?;
        // The cap last: only a message that will be accepted counts toward it.
        if let (Some(class), Some(now)) = (class, wall) {
            reserved.cap = snapshot
                .rules
                .take_cap(&shared.caps, class, message.to(), now)?;
        }
        if let Some(charge) = &charge {
            reserved.debit(&charge.account, charge.charged)?;
        }
        Ok(Routed {
            reserved,
            id,
            candidates,
            checked,
            charge,
            priority: snapshot.rules.priority(class),
        })
    }
}

/// The message's price ceiling: the lower of its `max_price` tag and its class's. Routing
/// drops dearer candidates wherever it routes the message (at submit, when moving it, after
/// a restart).
pub(crate) fn max_price(
    message: &Message,
    class: Option<usize>,
    rules: &smsroute_policy::Rules,
) -> Result<Option<Money>, Rejection> {
    let own = match message.tag("max_price") {
        None => None,
        Some(value) => Some(
            Money::parse_decimal(value).map_err(|_| InvalidMessage::MaxPrice {
                value: value.to_string(),
            })?,
        ),
    };
    Ok(own
        .into_iter()
        .chain(class.and_then(|c| rules.max_price(c)))
        .min())
}

/// A message routed and holding its reservations, ready for the dispatcher.
struct Routed<'a, C> {
    reserved: Reservation<'a, C>,
    id: MessageId,
    candidates: SmallVec<[CarrierSlot; 8]>,
    checked: u64,
    charge: Option<Box<crate::shared::Charge>>,
    priority: u8,
}

/// Counts a `submit` waiting for room while it lives (so room is announced only when someone
/// waits).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an accepted message holds while `submit` decides: its id among the outstanding ones,
/// a slot of `max_outstanding`, a frequency-cap ticket, an account's debit. Dropped before
/// [`Reservation::commit`], it gives every one back: a refused message leaves nothing behind.
struct Reservation<'a, C> {
    shared: &'a Shared<C>,
    id: Option<MessageId>,
    outstanding: bool,
    cap: Option<smsroute_policy::CapTicket>,
    debit: Option<(Arc<AtomicU64>, u64)>,
}

impl<'a, C> Reservation<'a, C> {
    fn new(shared: &'a Shared<C>) -> Self {
        Reservation {
            shared,
            id: None,
            outstanding: false,
            cap: None,
            debit: None,
        }
    }

    /// The message's id: its own (refused while another outstanding message has it), or the
    /// next free one the router assigns (never one a gateway chose and still uses).
    fn id(&mut self, own: MessageId) -> Result<MessageId, Rejection> {
        let shared = self.shared;
        let id = if own.0 != 0 {
            if !shared.ids.insert(own) {
                return Err(Rejection::DuplicateId);
            }
            // Assigned ids stay above every own id seen, so they do not meet again later.
            if own.0 >= shared.next_id.load(Ordering::Relaxed) {
                shared
                    .next_id
                    .fetch_max(own.0.saturating_add(1), Ordering::Relaxed);
            }
            own
        } else {
            loop {
                let n = MessageId(shared.next_id.fetch_add(1, Ordering::Relaxed));
                if n.0 != 0 && shared.ids.insert(n) {
                    break n;
                }
            }
        };
        self.id = Some(id);
        Ok(id)
    }

    /// One of the `max_outstanding` slots.
    fn outstanding_slot(&mut self) -> Result<(), Rejection> {
        let outstanding = &self.shared.counters.outstanding;
        if outstanding.fetch_add(1, Ordering::AcqRel) >= self.shared.options.max_outstanding {
            outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejection::Overloaded);
        }
        self.outstanding = true;
        Ok(())
    }

    /// Takes `amount` from an account.
    fn debit(&mut self, account: &Arc<AtomicU64>, amount: u64) -> Result<(), Rejection> {
        if !crate::shared::debit(account, amount) {
            return Err(Rejection::InsufficientFunds);
        }
        self.debit = Some((account.clone(), amount));
        Ok(())
    }

    /// The message is the dispatcher's now: keep everything.
    fn commit(mut self) {
        self.id = None;
        self.outstanding = false;
        self.cap = None;
        self.debit = None;
    }
}

impl<C> Drop for Reservation<'_, C> {
    fn drop(&mut self) {
        let shared = self.shared;
        if let Some(id) = self.id {
            shared.ids.remove(&id);
        }
        if self.outstanding {
            shared.counters.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(ticket) = self.cap.take() {
            shared.caps.give_back(ticket);
        }
        if let Some((account, amount)) = self.debit.take() {
            account.fetch_add(amount, Ordering::AcqRel);
        }
    }
}

/// While a candidate carrier is half-open, one message in a few takes a probe permit and
/// tries it first: otherwise its penalty would keep it last and it would never be tested.
/// Returns the position the probed carrier was moved from (`candidates[..=i]` rotated).
fn steer_probe<C>(
    board: &HealthBoard,
    slots: &[Arc<SlotEntry<C>>],
    candidates: &mut SmallVec<[CarrierSlot; 8]>,
) -> Option<usize> {
    for i in 1..candidates.len() {
        let slot = candidates[i];
        if board.health(slot).state == HealthState::Probing && slots[slot.get()].take_probe_permit()
        {
            candidates[..=i].rotate_right(1);
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use smallvec::smallvec;
    use smsroute_routing::CarrierHealth;

    use super::*;

    #[test]
    fn probes_are_steered_first_while_permits_last() {
        let board = HealthBoard::new(3, 0.5);
        let slots: Vec<Arc<SlotEntry<()>>> = ["a", "b", "c"]
            .iter()
            .map(|id| Arc::new(SlotEntry::new(id, Arc::new(()), 10, 10, 8).unwrap()))
            .collect();
        let probing = CarrierHealth {
            state: HealthState::Probing,
            penalty: 20.0,
        };
        board.publish(CarrierSlot(2), probing);
        slots[2].probe_permits.store(2, Ordering::Relaxed);
        let order = || {
            let mut c: SmallVec<[CarrierSlot; 8]> =
                smallvec![CarrierSlot(0), CarrierSlot(1), CarrierSlot(2)];
            steer_probe(&board, &slots, &mut c);
            c.iter().map(|c| c.0).collect::<Vec<_>>()
        };
        assert_eq!(order(), [2, 0, 1]);
        assert_eq!(order(), [2, 0, 1]);
        assert_eq!(order(), [0, 1, 2], "permits used up");
        // A carrier that is not half-open is never steered, permits or not.
        slots[1].probe_permits.store(5, Ordering::Relaxed);
        assert_eq!(order(), [0, 1, 2]);
    }
}
