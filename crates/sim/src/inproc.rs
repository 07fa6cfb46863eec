//! An in-process simulated carrier: the behaviour model behind the [`Carrier`] trait, on
//! tokio's clock (so tests can pause and advance it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use smsroute_carrier::{Accepted, Carrier, Receipt, ReceiptSink, SubmitError, SubmitRequest};
use tokio::time::Instant;

use crate::{Behaviour, Reply, SimModel};

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
    /// Submits refused with another status.
    pub refused: AtomicU64,
    /// Submits never answered.
    pub hung: AtomicU64,
    /// Receipts handed to the router.
    pub receipts: AtomicU64,
}

/// A simulated carrier in this process.
#[derive(Debug)]
pub struct SimCarrier {
    id: String,
    model: Mutex<SimModel>,
    origin: Instant,
    sink: Mutex<Option<ReceiptSink>>,
    stats: SimStats,
}

impl SimCarrier {
    /// A carrier `id` behaving as `behaviour`, its randomness fixed by `seed`. Its clock starts
    /// now (outage windows count from here).
    pub fn new(id: &str, behaviour: Behaviour, seed: u64) -> Self {
        SimCarrier {
            id: id.to_string(),
            model: Mutex::new(SimModel::new(behaviour, seed)),
            origin: Instant::now(),
            sink: Mutex::new(None),
            stats: SimStats::default(),
        }
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
        let decision = self.model.lock().decide(self.now(), parts, request.receipt);
        self.stats.submits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .segments
            .fetch_add(u64::from(parts), Ordering::Relaxed);
        if decision.respond_after > 0 {
            tokio::time::sleep(Duration::from_nanos(decision.respond_after)).await;
        }
        match decision.reply {
            Reply::Hang => {
                self.stats.hung.fetch_add(1, Ordering::Relaxed);
                std::future::pending().await
            }
            Reply::Reject(status) => {
                let counter = if status == crate::status::THROTTLED {
                    &self.stats.throttled
                } else {
                    &self.stats.refused
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(SubmitError::Rejected { status })
            }
            Reply::Accept(ids) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                if let Some(sink) = self.sink.lock().clone() {
                    for (id, (delay, status)) in ids.iter().zip(decision.receipts) {
                        let receipt = Receipt {
                            message_id: id.clone(),
                            status,
                            error: 0,
                        };
                        let sink = sink.clone();
                        self.stats.receipts.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_nanos(delay)).await;
                            // A router that went away has no use for the receipt.
                            let _ = sink.send(receipt).await;
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
            .build(10)
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
        let first = rx.recv().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(
            (first.status, &first.message_id),
            (ReceiptStatus::Delivered, &accepted.message_ids[0])
        );
        assert_eq!(rx.recv().await.unwrap().message_id, accepted.message_ids[1]);
        assert_eq!(carrier.stats().segments.load(Ordering::Relaxed), 2);
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
}
