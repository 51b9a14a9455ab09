//! The stored-value ledger, as a pure double-entry model: accounts, postings, journal entries, and the
//! balances derived from them. No database, no async, no transport: the store and the payment flows
//! build entries here and write them (with the cached balances) in one database transaction; this
//! module owns the rules those writes must obey.
//!
//! What this module owns:
//! - [`account`]: which accounts exist ([`AccountKind`]), their normal side, and which may never go
//!   negative (every stored-value liability: a gift certificate's balance, a wallet's principal and
//!   bonus).
//! - [`entry`]: a [`JournalEntry`] is balanced by construction — debits equal credits exactly, in
//!   `rust_decimal` at the currency's scale, in one currency, every line positive, at least two lines.
//! - [`balances`]: [`Balances`], an in-memory ledger that applies entries atomically, refuses one that
//!   would overdraw stored value, and audits its cached balances against the full posting list.
//! - [`standard`]: the builders of the standard entries (gift issuance/payment/cancel, local charge/
//!   payment/cancel, bonus expiry, wallet refund). How an amount is split between principal and bonus
//!   is decided by the instruments module; here splits are inputs.
//!
//! Account ids are built from instrument, wallet, region and merchant ids — never from a PAN or a gift
//! certificate's code — so every message in [`LedgerError`] is safe to log.

pub mod account;
pub mod balances;
pub mod entry;
pub mod standard;

#[cfg(test)]
mod proptests;

pub use account::{Account, AccountClass, AccountId, AccountKind};
pub use balances::{AccountBalance, Balances, audit_cached, recompute};
pub use entry::{EntryId, EntryKind, JournalEntry, Posting, Side};
pub use standard::{
    LocalRestore, Split, bonus_expiry, gift_cancel, gift_issuance, gift_payment, gift_reversal, local_cancel,
    local_charge, local_payment, local_reversal, wallet_refund,
};

use rust_decimal::Decimal;

/// Everything the ledger refuses. One enum so the store can map it once; messages name account and
/// entry ids and amounts only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// An account or entry id that could not be a key in the ledger (empty, too long, or with
    /// characters outside `[A-Za-z0-9._:-]`). The text itself is not echoed: it may be anything.
    #[error("invalid {what} id: {reason}")]
    InvalidId { what: &'static str, reason: &'static str },
    /// A double-entry needs at least one debit and one credit.
    #[error("entry {entry} has {count} line(s); at least two are needed")]
    TooFewLines { entry: EntryId, count: usize },
    /// A line moves zero or a negative amount; direction is the side's job, not the sign's.
    #[error("entry {entry}: line on {account} has non-positive amount {amount}")]
    NonPositiveAmount { entry: EntryId, account: AccountId, amount: Decimal },
    /// A line's amount is not at the entry currency's minor-unit scale.
    #[error("entry {entry}: line on {account} has amount {amount}, not at scale {scale}")]
    ScaleMismatch { entry: EntryId, account: AccountId, amount: Decimal, scale: u32 },
    /// A line's account is in another currency than the entry.
    #[error("entry {entry} is in {expected} but account {account} is in {found}")]
    MixedCurrency { entry: EntryId, account: AccountId, expected: String, found: String },
    /// Debits and credits differ.
    #[error("entry {entry} does not balance: debits {debits}, credits {credits}")]
    Unbalanced { entry: EntryId, debits: Decimal, credits: Decimal },
    /// The same account id appears with another kind or currency than it was opened with.
    #[error("account {account} is {existing_kind} in {existing_currency}, not {kind} in {currency}")]
    AccountConflict {
        account: AccountId,
        existing_kind: AccountKind,
        existing_currency: String,
        kind: AccountKind,
        currency: String,
    },
    /// An entry id was applied before; applying it again would double the movement.
    #[error("entry {entry} was already applied")]
    DuplicateEntry { entry: EntryId },
    /// The entry would take a stored-value account below zero; nothing was applied.
    #[error("entry {entry} would take {account} from {balance} to {would_be}")]
    NegativeBalance { entry: EntryId, account: AccountId, balance: Decimal, would_be: Decimal },
    /// Decimal arithmetic overflowed (far beyond any real amount).
    #[error("amount overflow on account {account}")]
    Overflow { account: AccountId },
    /// A cached balance differs from the one recomputed from the postings.
    #[error("account {account}: cached balance {cached}, recomputed from postings {recomputed}")]
    AuditMismatch { account: AccountId, cached: Decimal, recomputed: Decimal },
    /// An audited journal leaves a stored-value account below zero (the guard was bypassed).
    #[error("account {account} is negative: {balance}")]
    NegativeStoredValue { account: AccountId, balance: Decimal },
    /// Debit-normal balances minus credit-normal balances is not zero in a currency.
    #[error("books in {currency} do not balance: net {net}")]
    BooksUnbalanced { currency: String, net: Decimal },
}
