//! Gift certificate (금액형 상품권) rules (docs/instruments.md "Gift certificates and the ledger"):
//! one certificate with a face value, a currency, an expiry and a balance.
//!
//! This file owns:
//! - payment against the balance: partial use over many payments, `51` above the balance
//!   ([`RuleError::InsufficientFunds`]), `54` once expired ([`RuleError::Expired`]);
//! - cancellation: restores exactly the cancelled amount, never more than that payment took minus its
//!   earlier cancels (`64`); after expiry the restored amount is not spendable but joins the refundable
//!   balance;
//! - the cash-refund amount under the Korean standard terms for gift certificates (신유형 상품권
//!   표준약관), configurable in [`GiftRefundTerms`]: before expiry the whole balance once 60% of the face
//!   value has been used (80% when the face value is at or under 10,000 KRW), else nothing; after expiry
//!   90% of the balance (some terms say 95%).
//!
//! Pure: the caller loads a [`GiftCertificate`] and its [`GiftPayment`]s, applies a rule, saves both and
//! posts the movement to the ledger in the same transaction. Issuance codes and registration to a wallet
//! live elsewhere (they are not money rules).

use rust_decimal::Decimal;

use super::card::{RuleError, add, amount, check_ratio, checked_cancel, floor_rate, positive_units, sub, units};
use crate::money::{Amount, Currency};

/// The cash-refund terms for gift certificates. Defaults are the Korean standard terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftRefundTerms {
    /// Share of the face value that must have been used before an unexpired balance is refundable
    /// (default 0.60).
    pub min_used_ratio: Decimal,
    /// The same share for small certificates (default 0.80): on a small certificate 60% would leave a
    /// refund too large relative to what was spent, which is why the terms are stricter there.
    pub small_min_used_ratio: Decimal,
    /// The currency in which "small" is defined (default `KRW`); certificates in other currencies always
    /// use [`Self::min_used_ratio`], because a KRW threshold means nothing in USD.
    pub small_face_value_currency: String,
    /// A face value at or under this (in that currency's major unit) is small (default 10,000).
    pub small_face_value_max: Decimal,
    /// Share of the balance paid out after expiry (default 0.90; some terms say 0.95).
    pub after_expiry_rate: Decimal,
}

impl Default for GiftRefundTerms {
    fn default() -> Self {
        Self {
            min_used_ratio: Decimal::new(60, 2),
            small_min_used_ratio: Decimal::new(80, 2),
            small_face_value_currency: "KRW".into(),
            small_face_value_max: Decimal::from(10_000),
            after_expiry_rate: Decimal::new(90, 2),
        }
    }
}

impl GiftRefundTerms {
    /// Ratios and rates must lie in `[0, 1]`: a refund may never exceed the balance.
    pub fn validate(&self) -> Result<(), RuleError> {
        check_ratio(self.min_used_ratio, "min_used_ratio must be within 0..=1")?;
        check_ratio(self.small_min_used_ratio, "small_min_used_ratio must be within 0..=1")?;
        check_ratio(self.after_expiry_rate, "after_expiry_rate must be within 0..=1")?;
        if self.small_face_value_max < Decimal::ZERO {
            return Err(RuleError::InvalidConfig("small_face_value_max must not be negative"));
        }
        Ok(())
    }

    /// The used share that unlocks a refund for this certificate.
    fn used_ratio_for(&self, face_value: Amount, currency: &Currency) -> Decimal {
        let small = currency.code.eq_ignore_ascii_case(&self.small_face_value_currency)
            && face_value.decimal() <= self.small_face_value_max;
        if small { self.small_min_used_ratio } else { self.min_used_ratio }
    }
}

/// A gift certificate's money state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftCertificate {
    pub currency: Currency,
    /// What it was issued for.
    pub face_value: Amount,
    /// What is left: spendable before expiry, refundable (under the terms) always.
    pub balance: Amount,
    /// The first instant (Unix ms) it is no longer spendable: expired when `now >= expires_at_ms`.
    pub expires_at_ms: i64,
}

/// One payment against a certificate, as the cancellation rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftPayment {
    /// What the payment took from the balance.
    pub amount: Amount,
    /// What cancels have restored so far.
    pub cancelled: Amount,
}

/// The outcome of one cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftCancel {
    /// Restored to the certificate: exactly the cancelled amount.
    pub restored: Amount,
    /// What is still left to cancel on that payment.
    pub remaining: Amount,
    /// False when the certificate had expired: the amount joined the balance but only as refundable.
    pub spendable: bool,
}

/// The balance view (`GET /v1/instruments/{id}/balance`): a gift certificate's balance is its principal;
/// it never has a bonus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftBalance {
    pub principal: Amount,
    pub bonus: Amount,
    /// What a payment could use now (zero once expired).
    pub spendable: Amount,
    /// What a cash refund would pay now under the terms.
    pub refundable: Amount,
}

impl GiftCertificate {
    /// A newly issued certificate: the balance is the face value.
    pub fn issue(face_value: Amount, currency: Currency, expires_at_ms: i64) -> Result<Self, RuleError> {
        positive_units(face_value, &currency)?;
        Ok(Self { balance: face_value, face_value, currency, expires_at_ms })
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at_ms
    }

    /// What a payment may use now: the balance before expiry, nothing after.
    pub fn spendable(&self, now_ms: i64) -> Amount {
        if self.is_expired(now_ms) { amount(0, &self.currency) } else { self.balance }
    }

    /// Pays `requested` from the balance. The caller has checked the payment's currency is the
    /// certificate's; `requested` must be at its scale. Refuses with `54` once expired and `51` above the
    /// balance; nothing changes on refusal.
    pub fn pay(&mut self, requested: Amount, now_ms: i64) -> Result<GiftPayment, RuleError> {
        let req = positive_units(requested, &self.currency)?;
        if self.is_expired(now_ms) {
            return Err(RuleError::Expired);
        }
        let balance = units(self.balance, &self.currency)?;
        if req > balance {
            return Err(RuleError::InsufficientFunds { requested, available: self.balance });
        }
        self.balance = amount(sub(balance, req)?, &self.currency);
        Ok(GiftPayment { amount: requested, cancelled: amount(0, &self.currency) })
    }

    /// Cancels `requested` of `payment`, restoring exactly that much to the balance. Refuses with `64`
    /// past what the payment took minus earlier cancels. After expiry the cancel still succeeds (the
    /// merchant still owes the money back) and the amount joins the refundable balance.
    pub fn cancel(
        &mut self,
        payment: &mut GiftPayment,
        requested: Amount,
        now_ms: i64,
    ) -> Result<GiftCancel, RuleError> {
        let cur = &self.currency;
        let req = positive_units(requested, cur)?;
        let original = units(payment.amount, cur)?;
        let total = checked_cancel(original, units(payment.cancelled, cur)?, req, cur)?;
        let balance = add(units(self.balance, cur)?, req)?;
        if balance > units(self.face_value, cur)? {
            // Only possible if the payment record does not belong to this certificate.
            return Err(RuleError::Inconsistent("restore would exceed the face value"));
        }
        self.balance = amount(balance, cur);
        payment.cancelled = amount(total, cur);
        Ok(GiftCancel {
            restored: requested,
            remaining: amount(sub(original, total)?, cur),
            spendable: !self.is_expired(now_ms),
        })
    }

    /// What a cash refund would pay now (Korean standard terms;
    /// docs/instruments.md "Gift certificates and the ledger"): before expiry the whole balance once
    /// `face − balance ≥ face × ratio` (compared exactly), else nothing; after expiry
    /// `floor(balance × after_expiry_rate)` in minor units — rounded down so the payout never exceeds
    /// the rate.
    pub fn refundable(&self, terms: &GiftRefundTerms, now_ms: i64) -> Result<Amount, RuleError> {
        terms.validate()?;
        let cur = &self.currency;
        let balance = units(self.balance, cur)?;
        if self.is_expired(now_ms) {
            return Ok(amount(floor_rate(balance, terms.after_expiry_rate)?, cur));
        }
        let face = units(self.face_value, cur)?;
        let used = sub(face, balance)?;
        let ratio = terms.used_ratio_for(self.face_value, cur);
        let threshold = Decimal::from(face).checked_mul(ratio).ok_or(RuleError::InvalidAmount("too large"))?;
        Ok(if Decimal::from(used) >= threshold { self.balance } else { amount(0, cur) })
    }

    /// The balance view at `now_ms`.
    pub fn balance_view(&self, terms: &GiftRefundTerms, now_ms: i64) -> Result<GiftBalance, RuleError> {
        Ok(GiftBalance {
            principal: self.balance,
            bonus: amount(0, &self.currency),
            spendable: self.spendable(now_ms),
            refundable: self.refundable(terms, now_ms)?,
        })
    }
}

impl GiftPayment {
    /// What is still left to cancel; a reversal (`0400`) cancels exactly this.
    pub fn remaining(&self, currency: &Currency) -> Result<Amount, RuleError> {
        Ok(amount(sub(units(self.amount, currency)?, units(self.cancelled, currency)?)?, currency))
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
    const EXPIRY: i64 = 1_800_000_000_000;
    const BEFORE: i64 = EXPIRY - 1;

    fn cert(face: i64) -> GiftCertificate {
        GiftCertificate::issue(won(face), krw(), EXPIRY).unwrap()
    }

    #[test]
    fn pays_partly_over_many_payments_and_declines_above_the_balance() {
        let mut g = cert(50_000);
        g.pay(won(20_000), BEFORE).unwrap();
        g.pay(won(25_000), BEFORE).unwrap();
        assert_eq!(g.balance, won(5_000));
        let e = g.pay(won(5_001), BEFORE).unwrap_err();
        assert_eq!(e, RuleError::InsufficientFunds { requested: won(5_001), available: won(5_000) });
        assert_eq!(g.balance, won(5_000));
        g.pay(won(5_000), BEFORE).unwrap();
        assert_eq!(g.balance, won(0));
        assert_eq!(g.pay(won(0), BEFORE).unwrap_err(), RuleError::InvalidAmount("zero"));
    }

    #[test]
    fn expired_certificate_is_not_spendable() {
        let mut g = cert(50_000);
        assert_eq!(g.spendable(BEFORE), won(50_000));
        assert_eq!(g.pay(won(1_000), EXPIRY), Err(RuleError::Expired));
        assert_eq!(g.spendable(EXPIRY), won(0));
        assert_eq!(g.balance, won(50_000));
    }

    #[test]
    fn cancel_restores_exactly_and_never_more_than_the_payment_took() {
        let mut g = cert(50_000);
        let mut p = g.pay(won(30_000), BEFORE).unwrap();
        let mut q = g.pay(won(10_000), BEFORE).unwrap();
        assert_eq!(g.balance, won(10_000));
        let c = g.cancel(&mut p, won(12_000), BEFORE).unwrap();
        assert_eq!((c.restored, c.remaining, c.spendable), (won(12_000), won(18_000), true));
        assert_eq!(g.balance, won(22_000));
        // 18,001 > 18,000 left on p: 64 and nothing moves.
        let e = g.cancel(&mut p, won(18_001), BEFORE).unwrap_err();
        assert_eq!(e, RuleError::ExceedsCancellable { requested: won(18_001), cancellable: won(18_000) });
        assert_eq!(g.balance, won(22_000));
        g.cancel(&mut p, won(18_000), BEFORE).unwrap();
        assert_eq!(g.balance, won(40_000));
        assert!(matches!(g.cancel(&mut p, won(1), BEFORE), Err(RuleError::ExceedsCancellable { .. })));
        // q is a separate payment with its own ceiling.
        assert_eq!(q.remaining(&krw()).unwrap(), won(10_000));
        g.cancel(&mut q, won(10_000), BEFORE).unwrap();
        assert_eq!(g.balance, won(50_000));
    }

    #[test]
    fn cancel_after_expiry_joins_the_refundable_balance() {
        let terms = GiftRefundTerms::default();
        let mut g = cert(50_000);
        let mut p = g.pay(won(40_000), BEFORE).unwrap();
        let c = g.cancel(&mut p, won(10_000), EXPIRY + 1).unwrap();
        assert!(!c.spendable);
        let view = g.balance_view(&terms, EXPIRY + 1).unwrap();
        assert_eq!(view.principal, won(20_000));
        assert_eq!(view.spendable, won(0));
        assert_eq!(view.refundable, won(18_000)); // 90% of 20,000
        assert_eq!(view.bonus, won(0));
    }

    #[test]
    fn refundable_before_expiry_needs_60_percent_used() {
        let terms = GiftRefundTerms::default();
        let mut g = cert(50_000);
        g.pay(won(29_999), BEFORE).unwrap();
        assert_eq!(g.refundable(&terms, BEFORE).unwrap(), won(0)); // 59.998% used
        g.pay(won(1_001), BEFORE).unwrap(); // 31,000 used
        assert_eq!(g.refundable(&terms, BEFORE).unwrap(), won(19_000));
        // Exactly 60%: 30,000 used of 50,000 → 20,000 refundable.
        let mut h = cert(50_000);
        h.pay(won(30_000), BEFORE).unwrap();
        assert_eq!(h.refundable(&terms, BEFORE).unwrap(), won(20_000));
    }

    #[test]
    fn small_certificates_need_80_percent_used() {
        let terms = GiftRefundTerms::default();
        let mut g = cert(10_000); // at 10,000: small
        g.pay(won(7_999), BEFORE).unwrap();
        assert_eq!(g.refundable(&terms, BEFORE).unwrap(), won(0));
        g.pay(won(1), BEFORE).unwrap(); // 8,000 used
        assert_eq!(g.refundable(&terms, BEFORE).unwrap(), won(2_000));
        // 10,001 is not small: 60% = 6,000.6 used needed, so 6,001.
        let mut h = cert(10_001);
        h.pay(won(6_000), BEFORE).unwrap();
        assert_eq!(h.refundable(&terms, BEFORE).unwrap(), won(0));
        h.pay(won(1), BEFORE).unwrap();
        assert_eq!(h.refundable(&terms, BEFORE).unwrap(), won(4_000));
        // A USD certificate is never "small" under a KRW threshold: 60% applies.
        let mut u = GiftCertificate::issue(Amount::parse("50.00", &usd()).unwrap(), usd(), EXPIRY).unwrap();
        u.pay(Amount::parse("30.00", &usd()).unwrap(), BEFORE).unwrap();
        assert_eq!(u.refundable(&terms, BEFORE).unwrap().to_string(), "20.00");
    }

    #[test]
    fn after_expiry_90_percent_rounded_down() {
        let mut g = cert(20_000);
        g.pay(won(7_655), BEFORE).unwrap(); // balance 12,345; 38% used
        let terms = GiftRefundTerms::default();
        assert_eq!(g.refundable(&terms, BEFORE).unwrap(), won(0));
        assert_eq!(g.refundable(&terms, EXPIRY).unwrap(), won(11_110)); // 11,110.5 → 11,110
        let terms95 = GiftRefundTerms { after_expiry_rate: Decimal::new(95, 2), ..GiftRefundTerms::default() };
        assert_eq!(g.refundable(&terms95, EXPIRY).unwrap(), won(11_727)); // 11,727.75 → 11,727
        // Cents: 90% of 12.35 = 11.115 → 11.11.
        let mut u = GiftCertificate::issue(Amount::parse("20.00", &usd()).unwrap(), usd(), EXPIRY).unwrap();
        u.pay(Amount::parse("7.65", &usd()).unwrap(), BEFORE).unwrap();
        assert_eq!(u.refundable(&terms, EXPIRY).unwrap().to_string(), "11.11");
    }

    #[test]
    fn terms_are_validated() {
        let bad = GiftRefundTerms { after_expiry_rate: Decimal::new(101, 2), ..GiftRefundTerms::default() };
        assert!(matches!(bad.validate(), Err(RuleError::InvalidConfig(_))));
        let g = cert(1_000);
        assert!(g.refundable(&bad, EXPIRY).is_err());
        assert!(GiftCertificate::issue(won(0), krw(), EXPIRY).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Pay(i64),
        Cancel(usize, i64),
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1i64..30_000).prop_map(Op::Pay),
            3 => (any::<usize>(), 1i64..30_000).prop_map(|(i, n)| Op::Cancel(i, n)),
            1 => (0i64..20 * 86_400_000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Random payments, partial cancels and clock moves: the balance is always face − paid + restored,
        /// never negative and never above the face value; no payment is cancelled past what it took;
        /// the refund never exceeds the balance.
        #[test]
        fn balance_follows_the_accepted_operations(
            face in 1i64..100_000,
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let terms = GiftRefundTerms::default();
            let start = EXPIRY - 30 * 86_400_000;
            let mut now = start;
            let mut g = GiftCertificate::issue(won(face), krw(), EXPIRY).unwrap();
            let mut payments: Vec<GiftPayment> = Vec::new();
            let (mut paid, mut restored) = (0i64, 0i64);
            for op in ops {
                match op {
                    Op::Pay(n) => match g.pay(won(n), now) {
                        Ok(p) => { paid += n; payments.push(p); }
                        Err(RuleError::Expired) => prop_assert!(now >= EXPIRY),
                        Err(RuleError::InsufficientFunds { .. }) => {
                            prop_assert!(n > face - paid + restored)
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    },
                    Op::Cancel(i, n) if !payments.is_empty() => {
                        let i = i % payments.len();
                        let left = payments[i].remaining(&krw()).unwrap();
                        match g.cancel(&mut payments[i], won(n), now) {
                            Ok(c) => { restored += n; prop_assert_eq!(c.spendable, now < EXPIRY); }
                            Err(RuleError::ExceedsCancellable { .. }) => prop_assert!(won(n) > left),
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                    }
                    Op::Cancel(..) => {}
                    Op::Advance(ms) => now += ms,
                }
                let balance = units(g.balance, &krw()).unwrap();
                prop_assert_eq!(balance, face - paid + restored);
                prop_assert!((0..=face).contains(&balance));
                for p in &payments {
                    prop_assert!(p.cancelled <= p.amount);
                }
                let r = g.refundable(&terms, now).unwrap();
                prop_assert!(r <= g.balance);
                if now < EXPIRY {
                    prop_assert!(r == g.balance || r == won(0));
                }
            }
            // Cancelling everything left restores the face value exactly.
            for p in payments.iter_mut() {
                let left = p.remaining(&krw()).unwrap();
                if left > won(0) {
                    g.cancel(p, left, now).unwrap();
                }
            }
            prop_assert_eq!(g.balance, won(face));
        }
    }
}
