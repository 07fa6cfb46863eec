//! What a carrier's answer means: its error class, its metric label, its health outcome.

use smsroute_delivery::{ErrorClass, Nanos, SubmitResult, classify_status};
use smsroute_health::Outcome;
use smsroute_metrics::SubmitResult as MetricResult;

/// The class of a submit's answer: `None` when every part was accepted.
fn answer_class(result: SubmitResult) -> Option<ErrorClass> {
    match result {
        SubmitResult::Accepted => None,
        SubmitResult::Rejected { status } => Some(classify_status(status)),
        SubmitResult::TimedOut | SubmitResult::ConnectionLost => Some(ErrorClass::Unknown),
        SubmitResult::NotSent => Some(ErrorClass::Failover),
    }
}

/// The `result` label of a submit's answer.
pub(super) fn metric_result(result: SubmitResult) -> MetricResult {
    if result == SubmitResult::NotSent {
        return MetricResult::Unavailable;
    }
    match answer_class(result) {
        None => MetricResult::Accepted,
        Some(ErrorClass::Throttled) => MetricResult::Throttled,
        Some(ErrorClass::Temporary) => MetricResult::Temporary,
        Some(ErrorClass::Failover) => MetricResult::Failover,
        Some(ErrorClass::Permanent) => MetricResult::Permanent,
        Some(ErrorClass::Unknown) => MetricResult::Unknown,
    }
}

/// What a submit's answer says about the carrier. An attempt never sent says nothing: the
/// carrier's link state is health's input for that.
pub(super) fn health_outcome(result: SubmitResult, latency: Nanos) -> Outcome {
    if result == SubmitResult::NotSent {
        return Outcome::Neutral;
    }
    match answer_class(result) {
        None => Outcome::Success { latency },
        Some(ErrorClass::Throttled) => Outcome::Throttled,
        // The message's fault, not the carrier's.
        Some(ErrorClass::Permanent) => Outcome::Neutral,
        Some(_) => Outcome::Failure,
    }
}
