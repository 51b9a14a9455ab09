//! Request extractors: who is calling ([`Caller`]) and what they sent ([`JsonBody`]; both at once,
//! the scope checked first, with [`Scoped`]).

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::AppState;
use super::error::ApiError;
use super::limits::Source;
use super::listener::Peer;
use crate::requestors::{self, Requestor, Scope};

/// Bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// An oversize body up to this size is read and dropped before the 413 goes out, so a client that
/// is still sending sees the answer instead of a reset connection. Past it, the connection closes.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The authenticated requestor behind `Authorization: Bearer <api key>`.
pub struct Caller(pub Requestor);

impl Caller {
    /// Refuses with 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<&Requestor, ApiError> {
        if self.0.has(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "scope_missing",
                format!("this API key lacks the {} scope", scope.as_str()),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = |code: &str, msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, msg);
        let header =
            parts.headers.get(AUTHORIZATION).ok_or_else(|| unauthorized("auth_missing", "an API key is required"))?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| unauthorized("auth_invalid", "Authorization must be `Bearer <api key>`"))?;
        // A source that failed too often is not even looked up for a while; the key id it names does
        // not matter (anyone may know one: see `limits`).
        let peer = parts.extensions.get::<ConnectInfo<Peer>>().map(|c| c.0.0);
        let source = Source::of(peer.map(|p| p.ip()));
        state.limits.key_may_try(source)?;
        match requestors::authenticate_cached(Some(&state.api_keys), &state.store, key, state.clock.now_ms()).await? {
            Some(r) => Ok(Caller(r)),
            None => {
                crate::metrics::get().auth_refused();
                // Refusals are counted; only a source's block is written to the audit trail (one row
                // per block, not per refusal: a flood must not grow the trail). The key id names
                // which key was tried (it is not secret); the secret is never kept.
                if state.limits.key_refused(source) {
                    let key_id = requestors::key_id_of(key).map(str::to_string);
                    let who = peer.map_or_else(|| "(unknown source)".to_string(), |p| p.ip().to_string());
                    tracing::warn!(source = %who, "API keys refused too often: source blocked");
                    let event = crate::audit::Event::new("unknown", "auth.blocked", key_id).outcome(who);
                    crate::audit::record_or_log(&state.store, &event, state.clock.now_ms()).await;
                }
                Err(unauthorized("auth_invalid", "unknown or revoked API key"))
            }
        }
    }
}

/// A scope a route requires, as a type: [`Scoped`] checks it before the body is read.
pub trait RequiredScope {
    const SCOPE: Scope;
}

/// The scopes as types, for [`Scoped`].
pub mod scope {
    use super::{RequiredScope, Scope};

    macro_rules! scopes {
        ($($name:ident),*) => {$(
            #[doc = concat!("The `", stringify!($name), "` scope.")]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }
    scopes!(Instruments, Tokens, Terminal, Detokenize, Admin);
}

/// A caller holding the scope `S` (`.0`), and the body `B` (`.1`: a [`JsonBody`] or an
/// [`OptionalJsonBody`]) it sent. The key and its scope are checked first: a key without the scope
/// is refused (401, then 403 `scope_missing`) before the body is looked at, so it learns nothing
/// about the body's shape. The refused body is still read, up to the drain limit, and dropped unread,
/// so a client that is still sending sees the answer instead of a reset connection.
pub struct Scoped<S, B>(pub Requestor, pub B, pub std::marker::PhantomData<S>);

impl<S, B> FromRequest<AppState> for Scoped<S, B>
where
    S: RequiredScope + Send + Sync,
    B: FromRequest<AppState, Rejection = ApiError> + Send,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let allowed = match Caller::from_request_parts(&mut parts, state).await {
            Ok(caller) => caller.require(S::SCOPE).map(|_| ()).map(|()| caller.0),
            Err(e) => Err(e),
        };
        let req = Request::from_parts(parts, body);
        match allowed {
            Ok(requestor) => Ok(Scoped(requestor, B::from_request(req, state).await?, std::marker::PhantomData)),
            Err(refusal) => {
                drain(req).await;
                Err(refusal)
            }
        }
    }
}

/// Reads and drops a body nobody will look at (at most [`DRAIN_LIMIT`] bytes; a longer one is left,
/// and the connection closes).
async fn drain(req: Request) {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|n| n <= DRAIN_LIMIT as u64) {
        let _ = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT).await;
    }
}

/// A JSON body of at most [`BODY_LIMIT`] bytes. Errors name the field: a missing `pan` is
/// `pan_missing`, a `pan` of the wrong type `pan_invalid`; bad JSON is 400 `invalid_json`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be left out: an empty (or all-whitespace) body is `None`; anything else is
/// read as [`JsonBody`] reads it.
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// The body, at most [`BODY_LIMIT`] bytes (413 past it).
async fn read_body(req: Request) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body exceeds {BODY_LIMIT} bytes"))
    };
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > BODY_LIMIT as u64) {
        if n <= DRAIN_LIMIT as u64 {
            let _ = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT).await;
        }
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), BODY_LIMIT).await.map_err(|_| too_large())
}

/// Deserializes `bytes`, naming the offending field in the error code.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut *de).map_err(|e| {
        let mut path: Vec<Segment> = e.path().iter().cloned().collect();
        let inner = e.into_inner();
        if !inner.is_data() {
            return ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is not valid JSON");
        }
        let msg = inner.to_string();
        // serde's text says "missing field `pan` at line …"; the field name is between backticks.
        if let Some(field) = msg.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            return ApiError::unprocessable(format!("{field}_missing"), format!("{field} is required"));
        }
        // The code names the body's field, never a key the client made up: those may be anything, a
        // card number too. A field the body type refuses (`deny_unknown_fields`) ends the path with
        // the client's key; in a free-form body (`Value`) any key is the client's. So the path's
        // unknown last key is dropped, and only a name shaped like the API's fields (lowercase
        // words joined by `_`) is named.
        if msg.starts_with("unknown field") {
            path.pop();
        }
        let field = match path.first() {
            Some(Segment::Map { key } | Segment::Enum { variant: key })
                if (1..=40).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                key.as_str()
            }
            _ => "",
        };
        if field.is_empty() {
            ApiError::unprocessable("body_invalid", "the body must be a JSON object of the documented shape")
        } else {
            ApiError::unprocessable(format!("{field}_invalid"), format!("{field} has the wrong type or value"))
        }
    })?;
    de.end().map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "trailing characters after the JSON body")
    })?;
    refuse_nul(bytes)?;
    Ok(value)
}

/// A NUL character (`\u0000`) is in no field's valid value, and PostgreSQL cannot store or even
/// compare text holding one (its query fails, which was a 500): refused here with 422 naming the
/// top-level field that holds it. Only a body whose text has the escape is walked.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    fn holds_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(holds_nul),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
            _ => false,
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Ok(()) };
    let field = match &value {
        serde_json::Value::Object(o) => {
            o.iter().find(|(k, v)| k.contains('\0') || holds_nul(v)).map(|(k, _)| k.as_str())
        }
        v if holds_nul(v) => Some(""),
        _ => None,
    };
    match field {
        None => Ok(()),
        Some(k) if (1..=40).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            Err(ApiError::unprocessable(format!("{k}_invalid"), format!("{k} must not hold a NUL character")))
        }
        Some(_) => Err(ApiError::unprocessable("body_invalid", "the body must not hold a NUL character")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        amount: String,
        items: Option<Vec<Strict>>,
    }

    /// `rest_bodies` fuzz inputs: a key the client made up (unknown to a `deny_unknown_fields` body,
    /// or any key of a free-form one) came back in the error code (`4111111111111111_invalid`).
    #[test]
    fn client_keys_are_not_echoed() {
        let e = parse_json::<Strict>(br#"{"amount":"1","4111111111111111":1}"#).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "body_invalid"));
        assert!(!e.message.contains("4111"), "{}", e.message);
        let crash = b"{\"id\":\"suwon\",\"n333333333333ame\":\"Suwon Pay\",\",\"monthlycancel_restore\":\"revWerse\",\
                      \"merchants\":[{\"id\":\"SW-CAFE-0001\",\"nam6\t\t\"Cafe\"}]}";
        let e = parse_json::<crate::config::RegionSpec>(crash).unwrap_err();
        assert!(!e.code.contains("3333") && !e.message.contains("3333"), "{e:?}");
        // The second: a key with a dot in it, which the path's text would split.
        let e = parse_json::<Strict>(b"{\"'''nnnn3003009970073333*.3/3/3'''\"\t\t").unwrap_err();
        assert!(!e.code.contains("3333") && !e.message.contains("3333"), "{e:?}");
        // The third: a data error inside a free-form body (serde_json's raw-value key), under a key
        // of the client's.
        let e = parse_json::<serde_json::Value>(br#"{"4111111111111111":{"$serde_json::private::RawValue":"x"}}"#)
            .unwrap_err();
        assert_eq!(e.code, "body_invalid");
        // Below the top level the field that holds the unknown key is named, as before.
        let e = parse_json::<Strict>(br#"{"amount":"1","items":[{"amount":"2","4111111111111111":1}]}"#).unwrap_err();
        assert_eq!(e.code, "items_invalid");
        let e = parse_json::<Strict>(br#"{"amount":1}"#).unwrap_err();
        assert_eq!(e.code, "amount_invalid");
    }

    /// On PostgreSQL a `\u0000` in a field reached the database, whose query failed (500). It is a
    /// 422 naming the field, on every store.
    #[test]
    fn nul_characters_are_refused() {
        let e = parse_json::<Strict>(br#"{"amount":"1\u0000"}"#).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "amount_invalid"));
        let e = parse_json::<Strict>(br#"{"amount":"1","items":[{"amount":"\u0000"}]}"#).unwrap_err();
        assert_eq!(e.code, "items_invalid");
        let e = parse_json::<serde_json::Value>(br#"{"4111111111111111\u0000":1}"#).unwrap_err();
        assert_eq!(e.code, "body_invalid");
        // An escaped backslash before `u0000` is text, not a NUL.
        assert!(parse_json::<Strict>(br#"{"amount":"\\u0000"}"#).is_ok());
    }
}
