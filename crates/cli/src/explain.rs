//! `smsroute explain CONFIG NUMBER [--text TEXT] [--json]`.

use std::path::Path;

use serde_json::{Value, json};
use smsroute_routing::{AllHealthy, DropReason, Explanation, RouteTable};
use smsroute_types::{E164, Encoding, segment};

use crate::check::load_config;

/// Explains the routing of `number`; offline, every carrier counts as healthy.
pub fn run(path: &Path, number: &str, text: &str, as_json: bool) -> Result<(), String> {
    let (config, table) = load_config(path)?;
    let number = E164::parse(number).map_err(|e| format!("invalid number {number:?}: {e}"))?;
    let seg = segment(text);
    if seg.segments > config.limits.max_segments {
        return Err(format!(
            "text needs {} segments, the configuration allows at most {} (max_segments)",
            seg.segments, config.limits.max_segments
        ));
    }
    let explanation = table.explain(&number, &AllHealthy);
    if as_json {
        println!(
            "{}",
            to_json(&table, &explanation, seg.segments, seg.encoding)
        );
    } else {
        print_text(&table, &explanation, seg.segments, seg.encoding);
    }
    Ok(())
}

fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Gsm7 => "gsm7",
        Encoding::Ucs2 => "ucs2",
    }
}

fn reason_text(reason: &DropReason) -> String {
    match reason {
        DropReason::Blocked { block_prefix } => format!("blocked by {block_prefix}"),
        DropReason::Ejected => "ejected".to_string(),
    }
}

/// The contract's JSON object, plus `encoding`, `ported_as`, `block_prefix` and `dropped`.
fn to_json(table: &RouteTable, e: &Explanation, segments: u32, encoding: Encoding) -> Value {
    let candidates: Vec<Value> = e
        .candidates
        .iter()
        .map(|c| {
            json!({
                "carrier": table.carrier_id(c.carrier),
                "prefix": c.prefix,
                "cost": c.cost.as_f64(),
                "tier": c.tier,
                "weight": c.weight,
                "health": c.health.state.as_str(),
            })
        })
        .collect();
    let dropped: Vec<Value> = e
        .dropped
        .iter()
        .map(|d| json!({"carrier": table.carrier_id(d.carrier), "prefix": d.prefix, "reason": reason_text(&d.reason)}))
        .collect();
    json!({
        "number": e.number.as_str(),
        "blocked": e.blocked,
        "segments": segments,
        "encoding": encoding_name(encoding),
        "ported_as": e.ported_as,
        "block_prefix": e.block_prefix,
        "candidates": candidates,
        "dropped": dropped,
    })
}

fn print_text(table: &RouteTable, e: &Explanation, segments: u32, encoding: Encoding) {
    let plural = if segments == 1 { "" } else { "s" };
    println!(
        "number {} ({segments} segment{plural}, {})",
        e.number,
        encoding_name(encoding)
    );
    if let Some(route_as) = &e.ported_as {
        println!("ported: routes as {route_as}");
    }
    if e.blocked {
        println!(
            "blocked by {}: no carrier is left",
            e.block_prefix.as_deref().unwrap_or("?")
        );
    } else if e.candidates.is_empty() {
        println!("no carrier serves this number");
    }
    for (rank, c) in e.candidates.iter().enumerate() {
        println!(
            "  {}. {:<16} prefix {:<15} cost {:<10} tier {:<3} weight {:<4} {}",
            rank + 1,
            table.carrier_id(c.carrier),
            c.prefix,
            c.cost.to_string(),
            c.tier,
            c.weight,
            c.health.state.as_str()
        );
    }
    if !e.dropped.is_empty() {
        println!("dropped:");
        for d in &e.dropped {
            println!(
                "  {:<16} prefix {:<15} {}",
                table.carrier_id(d.carrier),
                d.prefix,
                reason_text(&d.reason)
            );
        }
    }
}
