//! Errors of the HSM, classified by the kinds the conformance vectors name.

use serde::{Deserialize, Serialize};

/// The class of a failure, as named by `vectors/` (`out: {"error": "<kind>"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An integrity or MAC check failed (wrong tag, tampered key block).
    Auth,
    /// The input is malformed (bad length, bad hex, bad digits).
    Format,
    /// The key is of the wrong type, length or usage, or is unknown.
    Key,
    /// A value is outside its allowed range.
    Range,
    /// The HSM itself failed (storage, randomness).
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Format => "format",
            ErrorKind::Key => "key",
            ErrorKind::Range => "range",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An HSM failure. The message never contains key material or clear data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{} error: {message}", kind.as_str())]
pub struct HsmError {
    pub kind: ErrorKind,
    pub message: String,
}

impl HsmError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        HsmError { kind, message: message.into() }
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }
    pub fn format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, message)
    }
    pub fn key(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Key, message)
    }
    pub fn range(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Range, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}
