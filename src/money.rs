//! Currencies and amounts. An [`Amount`] is a `rust_decimal` at its currency's minor-unit scale
//! (KRW 0, USD 2); in storage and on ISO 8583 it travels as an integer count of minor units.
//!
//! Where the integer becomes an [`Amount`] (issue 16): exactly twice. At the ISO 8583 edge (DE4 is
//! read in the DE49 currency when the request is parsed) and at the SQL boundary. An amount's scale
//! travels with it (the `Decimal`'s own scale), so writing one needs nothing: its mantissa *is* the
//! minor-unit count ([`Amount::stored_minor`]). Reading one needs the row's scale, which an integer
//! column does not hold, so `Amount` deliberately has no `sqlx::Decode`: the store reads rows with
//! their money as `i64` (`TxnRow<i64>`, …), then turns them into amounts with the [`Currencies`] table
//! it was given (`Store::with_currencies`, from the configuration), looking up each row's own currency
//! column (a transaction's DE49, a token's, a gift certificate's, a region's — a wallet's is its
//! region's). A store without the table refuses to read money rather than guess a scale. The rejected
//! alternative, a `from_minor` that takes a scale the caller supplies, leaves every flow one wrong
//! argument away from reading cents as won.
//!
//! Arithmetic ([`Amount::checked_add`], [`Amount::checked_sub`], [`Amount::checked_min`]) refuses
//! amounts of different scales ([`MoneyError::Scale`]): they are different currencies. (Two currencies
//! of one scale are not told apart; every row pairs its amounts with its currency.) An amount in a
//! currency the configuration does not know (a DE49 nobody configured, kept only to be echoed and
//! recorded) is held at scale 0 — its bare minor-unit count — and every flow refuses that currency
//! before it computes anything.

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

/// Why arithmetic on amounts was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The amounts are at different scales: different currencies.
    #[error("amounts of different currencies")]
    Scale,
    /// The result would be negative or beyond a 64-bit count of minor units.
    #[error("amount out of range")]
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

    /// Nothing, in `currency`.
    pub fn zero(currency: &Currency) -> Amount {
        Amount::from_minor(0, currency)
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// More than nothing.
    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }

    /// The scale it is at (its currency's).
    pub fn scale(self) -> u32 {
        self.0.scale()
    }

    /// The count of minor units as stored: any 64-bit count, not only what fits DE4 (a running total
    /// may exceed 12 digits). Its scale is its own, so this needs no currency.
    pub fn stored_minor(self) -> Option<i64> {
        i64::try_from(self.0.mantissa()).ok()
    }

    /// Both at one scale, or [`MoneyError::Scale`].
    fn same_scale(self, other: Amount) -> Result<(), MoneyError> {
        if self.0.scale() == other.0.scale() { Ok(()) } else { Err(MoneyError::Scale) }
    }

    /// The sum, in the same currency; refuses another scale, and a sum beyond a 64-bit count.
    pub fn checked_add(self, other: Amount) -> Result<Amount, MoneyError> {
        self.same_scale(other)?;
        let sum = Amount(self.0.checked_add(other.0).ok_or(MoneyError::Range)?);
        sum.stored_minor().map(|_| sum).ok_or(MoneyError::Range)
    }

    /// The difference, in the same currency; refuses another scale, and a negative result.
    pub fn checked_sub(self, other: Amount) -> Result<Amount, MoneyError> {
        self.same_scale(other)?;
        let d = self.0.checked_sub(other.0).ok_or(MoneyError::Range)?;
        if d < Decimal::ZERO { Err(MoneyError::Range) } else { Ok(Amount(d)) }
    }

    /// The smaller of two amounts in the same currency.
    pub fn checked_min(self, other: Amount) -> Result<Amount, MoneyError> {
        self.same_scale(other)?;
        Ok(if other.0 < self.0 { other } else { self })
    }

    /// At most `other` (same currency): `self <= other`.
    pub fn checked_le(self, other: Amount) -> Result<bool, MoneyError> {
        self.same_scale(other)?;
        Ok(self.0 <= other.0)
    }

    /// A count of minor units (ISO 8583 DE4, a stored column) in `currency`; when that is a currency
    /// nobody configured (None), the bare count at scale 0, to be recorded and echoed, never computed
    /// with (see the module's notes).
    pub fn from_de4(minor: i64, currency: Option<&Currency>) -> Amount {
        match currency {
            Some(c) => Amount::from_minor(minor, c),
            None => Amount(Decimal::new(minor, 0)),
        }
    }

    fn rescale(mut d: Decimal, scale: u32) -> Decimal {
        d.rescale(scale);
        d
    }
}

/// Zero at scale 0, only so that rows can be built field by field (`TxnRow::default()`): arithmetic
/// with it refuses any currency of another scale, so set the currency's own ([`Amount::zero`]) where it
/// counts.
impl Default for Amount {
    fn default() -> Amount {
        Amount(Decimal::ZERO)
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Written as its count of minor units, an integer column on every backend. There is no `Decode`:
/// reading needs the row's currency (see the module's notes and [`Currencies::stored`]).
impl<DB: sqlx::Database> sqlx::Type<DB> for Amount
where
    i64: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <i64 as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <i64 as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Amount
where
    i64: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        let minor = self.stored_minor().ok_or(MoneyError::Range)?;
        <i64 as sqlx::Encode<'q, DB>>::encode(minor, buf)
    }
}

/// The same, for the SQLite write thread's connection (`store/write_thread.rs`).
impl rusqlite::types::ToSql for Amount {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        let minor = self.stored_minor().ok_or(rusqlite::Error::ToSqlConversionFailure(Box::new(MoneyError::Range)))?;
        Ok(minor.into())
    }
}

/// The currencies the platform is configured with and its default: what reads a stored count of minor
/// units back into an [`Amount`] at the scale of the row's currency.
#[derive(Debug, Clone, Default)]
pub struct Currencies {
    known: Vec<Currency>,
    default: Option<Currency>,
}

impl Currencies {
    pub fn new(known: Vec<Currency>, default: &str) -> Currencies {
        let default = find(&known, default).cloned();
        Currencies { known, default }
    }

    /// A currency by alphabetic or numeric code.
    pub fn get(&self, code: &str) -> Option<&Currency> {
        find(&self.known, code)
    }

    /// A message's DE49 currency: that one when present (None when unknown), the platform's when absent.
    pub fn of_de49(&self, de49: Option<&str>) -> Option<&Currency> {
        match de49 {
            Some(c) => self.get(c),
            None => self.default.as_ref(),
        }
    }

    /// A stored count of minor units in the currency `code` names (alphabetic or numeric; None is the
    /// platform's, as for DE49). A currency not configured gives the bare count at scale 0.
    pub fn stored(&self, code: Option<&str>, minor: i64) -> Amount {
        Amount::from_de4(minor, self.of_de49(code))
    }
}

/// The currency `code` names in `list`: its alphabetic code (any case) or its numeric one.
pub fn find<'a>(list: &'a [Currency], code: &str) -> Option<&'a Currency> {
    list.iter().find(|c| c.code.eq_ignore_ascii_case(code) || c.numeric == code)
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

    #[test]
    fn arithmetic_stays_in_one_currency() {
        let (won, cents) = (|m| Amount::from_minor(m, &krw()), |m| Amount::from_minor(m, &usd()));
        assert_eq!(won(1_000).checked_add(won(500)), Ok(won(1_500)));
        assert_eq!(won(1_000).checked_sub(won(400)), Ok(won(600)));
        assert_eq!(won(1_000).checked_sub(won(1_000)), Ok(Amount::zero(&krw())));
        assert_eq!(won(400).checked_sub(won(1_000)), Err(MoneyError::Range));
        assert_eq!(won(400).checked_min(won(1_000)), Ok(won(400)));
        assert_eq!(won(1_000).checked_min(won(400)), Ok(won(400)));
        assert_eq!(won(400).checked_le(won(400)), Ok(true));
        assert_eq!(won(401).checked_le(won(400)), Ok(false));
        // Cents and won never mix, whatever the operation.
        assert_eq!(won(100).checked_add(cents(100)), Err(MoneyError::Scale));
        assert_eq!(won(100).checked_sub(cents(1)), Err(MoneyError::Scale));
        assert_eq!(won(100).checked_min(cents(1)), Err(MoneyError::Scale));
        assert_eq!(won(100).checked_le(cents(1)), Err(MoneyError::Scale));
        assert_eq!(Amount::zero(&usd()).checked_add(won(0)), Err(MoneyError::Scale));
        assert_eq!(won(i64::MAX).checked_add(won(1)), Err(MoneyError::Range));
        assert_eq!(cents(1_250).checked_add(cents(1)).map(Amount::stored_minor), Ok(Some(1_251)));
        assert!(Amount::zero(&usd()).is_zero() && !Amount::zero(&usd()).is_positive() && cents(1).is_positive());
        assert_eq!((Amount::zero(&usd()).scale(), won(5).scale()), (2, 0));
    }

    #[test]
    fn stored_counts_read_back_at_the_row_currency_scale() {
        let table = Currencies::new(vec![krw(), usd()], "KRW");
        assert_eq!(table.stored(Some("840"), 1_250).to_string(), "12.50");
        assert_eq!(table.stored(Some("usd"), 1_250).to_string(), "12.50");
        assert_eq!(table.stored(Some("410"), 1_250).to_string(), "1250");
        // No DE49: the platform's currency.
        assert_eq!(table.stored(None, 1_250).to_string(), "1250");
        // A currency nobody configured: the bare count, which still writes back unchanged.
        let odd = table.stored(Some("999"), 1_250);
        assert_eq!((odd.scale(), odd.stored_minor()), (0, Some(1_250)));
        assert_eq!(table.of_de49(Some("999")), None);
        assert_eq!(table.of_de49(None).map(|c| c.code.as_str()), Some("KRW"));
        // Every stored count reads back as itself.
        for m in [0, 1, 99, 1_250, i64::MAX] {
            assert_eq!(table.stored(Some("840"), m).stored_minor(), Some(m));
        }
    }
}
