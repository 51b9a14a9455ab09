//! `/v1/admin/*`: the operator's API (scope `admin`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody};
use crate::requestors::{self, Scope};

/// `GET /v1/admin/issuers`: the configured issuers with their BIN and token BIN prefixes.
pub async fn issuers(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let items: Vec<Value> = s
        .issuers
        .all()
        .iter()
        .map(|i| json!({ "id": i.id, "name": i.name, "bin_prefixes": i.bin_prefixes, "token_bin_prefixes": i.token_bin_prefixes }))
        .collect();
    Ok(Json(json!({ "items": items, "platform_token_bin_prefixes": s.config.platform.token_bin_prefixes })))
}

#[derive(Deserialize)]
pub struct NewRequestorBody {
    name: String,
    scopes: Vec<String>,
}

/// `POST /v1/admin/requestors`: a new requestor and its API key, shown this once.
pub async fn create_requestor(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<NewRequestorBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = caller.require(Scope::Admin)?;
    let scopes: Option<Vec<Scope>> = b.scopes.iter().map(|x| Scope::parse(x)).collect();
    let scopes = scopes.filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::unprocessable(
            "scopes_invalid",
            "scopes must be a non-empty list of instruments, tokens, terminal, detokenize, admin",
        )
    })?;
    let created =
        requestors::create(&s.store, &s.config.platform.trid_prefix, &b.name, &scopes, s.clock.now_ms()).await?;
    let r = &created.requestor;
    tracing::info!(admin = %admin.id, requestor = %r.id, "requestor created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": r.id,
            "trid": r.trid,
            "name": r.name,
            "scopes": r.scopes,
            "api_key": created.api_key,
        })),
    ))
}

/// `POST /v1/admin/settlements`: closes the current business day now (the same as `tsp settle`).
/// Card cancels of payments made before this instant are refunds from now on, not voids.
pub async fn settle(State(s): State<AppState>, caller: Caller) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = caller.require(Scope::Admin)?;
    let (id, closed_at) = crate::payments::settle(&s.store, &s.clock).await?;
    tracing::info!(admin = %admin.id, settlement = %id, "business day closed");
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "closed_at": crate::clock::rfc3339(closed_at) }))))
}

#[derive(Deserialize)]
pub struct NewGiftBody {
    face_value: String,
    currency: String,
    /// RFC 3339.
    expires_at: String,
}

/// `POST /v1/admin/gift-certificates`: issues a certificate; its code is shown this once.
pub async fn issue_gift(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<NewGiftBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = caller.require(Scope::Admin)?;
    let expires = time::OffsetDateTime::parse(&b.expires_at, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::unprocessable("expires_at_invalid", "expires_at must be an RFC 3339 date-time"))?;
    let expires_ms = (expires.unix_timestamp_nanos() / 1_000_000) as i64;
    let g = crate::vault::gift::issue(&s.store, &s.config, &b.face_value, &b.currency, expires_ms, s.clock.now_ms())
        .await?;
    tracing::info!(admin = %admin.id, gift = %g.row.id, "gift certificate issued");
    let face = crate::money::Amount::from_minor(g.row.face_value, &g.currency).to_string();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": g.row.id,
            "code": g.code,
            "face_value": face,
            "balance": face,
            "currency": g.currency.code,
            "expires_at": crate::clock::rfc3339(g.row.expires_at),
        })),
    ))
}
