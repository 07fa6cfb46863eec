//! State the router's handle and the dispatcher share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use smallvec::SmallVec;
use smsroute_delivery::Nanos;
use smsroute_health::HealthBoard;
use smsroute_types::CarrierSlot;
use smsroute_types::Message;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::EngineOptions;
use crate::event::Counters;
use crate::registry::Snapshot;

/// What a message's account paid, and what each of its candidates would cost a segment.
#[derive(Debug)]
pub(crate) struct Charge {
    pub account: Arc<std::sync::atomic::AtomicU64>,
    /// The candidates' slots and their micro-units per segment.
    pub slots: SmallVec<[CarrierSlot; 8]>,
    pub per_segment: SmallVec<[u64; 8]>,
    /// Micro-units taken so far.
    pub charged: u64,
}

impl Charge {
    /// Moves the charge to `carrier` (every part sent there): pays the difference to a
    /// dearer one, or refunds it from a cheaper one. `false`, changing nothing, when the
    /// account cannot pay.
    pub fn move_to(&mut self, carrier: CarrierSlot, segments: u32) -> bool {
        let at = self.slots.iter().position(|s| *s == carrier);
        let need = at.map_or(self.charged, |i| self.per_segment[i] * u64::from(segments));
        if need > self.charged && !debit(&self.account, need - self.charged) {
            return false;
        }
        if need < self.charged {
            self.account
                .fetch_add(self.charged - need, std::sync::atomic::Ordering::AcqRel);
        }
        self.charged = need;
        true
    }
}

/// Takes `amount` from `balance` if it holds that much.
pub(crate) fn debit(balance: &std::sync::atomic::AtomicU64, amount: u64) -> bool {
    balance
        .fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |b| b.checked_sub(amount),
        )
        .is_ok()
}

/// A routed message on its way to the dispatcher.
pub(crate) struct Job {
    pub message: Arc<Message>,
    /// Carrier slots, best first.
    pub candidates: SmallVec<[CarrierSlot; 8]>,
    /// The suppression list's generation when the message was checked against it.
    pub checked: u64,
    /// Its account's charge, when it names an account.
    pub charge: Option<Box<Charge>>,
    /// Its priority level (its class's).
    pub priority: u8,
}

pub(crate) struct Shared<C> {
    pub snapshot: ArcSwap<Snapshot<C>>,
    /// The snapshot's generation, for the dispatcher's cheap "did it change" check.
    pub generation: AtomicU64,
    /// Health by slot.
    pub board: HealthBoard,
    /// Submitted messages for the dispatcher (lock-free, bounded).
    pub submitted: ArrayQueue<Job>,
    /// Wakes a parked dispatcher (shared with the journal's sync thread, which wakes it when
    /// records become durable).
    pub wake: Arc<Notify>,
    /// The dispatcher is parked (or about to be): submitters must notify.
    pub parked: AtomicBool,
    pub counters: Arc<Counters>,
    /// Carrier message ids awaiting receipts, as the dispatcher last published.
    pub receipts_pending: std::sync::atomic::AtomicUsize,
    /// Receipts that matched no message, as the dispatcher last published.
    pub receipts_unknown: AtomicU64,
    /// Time zero of the router's clock.
    pub origin: Instant,
    /// Time zero of the router's clock on the wall clock, Unix nanoseconds (what the journal
    /// records: times that mean something after a restart).
    pub origin_unix: u64,
    /// The gateway's acknowledgement watermark ([`Router::acknowledge`](crate::Router::acknowledge)).
    pub acknowledged: AtomicU64,
    /// The highest acknowledgement place handed out: the watermark never passes it.
    pub handed_out: AtomicU64,
    /// Messages parked out of memory while they wait for receipts.
    pub parked_messages: std::sync::atomic::AtomicUsize,
    pub options: EngineOptions,
    /// The next id the router assigns (ids a gateway chose push it past themselves).
    pub next_id: AtomicU64,
    /// Ids of accepted messages not yet terminal: a gateway's own id is refused while
    /// another message has it, and assigned ids skip them.
    pub ids: dashmap::DashSet<smsroute_types::MessageId, ahash::RandomState>,
    /// The dispatcher has ended.
    pub stopped: AtomicBool,
    /// Router-wide metric handles.
    pub metrics: smsroute_metrics::EngineMetrics,
    /// `smsroute_messages_rejected_total`, by reason.
    pub rejected: smsroute_metrics::LabelCounters<crate::Rejection>,
    /// `smsroute_outcomes_total`, by outcome.
    pub outcomes: smsroute_metrics::LabelCounters<smsroute_delivery::Outcome>,
    /// `smsroute_inbound_total`, by keyword.
    pub inbound: smsroute_metrics::LabelCounters<crate::inbound::InboundKind>,
    /// Recipients who opted out.
    pub suppression: Arc<smsroute_policy::Suppression>,
    /// Per-recipient class caps (kept across reloads).
    pub caps: Arc<smsroute_policy::FrequencyCaps>,
    /// Account balances in micro-units, by id (kept across reloads; a reload adds accounts).
    pub accounts: dashmap::DashMap<Box<str>, Arc<std::sync::atomic::AtomicU64>, ahash::RandomState>,
    /// Every account's balance with its gauge, set on the dispatcher's tick (registered where
    /// the account is added, so the gauge binds to the recorder its router started with).
    pub account_gauges: parking_lot::Mutex<Vec<(Arc<AtomicU64>, smsroute_metrics::Gauge)>>,
    /// Wall-clock milliseconds since the epoch, refreshed on every dispatcher tick: what the
    /// class rules read (quiet hours have minutes, caps seconds), instead of a system call per
    /// message.
    pub wall_ms: AtomicU64,
    /// Delivery-quality penalties by (carrier, network), published on the dispatcher's tick.
    pub quality: arc_swap::ArcSwap<crate::quality::QualityMap>,
    /// Some penalty is published (else ranking skips the map).
    pub quality_any: AtomicBool,
}

/// Now on the wall clock, in milliseconds since the epoch.
pub(crate) fn wall_ms() -> u64 {
    smsroute_routing::now_ms().max(0) as u64
}

impl<C> Shared<C> {
    /// Routing's view of carrier health for a message to `number` under `snapshot`: the
    /// board, with the number's network's delivery-quality penalties when any are published.
    /// `guard` holds the penalty map while the view lives.
    pub fn health_view<'a>(
        &'a self,
        snapshot: &'a crate::registry::Snapshot<C>,
        number: &smsroute_types::E164,
        guard: &'a mut Option<arc_swap::Guard<Arc<crate::quality::QualityMap>>>,
    ) -> crate::quality::QualityView<'a> {
        if self.quality_any.load(std::sync::atomic::Ordering::Relaxed) {
            *guard = Some(self.quality.load());
        }
        let map = guard
            .as_deref()
            .map(|m| (&**m, crate::quality::network(number, m.digits)));
        crate::quality::QualityView {
            board: self.board.view(&snapshot.slot_of),
            slot_of: &snapshot.slot_of,
            map,
        }
    }

    /// Adds a configured account with its opening balance and its gauge; an account already
    /// known keeps its balance (a reload does not refill it).
    pub fn add_account(&self, account: &smsroute_config::AccountConfig) {
        if let dashmap::Entry::Vacant(slot) = self.accounts.entry(account.id.as_str().into()) {
            let opening = if self.options.leased_balances {
                0
            } else {
                account.balance.micros()
            };
            let balance = Arc::new(AtomicU64::new(opening));
            slot.insert(balance.clone());
            let gauge = smsroute_metrics::EngineMetrics::account_balance(&account.id);
            self.account_gauges.lock().push((balance, gauge));
        }
    }

    /// `now` on the router's clock as Unix nanoseconds.
    pub fn unix(&self, now: Nanos) -> u64 {
        self.origin_unix.saturating_add(now)
    }

    /// Unix nanoseconds `unix` on the router's clock (times before it started are its zero).
    pub fn at_unix(&self, unix: u64) -> Nanos {
        unix.saturating_sub(self.origin_unix)
    }

    /// Nanoseconds since the router started (tokio's clock, so tests can pause it).
    pub fn now(&self) -> Nanos {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as Nanos
    }
}
