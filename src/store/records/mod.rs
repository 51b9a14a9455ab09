//! Rows as the store reads and writes them: plain data, no behaviour.

pub use crate::instruments::assurance::Assurance;
pub use crate::instruments::card::CancelType;
pub use crate::instruments::{InstrumentKind, InstrumentStatus};
use crate::money::{Amount, Currencies};

use super::{StoreError, StoreResult};

/// What reads a row's stored minor units back into amounts: the configured currencies, looked up by
/// the row's own currency column (see `crate::money`). Rows with money are read as `Row<i64>` and
/// turned into `Row` (= `Row<Amount>`) by their `read_money`; without the table that fails rather than
/// guess a scale.
#[derive(Clone, Copy)]
pub(crate) struct Money<'a>(pub(crate) Option<&'a Currencies>);

impl Money<'_> {
    pub(crate) fn read(self, currency: Option<&str>, minor: i64) -> StoreResult<Amount> {
        match self.0 {
            Some(table) => Ok(table.stored(currency, minor)),
            None => Err(StoreError::Corrupt("no currency table to read amounts with (Store::with_currencies)".into())),
        }
    }

    pub(crate) fn read_opt(self, currency: Option<&str>, minor: Option<i64>) -> StoreResult<Option<Amount>> {
        minor.map(|m| self.read(currency, m)).transpose()
    }
}

/// A Rust enum stored as its text form (`as_str` / `FromStr`), on every backend: a stored value
/// this version does not know fails the read instead of passing as a string.
macro_rules! stored_as_text {
    ($t:ty) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $t
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $t
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<String as sqlx::Decode<'r, DB>>::decode(value)?.parse::<$t>()?)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $t
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode(self.as_str().to_string(), buf)
            }
        }

        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.as_str().to_sql()
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                v.as_str()?.parse::<$t>().map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

stored_as_text!(InstrumentKind);

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestorRow {
    pub id: String,
    pub trid: String,
    pub name: String,
    /// Comma-separated scope names.
    pub scopes: String,
    pub created_at: i64,
}

#[derive(Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub key_id: String,
    pub requestor_id: String,
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What revoking or rotating an API key found (`Store::revoke_api_key`, `Store::rotate_api_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Done: the key belongs to `requestor_id` and stops working at `revoked_at` (Unix ms).
    Changed { requestor_id: String, revoked_at: i64 },
    /// No key has this id.
    Unknown,
    /// Nothing written: the key already ends at `revoked_at` (revoked, or rotated and in its overlap).
    AlreadyEnding { requestor_id: String, revoked_at: i64 },
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HsmKeyRow {
    pub label: String,
    pub version: i64,
    /// tsp's name for the usage (`hsm_sim::KeyUsage` as snake case).
    pub usage: String,
    /// The key under the payShield's LMK: a key block (`S…`) or a variant cryptogram (`U…`).
    pub key_lmk: String,
    /// Check value (6H).
    pub kcv: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DataKeyRow {
    pub version: i64,
    pub kek_label: String,
    pub kek_version: i64,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
    /// The version of the HSM fingerprint key that pairs with this data key.
    pub fp_version: i64,
}

stored_as_text!(InstrumentStatus);
stored_as_text!(Assurance);

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstrumentRow {
    pub id: String,
    pub requestor_id: String,
    pub kind: InstrumentKind,
    pub status: InstrumentStatus,
    pub issuer_id: Option<String>,
    pub bin: Option<String>,
    pub last4: Option<String>,
    pub pan_len: Option<i64>,
    pub expiry: Option<String>,
    pub par: Option<String>,
    pub fingerprint: Option<String>,
    pub fp_version: Option<i64>,
    /// IV ‖ ciphertext ‖ tag; wiped when the instrument is deleted.
    pub pan_sealed: Option<Vec<u8>>,
    pub dek_version: Option<i64>,
    /// How the cardholder was identified and verified when the card was registered (ID&V); None for
    /// stored value and for cards registered before tsp recorded it.
    pub assurance: Option<Assurance>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A registration the issuer stepped up, while it is pending (`instrument_verifications`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerificationRow {
    pub instrument_id: String,
    /// JSON: the issuer's offers (`instruments::verification::Offer`).
    pub offered: String,
    /// `sms` or `app`: the method of the current code.
    pub method: Option<String>,
    /// HMAC-SHA-256 of the current code under the HSM key `tsp.verification.code`.
    pub code_mac: Option<Vec<u8>>,
    pub code_expires_at: Option<i64>,
    pub codes_sent: i64,
    pub failed_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A code sent for a pending registration, to record.
#[derive(Debug)]
pub struct NewCode<'a> {
    pub instrument_id: &'a str,
    pub method: &'a str,
    pub code_mac: &'a [u8],
    pub expires_at: i64,
    pub now: i64,
}

/// What inserting a card found.
#[derive(Debug)]
pub enum InsertCard {
    Inserted,
    /// The requestor already has a non-deleted instrument with this fingerprint.
    Duplicate(Box<InstrumentRow>),
    /// The card was sealed under a data key that is no longer the newest (a rotation happened since
    /// this node last looked): nothing was written; seal it again under the newest key.
    StaleKey,
}

/// A card's sealed PAN with the key versions it is under, as the re-encryption reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedCard {
    pub id: String,
    pub dek_version: i64,
    pub fp_version: Option<i64>,
    pub pan_sealed: Vec<u8>,
}

/// A card moved onto newer keys: written only if it is still sealed under `from_dek`.
#[derive(Debug, Clone)]
pub struct Rekeyed {
    pub id: String,
    pub from_dek: i64,
    pub dek_version: i64,
    pub pan_sealed: Vec<u8>,
    pub fingerprint: String,
    pub fp_version: i64,
}

/// How many sealed cards one data-key version (and fingerprint-key version) holds.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyUsage {
    pub dek_version: i64,
    pub fp_version: Option<i64>,
    pub cards: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow<M = Amount> {
    pub id: String,
    pub token: String,
    pub instrument_id: String,
    pub requestor_id: String,
    pub state: String,
    pub token_expiry: String,
    pub psn: String,
    pub merchant_id: Option<String>,
    pub max_amount: Option<M>,
    pub currency: Option<String>,
    /// Comma-separated two-digit PAN entry modes (DE22 positions 1–2) the token accepts.
    pub entry_modes: Option<String>,
    pub failed_attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    /// A merchant token (terminal tokenization): paid any number of times at its merchant, never
    /// consumed.
    pub multi_use: bool,
    /// When its requestor or the issuer suspended it (a live token only); None when it is not.
    pub suspended_at: Option<i64>,
}

impl TokenRow<i64> {
    /// A row of `token_cols!` as rusqlite reads it (the SQLite store's in-place reads), column by
    /// name as sqlx's `FromRow` reads it.
    pub(crate) fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(TokenRow {
            id: r.get("id")?,
            token: r.get("token")?,
            instrument_id: r.get("instrument_id")?,
            requestor_id: r.get("requestor_id")?,
            state: r.get("state")?,
            token_expiry: r.get("token_expiry")?,
            psn: r.get("psn")?,
            merchant_id: r.get("merchant_id")?,
            max_amount: r.get("max_amount")?,
            currency: r.get("currency")?,
            entry_modes: r.get("entry_modes")?,
            failed_attempts: r.get("failed_attempts")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
            consumed_at: r.get("consumed_at")?,
            multi_use: r.get("multi_use")?,
            suspended_at: r.get("suspended_at")?,
        })
    }

    /// The row with its amounts, in its currency.
    pub(crate) fn read_money(self, m: Money<'_>) -> StoreResult<TokenRow> {
        let cur = self.currency.as_deref();
        let max_amount = m.read_opt(cur, self.max_amount)?;
        Ok(TokenRow {
            id: self.id,
            token: self.token,
            instrument_id: self.instrument_id,
            requestor_id: self.requestor_id,
            state: self.state,
            token_expiry: self.token_expiry,
            psn: self.psn,
            merchant_id: self.merchant_id,
            max_amount,
            currency: self.currency,
            entry_modes: self.entry_modes,
            failed_attempts: self.failed_attempts,
            created_at: self.created_at,
            expires_at: self.expires_at,
            consumed_at: self.consumed_at,
            multi_use: self.multi_use,
            suspended_at: self.suspended_at,
        })
    }
}

/// What inserting a token found.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertToken {
    Inserted,
    /// A live token already has this number.
    NumberTaken,
    /// The number equals a registered PAN.
    NumberIsPan,
    /// The instrument is not active (or gone).
    InstrumentNotActive,
}

/// What consuming a token found.
#[derive(Debug)]
pub enum Consume {
    Consumed(TokenRow),
    /// No token has this number.
    Unknown,
    /// The token exists but could not be consumed; the row says why (state, expiry, lease,
    /// or its instrument is no longer active).
    Refused(TokenRow),
}

/// What a transaction is: the message it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxnKind {
    /// A `0200` purchase (the default only so rows can be built field by field).
    #[default]
    Purchase,
    /// A `0400`/`0420` reversal.
    Reversal,
    /// A `0200` cancellation (DE3 `20`).
    Cancel,
    /// A `0100` account verification (terminal tokenization).
    Verification,
}

/// Where a transaction stands. Outcomes are written only over a pending row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxnStatus {
    /// Claimed, its outcome not yet written (at the issuer, or cut off by a crash).
    #[default]
    Pending,
    Approved,
    Declined,
    /// An approved (or cut-off) payment undone by a reversal.
    Reversed,
}

/// `as_str`, `FromStr`, `Display` and JSON for an enum stored as text.
macro_rules! text_enum {
    ($t:ident { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),+
                }
            }
        }
        impl std::str::FromStr for $t {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($s => Ok($t::$v),)+
                    _ => Err(UnknownValue(stringify!($t))),
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        stored_as_text!($t);
    };
}

/// A stored value this version does not know (the enum's name).
#[derive(Debug, thiserror::Error)]
#[error("unknown stored {0} value")]
pub struct UnknownValue(&'static str);

text_enum!(TxnKind { Purchase => "purchase", Reversal => "reversal", Cancel => "cancel", Verification => "verification" });
text_enum!(CancelType { Void => "void", Refund => "refund" });
text_enum!(TxnStatus { Pending => "pending", Approved => "approved", Declined => "declined", Reversed => "reversed" });

/// One ISO 8583 request and what became of it. Its amounts are in its DE49 currency (the platform's
/// when absent); the store reads it as `TxnRow<i64>` (minor units) and hands out `TxnRow`.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct TxnRow<M = Amount> {
    pub id: String,
    pub kind: TxnKind,
    pub status: TxnStatus,
    pub mti: String,
    pub msg_class: String,
    pub terminal_id: String,
    pub stan: String,
    pub transmitted: String,
    pub acquirer_id: String,
    pub content_hash: String,
    pub response: Option<Vec<u8>>,
    pub response_code: Option<String>,
    pub processing_code: Option<String>,
    pub merchant_id: Option<String>,
    pub amount: Option<M>,
    pub currency: Option<String>,
    pub entry_mode: Option<String>,
    pub token_id: Option<String>,
    pub instrument_id: Option<String>,
    pub instrument_kind: Option<InstrumentKind>,
    pub masked_pan: Option<String>,
    pub issuer_id: Option<String>,
    pub original_id: Option<String>,
    pub original_key: Option<String>,
    pub auth_code: Option<String>,
    pub rrn: Option<String>,
    pub issuer_response: Option<String>,
    pub issuer_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// For a payment: how much of it has been cancelled (reserved by pending cancels included).
    pub cancelled_amount: M,
    /// For a cancel: `void` or `refund`.
    pub cancel_type: Option<CancelType>,
    /// Stored value: the split this transaction moved — for a payment what it took from principal
    /// and bonus, for a cancel or reversal what went back to each, with `forfeited` the bonus that had
    /// expired and went to the region instead. A gift certificate's balance is all principal.
    pub principal: Option<M>,
    pub bonus: Option<M>,
    pub forfeited: Option<M>,
}

impl TxnRow<i64> {
    /// The row with its amounts, in its DE49 currency.
    pub(crate) fn read_money(self, m: Money<'_>) -> StoreResult<TxnRow> {
        let cur = self.currency.as_deref();
        let amount = m.read_opt(cur, self.amount)?;
        let cancelled_amount = m.read(cur, self.cancelled_amount)?;
        let (principal, bonus, forfeited) =
            (m.read_opt(cur, self.principal)?, m.read_opt(cur, self.bonus)?, m.read_opt(cur, self.forfeited)?);
        Ok(TxnRow {
            id: self.id,
            kind: self.kind,
            status: self.status,
            mti: self.mti,
            msg_class: self.msg_class,
            terminal_id: self.terminal_id,
            stan: self.stan,
            transmitted: self.transmitted,
            acquirer_id: self.acquirer_id,
            content_hash: self.content_hash,
            response: self.response,
            response_code: self.response_code,
            processing_code: self.processing_code,
            merchant_id: self.merchant_id,
            amount,
            currency: self.currency,
            entry_mode: self.entry_mode,
            token_id: self.token_id,
            instrument_id: self.instrument_id,
            instrument_kind: self.instrument_kind,
            masked_pan: self.masked_pan,
            issuer_id: self.issuer_id,
            original_id: self.original_id,
            original_key: self.original_key,
            auth_code: self.auth_code,
            rrn: self.rrn,
            issuer_response: self.issuer_response,
            issuer_ms: self.issuer_ms,
            total_ms: self.total_ms,
            created_at: self.created_at,
            updated_at: self.updated_at,
            cancelled_amount,
            cancel_type: self.cancel_type,
            principal,
            bonus,
            forfeited,
        })
    }
}

impl InstrumentRow {
    /// A row of `instrument_cols!` as rusqlite reads it (see [`TokenRow::from_rusqlite`]).
    pub(crate) fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(InstrumentRow {
            id: r.get("id")?,
            requestor_id: r.get("requestor_id")?,
            kind: r.get("kind")?,
            status: r.get("status")?,
            issuer_id: r.get("issuer_id")?,
            bin: r.get("bin")?,
            last4: r.get("last4")?,
            pan_len: r.get("pan_len")?,
            expiry: r.get("expiry")?,
            par: r.get("par")?,
            fingerprint: r.get("fingerprint")?,
            fp_version: r.get("fp_version")?,
            pan_sealed: r.get("pan_sealed")?,
            dek_version: r.get("dek_version")?,
            assurance: r.get("assurance")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }

    /// A new, active stored-value instrument (gift certificate or wallet): no card data.
    pub fn stored_value(id: String, requestor_id: String, kind: InstrumentKind, now: i64) -> InstrumentRow {
        InstrumentRow {
            id,
            requestor_id,
            kind,
            status: InstrumentStatus::Active,
            issuer_id: None,
            bin: None,
            last4: None,
            pan_len: None,
            expiry: None,
            par: None,
            fingerprint: None,
            fp_version: None,
            pan_sealed: None,
            dek_version: None,
            assurance: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl<M> TxnRow<M> {
    /// The duplicate key as one string, the form `original_key` uses.
    pub fn key(&self) -> String {
        format!("{}|{}|{}|{}|{}", self.msg_class, self.terminal_id, self.stan, self.transmitted, self.acquirer_id)
    }
}

/// What becomes of a one-time token leased to a transaction that ends without an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// Given back: the payment was declined, or refused before any issuer could act on it.
    Release,
    /// Spent: the payment's fate at its issuer is unknown (cut off by a crash), so the token must
    /// not pay a second time.
    Spend,
}

/// What reversing an original undoes with it, in the same database transaction.
#[derive(Debug, Default)]
pub struct Undo<'a> {
    /// The `0420` owed to the card's issuer.
    pub advice: Option<&'a AdviceRow>,
    /// A token still leased to an original that was pending (token id, lease): spent.
    pub spend: Option<(&'a str, &'a str)>,
    /// A reversed cancel's amount, given back to the payment it cancelled (payment id, amount).
    pub release: Option<(&'a str, Amount)>,
}

/// What claiming a request's duplicate key found.
#[derive(Debug)]
pub enum Claim {
    /// The key was free: this request is new and now recorded as pending.
    New,
    /// A request with this key exists.
    Existing(Box<TxnRow>),
}

/// What claiming a payment and leasing its token in one write found ([`crate::store::Store::claim_holding`]).
#[derive(Debug)]
pub enum ClaimHold {
    /// Recorded as pending with the token leased to it: ask the issuer.
    Held,
    /// Recorded as pending, but a reversal of it came first: nothing leased; decline it.
    ReversalWaiting,
    /// Recorded as pending, but the token is not free (spent, leased, suspended, expired): nothing
    /// leased; decline it.
    TokenBusy,
    /// A request with this key exists; nothing written.
    Existing(Box<TxnRow>),
}

/// How a transaction ends.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: String,
    pub response_code: String,
    pub response: Vec<u8>,
    pub auth_code: Option<String>,
    pub issuer_response: Option<String>,
    pub issuer_ms: Option<i64>,
    pub total_ms: i64,
}

/// A reversal advice owed to an issuer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdviceRow {
    pub id: String,
    pub transaction_id: String,
    pub issuer_id: String,
    pub attempts: i64,
    pub next_at: i64,
}

/// An audit row's own fields, before it is numbered and chained (see `crate::audit`).
#[derive(Debug, Clone, Copy)]
pub struct AuditFields<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: &'a str,
}

impl AuditRow {
    pub fn fields(&self) -> AuditFields<'_> {
        AuditFields {
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            subject: self.subject.as_deref(),
            outcome: &self.outcome,
            detail: &self.detail,
        }
    }
}

impl AuditRow {
    /// The row's place in its chain: its `link`, or for a row of the legacy chain (`chain` empty,
    /// written before chains were per process) its `seq`.
    pub fn position(&self) -> i64 {
        self.link.unwrap_or(self.seq)
    }
}

/// An audit row as its caller hands it over, before it is numbered and chained.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub outcome: String,
    pub detail: String,
}

/// An audit row ready to be written: numbered in its chain and hashed (its `seq` is the database's).
#[derive(Debug, Clone)]
pub struct NewAuditRow {
    pub chain: String,
    pub link: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl NewAuditRow {
    pub fn fields(&self) -> AuditFields<'_> {
        AuditFields {
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            subject: self.subject.as_deref(),
            outcome: &self.outcome,
            detail: &self.detail,
        }
    }
}

/// The last row of another chain, as an anchor names it (`chain`, `link`, `hash`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditHead {
    pub chain: String,
    pub link: i64,
    pub hash: String,
}

/// Which pass of [`crate::store::Store::audit_scan`] a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPass {
    /// First, only the rows that name other rows (chain starts and anchors), in order.
    Links,
    /// Then every row, in order.
    Rows,
}

/// One row of the audit trail (see `crate::audit`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    /// The chain it belongs to: one per process that wrote rows; empty for the legacy chain.
    pub chain: String,
    /// Its place in that chain (1, 2, …); None in the legacy chain, whose place is `seq`.
    pub link: Option<i64>,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

mod events;
mod stored_value;
mod terminals;
pub use events::*;
pub use stored_value::*;
pub use terminals::*;
