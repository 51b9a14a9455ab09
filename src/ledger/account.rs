//! Accounts: what each one stands for, which side it normally carries, and whether it may go negative.
//!
//! An account is identified by an [`AccountId`] built from the owner's id (gift certificate, wallet,
//! region, merchant) and tagged with its [`AccountKind`] and currency. The id scheme is fixed here so
//! the store and the flows name the same account the same way:
//!
//! | kind                | id                          |
//! |---------------------|-----------------------------|
//! | `Cash`              | `cash:{CUR}`                |
//! | `MerchantPayable`   | `merchant:{merchant}:{CUR}` |
//! | `GiftBalance`       | `gift:{gift}`               |
//! | `WalletPrincipal`   | `wallet:{wallet}:principal` |
//! | `WalletBonus`       | `wallet:{wallet}:bonus`     |
//! | `BonusFunding`      | `promo:{region}`            |
//! | `BonusForfeited`    | `forfeited:{region}`        |
//! | `RefundsPayable`    | `refunds:{CUR}`             |

use std::fmt;
use std::str::FromStr;

use super::LedgerError;
use super::entry::Side;
use crate::money::Currency;

/// The longest account or entry id: room for a prefix, a UUID and a suffix, short enough for an index.
const MAX_ID: usize = 128;
/// The longest owner id (gift, wallet, region, merchant) inside an account id.
const MAX_OWNER: usize = 64;

/// Checks an id's text: ASCII letters, digits and `._:-`, nothing else. The refusal never echoes the
/// text, because a caller's mistake could put anything there.
pub(super) fn check_id(what: &'static str, text: &str, max: usize, colon: bool) -> Result<(), LedgerError> {
    if text.is_empty() {
        return Err(LedgerError::InvalidId { what, reason: "empty" });
    }
    if text.len() > max {
        return Err(LedgerError::InvalidId { what, reason: "too long" });
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' || (colon && b == b':');
    if !text.bytes().all(ok) {
        return Err(LedgerError::InvalidId { what, reason: "characters outside [A-Za-z0-9._:-]" });
    }
    Ok(())
}

/// The key of an account. Opaque to callers except through the [`Account`] constructors, which build
/// it by the scheme in the module doc; [`AccountId::parse`] is for reading it back from storage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// Reads an id back (e.g. from a database row); refuses text that no constructor would produce.
    pub fn parse(text: &str) -> Result<AccountId, LedgerError> {
        check_id("account", text, MAX_ID, true)?;
        Ok(AccountId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `prefix:owner[:suffix]`, with the owner checked so one owner can never collide with another's
    /// account by smuggling a `:` into its id.
    fn compose(prefix: &str, owner: &str, suffix: Option<&str>) -> Result<AccountId, LedgerError> {
        check_id("owner", owner, MAX_OWNER, false)?;
        Ok(AccountId(match suffix {
            Some(s) => format!("{prefix}:{owner}:{s}"),
            None => format!("{prefix}:{owner}"),
        }))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The accounting class of a kind; it fixes the normal side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountClass {
    Asset,
    Liability,
    Expense,
    Income,
}

/// What an account stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// The platform's cash/settlement account in one currency (asset): money received for gift
    /// certificates and wallet charges.
    Cash,
    /// What the platform owes a merchant for stored-value payments, until settlement (liability).
    /// May go negative: a cancel after the merchant was paid out leaves a receivable.
    MerchantPayable,
    /// A gift certificate's balance, owed to its holder (liability; never negative).
    GiftBalance,
    /// A local-currency wallet's principal: what the holder paid in (liability; never negative).
    WalletPrincipal,
    /// A local-currency wallet's bonus: the region's incentive, spendable but not refundable
    /// (liability; never negative).
    WalletBonus,
    /// The region's promotion budget that funds bonuses (expense).
    BonusFunding,
    /// Bonus forfeited by expiry (income of the region's programme).
    BonusForfeited,
    /// Principal the platform owes holders who asked for a wallet refund, until paid out (liability).
    RefundsPayable,
}

impl AccountKind {
    pub const ALL: [AccountKind; 8] = [
        AccountKind::Cash,
        AccountKind::MerchantPayable,
        AccountKind::GiftBalance,
        AccountKind::WalletPrincipal,
        AccountKind::WalletBonus,
        AccountKind::BonusFunding,
        AccountKind::BonusForfeited,
        AccountKind::RefundsPayable,
    ];

    pub fn class(self) -> AccountClass {
        match self {
            AccountKind::Cash => AccountClass::Asset,
            AccountKind::MerchantPayable
            | AccountKind::GiftBalance
            | AccountKind::WalletPrincipal
            | AccountKind::WalletBonus
            | AccountKind::RefundsPayable => AccountClass::Liability,
            AccountKind::BonusFunding => AccountClass::Expense,
            AccountKind::BonusForfeited => AccountClass::Income,
        }
    }

    /// The side that increases the account: debit for assets and expenses, credit for liabilities
    /// and income. A balance is reported positive on its normal side.
    pub fn normal_side(self) -> Side {
        match self.class() {
            AccountClass::Asset | AccountClass::Expense => Side::Debit,
            AccountClass::Liability | AccountClass::Income => Side::Credit,
        }
    }

    /// Stored value may never go negative: a holder cannot spend what they do not have. Other
    /// accounts are clearing or P&L accounts whose sign is a fact to report, not a rule to enforce.
    pub fn non_negative(self) -> bool {
        matches!(self, AccountKind::GiftBalance | AccountKind::WalletPrincipal | AccountKind::WalletBonus)
    }

    /// The name used in storage and serde.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Cash => "cash",
            AccountKind::MerchantPayable => "merchant_payable",
            AccountKind::GiftBalance => "gift_balance",
            AccountKind::WalletPrincipal => "wallet_principal",
            AccountKind::WalletBonus => "wallet_bonus",
            AccountKind::BonusFunding => "bonus_funding",
            AccountKind::BonusForfeited => "bonus_forfeited",
            AccountKind::RefundsPayable => "refunds_payable",
        }
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountKind {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(LedgerError::InvalidId { what: "account kind", reason: "unknown kind" })
    }
}

/// An account as a posting names it: id, kind and the currency it is kept in. One id always has one
/// kind and one currency; [`super::Balances`] refuses an entry that disagrees with what it has seen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    /// ISO 4217 alphabetic code.
    pub currency: String,
}

impl Account {
    /// For rebuilding an account from storage; the flows use the named constructors below.
    pub fn new(id: AccountId, kind: AccountKind, currency: &str) -> Account {
        Account { id, kind, currency: currency.to_owned() }
    }

    fn owned(
        prefix: &str,
        owner: &str,
        suffix: Option<&str>,
        kind: AccountKind,
        c: &Currency,
    ) -> Result<Self, LedgerError> {
        Ok(Account { id: AccountId::compose(prefix, owner, suffix)?, kind, currency: c.code.clone() })
    }

    /// The platform's cash/settlement account in `currency`.
    pub fn cash(currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("cash", &currency.code, None, AccountKind::Cash, currency)
    }

    /// What the platform owes `merchant` in `currency`.
    pub fn merchant_payable(merchant: &str, currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("merchant", merchant, Some(&currency.code), AccountKind::MerchantPayable, currency)
    }

    /// The balance of gift certificate `gift` (its id, never its code).
    pub fn gift_balance(gift: &str, currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("gift", gift, None, AccountKind::GiftBalance, currency)
    }

    /// The principal bucket of local-currency wallet `wallet`.
    pub fn wallet_principal(wallet: &str, currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("wallet", wallet, Some("principal"), AccountKind::WalletPrincipal, currency)
    }

    /// The bonus bucket of local-currency wallet `wallet`.
    pub fn wallet_bonus(wallet: &str, currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("wallet", wallet, Some("bonus"), AccountKind::WalletBonus, currency)
    }

    /// Region `region`'s promotion budget that funds bonuses.
    pub fn bonus_funding(region: &str, currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("promo", region, None, AccountKind::BonusFunding, currency)
    }

    /// Bonus forfeited by expiry in region `region`.
    pub fn bonus_forfeited(region: &str, currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("forfeited", region, None, AccountKind::BonusForfeited, currency)
    }

    /// Wallet refunds owed to holders in `currency`.
    pub fn refunds_payable(currency: &Currency) -> Result<Account, LedgerError> {
        Self::owned("refunds", &currency.code, None, AccountKind::RefundsPayable, currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::test_currencies::krw;

    #[test]
    fn normal_sides_and_non_negative_kinds() {
        use AccountKind::*;
        for k in [Cash, BonusFunding] {
            assert_eq!(k.normal_side(), Side::Debit, "{k}");
        }
        for k in [MerchantPayable, GiftBalance, WalletPrincipal, WalletBonus, BonusForfeited, RefundsPayable] {
            assert_eq!(k.normal_side(), Side::Credit, "{k}");
        }
        let non_neg: Vec<_> = AccountKind::ALL.into_iter().filter(|k| k.non_negative()).collect();
        assert_eq!(non_neg, vec![GiftBalance, WalletPrincipal, WalletBonus]);
        // Every stored-value account is a liability.
        assert!(non_neg.iter().all(|k| k.class() == AccountClass::Liability));
    }

    #[test]
    fn kind_names_round_trip() {
        for k in AccountKind::ALL {
            assert_eq!(k.as_str().parse::<AccountKind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).ok(), Some(format!("\"{}\"", k.as_str())));
        }
        assert!("asset".parse::<AccountKind>().is_err());
    }

    #[test]
    fn ids_follow_the_scheme() {
        let c = krw();
        assert_eq!(Account::cash(&c).unwrap().id.as_str(), "cash:KRW");
        assert_eq!(Account::merchant_payable("m-1", &c).unwrap().id.as_str(), "merchant:m-1:KRW");
        assert_eq!(Account::gift_balance("g1", &c).unwrap().id.as_str(), "gift:g1");
        assert_eq!(Account::wallet_principal("w1", &c).unwrap().id.as_str(), "wallet:w1:principal");
        assert_eq!(Account::wallet_bonus("w1", &c).unwrap().id.as_str(), "wallet:w1:bonus");
        assert_eq!(Account::bonus_funding("seoul", &c).unwrap().id.as_str(), "promo:seoul");
        assert_eq!(Account::bonus_forfeited("seoul", &c).unwrap().id.as_str(), "forfeited:seoul");
        assert_eq!(Account::refunds_payable(&c).unwrap().id.as_str(), "refunds:KRW");
        let w = Account::wallet_bonus("0190b2c4-7d1e-7a3b-9c2d-4e5f6a7b8c9d", &c).unwrap();
        assert_eq!(w.kind, AccountKind::WalletBonus);
        assert_eq!(w.currency, "KRW");
        assert_eq!(AccountId::parse(w.id.as_str()), Ok(w.id));
    }

    #[test]
    fn bad_owner_ids_are_refused_without_echo() {
        let c = krw();
        // A colon would let wallet "x:principal" collide with another account's id.
        let e = Account::wallet_bonus("x:principal", &c).unwrap_err();
        assert!(matches!(e, LedgerError::InvalidId { what: "owner", .. }));
        assert!(!e.to_string().contains("principal"));
        assert!(Account::gift_balance("", &c).is_err());
        assert!(Account::gift_balance(&"a".repeat(65), &c).is_err());
        assert!(Account::gift_balance("a b", &c).is_err());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("gift:é").is_err());
        assert!(AccountId::parse(&"a".repeat(129)).is_err());
    }
}
