//! The domain error: what the vault and token services can refuse. Mapped once to HTTP statuses
//! (`api::error`) and, later, once to ISO 8583 response codes. Messages never contain a PAN.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or invalid; `code` names it (`pan_luhn`, `expiry_past`, …).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("instrument not found")]
    InstrumentNotFound,
    #[error("instrument is suspended")]
    InstrumentSuspended,
    #[error("instrument is deleted")]
    InstrumentDeleted,
    /// A card past its expiry month, or a gift certificate past its expiry: no new tokens.
    #[error("instrument has expired")]
    InstrumentExpired,
    #[error("instrument is already active")]
    InstrumentActive,
    /// The issuer asked for step-up verification and it has not succeeded yet: no tokens.
    #[error("instrument awaits step-up verification")]
    InstrumentPendingVerification,
    /// The issuer declined the card's registration (DE39 of its answer).
    #[error("the card's issuer declined the registration")]
    RegistrationDeclined { response_code: String },
    /// A step-up cannot go on as asked.
    #[error(transparent)]
    Verification(#[from] crate::instruments::verification::Refusal),
    /// The issuer could not be reached for something only it can do (send a one-time code).
    #[error("the card's issuer is unavailable; try again")]
    IssuerUnavailable,
    #[error("unknown token")]
    TokenUnknown,
    #[error("token has expired")]
    TokenExpired,
    #[error("token has already been used")]
    TokenUsed,
    #[error("token is locked after failed attempts")]
    TokenLocked,
    #[error("token is deleted")]
    TokenDeleted,
    #[error("token is suspended")]
    TokenSuspended,
    #[error("token is active, not suspended")]
    TokenActive,
    #[error("this gift certificate is registered to another wallet")]
    GiftTaken,
    /// No API key has this key id.
    #[error("unknown API key")]
    ApiKeyNotFound,
    /// The API key is revoked, or was already rotated (it works until its overlap ends).
    #[error("the API key is revoked or was already rotated")]
    ApiKeyEnded,
    #[error("this operation needs a card instrument")]
    NotACard,
    #[error("could not draw a free token number; the token range is too full")]
    TokenRangeExhausted,
    /// A key rotation raced another one, or a card kept meeting newer keys while being sealed.
    #[error("the vault's keys changed meanwhile; try again")]
    KeysChanged,
    #[error("HSM: {0}")]
    Hsm(#[from] hsm_sim::HsmError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault of the platform, not of the request (a ledger entry that does not balance, a rule
    /// refusing state the database holds): logged, answered 500 / `96`, its message never shown.
    #[error("internal fault: {0}")]
    Internal(String),
}

/// A journal entry the platform built from checked values that still does not balance is its own
/// fault, never the caller's.
impl From<crate::ledger::LedgerError> for Error {
    fn from(e: crate::ledger::LedgerError) -> Self {
        Error::Internal(format!("ledger: {e}"))
    }
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { code, message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
