//! Rows of stored value: gift certificates, local-currency regions, merchants and wallets, their
//! bonus grants and payments.

use super::*;

/// A gift certificate. Its balance is the ledger account `gift:<id>`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GiftRow<M = Amount> {
    pub id: String,
    pub code_hash: String,
    pub currency: String,
    pub face_value: M,
    pub expires_at: i64,
    pub instrument_id: Option<String>,
    pub created_at: i64,
}

impl GiftRow<i64> {
    /// The row with its amounts, in its currency.
    pub(crate) fn read_money(self, m: Money<'_>) -> StoreResult<GiftRow> {
        let cur = Some(self.currency.as_str());
        let face_value = m.read(cur, self.face_value)?;
        Ok(GiftRow {
            id: self.id,
            code_hash: self.code_hash,
            currency: self.currency,
            face_value,
            expires_at: self.expires_at,
            instrument_id: self.instrument_id,
            created_at: self.created_at,
        })
    }
}

/// What a stored-value movement found.
#[derive(Debug, PartialEq, Eq)]
pub enum Movement {
    Done,
    /// A stored-value account would have gone negative: nothing was written.
    Insufficient,
    /// The token was no longer live: nothing was written.
    TokenGone,
    /// More than what is left of the payment to cancel: nothing was written.
    ExceedsCancellable,
    /// The request's transaction was decided meanwhile (reversed while its node was presumed dead):
    /// nothing was written.
    Superseded,
}

/// A local-currency region (`POST /v1/admin/regions`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RegionRow<M = Amount> {
    pub id: String,
    pub name: String,
    pub currency: String,
    /// Decimal text, e.g. `0.10`.
    pub incentive_rate: String,
    pub monthly_bonus_cap: M,
    pub bonus_lifetime_seconds: i64,
    /// `reverse` or `pro_rata`.
    pub cancel_restore: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RegionRow<i64> {
    /// The row with its amounts, in its currency.
    pub(crate) fn read_money(self, m: Money<'_>) -> StoreResult<RegionRow> {
        let cur = Some(self.currency.as_str());
        let monthly_bonus_cap = m.read(cur, self.monthly_bonus_cap)?;
        Ok(RegionRow {
            id: self.id,
            name: self.name,
            currency: self.currency,
            incentive_rate: self.incentive_rate,
            monthly_bonus_cap,
            bonus_lifetime_seconds: self.bonus_lifetime_seconds,
            cancel_restore: self.cancel_restore,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A merchant of a region; its id is what terminals send in DE42.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MerchantRow {
    pub id: String,
    pub name: String,
    pub region_id: String,
    pub created_at: i64,
}

/// A local-currency wallet's state beside its ledger accounts; its amounts (and its payments' and
/// grants') are in its region's currency. `version` is the one it was read at;
/// a write succeeds only if nobody wrote since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRow {
    pub instrument_id: String,
    pub requestor_id: String,
    pub region_id: String,
    /// `YYYY-MM` in the region's offset.
    pub bonus_month: Option<String>,
    pub charged_in_month: Amount,
    pub next_grant_id: i64,
    pub version: i64,
    pub created_at: i64,
    pub grants: Vec<GrantRow>,
}

/// One charge's bonus.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantRow<M = Amount> {
    pub grant_id: i64,
    pub granted_at: i64,
    pub expires_at: i64,
    pub amount: M,
    pub remaining: M,
}

impl GrantRow<i64> {
    /// The row with its amounts, in its wallet's (region's) currency.
    pub(crate) fn read_money(self, m: Money<'_>, currency: &str) -> StoreResult<GrantRow> {
        let cur = Some(currency);
        let amount = m.read(cur, self.amount)?;
        let remaining = m.read(cur, self.remaining)?;
        Ok(GrantRow {
            grant_id: self.grant_id,
            granted_at: self.granted_at,
            expires_at: self.expires_at,
            amount,
            remaining,
        })
    }
}

/// A local-currency payment's split, its bonus takes, and what its cancels returned so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPaymentRow {
    pub transaction_id: String,
    pub instrument_id: String,
    pub principal: Amount,
    pub bonus: Amount,
    pub cancelled_principal: Amount,
    pub cancelled_bonus: Amount,
    pub forfeited_bonus: Amount,
    pub takes: Vec<TakeRow>,
}

/// What a payment took from one grant.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TakeRow<M = Amount> {
    pub grant_id: i64,
    pub expires_at: i64,
    pub taken: M,
    pub returned: M,
}

impl TakeRow<i64> {
    /// The row with its amounts, in its wallet's (region's) currency.
    pub(crate) fn read_money(self, m: Money<'_>, currency: &str) -> StoreResult<TakeRow> {
        let cur = Some(currency);
        let taken = m.read(cur, self.taken)?;
        let returned = m.read(cur, self.returned)?;
        Ok(TakeRow { grant_id: self.grant_id, expires_at: self.expires_at, taken, returned })
    }
}

/// Everything one change to a wallet writes besides the wallet row: its ledger entries, and whichever
/// of the token consumption, payment record, cancel reservation, reversal and transaction row go
/// with it. `Store::write_wallet` commits a wallet's new state with the changes that led to it.
#[derive(Debug, Default)]
pub struct WalletWrite<'a> {
    /// When the change was decided.
    pub now: i64,
    pub entries: Vec<crate::ledger::JournalEntry>,
    /// The ISO 8583 transaction the entries belong to.
    pub transaction_id: Option<&'a str>,
    pub consume_token: Option<&'a str>,
    /// A payment to record (new).
    pub new_payment: Option<&'a LocalPaymentRow>,
    /// A payment whose cancel counters and takes changed.
    pub payment_update: Option<&'a LocalPaymentRow>,
    /// (original transaction id, amount) to add to its cancelled amount, checked against the original.
    pub cancel: Option<(&'a str, Amount)>,
    /// An approved transaction to mark reversed.
    pub reverse: Option<&'a str>,
    /// The request's own transaction row, final.
    pub txn: Option<&'a TxnRow>,
}

/// What `Store::write_wallet` found. Anything but `Done` wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletOutcome {
    Done,
    /// Someone wrote the wallet since it was read: read it again and retry.
    Conflict,
    TokenGone,
    /// A stored-value account would have gone negative.
    Insufficient,
    /// More than what is left of the payment to cancel.
    ExceedsCancellable,
    /// The transaction to reverse was no longer approved.
    NotApproved,
    /// The request's own transaction was decided meanwhile (see [`Movement::Superseded`]).
    Superseded,
}

/// A wallet read in one snapshot: its state, the balances of its two ledger accounts, and
/// optionally one of its payments.
#[derive(Debug, Clone)]
pub struct WalletSnapshot {
    pub wallet: WalletRow,
    pub principal: Amount,
    pub bonus: Amount,
    pub payment: Option<LocalPaymentRow>,
}
