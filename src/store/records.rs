//! Rows as the store reads and writes them: plain data, no behaviour.

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

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DataKeyRow {
    pub version: i64,
    pub kek_label: String,
    pub kek_version: i64,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentStatus {
    Active,
    Suspended,
    Deleted,
}

impl InstrumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentStatus::Active => "active",
            InstrumentStatus::Suspended => "suspended",
            InstrumentStatus::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(InstrumentStatus::Active),
            "suspended" => Some(InstrumentStatus::Suspended),
            "deleted" => Some(InstrumentStatus::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstrumentRow {
    pub id: String,
    pub requestor_id: String,
    pub kind: String,
    pub status: String,
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
    pub created_at: i64,
    pub updated_at: i64,
}

/// What inserting a card found.
#[derive(Debug)]
pub enum InsertCard {
    Inserted,
    /// The requestor already has a non-deleted instrument with this fingerprint.
    Duplicate(Box<InstrumentRow>),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub token: String,
    pub instrument_id: String,
    pub requestor_id: String,
    pub state: String,
    pub token_expiry: String,
    pub psn: String,
    pub merchant_id: Option<String>,
    pub max_amount: Option<i64>,
    pub currency: Option<String>,
    /// Comma-separated two-digit PAN entry modes (DE22 positions 1–2) the token accepts.
    pub entry_modes: Option<String>,
    pub failed_attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
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

/// One ISO 8583 request and what became of it.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct TxnRow {
    pub id: String,
    pub kind: String,
    pub status: String,
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
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub entry_mode: Option<String>,
    pub token_id: Option<String>,
    pub instrument_id: Option<String>,
    pub instrument_kind: Option<String>,
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
    pub cancelled_amount: i64,
    /// For a cancel: `void` or `refund`.
    pub cancel_type: Option<String>,
}

impl TxnRow {
    /// The duplicate key as one string, the form `original_key` uses.
    pub fn key(&self) -> String {
        format!("{}|{}|{}|{}|{}", self.msg_class, self.terminal_id, self.stan, self.transmitted, self.acquirer_id)
    }
}

/// What claiming a request's duplicate key found.
#[derive(Debug)]
pub enum Claim {
    /// The key was free: this request is new and now recorded as pending.
    New,
    /// A request with this key exists.
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

/// A gift certificate. Its balance is the ledger account `gift:<id>`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GiftRow {
    pub id: String,
    pub code_hash: String,
    pub currency: String,
    pub face_value: i64,
    pub expires_at: i64,
    pub instrument_id: Option<String>,
    pub created_at: i64,
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
}
