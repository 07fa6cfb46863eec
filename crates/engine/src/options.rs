//! Engine tuning that is not part of the route configuration.

use smsroute_health::HealthConfig;
use smsroute_throttle::LeasePool;

/// How the engine runs: queue bounds, receipts, health tuning. `EngineOptions::default()`
/// suits a gateway; each setter says its default, and tests shrink the bounds:
///
/// ```
/// use smsroute_engine::EngineOptions;
/// let options = EngineOptions::default().max_outstanding(1_000_000).request_receipts(true);
/// # let _ = options;
/// ```
///
/// Quick advice: keep a journal when receipts are slow (messages awaiting receipts are then
/// parked out of memory and stop counting against `max_outstanding`), or, without one, raise
/// `max_outstanding` (every message awaiting a receipt counts); keep `inbound_capacity` small,
/// since it only absorbs bursts between the gateway's threads and the dispatcher.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub(crate) max_outstanding: usize,
    pub(crate) inbound_capacity: usize,
    pub(crate) progress_headroom: usize,
    pub(crate) progress_events: bool,
    pub(crate) request_receipts: bool,
    pub(crate) early_receipt_ttl_ms: u64,
    pub(crate) health: HealthConfig,
    pub(crate) retry_ratio: f64,
    pub(crate) retry_floor_per_second: f64,
    pub(crate) seed: u64,
    pub(crate) suppression_file: Option<std::path::PathBuf>,
    pub(crate) replies_capacity: usize,
    pub(crate) cap_capacity: usize,
    pub(crate) journal: Option<smsroute_journal::JournalOptions>,
    /// Carrier id → this node's share of a contract other nodes share.
    pub(crate) leases: std::collections::HashMap<String, std::sync::Arc<LeasePool>>,
    /// Where receipt ownership goes when carrier accounts are shared with other nodes.
    pub(crate) receipt_relay: Option<std::sync::Arc<dyn smsroute_carrier::ReceiptRelay>>,
    /// Accounts open empty: their balances are leased in from elsewhere.
    pub(crate) leased_balances: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_outstanding: 65_536,
            inbound_capacity: 8_192,
            progress_headroom: 65_536,
            progress_events: true,
            request_receipts: true,
            early_receipt_ttl_ms: 10_000,
            health: HealthConfig::default(),
            retry_ratio: 0.2,
            retry_floor_per_second: 10.0,
            seed: 0x5EED,
            suppression_file: None,
            replies_capacity: 4_096,
            cap_capacity: 1 << 20,
            journal: None,
            leases: std::collections::HashMap::new(),
            receipt_relay: None,
            leased_balances: false,
        }
    }
}

impl EngineOptions {
    /// Most messages accepted whose terminal event the gateway has not yet taken: past it,
    /// `try_submit` answers `Overloaded` (and `submit` waits). Bounds the engine's memory.
    /// With a journal, messages parked while they await receipts do not count
    /// (`docs/durability.md`). Default 65,536.
    pub fn max_outstanding(mut self, messages: usize) -> Self {
        self.max_outstanding = messages;
        self
    }

    /// Submitted messages waiting for the dispatcher. Default 8,192.
    pub fn inbound_capacity(mut self, messages: usize) -> Self {
        self.inbound_capacity = messages;
        self
    }

    /// Room for progress events (accepted, submitted, retrying, failed over) beyond the room
    /// every outstanding message's terminal event has reserved; when the gateway lags further,
    /// progress events are dropped (and counted), terminal events never. Default 65,536.
    pub fn progress_headroom(mut self, events: usize) -> Self {
        self.progress_headroom = events;
        self
    }

    /// Emit progress events at all (terminal events always). Default true.
    pub fn progress_events(mut self, on: bool) -> Self {
        self.progress_events = on;
        self
    }

    /// Ask carriers for delivery receipts. Default true.
    pub fn request_receipts(mut self, on: bool) -> Self {
        self.request_receipts = on;
        self
    }

    /// How long a receipt that arrives before its submit's answer waits for it, in ms.
    /// Default 10,000.
    pub fn early_receipt_ttl_ms(mut self, ms: u64) -> Self {
        self.early_receipt_ttl_ms = ms;
        self
    }

    /// Carrier health tuning (`docs/health.md`). Default `HealthConfig::default()`.
    pub fn health(mut self, health: HealthConfig) -> Self {
        self.health = health;
        self
    }

    /// Retries allowed per carrier: `ratio` of its first submits plus `floor_per_second`.
    /// Default 0.2 and 10.
    pub fn retry_budget(mut self, ratio: f64, floor_per_second: f64) -> Self {
        self.retry_ratio = ratio;
        self.retry_floor_per_second = floor_per_second;
        self
    }

    /// Seed of the engine's randomness (weighted splits, backoff jitter, ejection jitter).
    /// Default a fixed value, so runs replay.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Where opt-outs persist (an append-only log, replayed at start). Default none: the
    /// configuration's `[policy] suppression_file`, else in memory.
    pub fn suppression_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.suppression_file = Some(path.into());
        self
    }

    /// Inbound events (replies, keywords) waiting for the gateway; beyond, they are dropped
    /// and counted (the opt-outs they carry are applied all the same). Default 4,096.
    pub fn replies_capacity(mut self, events: usize) -> Self {
        self.replies_capacity = events;
        self
    }

    /// (recipient, class) pairs the frequency caps keep at once; when full of live pairs,
    /// new recipients of a capped class are refused. Default 1,048,576.
    pub fn cap_capacity(mut self, pairs: usize) -> Self {
        self.cap_capacity = pairs;
        self
    }

    /// Keep a journal (`docs/durability.md`): every accepted message, attempt and terminal
    /// status is recorded there, a message's `Accepted` event comes only once its record is
    /// durable, and [`Router::start`](crate::Router::start) resumes what the journal holds
    /// unfinished and replays unacknowledged terminal events. Default none: the
    /// configuration's `[journal]`, else no journal (nothing survives the process).
    pub fn journal(mut self, journal: smsroute_journal::JournalOptions) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Contracts this router shares with other nodes: each carrier named here admits a
    /// message only when its [`LeasePool`] (kept filled by `smsroute-cluster`'s leaser) also
    /// has the message's segments, besides its own bucket. A carrier a reload adds is shared
    /// if named here too. Default none: every contract is this router's alone.
    pub fn leases(
        mut self,
        leases: impl IntoIterator<Item = (String, std::sync::Arc<LeasePool>)>,
    ) -> Self {
        self.leases = leases.into_iter().collect();
        self
    }

    /// Carrier accounts shared with other nodes: the router tells `relay` the carrier ids it
    /// waits for and hands it the final receipts it does not wait for (`smsroute-cluster`
    /// passes them to the node that does). Default none.
    pub fn receipt_relay(
        mut self,
        relay: std::sync::Arc<dyn smsroute_carrier::ReceiptRelay>,
    ) -> Self {
        self.receipt_relay = Some(relay);
        self
    }

    /// Accounts shared with other nodes: each opens at zero here, whatever the
    /// configuration's `balance`, and holds what is credited to it
    /// ([`Router::credit`](crate::Router::credit); `smsroute-cluster` leases it from the
    /// shared balance). Default false: an account opens with its configured balance.
    pub fn leased_balances(mut self, leased: bool) -> Self {
        self.leased_balances = leased;
        self
    }

    /// The health tuning in force.
    pub fn health_config(&self) -> &HealthConfig {
        &self.health
    }
}

/// The journal a configuration's `[journal]` asks for.
pub(crate) fn journal_from(
    config: &smsroute_config::JournalConfig,
) -> smsroute_journal::JournalOptions {
    let mut options = smsroute_journal::JournalOptions::new(&config.dir);
    options.sync = match config.sync {
        smsroute_config::JournalSync::Batch => smsroute_journal::SyncMode::Batch,
        smsroute_config::JournalSync::Always => smsroute_journal::SyncMode::Always,
        smsroute_config::JournalSync::None => smsroute_journal::SyncMode::None,
    };
    options.batch_interval = std::time::Duration::from_millis(config.batch_interval_ms);
    options.preallocate = config.preallocate;
    options
}
