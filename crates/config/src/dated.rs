//! Dated rate-deck rows: `valid_from` / `valid_until` instants (RFC 3339) and a daily window
//! (`hours = "08:00-20:00"` at a fixed `utc_offset` or in an IANA `zone`), and the check that
//! two rows for one carrier and prefix are never in force at once.

use toml::Spanned;

use super::raw::RawRoute;
use super::validate::Checker;
use super::{DailyWindow, RoutePeriod, Zone};

/// Milliseconds since the Unix epoch of an RFC 3339 instant (`2027-01-01T00:00:00Z`, with
/// an optional fraction and a `Z` or `±HH:MM` offset); `None` if it is not one.
///
/// ```
/// use smsroute_config::parse_instant;
/// assert_eq!(parse_instant("1970-01-02T00:00:00Z"), Some(86_400_000));
/// assert_eq!(parse_instant("2027-01-01T01:00:00+01:00"), parse_instant("2027-01-01T00:00:00Z"));
/// assert_eq!(parse_instant("2027-02-30T00:00:00Z"), None);
/// ```
pub fn parse_instant(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = fraction[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = ms.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_min * 60;
    Some(seconds * 1_000 + millis)
}

/// An instant as RFC 3339 in UTC, whole seconds (`2027-01-01T00:00:00Z`): what
/// [`parse_instant`] reads back.
///
/// ```
/// use smsroute_config::{format_instant, parse_instant};
/// assert_eq!(format_instant(1_798_761_600_000), "2027-01-01T00:00:00Z");
/// assert_eq!(parse_instant(&format_instant(86_400_000)), Some(86_400_000));
/// ```
pub fn format_instant(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1_000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3_600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (eras of 400 years, March-based
/// years so the leap day ends a year).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A row's period, checked: its instants in order, its window well-formed.
pub(super) fn period(check: &mut Checker<'_>, r: &RawRoute) -> RoutePeriod {
    let mut instant = |value: &Option<Spanned<String>>, name: &str| {
        let value = value.as_ref()?;
        let parsed = parse_instant(value.get_ref());
        if parsed.is_none() {
            check.error(
                value.span(),
                format!(
                    "{name} must be an RFC 3339 instant such as \"2027-01-01T00:00:00Z\", got {:?}",
                    value.get_ref()
                ),
            );
        }
        parsed
    };
    let valid_from = instant(&r.valid_from, "valid_from");
    let valid_until = instant(&r.valid_until, "valid_until");
    if let (Some(from), Some(until), Some(span)) = (valid_from, valid_until, &r.valid_until)
        && until <= from
    {
        check.error(span.span(), "valid_until must be after valid_from");
    }
    let hours = r.hours.as_ref().and_then(|h| {
        let (start, end) = h.get_ref().split_once('-').unwrap_or(("", ""));
        let minutes = |s: &str| {
            let (hh, mm) = s.trim().split_once(':')?;
            let (hh, mm): (u32, u32) = (hh.parse().ok()?, mm.parse().ok()?);
            (hh < 24 && mm < 60 && s.trim().len() == 5).then_some(hh * 60 + mm)
        };
        match (minutes(start), minutes(end)) {
            (Some(s), Some(e)) if s != e => Some((s, e)),
            _ => {
                check.error(
                    h.span(),
                    format!(
                        "hours must be \"HH:MM-HH:MM\" with different ends, got {:?}",
                        h.get_ref()
                    ),
                );
                None
            }
        }
    });
    for clock in [&r.utc_offset, &r.zone].into_iter().flatten() {
        if r.hours.is_none() {
            check.error(
                clock.span(),
                "utc_offset and zone need hours (the window they place)",
            );
        }
    }
    let zone = super::policy::zone(check, r.utc_offset.as_ref(), r.zone.as_ref());
    RoutePeriod {
        valid_from,
        valid_until,
        hours: hours.map(|(start_min, end_min)| DailyWindow {
            start_min,
            end_min,
            zone,
        }),
    }
}

impl DailyWindow {
    /// Whether the window holds local minute-of-day `local` (0..1440).
    pub fn holds_local(&self, local: u32) -> bool {
        if self.start_min < self.end_min {
            (self.start_min..self.end_min).contains(&local)
        } else {
            local >= self.start_min || local < self.end_min
        }
    }

    /// Whether the window holds UTC minute-of-day `minute` while its clock is `offset_min`
    /// ahead of UTC.
    pub fn holds_with(&self, minute: u32, offset_min: i32) -> bool {
        self.holds_local(local_minute(minute, offset_min))
    }

    /// Whether the window holds the instant `unix_ms`.
    pub fn holds_at(&self, unix_ms: i64) -> bool {
        let minute = unix_ms.div_euclid(60_000).rem_euclid(1440) as u32;
        self.holds_with(minute, self.zone.offset_min_at(unix_ms))
    }

    /// The UTC minutes-of-day where it opens and closes while its clock is `offset_min` ahead
    /// of UTC.
    pub fn edges_with(&self, offset_min: i32) -> [u32; 2] {
        [self.start_min, self.end_min].map(|m| local_minute(m, -offset_min))
    }

    /// The first instant at or after `unix_ms` (inside the window) at which it closes: its end
    /// on the local clock, daylight-saving changes on the way taken into account.
    pub fn closes_after(&self, unix_ms: i64) -> i64 {
        let offset = self.zone.offset_min_at(unix_ms);
        let minute = unix_ms.div_euclid(60_000);
        let local = local_minute(minute.rem_euclid(1440) as u32, offset);
        let wait = i64::from((self.end_min + 1440 - local) % 1440);
        let close = (minute + wait) * 60_000;
        // The clock may change before the end: the end is then that much earlier or later.
        let shift = i64::from(self.zone.offset_min_at(close) - offset) * 60_000;
        (close - shift).max(unix_ms)
    }
}

/// UTC minute-of-day `minute` on a clock `offset_min` ahead of UTC.
fn local_minute(minute: u32, offset_min: i32) -> u32 {
    (i64::from(minute) + i64::from(offset_min)).rem_euclid(1440) as u32
}

impl RoutePeriod {
    /// In force at all times: no instants, no window.
    pub fn is_always(&self) -> bool {
        self.valid_from.is_none() && self.valid_until.is_none() && self.hours.is_none()
    }

    /// Whether the row is in force at `unix_ms`.
    pub fn holds(&self, unix_ms: i64) -> bool {
        self.valid_from.is_none_or(|f| unix_ms >= f)
            && self.valid_until.is_none_or(|u| unix_ms < u)
            && self.hours.as_ref().is_none_or(|w| w.holds_at(unix_ms))
    }

    /// Whether two periods are ever in force at once. Windows on one clock compare in local
    /// time; windows on two zones compare at every pair of the offsets each takes within
    /// [`Zone::horizon`] of now (cautious: such a pair may never fall on one day).
    pub fn overlaps(&self, other: &RoutePeriod) -> bool {
        let from = self.valid_from.max(other.valid_from);
        let until = match (self.valid_until, other.valid_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let (Some(f), Some(u)) = (from, until)
            && f >= u
        {
            return false;
        }
        let (a, b) = match (&self.hours, &other.hours) {
            (Some(a), Some(b)) => (a, b),
            _ => return true,
        };
        if a.zone == b.zone {
            return (0..1440).any(|m| a.holds_local(m) && b.holds_local(m));
        }
        let (start, end) = Zone::horizon(now_ms());
        let b_offsets = b.zone.offsets(start, end);
        a.zone.offsets(start, end).into_iter().any(|oa| {
            b_offsets
                .iter()
                .any(|&ob| (0..1440).any(|m| a.holds_with(m, oa) && b.holds_with(m, ob)))
        })
    }
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_as_rfc_3339() {
        assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(
            parse_instant("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500)
        );
        assert_eq!(parse_instant("1969-12-31T23:59:59Z"), Some(-1_000));
        for bad in [
            "2027-01-01",
            "2027-13-01T00:00:00Z",
            "2027-01-01T24:00:00Z",
            "x",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn windows_and_overlaps() {
        // 22:00-06:00 at +01:00 is 21:00-05:00 UTC.
        let night = DailyWindow {
            start_min: 22 * 60,
            end_min: 6 * 60,
            zone: Zone::Fixed(60),
        };
        assert_eq!(night.edges_with(60), [21 * 60, 5 * 60]);
        assert!(
            night.holds_with(21 * 60, 60)
                && night.holds_with(4 * 60 + 59, 60)
                && !night.holds_with(5 * 60, 60)
        );
        let period = |from, until, hours| RoutePeriod {
            valid_from: from,
            valid_until: until,
            hours,
        };
        let day = DailyWindow {
            start_min: 6 * 60,
            end_min: 22 * 60,
            zone: Zone::Fixed(60),
        };
        assert!(!period(None, None, Some(night.clone())).overlaps(&period(
            None,
            None,
            Some(day.clone())
        )));
        assert!(!period(None, Some(10), None).overlaps(&period(Some(10), None, None)));
        assert!(period(None, Some(11), None).overlaps(&period(Some(10), None, Some(day))));
    }

    fn london(start_min: u32, end_min: u32) -> DailyWindow {
        DailyWindow {
            start_min,
            end_min,
            zone: Zone::named("Europe/London").unwrap(),
        }
    }

    #[test]
    fn a_zoned_window_keeps_local_hours_across_daylight_saving() {
        let office = london(8 * 60, 20 * 60);
        let at = |t| parse_instant(t).unwrap();
        // Winter: 08:00 GMT is 08:00Z. Summer: 08:00 BST is 07:00Z.
        assert!(!office.holds_at(at("2027-01-15T07:30:00Z")));
        assert!(office.holds_at(at("2027-01-15T08:00:00Z")));
        assert!(office.holds_at(at("2027-07-15T07:30:00Z")));
        assert!(!office.holds_at(at("2027-07-15T19:30:00Z")));
        assert_eq!(office.edges_with(60), [7 * 60, 19 * 60]);
    }

    #[test]
    fn a_window_closes_at_its_local_end_over_a_clock_change() {
        let night = london(21 * 60, 8 * 60);
        let at = |t| parse_instant(t).unwrap();
        // Clocks go forward at 01:00Z on 28 March 2027: 08:00 BST is 07:00Z.
        assert_eq!(
            night.closes_after(at("2027-03-27T23:00:00Z")),
            at("2027-03-28T07:00:00Z")
        );
        // Back at 01:00Z on 31 October 2027: 08:00 GMT is 08:00Z.
        assert_eq!(
            night.closes_after(at("2027-10-30T22:30:30Z")),
            at("2027-10-31T08:00:00Z")
        );
        // No change on the way.
        assert_eq!(
            night.closes_after(at("2027-01-15T05:00:00Z")),
            at("2027-01-15T08:00:00Z")
        );
    }

    #[test]
    fn windows_on_two_zones_overlap_at_any_pair_of_their_offsets() {
        let period = |w| RoutePeriod {
            valid_from: None,
            valid_until: None,
            hours: Some(w),
        };
        // 08:00-12:00 London and 12:00-13:00 at +00:00 meet only while London is on GMT.
        let fixed = DailyWindow {
            start_min: 11 * 60 + 30,
            end_min: 13 * 60,
            zone: Zone::Fixed(0),
        };
        assert!(period(london(8 * 60, 12 * 60)).overlaps(&period(fixed.clone())));
        // 08:00-10:00 London is at most 07:00-10:00Z: never meets 11:30-13:00Z.
        assert!(!period(london(8 * 60, 10 * 60)).overlaps(&period(fixed)));
        // One zone: local hours decide.
        assert!(!period(london(8 * 60, 12 * 60)).overlaps(&period(london(12 * 60, 13 * 60))));
    }
}
