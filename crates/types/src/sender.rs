//! Sender ids: what the recipient's phone shows as "from".

use std::fmt;

/// Longest alphanumeric sender id the networks carry.
pub const MAX_ALPHANUMERIC: usize = 11;
/// Longest numeric sender (an E.164 number).
pub const MAX_NUMERIC: usize = 15;

/// A validated sender: alphanumeric (1–11 characters, not all digits) or numeric
/// (1–15 digits, optional leading `+`, stored without it).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Sender {
    /// Letters, digits, spaces and `- . & _`, not all digits, up to 11 characters
    /// (SMPP TON 5).
    Alphanumeric(Box<str>),
    /// Digits only, up to 15 (SMPP TON 1 when it came with `+`, else TON 0 / short code).
    Numeric {
        /// The digits, without `+`.
        digits: Box<str>,
        /// Written in international form (`+` given).
        international: bool,
    },
}

/// Why a string is not a sender id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSender {
    /// Empty or only spaces.
    #[error("sender is empty")]
    Empty,
    /// Alphanumeric sender longer than 11 characters.
    #[error("alphanumeric sender {0:?} has {1} characters, at most {MAX_ALPHANUMERIC} are allowed")]
    AlphanumericTooLong(String, usize),
    /// Numeric sender longer than 15 digits.
    #[error("numeric sender has {0} digits, at most {MAX_NUMERIC} are allowed")]
    NumericTooLong(usize),
    /// A character outside the allowed set.
    #[error(
        "sender contains {0:?}: only ASCII letters, digits, spaces and '- . & _' are allowed (or '+' and digits for a number)"
    )]
    BadCharacter(char),
}

impl Sender {
    /// Validates a sender id.
    ///
    /// ```
    /// use smsroute_types::Sender;
    /// assert!(Sender::parse("ACME Bank").is_ok());
    /// assert!(Sender::parse("+447700900123").is_ok());
    /// assert!(Sender::parse("VeryLongBrand").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, InvalidSender> {
        let text = input.trim();
        if text.is_empty() {
            return Err(InvalidSender::Empty);
        }
        let (international, body) = match text.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
            if body.len() > MAX_NUMERIC {
                return Err(InvalidSender::NumericTooLong(body.len()));
            }
            return Ok(Sender::Numeric {
                digits: body.into(),
                international,
            });
        }
        if let Some(bad) = text
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '.' | '&' | '_')))
        {
            return Err(InvalidSender::BadCharacter(bad));
        }
        let chars = text.chars().count();
        if chars > MAX_ALPHANUMERIC {
            return Err(InvalidSender::AlphanumericTooLong(text.to_string(), chars));
        }
        Ok(Sender::Alphanumeric(text.into()))
    }

    /// The sender as it goes on the wire (numeric without `+`).
    pub fn as_str(&self) -> &str {
        match self {
            Sender::Alphanumeric(s) => s,
            Sender::Numeric { digits, .. } => digits,
        }
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Numeric {
                digits,
                international: true,
            } => write!(f, "+{digits}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sender({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_driven_senders() {
        let ok = [
            ("ACME", "ACME"),
            ("ACME Bank", "ACME Bank"),
            ("Shop-24.de", "Shop-24.de"),
            ("A&B_co", "A&B_co"),
            ("12345678901", "12345678901"),
            ("+447700900123", "447700900123"),
            ("123456789012345", "123456789012345"),
            ("  Brand  ", "Brand"),
        ];
        for (input, want) in ok {
            assert_eq!(Sender::parse(input).unwrap().as_str(), want, "{input}");
        }
        let bad = [
            ("", InvalidSender::Empty),
            ("   ", InvalidSender::Empty),
            (
                "12345678901A",
                InvalidSender::AlphanumericTooLong("12345678901A".into(), 12),
            ),
            ("1234567890123456", InvalidSender::NumericTooLong(16)),
            ("Brand!", InvalidSender::BadCharacter('!')),
            ("Bränd", InvalidSender::BadCharacter('ä')),
            ("+44a", InvalidSender::BadCharacter('+')),
        ];
        for (input, want) in bad {
            assert_eq!(Sender::parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn numeric_keeps_international_flag() {
        assert_eq!(Sender::parse("+4477").unwrap().to_string(), "+4477");
        assert_eq!(Sender::parse("4477").unwrap().to_string(), "4477");
    }
}
