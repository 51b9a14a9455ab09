//! `/v1/tokens` (scope `tokens`) and `/v1/detokenize` (scope `detokenize`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiResult;
use super::extract::{Caller, JsonBody, Scoped, scope};
use crate::clock::rfc3339;
use crate::requestors::Scope;
use crate::store::TokenRow;
use crate::tokens::TokenOptions;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct IssueBody {
    pub instrument_id: String,
    pub merchant_id: Option<String>,
    pub max_amount: Option<String>,
    pub currency: Option<String>,
    pub ttl_seconds: Option<i64>,
    pub entry_modes: Option<Vec<String>>,
}

fn restrictions(s: &AppState, t: &TokenRow, v: &mut Value) {
    v["merchant_id"] = json!(t.merchant_id);
    v["currency"] = json!(t.currency);
    let cur = t.currency.as_deref().and_then(|c| s.config.currency(c));
    v["max_amount"] = json!(t.max_amount.filter(|_| cur.is_some()).map(|m| m.to_string()));
    v["entry_modes"] = json!(t.entry_modes.as_deref().map(|m| m.split(',').collect::<Vec<_>>()));
}

/// `POST /v1/tokens`: a one-time token for one of the caller's instruments.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    request_body(content = IssueBody, description = r#"the instrument and the token's optional restrictions"#),
    responses(
        (status = 201, description = "a one-time token", body = super::schemas::IssuedToken),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "instrument suspended, expired or deleted"),
        (status = 422, description = "an invalid option; the code names it")
    ),
    security(("api_key" = []))
)]
pub async fn issue(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Tokens, JsonBody<IssueBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let requestor = &auth;
    s.limits.token(&requestor.id)?;
    let opts = TokenOptions {
        merchant_id: b.merchant_id,
        max_amount: b.max_amount,
        currency: b.currency,
        ttl_seconds: b.ttl_seconds,
        entry_modes: b.entry_modes,
    };
    let issued = s.tokens.issue(requestor, &b.instrument_id, &opts).await?;
    let t = &issued.row;
    let mut v = json!({
        "token": t.token,
        "token_ref": t.id,
        "token_expiry": t.token_expiry,
        "expires_at": rfc3339(t.expires_at),
        "psn": t.psn,
        "icc_key": hex::encode_upper(issued.icc_key.expose()),
        "instrument_id": t.instrument_id,
    });
    restrictions(&s, t, &mut v);
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /v1/tokens/{token_ref}`: whether the caller's token is still usable.
#[utoipa::path(
    get,
    path = "/v1/tokens/{token_ref}",
    tag = "tokens",
    params(("token_ref" = String, Path, description = "the token reference (tok_…)")),
    responses(
        (status = 200, description = "its state: active, consumed, expired, revoked or locked", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`")
    ),
    security(("api_key" = []))
)]
pub async fn status(
    State(s): State<AppState>,
    caller: Caller,
    Path(token_ref): Path<String>,
) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Tokens)?;
    let t = s.tokens.token(requestor, &token_ref).await?;
    let mut v = json!({
        "token_ref": t.id,
        "instrument_id": t.instrument_id,
        "status": s.tokens.effective_state(&t),
        "token_expiry": t.token_expiry,
        "expires_at": rfc3339(t.expires_at),
        "consumed_at": t.consumed_at.map(rfc3339),
    });
    restrictions(&s, &t, &mut v);
    Ok(Json(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DetokenizeBody {
    pub token: String,
}

/// `POST /v1/detokenize`: the PAN and expiry behind a live token. A read: the token stays usable.
#[utoipa::path(
    post,
    path = "/v1/detokenize",
    tag = "tokens",
    request_body(content = DetokenizeBody, description = r#"the token number"#),
    responses(
        (status = 200, description = "the PAN and expiry behind the token", body = super::schemas::Detokenized),
        (status = 404, description = "`token_unknown`"),
        (status = 409, description = "token used, expired, revoked or locked; instrument suspended or deleted"),
        (status = 422, description = "`token_missing`, `token_invalid`")
    ),
    security(("api_key" = []))
)]
pub async fn detokenize(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Detokenize, JsonBody<DetokenizeBody>>,
) -> ApiResult<Json<Value>> {
    let requestor = &auth;
    s.limits.detokenize(&requestor.id)?;
    let result = s.tokens.detokenize(requestor, &b.token).await.map_err(super::error::ApiError::from);
    // Every call is recorded, whatever its outcome; the token is shown masked.
    let masked =
        crate::tokens::TokenValue::parse(&b.token).map(|t| format!("{t:?}")).unwrap_or_else(|| "(malformed)".into());
    tracing::info!(requestor = %requestor.id, token = %masked, ok = result.is_ok(), "detokenize");
    let outcome = result.as_ref().map_or_else(|e| e.code.clone(), |_| "ok".to_string());
    s.audit(crate::audit::Event::new(&requestor.id, "detokenize", Some(masked)).outcome(outcome)).await?;
    let (pan, expiry) = result?;
    Ok(Json(json!({ "pan": pan.expose(), "expiry": expiry })))
}
