//! ISO 8583 response codes (DE39) as docs/iso8583.md "Response codes" lists them, and the one place domain errors become codes.

use crate::Error;

/// A DE39 response code: two characters. Issuers may answer codes outside the constants; those pass
/// through unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode([u8; 2]);

impl ResponseCode {
    pub const APPROVED: Self = Self(*b"00");
    pub const INVALID_MERCHANT: Self = Self(*b"03");
    pub const DO_NOT_HONOR: Self = Self(*b"05");
    pub const INVALID_TRANSACTION: Self = Self(*b"12");
    pub const INVALID_AMOUNT: Self = Self(*b"13");
    pub const UNKNOWN_CARD: Self = Self(*b"14");
    pub const ORIGINAL_NOT_FOUND: Self = Self(*b"25");
    pub const FORMAT_ERROR: Self = Self(*b"30");
    pub const TOKEN_EXPIRED: Self = Self(*b"33");
    pub const INSUFFICIENT_FUNDS: Self = Self(*b"51");
    pub const CARD_EXPIRED: Self = Self(*b"54");
    pub const NOT_PERMITTED: Self = Self(*b"57");
    pub const TERMINAL_NOT_PERMITTED: Self = Self(*b"58");
    pub const EXCEEDS_LIMIT: Self = Self(*b"61");
    pub const INSTRUMENT_BLOCKED: Self = Self(*b"62");
    pub const SECURITY_VIOLATION: Self = Self(*b"63");
    pub const EXCEEDS_CANCELLABLE: Self = Self(*b"64");
    pub const TOKEN_USED: Self = Self(*b"78");
    pub const CRYPTOGRAM_FAILED: Self = Self(*b"82");
    pub const ISSUER_UNAVAILABLE: Self = Self(*b"91");
    pub const DUPLICATE: Self = Self(*b"94");
    pub const SYSTEM_ERROR: Self = Self(*b"96");

    /// A code as an issuer sent it; None unless two letters or digits.
    pub fn parse(s: &str) -> Option<Self> {
        match s.as_bytes() {
            &[a, b] if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => Some(Self([a, b])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("96")
    }

    /// The code in words, as docs/iso8583.md "Response codes" names it (for people: the terminal page).
    pub fn meaning(&self) -> &'static str {
        match &self.0 {
            b"00" => "approved",
            b"03" => "invalid merchant",
            b"05" => "do not honor",
            b"12" => "invalid transaction",
            b"13" => "invalid amount",
            b"14" => "unknown token or card",
            b"25" => "original not found",
            b"30" => "format error",
            b"33" => "token expired",
            b"51" => "insufficient funds",
            b"54" => "card expired",
            b"57" => "not permitted for this instrument here",
            b"58" => "terminal not permitted",
            b"61" => "exceeds the amount limit",
            b"62" => "instrument suspended or deleted",
            b"63" => "security violation",
            b"64" => "exceeds what is left to cancel",
            b"78" => "token already used or locked",
            b"82" => "cryptogram failed",
            b"91" => "issuer unavailable",
            b"94" => "duplicate transmission",
            b"96" => "system error",
            _ => "declined by the issuer",
        }
    }

    pub fn is_approved(&self) -> bool {
        *self == Self::APPROVED
    }

    /// The code for a domain error met while paying.
    pub fn from_error(e: &Error) -> Self {
        match e {
            Error::TokenUnknown => Self::UNKNOWN_CARD,
            Error::TokenExpired => Self::TOKEN_EXPIRED,
            Error::InstrumentExpired => Self::CARD_EXPIRED,
            Error::TokenUsed | Error::TokenLocked => Self::TOKEN_USED,
            Error::TokenDeleted
            | Error::TokenSuspended
            | Error::InstrumentSuspended
            | Error::InstrumentDeleted
            | Error::InstrumentPendingVerification => Self::INSTRUMENT_BLOCKED,
            Error::RegistrationDeclined { .. } | Error::Verification(_) => Self::DO_NOT_HONOR,
            Error::InstrumentNotFound => Self::UNKNOWN_CARD,
            Error::NotACard | Error::GiftTaken => Self::NOT_PERMITTED,
            Error::Invalid { .. }
            | Error::InstrumentActive
            | Error::TokenActive
            | Error::ApiKeyNotFound
            | Error::ApiKeyEnded => Self::INVALID_TRANSACTION,
            Error::IssuerUnavailable => Self::ISSUER_UNAVAILABLE,
            Error::TokenRangeExhausted | Error::KeysChanged | Error::Hsm(_) | Error::Store(_) | Error::Internal(_) => {
                Self::SYSTEM_ERROR
            }
        }
    }
}

/// The terminal registry's refusals: `03` for a merchant that is not the terminal's, `58` for a
/// terminal that may not send this (unknown, suspended, or not through its VAN).
impl From<crate::terminals::Refusal> for ResponseCode {
    fn from(r: crate::terminals::Refusal) -> Self {
        use crate::terminals::Refusal;
        match r {
            Refusal::ForeignMerchant => Self::INVALID_MERCHANT,
            Refusal::Unknown | Refusal::Suspended | Refusal::WrongVan => Self::TERMINAL_NOT_PERMITTED,
        }
    }
}

impl std::fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseCode({})", self.as_str())
    }
}

impl std::fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
