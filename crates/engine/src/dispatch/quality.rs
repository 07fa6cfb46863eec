//! Delivery quality in the dispatcher: each message's final receipt is a sample for its
//! carrier and network; the tick publishes the penalties (`crate::quality`).

use smsroute_delivery::{AttemptOutcome, FailReason};

use super::*;
use crate::quality::{MAX_PUBLISHED, QualityMap};

impl<C: Carrier> Dispatcher<C> {
    /// A message ended with `event`: when a receipt decided it, a quality sample for the
    /// carrier that accepted it (delivered, after how long, or not).
    pub(super) fn quality_sample(&mut self, entry: &Entry, event: Event, now: Nanos) {
        if !self.shared.options.request_receipts {
            return;
        }
        let Some(last) = entry.delivery.history().last() else {
            return;
        };
        if last.outcome != AttemptOutcome::Accepted {
            return;
        }
        let delivered = match event {
            Event::Delivered => Some(now.saturating_sub(last.at)),
            Event::Failed(FailReason::Undeliverable | FailReason::Rejected) | Event::Expired => {
                None
            }
            // Sent (no receipt in time) says nothing about the network.
            _ => return,
        };
        self.quality
            .record(last.carrier, entry.message.to(), delivered, now);
    }

    /// Publishes the (carrier, network) pairs with a penalty for routing, sets their gauges
    /// and logs every pair that gains or loses one.
    pub(super) fn publish_quality(&mut self, now: Nanos) {
        let degraded = self.quality.degraded(now);
        if degraded.is_empty() && !self.shared.quality_any.load(Ordering::Relaxed) {
            return;
        }
        let digits = self.shared.snapshot.load().quality.digits;
        let mut map = QualityMap {
            digits,
            penalties: Default::default(),
        };
        for &((carrier, network), penalty, share) in &degraded {
            map.penalties.insert((carrier, network), penalty);
            let known = self.quality_gauges.len();
            let name = &*self.slots[carrier.get()].id;
            let gauge = match self.quality_gauges.entry((carrier, network)) {
                std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
                std::collections::hash_map::Entry::Vacant(e) if known < MAX_PUBLISHED => {
                    Some(e.insert((smsroute_metrics::quality_penalty(name, network), false)))
                }
                std::collections::hash_map::Entry::Vacant(_) => None,
            };
            if let Some((gauge, penalised)) = gauge {
                gauge.set(f64::from(penalty));
                if !*penalised {
                    *penalised = true;
                    tracing::warn!(
                        carrier = name,
                        network,
                        share,
                        penalty,
                        "delivery quality: carrier penalised towards network"
                    );
                }
            }
        }
        for (&(carrier, network), (gauge, penalised)) in &mut self.quality_gauges {
            if *penalised && !map.penalties.contains_key(&(carrier, network)) {
                *penalised = false;
                gauge.set(1.0);
                let name = &*self.slots[carrier.get()].id;
                tracing::info!(carrier = name, network, "delivery quality: penalty lifted");
            }
        }
        self.shared
            .quality_any
            .store(!map.penalties.is_empty(), Ordering::Relaxed);
        self.shared.quality.store(Arc::new(map));
    }
}
