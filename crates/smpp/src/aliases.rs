//! Receipt ids in other forms than the submit_sm_resp gave them: what the ESME maps back
//! before handing a text-only receipt to the engine.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Receipt ids as the SMSC may write them differently from its submit_sm_resp: decimal for a
/// hex id, hex for a decimal one, with leading zeros. Recent numeric ids are kept by their
/// value read as decimal and as hex, so a receipt id in another form finds the form the
/// engine registered; bounded, oldest forgotten first. An id that is not a number has no
/// other form.
#[derive(Default)]
pub(crate) struct Aliases {
    /// Ids that read as a decimal number, by value: (when learnt, the id as given).
    decimal: HashMap<u64, (u64, Arc<str>)>,
    /// Ids that read as a hex number, by value.
    hex: HashMap<u64, (u64, Arc<str>)>,
    /// What was learnt, oldest first: (value, read as decimal, when learnt).
    order: VecDeque<(u64, bool, u64)>,
    /// Ids learnt so far.
    learnt: u64,
}

const ALIASES: usize = 200_000;

/// An id without its leading zeros, when that leaves a number of at most 16 digits.
fn digits(id: &str) -> Option<&str> {
    let trimmed = id.trim_start_matches('0');
    (!trimmed.is_empty() && trimmed.len() <= 16).then_some(trimmed)
}

/// Its value read as decimal, and read as hex.
fn values(id: &str) -> (Option<u64>, Option<u64>) {
    let Some(digits) = digits(id) else {
        return (None, None);
    };
    let decimal = digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten();
    (decimal, u64::from_str_radix(digits, 16).ok())
}

impl Aliases {
    pub(crate) fn learn(&mut self, id: &str) {
        let (decimal, hex) = values(id);
        if decimal.is_none() && hex.is_none() {
            return;
        }
        self.learnt += 1;
        let (when, id): (u64, Arc<str>) = (self.learnt, id.into());
        if let Some(n) = decimal {
            self.decimal.insert(n, (when, id.clone()));
            self.order.push_back((n, true, when));
        }
        if let Some(n) = hex {
            self.hex.insert(n, (when, id));
            self.order.push_back((n, false, when));
        }
        while self.order.len() > ALIASES {
            let Some((n, decimal, when)) = self.order.pop_front() else {
                break;
            };
            let map = if decimal {
                &mut self.decimal
            } else {
                &mut self.hex
            };
            // Unless a later id of the same value took the place.
            if map.get(&n).is_some_and(|(w, _)| *w == when) {
                map.remove(&n);
            }
        }
    }

    /// The id a receipt means: none when it is a known id itself (or one in another case,
    /// which the engine matches), else the known id it is another form of.
    pub(crate) fn resolve(&self, id: &str) -> Option<Box<str>> {
        let (decimal, hex) = values(id);
        let known = |map: &HashMap<u64, (u64, Arc<str>)>, n: Option<u64>| {
            n.and_then(|n| map.get(&n)).map(|(_, known)| known.clone())
        };
        let exact = |known: &Option<Arc<str>>| known.as_deref() == Some(id);
        let (as_decimal, as_hex) = (known(&self.decimal, decimal), known(&self.hex, hex));
        if exact(&as_decimal) || exact(&as_hex) {
            return None;
        }
        // Leading zeros, then decimal of a hex id, hex of a decimal one, leading zeros of hex.
        [
            as_decimal,
            known(&self.hex, decimal),
            known(&self.decimal, hex),
            as_hex,
        ]
        .into_iter()
        .flatten()
        .find(|known| !known.eq_ignore_ascii_case(id))
        .map(|known| known.as_ref().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_ids_in_other_forms_map_back_but_real_ids_stay_themselves() {
        let mut a = Aliases::default();
        a.learn("1a2b");
        a.learn("10");
        a.learn("0000042");
        assert_eq!(
            a.resolve("6699").as_deref(),
            Some("1a2b"),
            "decimal of hex 1a2b"
        );
        assert_eq!(
            a.resolve("1A2B"),
            None,
            "case alone: the engine's map has it as given"
        );
        assert_eq!(a.resolve("42").as_deref(), Some("0000042"), "leading zeros");
        assert_eq!(
            a.resolve("2a").as_deref(),
            Some("0000042"),
            "hex of decimal 42"
        );
        // "16" is the decimal form of hex "10", but once "16" is a real id it means itself.
        assert_eq!(a.resolve("16").as_deref(), Some("10"));
        a.learn("16");
        assert_eq!(a.resolve("16"), None);
        assert_eq!(a.resolve("unknown"), None);
    }

    #[test]
    fn the_latest_id_of_a_value_wins_and_the_oldest_are_forgotten() {
        let mut a = Aliases::default();
        a.learn("0042");
        a.learn("42");
        assert_eq!(a.resolve("42"), None, "a real id means itself");
        assert_eq!(a.resolve("00042").as_deref(), Some("42"));
        a.learn("not-a-number");
        assert_eq!(a.resolve("not-a-number"), None);
        for n in 0..ALIASES as u64 {
            a.learn(&format!("9{n:07}"));
        }
        assert_eq!(a.resolve("2a"), None, "42 was forgotten");
        let newest = format!("{:x}", 90_000_000 + ALIASES as u64 - 1);
        assert!(a.resolve(&newest).is_some());
        assert!(a.decimal.len() + a.hex.len() <= ALIASES);
    }
}
