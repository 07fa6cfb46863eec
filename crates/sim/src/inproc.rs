//! An in-process simulated carrier: the behaviour model behind the [`Carrier`] trait, on
//! tokio's clock (so tests can pause and advance it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use smsroute_carrier::{
    Accepted, Carrier, Inbound, InboundSink, Receipt, ReceiptAck, ReceiptSink, SubmitError,
    SubmitRequest,
};
use tokio::time::Instant;

use smsroute_types::MessageId;

use crate::{Behaviour, Nanos, Reply, SimModel};

/// What a simulated carrier saw, independent of the router's own counters.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Submits received.
    pub submits: AtomicU64,
    /// Segments received.
    pub segments: AtomicU64,
    /// Submits accepted.
    pub accepted: AtomicU64,
    /// Submits answered ESME_RTHROTTLED.
    pub throttled: AtomicU64,
    /// Submits refused with another status (the three below together).
    pub refused: AtomicU64,
    /// Refused with ESME_RSYSERR (outage, system error: the router fails over).
    pub system_errors: AtomicU64,
    /// Refused with ESME_RX_T_APPN (temporary: the router retries).
    pub temporary_errors: AtomicU64,
    /// Refused with another status (permanent: the router gives up).
    pub permanent_errors: AtomicU64,
    /// Submits never answered.
    pub hung: AtomicU64,
    /// Receipts handed to the router.
    pub receipts: AtomicU64,
}

impl SimStats {
    /// Counts a refusal with `status` under its class (and in `refused` unless throttled).
    pub fn count_refusal(&self, status: u32) {
        let counter = match status {
            crate::status::THROTTLED => &self.throttled,
            crate::status::SYSTEM_ERROR => &self.system_errors,
            crate::status::TEMPORARY => &self.temporary_errors,
            _ => &self.permanent_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if status != crate::status::THROTTLED {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Called for every submit a simulated carrier accepts: the message and how long after now
/// the answer goes out (load tests use it to count duplicates and time acks independently of
/// the router).
pub type AcceptObserver = Arc<dyn Fn(MessageId, Nanos) + Send + Sync>;

/// Segments received per sliding second, in 10 ms steps: the highest count any one-second
/// window saw.
#[derive(Debug)]
pub struct RateMeter {
    buckets: [u64; METER_BUCKETS],
    /// The current 10 ms step.
    step: u64,
    sum: u64,
    max: u64,
    /// Segments received in all.
    total: u64,
    /// When the first and the last segments came.
    first: Option<Nanos>,
    last: Nanos,
}

const METER_BUCKETS: usize = 100;
const METER_STEP: Nanos = 10_000_000;

impl Default for RateMeter {
    fn default() -> Self {
        RateMeter::new()
    }
}

impl RateMeter {
    /// Nothing seen yet.
    pub fn new() -> Self {
        RateMeter {
            buckets: [0; METER_BUCKETS],
            step: 0,
            sum: 0,
            max: 0,
            total: 0,
            first: None,
            last: 0,
        }
    }

    /// `segments` arrived at `now` (nanoseconds, never decreasing by more than a step).
    pub fn add(&mut self, now: Nanos, segments: u64) {
        let step = now / METER_STEP;
        if step > self.step {
            // Steps that slid out of the second are forgotten.
            let stale = (step - self.step).min(METER_BUCKETS as u64);
            for s in (step - stale + 1)..=step {
                let bucket = &mut self.buckets[(s % METER_BUCKETS as u64) as usize];
                self.sum -= *bucket;
                *bucket = 0;
            }
            self.step = step;
        }
        self.buckets[(step % METER_BUCKETS as u64) as usize] += segments;
        self.sum += segments;
        self.max = self.max.max(self.sum);
        self.total += segments;
        self.first.get_or_insert(now);
        self.last = self.last.max(now);
    }

    /// The share of a contract of `tps` segments a second the carrier was sent while it was
    /// being sent anything: segments over `tps` × the time from the first to the last (0 with
    /// less than two steps of traffic).
    pub fn contract_use(&self, tps: u32) -> f64 {
        let span = self.first.map_or(0, |first| self.last - first);
        if span < 2 * METER_STEP || tps == 0 {
            return 0.0;
        }
        self.total as f64 / (f64::from(tps) * span as f64 / 1e9)
    }

    /// The most segments within any one second so far.
    pub fn max(&self) -> u64 {
        self.max
    }
}

/// A simulated carrier in this process.
pub struct SimCarrier {
    id: String,
    model: Mutex<(SimModel, RateMeter)>,
    origin: Instant,
    /// Where receipts go: replaced when a new router attaches (after a crash, receipts owed
    /// to the old one go to it, as an SMSC keeps them for a client that binds again).
    sink: Arc<Mutex<Option<ReceiptSink>>>,
    inbound: Mutex<Option<InboundSink>>,
    stats: SimStats,
    observer: Option<AcceptObserver>,
    /// Wakes every receipt still waiting out its delay ([`SimCarrier::release_receipts`]).
    release: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for SimCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCarrier")
            .field("id", &self.id)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SimCarrier {
    /// A carrier `id` behaving as `behaviour`, its randomness fixed by `seed`. Its clock starts
    /// now (outage windows count from here).
    pub fn new(id: &str, behaviour: Behaviour, seed: u64) -> Self {
        SimCarrier {
            id: id.to_string(),
            model: Mutex::new((SimModel::new(behaviour, seed), RateMeter::new())),
            origin: Instant::now(),
            sink: Arc::new(Mutex::new(None)),
            inbound: Mutex::new(None),
            release: Arc::new(tokio::sync::Notify::new()),
            stats: SimStats::default(),
            observer: None,
        }
    }

    /// Sends every receipt still waiting out its delay now, all together (as a network that
    /// held them, phones off, does when they come back). Receipts of later submits wait out
    /// their own delays.
    pub fn release_receipts(&self) {
        self.release.notify_waiters();
    }

    /// A recipient replies: hands `inbound` to the router (waiting while its queue is full).
    /// `false` when no router listens.
    pub async fn inject(&self, inbound: Inbound) -> bool {
        let sink = self.inbound.lock().clone();
        match sink {
            Some(sink) => sink.send(inbound).await.is_ok(),
            None => false,
        }
    }

    /// Calls `observer` for every accepted submit.
    pub fn with_observer(mut self, observer: AcceptObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The most segments received within any one second so far (sliding, in 10 ms steps).
    pub fn max_rate_1s(&self) -> u64 {
        self.model.lock().1.max
    }

    /// Segments received over `tps` × the time from the first to the last
    /// ([`RateMeter::contract_use`]).
    pub fn contract_use(&self, tps: u32) -> f64 {
        self.model.lock().1.contract_use(tps)
    }

    /// What it saw so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    fn now(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64
    }
}

impl Carrier for SimCarrier {
    fn id(&self) -> &str {
        &self.id
    }

    async fn submit(&self, request: SubmitRequest) -> Result<Accepted, SubmitError> {
        let parts = request.message.segments();
        let now = self.now();
        let decision = {
            let mut model = self.model.lock();
            model.1.add(now, u64::from(parts));
            model
                .0
                .decide_to(now, parts, request.receipt, request.message.to().as_str())
        };
        self.stats.submits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .segments
            .fetch_add(u64::from(parts), Ordering::Relaxed);
        if matches!(decision.reply, Reply::Accept(_)) {
            // Accepted when decided: a router that stops waiting for the answer does not
            // undo it (that is how duplicates happen).
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            if let Some(observer) = &self.observer {
                observer(request.message.id(), decision.respond_after);
            }
        }
        if decision.respond_after > 0 {
            tokio::time::sleep(Duration::from_nanos(decision.respond_after)).await;
        }
        match decision.reply {
            Reply::Hang => {
                self.stats.hung.fetch_add(1, Ordering::Relaxed);
                std::future::pending().await
            }
            Reply::Reject(status) => {
                self.stats.count_refusal(status);
                Err(SubmitError::Rejected { status })
            }
            Reply::Accept(ids) => {
                if self.sink.lock().is_some() {
                    for (id, (delay, status)) in ids.iter().zip(decision.receipts) {
                        let receipt = Receipt {
                            message_id: id.clone(),
                            status,
                            error: 0,
                            possible_duplicate: false,
                        };
                        let (sink, release) = (self.sink.clone(), self.release.clone());
                        self.stats.receipts.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            let released = release.notified();
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_nanos(delay)) => {}
                                () = released => {}
                            }
                            deliver(&sink, receipt).await;
                        });
                    }
                }
                Ok(Accepted { message_ids: ids })
            }
        }
    }

    fn attach_receipts(&self, sink: ReceiptSink) {
        *self.sink.lock() = Some(sink);
    }

    fn attach_inbound(&self, sink: InboundSink) {
        *self.inbound.lock() = Some(sink);
    }
}

/// How long a receipt waits for a router to take it (one that went away, and another that
/// attaches meanwhile) before it is dropped.
const RECEIPT_PATIENCE: Duration = Duration::from_secs(30);

/// Hands a receipt to whichever router is attached when it is due and keeps it until that
/// router answers it taken, as an SMSC keeps a deliver_sm until its deliver_sm_resp: while none
/// takes it (the router is gone, or answered "not taken" as a crashed one does, and none has
/// attached again yet), tries again every 50 ms, up to [`RECEIPT_PATIENCE`] without a router.
async fn deliver(sink: &Mutex<Option<ReceiptSink>>, receipt: Receipt) {
    let mut started = tokio::time::Instant::now();
    loop {
        let current = sink.lock().clone();
        if let Some(current) = current {
            let (answer, answered) = tokio::sync::oneshot::channel();
            let ack = ReceiptAck::new(move |taken| {
                let _ = answer.send(taken);
            });
            if current.send((receipt.clone(), ack)).await.is_ok() {
                if answered.await == Ok(true) {
                    return;
                }
                // Taken by a router that went away before it was safe: offered again.
                started = tokio::time::Instant::now();
            }
        }
        if started.elapsed() >= RECEIPT_PATIENCE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use smsroute_delivery::ReceiptStatus;
    use smsroute_types::Message;

    use super::*;
    use crate::{Latency, Outage, OutageKind};

    const MS: u64 = 1_000_000;

    fn request(text: &str) -> SubmitRequest {
        let message = Message::builder("447700900123", "ACME", text)
            .build()
            .unwrap();
        SubmitRequest {
            message: Arc::new(message),
            attempt: 1,
            receipt: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_after_its_latency_and_sends_receipts_later() {
        let behaviour = Behaviour {
            latency: Latency::Fixed(50 * MS),
            receipt_delay: Latency::Fixed(200 * MS),
            ..Behaviour::default()
        };
        let carrier = SimCarrier::new("sim", behaviour, 1);
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        carrier.attach_receipts(tx);
        let started = Instant::now();
        let accepted = carrier.submit(request(&"a".repeat(200))).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(accepted.message_ids.len(), 2);
        let (first, _) = rx.recv().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(
            (first.status, &first.message_id),
            (ReceiptStatus::Delivered, &accepted.message_ids[0])
        );
        assert_eq!(
            rx.recv().await.unwrap().0.message_id,
            accepted.message_ids[1]
        );
        assert_eq!(carrier.stats().segments.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_receipt_not_taken_is_offered_again_until_taken() {
        let carrier = SimCarrier::new("sim", Behaviour::default(), 1);
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        carrier.attach_receipts(tx);
        let accepted = carrier.submit(request("hi")).await.unwrap();
        // A router that took it and went away before it was safe (a crash): not taken.
        let (first, ack) = rx.recv().await.unwrap();
        drop(ack);
        let (again, ack) = rx.recv().await.unwrap();
        assert_eq!(again, first);
        assert_eq!(again.message_id, accepted.message_ids[0]);
        ack.taken();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(rx.try_recv().is_err(), "taken: never offered again");
    }

    #[tokio::test(start_paused = true)]
    async fn held_receipts_come_together_when_released() {
        let behaviour = Behaviour {
            receipt_delay: Latency::Fixed(3_600_000 * MS),
            ..Behaviour::default()
        };
        let carrier = SimCarrier::new("sim", behaviour, 1);
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        carrier.attach_receipts(tx);
        for _ in 0..3 {
            carrier.submit(request("hi")).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(rx.try_recv().is_err(), "held for an hour");
        let released = Instant::now();
        carrier.release_receipts();
        for _ in 0..3 {
            rx.recv().await.unwrap();
        }
        assert_eq!(released.elapsed(), Duration::ZERO, "all at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_never_answers() {
        let behaviour = Behaviour {
            outages: vec![Outage {
                start: 0,
                duration: 10_000 * MS,
                kind: OutageKind::Hang,
            }],
            ..Behaviour::default()
        };
        let carrier = SimCarrier::new("sim", behaviour, 1);
        let answer =
            tokio::time::timeout(Duration::from_secs(5), carrier.submit(request("hi"))).await;
        assert!(answer.is_err(), "still pending after 5 s");
        assert_eq!(carrier.stats().hung.load(Ordering::Relaxed), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            carrier.submit(request("hi")).await.is_ok(),
            "the outage is over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn counts_by_class_meters_the_peak_second_and_reports_accepts() {
        use crate::ErrorMix;
        let behaviour = Behaviour {
            errors: ErrorMix {
                permanent: 0.25,
                temporary: 0.25,
                ..ErrorMix::default()
            },
            ..Behaviour::default()
        };
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let carrier = SimCarrier::new("sim", behaviour, 9).with_observer(Arc::new(move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
        }));
        // 50 two-part submits within half a second, then 10 spread over 2 s, a second later.
        for _ in 0..50 {
            let _ = carrier.submit(request(&"a".repeat(200))).await;
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(200)).await;
            let _ = carrier.submit(request(&"a".repeat(200))).await;
        }
        let s = carrier.stats();
        let (accepted, temporary, permanent) = (
            s.accepted.load(Ordering::Relaxed),
            s.temporary_errors.load(Ordering::Relaxed),
            s.permanent_errors.load(Ordering::Relaxed),
        );
        assert_eq!(accepted + temporary + permanent, 60);
        assert!(temporary > 5 && permanent > 5, "{temporary} {permanent}");
        assert_eq!(seen.load(Ordering::Relaxed), accepted);
        assert_eq!(
            carrier.max_rate_1s(),
            100,
            "50 submits of 2 segments in one second"
        );
    }
}
