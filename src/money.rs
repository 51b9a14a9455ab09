//! Currencies and amounts. An [`Amount`] is a `rust_decimal` at its currency's minor-unit scale
//! (KRW 0, USD 2); in storage and on ISO 8583 it travels as an integer count of minor units.

use rust_decimal::Decimal;

/// An ISO 4217 currency the platform accepts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Currency {
    /// Alphabetic code, e.g. `KRW`.
    pub code: String,
    /// Numeric code as sent in DE49, e.g. `410`.
    pub numeric: String,
    /// Digits after the decimal point in the major unit.
    pub scale: u32,
}

/// A non-negative amount in a currency, exact at the currency's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(Decimal);

/// Why an amount text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Not a decimal number.
    Format,
    /// More fraction digits than the currency has.
    Scale,
    /// Zero, negative, or too large.
    Range,
}

/// The largest amount in minor units: 12 digits, the width of ISO 8583 DE4.
pub const MAX_MINOR: i64 = 999_999_999_999;

impl Amount {
    /// Parses a major-unit decimal string (`"15000"`, `"12.50"`); must be positive.
    pub fn parse(text: &str, currency: &Currency) -> Result<Amount, AmountError> {
        if text.is_empty() || text.len() > 24 || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(AmountError::Format);
        }
        let d: Decimal = text.parse().map_err(|_| AmountError::Format)?;
        let d = d.normalize();
        if d.scale() > currency.scale {
            return Err(AmountError::Scale);
        }
        let a = Amount(Self::rescale(d, currency.scale));
        if a.0 <= Decimal::ZERO || a.to_minor().is_none() {
            return Err(AmountError::Range);
        }
        Ok(a)
    }

    /// From a count of minor units.
    pub fn from_minor(minor: i64, currency: &Currency) -> Amount {
        Amount(Decimal::new(minor, currency.scale))
    }

    /// The count of minor units, if it fits DE4.
    pub fn to_minor(self) -> Option<i64> {
        let m = self.0.mantissa();
        i64::try_from(m).ok().filter(|m| (0..=MAX_MINOR).contains(m))
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    fn rescale(mut d: Decimal, scale: u32) -> Decimal {
        d.rescale(scale);
        d
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The currencies unit tests use.
#[cfg(test)]
pub mod test_currencies {
    use super::Currency;

    pub fn krw() -> Currency {
        Currency { code: "KRW".into(), numeric: "410".into(), scale: 0 }
    }

    pub fn usd() -> Currency {
        Currency { code: "USD".into(), numeric: "840".into(), scale: 2 }
    }
}

#[cfg(test)]
mod tests {
    use super::test_currencies::{krw, usd};
    use super::*;

    #[test]
    fn parses_at_scale() {
        assert_eq!(Amount::parse("15000", &krw()).unwrap().to_minor(), Some(15000));
        assert_eq!(Amount::parse("15000.0", &krw()).unwrap().to_minor(), Some(15000));
        assert_eq!(Amount::parse("12.5", &usd()).unwrap().to_minor(), Some(1250));
        assert_eq!(Amount::parse("12.5", &usd()).unwrap().to_string(), "12.50");
        assert_eq!(Amount::parse("1.5", &krw()), Err(AmountError::Scale));
        assert_eq!(Amount::parse("0", &krw()), Err(AmountError::Range));
        assert_eq!(Amount::parse("-5", &krw()), Err(AmountError::Format));
        assert_eq!(Amount::parse("1e3", &krw()), Err(AmountError::Format));
        assert_eq!(Amount::parse("1000000000000", &krw()), Err(AmountError::Range));
        assert_eq!(Amount::from_minor(1250, &usd()).to_string(), "12.50");
    }
}
