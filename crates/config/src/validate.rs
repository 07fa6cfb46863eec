//! Turns [`RawConfig`] into a checked [`Config`], collecting every problem with its position.
//!
//! Length: past 500 lines because the checker and the checks of the route table it compiles
//! (carriers, routes, blocks, ported numbers, retry, limits) read together; the policy and
//! journal tables have files of their own.

use std::collections::HashMap;
use std::ops::Range;

use smsroute_types::{E164, Money};
use toml::{Spanned, Value};

use super::raw::{RawCarrier, RawConfig, RawLimits, RawRetry, RawSmpp};
use super::{
    BlockConfig, CarrierConfig, Config, ConfigError, Diagnostic, LimitsConfig, PortedConfig,
    RetryConfig, RouteConfig, RoutePeriod, SmppConfig,
};

/// Carrier indices are `u16` in the compiled table.
pub const MAX_CARRIERS: usize = u16::MAX as usize;
/// Longest prefix or number in digits (E.164).
const MAX_PREFIX_DIGITS: usize = 15;
/// A route row already read for its carrier and prefix: its offset, period and bucket.
type SeenRoute = (usize, RoutePeriod, Option<(u32, u32)>);

/// The range of `max_queue_wait_ms`: up to a day.
pub(super) const MAX_QUEUE_WAIT_MS: (i64, i64) = (0, 86_400_000);

/// Whether `name` is an id: `[a-z0-9_-]+` (carriers, classes, accounts).
pub(super) fn is_id(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Where each line of a text starts: an offset's line and column in `O(log lines)`, built once
/// in one pass (a rate deck has up to a million rows; scanning from the start for each would
/// be quadratic).
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
        let newlines = text.bytes().enumerate().filter(|(_, b)| *b == b'\n');
        LineIndex {
            starts: std::iter::once(0)
                .chain(newlines.map(|(i, _)| i + 1))
                .collect(),
        }
    }

    /// The 1-based line of `offset`.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }

    /// `offset`'s 1-based line and column (in characters) in `text`, with `message`.
    fn diagnostic(&self, text: &str, offset: usize, message: &str) -> Diagnostic {
        let offset = offset.min(text.len());
        let line = self.line(offset);
        let line_start = self.starts[line - 1];
        Diagnostic {
            line,
            col: text[line_start..offset].chars().count() + 1,
            message: message.to_string(),
        }
    }
}

/// The first few carrier ids, for an error message (a deck may define thousands).
fn some_ids(carriers: &[CarrierConfig]) -> String {
    const SHOWN: usize = 8;
    let mut ids: Vec<&str> = carriers.iter().take(SHOWN).map(|c| c.id.as_str()).collect();
    if carriers.len() > SHOWN {
        ids.push("…");
    }
    if ids.is_empty() {
        return "none".into();
    }
    ids.join(", ")
}

/// Collects problems as byte offsets; turns them into lines and columns at the end.
pub(super) struct Checker<'a> {
    text: &'a str,
    lines: std::cell::OnceCell<LineIndex>,
    problems: Vec<(usize, String)>,
}

impl<'a> Checker<'a> {
    fn new(text: &'a str) -> Self {
        Checker {
            text,
            lines: std::cell::OnceCell::new(),
            problems: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push((span.start, message.into()));
    }

    /// The line of `offset`, for a message that points back to it.
    pub(super) fn line_at(&self, offset: usize) -> usize {
        self.line_of(offset)
    }

    /// The line of `offset` (the index is built on the first call: only when reporting).
    fn line_of(&self, offset: usize) -> usize {
        self.lines().line(offset)
    }

    fn lines(&self) -> &LineIndex {
        self.lines.get_or_init(|| LineIndex::new(self.text))
    }

    fn finish(mut self, path: &str) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            return Ok(());
        }
        self.problems.sort_by_key(|(offset, _)| *offset);
        let lines = self.lines();
        let diagnostics = self
            .problems
            .iter()
            .map(|(offset, message)| lines.diagnostic(self.text, *offset, message))
            .collect();
        Err(ConfigError {
            path: path.to_string(),
            diagnostics,
        })
    }

    /// An optional integer in `min..=max`, or `default` when absent.
    pub(super) fn int<T: TryFrom<i64>>(
        &mut self,
        value: Option<&Spanned<i64>>,
        name: &str,
        (min, max): (i64, i64),
        default: T,
    ) -> T {
        let Some(value) = value else { return default };
        let v = *value.get_ref();
        if v < min || v > max {
            let range = if max >= i64::from(u32::MAX) {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            self.error(value.span(), format!("{name} must be {range}, got {v}"));
            return default;
        }
        T::try_from(v).unwrap_or(default)
    }

    /// A quoted string of 1..=15 digits.
    pub(super) fn digits(&mut self, value: &Spanned<Value>, what: &str) -> Option<String> {
        let text = match value.get_ref() {
            Value::String(s) => s,
            Value::Integer(i) => {
                self.error(
                    value.span(),
                    format!("{what} must be a quoted string of digits (\"{i}\"), so leading zeros survive"),
                );
                return None;
            }
            other => {
                self.error(
                    value.span(),
                    format!(
                        "{what} must be a quoted string of digits, found a {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        if text.is_empty() {
            self.error(
                value.span(),
                format!("{what} is empty: expected 1 to {MAX_PREFIX_DIGITS} digits"),
            );
            return None;
        }
        if let Some((at, bad)) = text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            self.error(
                value.span(),
                format!("bad {what} digit {bad:?} at position {} in {text:?}: expected digits 0-9 only (no '+')", at + 1),
            );
            return None;
        }
        if text.len() > MAX_PREFIX_DIGITS {
            self.error(
                value.span(),
                format!(
                    "{what} {text:?} has {} digits, at most {MAX_PREFIX_DIGITS} are allowed",
                    text.len()
                ),
            );
            return None;
        }
        Some(text.clone())
    }

    /// A price: a decimal of at most 6 places, read as written; `what` names it in errors.
    pub(super) fn cost(&mut self, value: &Spanned<Value>, what: &str) -> Option<Money> {
        let span = value.span();
        let literal = match value.get_ref() {
            // Read the literal as written, so `0.0040` never passes through a float.
            Value::Float(_) | Value::Integer(_) => self.text[span.clone()].to_string(),
            Value::String(s) => s.clone(),
            other => {
                self.error(
                    span,
                    format!(
                        "{what} must be a decimal number, found a {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        match Money::parse_decimal(&literal) {
            Ok(m) => Some(m),
            Err(e) => {
                // The parser names the value `cost`; say which key it was.
                let message = e.to_string();
                let message = match message.strip_prefix("cost ") {
                    Some(rest) => format!("{what} {rest}"),
                    None => message,
                };
                self.error(span, message);
                None
            }
        }
    }
}

pub(super) fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        path: path.to_string(),
        diagnostics: vec![LineIndex::new(text).diagnostic(
            text,
            e.span().map_or(0, |s| s.start),
            e.message().trim(),
        )],
    })?;
    let mut check = Checker::new(text);

    let limits = limits(&mut check, raw.limits.as_ref());
    let routing = super::routing::routing(&mut check, raw.routing.as_ref());
    let retry = retry(&mut check, raw.retry.as_ref());
    let carriers = carriers(&mut check, &raw.carriers, &limits);

    let carrier_of: HashMap<&str, usize> = carriers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut routes = Vec::with_capacity(raw.routes.len());
    // (carrier, prefix) → the offset and period of each of its rows.
    let mut seen_routes: HashMap<(usize, String), Vec<SeenRoute>> =
        HashMap::with_capacity(raw.routes.len());
    for row in &raw.routes {
        let r = row.get_ref();
        let carrier_name = r.carrier.get_ref();
        let carrier = carrier_of.get(carrier_name.as_str()).copied();
        if carrier.is_none() {
            check.error(
                r.carrier.span(),
                format!(
                    "unknown carrier {carrier_name:?} in route (known carriers: {})",
                    some_ids(&carriers)
                ),
            );
        }
        let prefix = check.digits(&r.prefix, "prefix");
        let cost = check.cost(&r.cost, "cost");
        let tier = check.int(r.tier.as_ref(), "tier", (0, 255), 0u8);
        let weight = check.int(r.weight.as_ref(), "weight", (1, u32::MAX.into()), 1u32);
        let period = super::dated::period(&mut check, r);
        let limit = super::routing::route_limit(&mut check, r, &limits);
        let (Some(carrier), Some(prefix), Some(cost)) = (carrier, prefix, cost) else {
            continue;
        };
        let rows = seen_routes.entry((carrier, prefix.clone())).or_default();
        // Rows for one carrier and prefix may repeat only for periods that never meet.
        if let Some(&(first, ..)) = rows.iter().find(|(_, p, _)| p.overlaps(&period)) {
            let first = check.line_of(first);
            let what = if period.is_always() && rows.iter().all(|(_, p, _)| p.is_always()) {
                "duplicate route"
            } else {
                "route in force at the same time as another"
            };
            check.error(
                r.prefix.span(),
                format!(
                    "{what} for carrier {carrier_name:?} and prefix {prefix:?} (first on line {first})"
                ),
            );
            continue;
        }
        if let Some(&(other, ..)) = rows.iter().find(|(.., l)| *l != limit) {
            let other = check.line_of(other);
            check.error(
                row.span(),
                format!(
                    "tps and burst differ from line {other}'s for carrier {carrier_name:?} and prefix {prefix:?}: one bucket serves both rows"
                ),
            );
            continue;
        }
        rows.push((row.span().start, period.clone(), limit));
        routes.push(RouteConfig {
            prefix,
            carrier,
            cost,
            tier,
            weight,
            period,
            limit,
        });
    }

    let mut blocks = Vec::with_capacity(raw.block.len());
    let mut seen_blocks: HashMap<String, usize> = HashMap::new();
    for row in &raw.block {
        let Some(prefix) = check.digits(&row.get_ref().prefix, "block prefix") else {
            continue;
        };
        let line = check.line_of(row.span().start);
        if let Some(first) = seen_blocks.insert(prefix.clone(), line) {
            check.error(
                row.get_ref().prefix.span(),
                format!("duplicate block for prefix {prefix:?} (first on line {first})"),
            );
            continue;
        }
        blocks.push(BlockConfig { prefix });
    }

    let mut ported = Vec::with_capacity(raw.ported.len());
    let mut seen_ported: HashMap<String, usize> = HashMap::new();
    for row in &raw.ported {
        let p = row.get_ref();
        let number = match p.number.get_ref() {
            Value::String(s) => match E164::parse(s) {
                Ok(n) => Some(n),
                Err(e) => {
                    check.error(
                        p.number.span(),
                        format!("ported number {s:?} is invalid: {e}"),
                    );
                    None
                }
            },
            other => {
                check.error(
                    p.number.span(),
                    format!(
                        "ported number must be a quoted string, found a {}",
                        other.type_str()
                    ),
                );
                None
            }
        };
        let route_as = check.digits(&p.route_as, "route_as");
        let (Some(number), Some(route_as)) = (number, route_as) else {
            continue;
        };
        let line = check.line_of(row.span().start);
        if let Some(first) = seen_ported.insert(number.as_str().to_string(), line) {
            check.error(
                p.number.span(),
                format!(
                    "duplicate ported number {:?} (first on line {first})",
                    number.as_str()
                ),
            );
            continue;
        }
        ported.push(PortedConfig { number, route_as });
    }

    let policy = super::policy::policy(&mut check, &raw);
    let accounts: Vec<&str> = policy.accounts.iter().map(|a| a.id.as_str()).collect();
    let clients = super::clients::clients(&mut check, &raw.clients, &accounts);
    let journal = raw
        .journal
        .as_ref()
        .map(|j| super::journal::journal(&mut check, j));
    let tls = raw.tls.as_ref().map(|t| super::journal::tls(&mut check, t));
    let cluster = raw
        .cluster
        .as_ref()
        .map(|c| super::cluster::cluster(&mut check, c));
    let senders = super::routing::senders(&mut check, &raw.senders, &limits);
    check.finish(path)?;
    Ok(Config {
        carriers,
        routes,
        blocks,
        ported,
        retry,
        policy,
        limits,
        routing,
        journal,
        tls,
        clients,
        cluster,
        senders,
    })
}

fn limits(check: &mut Checker<'_>, raw: Option<&RawLimits>) -> LimitsConfig {
    let default = LimitsConfig::default();
    let Some(raw) = raw else { return default };
    LimitsConfig {
        max_segments: check.int(
            raw.max_segments.as_ref(),
            "max_segments",
            (1, 255),
            default.max_segments,
        ),
    }
}

fn retry(check: &mut Checker<'_>, raw: Option<&RawRetry>) -> RetryConfig {
    let d = RetryConfig::default();
    let Some(raw) = raw else { return d };
    let mut positive = |value: &Option<Spanned<i64>>, name: &str, default: u64| {
        check.int(value.as_ref(), name, (1, i64::MAX), default)
    };
    let backoff_base_ms = positive(&raw.backoff_base_ms, "backoff_base_ms", d.backoff_base_ms);
    let backoff_cap_ms = positive(&raw.backoff_cap_ms, "backoff_cap_ms", d.backoff_cap_ms);
    let submit_timeout_ms = positive(
        &raw.submit_timeout_ms,
        "submit_timeout_ms",
        d.submit_timeout_ms,
    );
    let receipt_timeout_s = positive(
        &raw.receipt_timeout_s,
        "receipt_timeout_s",
        d.receipt_timeout_s,
    );
    let validity_s = positive(&raw.validity_s, "validity_s", d.validity_s);
    let config = RetryConfig {
        max_attempts: check.int(
            raw.max_attempts.as_ref(),
            "max_attempts",
            (1, 1_000),
            d.max_attempts,
        ),
        backoff_base_ms,
        backoff_cap_ms,
        submit_timeout_ms,
        receipt_timeout_s,
        validity_s,
        reroute_on_undeliverable: raw
            .reroute_on_undeliverable
            .unwrap_or(d.reroute_on_undeliverable),
    };
    if config.backoff_cap_ms < config.backoff_base_ms {
        let span = raw
            .backoff_cap_ms
            .as_ref()
            .or(raw.backoff_base_ms.as_ref())
            .map_or(0..0, |s| s.span());
        check.error(
            span,
            format!(
                "backoff_cap_ms {} is less than backoff_base_ms {}",
                config.backoff_cap_ms, config.backoff_base_ms
            ),
        );
    }
    config
}

fn carriers(
    check: &mut Checker<'_>,
    raw: &[Spanned<RawCarrier>],
    limits: &LimitsConfig,
) -> Vec<CarrierConfig> {
    if raw.len() > MAX_CARRIERS {
        check.error(
            raw[MAX_CARRIERS].span(),
            format!("too many carriers: at most {MAX_CARRIERS}"),
        );
    }
    let mut out: Vec<CarrierConfig> = Vec::with_capacity(raw.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in raw {
        let c = row.get_ref();
        let id = c.id.get_ref();
        if !is_id(id) {
            check.error(
                c.id.span(),
                format!("carrier id {id:?} is invalid: expected lowercase letters, digits, '_' and '-' ([a-z0-9_-]+)"),
            );
        }
        let line = check.line_of(row.span().start);
        let duplicate = seen.insert(id.clone(), line);
        if let Some(first) = duplicate {
            check.error(
                c.id.span(),
                format!("duplicate carrier id {id:?} (first defined on line {first})"),
            );
        }
        let tps: u32 = check.int(
            Some(&c.tps),
            "tps (segments per second)",
            (1, u32::MAX.into()),
            1,
        );
        let default_burst = (tps / 10).max(limits.max_segments);
        let burst: u32 = check.int(
            c.burst.as_ref(),
            "burst",
            (0, u32::MAX.into()),
            default_burst,
        );
        if let Some(b) = &c.burst
            && burst < limits.max_segments
        {
            check.error(
                b.span(),
                format!(
                    "burst {burst} is less than max_segments {}: a message of max_segments parts could never be admitted",
                    limits.max_segments
                ),
            );
        }
        let window = check.int(c.window.as_ref(), "window", (1, u32::MAX.into()), 64u32);
        let max_queue_wait_ms = c
            .max_queue_wait_ms
            .as_ref()
            .map(|v| check.int(Some(v), "max_queue_wait_ms", MAX_QUEUE_WAIT_MS, 0u64));
        let smpp = c.smpp.as_ref().map(|s| smpp(check, s.get_ref()));
        if is_id(id) && duplicate.is_none() {
            out.push(CarrierConfig {
                id: id.clone(),
                tps,
                burst,
                window,
                max_queue_wait_ms,
                smpp,
            });
        }
    }
    out
}

fn smpp(check: &mut Checker<'_>, raw: &RawSmpp) -> SmppConfig {
    let mut bounded = |value: &Spanned<String>, name: &str, max: usize, nonempty: bool| {
        let v = value.get_ref();
        if nonempty && v.is_empty() {
            check.error(value.span(), format!("{name} must not be empty"));
        } else if v.len() > max {
            check.error(
                value.span(),
                format!(
                    "{name} has {} characters, SMPP 3.4 allows at most {max}",
                    v.len()
                ),
            );
        }
        v.clone()
    };
    let host = bounded(&raw.host, "host", 253, true);
    let system_id = bounded(&raw.system_id, "system_id", 15, true);
    let password = Spanned::new(raw.password.span(), raw.password.get_ref().0.clone());
    let password = bounded(&password, "password", 8, false);
    let system_type = raw
        .system_type
        .as_ref()
        .map_or_else(String::new, |s| bounded(s, "system_type", 12, false));
    SmppConfig {
        host,
        port: check.int(Some(&raw.port), "port", (1, 65_535), 2775),
        system_id,
        password,
        system_type,
        binds: check.int(raw.binds.as_ref(), "binds", (1, 64), 1),
    }
}
