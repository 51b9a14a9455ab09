//! Postings and journal entries. A [`JournalEntry`] can only be built balanced: the constructor is
//! the one place where the double-entry rule is checked, so every entry anyone holds obeys it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::LedgerError;
use super::account::{Account, AccountId, check_id};
use crate::money::{Amount, Currency};

/// Which side of an account a posting is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "debit" => Ok(Side::Debit),
            "credit" => Ok(Side::Credit),
            _ => Err(LedgerError::InvalidId { what: "side", reason: "neither debit nor credit" }),
        }
    }
}

/// One line of an entry: an amount on one side of one account. The amount is always positive; the
/// side gives the direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    pub side: Side,
    pub amount: Amount,
}

impl Posting {
    pub fn debit(account: Account, amount: Amount) -> Posting {
        Posting { account, side: Side::Debit, amount }
    }

    pub fn credit(account: Account, amount: Amount) -> Posting {
        Posting { account, side: Side::Credit, amount }
    }

    /// The posting's effect on its account's balance, signed by the account's normal side: positive
    /// when it increases the balance.
    pub fn signed(&self) -> Decimal {
        if self.side == self.account.kind.normal_side() { self.amount.decimal() } else { -self.amount.decimal() }
    }
}

/// Why an entry was written; recorded with it so an auditor can read the journal as a story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Value loaded: a gift certificate issued or a wallet charged.
    Charge,
    /// Value spent at a merchant.
    Payment,
    /// A payment cancelled, in part or in full.
    Cancel,
    /// A payment reversed (`0400`): exactly what it took goes back.
    Reversal,
    /// Bonus forfeited by expiry.
    Expiry,
    /// A wallet's balance refunded to its holder.
    Refund,
}

impl EntryKind {
    pub const ALL: [EntryKind; 6] = [
        EntryKind::Charge,
        EntryKind::Payment,
        EntryKind::Cancel,
        EntryKind::Reversal,
        EntryKind::Expiry,
        EntryKind::Refund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "charge",
            EntryKind::Payment => "payment",
            EntryKind::Cancel => "cancel",
            EntryKind::Reversal => "reversal",
            EntryKind::Expiry => "expiry",
            EntryKind::Refund => "refund",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(LedgerError::InvalidId { what: "entry kind", reason: "unknown kind" })
    }
}

/// The id of an entry, unique in the journal: applying the same id twice is refused, which is what
/// makes a retried write harmless. Usually the id of the transaction that caused it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct EntryId(String);

impl EntryId {
    /// ASCII letters, digits and `._:-`, at most 128 characters.
    pub fn new(text: &str) -> Result<EntryId, LedgerError> {
        check_id("entry", text, 128, true)?;
        Ok(EntryId(text.to_owned()))
    }

    /// A new unique id, `ent_` and a time-ordered UUID.
    pub fn fresh() -> EntryId {
        EntryId(format!("ent_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A balanced set of postings in one currency. Fields are private so that the only way to hold one
/// is through [`JournalEntry::new`], which checks the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    id: EntryId,
    kind: EntryKind,
    currency: Currency,
    lines: Vec<Posting>,
}

impl JournalEntry {
    /// Builds an entry, refusing one that:
    /// - has fewer than two lines;
    /// - has a line whose account is in another currency than `currency`;
    /// - has a zero or negative line amount, or one not at `currency`'s scale;
    /// - names one account id with two different kinds;
    /// - does not balance: the sum of debits must equal the sum of credits exactly.
    pub fn new(id: EntryId, kind: EntryKind, currency: &Currency, lines: Vec<Posting>) -> Result<Self, LedgerError> {
        if lines.len() < 2 {
            return Err(LedgerError::TooFewLines { entry: id, count: lines.len() });
        }
        let mut debits = Decimal::new(0, currency.scale);
        let mut credits = Decimal::new(0, currency.scale);
        let mut seen: BTreeMap<&AccountId, &Account> = BTreeMap::new();
        for line in &lines {
            let account = &line.account;
            let amount = line.amount.decimal();
            if account.currency != currency.code {
                return Err(LedgerError::MixedCurrency {
                    entry: id,
                    account: account.id.clone(),
                    expected: currency.code.clone(),
                    found: account.currency.clone(),
                });
            }
            if amount <= Decimal::ZERO {
                return Err(LedgerError::NonPositiveAmount { entry: id, account: account.id.clone(), amount });
            }
            if amount.scale() != currency.scale {
                return Err(LedgerError::ScaleMismatch {
                    entry: id,
                    account: account.id.clone(),
                    amount,
                    scale: currency.scale,
                });
            }
            if let Some(prev) = seen.insert(&account.id, account)
                && prev.kind != account.kind
            {
                return Err(LedgerError::AccountConflict {
                    account: account.id.clone(),
                    existing_kind: prev.kind,
                    existing_currency: prev.currency.clone(),
                    kind: account.kind,
                    currency: account.currency.clone(),
                });
            }
            let total = match line.side {
                Side::Debit => &mut debits,
                Side::Credit => &mut credits,
            };
            *total = total.checked_add(amount).ok_or_else(|| LedgerError::Overflow { account: account.id.clone() })?;
        }
        if debits != credits {
            return Err(LedgerError::Unbalanced { entry: id, debits, credits });
        }
        Ok(JournalEntry { id, kind, currency: currency.clone(), lines })
    }

    pub fn id(&self) -> &EntryId {
        &self.id
    }

    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    pub fn lines(&self) -> &[Posting] {
        &self.lines
    }

    /// The sum of one side's lines (equal for both sides, by construction).
    pub fn total(&self, side: Side) -> Decimal {
        // Cannot overflow: the constructor summed the same lines with checked arithmetic.
        self.lines
            .iter()
            .filter(|l| l.side == side)
            .fold(Decimal::new(0, self.currency.scale), |t, l| t + l.amount.decimal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::test_currencies::{krw, usd};

    fn id() -> EntryId {
        EntryId::new("tx-1").unwrap()
    }
    fn k(m: i64) -> Amount {
        Amount::from_minor(m, &krw())
    }

    #[test]
    fn balanced_entry_is_accepted() {
        let c = krw();
        let cash = Account::cash(&c).unwrap();
        let p = Account::wallet_principal("w", &c).unwrap();
        let b = Account::wallet_bonus("w", &c).unwrap();
        let promo = Account::bonus_funding("r", &c).unwrap();
        let e = JournalEntry::new(
            id(),
            EntryKind::Charge,
            &c,
            vec![
                Posting::debit(cash, k(10_000)),
                Posting::debit(promo, k(1_000)),
                Posting::credit(p, k(10_000)),
                Posting::credit(b, k(1_000)),
            ],
        )
        .unwrap();
        assert_eq!(e.total(Side::Debit), Decimal::new(11_000, 0));
        assert_eq!(e.total(Side::Credit), Decimal::new(11_000, 0));
        assert_eq!(e.kind(), EntryKind::Charge);
        assert_eq!(e.lines().len(), 4);
        assert_eq!(e.id().as_str(), "tx-1");
        assert_eq!(e.currency().code, "KRW");
    }

    #[test]
    fn unbalanced_entry_is_refused() {
        let c = krw();
        let e = JournalEntry::new(
            id(),
            EntryKind::Payment,
            &c,
            vec![
                Posting::debit(Account::gift_balance("g", &c).unwrap(), k(5_000)),
                Posting::credit(Account::merchant_payable("m", &c).unwrap(), k(4_999)),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e,
            LedgerError::Unbalanced { entry: id(), debits: Decimal::new(5_000, 0), credits: Decimal::new(4_999, 0) }
        );
        assert_eq!(e.to_string(), "entry tx-1 does not balance: debits 5000, credits 4999");
    }

    #[test]
    fn one_minor_unit_off_is_unbalanced_at_scale_two() {
        let c = usd();
        let e = JournalEntry::new(
            id(),
            EntryKind::Payment,
            &c,
            vec![
                Posting::debit(Account::gift_balance("g", &c).unwrap(), Amount::from_minor(1_001, &c)),
                Posting::credit(Account::merchant_payable("m", &c).unwrap(), Amount::from_minor(1_000, &c)),
            ],
        );
        assert!(matches!(e, Err(LedgerError::Unbalanced { .. })));
    }

    #[test]
    fn too_few_lines_are_refused() {
        let c = krw();
        assert_eq!(
            JournalEntry::new(id(), EntryKind::Charge, &c, vec![]),
            Err(LedgerError::TooFewLines { entry: id(), count: 0 })
        );
        let one = vec![Posting::debit(Account::cash(&c).unwrap(), k(1))];
        assert_eq!(
            JournalEntry::new(id(), EntryKind::Charge, &c, one),
            Err(LedgerError::TooFewLines { entry: id(), count: 1 })
        );
    }

    #[test]
    fn zero_and_negative_lines_are_refused() {
        let c = krw();
        for m in [0, -5] {
            let e = JournalEntry::new(
                id(),
                EntryKind::Charge,
                &c,
                vec![
                    Posting::debit(Account::cash(&c).unwrap(), k(m)),
                    Posting::credit(Account::gift_balance("g", &c).unwrap(), k(m)),
                ],
            )
            .unwrap_err();
            assert!(matches!(e, LedgerError::NonPositiveAmount { ref account, .. } if account.as_str() == "cash:KRW"));
        }
    }

    #[test]
    fn mixed_currencies_are_refused() {
        let (c, u) = (krw(), usd());
        let e = JournalEntry::new(
            id(),
            EntryKind::Charge,
            &c,
            vec![
                Posting::debit(Account::cash(&u).unwrap(), k(100)),
                Posting::credit(Account::gift_balance("g", &c).unwrap(), k(100)),
            ],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "entry tx-1 is in KRW but account cash:USD is in USD");
    }

    #[test]
    fn amounts_off_scale_are_refused() {
        let (c, u) = (krw(), usd());
        // 1.00 (USD scale) posted in a KRW entry: right value, wrong scale, so refused.
        let e = JournalEntry::new(
            id(),
            EntryKind::Charge,
            &c,
            vec![
                Posting::debit(Account::cash(&c).unwrap(), Amount::from_minor(100, &u)),
                Posting::credit(Account::gift_balance("g", &c).unwrap(), k(1)),
            ],
        )
        .unwrap_err();
        assert!(matches!(e, LedgerError::ScaleMismatch { scale: 0, .. }));
    }

    #[test]
    fn one_id_with_two_kinds_is_refused() {
        let c = krw();
        let gift = Account::gift_balance("g", &c).unwrap();
        let fake = Account::new(gift.id.clone(), crate::ledger::AccountKind::Cash, "KRW");
        let e = JournalEntry::new(
            id(),
            EntryKind::Charge,
            &c,
            vec![Posting::debit(fake, k(1)), Posting::credit(gift, k(1))],
        )
        .unwrap_err();
        assert!(matches!(e, LedgerError::AccountConflict { .. }));
    }

    #[test]
    fn names_round_trip() {
        for k in EntryKind::ALL {
            assert_eq!(k.as_str().parse::<EntryKind>(), Ok(k));
        }
        for s in [Side::Debit, Side::Credit] {
            assert_eq!(s.as_str().parse::<Side>(), Ok(s));
            assert_eq!(s.opposite().opposite(), s);
        }
        assert!("void".parse::<EntryKind>().is_err());
        assert!(EntryId::new("").is_err());
        assert!(EntryId::new("a/b").is_err());
    }
}
