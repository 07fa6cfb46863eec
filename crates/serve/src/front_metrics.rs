//! The fronts' own metrics, with their handles made once: submits by front and answer, bound
//! SMPP sessions, deliver_sm by kind and the client's answer (`docs/operations.md`).

use metrics::{Counter, Gauge, counter, gauge};
use smsroute_metrics::names::{FRONT_DELIVERIES, FRONT_SESSIONS, FRONT_SUBMITS};

/// How a submit was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// Durable, the id given.
    Accepted,
    /// Refused for the message or the client (invalid, no route, policy, rate).
    Refused,
    /// The hub could not take it now (overloaded, shutting down, not durable in time).
    Unavailable,
}

/// Counters per (front, answer).
struct Submits([Counter; 3]);

impl Submits {
    fn new(front: &'static str) -> Self {
        let c =
            |answer: &'static str| counter!(FRONT_SUBMITS, "front" => front, "answer" => answer);
        Submits([c("accepted"), c("refused"), c("unavailable")])
    }

    fn count(&self, answer: Answered, n: u64) {
        self.0[answer as usize].increment(n);
    }
}

/// The handles.
pub(crate) struct FrontMetrics {
    smpp: Submits,
    http: Submits,
    /// Bound SMPP sessions.
    pub sessions: Gauge,
    /// Receipts and replies: answered OK, answered with an error.
    receipts: [Counter; 2],
    replies: [Counter; 2],
}

impl Default for FrontMetrics {
    fn default() -> Self {
        let d = |kind: &'static str, answer: &'static str| counter!(FRONT_DELIVERIES, "kind" => kind, "answer" => answer);
        FrontMetrics {
            smpp: Submits::new("smpp"),
            http: Submits::new("http"),
            sessions: gauge!(FRONT_SESSIONS),
            receipts: [d("receipt", "answered"), d("receipt", "refused")],
            replies: [d("reply", "answered"), d("reply", "refused")],
        }
    }
}

impl FrontMetrics {
    /// `n` SMPP submits (the parts of one message) answered `answer`.
    pub fn smpp(&self, answer: Answered, n: u64) {
        self.smpp.count(answer, n);
    }

    /// An HTTP message answered `answer`.
    pub fn http(&self, answer: Answered) {
        self.http.count(answer, 1);
    }

    /// A deliver_sm answered by the client: a receipt or a reply, OK or not.
    pub fn delivery(&self, receipt: bool, ok: bool) {
        let kind = if receipt {
            &self.receipts
        } else {
            &self.replies
        };
        kind[usize::from(!ok)].increment(1);
    }
}
