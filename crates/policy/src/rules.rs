//! Message classes: per-recipient frequency caps and local quiet hours.
//!
//! A message names its class in its `class` tag; a class unknown to the configuration has no
//! rules. Caps count messages accepted for a (recipient, class) in a fixed-size, lock-free
//! table ([`FrequencyCaps`]). Quiet hours apply per destination prefix (the longest matching
//! one), in local time from a fixed UTC offset; a class defers its messages to the window's
//! end, or refuses them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::caps::{CapTicket, FrequencyCaps};
use smsroute_config::{DailyWindow, PolicyConfig, QuietAction};
use smsroute_types::{E164, Message, Money};

/// Why a message's class forbids it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The recipient already got the class's most messages within its window.
    #[error("frequency cap reached for this recipient and class")]
    FrequencyCap,
    /// The destination is in its quiet hours and the class refuses then.
    #[error("quiet hours at the destination")]
    QuietHours,
}

#[derive(Clone, Debug)]
struct Class {
    name: Box<str>,
    cap: Option<(u32, u32)>,
    quiet: Option<QuietAction>,
    max_price: Option<Money>,
    smart_encoding: bool,
    priority: u8,
    min_share_pct: Option<u8>,
}

#[derive(Clone, Debug)]
struct Quiet {
    prefix: Box<str>,
    window: DailyWindow,
}

/// The checked class rules of one configuration (swapped on reload).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    classes: Vec<Class>,
    /// Longest prefix first.
    quiet: Vec<Quiet>,
}

impl Rules {
    /// From the configuration's policy tables.
    pub fn new(config: &PolicyConfig) -> Self {
        let classes = config
            .classes
            .iter()
            .map(|c| Class {
                name: c.name.as_str().into(),
                cap: c
                    .cap
                    .map(|n| (n, c.cap_window_s.min(u64::from(u32::MAX)) as u32)),
                quiet: c.quiet_hours,
                max_price: c.max_price,
                smart_encoding: c.smart_encoding,
                priority: c.priority,
                min_share_pct: c.min_share_pct,
            })
            .collect();
        let mut quiet: Vec<Quiet> = config
            .quiet_hours
            .iter()
            .map(|q| Quiet {
                prefix: q.prefix.as_str().into(),
                window: q.window.clone(),
            })
            .collect();
        quiet.sort_by_key(|q| std::cmp::Reverse(q.prefix.len()));
        Rules { classes, quiet }
    }

    /// The index of the class named `name`, if configured.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| &*c.name == name)
    }

    /// A class's cap: (most messages, window in seconds).
    pub fn cap(&self, class: usize) -> Option<(u32, u32)> {
        self.classes[class].cap
    }

    /// A class's price ceiling per segment, if it has one.
    pub fn max_price(&self, class: usize) -> Option<Money> {
        self.classes[class].max_price
    }

    /// Whether a class replaces look-alike characters to stay in GSM-7.
    pub fn smart_encoding(&self, class: usize) -> bool {
        self.classes[class].smart_encoding
    }

    /// The priority of a message of `class` (none: the default).
    pub fn priority(&self, class: Option<usize>) -> u8 {
        class.map_or(smsroute_config::DEFAULT_PRIORITY, |c| {
            self.classes[c].priority
        })
    }

    /// Each priority level's guaranteed share of a carrier's admissions (0 to 0.9): the
    /// largest `min_share_pct` of the classes at that level.
    pub fn level_shares(&self) -> [f32; smsroute_config::PRIORITY_LEVELS] {
        let mut shares = [0.0; smsroute_config::PRIORITY_LEVELS];
        for c in &self.classes {
            if let Some(pct) = c.min_share_pct {
                let level = &mut shares[usize::from(c.priority)];
                *level = f32::max(*level, f32::from(pct) / 100.0);
            }
        }
        shares
    }

    /// The class a message names (its `class` tag), if configured.
    pub fn class_of(&self, message: &Message) -> Option<usize> {
        let name = message.tag("class")?;
        self.classes.iter().position(|c| &*c.name == name)
    }

    /// Quiet hours for a message of `class` to `number` at `now`: `Ok(None)` send now,
    /// `Ok(Some(t))` hold until `t`, `Err` refuse.
    pub fn quiet_hours(
        &self,
        class: usize,
        number: &E164,
        now: SystemTime,
    ) -> Result<Option<SystemTime>, Refusal> {
        let Some(action) = self.classes[class].quiet else {
            return Ok(None);
        };
        let Some(q) = self
            .quiet
            .iter()
            .find(|q| number.as_str().starts_with(&*q.prefix))
        else {
            return Ok(None);
        };
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if !q.window.holds_at(now_ms) {
            return Ok(None);
        }
        match action {
            QuietAction::Refuse => Err(Refusal::QuietHours),
            QuietAction::Defer => {
                let wait = q.window.closes_after(now_ms) - now_ms;
                Ok(Some(now + Duration::from_millis(wait.max(0) as u64)))
            }
        }
    }

    /// Takes one message of `class`'s cap for `number` at `now`; no cap: `Ok(None)`.
    pub fn take_cap(
        &self,
        caps: &FrequencyCaps,
        class: usize,
        number: &E164,
        now: SystemTime,
    ) -> Result<Option<CapTicket>, Refusal> {
        let Some((max, window)) = self.classes[class].cap else {
            return Ok(None);
        };
        let at = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as u32;
        caps.try_take(pair_hash(class, number), max, window, at)
            .map(Some)
            .ok_or(Refusal::FrequencyCap)
    }

    /// Starts fetching the cap table line of `number` for `class` (if capped) early: call it
    /// before other work, then [`take_cap`](Self::take_cap).
    pub fn prefetch_cap(&self, caps: &FrequencyCaps, class: usize, number: &E164) {
        if self.classes[class].cap.is_some() {
            caps.touch(pair_hash(class, number));
        }
    }
}

/// The well-mixed hash of a (recipient, class) pair.
fn pair_hash(class: usize, number: &E164) -> u64 {
    let key = number.packed()
        ^ ((number.len() as u64) << 60)
        ^ (class as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // Numbers differ in few bits: spread them (the SplitMix64 finaliser).
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use smsroute_config::{ClassConfig, QuietHoursConfig, Zone};

    use super::*;

    fn rules(quiet: QuietAction) -> Rules {
        Rules::new(&PolicyConfig {
            classes: vec![ClassConfig {
                max_price: None,
                smart_encoding: false,
                priority: 1,
                min_share_pct: None,
                name: "marketing".into(),
                cap: Some(2),
                cap_window_s: 3600,
                quiet_hours: Some(quiet),
            }],
            quiet_hours: vec![
                window("44", Zone::Fixed(0), 21 * 60, 8 * 60),
                window("447", Zone::Fixed(60), 22 * 60, 7 * 60),
                window(
                    "1",
                    Zone::named("America/New_York").unwrap(),
                    21 * 60,
                    8 * 60,
                ),
            ],
            ..PolicyConfig::default()
        })
    }

    fn window(prefix: &str, zone: Zone, start_min: u32, end_min: u32) -> QuietHoursConfig {
        QuietHoursConfig {
            prefix: prefix.into(),
            window: DailyWindow {
                start_min,
                end_min,
                zone,
            },
        }
    }

    fn at(h: u64, m: u64) -> SystemTime {
        // 2026-11-25 is day 20,417 since the epoch.
        UNIX_EPOCH + Duration::from_secs(20_417 * 86_400 + h * 3600 + m * 60)
    }

    #[test]
    fn the_class_comes_from_the_tag() {
        let r = rules(QuietAction::Defer);
        let tagged = Message::builder("447700900123", "ACME", "x")
            .tag("class", "marketing")
            .build()
            .unwrap();
        let plain = Message::builder("447700900123", "ACME", "x")
            .build()
            .unwrap();
        assert_eq!((r.class_of(&tagged), r.class_of(&plain)), (Some(0), None));
    }

    #[test]
    fn quiet_hours_defer_to_the_window_end_in_local_time_or_refuse() {
        let r = rules(QuietAction::Defer);
        let uk_landline = E164::parse("441134960000").unwrap();
        let uk_mobile = E164::parse("447700900123").unwrap(); // 447: +01:00, 22:00-07:00
        assert_eq!(r.quiet_hours(0, &uk_landline, at(12, 0)), Ok(None));
        assert_eq!(
            r.quiet_hours(0, &uk_landline, at(23, 30)),
            Ok(Some(at(32, 0)))
        );
        assert_eq!(
            r.quiet_hours(0, &uk_landline, at(3, 15)),
            Ok(Some(at(8, 0)))
        );
        // 21:30 UTC is 22:30 local under 447: quiet until 07:00 local = 06:00 UTC.
        assert_eq!(
            r.quiet_hours(0, &uk_mobile, at(21, 30)),
            Ok(Some(at(30, 0)))
        );
        assert_eq!(
            r.quiet_hours(0, &uk_mobile, at(20, 30)),
            Ok(None),
            "21:30 local"
        );
        let refuse = rules(QuietAction::Refuse);
        assert_eq!(
            refuse.quiet_hours(0, &uk_landline, at(22, 0)),
            Err(Refusal::QuietHours)
        );
        let french = E164::parse("33612345678").unwrap();
        assert_eq!(
            refuse.quiet_hours(0, &french, at(22, 0)),
            Ok(None),
            "no window there"
        );
    }

    #[test]
    fn quiet_hours_in_a_zone_end_at_local_time_after_a_clock_change() {
        let r = rules(QuietAction::Defer);
        let new_york = E164::parse("12125550123").unwrap();
        let instant = |text| {
            let ms = smsroute_config::parse_instant(text).unwrap();
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        };
        // Saturday 13 March 2027, 23:00 EST; clocks go forward overnight, so 08:00 EDT is
        // 12:00Z, not the 13:00Z a fixed -05:00 would give.
        assert_eq!(
            r.quiet_hours(0, &new_york, instant("2027-03-14T04:00:00Z")),
            Ok(Some(instant("2027-03-14T12:00:00Z")))
        );
        // 20:30 EDT in July is outside the window; 21:30 EDT inside it.
        assert_eq!(
            r.quiet_hours(0, &new_york, instant("2027-07-15T00:30:00Z")),
            Ok(None)
        );
        assert_eq!(
            r.quiet_hours(0, &new_york, instant("2027-07-15T01:30:00Z")),
            Ok(Some(instant("2027-07-15T12:00:00Z")))
        );
    }

    #[test]
    fn caps_slide_and_tickets_give_back() {
        let r = rules(QuietAction::Defer);
        let caps = FrequencyCaps::new(1024);
        let n = E164::parse("447700900123").unwrap();
        let other = E164::parse("447700900124").unwrap();
        assert!(r.take_cap(&caps, 0, &n, at(10, 0)).unwrap().is_some());
        let second = r.take_cap(&caps, 0, &n, at(10, 30)).unwrap().unwrap();
        assert_eq!(
            r.take_cap(&caps, 0, &n, at(10, 45)),
            Err(Refusal::FrequencyCap)
        );
        assert!(
            r.take_cap(&caps, 0, &other, at(10, 45)).is_ok(),
            "per recipient"
        );
        caps.give_back(second);
        assert!(r.take_cap(&caps, 0, &n, at(10, 50)).is_ok(), "given back");
        assert_eq!(
            r.take_cap(&caps, 0, &n, at(10, 55)),
            Err(Refusal::FrequencyCap)
        );
        // Fixed hourly windows, counted two at a time: still refused in the next hour,
        // allowed again in the one after.
        assert_eq!(
            r.take_cap(&caps, 0, &n, at(11, 30)),
            Err(Refusal::FrequencyCap)
        );
        assert!(r.take_cap(&caps, 0, &n, at(12, 1)).is_ok());
    }
}
