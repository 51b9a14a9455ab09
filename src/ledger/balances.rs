//! Balances derived from postings. [`Balances`] is the in-memory model of what the database keeps:
//! the journal (every entry ever applied) and a cached balance per account, updated together and
//! atomically; [`Balances::audit`] is the check that the cache still equals the journal.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::LedgerError;
use super::account::{AccountId, AccountKind};
use super::entry::{EntryId, JournalEntry, Side};

/// One account's cached state. `balance` is signed by the account's normal side: positive means the
/// account holds value on its normal side (cash on hand, value owed to a holder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    pub kind: AccountKind,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    pub balance: Decimal,
}

/// An in-memory ledger: the journal and the cached balances it implies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    accounts: BTreeMap<AccountId, AccountBalance>,
    journal: Vec<JournalEntry>,
    applied: BTreeSet<EntryId>,
}

impl Balances {
    pub fn new() -> Balances {
        Balances::default()
    }

    /// Applies an entry, all or nothing. Refuses, leaving everything as it was, an entry whose id was
    /// applied before, one that names an account with another kind or currency than it was opened
    /// with, and one that would take a stored-value account below zero.
    pub fn apply(&mut self, entry: JournalEntry) -> Result<(), LedgerError> {
        if self.applied.contains(entry.id()) {
            return Err(LedgerError::DuplicateEntry { entry: entry.id().clone() });
        }
        let next = self.preview(&entry)?;
        for (id, balance) in next {
            self.accounts.insert(id, balance);
        }
        self.applied.insert(entry.id().clone());
        self.journal.push(entry);
        Ok(())
    }

    /// The balances the entry's accounts would have after it, without applying it; the same checks
    /// as [`Balances::apply`] except the duplicate id. The store can use this to compute the cached
    /// balances it writes in the entry's transaction.
    ///
    /// The non-negative rule is checked on each account's net movement in the entry, not line by
    /// line: an entry is one atomic event, so its lines have no order.
    pub fn preview(&self, entry: &JournalEntry) -> Result<BTreeMap<AccountId, AccountBalance>, LedgerError> {
        let mut next: BTreeMap<AccountId, AccountBalance> = BTreeMap::new();
        for line in entry.lines() {
            let account = &line.account;
            let slot = match next.get_mut(&account.id) {
                Some(slot) => slot,
                None => {
                    let current = match self.accounts.get(&account.id) {
                        Some(existing) => {
                            if existing.kind != account.kind || existing.currency != account.currency {
                                return Err(LedgerError::AccountConflict {
                                    account: account.id.clone(),
                                    existing_kind: existing.kind,
                                    existing_currency: existing.currency.clone(),
                                    kind: account.kind,
                                    currency: account.currency.clone(),
                                });
                            }
                            existing.clone()
                        }
                        None => AccountBalance {
                            kind: account.kind,
                            currency: account.currency.clone(),
                            balance: Decimal::new(0, entry.currency().scale),
                        },
                    };
                    next.entry(account.id.clone()).or_insert(current)
                }
            };
            slot.balance = slot
                .balance
                .checked_add(line.signed())
                .ok_or_else(|| LedgerError::Overflow { account: account.id.clone() })?;
        }
        for (id, after) in &next {
            if after.kind.non_negative() && after.balance < Decimal::ZERO {
                let before = self.balance(id);
                return Err(LedgerError::NegativeBalance {
                    entry: entry.id().clone(),
                    account: id.clone(),
                    balance: before,
                    would_be: after.balance,
                });
            }
        }
        Ok(next)
    }

    /// The cached balance of an account, zero if it has never been posted to.
    pub fn balance(&self, id: &AccountId) -> Decimal {
        self.accounts.get(id).map_or(Decimal::ZERO, |a| a.balance)
    }

    pub fn get(&self, id: &AccountId) -> Option<&AccountBalance> {
        self.accounts.get(id)
    }

    /// Every account posted to, in id order.
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &AccountBalance)> {
        self.accounts.iter()
    }

    /// The journal, in the order entries were applied.
    pub fn entries(&self) -> &[JournalEntry] {
        &self.journal
    }

    pub fn contains_entry(&self, id: &EntryId) -> bool {
        self.applied.contains(id)
    }

    /// Per currency, debit-normal balances minus credit-normal balances: zero when the books balance.
    pub fn trial_balance(&self) -> BTreeMap<String, Decimal> {
        trial_balance(&self.accounts)
    }

    /// Recomputes every balance from the full journal and checks it equals the cached one, that no
    /// stored-value account is negative, and that the books balance in every currency.
    pub fn audit(&self) -> Result<(), LedgerError> {
        let recomputed = recompute(&self.journal)?;
        for (id, cached) in &self.accounts {
            if recomputed.get(id).is_some_and(|r| r.kind != cached.kind || r.currency != cached.currency) {
                return Err(LedgerError::AuditMismatch {
                    account: id.clone(),
                    cached: cached.balance,
                    recomputed: recomputed.get(id).map_or(Decimal::ZERO, |r| r.balance),
                });
            }
        }
        let cached: BTreeMap<AccountId, Decimal> =
            self.accounts.iter().map(|(id, a)| (id.clone(), a.balance)).collect();
        audit_cached(&cached, &self.journal)
    }

    /// Test hook: corrupts a cached balance so the audit has something to find.
    #[cfg(test)]
    pub(super) fn tamper(&mut self, id: &AccountId, balance: Decimal) {
        if let Some(a) = self.accounts.get_mut(id) {
            a.balance = balance;
        }
    }
}

/// Every account's balance recomputed from a journal, from zero. Refuses a journal that names one
/// account id with two kinds or currencies.
pub fn recompute(entries: &[JournalEntry]) -> Result<BTreeMap<AccountId, AccountBalance>, LedgerError> {
    let mut out: BTreeMap<AccountId, AccountBalance> = BTreeMap::new();
    for entry in entries {
        for line in entry.lines() {
            let account = &line.account;
            let slot = out.entry(account.id.clone()).or_insert_with(|| AccountBalance {
                kind: account.kind,
                currency: account.currency.clone(),
                balance: Decimal::new(0, entry.currency().scale),
            });
            if slot.kind != account.kind || slot.currency != account.currency {
                return Err(LedgerError::AccountConflict {
                    account: account.id.clone(),
                    existing_kind: slot.kind,
                    existing_currency: slot.currency.clone(),
                    kind: account.kind,
                    currency: account.currency.clone(),
                });
            }
            slot.balance = slot
                .balance
                .checked_add(line.signed())
                .ok_or_else(|| LedgerError::Overflow { account: account.id.clone() })?;
        }
    }
    Ok(out)
}

/// The audit the store runs over what it loaded: `cached` balances (account id → balance) against the
/// `entries` they should come from. An account missing on either side counts as zero there. Also
/// checks that no stored-value account is negative and that the books balance per currency.
pub fn audit_cached(cached: &BTreeMap<AccountId, Decimal>, entries: &[JournalEntry]) -> Result<(), LedgerError> {
    let recomputed = recompute(entries)?;
    let ids: BTreeSet<&AccountId> = cached.keys().chain(recomputed.keys()).collect();
    for id in ids {
        let c = cached.get(id).copied().unwrap_or(Decimal::ZERO);
        let r = recomputed.get(id).map_or(Decimal::ZERO, |a| a.balance);
        if c != r {
            return Err(LedgerError::AuditMismatch { account: id.clone(), cached: c, recomputed: r });
        }
    }
    for (id, a) in &recomputed {
        if a.kind.non_negative() && a.balance < Decimal::ZERO {
            return Err(LedgerError::NegativeStoredValue { account: id.clone(), balance: a.balance });
        }
    }
    for (currency, net) in trial_balance(&recomputed) {
        if !net.is_zero() {
            return Err(LedgerError::BooksUnbalanced { currency, net });
        }
    }
    Ok(())
}

fn trial_balance(accounts: &BTreeMap<AccountId, AccountBalance>) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for a in accounts.values() {
        let signed = match a.kind.normal_side() {
            Side::Debit => a.balance,
            Side::Credit => -a.balance,
        };
        let t = out.entry(a.currency.clone()).or_insert(Decimal::ZERO);
        // Sums of balances that each fit: far below Decimal's 28 digits for any real ledger.
        *t = t.saturating_add(signed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Account, EntryKind, Posting, gift_issuance, gift_payment};
    use crate::money::Amount;
    use crate::money::test_currencies::{krw, usd};

    fn eid(s: &str) -> EntryId {
        EntryId::new(s).unwrap()
    }
    fn k(m: i64) -> Amount {
        Amount::from_minor(m, &krw())
    }
    fn gift_id() -> AccountId {
        Account::gift_balance("g", &krw()).unwrap().id
    }

    #[test]
    fn balances_are_signed_by_normal_side() {
        let c = krw();
        let mut b = Balances::new();
        b.apply(gift_issuance(eid("i1"), &c, "g", k(50_000)).unwrap()).unwrap();
        b.apply(gift_payment(eid("p1"), &c, "g", "m", k(12_000)).unwrap()).unwrap();
        assert_eq!(b.balance(&Account::cash(&c).unwrap().id), Decimal::new(50_000, 0));
        assert_eq!(b.balance(&gift_id()), Decimal::new(38_000, 0));
        assert_eq!(b.balance(&Account::merchant_payable("m", &c).unwrap().id), Decimal::new(12_000, 0));
        assert_eq!(b.trial_balance().get("KRW"), Some(&Decimal::ZERO));
        assert_eq!(b.entries().len(), 2);
        assert!(b.contains_entry(&eid("p1")));
        assert_eq!(b.get(&gift_id()).map(|a| a.kind), Some(AccountKind::GiftBalance));
        assert_eq!(b.accounts().count(), 3);
        b.audit().unwrap();
    }

    #[test]
    fn overdraft_is_refused_and_nothing_applied() {
        let c = krw();
        let mut b = Balances::new();
        b.apply(gift_issuance(eid("i1"), &c, "g", k(10_000)).unwrap()).unwrap();
        let before = b.clone();
        let e = b.apply(gift_payment(eid("p1"), &c, "g", "m", k(10_001)).unwrap()).unwrap_err();
        assert_eq!(
            e,
            LedgerError::NegativeBalance {
                entry: eid("p1"),
                account: gift_id(),
                balance: Decimal::new(10_000, 0),
                would_be: Decimal::new(-1, 0),
            }
        );
        assert_eq!(e.to_string(), "entry p1 would take gift:g from 10000 to -1");
        assert_eq!(b, before);
        // The id was not consumed: the same id may be used for a valid entry.
        b.apply(gift_payment(eid("p1"), &c, "g", "m", k(10_000)).unwrap()).unwrap();
        assert_eq!(b.balance(&gift_id()), Decimal::ZERO);
    }

    #[test]
    fn merchant_payable_may_go_negative() {
        let c = krw();
        let mut b = Balances::new();
        // A settlement payout (merchant payable → cash) before a cancel leaves a receivable.
        let m = Account::merchant_payable("m", &c).unwrap();
        let cash = Account::cash(&c).unwrap();
        let payout = JournalEntry::new(
            eid("s1"),
            EntryKind::Payment,
            &c,
            vec![Posting::debit(m.clone(), k(5)), Posting::credit(cash, k(5))],
        )
        .unwrap();
        b.apply(payout).unwrap();
        assert_eq!(b.balance(&m.id), Decimal::new(-5, 0));
        b.audit().unwrap();
    }

    #[test]
    fn duplicate_entry_is_refused() {
        let c = krw();
        let mut b = Balances::new();
        let e = gift_issuance(eid("i1"), &c, "g", k(1_000)).unwrap();
        b.apply(e.clone()).unwrap();
        let before = b.clone();
        assert_eq!(b.apply(e), Err(LedgerError::DuplicateEntry { entry: eid("i1") }));
        assert_eq!(b, before);
    }

    #[test]
    fn account_conflict_across_entries_is_refused() {
        let c = krw();
        let mut b = Balances::new();
        b.apply(gift_issuance(eid("i1"), &c, "g", k(1_000)).unwrap()).unwrap();
        let before = b.clone();
        // Same id, now claimed as a cash account.
        let fake = Account::new(gift_id(), AccountKind::Cash, "KRW");
        let e = JournalEntry::new(
            eid("x"),
            EntryKind::Charge,
            &c,
            vec![Posting::debit(fake, k(1)), Posting::credit(Account::gift_balance("h", &c).unwrap(), k(1))],
        )
        .unwrap();
        assert!(matches!(b.apply(e), Err(LedgerError::AccountConflict { .. })));
        assert_eq!(b, before);
    }

    #[test]
    fn net_movement_decides_non_negative() {
        let c = krw();
        let g = Account::gift_balance("g", &c).unwrap();
        let m = Account::merchant_payable("m", &c).unwrap();
        let mut b = Balances::new();
        // A zero-balance gift debited and credited by the same amount in one entry nets to zero.
        let e = JournalEntry::new(
            eid("n1"),
            EntryKind::Cancel,
            &c,
            vec![
                Posting::debit(g.clone(), k(7)),
                Posting::credit(g.clone(), k(7)),
                Posting::debit(m.clone(), k(3)),
                Posting::credit(Account::gift_balance("h", &c).unwrap(), k(3)),
            ],
        )
        .unwrap();
        let preview = b.preview(&e).unwrap();
        assert_eq!(preview.get(&g.id).map(|a| a.balance), Some(Decimal::ZERO));
        b.apply(e).unwrap();
        b.audit().unwrap();
    }

    #[test]
    fn audit_finds_a_tampered_cache() {
        let c = krw();
        let mut b = Balances::new();
        b.apply(gift_issuance(eid("i1"), &c, "g", k(1_000)).unwrap()).unwrap();
        b.tamper(&gift_id(), Decimal::new(999, 0));
        assert_eq!(
            b.audit(),
            Err(LedgerError::AuditMismatch {
                account: gift_id(),
                cached: Decimal::new(999, 0),
                recomputed: Decimal::new(1_000, 0)
            })
        );
    }

    #[test]
    fn audit_cached_counts_missing_accounts_as_zero() {
        let c = krw();
        let entries = vec![gift_issuance(eid("i1"), &c, "g", k(1_000)).unwrap()];
        let mut cached: BTreeMap<AccountId, Decimal> = BTreeMap::new();
        cached.insert(gift_id(), Decimal::new(1_000, 0));
        // The cash account's cached row is missing: it should be 1000.
        assert!(matches!(audit_cached(&cached, &entries), Err(LedgerError::AuditMismatch { .. })));
        cached.insert(Account::cash(&c).unwrap().id, Decimal::new(1_000, 0));
        audit_cached(&cached, &entries).unwrap();
        // A cached row with no postings must be zero.
        cached.insert(Account::gift_balance("ghost", &c).unwrap().id, Decimal::new(1, 0));
        assert!(matches!(audit_cached(&cached, &entries), Err(LedgerError::AuditMismatch { .. })));
        cached.insert(Account::gift_balance("ghost", &c).unwrap().id, Decimal::ZERO);
        audit_cached(&cached, &entries).unwrap();
    }

    #[test]
    fn audit_cached_finds_negative_stored_value() {
        // A journal the store loaded that overdraws a gift (e.g. written around the guard).
        let c = krw();
        let entries = vec![gift_payment(eid("p1"), &c, "g", "m", k(5)).unwrap()];
        let cached = recompute(&entries).unwrap().into_iter().map(|(id, a)| (id, a.balance)).collect();
        assert_eq!(
            audit_cached(&cached, &entries),
            Err(LedgerError::NegativeStoredValue { account: gift_id(), balance: Decimal::new(-5, 0) })
        );
    }

    #[test]
    fn trial_balance_is_per_currency() {
        let (c, u) = (krw(), usd());
        let mut b = Balances::new();
        b.apply(gift_issuance(eid("i1"), &c, "g", k(1_000)).unwrap()).unwrap();
        b.apply(gift_issuance(eid("i2"), &u, "gu", Amount::from_minor(1_050, &u)).unwrap()).unwrap();
        let tb = b.trial_balance();
        assert_eq!(tb.len(), 2);
        assert!(tb.values().all(|v| v.is_zero()));
        assert_eq!(b.balance(&Account::cash(&u).unwrap().id).to_string(), "10.50");
        b.audit().unwrap();
    }
}
