//! E.164 phone numbers: normalisation of what people type into digits the trie can walk.

use std::fmt;

/// Fewest digits an E.164 number may have (country code plus a short subscriber number).
pub const MIN_DIGITS: usize = 7;
/// Most digits E.164 allows.
pub const MAX_DIGITS: usize = 15;

/// A normalised E.164 number: 7 to 15 ASCII digits, no `+`, never starting with `0`.
///
/// The digits are also kept packed as big-endian nibbles (digit `i` in bits `60 - 4i .. 64 - 4i`),
/// which is the form the routing trie compares in one shift and mask.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct E164 {
    digits: [u8; MAX_DIGITS],
    len: u8,
    packed: u64,
}

/// Why a string is not an E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNumber {
    /// Nothing but separators, or nothing at all.
    #[error("number is empty")]
    Empty,
    /// A character that is neither a digit nor an accepted separator.
    #[error(
        "number contains {found:?} at position {position}: only digits, a leading '+' or '00', spaces, dashes, dots and parentheses are allowed"
    )]
    BadCharacter {
        /// The offending character.
        found: char,
        /// Its 0-based character position in the input.
        position: usize,
    },
    /// A `+` somewhere other than the start.
    #[error("'+' is only allowed at the start of a number (position {position})")]
    MisplacedPlus {
        /// 0-based character position of the `+`.
        position: usize,
    },
    /// Fewer than [`MIN_DIGITS`] digits.
    #[error("number has {digits} digits, E.164 needs at least {MIN_DIGITS}")]
    TooShort {
        /// Digits found.
        digits: usize,
    },
    /// More than [`MAX_DIGITS`] digits.
    #[error("number has {digits} digits, E.164 allows at most {MAX_DIGITS}")]
    TooLong {
        /// Digits found.
        digits: usize,
    },
    /// The country code would start with 0 (a national-format number).
    #[error(
        "number starts with 0 after normalisation: country codes never do (national format? write it with its country code)"
    )]
    LeadingZero,
}

impl E164 {
    /// Normalises user input: accepts a leading `+` or `00`, and spaces, dashes, dots and
    /// parentheses anywhere; rejects anything else.
    ///
    /// ```
    /// use smsroute_types::E164;
    /// assert!(E164::parse("07700 900123").is_err()); // national format: no country code
    /// let n = E164::parse("0044 7700 900123").unwrap();
    /// assert_eq!(n.as_str(), "447700900123");
    /// ```
    pub fn parse(input: &str) -> Result<Self, InvalidNumber> {
        let mut digits = [0u8; MAX_DIGITS];
        let mut count = 0usize;
        let mut seen_plus = false;
        for (position, ch) in input.chars().enumerate() {
            match ch {
                '0'..='9' => {
                    if count < MAX_DIGITS {
                        digits[count] = ch as u8;
                    }
                    count += 1;
                }
                '+' => {
                    if count > 0 || seen_plus {
                        return Err(InvalidNumber::MisplacedPlus { position });
                    }
                    seen_plus = true;
                }
                ' ' | '\t' | '-' | '.' | '(' | ')' => {}
                found => return Err(InvalidNumber::BadCharacter { found, position }),
            }
        }
        let mut start = 0;
        // A leading international prefix `00` is the same as `+`.
        if !seen_plus && count >= 2 && digits[0] == b'0' && digits[1] == b'0' {
            start = 2;
        }
        let len = count - start;
        if count == 0 {
            return Err(InvalidNumber::Empty);
        }
        if len > MAX_DIGITS {
            return Err(InvalidNumber::TooLong { digits: len });
        }
        if len < MIN_DIGITS {
            return Err(InvalidNumber::TooShort { digits: len });
        }
        if digits[start] == b'0' {
            return Err(InvalidNumber::LeadingZero);
        }
        let mut out = [0u8; MAX_DIGITS];
        out[..len].copy_from_slice(&digits[start..count]);
        Ok(Self::from_ascii_digits(out, len as u8))
    }

    fn from_ascii_digits(digits: [u8; MAX_DIGITS], len: u8) -> Self {
        Self {
            digits,
            len,
            packed: pack_digits(&digits[..len as usize]),
        }
    }

    /// The digits, without `+`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..self.len as usize]).unwrap_or("")
    }

    /// The digits as ASCII bytes, without `+` ([`E164::as_str`] without its UTF-8 check).
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    /// Number of digits (7..=15).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a valid number has at least [`MIN_DIGITS`] digits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Digits packed as big-endian nibbles; see the type's docs.
    pub fn packed(&self) -> u64 {
        self.packed
    }
}

/// Packs up to 16 ASCII digits as big-endian nibbles: digit `i` lands in bits `60 - 4i ..`.
///
/// # Panics
/// If `digits` holds more than 16 bytes or a byte that is not an ASCII digit.
pub fn pack_digits(digits: &[u8]) -> u64 {
    assert!(digits.len() <= 16, "at most 16 digits pack into a u64");
    let mut packed = 0u64;
    for (i, &d) in digits.iter().enumerate() {
        assert!(d.is_ascii_digit(), "not an ASCII digit: {d:#x}");
        packed |= u64::from(d - b'0') << (60 - 4 * i);
    }
    packed
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.as_str())
    }
}

impl std::str::FromStr for E164 {
    type Err = InvalidNumber;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_spellings() {
        let cases = [
            ("447700900123", "447700900123"),
            ("+447700900123", "447700900123"),
            ("00447700900123", "447700900123"),
            ("+44 7700 900123", "447700900123"),
            ("+44-7700-900-123", "447700900123"),
            ("+44.7700.900.123", "447700900123"),
            ("+1 (415) 555-0100", "14155550100"),
            ("  +33 6 12 34 56 78 ", "33612345678"),
            ("1234567", "1234567"),
            ("123456789012345", "123456789012345"),
        ];
        for (input, want) in cases {
            let n = E164::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(n.as_str(), want, "input {input:?}");
            assert_eq!(n.len(), want.len());
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        use InvalidNumber::*;
        let cases = [
            ("", Empty),
            ("  ( ) -", Empty),
            (
                "+44 7700 9OO123",
                BadCharacter {
                    found: 'O',
                    position: 10,
                },
            ),
            (
                "447700900123#",
                BadCharacter {
                    found: '#',
                    position: 12,
                },
            ),
            ("44+7700900123", MisplacedPlus { position: 2 }),
            ("++447700900123", MisplacedPlus { position: 1 }),
            ("123456", TooShort { digits: 6 }),
            ("0012345", TooShort { digits: 5 }),
            ("1234567890123456", TooLong { digits: 16 }),
            ("07700900123", LeadingZero),
            ("+07700900123", LeadingZero),
        ];
        for (input, want) in cases {
            assert_eq!(E164::parse(input), Err(want), "input {input:?}");
        }
        assert!(
            E164::parse("12a4567")
                .unwrap_err()
                .to_string()
                .contains("'a'")
        );
    }

    #[test]
    fn packs_big_endian_nibbles() {
        let n = E164::parse("4477001").unwrap();
        assert_eq!(n.packed(), 0x4477_0010_0000_0000);
    }

    proptest::proptest! {
        #[test]
        fn digits_round_trip_through_separators(digits in "[1-9][0-9]{6,14}", sep in "[ .()-]{0,2}") {
            let spaced: String = digits.chars().flat_map(|c| std::iter::once(c).chain(sep.chars())).collect();
            let n = E164::parse(&format!("+{spaced}")).unwrap();
            proptest::prop_assert_eq!(n.as_str(), digits.as_str());
            proptest::prop_assert_eq!(n.as_bytes(), digits.as_bytes());
        }
    }
}
