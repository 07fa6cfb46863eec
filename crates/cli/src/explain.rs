//! `smsroute explain CONFIG NUMBER [--text TEXT] [--json] [--from SENDER] [--class CLASS]
//! [--max-price PRICE] [--smart-encoding] [--at TIME]`.

use std::path::Path;

use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

use smsroute_policy::{Refusal, Rules, Suppression};
use smsroute_routing::{AllHealthy, DropReason, Explanation, RouteDeck, RouteTable};
use smsroute_types::{E164, Encoding, Money, segment, smart_gsm7};

use crate::check::load_config;

/// What the policy stage would do with a message (offline: no cap usage is known).
struct PolicyView {
    sender: Option<String>,
    opted_out: Option<bool>,
    class: Option<String>,
    quiet: Option<Result<Option<SystemTime>, Refusal>>,
    cap: Option<(u32, u32)>,
    /// The class's price ceiling.
    max_price: Option<Money>,
    /// The class asks for smart encoding.
    smart_encoding: bool,
}

fn policy_view(
    config: &smsroute_config::Config,
    number: &E164,
    from: Option<&str>,
    class: Option<&str>,
    at_ms: i64,
) -> Result<PolicyView, String> {
    let at = if at_ms >= 0 {
        UNIX_EPOCH + std::time::Duration::from_millis(at_ms as u64)
    } else {
        UNIX_EPOCH
    };
    let opted_out = match (from, &config.policy.suppression_file) {
        (Some(sender), Some(file)) => {
            let list = Suppression::read(Path::new(file)).map_err(|e| format!("{file}: {e}"))?;
            Some(list.is_suppressed(number, sender))
        }
        (Some(_), None) => Some(false),
        (None, _) => None,
    };
    let rules = Rules::new(&config.policy);
    let index = match class {
        Some(name) => Some(rules.class_index(name).ok_or_else(|| {
            let known: Vec<&str> = config
                .policy
                .classes
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            format!("unknown class {name:?} (configured: {})", known.join(", "))
        })?),
        None => None,
    };
    Ok(PolicyView {
        sender: from.map(str::to_string),
        opted_out,
        class: class.map(str::to_string),
        quiet: index.map(|i| rules.quiet_hours(i, number, at)),
        cap: index.and_then(|i| rules.cap(i)),
        max_price: index.and_then(|i| rules.max_price(i)),
        smart_encoding: index.is_some_and(|i| rules.smart_encoding(i)),
    })
}

fn policy_json(p: &PolicyView) -> Value {
    let quiet = match &p.quiet {
        None | Some(Ok(None)) => Value::Null,
        Some(Ok(Some(until))) => json!({
            "action": "defer",
            "until_unix_s": until.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        }),
        Some(Err(_)) => json!({"action": "refuse"}),
    };
    json!({
        "sender": p.sender,
        "opted_out": p.opted_out,
        "class": p.class,
        "quiet_hours": quiet,
        "frequency_cap": p.cap.map(|(max, per_s)| json!({"max": max, "per_s": per_s})),
    })
}

fn print_policy(p: &PolicyView) {
    if let (Some(sender), Some(opted_out)) = (&p.sender, p.opted_out) {
        if opted_out {
            println!("policy: refused: the recipient opted out of {sender}");
        } else {
            println!("policy: the recipient has not opted out of {sender}");
        }
    }
    if let Some(class) = &p.class {
        match &p.quiet {
            Some(Err(_)) => println!("class {class}: refused now: quiet hours at the destination"),
            Some(Ok(Some(until))) => {
                let wait = until
                    .duration_since(SystemTime::now())
                    .map_or(0, |d| d.as_secs());
                println!(
                    "class {class}: quiet hours now: deferred {} min, to the window's end",
                    wait.div_ceil(60)
                );
            }
            _ => println!("class {class}: no quiet hours apply now"),
        }
        if let Some((max, per_s)) = p.cap {
            println!("class {class}: at most {max} per recipient per {per_s} s");
        }
    }
}

/// What `smsroute explain` was asked.
pub struct Request<'a> {
    /// The destination, as written.
    pub number: &'a str,
    /// The message text, for the segment count.
    pub text: &'a str,
    /// One JSON object instead of text.
    pub json: bool,
    /// The sender, for the opt-out check.
    pub from: Option<&'a str>,
    /// The message class.
    pub class: Option<&'a str>,
    /// The message's own price ceiling (its `max_price` tag), as written.
    pub max_price: Option<&'a str>,
    /// The message asks for smart encoding (its `smart_encoding` tag).
    pub smart_encoding: bool,
    /// The instant to route at (RFC 3339), for dated rate decks; now when absent.
    pub at: Option<&'a str>,
}

/// Explains the routing of `number`; offline, every carrier counts as healthy. With a sender
/// and a class, also what the policy stage would do; with a price ceiling (the message's or
/// its class's), which carriers it drops.
pub fn run(path: &Path, request: &Request<'_>) -> Result<(), String> {
    let (config, mut table) = load_config(path)?;
    // The instant routing, buckets and quiet hours are explained for.
    let mut at_ms = smsroute_routing::now_ms();
    if let Some(at) = request.at {
        at_ms = smsroute_config::parse_instant(at).ok_or_else(|| {
            format!("--at {at:?}: expected an RFC 3339 instant such as \"2027-01-01T00:00:00Z\"")
        })?;
        table = RouteDeck::compile_around(&config, at_ms)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .into_table_at(at_ms);
    }
    let number = request.number;
    let number = E164::parse(number).map_err(|e| format!("invalid number {number:?}: {e}"))?;
    let (from, class) = (request.from, request.class);
    let policy = policy_view(&config, &number, from, class, at_ms)?;
    // Smart encoding as the router applies it: before the segment limit.
    let smart = request.smart_encoding || policy.smart_encoding;
    let text = match smart.then(|| smart_gsm7(request.text)).flatten() {
        Some(text) => std::borrow::Cow::Owned(text),
        None => std::borrow::Cow::Borrowed(request.text),
    };
    let saved = segment(request.text).segments - segment(&text).segments;
    let seg = segment(&text);
    if seg.segments > config.limits.max_segments {
        return Err(format!(
            "text needs {} segments, the configuration allows at most {} (max_segments)",
            seg.segments, config.limits.max_segments
        ));
    }
    let own = match request.max_price {
        None => None,
        Some(text) => Some(Money::parse_decimal(text).map_err(|e| {
            format!(
                "--max-price {text:?}: {}",
                e.to_string().replacen("cost ", "", 1)
            )
        })?),
    };
    let ceiling = own.into_iter().chain(policy.max_price).min();
    let explanation = table.explain_priced(&number, &AllHealthy, ceiling);
    let buckets: Vec<Vec<Bucket>> = explanation
        .candidates
        .iter()
        .map(|c| buckets_on_path(&config, table.carrier_id(c.carrier), &number, from, at_ms))
        .collect();
    if request.json {
        let mut value = to_json(&table, &explanation, seg.segments, seg.encoding);
        for (candidate, buckets) in value["candidates"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(&buckets)
        {
            candidate["buckets"] = buckets.iter().map(Bucket::json).collect();
        }
        value["max_price"] = json!(ceiling.map(Money::as_f64));
        value["at"] = json!(request.at);
        if smart {
            value["smart_encoding"] = json!({"segments_saved": saved, "text": text});
        }
        if from.is_some() || class.is_some() {
            value["policy"] = policy_json(&policy);
        }
        println!("{value}");
    } else {
        print_text(&table, &explanation, seg.segments, seg.encoding);
        for (c, buckets) in explanation.candidates.iter().zip(&buckets) {
            let list: Vec<String> = buckets.iter().map(Bucket::text).collect();
            println!(
                "  {} buckets: {}",
                table.carrier_id(c.carrier),
                list.join(", ")
            );
        }
        if smart {
            match saved {
                0 => println!("smart encoding: nothing to replace that would save a segment"),
                n => println!(
                    "smart encoding: look-alikes replaced, {n} segment{} saved",
                    if n == 1 { "" } else { "s" }
                ),
            }
        }
        let priced_out = explanation
            .dropped
            .iter()
            .any(|d| matches!(d.reason, DropReason::OverMaxPrice { .. }));
        if let (Some(max), true, true) = (ceiling, explanation.candidates.is_empty(), priced_out) {
            println!("refused (over_max_price): every carrier costs more than max_price {max}");
        }
        print_policy(&policy);
    }
    Ok(())
}

/// A token bucket a message to one carrier passes.
struct Bucket {
    kind: &'static str,
    /// The route prefix or the sender id it is keyed by.
    key: Option<String>,
    tps: u32,
    burst: u32,
}

impl Bucket {
    fn json(&self) -> Value {
        let mut v = json!({"kind": self.kind, "tps": self.tps, "burst": self.burst});
        match self.kind {
            "route" => v["prefix"] = json!(self.key),
            "sender" => v["sender"] = json!(self.key),
            _ => {}
        }
        v
    }

    fn text(&self) -> String {
        let key = self
            .key
            .as_deref()
            .map_or(String::new(), |k| format!(" {k}"));
        format!("{}{key} {}/s (burst {})", self.kind, self.tps, self.burst)
    }
}

/// Every bucket on the way to `carrier`: its own, its longest matching route bucket, the
/// sender's (as the engine's lanes apply them).
fn buckets_on_path(
    config: &smsroute_config::Config,
    carrier: &str,
    number: &E164,
    from: Option<&str>,
    at_ms: i64,
) -> Vec<Bucket> {
    let Some(index) = config.carrier_index(carrier) else {
        return Vec::new();
    };
    let c = &config.carriers[index];
    let mut out = vec![Bucket {
        kind: "carrier",
        key: None,
        tps: c.tps,
        burst: c.burst,
    }];
    // The engine's own rule; a checked configuration's contracts are valid quotas.
    let others = smsroute_engine::buckets_on_path(config, index, number.as_str(), from, at_ms)
        .unwrap_or_default();
    out.extend(others.into_iter().map(|b| Bucket {
        kind: b.kind,
        key: Some(b.key.to_string()),
        tps: b.tps,
        burst: b.burst,
    }));
    out
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
        DropReason::OverMaxPrice { max_price } => format!("over max_price {max_price}"),
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
