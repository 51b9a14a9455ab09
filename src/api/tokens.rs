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

/// What requestors and the issuer see of a token: never its number in full.
pub(super) fn view(s: &AppState, t: &TokenRow) -> Value {
    let masked = crate::tokens::TokenValue::parse(&t.token).map(|v| v.masked());
    let mut v = json!({
        "token_ref": t.id,
        "instrument_id": t.instrument_id,
        "status": s.tokens.status(t).as_str(),
        "masked_token": masked,
        "multi_use": t.multi_use,
        "token_expiry": t.token_expiry,
        "expires_at": rfc3339(t.expires_at),
        "consumed_at": t.consumed_at.map(rfc3339),
        "suspended_at": t.suspended_at.map(rfc3339),
    });
    restrictions(s, t, &mut v);
    v
}

/// A lifecycle change of one token, asked by its requestor or by the issuer/operator.
#[derive(Clone, Copy, Debug)]
pub(super) enum Action {
    Suspend,
    Resume,
    Delete,
}

impl Action {
    pub(super) fn name(self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Delete => "delete",
        }
    }

    /// Applies the change to `t` and records who made it in the audit trail.
    pub(super) async fn apply(self, s: &AppState, actor: &str, t: &TokenRow) -> ApiResult<TokenRow> {
        let changed = match self {
            Action::Suspend => s.tokens.suspend(t).await?,
            Action::Resume => s.tokens.resume(t).await?,
            Action::Delete => s.tokens.delete(t).await?,
        };
        let action = match self {
            Action::Suspend => "token.suspend",
            Action::Resume => "token.resume",
            Action::Delete => "token.delete",
        };
        s.audit(crate::audit::Event::new(actor, action, Some(t.id.clone()))).await?;
        Ok(changed)
    }
}

/// `GET /v1/tokens/{token_ref}`: the caller's token and its status.
#[utoipa::path(
    get,
    path = "/v1/tokens/{token_ref}",
    tag = "tokens",
    params(("token_ref" = String, Path, description = "the token reference (tok_…)")),
    responses(
        (status = 200, description = "its status: active, suspended, deleted, consumed, expired or locked", body = super::schemas::TokenState),
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
    Ok(Json(view(&s, &t)))
}

async fn act(s: AppState, caller: Caller, token_ref: &str, action: Action) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Tokens)?;
    let t = s.tokens.token(requestor, token_ref).await?;
    let t = action.apply(&s, &requestor.id, &t).await?;
    Ok(Json(view(&s, &t)))
}

/// `POST /v1/tokens/{token_ref}/suspend`: holds a live token; a terminal presenting it is declined
/// `62` until it is resumed.
#[utoipa::path(
    post,
    path = "/v1/tokens/{token_ref}/suspend",
    operation_id = "suspend_token",
    tag = "tokens",
    params(("token_ref" = String, Path, description = "the token reference (tok_…)")),
    responses(
        (status = 200, description = "suspended", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`"),
        (status = 409, description = "not active: `token_suspended`, `token_revoked`, `token_used`, `token_expired`, `token_locked`")
    ),
    security(("api_key" = []))
)]
pub async fn suspend(
    State(s): State<AppState>,
    caller: Caller,
    Path(token_ref): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, caller, &token_ref, Action::Suspend).await
}

/// `POST /v1/tokens/{token_ref}/resume`: a suspended token is active again.
#[utoipa::path(
    post,
    path = "/v1/tokens/{token_ref}/resume",
    operation_id = "resume_token",
    tag = "tokens",
    params(("token_ref" = String, Path, description = "the token reference (tok_…)")),
    responses(
        (status = 200, description = "active", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`"),
        (status = 409, description = "not suspended: `token_active`, `token_revoked`, `token_used`, `token_expired`, `token_locked`")
    ),
    security(("api_key" = []))
)]
pub async fn resume(
    State(s): State<AppState>,
    caller: Caller,
    Path(token_ref): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, caller, &token_ref, Action::Resume).await
}

/// `DELETE /v1/tokens/{token_ref}`: ends a live (active or suspended) token for good.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{token_ref}",
    operation_id = "delete_token",
    tag = "tokens",
    params(("token_ref" = String, Path, description = "the token reference (tok_…)")),
    responses(
        (status = 200, description = "deleted", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`"),
        (status = 409, description = "not live: `token_revoked`, `token_used`, `token_expired`, `token_locked`")
    ),
    security(("api_key" = []))
)]
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(token_ref): Path<String>,
) -> ApiResult<Json<Value>> {
    act(s, caller, &token_ref, Action::Delete).await
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
