//! A simulated carrier's behaviour as a scenario describes it: latency, errors, receipts.

use serde::Deserialize;
use smsroute_sim::{Behaviour, ErrorMix, Latency, ReceiptMix};

use super::BehaviourError;

const MS: u64 = 1_000_000;

/// A latency in milliseconds: `{ fixed = 5 }`, `{ min = 1, max = 10 }` or
/// `{ p50 = 20, p99 = 200 }`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    /// Always this long.
    pub fixed: Option<f64>,
    /// Uniform: shortest.
    pub min: Option<f64>,
    /// Uniform: longest.
    pub max: Option<f64>,
    /// Log-normal: median.
    pub p50: Option<f64>,
    /// Log-normal: 99th percentile.
    pub p99: Option<f64>,
}

impl LatencySpec {
    /// The latency model; `item` names the field in the error.
    fn latency(&self, item: &'static str) -> Result<Latency, BehaviourError> {
        let ns = |ms: f64| (ms * MS as f64) as u64;
        match *self {
            LatencySpec {
                fixed: Some(f),
                min: None,
                max: None,
                p50: None,
                p99: None,
            } if f >= 0.0 => Ok(Latency::Fixed(ns(f))),
            LatencySpec {
                fixed: None,
                min: Some(a),
                max: Some(b),
                p50: None,
                p99: None,
            } if 0.0 <= a && a <= b => Ok(Latency::Uniform {
                min: ns(a),
                max: ns(b),
            }),
            LatencySpec {
                fixed: None,
                min: None,
                max: None,
                p50: Some(a),
                p99: Some(b),
            } if 0.0 < a && a <= b => Ok(Latency::LogNormal {
                p50: ns(a),
                p99: ns(b),
            }),
            LatencySpec {
                fixed: None,
                min: None,
                max: None,
                p50: None,
                p99: None,
            } => Ok(Latency::Fixed(0)),
            _ => Err(BehaviourError::Latency(item)),
        }
    }
}

/// Shares of submits answered with an error.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorShares {
    /// ESME_RSYSERR (the router fails over).
    #[serde(default)]
    pub system: f64,
    /// ESME_RX_T_APPN (the router retries).
    #[serde(default)]
    pub temporary: f64,
    /// ESME_RINVDSTADR (the message fails).
    #[serde(default)]
    pub permanent: f64,
    /// ESME_RTHROTTLED.
    #[serde(default)]
    pub throttled: f64,
}

/// Shares of receipt outcomes.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptShares {
    /// DELIVRD.
    #[serde(default)]
    pub delivered: f64,
    /// UNDELIV.
    #[serde(default)]
    pub undeliverable: f64,
    /// EXPIRED.
    #[serde(default)]
    pub expired: f64,
}

/// How one simulated carrier behaves.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierBehaviour {
    /// Submit response latency.
    #[serde(default)]
    pub latency_ms: LatencySpec,
    /// Error shares.
    #[serde(default)]
    pub errors: ErrorShares,
    /// Share of submits never answered.
    #[serde(default)]
    pub hang: f64,
    /// The carrier's own limit, segments per second (it answers ESME_RTHROTTLED beyond).
    pub tps_limit: Option<f64>,
    /// Receipt outcomes (default: all delivered).
    pub receipts: Option<ReceiptShares>,
    /// Delay from accepting to the receipt.
    #[serde(default)]
    pub receipt_delay_ms: LatencySpec,
    /// `smpp` mode: the simulated SMSC drops each session after this many submits (the
    /// last one unanswered), so the ESME must reconnect.
    pub smpp_disconnect_after: Option<u64>,
}

impl CarrierBehaviour {
    /// The behaviour model this describes, checked.
    pub fn behaviour(&self) -> Result<Behaviour, BehaviourError> {
        let shares = [
            self.errors.system,
            self.errors.temporary,
            self.errors.permanent,
            self.errors.throttled,
            self.hang,
        ];
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 {
            return Err(BehaviourError::Shares);
        }
        if let Some(limit) = self.tps_limit
            && !(limit >= 1.0 && limit.is_finite())
        {
            return Err(BehaviourError::TpsLimit(limit));
        }
        let receipts = match self.receipts {
            Some(r) => {
                if [r.delivered, r.undeliverable, r.expired]
                    .iter()
                    .any(|s| *s < 0.0)
                {
                    return Err(BehaviourError::ReceiptShares);
                }
                ReceiptMix {
                    delivered: r.delivered,
                    undeliverable: r.undeliverable,
                    expired: r.expired,
                }
            }
            None => ReceiptMix::default(),
        };
        Ok(Behaviour {
            latency: self.latency_ms.latency("latency_ms")?,
            errors: ErrorMix {
                system: self.errors.system,
                temporary: self.errors.temporary,
                permanent: self.errors.permanent,
                throttled: self.errors.throttled,
            },
            hang: self.hang,
            tps_limit: self.tps_limit,
            outages: Vec::new(),
            receipts,
            receipt_delay: self.receipt_delay_ms.latency("receipt_delay_ms")?,
        })
    }
}
