//! The standard entries, one builder per movement the flows make. Each fixes which accounts move and
//! in which direction, so the flows cannot get a side wrong; amounts and splits are inputs (the
//! instruments module decides how a payment divides between principal and bonus).
//!
//! Zero parts of a split are left out of the entry (a line never carries zero); a negative part is
//! refused. Every builder returns a [`JournalEntry`], so everything it builds balances.
//!
//! | builder          | kind     | lines                                                                 |
//! |------------------|----------|-----------------------------------------------------------------------|
//! | `gift_issuance`  | charge   | Dr cash, Cr gift                                                      |
//! | `gift_payment`   | payment  | Dr gift, Cr merchant payable                                          |
//! | `gift_cancel`    | cancel   | Dr merchant payable, Cr gift                                          |
//! | `gift_reversal`  | reversal | Dr merchant payable, Cr gift                                          |
//! | `local_charge`   | charge   | Dr cash (P), Dr promo (B); Cr principal (P), Cr bonus (B)             |
//! | `local_payment`  | payment  | Dr bonus (B), Dr principal (P); Cr merchant payable (P+B)             |
//! | `local_cancel`   | cancel   | Dr merchant payable (P+B+F); Cr principal (P), Cr bonus (B), Cr forfeited (F) |
//! | `local_reversal` | reversal | as `local_cancel`                                                     |
//! | `bonus_expiry`   | expiry   | Dr bonus, Cr forfeited                                                |
//! | `wallet_refund`  | refund   | Dr principal (P), Cr refunds payable (P); Dr bonus (B), Cr promo (B)  |

use rust_decimal::Decimal;

use super::LedgerError;
use super::account::Account;
use super::entry::{EntryId, EntryKind, JournalEntry, Posting};
use crate::money::{Amount, Currency};

/// How a local-currency amount divides between a wallet's buckets. Either part may be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub principal: Amount,
    pub bonus: Amount,
}

/// What a local cancel or reversal gives back: `principal` and `bonus` restored to the wallet, and
/// `forfeited` — bonus the payment took that has expired since — credited to the region's forfeited
/// account instead of the wallet. Any part may be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRestore {
    pub principal: Amount,
    pub bonus: Amount,
    pub forfeited: Amount,
}

/// Collects an entry's lines, leaving out zero parts.
struct Lines<'a> {
    id: &'a EntryId,
    currency: &'a Currency,
    lines: Vec<Posting>,
}

impl<'a> Lines<'a> {
    fn new(id: &'a EntryId, currency: &'a Currency) -> Self {
        Lines { id, currency, lines: Vec::with_capacity(4) }
    }

    /// Adds a line unless its amount is zero; a negative amount is refused here, naming the account,
    /// rather than being summed into another line's total first.
    fn add(&mut self, posting: Posting) -> Result<(), LedgerError> {
        let d = posting.amount.decimal();
        if d < Decimal::ZERO {
            return Err(LedgerError::NonPositiveAmount {
                entry: self.id.clone(),
                account: posting.account.id.clone(),
                amount: d,
            });
        }
        if !d.is_zero() {
            self.lines.push(posting);
        }
        Ok(())
    }

    /// The sum of parts, for the one line on the other side (e.g. the merchant's share of a split).
    fn total(&self, account: &Account, parts: &[Amount]) -> Result<Amount, LedgerError> {
        let mut sum = Decimal::new(0, self.currency.scale);
        for p in parts {
            let d = p.decimal();
            if d < Decimal::ZERO {
                return Err(LedgerError::NonPositiveAmount {
                    entry: self.id.clone(),
                    account: account.id.clone(),
                    amount: d,
                });
            }
            if d.scale() != self.currency.scale {
                return Err(LedgerError::ScaleMismatch {
                    entry: self.id.clone(),
                    account: account.id.clone(),
                    amount: d,
                    scale: self.currency.scale,
                });
            }
            sum = sum.checked_add(d).ok_or_else(|| LedgerError::Overflow { account: account.id.clone() })?;
        }
        let minor = i64::try_from(sum.mantissa()).map_err(|_| LedgerError::Overflow { account: account.id.clone() })?;
        Ok(Amount::from_minor(minor, self.currency))
    }

    fn finish(self, kind: EntryKind) -> Result<JournalEntry, LedgerError> {
        JournalEntry::new(self.id.clone(), kind, self.currency, self.lines)
    }
}

/// An operator issues a gift certificate: the buyer's money is cash, the face value is owed to the
/// holder.
pub fn gift_issuance(id: EntryId, currency: &Currency, gift: &str, face: Amount) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    l.add(Posting::debit(Account::cash(currency)?, face))?;
    l.add(Posting::credit(Account::gift_balance(gift, currency)?, face))?;
    l.finish(EntryKind::Charge)
}

/// A payment with a gift certificate: the holder's balance becomes what the platform owes the
/// merchant. Above the balance, [`super::Balances::apply`] refuses it (`51` upstream).
pub fn gift_payment(
    id: EntryId,
    currency: &Currency,
    gift: &str,
    merchant: &str,
    amount: Amount,
) -> Result<JournalEntry, LedgerError> {
    gift_spend(id, EntryKind::Payment, currency, gift, merchant, amount)
}

/// A (partial) cancel of a gift payment: exactly the cancelled amount goes back to the certificate,
/// expired or not (after expiry it is refundable rather than spendable; that is the instrument's
/// concern, the balance is the same).
pub fn gift_cancel(
    id: EntryId,
    currency: &Currency,
    gift: &str,
    merchant: &str,
    amount: Amount,
) -> Result<JournalEntry, LedgerError> {
    gift_restore(id, EntryKind::Cancel, currency, gift, merchant, amount)
}

/// A reversal (`0400`) of a gift payment: what is left of it goes back, as with a cancel.
pub fn gift_reversal(
    id: EntryId,
    currency: &Currency,
    gift: &str,
    merchant: &str,
    amount: Amount,
) -> Result<JournalEntry, LedgerError> {
    gift_restore(id, EntryKind::Reversal, currency, gift, merchant, amount)
}

fn gift_spend(
    id: EntryId,
    kind: EntryKind,
    currency: &Currency,
    gift: &str,
    merchant: &str,
    amount: Amount,
) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    l.add(Posting::debit(Account::gift_balance(gift, currency)?, amount))?;
    l.add(Posting::credit(Account::merchant_payable(merchant, currency)?, amount))?;
    l.finish(kind)
}

fn gift_restore(
    id: EntryId,
    kind: EntryKind,
    currency: &Currency,
    gift: &str,
    merchant: &str,
    amount: Amount,
) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    l.add(Posting::debit(Account::merchant_payable(merchant, currency)?, amount))?;
    l.add(Posting::credit(Account::gift_balance(gift, currency)?, amount))?;
    l.finish(kind)
}

/// A charge of a local-currency wallet: the holder's money (principal) is cash; the bonus is paid
/// for by the region's promotion budget, not by the holder.
pub fn local_charge(
    id: EntryId,
    currency: &Currency,
    wallet: &str,
    region: &str,
    split: Split,
) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    l.add(Posting::debit(Account::cash(currency)?, split.principal))?;
    l.add(Posting::debit(Account::bonus_funding(region, currency)?, split.bonus))?;
    l.add(Posting::credit(Account::wallet_principal(wallet, currency)?, split.principal))?;
    l.add(Posting::credit(Account::wallet_bonus(wallet, currency)?, split.bonus))?;
    l.finish(EntryKind::Charge)
}

/// A local-currency payment taking `split` from the wallet's buckets (bonus first is the
/// instruments module's rule; the split it computed is recorded here as given).
pub fn local_payment(
    id: EntryId,
    currency: &Currency,
    wallet: &str,
    merchant: &str,
    split: Split,
) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    let merchant = Account::merchant_payable(merchant, currency)?;
    l.add(Posting::debit(Account::wallet_bonus(wallet, currency)?, split.bonus))?;
    l.add(Posting::debit(Account::wallet_principal(wallet, currency)?, split.principal))?;
    let total = l.total(&merchant, &[split.principal, split.bonus])?;
    l.add(Posting::credit(merchant, total))?;
    l.finish(EntryKind::Payment)
}

/// A (partial) cancel of a local-currency payment, giving back `restore` (computed by the region's
/// cancel policy; expired bonus arrives as `forfeited`).
pub fn local_cancel(
    id: EntryId,
    currency: &Currency,
    wallet: &str,
    region: &str,
    merchant: &str,
    restore: LocalRestore,
) -> Result<JournalEntry, LedgerError> {
    local_restore(id, EntryKind::Cancel, currency, wallet, region, merchant, restore)
}

/// A reversal (`0400`) of a local-currency payment: what is left of its split goes back.
pub fn local_reversal(
    id: EntryId,
    currency: &Currency,
    wallet: &str,
    region: &str,
    merchant: &str,
    restore: LocalRestore,
) -> Result<JournalEntry, LedgerError> {
    local_restore(id, EntryKind::Reversal, currency, wallet, region, merchant, restore)
}

fn local_restore(
    id: EntryId,
    kind: EntryKind,
    currency: &Currency,
    wallet: &str,
    region: &str,
    merchant: &str,
    r: LocalRestore,
) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    let merchant = Account::merchant_payable(merchant, currency)?;
    let principal = Account::wallet_principal(wallet, currency)?;
    let bonus = Account::wallet_bonus(wallet, currency)?;
    let forfeited = Account::bonus_forfeited(region, currency)?;
    // Parts are checked on their own accounts first so a negative part is reported where it is.
    for (account, part) in [(&principal, r.principal), (&bonus, r.bonus), (&forfeited, r.forfeited)] {
        l.total(account, &[part])?;
    }
    let total = l.total(&merchant, &[r.principal, r.bonus, r.forfeited])?;
    l.add(Posting::debit(merchant, total))?;
    l.add(Posting::credit(principal, r.principal))?;
    l.add(Posting::credit(bonus, r.bonus))?;
    l.add(Posting::credit(forfeited, r.forfeited))?;
    l.finish(kind)
}

/// Bonus that reached the end of its lifetime leaves the wallet and becomes the region's forfeited
/// income.
pub fn bonus_expiry(
    id: EntryId,
    currency: &Currency,
    wallet: &str,
    region: &str,
    amount: Amount,
) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    l.add(Posting::debit(Account::wallet_bonus(wallet, currency)?, amount))?;
    l.add(Posting::credit(Account::bonus_forfeited(region, currency)?, amount))?;
    l.finish(EntryKind::Expiry)
}

/// A refund of a wallet's balance: the principal becomes a payable to the holder; the bonus is
/// clawed back to the promotion budget that funded it (a refund pays out principal only).
pub fn wallet_refund(
    id: EntryId,
    currency: &Currency,
    wallet: &str,
    region: &str,
    split: Split,
) -> Result<JournalEntry, LedgerError> {
    let mut l = Lines::new(&id, currency);
    l.add(Posting::debit(Account::wallet_principal(wallet, currency)?, split.principal))?;
    l.add(Posting::credit(Account::refunds_payable(currency)?, split.principal))?;
    l.add(Posting::debit(Account::wallet_bonus(wallet, currency)?, split.bonus))?;
    l.add(Posting::credit(Account::bonus_funding(region, currency)?, split.bonus))?;
    l.finish(EntryKind::Refund)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{AccountKind, Balances, Side};
    use crate::money::test_currencies::{krw, usd};

    fn eid(s: &str) -> EntryId {
        EntryId::new(s).unwrap()
    }
    fn k(m: i64) -> Amount {
        Amount::from_minor(m, &krw())
    }
    fn split(p: i64, b: i64) -> Split {
        Split { principal: k(p), bonus: k(b) }
    }
    /// The entry's lines as (account id, side, minor units), for comparing whole entries.
    fn lines(e: &JournalEntry) -> Vec<(String, Side, i64)> {
        e.lines().iter().map(|l| (l.account.id.to_string(), l.side, l.amount.to_minor().unwrap_or(-1))).collect()
    }
    fn dr(a: &str, m: i64) -> (String, Side, i64) {
        (a.to_string(), Side::Debit, m)
    }
    fn cr(a: &str, m: i64) -> (String, Side, i64) {
        (a.to_string(), Side::Credit, m)
    }
    fn bal(b: &Balances, id: &str) -> Decimal {
        b.balance(&crate::ledger::AccountId::parse(id).unwrap())
    }

    #[test]
    fn gift_entries() {
        let c = krw();
        let e = gift_issuance(eid("i"), &c, "g1", k(50_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Charge);
        assert_eq!(lines(&e), vec![dr("cash:KRW", 50_000), cr("gift:g1", 50_000)]);
        let e = gift_payment(eid("p"), &c, "g1", "m1", k(7_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Payment);
        assert_eq!(lines(&e), vec![dr("gift:g1", 7_000), cr("merchant:m1:KRW", 7_000)]);
        let e = gift_cancel(eid("c"), &c, "g1", "m1", k(2_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Cancel);
        assert_eq!(lines(&e), vec![dr("merchant:m1:KRW", 2_000), cr("gift:g1", 2_000)]);
        let e = gift_reversal(eid("r"), &c, "g1", "m1", k(5_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Reversal);
        assert_eq!(lines(&e), vec![dr("merchant:m1:KRW", 5_000), cr("gift:g1", 5_000)]);
    }

    #[test]
    fn gift_story_restores_exactly() {
        let c = krw();
        let mut b = Balances::new();
        b.apply(gift_issuance(eid("i"), &c, "g1", k(50_000)).unwrap()).unwrap();
        b.apply(gift_payment(eid("p"), &c, "g1", "m1", k(30_000)).unwrap()).unwrap();
        b.apply(gift_cancel(eid("c1"), &c, "g1", "m1", k(10_000)).unwrap()).unwrap();
        b.apply(gift_cancel(eid("c2"), &c, "g1", "m1", k(20_000)).unwrap()).unwrap();
        assert_eq!(bal(&b, "gift:g1"), Decimal::new(50_000, 0));
        assert_eq!(bal(&b, "merchant:m1:KRW"), Decimal::ZERO);
        assert!(matches!(
            b.apply(gift_payment(eid("p2"), &c, "g1", "m1", k(50_001)).unwrap()),
            Err(LedgerError::NegativeBalance { .. })
        ));
        b.audit().unwrap();
    }

    #[test]
    fn local_charge_funds_bonus_from_promotion() {
        let c = krw();
        let e = local_charge(eid("ch"), &c, "w1", "seoul", split(100_000, 10_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Charge);
        assert_eq!(
            lines(&e),
            vec![
                dr("cash:KRW", 100_000),
                dr("promo:seoul", 10_000),
                cr("wallet:w1:principal", 100_000),
                cr("wallet:w1:bonus", 10_000)
            ]
        );
        // Over the monthly cap: no bonus, no bonus lines.
        let e = local_charge(eid("ch2"), &c, "w1", "seoul", split(5_000, 0)).unwrap();
        assert_eq!(lines(&e), vec![dr("cash:KRW", 5_000), cr("wallet:w1:principal", 5_000)]);
    }

    #[test]
    fn local_payment_takes_the_given_split() {
        let c = krw();
        let e = local_payment(eid("p"), &c, "w1", "m1", split(3_000, 10_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Payment);
        assert_eq!(
            lines(&e),
            vec![dr("wallet:w1:bonus", 10_000), dr("wallet:w1:principal", 3_000), cr("merchant:m1:KRW", 13_000)]
        );
        let e = local_payment(eid("p2"), &c, "w1", "m1", split(0, 500)).unwrap();
        assert_eq!(lines(&e), vec![dr("wallet:w1:bonus", 500), cr("merchant:m1:KRW", 500)]);
    }

    #[test]
    fn local_cancel_restores_the_split_and_forfeits_expired_bonus() {
        let c = krw();
        let r = LocalRestore { principal: k(3_000), bonus: k(4_000), forfeited: k(6_000) };
        let e = local_cancel(eid("c"), &c, "w1", "seoul", "m1", r).unwrap();
        assert_eq!(e.kind(), EntryKind::Cancel);
        assert_eq!(
            lines(&e),
            vec![
                dr("merchant:m1:KRW", 13_000),
                cr("wallet:w1:principal", 3_000),
                cr("wallet:w1:bonus", 4_000),
                cr("forfeited:seoul", 6_000)
            ]
        );
        let r = LocalRestore { principal: k(3_000), bonus: k(0), forfeited: k(0) };
        let e = local_reversal(eid("r"), &c, "w1", "seoul", "m1", r).unwrap();
        assert_eq!(e.kind(), EntryKind::Reversal);
        assert_eq!(lines(&e), vec![dr("merchant:m1:KRW", 3_000), cr("wallet:w1:principal", 3_000)]);
    }

    #[test]
    fn local_story_full_cancel_restores_the_exact_split() {
        let c = krw();
        let mut b = Balances::new();
        b.apply(local_charge(eid("ch"), &c, "w1", "seoul", split(50_000, 5_000)).unwrap()).unwrap();
        b.apply(local_payment(eid("p"), &c, "w1", "m1", split(7_000, 5_000)).unwrap()).unwrap();
        assert_eq!(bal(&b, "wallet:w1:bonus"), Decimal::ZERO);
        let r = LocalRestore { principal: k(7_000), bonus: k(5_000), forfeited: k(0) };
        b.apply(local_cancel(eid("c"), &c, "w1", "seoul", "m1", r).unwrap()).unwrap();
        assert_eq!(bal(&b, "wallet:w1:principal"), Decimal::new(50_000, 0));
        assert_eq!(bal(&b, "wallet:w1:bonus"), Decimal::new(5_000, 0));
        assert_eq!(bal(&b, "merchant:m1:KRW"), Decimal::ZERO);
        // Paying more bonus than the wallet has is refused.
        assert!(matches!(
            b.apply(local_payment(eid("p2"), &c, "w1", "m1", split(0, 5_001)).unwrap()),
            Err(LedgerError::NegativeBalance { ref account, .. }) if account.as_str() == "wallet:w1:bonus"
        ));
        b.audit().unwrap();
    }

    #[test]
    fn expiry_and_refund() {
        let c = krw();
        let e = bonus_expiry(eid("x"), &c, "w1", "seoul", k(2_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Expiry);
        assert_eq!(lines(&e), vec![dr("wallet:w1:bonus", 2_000), cr("forfeited:seoul", 2_000)]);
        let e = wallet_refund(eid("rf"), &c, "w1", "seoul", split(40_000, 3_000)).unwrap();
        assert_eq!(e.kind(), EntryKind::Refund);
        assert_eq!(
            lines(&e),
            vec![
                dr("wallet:w1:principal", 40_000),
                cr("refunds:KRW", 40_000),
                dr("wallet:w1:bonus", 3_000),
                cr("promo:seoul", 3_000)
            ]
        );

        let mut b = Balances::new();
        b.apply(local_charge(eid("ch"), &c, "w1", "seoul", split(40_000, 5_000)).unwrap()).unwrap();
        b.apply(bonus_expiry(eid("x"), &c, "w1", "seoul", k(2_000)).unwrap()).unwrap();
        b.apply(wallet_refund(eid("rf"), &c, "w1", "seoul", split(40_000, 3_000)).unwrap()).unwrap();
        assert_eq!(bal(&b, "wallet:w1:principal"), Decimal::ZERO);
        assert_eq!(bal(&b, "wallet:w1:bonus"), Decimal::ZERO);
        assert_eq!(bal(&b, "refunds:KRW"), Decimal::new(40_000, 0));
        // The promotion funded 5000, got 3000 back; 2000 expired into forfeited income.
        assert_eq!(bal(&b, "promo:seoul"), Decimal::new(2_000, 0));
        assert_eq!(bal(&b, "forfeited:seoul"), Decimal::new(2_000, 0));
        b.audit().unwrap();
    }

    #[test]
    fn builders_refuse_bad_parts() {
        let c = krw();
        // Nothing to post.
        assert!(matches!(
            local_payment(eid("p"), &c, "w", "m", split(0, 0)),
            Err(LedgerError::TooFewLines { count: 0, .. })
        ));
        assert!(matches!(gift_payment(eid("p"), &c, "g", "m", k(0)), Err(LedgerError::TooFewLines { .. })));
        // A negative part is reported on its own account.
        assert!(matches!(
            local_payment(eid("p"), &c, "w", "m", split(5, -1)),
            Err(LedgerError::NonPositiveAmount { ref account, .. }) if account.as_str() == "wallet:w:bonus"
        ));
        let r = LocalRestore { principal: k(5), bonus: k(1), forfeited: k(-1) };
        assert!(matches!(
            local_cancel(eid("c"), &c, "w", "r", "m", r),
            Err(LedgerError::NonPositiveAmount { ref account, .. }) if account.as_str() == "forfeited:r"
        ));
        assert!(matches!(gift_issuance(eid("i"), &c, "g", k(-1)), Err(LedgerError::NonPositiveAmount { .. })));
        // A part at another currency's scale.
        let u = Amount::from_minor(100, &usd());
        assert!(matches!(
            local_payment(eid("p"), &c, "w", "m", Split { principal: u, bonus: k(1) }),
            Err(LedgerError::ScaleMismatch { .. })
        ));
        // An owner id that could collide with another account.
        assert!(matches!(gift_issuance(eid("i"), &c, "g:x", k(1)), Err(LedgerError::InvalidId { .. })));
    }

    #[test]
    fn usd_scale_two() {
        let c = usd();
        let a = |m| Amount::from_minor(m, &c);
        let e = local_payment(eid("p"), &c, "w", "m", Split { principal: a(1_999), bonus: a(1) }).unwrap();
        assert_eq!(e.total(Side::Credit).to_string(), "20.00");
        assert!(e.lines().iter().all(|l| l.account.currency == "USD"));
        assert_eq!(e.lines()[2].account.kind, AccountKind::MerchantPayable);
    }
}
