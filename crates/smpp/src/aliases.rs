//! Receipt ids in other forms than the submit_sm_resp gave them: what the ESME maps back
//! before handing a text-only receipt to the engine.

use std::collections::{HashMap, VecDeque};

use smallvec::SmallVec;

/// Receipt ids as the SMSC may write them differently from its submit_sm_resp: decimal for a
/// hex id, hex for a decimal one, with leading zeros. Recent ids' other forms point back to
/// the form the engine registered; bounded, oldest forgotten first.
#[derive(Default)]
pub(crate) struct Aliases {
    /// Another form → the id as the submit_sm_resp gave it.
    map: HashMap<String, Box<str>>,
    /// Ids as given: a receipt naming one of these means that one, never an alias.
    originals: std::collections::HashSet<Box<str>>,
    /// Insertion order, oldest first: (key, is an original).
    order: VecDeque<(Box<str>, bool)>,
}

const ALIASES: usize = 200_000;

impl Aliases {
    pub(crate) fn learn(&mut self, id: &str) {
        if self.originals.insert(id.into()) {
            self.order.push_back((id.into(), true));
        }
        let trimmed = id.trim_start_matches('0');
        let mut forms: SmallVec<[String; 3]> = SmallVec::new();
        if trimmed.len() != id.len() && !trimmed.is_empty() {
            forms.push(trimmed.to_string());
        }
        if !trimmed.is_empty() && trimmed.len() <= 16 {
            if trimmed.bytes().all(|b| b.is_ascii_digit())
                && let Ok(n) = trimmed.parse::<u64>()
            {
                forms.push(format!("{n:x}"));
            }
            if let Ok(n) = u64::from_str_radix(trimmed, 16) {
                forms.push(n.to_string());
            }
        }
        for form in forms {
            if form != id && !self.map.contains_key(&form) {
                self.order.push_back((form.as_str().into(), false));
                self.map.insert(form, id.into());
            }
        }
        while self.order.len() > ALIASES {
            match self.order.pop_front() {
                Some((old, true)) => {
                    self.originals.remove(&old);
                }
                Some((old, false)) => {
                    self.map.remove(&*old);
                }
                None => break,
            }
        }
    }

    /// The id a receipt means: itself when it is a known id, else the id one of its other
    /// forms points to.
    pub(crate) fn resolve(&self, id: &str) -> Option<Box<str>> {
        if self.originals.contains(id) {
            return None;
        }
        self.map
            .get(id)
            .or_else(|| self.map.get(&id.to_ascii_lowercase()))
            .or_else(|| self.map.get(id.trim_start_matches('0')))
            .cloned()
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
}
