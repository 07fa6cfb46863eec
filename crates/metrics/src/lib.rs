//! smsroute's metrics: every name and description in one place, handles registered once (per
//! carrier where labelled) and cached by the engine, and the Prometheus exporter.
//!
//! Length: about 680 lines, past the project's 600, on purpose: the contract (every name, its
//! description, its handle) is kept in one file so a metric cannot be renamed in one place and
//! described in another; handles of their own concern live apart (`cluster.rs`).
//!
//! The engine records through the `metrics` facade, so it works with no recorder (every handle
//! is a no-op), with this crate's Prometheus exporter, or with the embedding application's own
//! recorder. Handles are bound to the recorder installed when they are registered: install
//! the recorder before starting a router. No label macro runs on the hot path: the engine
//! registers a [`CarrierMetrics`] per carrier and an [`EngineMetrics`] per router up front.
//! `docs/operations.md` is the reference (name, type, labels, meaning).
//!
//! # Example
//! ```
//! use smsroute_metrics::{CarrierMetrics, EngineMetrics, SubmitResult};
//! // No recorder installed: handles are no-ops, and cost next to nothing.
//! let engine = EngineMetrics::register();
//! engine.accepted.increment(1);
//! let carrier = CarrierMetrics::register("uk-alpha");
//! carrier.submit(SubmitResult::Accepted).increment(1);
//! carrier.submit_latency.record(0.012);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::SocketAddr;

mod cluster;
pub use cluster::ClusterMetrics;

pub use metrics::{Counter, Gauge, Histogram};
use metrics::{Unit, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Metric names (the contract: all start `smsroute_`).
pub mod names {
    /// Counter: messages accepted by `submit`.
    pub const ACCEPTED: &str = "smsroute_messages_accepted_total";
    /// Counter `{reason}`: messages refused by `submit`.
    pub const REJECTED: &str = "smsroute_messages_rejected_total";
    /// Counter `{carrier,result}`: submit attempts by how the carrier answered.
    pub const SUBMITS: &str = "smsroute_submits_total";
    /// Counter `{outcome}`: terminal statuses.
    pub const OUTCOMES: &str = "smsroute_outcomes_total";
    /// Counter `{carrier}`: retries on the same carrier, by the carrier that failed.
    pub const RETRIES: &str = "smsroute_retries_total";
    /// Counter `{carrier}`: failovers away from the carrier.
    pub const FAILOVERS: &str = "smsroute_failovers_total";
    /// Gauge `{carrier}`: health as 1 / penalty (1 healthy, toward 0 worse).
    pub const HEALTH: &str = "smsroute_carrier_health";
    /// Gauge `{carrier}`: circuit state: 0 closed, 1 ejected, 2 probing.
    pub const CIRCUIT: &str = "smsroute_circuit_state";
    /// Gauge `{carrier}`: submits in flight.
    pub const INFLIGHT: &str = "smsroute_inflight";
    /// Counter `{carrier}`: throttling answers (ESME_RTHROTTLED, queue full).
    pub const THROTTLED: &str = "smsroute_throttled_total";
    /// Histogram `{carrier}`: submit → carrier answer, seconds.
    pub const SUBMIT_LATENCY: &str = "smsroute_submit_latency_seconds";
    /// Gauge: the route table's generation (1 at start, +1 per reload).
    pub const TABLE_GENERATION: &str = "smsroute_route_table_generation";
    /// Gauge: distinct prefixes in the route table.
    pub const TABLE_PREFIXES: &str = "smsroute_route_table_prefixes";
    /// Counter `{result}`: route table reloads, `ok` or `error`.
    pub const RELOADS: &str = "smsroute_route_table_reloads_total";
    /// Gauge `{carrier}`: the contracted rate, segments per second.
    pub const CONTRACT_TPS: &str = "smsroute_carrier_tps";
    /// Gauge `{carrier}`: the adaptive rate the bucket runs at, segments per second.
    pub const ADAPTIVE_RATE: &str = "smsroute_carrier_rate";
    /// Gauge `{carrier}`: messages waiting in the carrier's lane for its window and bucket.
    pub const LANE_DEPTH: &str = "smsroute_lane_depth";
    /// Gauge `{carrier}`: the expected wait of a message joining the carrier's lane (its
    /// queued segments over its current rate), seconds.
    pub const QUEUE_WAIT: &str = "smsroute_queue_wait_seconds";
    /// Counter `{carrier}`: messages passed over for, or moved from, this carrier because
    /// its queue wait passed its `max_queue_wait_ms` (or the message's deadline).
    pub const SPILLOVERS: &str = "smsroute_spillovers_total";
    /// Counter `{carrier}`: messages a route or sender bucket set aside in the carrier's lane
    /// (each time it held one).
    pub const HELD: &str = "smsroute_held_total";
    /// Gauge `{carrier}`: the token bucket's fill, 0 (empty) to 1 (full burst available).
    pub const BUCKET_FILL: &str = "smsroute_bucket_fill";
    /// Counter `{carrier}`: segments admitted by the carrier's bucket.
    pub const SEGMENTS: &str = "smsroute_segments_total";
    /// Histogram `{carrier}`: submit → final delivery receipt, seconds.
    pub const DLR_LATENCY: &str = "smsroute_dlr_latency_seconds";
    /// Counter `{carrier,status}`: receipts matched to a message part.
    pub const RECEIPTS: &str = "smsroute_receipts_total";
    /// Counter: receipts that matched no message (unknown id, or already finished).
    pub const RECEIPTS_UNKNOWN: &str = "smsroute_receipts_unknown_total";
    /// Counter: receipts matched to messages parked out of memory (they came late: after the
    /// message had waited 2 s for them).
    pub const RECEIPTS_LATE: &str = "smsroute_receipts_matched_late_total";
    /// Gauge: accepted messages whose terminal event the gateway has not taken.
    pub const OUTSTANDING: &str = "smsroute_outstanding";
    /// Gauge: messages queued between submitters and the dispatcher.
    pub const QUEUE_DEPTH: &str = "smsroute_queue_depth";
    /// Counter: terminal messages flagged possible duplicates (a submit timed out or its link
    /// died, so the carrier may have sent a copy).
    pub const POSSIBLE_DUPLICATES: &str = "smsroute_possible_duplicates_total";
    /// Gauge `{carrier,network}`: the delivery-quality penalty of a carrier towards a
    /// network (1: none); at most 64 series, the first pairs ever penalised.
    pub const QUALITY_PENALTY: &str = "smsroute_quality_penalty";
    /// Counter: segments smart encoding saved (look-alikes replaced to stay in GSM-7).
    pub const SEGMENTS_SAVED: &str = "smsroute_segments_saved_total";
    /// Counter: progress events dropped because the gateway lagged.
    pub const EVENTS_DROPPED: &str = "smsroute_events_dropped_total";
    /// Counter `{keyword}`: inbound messages (replies) by keyword.
    pub const INBOUND: &str = "smsroute_inbound_total";
    /// Gauge: recipients on the suppression list (opted out of one sender or of all).
    pub const OPTED_OUT: &str = "smsroute_opted_out";
    /// Gauge `{account}`: an account's balance, micro-units of its currency.
    pub const ACCOUNT_BALANCE: &str = "smsroute_account_balance_micros";
    /// Histogram: how long what waits for the journal waited for its sync (per batch released,
    /// its oldest item), seconds.
    pub const JOURNAL_COMMIT: &str = "smsroute_journal_commit_seconds";
    /// Counter: bytes appended to the journal.
    pub const JOURNAL_BYTES: &str = "smsroute_journal_bytes_total";
    /// Gauge: bytes in the journal's directory.
    pub const JOURNAL_DISK: &str = "smsroute_journal_disk_bytes";
    /// Gauge: files in the journal's directory (segments and the compacted file).
    pub const JOURNAL_FILES: &str = "smsroute_journal_files";
    /// Gauge: events and submits waiting for the journal's sync.
    pub const JOURNAL_WAITING: &str = "smsroute_journal_waiting";
    /// Gauge: seconds the last start spent recovering the journal.
    pub const JOURNAL_RECOVERY: &str = "smsroute_journal_recovery_seconds";
    /// Gauge: messages the last start took up from the journal (resumed and replayed).
    pub const JOURNAL_RECOVERED: &str = "smsroute_journal_recovered_messages";
    /// Gauge: message parts whose carrier id waits for a delivery receipt.
    pub const AWAITING_RECEIPTS: &str = "smsroute_awaiting_receipts";
    /// Gauge: messages parked out of memory while they wait for receipts.
    pub const PARKED: &str = "smsroute_parked_messages";
    /// Gauge: bytes in the parked messages' side files.
    pub const PARKED_DISK: &str = "smsroute_parked_disk_bytes";
    /// Status webhook posts by outcome (`smsroute serve`).
    pub const WEBHOOKS: &str = "smsroute_webhook_posts_total";
    /// Messages submitted to `smsroute serve`, by front and how they were answered.
    pub const FRONT_SUBMITS: &str = "smsroute_front_submits_total";
    /// SMPP client sessions bound to `smsroute serve`.
    pub const FRONT_SESSIONS: &str = "smsroute_front_smpp_sessions";
    /// deliver_sm sent to SMPP clients of `smsroute serve`, by kind and the client's answer.
    pub const FRONT_DELIVERIES: &str = "smsroute_front_deliveries_total";
    /// Gauge: 1 while this node leases shared contracts from Redis, 0 while it runs on static
    /// shares (`[cluster]`).
    pub const CLUSTER_REDIS_UP: &str = "smsroute_cluster_redis_up";
    /// Gauge: live nodes as this node last saw them in Redis, itself included.
    pub const CLUSTER_LIVE_NODES: &str = "smsroute_cluster_live_nodes";
    /// Counter: round trips to Redis for leases (one per lease for all contracts).
    pub const CLUSTER_ROUND_TRIPS: &str = "smsroute_cluster_round_trips_total";
    /// Counter: lease renewals that failed (Redis unreachable or erroring).
    pub const CLUSTER_FAILURES: &str = "smsroute_cluster_failures_total";
}

/// Buckets of the journal's commit histogram, seconds: 100 µs to 5 s.
pub const COMMIT_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Buckets of the latency histograms, seconds: 1 ms to 2 minutes.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Buckets of the receipt-latency histogram, seconds: 100 ms to three days (receipts are
/// awaited 72 hours by default).
pub const DLR_BUCKETS: [f64; 18] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0,
    86400.0, 172800.0, 259200.0,
];

/// Describes every metric to the installed recorder (help text and unit).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_counter!(ACCEPTED, "Messages accepted by submit.");
    describe_counter!(
        WEBHOOKS,
        "Status webhook posts: delivered, failed (retried later), given_up."
    );
    describe_counter!(
        FRONT_SUBMITS,
        "Messages submitted to smsroute serve by front (smpp, http) and answer (accepted, refused, unavailable)."
    );
    describe_gauge!(
        FRONT_SESSIONS,
        "SMPP client sessions bound to smsroute serve."
    );
    describe_counter!(
        FRONT_DELIVERIES,
        "deliver_sm sent to SMPP clients by kind (receipt, reply) and answer (answered, refused)."
    );
    describe_counter!(REJECTED, "Messages refused by submit, by reason.");
    describe_counter!(
        SUBMITS,
        "Submit attempts by carrier and how the carrier answered."
    );
    describe_counter!(
        OUTCOMES,
        "Terminal statuses: delivered, sent, failed, expired."
    );
    describe_counter!(
        RETRIES,
        "Retries on the same carrier, by the carrier that failed."
    );
    describe_counter!(FAILOVERS, "Failovers away from a carrier.");
    describe_gauge!(
        HEALTH,
        "Carrier health as 1 / penalty: 1 healthy, toward 0 worse."
    );
    describe_gauge!(CIRCUIT, "Carrier circuit: 0 closed, 1 ejected, 2 probing.");
    describe_gauge!(INFLIGHT, "Submits in flight to the carrier.");
    describe_counter!(THROTTLED, "Throttling answers from the carrier.");
    describe_histogram!(
        SUBMIT_LATENCY,
        Unit::Seconds,
        "Submit to the carrier's answer."
    );
    describe_gauge!(
        TABLE_GENERATION,
        "Route table generation (1 at start, +1 per reload)."
    );
    describe_gauge!(TABLE_PREFIXES, "Distinct prefixes in the route table.");
    describe_counter!(RELOADS, "Route table reloads, by result (ok, error).");
    describe_gauge!(
        CONTRACT_TPS,
        "Contracted carrier rate, segments per second."
    );
    describe_gauge!(
        ADAPTIVE_RATE,
        "Adaptive rate the carrier's bucket runs at, segments/s."
    );
    describe_gauge!(
        LANE_DEPTH,
        "Messages waiting for the carrier's window and bucket."
    );
    describe_gauge!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Expected wait of a message joining the carrier's lane."
    );
    describe_counter!(
        SPILLOVERS,
        "Messages passed over for, or moved from, the carrier: its queue wait was too long."
    );
    describe_counter!(
        HELD,
        "Messages a route or sender bucket set aside in the carrier's lane."
    );
    describe_counter!(SEGMENTS, "Segments admitted by the carrier's bucket.");
    describe_gauge!(
        BUCKET_FILL,
        "Token bucket fill: 0 empty, 1 full burst available."
    );
    describe_histogram!(
        DLR_LATENCY,
        Unit::Seconds,
        "Submit to the final delivery receipt."
    );
    describe_counter!(RECEIPTS, "Receipts matched to a message part, by status.");
    describe_counter!(RECEIPTS_UNKNOWN, "Receipts that matched no message.");
    describe_counter!(
        RECEIPTS_LATE,
        "Receipts matched to messages parked out of memory while they waited."
    );
    describe_gauge!(
        OUTSTANDING,
        "Accepted messages whose terminal event is not yet taken."
    );
    describe_gauge!(QUEUE_DEPTH, "Messages queued for the dispatcher.");
    describe_gauge!(
        QUALITY_PENALTY,
        "Delivery-quality penalty of a carrier towards a network (1: none)."
    );
    describe_counter!(
        SEGMENTS_SAVED,
        "Segments smart encoding saved by replacing look-alike characters."
    );
    describe_counter!(
        POSSIBLE_DUPLICATES,
        "Terminal messages whose carrier may have sent a copy."
    );
    describe_counter!(
        EVENTS_DROPPED,
        "Progress events dropped because the gateway lagged."
    );
    describe_counter!(
        INBOUND,
        "Replies from recipients, by keyword (none: no keyword)."
    );
    describe_gauge!(OPTED_OUT, "Recipients on the suppression list.");
    describe_gauge!(
        ACCOUNT_BALANCE,
        "Account balance, micro-units of its currency."
    );
    describe_histogram!(
        JOURNAL_COMMIT,
        Unit::Seconds,
        "Wait for the journal's sync, per released batch (its oldest item)."
    );
    describe_counter!(JOURNAL_BYTES, Unit::Bytes, "Bytes appended to the journal.");
    describe_gauge!(
        JOURNAL_DISK,
        Unit::Bytes,
        "Bytes in the journal's directory."
    );
    describe_gauge!(JOURNAL_FILES, "Files in the journal's directory.");
    describe_gauge!(
        CLUSTER_REDIS_UP,
        "1 while shared contracts are leased from Redis, 0 while this node runs on static shares."
    );
    describe_gauge!(
        CLUSTER_LIVE_NODES,
        "Live nodes as this node last saw them in Redis, itself included."
    );
    describe_counter!(CLUSTER_ROUND_TRIPS, "Round trips to Redis for leases.");
    describe_counter!(
        CLUSTER_FAILURES,
        "Lease renewals that failed (Redis unreachable or erroring)."
    );
    describe_gauge!(
        JOURNAL_WAITING,
        "Events and submits waiting for the journal's sync."
    );
    describe_gauge!(
        JOURNAL_RECOVERY,
        Unit::Seconds,
        "Time the last start spent recovering the journal."
    );
    describe_gauge!(
        JOURNAL_RECOVERED,
        "Messages the last start took up from the journal."
    );
    describe_gauge!(
        AWAITING_RECEIPTS,
        "Message parts waiting for their delivery receipt."
    );
    describe_gauge!(
        PARKED,
        "Messages parked out of memory while they wait for receipts."
    );
    describe_gauge!(
        PARKED_DISK,
        Unit::Bytes,
        "Bytes in the parked messages' side files."
    );
}

pub use smsroute_types::Label;

/// One counter handle per value of `L` for one metric, registered at once (so every series
/// exists at 0 from the start).
pub struct LabelCounters<L> {
    counters: Box<[Counter]>,
    _values: std::marker::PhantomData<fn(&L)>,
}

impl<L> std::fmt::Debug for LabelCounters<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelCounters").finish_non_exhaustive()
    }
}

impl<L: Label> LabelCounters<L> {
    /// Registers `name{key="…"}` for every label value of `L`.
    pub fn register(name: &'static str, key: &'static str) -> Self {
        LabelCounters {
            counters: L::LABELS
                .iter()
                .map(|value| counter!(name, key => *value))
                .collect(),
            _values: std::marker::PhantomData,
        }
    }

    /// Registers `name{carrier="…", key="…"}` for every label value of `L`.
    pub fn register_for_carrier(name: &'static str, carrier: &str, key: &'static str) -> Self {
        LabelCounters {
            counters: L::LABELS
                .iter()
                .map(|value| counter!(name, "carrier" => carrier.to_string(), key => *value))
                .collect(),
            _values: std::marker::PhantomData,
        }
    }

    /// The handle of `value`'s series.
    pub fn get(&self, value: &L) -> &Counter {
        &self.counters[value.index()]
    }

    /// Adds counts kept in label order (`counts[i]` to the series of `L::LABELS[i]`), as a
    /// flush of counts accumulated off the metric handles does.
    pub fn add_counts(&self, counts: &[u64]) {
        for (counter, &n) in self.counters.iter().zip(counts) {
            if n > 0 {
                counter.increment(n);
            }
        }
    }
}

/// Router-wide handles.
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    /// [`names::ACCEPTED`].
    pub accepted: Counter,
    /// [`names::TABLE_GENERATION`].
    pub table_generation: Gauge,
    /// [`names::TABLE_PREFIXES`].
    pub table_prefixes: Gauge,
    /// [`names::RELOADS`] `{result="ok"}`.
    pub reloads_ok: Counter,
    /// [`names::RELOADS`] `{result="error"}`.
    pub reloads_failed: Counter,
    /// [`names::RECEIPTS_UNKNOWN`].
    pub receipts_unknown: Counter,
    /// [`names::RECEIPTS_LATE`].
    pub receipts_late: Counter,
    /// [`names::OUTSTANDING`].
    pub outstanding: Gauge,
    /// [`names::QUEUE_DEPTH`].
    pub queue_depth: Gauge,
    /// [`names::POSSIBLE_DUPLICATES`].
    pub possible_duplicates: Counter,
    /// [`names::SEGMENTS_SAVED`].
    pub segments_saved: Counter,
    /// [`names::EVENTS_DROPPED`].
    pub events_dropped: Counter,
    /// [`names::OPTED_OUT`].
    pub opted_out: Gauge,
    /// [`names::JOURNAL_COMMIT`].
    pub journal_commit: Histogram,
    /// [`names::JOURNAL_BYTES`].
    pub journal_bytes: Counter,
    /// [`names::JOURNAL_DISK`].
    pub journal_disk: Gauge,
    /// [`names::JOURNAL_FILES`].
    pub journal_files: Gauge,
    /// [`names::JOURNAL_WAITING`].
    pub journal_waiting: Gauge,
    /// [`names::JOURNAL_RECOVERY`].
    pub journal_recovery: Gauge,
    /// [`names::JOURNAL_RECOVERED`].
    pub journal_recovered: Gauge,
    /// [`names::AWAITING_RECEIPTS`].
    pub awaiting_receipts: Gauge,
    /// [`names::PARKED`].
    pub parked: Gauge,
    /// [`names::PARKED_DISK`].
    pub parked_disk: Gauge,
}

impl EngineMetrics {
    /// Registers the router-wide series with the installed recorder (all at 0).
    pub fn register() -> Self {
        describe();
        EngineMetrics {
            accepted: counter!(names::ACCEPTED),
            table_generation: gauge!(names::TABLE_GENERATION),
            table_prefixes: gauge!(names::TABLE_PREFIXES),
            reloads_ok: counter!(names::RELOADS, "result" => "ok"),
            reloads_failed: counter!(names::RELOADS, "result" => "error"),
            receipts_unknown: counter!(names::RECEIPTS_UNKNOWN),
            receipts_late: counter!(names::RECEIPTS_LATE),
            outstanding: gauge!(names::OUTSTANDING),
            queue_depth: gauge!(names::QUEUE_DEPTH),
            possible_duplicates: counter!(names::POSSIBLE_DUPLICATES),
            segments_saved: counter!(names::SEGMENTS_SAVED),
            events_dropped: counter!(names::EVENTS_DROPPED),
            opted_out: gauge!(names::OPTED_OUT),
            journal_commit: histogram!(names::JOURNAL_COMMIT),
            journal_bytes: counter!(names::JOURNAL_BYTES),
            journal_disk: gauge!(names::JOURNAL_DISK),
            journal_files: gauge!(names::JOURNAL_FILES),
            journal_waiting: gauge!(names::JOURNAL_WAITING),
            journal_recovery: gauge!(names::JOURNAL_RECOVERY),
            journal_recovered: gauge!(names::JOURNAL_RECOVERED),
            awaiting_receipts: gauge!(names::AWAITING_RECEIPTS),
            parked: gauge!(names::PARKED),
            parked_disk: gauge!(names::PARKED_DISK),
        }
    }

    /// The balance gauge of `account` ([`names::ACCOUNT_BALANCE`]).
    pub fn account_balance(account: &str) -> Gauge {
        gauge!(names::ACCOUNT_BALANCE, "account" => account.to_string())
    }
}

/// How a submit ended, as the `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitResult {
    /// Every part accepted.
    Accepted,
    /// Throttled (ESME_RTHROTTLED, queue full).
    Throttled,
    /// A temporary error (retried on the same carrier).
    Temporary,
    /// A system or bind error (failed over).
    Failover,
    /// A permanent error (the message fails).
    Permanent,
    /// No answer in time, or the link died: outcome unknown.
    Unknown,
    /// Not sent: the carrier had no bound session.
    Unavailable,
}

impl SubmitResult {
    /// Every result, in label order.
    pub const ALL: [SubmitResult; 7] = [
        SubmitResult::Accepted,
        SubmitResult::Throttled,
        SubmitResult::Temporary,
        SubmitResult::Failover,
        SubmitResult::Permanent,
        SubmitResult::Unknown,
        SubmitResult::Unavailable,
    ];
}

impl Label for SubmitResult {
    const LABELS: &'static [&'static str] = &[
        "accepted",
        "throttled",
        "temporary",
        "failover",
        "permanent",
        "unknown",
        "unavailable",
    ];

    fn index(&self) -> usize {
        *self as usize
    }
}

/// The [`names::QUALITY_PENALTY`] series of a carrier towards a network.
pub fn quality_penalty(carrier: &str, network: u64) -> Gauge {
    gauge!(names::QUALITY_PENALTY, "carrier" => carrier.to_string(), "network" => network.to_string())
}

/// One carrier's handles, registered when the carrier is added.
#[derive(Clone, Debug)]
pub struct CarrierMetrics {
    submits: [Counter; SubmitResult::ALL.len()],
    /// [`names::RETRIES`].
    pub retries: Counter,
    /// [`names::FAILOVERS`].
    pub failovers: Counter,
    /// [`names::THROTTLED`].
    pub throttled: Counter,
    /// [`names::SEGMENTS`].
    pub segments: Counter,
    /// [`names::HEALTH`].
    pub health: Gauge,
    /// [`names::CIRCUIT`].
    pub circuit: Gauge,
    /// [`names::INFLIGHT`].
    pub inflight: Gauge,
    /// [`names::LANE_DEPTH`].
    pub lane_depth: Gauge,
    /// [`names::QUEUE_WAIT`].
    pub queue_wait: Gauge,
    /// [`names::SPILLOVERS`].
    pub spillovers: Counter,
    /// [`names::HELD`].
    pub held: Counter,
    /// [`names::CONTRACT_TPS`].
    pub contract_tps: Gauge,
    /// [`names::ADAPTIVE_RATE`].
    pub rate: Gauge,
    /// [`names::BUCKET_FILL`].
    pub bucket_fill: Gauge,
    /// [`names::SUBMIT_LATENCY`].
    pub submit_latency: Histogram,
    /// [`names::DLR_LATENCY`].
    pub dlr_latency: Histogram,
}

impl CarrierMetrics {
    /// Registers every series of carrier `id` with the installed recorder (all at 0).
    pub fn register(id: &str) -> Self {
        let carrier = id.to_string();
        let c = || carrier.clone();
        CarrierMetrics {
            submits: SubmitResult::ALL
                .map(|r| counter!(names::SUBMITS, "carrier" => c(), "result" => r.label())),
            retries: counter!(names::RETRIES, "carrier" => c()),
            failovers: counter!(names::FAILOVERS, "carrier" => c()),
            throttled: counter!(names::THROTTLED, "carrier" => c()),
            segments: counter!(names::SEGMENTS, "carrier" => c()),
            health: gauge!(names::HEALTH, "carrier" => c()),
            circuit: gauge!(names::CIRCUIT, "carrier" => c()),
            inflight: gauge!(names::INFLIGHT, "carrier" => c()),
            lane_depth: gauge!(names::LANE_DEPTH, "carrier" => c()),
            queue_wait: gauge!(names::QUEUE_WAIT, "carrier" => c()),
            spillovers: counter!(names::SPILLOVERS, "carrier" => c()),
            held: counter!(names::HELD, "carrier" => c()),
            contract_tps: gauge!(names::CONTRACT_TPS, "carrier" => c()),
            rate: gauge!(names::ADAPTIVE_RATE, "carrier" => c()),
            bucket_fill: gauge!(names::BUCKET_FILL, "carrier" => c()),
            submit_latency: histogram!(names::SUBMIT_LATENCY, "carrier" => c()),
            dlr_latency: histogram!(names::DLR_LATENCY, "carrier" => c()),
        }
    }

    /// The submits counter of `result`.
    pub fn submit(&self, result: SubmitResult) -> &Counter {
        &self.submits[result as usize]
    }
}

/// Why the exporter did not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics exporter on {addr}: {reason}")]
pub struct ExporterError {
    /// Where it was to listen.
    pub addr: SocketAddr,
    /// What went wrong (address in use, a recorder already installed, …).
    pub reason: String,
}

/// The default listen address of the exporter.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9000";

/// Installs the Prometheus exporter as the global recorder, serving `/metrics` over HTTP on
/// `addr`, with upkeep running and explicit histogram buckets (no summaries). Call it before
/// starting a router. Inside a tokio runtime it runs there; outside, on a thread of its own.
pub fn install_exporter(addr: SocketAddr) -> Result<(), ExporterError> {
    let fail = |reason: String| ExporterError { addr, reason };
    prometheus_builder()
        .with_http_listener(addr)
        .install()
        .map_err(|e| fail(e.to_string()))
}

/// A Prometheus builder with smsroute's histogram buckets: for an exporter of your own
/// (`.with_http_listener(…).install()`) or a recorder for tests (`.build_recorder()`).
pub fn prometheus_builder() -> PrometheusBuilder {
    let buckets = [
        (names::SUBMIT_LATENCY, &LATENCY_BUCKETS[..]),
        (names::DLR_LATENCY, &DLR_BUCKETS[..]),
        (names::JOURNAL_COMMIT, &COMMIT_BUCKETS[..]),
    ];
    buckets
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, values)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.into()), values)
                .expect("the bucket lists are non-empty constants")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_prefixed_and_results_label_in_order() {
        for name in [
            names::ACCEPTED,
            names::REJECTED,
            names::SUBMITS,
            names::OUTCOMES,
            names::SUBMIT_LATENCY,
            names::DLR_LATENCY,
            names::TABLE_GENERATION,
        ] {
            assert!(name.starts_with("smsroute_"), "{name}");
        }
        for (i, r) in SubmitResult::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(DLR_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(COMMIT_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
