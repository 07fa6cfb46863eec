//! The behaviour model of a simulated carrier: given a submit at `now`, what it answers, when,
//! and which receipts follow. Pure and seeded, so the in-process carrier and the SMPP
//! simulator behave alike and every run replays.

use smallvec::SmallVec;
use smsroute_delivery::ReceiptStatus;
use smsroute_throttle::{Admission, Gcra, Quota};
use smsroute_types::SplitMix64;

pub use smsroute_types::Nanos;

/// SMPP statuses the simulator answers with.
pub mod status {
    /// ESME_RSYSERR: a system error (the router fails over).
    pub const SYSTEM_ERROR: u32 = 0x08;
    /// ESME_RINVDSTADR: invalid destination (permanent).
    pub const INVALID_DESTINATION: u32 = 0x0B;
    /// ESME_RTHROTTLED.
    pub const THROTTLED: u32 = 0x58;
    /// ESME_RX_T_APPN: temporary application error (the router retries).
    pub const TEMPORARY: u32 = 0x64;
}

/// How long answers take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Nanos),
    /// Uniform in `[min, max]`.
    Uniform {
        /// Shortest.
        min: Nanos,
        /// Longest.
        max: Nanos,
    },
    /// Log-normal with this median and 99th percentile.
    LogNormal {
        /// Median.
        p50: Nanos,
        /// 99th percentile (≥ p50).
        p99: Nanos,
    },
}

/// z of the standard normal's 99th percentile.
const Z99: f64 = 2.326_347_874;

impl Latency {
    /// Draws one latency.
    pub fn sample(&self, rng: &mut SplitMix64) -> Nanos {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => min + rng.below(max.saturating_sub(min) + 1),
            Latency::LogNormal { p50, p99 } => {
                let mu = (p50.max(1) as f64).ln();
                let sigma = ((p99.max(p50).max(1) as f64) / p50.max(1) as f64).ln() / Z99;
                (mu + sigma * standard_normal(rng)).exp() as Nanos
            }
        }
    }
}

/// Box–Muller; the first uniform is in (0, 1], so its logarithm is finite.
fn standard_normal(rng: &mut SplitMix64) -> f64 {
    let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Shares of submits answered with an error (the rest are accepted).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorMix {
    /// ESME_RSYSERR: the router fails over.
    pub system: f64,
    /// ESME_RX_T_APPN: the router retries the same carrier.
    pub temporary: f64,
    /// ESME_RINVDSTADR: the router gives up.
    pub permanent: f64,
    /// ESME_RTHROTTLED, besides the carrier's own rate limit.
    pub throttled: f64,
}

/// What receipts say, as shares (normalised; all zero means all delivered).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReceiptMix {
    /// DELIVRD.
    pub delivered: f64,
    /// UNDELIV.
    pub undeliverable: f64,
    /// EXPIRED.
    pub expired: f64,
}

impl Default for ReceiptMix {
    fn default() -> Self {
        ReceiptMix {
            delivered: 1.0,
            undeliverable: 0.0,
            expired: 0.0,
        }
    }
}

/// How the carrier misbehaves during a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutageKind {
    /// Answers every submit with ESME_RSYSERR.
    Refuse,
    /// Never answers.
    Hang,
    /// Answers this much later than usual (a latency spike).
    Slow(Nanos),
    /// Refuses this share of submits with this status (an error burst).
    Errors {
        /// Share of submits, 0..=1.
        share: f64,
        /// The SMPP status answered.
        status: u32,
    },
    /// Numbers under a prefix (its first `len` digits, as a number) are acked as usual, but
    /// only `delivered` of their receipts say delivered, the rest undeliverable: a grey route.
    Grey {
        /// The prefix's digits as a number.
        prefix: u64,
        /// Its digit count.
        len: u8,
        /// Share of receipts that say delivered, 0..=1.
        delivered: f64,
    },
}

/// A window of trouble.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outage {
    /// Start, on the simulation clock.
    pub start: Nanos,
    /// Length.
    pub duration: Nanos,
    /// What happens meanwhile.
    pub kind: OutageKind,
}

/// Everything a simulated carrier does.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    /// Submit response latency.
    pub latency: Latency,
    /// Error shares.
    pub errors: ErrorMix,
    /// Share of submits never answered.
    pub hang: f64,
    /// The carrier's own limit in segments per second, with a burst of a tenth of a second
    /// (at least 10): beyond it, it answers ESME_RTHROTTLED.
    pub tps_limit: Option<f64>,
    /// Windows of trouble.
    pub outages: Vec<Outage>,
    /// Receipt outcomes.
    pub receipts: ReceiptMix,
    /// Delay from accepting to the receipt.
    pub receipt_delay: Latency,
}

impl Default for Behaviour {
    /// A perfect carrier: answers at once, accepts everything, delivers everything at once.
    fn default() -> Self {
        Behaviour {
            latency: Latency::Fixed(0),
            errors: ErrorMix::default(),
            hang: 0.0,
            tps_limit: None,
            outages: Vec::new(),
            receipts: ReceiptMix::default(),
            receipt_delay: Latency::Fixed(0),
        }
    }
}

/// What the carrier answers to one submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Every part accepted, with these ids.
    Accept(SmallVec<[Box<str>; 1]>),
    /// Refused with this SMPP status.
    Reject(u32),
    /// No answer, ever.
    Hang,
}

/// The model's decision for one submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Wait this long before answering.
    pub respond_after: Nanos,
    /// The answer.
    pub reply: Reply,
    /// For an accepted submit with receipts asked for: each part's receipt and its delay after
    /// the answer.
    pub receipts: SmallVec<[(Nanos, ReceiptStatus); 1]>,
}

/// A seeded simulated carrier.
#[derive(Debug)]
pub struct SimModel {
    behaviour: Behaviour,
    rng: SplitMix64,
    limiter: Option<Gcra>,
    next_id: u64,
}

impl SimModel {
    /// A carrier with `behaviour`, its randomness fixed by `seed`.
    ///
    /// # Panics
    /// If `tps_limit` is not a valid rate (below 0.25 or not finite).
    pub fn new(behaviour: Behaviour, seed: u64) -> Self {
        let limiter = behaviour.tps_limit.map(|tps| {
            let burst = ((tps / 10.0) as u32).max(10);
            Gcra::new(Quota::per_second(tps, burst).expect("a valid simulated tps limit"))
        });
        SimModel {
            behaviour,
            rng: SplitMix64::new(seed),
            limiter,
            next_id: 1,
        }
    }

    /// The behaviour.
    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    /// Decides how a submit of `parts` parts at `now` goes.
    pub fn decide(&mut self, now: Nanos, parts: u32, receipt: bool) -> Decision {
        self.decide_to(now, parts, receipt, "")
    }

    /// [`SimModel::decide`] for a submit to `to` (digits), which grey routes read.
    pub fn decide_to(&mut self, now: Nanos, parts: u32, receipt: bool, to: &str) -> Decision {
        let mut latency = self.behaviour.latency.sample(&mut self.rng);
        let mut refuse = None;
        let mut grey = None;
        for outage in &self.behaviour.outages {
            if now < outage.start || now - outage.start >= outage.duration {
                continue;
            }
            match outage.kind {
                OutageKind::Hang => refuse = Some(Reply::Hang),
                OutageKind::Refuse => refuse = refuse.or(Some(Reply::Reject(status::SYSTEM_ERROR))),
                OutageKind::Slow(extra) => latency = latency.saturating_add(extra),
                OutageKind::Errors { share, status } => {
                    if self.rng.next_f64() < share {
                        refuse = refuse.or(Some(Reply::Reject(status)));
                    }
                }
                OutageKind::Grey {
                    prefix,
                    len,
                    delivered,
                } => {
                    let head = to
                        .get(..usize::from(len))
                        .and_then(|h| h.parse::<u64>().ok());
                    if head == Some(prefix) {
                        grey = Some(delivered);
                    }
                }
            }
        }
        let answer = |reply| Decision {
            respond_after: latency,
            reply,
            receipts: SmallVec::new(),
        };
        if let Some(reply) = refuse {
            return answer(reply);
        }
        if let Some(limiter) = &self.limiter
            && limiter.try_admit(parts, now) != Admission::Admitted
        {
            return answer(Reply::Reject(status::THROTTLED));
        }
        let e = self.behaviour.errors;
        let draw = self.rng.next_f64();
        let mut edge = self.behaviour.hang;
        if draw < edge {
            return answer(Reply::Hang);
        }
        for (share, code) in [
            (e.system, status::SYSTEM_ERROR),
            (e.temporary, status::TEMPORARY),
            (e.permanent, status::INVALID_DESTINATION),
            (e.throttled, status::THROTTLED),
        ] {
            edge += share;
            if draw < edge {
                return answer(Reply::Reject(code));
            }
        }
        let ids: SmallVec<[Box<str>; 1]> = (0..parts)
            .map(|_| {
                self.next_id += 1;
                format!("{:x}", self.next_id - 1).into()
            })
            .collect();
        let mut decision = answer(Reply::Accept(ids));
        if receipt {
            let outcome = match grey {
                Some(share) if self.rng.next_f64() >= share => ReceiptStatus::Undeliverable,
                Some(_) => ReceiptStatus::Delivered,
                None => self.receipt_outcome(),
            };
            decision.receipts = (0..parts)
                .map(|_| (self.behaviour.receipt_delay.sample(&mut self.rng), outcome))
                .collect();
        }
        decision
    }

    fn receipt_outcome(&mut self) -> ReceiptStatus {
        let m = self.behaviour.receipts;
        let total = m.delivered + m.undeliverable + m.expired;
        if total <= 0.0 {
            return ReceiptStatus::Delivered;
        }
        let draw = self.rng.next_f64() * total;
        if draw < m.delivered {
            ReceiptStatus::Delivered
        } else if draw < m.delivered + m.undeliverable {
            ReceiptStatus::Undeliverable
        } else {
            ReceiptStatus::Expired
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn same_seed_same_story() {
        let behaviour = Behaviour {
            latency: Latency::LogNormal {
                p50: 20 * MS,
                p99: 200 * MS,
            },
            errors: ErrorMix {
                system: 0.1,
                temporary: 0.1,
                permanent: 0.05,
                throttled: 0.05,
            },
            hang: 0.02,
            receipts: ReceiptMix {
                delivered: 0.9,
                undeliverable: 0.05,
                expired: 0.05,
            },
            receipt_delay: Latency::Uniform {
                min: MS,
                max: 100 * MS,
            },
            ..Behaviour::default()
        };
        let (mut a, mut b) = (
            SimModel::new(behaviour.clone(), 5),
            SimModel::new(behaviour, 5),
        );
        for i in 0..1_000 {
            assert_eq!(a.decide(i * MS, 2, true), b.decide(i * MS, 2, true));
        }
    }

    #[test]
    fn error_mix_shares_come_out_as_configured() {
        let behaviour = Behaviour {
            errors: ErrorMix {
                system: 0.1,
                temporary: 0.2,
                permanent: 0.05,
                throttled: 0.15,
            },
            hang: 0.1,
            ..Behaviour::default()
        };
        let mut m = SimModel::new(behaviour, 11);
        let n = 100_000;
        let mut counts = std::collections::HashMap::new();
        for i in 0..n {
            let key = match m.decide(i, 1, false).reply {
                Reply::Accept(_) => 0,
                Reply::Reject(code) => code,
                Reply::Hang => 1,
            };
            *counts.entry(key).or_insert(0u32) += 1;
        }
        let share = |k: u32| f64::from(counts.get(&k).copied().unwrap_or(0)) / n as f64;
        for (key, want) in [
            (0, 0.4),
            (1, 0.1),
            (0x08, 0.1),
            (0x64, 0.2),
            (0x0B, 0.05),
            (0x58, 0.15),
        ] {
            assert!(
                (share(key) - want).abs() < 0.01,
                "{key:#x}: {} vs {want}",
                share(key)
            );
        }
    }

    #[test]
    fn own_tps_limit_throttles_and_outages_refuse_or_hang() {
        let behaviour = Behaviour {
            tps_limit: Some(100.0),
            outages: vec![
                Outage {
                    start: 10_000 * MS,
                    duration: 1_000 * MS,
                    kind: OutageKind::Refuse,
                },
                Outage {
                    start: 20_000 * MS,
                    duration: 1_000 * MS,
                    kind: OutageKind::Hang,
                },
            ],
            ..Behaviour::default()
        };
        let mut m = SimModel::new(behaviour, 1);
        // 1000 submits in one instant: the burst (10) passes, the rest are throttled.
        let accepted = (0..1_000)
            .filter(|_| matches!(m.decide(0, 1, false).reply, Reply::Accept(_)))
            .count();
        assert_eq!(accepted, 10);
        assert_eq!(
            m.decide(10_500 * MS, 1, false).reply,
            Reply::Reject(status::SYSTEM_ERROR)
        );
        assert_eq!(m.decide(20_500 * MS, 1, false).reply, Reply::Hang);
        assert!(matches!(
            m.decide(30_000 * MS, 1, false).reply,
            Reply::Accept(_)
        ));
    }

    #[test]
    fn lognormal_hits_its_percentiles() {
        let mut rng = SplitMix64::new(3);
        let model = Latency::LogNormal {
            p50: 20 * MS,
            p99: 200 * MS,
        };
        let mut samples: Vec<Nanos> = (0..50_000).map(|_| model.sample(&mut rng)).collect();
        samples.sort_unstable();
        let p50 = samples[25_000] as f64 / MS as f64;
        let p99 = samples[49_500] as f64 / MS as f64;
        assert!((p50 - 20.0).abs() < 1.0, "p50 {p50}");
        assert!((p99 - 200.0).abs() < 20.0, "p99 {p99}");
    }

    #[test]
    fn receipts_follow_the_mix_for_every_part() {
        let behaviour = Behaviour {
            receipts: ReceiptMix {
                delivered: 0.0,
                undeliverable: 1.0,
                expired: 0.0,
            },
            receipt_delay: Latency::Fixed(5 * MS),
            ..Behaviour::default()
        };
        let d = SimModel::new(behaviour, 2).decide(0, 3, true);
        assert_eq!(d.receipts.len(), 3);
        assert!(
            d.receipts
                .iter()
                .all(|&r| r == (5 * MS, ReceiptStatus::Undeliverable))
        );
        let Reply::Accept(ids) = d.reply else {
            panic!("accepted")
        };
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn spikes_and_bursts_apply_only_inside_their_window() {
        let behaviour = Behaviour {
            latency: Latency::Fixed(10 * MS),
            outages: vec![
                Outage {
                    start: 100 * MS,
                    duration: 100 * MS,
                    kind: OutageKind::Slow(500 * MS),
                },
                Outage {
                    start: 150 * MS,
                    duration: 100 * MS,
                    kind: OutageKind::Errors {
                        share: 0.5,
                        status: status::THROTTLED,
                    },
                },
            ],
            ..Behaviour::default()
        };
        let mut m = SimModel::new(behaviour, 3);
        assert_eq!(m.decide(0, 1, false).respond_after, 10 * MS);
        assert_eq!(m.decide(120 * MS, 1, false).respond_after, 510 * MS);
        let throttled = (0..1000)
            .filter(|_| m.decide(220 * MS, 1, false).reply == Reply::Reject(status::THROTTLED))
            .count();
        assert!((400..600).contains(&throttled), "{throttled}");
        let d = m.decide(260 * MS, 1, false);
        assert_eq!(d.respond_after, 10 * MS);
        assert!(matches!(d.reply, Reply::Accept(_)));
    }
}
