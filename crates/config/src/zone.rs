//! Where a daily window's clock runs: a fixed UTC offset (`utc_offset = "+01:00"`) or an IANA
//! time zone with its daylight-saving rules (`zone = "Europe/London"`, from the time-zone
//! database built into the binary, so a host without `/usr/share/zoneinfo` reads it alike).

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// How far back of an instant zone changes are looked up, milliseconds (a year).
const HORIZON_BACK_MS: i64 = 366 * 86_400_000;
/// How far ahead of an instant zone changes are looked up, milliseconds (ten years).
const HORIZON_AHEAD_MS: i64 = 10 * 366 * 86_400_000;

/// A window's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zone {
    /// Local time minus UTC, minutes, the same at every instant.
    Fixed(i32),
    /// An IANA time zone: its offset changes with daylight saving and history.
    Named(TimeZone),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::Fixed(0)
    }
}

impl Zone {
    /// The IANA zone called `name` (`Europe/London`), if the database has it.
    ///
    /// ```
    /// use smsroute_config::Zone;
    /// let london = Zone::named("Europe/London").unwrap();
    /// // 2027-01-15T12:00Z is winter (GMT), 2027-07-15T12:00Z summer (BST).
    /// assert_eq!(london.offset_min_at(1_800_014_400_000), 0);
    /// assert_eq!(london.offset_min_at(1_815_739_200_000), 60);
    /// assert!(Zone::named("Mars/Olympus_Mons").is_none());
    /// ```
    pub fn named(name: &str) -> Option<Zone> {
        // `get` also accepts fixed offsets and POSIX strings; a zone here is an IANA name.
        if !name.contains('/') && name != "UTC" {
            return None;
        }
        TimeZone::get(name).ok().map(Zone::Named)
    }

    /// Local time minus UTC at `unix_ms` (milliseconds since the Unix epoch), minutes.
    #[inline]
    pub fn offset_min_at(&self, unix_ms: i64) -> i32 {
        match self {
            Zone::Fixed(offset) => *offset,
            Zone::Named(tz) => tz.to_offset(timestamp(unix_ms)).seconds().div_euclid(60),
        }
    }

    /// The instants in `(from_ms, until_ms)` where the offset changes, in order.
    pub fn changes(&self, from_ms: i64, until_ms: i64) -> Vec<i64> {
        let Zone::Named(tz) = self else {
            return Vec::new();
        };
        let mut offset = self.offset_min_at(from_ms);
        let mut changes = Vec::new();
        for transition in tz.following(timestamp(from_ms)) {
            let at = transition.timestamp().as_millisecond();
            if at >= until_ms {
                break;
            }
            let next = transition.offset().seconds().div_euclid(60);
            if next != offset && at > from_ms {
                changes.push(at);
            }
            offset = next;
        }
        changes
    }

    /// Every offset in force at some instant of `(from_ms, until_ms)`, sorted, once each.
    pub fn offsets(&self, from_ms: i64, until_ms: i64) -> Vec<i32> {
        let mut offsets: Vec<i32> = std::iter::once(from_ms)
            .chain(self.changes(from_ms, until_ms))
            .map(|at| self.offset_min_at(at))
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        offsets
    }

    /// The span around `unix_ms` within which zone changes are looked up: a year before to
    /// ten years after. A route table compiled at `unix_ms` follows daylight saving for ten
    /// years; past that it keeps the last offset until the next reload.
    pub fn horizon(unix_ms: i64) -> (i64, i64) {
        (
            unix_ms.saturating_sub(HORIZON_BACK_MS),
            unix_ms.saturating_add(HORIZON_AHEAD_MS),
        )
    }
}

impl std::fmt::Display for Zone {
    /// `+01:00` for a fixed offset, the IANA name for a zone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Zone::Fixed(offset) => {
                let sign = if *offset < 0 { '-' } else { '+' };
                let abs = offset.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", abs / 60, abs % 60)
            }
            Zone::Named(tz) => f.write_str(tz.iana_name().unwrap_or("?")),
        }
    }
}

/// `unix_ms` as a timestamp, clamped to the range the zone database covers.
fn timestamp(unix_ms: i64) -> Timestamp {
    Timestamp::from_millisecond(unix_ms).unwrap_or(if unix_ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_instant;

    fn at(text: &str) -> i64 {
        parse_instant(text).unwrap()
    }

    #[test]
    fn a_named_zone_follows_daylight_saving() {
        let new_york = Zone::named("America/New_York").unwrap();
        assert_eq!(new_york.offset_min_at(at("2027-01-15T12:00:00Z")), -300);
        assert_eq!(new_york.offset_min_at(at("2027-07-15T12:00:00Z")), -240);
        // 2027: clocks go forward on 14 March at 07:00Z, back on 7 November at 06:00Z.
        let changes = new_york.changes(at("2027-01-01T00:00:00Z"), at("2028-01-01T00:00:00Z"));
        assert_eq!(
            changes,
            [at("2027-03-14T07:00:00Z"), at("2027-11-07T06:00:00Z")]
        );
        assert_eq!(
            new_york.offsets(at("2027-01-01T00:00:00Z"), at("2028-01-01T00:00:00Z")),
            [-300, -240]
        );
    }

    #[test]
    fn a_fixed_offset_never_changes() {
        let fixed = Zone::Fixed(-90);
        assert_eq!(fixed.offset_min_at(0), -90);
        assert!(fixed.changes(i64::MIN, i64::MAX).is_empty());
        assert_eq!(fixed.to_string(), "-01:30");
        assert_eq!(Zone::named("Asia/Tokyo").unwrap().to_string(), "Asia/Tokyo");
    }

    #[test]
    fn only_iana_names_are_zones() {
        for name in ["Europe/London", "UTC", "America/Argentina/Buenos_Aires"] {
            assert!(Zone::named(name).is_some(), "{name}");
        }
        for name in [
            "+01:00",
            "EST5EDT,M3.2.0,M11.1.0",
            "London",
            "",
            "Europe/Nowhere",
        ] {
            assert!(Zone::named(name).is_none(), "{name}");
        }
    }

    #[test]
    fn instants_outside_the_database_range_clamp() {
        let london = Zone::named("Europe/London").unwrap();
        assert_eq!(
            london.offset_min_at(i64::MAX),
            london.offset_min_at(i64::MAX - 1)
        );
        assert!((-1440..1440).contains(&london.offset_min_at(i64::MIN)));
        assert!(london.changes(i64::MAX - 1, i64::MAX).is_empty());
    }
}
