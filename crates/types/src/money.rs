//! Money in integer micro-units: costs are parsed exactly, never through floating point.

use std::fmt;

/// An amount in micro-units (10⁻⁶) of the one currency a configuration uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u64);

/// Why a decimal string is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMoney {
    /// A minus sign: costs are never negative.
    #[error("cost must not be negative")]
    Negative,
    /// More than six digits after the decimal point.
    #[error("cost has {0} decimals, at most 6 are allowed (amounts are kept in micro-units)")]
    TooPrecise(usize),
    /// Not a decimal number.
    #[error("cost {0:?} is not a decimal number")]
    NotDecimal(String),
    /// Too large for 64-bit micro-units.
    #[error("cost is too large")]
    Overflow,
}

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// From micro-units.
    pub const fn from_micros(micros: u64) -> Self {
        Money(micros)
    }

    /// The amount in micro-units.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// The amount as a float, for display and ranking only (never for accounting).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `self × n`, saturating.
    pub fn times(self, n: u32) -> Money {
        Money(self.0.saturating_mul(u64::from(n)))
    }

    /// Parses a decimal such as `0.0040`, `1`, `1_000.25` or `4e-3` exactly.
    ///
    /// ```
    /// use smsroute_types::Money;
    /// assert_eq!(Money::parse_decimal("0.0040").unwrap().micros(), 4000);
    /// assert!(Money::parse_decimal("0.0000001").is_err());
    /// ```
    pub fn parse_decimal(text: &str) -> Result<Self, InvalidMoney> {
        let cleaned: String = text.trim().chars().filter(|&c| c != '_').collect();
        let not_decimal = || InvalidMoney::NotDecimal(text.trim().to_string());
        let unsigned = match cleaned.strip_prefix('-') {
            Some(rest) if rest.chars().any(|c| c != '0' && c != '.') => {
                return Err(InvalidMoney::Negative);
            }
            Some(rest) => rest,
            None => cleaned.strip_prefix('+').unwrap_or(&cleaned),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => {
                let exp: i32 = unsigned[at + 1..].parse().map_err(|_| not_decimal())?;
                (&unsigned[..at], exp)
            }
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(not_decimal());
        }
        // value = digits × 10^(exponent - fraction.len()); we need micro-units.
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        let scale = exponent - fraction.len() as i32 + 6;
        if digits.is_empty() {
            return Ok(Money::ZERO);
        }
        let significant = digits.trim_end_matches('0');
        let trailing_zeros = (digits.len() - significant.len()) as i32;
        if scale + trailing_zeros < 0 {
            let decimals = (-(exponent - fraction.len() as i32 + trailing_zeros)) as usize;
            return Err(InvalidMoney::TooPrecise(decimals));
        }
        let mut micros: u64 = significant.parse().map_err(|_| InvalidMoney::Overflow)?;
        for _ in 0..(scale + trailing_zeros) {
            micros = micros.checked_mul(10).ok_or(InvalidMoney::Overflow)?;
        }
        Ok(Money(micros))
    }
}

impl fmt::Display for Money {
    /// Shortest exact decimal: `4000` micros prints `0.004`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000;
        let frac = self.0 % 1_000_000;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{frac:06}");
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        let cases = [
            ("0.0040", 4_000),
            ("0.004", 4_000),
            ("1", 1_000_000),
            ("12.5", 12_500_000),
            ("0", 0),
            ("-0.0", 0),
            ("0.000001", 1),
            ("1_000.25", 1_000_250_000),
            ("4e-3", 4_000),
            ("4.5E2", 450_000_000),
            ("0.00400000", 4_000),
            ("+0.1", 100_000),
        ];
        for (text, micros) in cases {
            assert_eq!(Money::parse_decimal(text), Ok(Money(micros)), "{text}");
        }
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(Money::parse_decimal("-0.1"), Err(InvalidMoney::Negative));
        assert_eq!(
            Money::parse_decimal("0.0000001"),
            Err(InvalidMoney::TooPrecise(7))
        );
        assert_eq!(
            Money::parse_decimal("1e-7"),
            Err(InvalidMoney::TooPrecise(7))
        );
        assert!(matches!(
            Money::parse_decimal("abc"),
            Err(InvalidMoney::NotDecimal(_))
        ));
        assert!(matches!(
            Money::parse_decimal("."),
            Err(InvalidMoney::NotDecimal(_))
        ));
        assert_eq!(
            Money::parse_decimal("99999999999999999999"),
            Err(InvalidMoney::Overflow)
        );
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(micros in 0u64..=u64::MAX / 2) {
            let m = Money(micros);
            proptest::prop_assert_eq!(Money::parse_decimal(&m.to_string()), Ok(m));
        }
    }
}
