//! `smsroute send CONFIG --to NUMBER [--text TEXT] [--from SENDER] [--count N] [--rate R]
//! [--wait S]`: real submits through the configured SMPP connections, one JSON line per event.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use smsroute_delivery::{Event, RetryPolicy};
use smsroute_engine::{EngineOptions, Router, StatusEvent};
use smsroute_routing::Config;
use smsroute_smpp::{EsmeConfig, SmppCarrier};
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
    let max = config.limits.max_segments;
    // Check the message before connecting anywhere.
    Message::builder(args.to, args.from, args.text)
        .build(max)
        .map_err(|e| format!("message: {e}"))?;
    if args.rate.is_nan() || args.rate <= 0.0 || args.wait.is_nan() || args.wait < 0.0 {
        return Err("--rate must be positive and --wait at least 0".into());
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(send(&config, args))
}

fn event_line(router: &Router<SmppCarrier>, e: &StatusEvent) -> serde_json::Value {
    let name = |c| router.carrier_id(c).map(|s| s.to_string());
    let (event, carrier) = match e.event {
        Event::Accepted => ("accepted", None),
        Event::Submitted { carrier, .. } => ("submitted", Some(carrier)),
        Event::Retrying { carrier, .. } => ("retrying", Some(carrier)),
        Event::FailedOver { from, to } => {
            return json!({"id": e.id.0, "event": "failed_over", "from": name(from), "to": name(to)});
        }
        Event::Delivered => ("delivered", e.carrier),
        Event::Sent => ("sent", e.carrier),
        Event::Failed(reason) => {
            return json!({"id": e.id.0, "event": "failed", "carrier": e.carrier.and_then(name),
                          "reason": format!("{reason:?}")});
        }
        Event::Expired => ("expired", e.carrier),
    };
    json!({"id": e.id.0, "event": event, "carrier": carrier.and_then(name)})
}

async fn send(config: &Config, args: SendArgs<'_>) -> Result<bool, String> {
    let policy = RetryPolicy::from(&config.retry);
    let options = EngineOptions {
        max_outstanding: (args.count as usize).max(1) * 2,
        request_receipts: true,
        ..EngineOptions::default()
    };
    let (router, mut events) = Router::start(config, options, move |c| match &c.smpp {
        Some(smpp) => SmppCarrier::connect(
            &c.id,
            EsmeConfig::from_config(smpp, c.window, Duration::from_nanos(policy.submit_timeout)),
        ),
        None => SmppCarrier::unconfigured(&c.id),
    })
    .map_err(|e| e.to_string())?;
    let carriers: Vec<_> = config
        .carriers
        .iter()
        .filter(|c| c.smpp.is_some())
        .filter_map(|c| router.carrier(router.carrier_index(&c.id)?))
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
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    for n in 0..args.count {
        let message = Message::builder(args.to, args.from, args.text)
            .build(config.limits.max_segments)
            .map_err(|e| format!("message: {e}"))?;
        match router.submit(message) {
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
            tokio::time::sleep(interval).await;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.wait);
    while tally.0 < accepted.len() {
        let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await else {
            break;
        };
        print(&e, &mut tally);
    }
    let delivered = tally.1;
    for carrier in &carriers {
        carrier.close(Duration::from_secs(1)).await;
    }
    let report = router.shutdown(Duration::ZERO).await;
    for id in &report.unfinished {
        println!("{}", json!({"id": id.0, "event": "unfinished"}));
    }
    Ok(delivered == args.count && report.unfinished.is_empty())
}
