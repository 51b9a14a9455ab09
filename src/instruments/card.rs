//! Card cancellation rules (docs/instruments.md "Cards"), and the pieces the three instrument files
//! share.
//!
//! This file owns:
//! - how much of a card payment may still be cancelled: partial cancels, any number of them, up to the
//!   original amount; past that [`RuleError::ExceedsCancellable`] (response code `64`);
//! - whether a cancel is a *void* (same business day as the payment) or a *refund* (a later business day):
//!   [`BusinessDayRule`] closes a business day at a daily cut-off time in a fixed UTC offset (Korea: 23:00 at
//!   +09:00) and at every explicit settlement ("close the day now", `tsp settle`);
//! - [`RuleError`], the one error type of `card.rs`, `gift.rs` and `local.rs`, and the minor-unit helpers
//!   they share.
//!
//! Everything here is pure: state comes in as values, decisions come out; the caller persists them.
//!
//! Money: every public amount is an [`Amount`] at its currency's scale. Inside, arithmetic runs on the
//! count of minor units (`i64`, checked), which is exact and is how amounts are stored and sent in DE4;
//! rates are [`Decimal`]. No floats anywhere.

use rust_decimal::Decimal;
use time::{Time, UtcOffset};

use crate::money::{Amount, Currency};

/// Why a payment or cancellation rule refused. Each variant names the response code it stands for
/// (docs/iso8583.md "Response codes"); the mapping to DE39 belongs to `payments::codes`. Messages
/// carry amounts only, never a PAN or a gift code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// `64`: the cancel asks for more than the payment has left to cancel.
    #[error("cancel of {requested} exceeds the {cancellable} left to cancel")]
    ExceedsCancellable { requested: Amount, cancellable: Amount },
    /// `51`: the stored value cannot cover the payment.
    #[error("payment of {requested} exceeds the {available} available")]
    InsufficientFunds { requested: Amount, available: Amount },
    /// `54`: the instrument (a gift certificate) is past its expiry and no longer spendable.
    #[error("instrument has expired")]
    Expired,
    /// `13`: zero, negative, too large, or at a scale other than the currency's.
    #[error("invalid amount: {0}")]
    InvalidAmount(&'static str),
    /// Configuration outside its allowed range (refused when the config is loaded).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// `96`: the stored state contradicts itself (e.g. a restore that would exceed a face value). The
    /// rules check before they change anything, so state is left untouched.
    #[error("inconsistent state: {0}")]
    Inconsistent(&'static str),
}

// ---------------------------------------------------------------------------------------------------
// Minor-unit helpers shared by card.rs, gift.rs and local.rs.

/// The count of minor units of a non-negative amount. Refuses an amount built at another scale, because
/// then its mantissa would count the wrong unit and every later sum would be silently wrong.
pub(super) fn units(a: Amount, currency: &Currency) -> Result<i64, RuleError> {
    let d = a.decimal();
    if d.scale() != currency.scale {
        return Err(RuleError::InvalidAmount("scale differs from the currency's"));
    }
    let m = i64::try_from(d.mantissa()).map_err(|_| RuleError::InvalidAmount("too large"))?;
    if m < 0 {
        return Err(RuleError::InvalidAmount("negative"));
    }
    Ok(m)
}

/// Like [`units`], and refuses zero: paying, charging or cancelling nothing is a malformed request.
pub(super) fn positive_units(a: Amount, currency: &Currency) -> Result<i64, RuleError> {
    match units(a, currency)? {
        0 => Err(RuleError::InvalidAmount("zero")),
        m => Ok(m),
    }
}

/// An [`Amount`] from minor units.
pub(super) fn amount(minor: i64, currency: &Currency) -> Amount {
    Amount::from_minor(minor, currency)
}

/// Checked minor-unit sum; the only way it fails is a balance beyond 9.2e18 minor units.
pub(super) fn add(a: i64, b: i64) -> Result<i64, RuleError> {
    a.checked_add(b).ok_or(RuleError::InvalidAmount("too large"))
}

/// Checked minor-unit difference that must stay non-negative; a negative result means the stored state
/// is wrong, not the request.
pub(super) fn sub(a: i64, b: i64) -> Result<i64, RuleError> {
    a.checked_sub(b).filter(|d| *d >= 0).ok_or(RuleError::Inconsistent("a balance would go negative"))
}

/// `floor(minor × rate)`: a rate applied to an amount, rounded down to the currency's minor unit. Down,
/// because a bonus or a cash refund computed from a rate must never pay out a unit that was not earned.
pub(super) fn floor_rate(minor: i64, rate: Decimal) -> Result<i64, RuleError> {
    let product = Decimal::from(minor).checked_mul(rate).ok_or(RuleError::InvalidAmount("too large"))?;
    i64::try_from(product.floor()).map_err(|_| RuleError::InvalidAmount("too large"))
}

/// Checks a rate configuration value lies in `[0, 1]`.
pub(super) fn check_ratio(rate: Decimal, what: &'static str) -> Result<(), RuleError> {
    if rate < Decimal::ZERO || rate > Decimal::ONE { Err(RuleError::InvalidConfig(what)) } else { Ok(()) }
}

/// The cancellation ceiling common to every instrument (docs/instruments.md "Rules every kind shares":
/// "the sum of a payment's cancels never exceeds the payment"): given what a payment took and what
/// earlier cancels returned, the cumulative cancelled total after cancelling `requested` more, or
/// `64`.
pub(super) fn checked_cancel(
    original: i64,
    cancelled: i64,
    requested: i64,
    currency: &Currency,
) -> Result<i64, RuleError> {
    let left = sub(original, cancelled)?;
    if requested > left {
        return Err(RuleError::ExceedsCancellable {
            requested: amount(requested, currency),
            cancellable: amount(left, currency),
        });
    }
    add(cancelled, requested)
}

// ---------------------------------------------------------------------------------------------------
// Business days: void or refund.

const DAY_MS: i64 = 86_400_000;

/// Whether a card cancel undoes the payment before settlement or refunds it afterwards. The issuer
/// treats the two differently (a void never reaches the cardholder's statement), so the transaction
/// record keeps which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelType {
    /// Same business day as the payment: the payment is withdrawn before it settles.
    Void,
    /// A later business day: the payment has settled and money goes back.
    Refund,
}

// Stored and shown as `void` / `refund` (the words the transaction record and the REST API use):
// `store::records` gives it its text form.

/// One business day: `[opened_at_ms, closes_at_ms)`. A day opens at the later of the last daily cut-off
/// and the last settlement at or before the instant, and closes at the earlier of the next cut-off and the
/// next settlement already recorded (a settlement recorded later may close it sooner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessDay {
    pub opened_at_ms: i64,
    pub closes_at_ms: i64,
}

/// When business days end: a daily cut-off time in a fixed UTC offset, plus every explicit settlement.
///
/// A fixed offset, not a zone database, because Korea has no daylight saving and the acquirer's cut-off
/// is defined in wall-clock KST; a deployment elsewhere configures its offset. A boundary (cut-off or
/// settlement) at instant `b` belongs to the new day: the old day is `[.., b)`, so a payment at exactly
/// `b` is already in the next business day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessDayRule {
    /// The offset the cut-off time is read in (Korea: +09:00).
    pub utc_offset: UtcOffset,
    /// The local time of day at which each business day closes (e.g. 23:00).
    pub cutoff: Time,
}

impl Default for BusinessDayRule {
    /// Korea: cut-off 23:00 KST (+09:00).
    fn default() -> Self {
        Self::korea()
    }
}

impl BusinessDayRule {
    pub fn new(utc_offset: UtcOffset, cutoff: Time) -> Self {
        Self { utc_offset, cutoff }
    }

    /// Korean acquiring: the day closes at 23:00 KST.
    pub fn korea() -> Self {
        Self { utc_offset: time::macros::offset!(+9), cutoff: time::macros::time!(23:00) }
    }

    /// From config text: an offset like `+09:00` and a cut-off like `23:00` or `23:00:00`.
    pub fn parse(utc_offset: &str, cutoff: &str) -> Result<Self, RuleError> {
        let offset = UtcOffset::parse(
            utc_offset,
            time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]"),
        )
        .map_err(|_| RuleError::InvalidConfig("utc offset must look like +09:00"))?;
        let hm = time::macros::format_description!("[hour]:[minute]");
        let hms = time::macros::format_description!("[hour]:[minute]:[second]");
        let cutoff = Time::parse(cutoff, hm)
            .or_else(|_| Time::parse(cutoff, hms))
            .map_err(|_| RuleError::InvalidConfig("cut-off must look like 23:00"))?;
        Ok(Self::new(offset, cutoff))
    }

    fn offset_ms(&self) -> i64 {
        i64::from(self.utc_offset.whole_seconds()) * 1000
    }

    fn cutoff_ms_of_day(&self) -> i64 {
        let (h, m, s, milli) = self.cutoff.as_hms_milli();
        ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(s)) * 1000 + i64::from(milli)
    }

    /// The latest daily cut-off instant at or before `at_ms`.
    pub fn last_cutoff_at_or_before(&self, at_ms: i64) -> i64 {
        let local = at_ms.saturating_add(self.offset_ms());
        let since = local.saturating_sub(self.cutoff_ms_of_day());
        let days = since.div_euclid(DAY_MS);
        days.saturating_mul(DAY_MS).saturating_add(self.cutoff_ms_of_day()).saturating_sub(self.offset_ms())
    }

    /// The business day `at_ms` falls in, given the recorded settlement instants (any order; instants far
    /// from `at_ms` are harmless).
    pub fn business_day(&self, at_ms: i64, settlements: &[i64]) -> BusinessDay {
        let cutoff = self.last_cutoff_at_or_before(at_ms);
        let opened = settlements.iter().copied().filter(|s| *s <= at_ms).fold(cutoff, i64::max);
        let next_cutoff = cutoff.saturating_add(DAY_MS);
        let closes = settlements.iter().copied().filter(|s| *s > at_ms).fold(next_cutoff, i64::min);
        BusinessDay { opened_at_ms: opened, closes_at_ms: closes }
    }

    /// Void when the payment and the cancel fall in the same business day, i.e. no cut-off and no
    /// settlement lies in `(paid_at_ms, cancel_at_ms]`; refund otherwise. `settlements` needs to hold at
    /// least the settlements in that interval.
    pub fn cancel_type(&self, paid_at_ms: i64, cancel_at_ms: i64, settlements: &[i64]) -> CancelType {
        let paid = self.business_day(paid_at_ms, settlements);
        let cancel = self.business_day(cancel_at_ms, settlements);
        if paid.opened_at_ms == cancel.opened_at_ms { CancelType::Void } else { CancelType::Refund }
    }
}

// ---------------------------------------------------------------------------------------------------
// Card payments and their cancels.

/// What the cancellation rules need to know about one approved card purchase (the caller loads it from
/// the transaction record and saves it back after [`CardPayment::cancel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPayment {
    /// The approved amount.
    pub amount: Amount,
    /// The sum of the cancels approved so far.
    pub cancelled: Amount,
    /// When the purchase was approved (Unix ms).
    pub paid_at_ms: i64,
}

/// The outcome of one approved card cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCancel {
    /// The amount this cancel returns (forwarded to the issuer).
    pub amount: Amount,
    pub cancel_type: CancelType,
    /// The payment's cancelled total after this cancel.
    pub cancelled_total: Amount,
    /// What is still left to cancel.
    pub remaining: Amount,
}

impl CardPayment {
    /// A purchase with nothing cancelled yet.
    pub fn new(amount: Amount, paid_at_ms: i64, currency: &Currency) -> Self {
        Self { amount, cancelled: Amount::from_minor(0, currency), paid_at_ms }
    }

    /// What may still be cancelled.
    pub fn remaining(&self, currency: &Currency) -> Result<Amount, RuleError> {
        Ok(amount(sub(units(self.amount, currency)?, units(self.cancelled, currency)?)?, currency))
    }

    /// Cancels `requested` of this payment at `now_ms`: partial and repeated cancels are fine up to the
    /// original amount; beyond it `64` and nothing changes. The cancel is a void or a refund by
    /// `rule` and the recorded settlements.
    pub fn cancel(
        &mut self,
        requested: Amount,
        now_ms: i64,
        currency: &Currency,
        rule: &BusinessDayRule,
        settlements: &[i64],
    ) -> Result<CardCancel, RuleError> {
        let req = positive_units(requested, currency)?;
        let original = units(self.amount, currency)?;
        let total = checked_cancel(original, units(self.cancelled, currency)?, req, currency)?;
        let cancel_type = rule.cancel_type(self.paid_at_ms, now_ms, settlements);
        self.cancelled = amount(total, currency);
        Ok(CardCancel {
            amount: requested,
            cancel_type,
            cancelled_total: self.cancelled,
            remaining: amount(sub(original, total)?, currency),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::test_currencies::{krw, usd};
    use proptest::prelude::*;

    fn won(n: i64) -> Amount {
        Amount::from_minor(n, &krw())
    }

    /// 2025-03-14 00:00:00 KST as Unix ms (2025-03-13T15:00:00Z).
    const MAR14_KST: i64 = 1_741_878_000_000;
    const H: i64 = 3_600_000;
    const M: i64 = 60_000;

    #[test]
    fn partial_and_repeated_cancels_up_to_the_original() {
        let rule = BusinessDayRule::korea();
        let mut p = CardPayment::new(won(50_000), MAR14_KST + 10 * H, &krw());
        let c1 = p.cancel(won(20_000), MAR14_KST + 11 * H, &krw(), &rule, &[]).unwrap();
        assert_eq!((c1.cancelled_total, c1.remaining), (won(20_000), won(30_000)));
        let c2 = p.cancel(won(25_000), MAR14_KST + 12 * H, &krw(), &rule, &[]).unwrap();
        assert_eq!((c2.cancelled_total, c2.remaining), (won(45_000), won(5_000)));
        // 6,000 > 5,000 left: 64, and nothing changes.
        let e = p.cancel(won(6_000), MAR14_KST + 13 * H, &krw(), &rule, &[]).unwrap_err();
        assert_eq!(e, RuleError::ExceedsCancellable { requested: won(6_000), cancellable: won(5_000) });
        assert_eq!(p.cancelled, won(45_000));
        let c3 = p.cancel(won(5_000), MAR14_KST + 13 * H, &krw(), &rule, &[]).unwrap();
        assert_eq!(c3.remaining, won(0));
        // Fully cancelled: even 1 won is too much.
        let e = p.cancel(won(1), MAR14_KST + 14 * H, &krw(), &rule, &[]).unwrap_err();
        assert!(matches!(e, RuleError::ExceedsCancellable { .. }));
    }

    #[test]
    fn refuses_zero_and_foreign_scale() {
        let rule = BusinessDayRule::korea();
        let mut p = CardPayment::new(won(1_000), MAR14_KST, &krw());
        assert_eq!(p.cancel(won(0), MAR14_KST, &krw(), &rule, &[]), Err(RuleError::InvalidAmount("zero")));
        let cents = Amount::from_minor(100, &usd());
        assert!(matches!(p.cancel(cents, MAR14_KST, &krw(), &rule, &[]), Err(RuleError::InvalidAmount(_))));
        // Exact in a two-decimal currency: 12.50 − 12.49 leaves 0.01.
        let mut q = CardPayment::new(Amount::parse("12.50", &usd()).unwrap(), MAR14_KST, &usd());
        let c = q.cancel(Amount::parse("12.49", &usd()).unwrap(), MAR14_KST, &usd(), &rule, &[]).unwrap();
        assert_eq!(c.remaining.to_string(), "0.01");
    }

    #[test]
    fn daily_cutoff_at_23_kst_decides_void_or_refund() {
        let rule = BusinessDayRule::korea();
        let at = |h: i64, m: i64| MAR14_KST + h * H + m * M;
        // 22:00 → 22:30 the same evening: void.
        assert_eq!(rule.cancel_type(at(22, 0), at(22, 30), &[]), CancelType::Void);
        // 22:59 → 23:01: the 23:00 cut-off lies between: refund.
        assert_eq!(rule.cancel_type(at(22, 59), at(23, 1), &[]), CancelType::Refund);
        // Cancel at exactly 23:00 is already in the next business day.
        assert_eq!(rule.cancel_type(at(22, 59), at(23, 0), &[]), CancelType::Refund);
        // 23:30 on the 14th → 00:30 on the 15th: both in the business day that opened at 23:00.
        assert_eq!(rule.cancel_type(at(23, 30), at(24, 30), &[]), CancelType::Void);
        // 09:00 on the 14th → 09:00 on the 15th: refund.
        assert_eq!(rule.cancel_type(at(9, 0), at(33, 0), &[]), CancelType::Refund);
        // 23:00 KST is 14:00Z.
        assert_eq!(rule.last_cutoff_at_or_before(at(23, 0)), at(23, 0));
        assert_eq!((at(23, 0) / H) % 24, 14);
    }

    #[test]
    fn explicit_settlement_closes_the_day_now() {
        let rule = BusinessDayRule::korea();
        let at = |h: i64, m: i64| MAR14_KST + h * H + m * M;
        let settled = [at(15, 0)];
        // Paid 10:00, settled 15:00, cancelled 16:00: refund although before the 23:00 cut-off.
        assert_eq!(rule.cancel_type(at(10, 0), at(16, 0), &settled), CancelType::Refund);
        // Paid and cancelled after the settlement, before the cut-off: the new day, void.
        assert_eq!(rule.cancel_type(at(15, 30), at(22, 0), &settled), CancelType::Void);
        // A payment at exactly the settlement instant belongs to the new day.
        assert_eq!(rule.cancel_type(at(15, 0), at(16, 0), &settled), CancelType::Void);
        // Settlements far away do not matter; order does not matter.
        let many = [at(200, 0), at(15, 0), at(-50, 0)];
        assert_eq!(rule.cancel_type(at(10, 0), at(14, 59), &many), CancelType::Void);
        let day = rule.business_day(at(16, 0), &many);
        assert_eq!(day, BusinessDay { opened_at_ms: at(15, 0), closes_at_ms: at(23, 0) });
        let day = rule.business_day(at(10, 0), &many);
        assert_eq!(day, BusinessDay { opened_at_ms: at(-1, 0), closes_at_ms: at(15, 0) });
    }

    #[test]
    fn the_cutoff_and_offset_are_configuration() {
        let rule = BusinessDayRule::parse("+00:00", "18:30").unwrap();
        let noon_utc = MAR14_KST + 21 * H; // 2025-03-14T12:00Z
        assert_eq!(rule.cancel_type(noon_utc, noon_utc + 6 * H, &[]), CancelType::Void); // 18:00Z
        assert_eq!(rule.cancel_type(noon_utc, noon_utc + 6 * H + 30 * M, &[]), CancelType::Refund);
        let rule = BusinessDayRule::parse("-05:00", "00:00:00").unwrap();
        assert_eq!(rule.last_cutoff_at_or_before(5 * H), 5 * H); // local midnight = 05:00Z
        assert!(BusinessDayRule::parse("9", "23:00").is_err());
        assert!(BusinessDayRule::parse("+09:00", "25:00").is_err());
        assert_eq!(BusinessDayRule::default(), BusinessDayRule::parse("+09:00", "23:00").unwrap());
        assert_eq!(CancelType::Void.as_str(), "void");
        assert_eq!(CancelType::Refund.as_str(), "refund");
    }

    proptest! {
        /// Random partial cancels: the cancelled total never passes the original, every refused cancel
        /// is exactly one that would have passed it, and a full cancel is possible to the last unit.
        #[test]
        fn cancels_never_exceed_the_original(
            original in 1i64..1_000_000,
            asks in prop::collection::vec(1i64..400_000, 1..20),
        ) {
            let rule = BusinessDayRule::korea();
            let mut p = CardPayment::new(won(original), MAR14_KST, &krw());
            let mut total = 0i64;
            for ask in asks {
                match p.cancel(won(ask), MAR14_KST + H, &krw(), &rule, &[]) {
                    Ok(c) => {
                        total += ask;
                        prop_assert_eq!(c.cancelled_total, won(total));
                        prop_assert_eq!(c.remaining, won(original - total));
                    }
                    Err(RuleError::ExceedsCancellable { cancellable, .. }) => {
                        prop_assert!(total + ask > original);
                        prop_assert_eq!(cancellable, won(original - total));
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
                prop_assert!(total <= original);
            }
            let left = original - total;
            if left > 0 {
                let c = p.cancel(won(left), MAR14_KST + H, &krw(), &rule, &[]).unwrap();
                prop_assert_eq!(c.remaining, won(0));
            }
        }

        /// Void exactly when no boundary (daily cut-off or settlement) lies in (paid, cancel].
        #[test]
        fn void_iff_no_boundary_between(
            paid in 0i64..30 * DAY_MS,
            delay in 0i64..3 * DAY_MS,
            offset_h in -12i8..=14,
            cut_h in 0u8..24,
            cut_m in 0u8..60,
            settlements in prop::collection::vec(0i64..33 * DAY_MS, 0..5),
        ) {
            let rule = BusinessDayRule::new(
                UtcOffset::from_hms(offset_h, 0, 0).unwrap(),
                Time::from_hms(cut_h, cut_m, 0).unwrap(),
            );
            let cancel = paid + delay;
            let cutoff_between = rule.last_cutoff_at_or_before(cancel) > paid;
            let settled_between = settlements.iter().any(|s| paid < *s && *s <= cancel);
            let expected = if cutoff_between || settled_between { CancelType::Refund } else { CancelType::Void };
            prop_assert_eq!(rule.cancel_type(paid, cancel, &settlements), expected);
            // The day holding an instant contains it.
            let day = rule.business_day(paid, &settlements);
            prop_assert!(day.opened_at_ms <= paid && paid < day.closes_at_ms);
            prop_assert!(day.closes_at_ms - day.opened_at_ms <= DAY_MS);
        }
    }
}
