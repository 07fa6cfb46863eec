//! `[routing]`: how ranking weighs carriers' queues, small health differences and delivery
//! quality.

use toml::Spanned;

use super::raw::{RawRoute, RawRouting, RawSender};
use super::validate::{Checker, MAX_QUEUE_WAIT_MS};
use super::{LimitsConfig, RoutingConfig, SenderConfig};

/// A bucket's `(tps, burst)`: burst defaults to a tenth of a second of tps, at least
/// `max_segments`, and may not be less (a message of max_segments parts could never pass).
fn bucket(
    check: &mut Checker<'_>,
    tps: &Spanned<i64>,
    burst: Option<&Spanned<i64>>,
    limits: &LimitsConfig,
) -> (u32, u32) {
    let tps: u32 = check.int(
        Some(tps),
        "tps (segments per second)",
        (1, u32::MAX.into()),
        1,
    );
    let default = (tps / 10).max(limits.max_segments);
    let value = check.int(burst, "burst", (1, u32::MAX.into()), default);
    if let Some(b) = burst
        && value < limits.max_segments
    {
        check.error(
            b.span(),
            format!(
                "burst {value} is less than max_segments {}: a message of max_segments parts could never pass",
                limits.max_segments
            ),
        );
    }
    (tps, value.max(1))
}

/// A route row's own `tps` / `burst`, if it has them.
pub(super) fn route_limit(
    check: &mut Checker<'_>,
    r: &RawRoute,
    limits: &LimitsConfig,
) -> Option<(u32, u32)> {
    match (&r.tps, &r.burst) {
        (Some(tps), burst) => Some(bucket(check, tps, burst.as_ref(), limits)),
        (None, Some(b)) => {
            check.error(b.span(), "burst needs tps (the row's own rate)");
            None
        }
        (None, None) => None,
    }
}

/// `[[senders]]`: unique, non-empty ids with their buckets.
pub(super) fn senders(
    check: &mut Checker<'_>,
    raw: &[Spanned<RawSender>],
    limits: &LimitsConfig,
) -> Vec<SenderConfig> {
    let mut out: Vec<SenderConfig> = Vec::with_capacity(raw.len());
    for row in raw {
        let r = row.get_ref();
        let id = r.id.get_ref().trim();
        let (tps, burst) = bucket(check, &r.tps, r.burst.as_ref(), limits);
        if id.is_empty() {
            check.error(r.id.span(), "sender id must not be empty");
        } else if out.iter().any(|s| s.id == id) {
            check.error(r.id.span(), format!("duplicate sender {id:?}"));
        } else {
            out.push(SenderConfig {
                id: id.to_string(),
                tps,
                burst,
            });
        }
    }
    out
}

pub(super) fn routing(check: &mut Checker<'_>, raw: Option<&RawRouting>) -> RoutingConfig {
    let default = RoutingConfig::default();
    let Some(raw) = raw else { return default };
    RoutingConfig {
        max_queue_wait_ms: check.int(
            raw.max_queue_wait_ms.as_ref(),
            "max_queue_wait_ms",
            MAX_QUEUE_WAIT_MS,
            default.max_queue_wait_ms,
        ),
        equal_cost_band_pct: check.int(
            raw.equal_cost_band_pct.as_ref(),
            "equal_cost_band_pct",
            (0, 100),
            default.equal_cost_band_pct,
        ),
        quality_digits: check.int(
            raw.quality_digits.as_ref(),
            "quality_digits",
            (1, 15),
            default.quality_digits,
        ),
        quality_min_samples: check.int(
            raw.quality_min_samples.as_ref(),
            "quality_min_samples",
            (1, 1_000_000),
            default.quality_min_samples,
        ),
        quality_half_life_s: check.int(
            raw.quality_half_life_s.as_ref(),
            "quality_half_life_s",
            (1, 7 * 86_400),
            default.quality_half_life_s,
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const CARRIER: &str = "[[carriers]]\nid = \"a\"\ntps = 10\n";

    #[test]
    fn defaults_and_overrides() {
        let config = Config::parse(CARRIER, "t.toml").unwrap();
        assert_eq!(config.routing.max_queue_wait_ms, 1_000);
        assert_eq!(config.routing.equal_cost_band_pct, 5);
        assert_eq!(config.carriers[0].max_queue_wait_ms, None);
        let text = format!(
            "{CARRIER}max_queue_wait_ms = 250\n\
             [routing]\nmax_queue_wait_ms = 3000\nequal_cost_band_pct = 0\n"
        );
        let config = Config::parse(&text, "t.toml").unwrap();
        assert_eq!(config.routing.max_queue_wait_ms, 3_000);
        assert_eq!(config.routing.equal_cost_band_pct, 0);
        assert_eq!(config.carriers[0].max_queue_wait_ms, Some(250));
    }

    #[test]
    fn out_of_range_values_are_named_with_their_position() {
        let text =
            format!("{CARRIER}max_queue_wait_ms = -1\n[routing]\nequal_cost_band_pct = 101\n");
        let error = Config::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(
            error.contains("t.toml:4:21: max_queue_wait_ms must be between 0 and 86400000, got -1"),
            "{error}"
        );
        assert!(
            error.contains("t.toml:6:23: equal_cost_band_pct must be between 0 and 100, got 101"),
            "{error}"
        );
    }

    #[test]
    fn route_rows_and_senders_take_their_own_throughput() {
        let text = format!(
            "{CARRIER}\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\ncost = 0.01\n\
             [[routes]]\nprefix = \"447\"\ncarrier = \"a\"\ncost = 0.01\ntps = 50\n\n\
             [[senders]]\nid = \"12025550123\"\ntps = 1\nburst = 10\n"
        );
        let config = Config::parse(&text, "t.toml").unwrap();
        assert_eq!(config.routes[0].limit, None);
        assert_eq!(
            config.routes[1].limit,
            Some((50, 10)),
            "burst: max(tps / 10, max_segments)"
        );
        assert_eq!(config.senders[0].id, "12025550123");
        assert_eq!((config.senders[0].tps, config.senders[0].burst), (1, 10));
        let bad = format!(
            "{CARRIER}\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\ncost = 0.01\nburst = 5\n\
             [[senders]]\nid = \"x\"\ntps = 1\nburst = 2\n\
             [[senders]]\nid = \"x\"\ntps = 1\n"
        );
        let error = Config::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(error.contains("burst needs tps"), "{error}");
        assert!(
            error.contains("burst 2 is less than max_segments 10"),
            "{error}"
        );
        assert!(error.contains("duplicate sender \"x\""), "{error}");
    }

    #[test]
    fn guaranteed_shares_leave_room_above_them() {
        let text = format!(
            "{CARRIER}\n[[classes]]\nname = \"bulk\"\npriority = 0\nmin_share_pct = 60\n\
             [[classes]]\nname = \"news\"\npriority = 1\nmin_share_pct = 50\n"
        );
        let error = Config::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(
            error.contains("guaranteed shares add up to 110 %, at most 90 % may be"),
            "{error}"
        );
    }
}
