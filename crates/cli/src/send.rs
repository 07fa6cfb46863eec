//! `smsroute send CONFIG --to NUMBER [--text TEXT] [--from SENDER] [--count N] [--rate R]
//! [--wait S]`: real submits through the configured SMPP connections, one JSON line per event.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use smsroute_carrier::{Carrier, LinkState};
use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, Router, StatusEvent};
use smsroute_smpp::SmppCarrier;
use smsroute_types::Message;

use crate::check::load_config;

/// What `send` was asked to do.
pub struct SendArgs<'a> {
    pub config: &'a Path,
    pub to: &'a str,
    pub text: &'a str,
    pub from: &'a str,
    pub count: u64,
    pub rate: f64,
    pub wait: f64,
}

/// `Ok(true)` when every message was delivered.
pub fn run(args: SendArgs<'_>) -> Result<bool, String> {
    let (config, _) = load_config(args.config)?;
    // Check the message before connecting anywhere, against the router's limit too.
    let message = Message::builder(args.to, args.from, args.text)
        .build()
        .map_err(|e| format!("message: {e}"))?;
    let max = config.limits.max_segments;
    if message.segments() > max {
        let too_long = smsroute_types::InvalidMessage::TooManySegments {
            segments: message.segments(),
            max,
        };
        return Err(format!("message: {too_long}"));
    }
    let plan = Plan::check(&args)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(send(&config, args, plan))
}

/// The most messages one `send` submits (every one is outstanding until its terminal event).
pub const MAX_COUNT: u64 = 1_000_000;
/// The longest `--wait`, seconds (a week).
pub const MAX_WAIT_S: f64 = 7.0 * 86_400.0;

/// `--count`, `--rate` and `--wait` checked and turned into durations.
#[derive(Debug, PartialEq)]
struct Plan {
    interval: Duration,
    wait: Duration,
}

impl Plan {
    fn check(args: &SendArgs<'_>) -> Result<Plan, String> {
        if args.count == 0 || args.count > MAX_COUNT {
            return Err(format!(
                "--count {}: expected 1 to {MAX_COUNT} messages",
                args.count
            ));
        }
        // At least one message a day, so the pause between two stays a duration.
        if !(args.rate.is_finite() && args.rate >= 1.0 / 86_400.0) {
            return Err(format!(
                "--rate {}: expected a positive number of messages per second (at least one a day)",
                args.rate
            ));
        }
        if !(0.0..=MAX_WAIT_S).contains(&args.wait) {
            return Err(format!(
                "--wait {}: expected 0 to {MAX_WAIT_S} seconds",
                args.wait
            ));
        }
        Ok(Plan {
            interval: Duration::from_secs_f64(1.0 / args.rate),
            wait: Duration::from_secs_f64(args.wait),
        })
    }
}

fn event_line(router: &Router<SmppCarrier>, e: &StatusEvent) -> serde_json::Value {
    let mut line = event_fields(router, e);
    if !e.carrier_message_ids.is_empty() {
        let ids: Vec<&str> = e.carrier_message_ids.iter().map(|id| &**id).collect();
        line["carrier_message_ids"] = json!(ids);
    }
    line
}

fn event_fields(router: &Router<SmppCarrier>, e: &StatusEvent) -> serde_json::Value {
    let mut line = match e.event {
        Event::FailedOver { from, .. } => {
            let from = router.carrier_id(from).map(|s| s.to_string());
            json!({"id": e.id.0, "event": e.event.as_str(), "from": from, "to": e.carrier_name})
        }
        _ => json!({"id": e.id.0, "event": e.event.as_str(), "carrier": e.carrier_name}),
    };
    if let Event::Failed(reason) = e.event {
        line["reason"] = json!(format!("{reason:?}"));
    }
    line
}

/// Says on stderr why each carrier without a bound session has none.
fn report_unbound(carriers: &[std::sync::Arc<SmppCarrier>]) {
    for carrier in carriers {
        if let LinkState::Down { reason } = carrier.link() {
            eprintln!("carrier {}: not bound: {reason}", carrier.id());
        }
    }
}

async fn send(config: &Config, args: SendArgs<'_>, plan: Plan) -> Result<bool, String> {
    let options = EngineOptions::default()
        .max_outstanding(args.count as usize * 2)
        .request_receipts(true);
    let (router, mut events) = smsroute::start_smpp(config, options).map_err(|e| e.to_string())?;
    let carriers: Vec<_> = config
        .carriers
        .iter()
        .filter(|c| c.smpp.is_some())
        .filter_map(|c| router.carrier(router.carrier_slot(&c.id)?))
        .collect();
    if carriers.is_empty() {
        return Err(format!(
            "{}: no carrier has a [carriers.smpp] table to send through",
            args.config.display()
        ));
    }
    // Give the sessions a moment to bind; submits before that fail over or retry anyway.
    for _ in 0..50 {
        if carriers.iter().all(|c| c.bound() > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report_unbound(&carriers);
    let mut accepted = HashSet::new();
    // (terminal, delivered)
    let mut tally = (0usize, 0u64);
    let print = |e: &StatusEvent, tally: &mut (usize, u64)| {
        println!("{}", event_line(&router, e));
        if e.is_terminal() {
            tally.0 += 1;
            tally.1 += u64::from(e.event == Event::Delivered);
        }
    };
    // Open loop: message n is due at start + n × interval, so a rate above the timer's
    // resolution sends what is due in bursts rather than one message per tick.
    let interval = plan.interval;
    let start = tokio::time::Instant::now();
    for n in 0..args.count {
        let message = Message::builder(args.to, args.from, args.text)
            .build()
            .map_err(|e| format!("message: {e}"))?;
        match router.try_submit(message).map_err(|r| r.reason) {
            Ok(id) => {
                accepted.insert(id);
            }
            Err(e) => {
                println!(
                    "{}",
                    json!({"event": "rejected", "reason": e.reason(), "error": e.to_string()})
                );
            }
        }
        while let Some(e) = events.try_recv() {
            print(&e, &mut tally);
        }
        if n + 1 < args.count {
            // At most a million messages a day apart: far inside what an instant holds.
            let due = start + interval.mul_f64((n + 1) as f64);
            tokio::time::sleep_until(due).await;
        }
    }
    let deadline = tokio::time::Instant::now() + plan.wait;
    while tally.0 < accepted.len() {
        let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await else {
            break;
        };
        print(&e, &mut tally);
    }
    let delivered = tally.1;
    if delivered < args.count {
        report_unbound(&carriers);
    }
    // Stops at once (the wait is over) and unbinds every session.
    let report = router.shutdown(Duration::ZERO).await;
    for id in &report.unfinished {
        println!("{}", json!({"id": id.0, "event": "unfinished"}));
    }
    Ok(delivered == args.count && report.unfinished.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(count: u64, rate: f64, wait: f64) -> SendArgs<'static> {
        SendArgs {
            config: Path::new("c.toml"),
            to: "447700900123",
            text: "hi",
            from: "ACME",
            count,
            rate,
            wait,
        }
    }

    #[test]
    fn numbers_out_of_range_are_refused_by_name_never_a_panic() {
        for (a, flag) in [
            (args(1, 10.0, f64::INFINITY), "--wait"),
            (args(1, 10.0, 1e20), "--wait"),
            (args(1, 10.0, -1.0), "--wait"),
            (args(1, 10.0, f64::NAN), "--wait"),
            (args(1, 0.0, 1.0), "--rate"),
            (args(1, 1e-300, 1.0), "--rate"),
            (args(1, f64::INFINITY, 1.0), "--rate"),
            (args(0, 10.0, 1.0), "--count"),
            (args(u64::MAX, 10.0, 1.0), "--count"),
        ] {
            let error = Plan::check(&a).unwrap_err();
            assert!(error.starts_with(flag), "{error}");
        }
        let plan = Plan::check(&args(5, 1e12, 2.5)).unwrap();
        assert_eq!(plan.wait, Duration::from_millis(2500));
        assert!(plan.interval < Duration::from_micros(1));
    }
}
