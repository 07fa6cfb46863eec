//! `[routing]`: how ranking weighs carriers' queues, small health differences and delivery
//! quality.

use super::RoutingConfig;
use super::raw::RawRouting;
use super::validate::{Checker, MAX_QUEUE_WAIT_MS};

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
}
