//! The REST error shape `{"error":{"code","message"}}` and the one place domain errors become
//! HTTP statuses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Error;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { status, code: code.into(), message: message.into(), retry_after: None }
    }
    /// Adds `Retry-After: secs` to the answer.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn unprocessable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Error::Store(e).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            Error::Invalid { code, .. } => (S::UNPROCESSABLE_ENTITY, *code),
            Error::InstrumentNotFound => (S::NOT_FOUND, "instrument_not_found"),
            Error::InstrumentSuspended => (S::CONFLICT, "instrument_suspended"),
            Error::InstrumentExpired => (S::CONFLICT, "instrument_expired"),
            Error::InstrumentDeleted => (S::CONFLICT, "instrument_deleted"),
            Error::InstrumentActive => (S::CONFLICT, "instrument_active"),
            Error::InstrumentPendingVerification => (S::CONFLICT, "instrument_pending_verification"),
            Error::RegistrationDeclined { .. } => (S::UNPROCESSABLE_ENTITY, "registration_declined"),
            Error::Verification(r) => {
                use crate::instruments::verification::Refusal as R;
                match r {
                    R::MethodNotOffered => (S::UNPROCESSABLE_ENTITY, "method_not_offered"),
                    R::CodesExhausted => (S::CONFLICT, "verification_codes_exhausted"),
                    R::NoCode => (S::CONFLICT, "verification_not_started"),
                    R::Expired => (S::UNPROCESSABLE_ENTITY, "code_expired"),
                    R::Incorrect { .. } => (S::UNPROCESSABLE_ENTITY, "code_incorrect"),
                    R::Exhausted => (S::CONFLICT, "verification_failed"),
                }
            }
            Error::IssuerUnavailable => (S::SERVICE_UNAVAILABLE, "issuer_unavailable"),
            Error::TokenUnknown => (S::NOT_FOUND, "token_unknown"),
            Error::TokenExpired => (S::CONFLICT, "token_expired"),
            Error::TokenUsed => (S::CONFLICT, "token_used"),
            Error::TokenLocked => (S::CONFLICT, "token_locked"),
            // The code is older than the word `deleted`, and codes are stable.
            Error::TokenDeleted => (S::CONFLICT, "token_revoked"),
            Error::TokenSuspended => (S::CONFLICT, "token_suspended"),
            Error::TokenActive => (S::CONFLICT, "token_active"),
            Error::ApiKeyNotFound => (S::NOT_FOUND, "api_key_not_found"),
            Error::ApiKeyEnded => (S::CONFLICT, "api_key_revoked"),
            Error::NotACard => (S::CONFLICT, "not_a_card"),
            Error::GiftTaken => (S::CONFLICT, "gift_registered"),
            Error::TokenRangeExhausted => (S::SERVICE_UNAVAILABLE, "token_range_exhausted"),
            Error::KeysChanged => (S::SERVICE_UNAVAILABLE, "keys_changed"),
            Error::Hsm(h) => {
                tracing::error!(error = %h, "HSM failure");
                return ApiError::new(S::INTERNAL_SERVER_ERROR, "hsm_error", "the HSM failed");
            }
            Error::Store(StoreError::Unavailable(m)) => {
                tracing::error!(error = %m, "database unavailable");
                return ApiError::new(S::SERVICE_UNAVAILABLE, "database_unavailable", "the database is unavailable");
            }
            Error::Store(s) => {
                tracing::error!(error = %s, "database failure");
                return ApiError::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error");
            }
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal fault");
                return ApiError::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error");
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
