//! Checks the policy tables: `[policy]`, `[[classes]]`, `[[quiet_hours]]`.

use std::collections::HashSet;

use toml::Spanned;

use super::raw::RawConfig;
use super::validate::{Checker, is_id};
use super::{
    AccountConfig, ClassConfig, DailyWindow, PolicyConfig, QuietAction, QuietHoursConfig, Zone,
};

/// `HH:MM` → minutes after midnight.
fn clock(check: &mut Checker<'_>, value: &Spanned<String>, name: &str) -> Option<u32> {
    let parsed = value.get_ref().split_once(':').and_then(|(h, m)| {
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && value.get_ref().len() == 5).then_some(h * 60 + m)
    });
    if parsed.is_none() {
        check.error(
            value.span(),
            format!("{name} must be a time HH:MM, got {:?}", value.get_ref()),
        );
    }
    parsed
}

/// A window's clock: `utc_offset = "+HH:MM"` / `"-HH:MM"` or `zone = "Area/City"` (not both;
/// neither: UTC).
pub(super) fn zone(
    check: &mut Checker<'_>,
    utc_offset: Option<&Spanned<String>>,
    zone: Option<&Spanned<String>>,
) -> Zone {
    match (utc_offset, zone) {
        (Some(_), Some(z)) => {
            check.error(z.span(), "give utc_offset or zone, not both");
            Zone::default()
        }
        (None, Some(z)) => Zone::named(z.get_ref()).unwrap_or_else(|| {
            check.error(
                z.span(),
                format!(
                    "zone must be an IANA time zone such as \"Europe/London\", got {:?}",
                    z.get_ref()
                ),
            );
            Zone::default()
        }),
        (Some(offset), None) => Zone::Fixed(utc_offset_min(check, offset)),
        (None, None) => Zone::default(),
    }
}

/// `+HH:MM` / `-HH:MM` → minutes.
fn utc_offset_min(check: &mut Checker<'_>, value: &Spanned<String>) -> i32 {
    let text = value.get_ref();
    let sign = match text.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => 0,
    };
    let minutes = text.get(1..).and_then(|rest| {
        let (h, m) = rest.split_once(':')?;
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 14 && m < 60 && rest.len() == 5).then_some(h * 60 + m)
    });
    match (sign, minutes) {
        (s, Some(m)) if s != 0 => s * m,
        _ => {
            check.error(
                value.span(),
                format!("utc_offset must be +HH:MM or -HH:MM, got {text:?}"),
            );
            0
        }
    }
}

pub(super) fn policy(check: &mut Checker<'_>, raw: &RawConfig) -> PolicyConfig {
    let suppression_file = raw
        .policy
        .as_ref()
        .and_then(|p| p.suppression_file.as_ref())
        .map(|f| {
            if f.get_ref().trim().is_empty() {
                check.error(f.span(), "suppression_file must name a file");
            }
            f.get_ref().clone()
        });
    let mut names = HashSet::new();
    let mut classes = Vec::new();
    for row in &raw.classes {
        let c = row.get_ref();
        let name = c.name.get_ref();
        if !is_id(name) {
            check.error(
                c.name.span(),
                format!("class name must be [a-z0-9_-]+, got {name:?}"),
            );
        } else if !names.insert(name.clone()) {
            check.error(c.name.span(), format!("duplicate class {name:?}"));
        }
        let cap = check.int(
            c.max_per_recipient.as_ref(),
            "max_per_recipient",
            (1, 4095),
            0u32,
        );
        let window = check.int(c.per_s.as_ref(), "per_s", (1, 366 * 86_400), 0u64);
        match (&c.max_per_recipient, &c.per_s) {
            (Some(_), None) => check.error(
                row.span(),
                "max_per_recipient needs per_s (the window, in seconds)",
            ),
            (None, Some(p)) => check.error(p.span(), "per_s needs max_per_recipient"),
            _ => {}
        }
        let quiet_hours = c
            .quiet_hours
            .as_ref()
            .and_then(|q| match q.get_ref().as_str() {
                "defer" => Some(QuietAction::Defer),
                "refuse" => Some(QuietAction::Refuse),
                other => {
                    check.error(
                        q.span(),
                        format!("quiet_hours must be \"defer\" or \"refuse\", got {other:?}"),
                    );
                    None
                }
            });
        let max_price = c
            .max_price
            .as_ref()
            .and_then(|p| check.cost(p, "max_price"));
        classes.push(ClassConfig {
            name: name.clone(),
            cap: (cap > 0).then_some(cap),
            cap_window_s: window,
            quiet_hours,
            max_price,
            smart_encoding: c.smart_encoding.unwrap_or(false),
            priority: check.int(
                c.priority.as_ref(),
                "priority",
                (0, super::PRIORITY_LEVELS as i64 - 1),
                super::DEFAULT_PRIORITY,
            ),
            min_share_pct: c
                .min_share_pct
                .as_ref()
                .map(|v| check.int(Some(v), "min_share_pct", (1, 90), 1u8)),
        });
    }
    // Guaranteed shares (the largest per level) leave room for the levels above them.
    let mut shares = [0u32; super::PRIORITY_LEVELS];
    for (row, class) in raw.classes.iter().zip(&classes) {
        let Some(pct) = class.min_share_pct else {
            continue;
        };
        let level = &mut shares[usize::from(class.priority)];
        *level = (*level).max(u32::from(pct));
        let total: u32 = shares.iter().sum();
        if total > 90 {
            let span = row
                .get_ref()
                .min_share_pct
                .as_ref()
                .map_or(row.span(), |s| s.span());
            check.error(
                span,
                format!("min_share_pct: the priority levels' guaranteed shares add up to {total} %, at most 90 % may be"),
            );
            break;
        }
    }
    let mut prefixes = HashSet::new();
    let mut quiet_hours = Vec::new();
    for row in &raw.quiet_hours {
        let q = row.get_ref();
        let prefix = check.digits(&q.prefix, "prefix");
        let zone = zone(check, q.utc_offset.as_ref(), q.zone.as_ref());
        let start = clock(check, &q.start, "start");
        let end = clock(check, &q.end, "end");
        if let (Some(s), Some(e)) = (start, end)
            && s == e
        {
            check.error(q.end.span(), "end must differ from start");
        }
        let (Some(prefix), Some(start_min), Some(end_min)) = (prefix, start, end) else {
            continue;
        };
        if !prefixes.insert(prefix.clone()) {
            check.error(
                q.prefix.span(),
                format!("duplicate quiet hours for prefix {prefix}"),
            );
            continue;
        }
        quiet_hours.push(QuietHoursConfig {
            prefix,
            window: DailyWindow {
                start_min,
                end_min,
                zone,
            },
        });
    }
    let mut ids = HashSet::new();
    let mut accounts = Vec::new();
    for row in &raw.accounts {
        let a = row.get_ref();
        let id = a.id.get_ref();
        if !is_id(id) {
            check.error(
                a.id.span(),
                format!("account id must be [a-z0-9_-]+, got {id:?}"),
            );
        } else if !ids.insert(id.clone()) {
            check.error(a.id.span(), format!("duplicate account {id:?}"));
        }
        if let Some(balance) = check.cost(&a.balance, "balance") {
            accounts.push(AccountConfig {
                id: id.clone(),
                balance,
            });
        }
    }
    PolicyConfig {
        suppression_file,
        classes,
        quiet_hours,
        accounts,
        refund_on_failure: raw
            .policy
            .as_ref()
            .and_then(|p| p.refund_on_failure)
            .unwrap_or(true),
    }
}
