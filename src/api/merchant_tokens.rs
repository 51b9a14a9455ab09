//! `/v1/merchant-tokens` (scope `terminal`): terminal tokenization over REST — the same merchant
//! token the ISO 8583 `0100` gives (`payments::tokenize`), for merchants bound to the caller.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, Scoped, scope};
use crate::audit::Event;
use crate::clock::rfc3339;
use crate::payments::ResponseCode;
use crate::payments::tokenize::Outcome;
use crate::requestors::{Requestor, Scope};
use crate::store::TxnRow;
use crate::vault::{CardExpiry, Pan, PanError};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantTokenBody {
    pub pan: String,
    pub expiry: String,
    pub merchant_id: String,
}

/// A terminal key asks only for its own merchants' tokens.
async fn require_merchant(s: &AppState, caller: &Requestor, merchant_id: &str) -> ApiResult<()> {
    if s.store.merchant_owner(merchant_id).await?.as_deref() == Some(caller.id.as_str()) {
        return Ok(());
    }
    Err(ApiError::new(StatusCode::FORBIDDEN, "merchant_not_bound", "this API key is not bound to that merchant"))
}

/// The issuer's or the vault's refusal as an HTTP answer.
fn refused(code: ResponseCode) -> ApiError {
    match code {
        ResponseCode::UNKNOWN_CARD => {
            ApiError::unprocessable("pan_unknown_bin", "no issuer is configured for this card's BIN")
        }
        ResponseCode::CARD_EXPIRED => ApiError::unprocessable("expiry_past", "the card has expired"),
        ResponseCode::INSTRUMENT_BLOCKED => {
            ApiError::new(StatusCode::CONFLICT, "instrument_suspended", "the card is suspended for this requestor")
        }
        ResponseCode::ISSUER_UNAVAILABLE => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "issuer_unavailable", "the card's issuer did not answer")
        }
        c => ApiError::unprocessable(
            "issuer_declined",
            format!("the card's issuer declined the account verification: response code {}", c.as_str()),
        ),
    }
}

/// `POST /v1/merchant-tokens`: verifies the card with its issuer and gives its merchant token at
/// `merchant_id` (the same one every time for the same card and merchant).
#[utoipa::path(
    post,
    path = "/v1/merchant-tokens",
    operation_id = "create_merchant_token",
    tag = "terminals",
    request_body(content = MerchantTokenBody, description = r#"the card a terminal read and the merchant"#),
    responses(
        (status = 201, description = "the card's merchant token at that merchant", body = super::schemas::MerchantToken),
        (status = 403, description = "`scope_missing`, or `merchant_not_bound`: the key is not bound to the merchant"),
        (status = 409, description = "`instrument_suspended`: the card is suspended"),
        (status = 422, description = "invalid card (`pan_format`, `pan_luhn`, `expiry_format`, `pan_unknown_bin`, `expiry_past`), or `issuer_declined` (its response code in the message)"),
        (status = 503, description = "`issuer_unavailable`: the issuer did not answer")
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Terminal, JsonBody<MerchantTokenBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let requestor = &auth;
    s.limits.token(&requestor.id)?;
    require_merchant(&s, requestor, &b.merchant_id).await?;
    let pan = Pan::parse(&b.pan).map_err(|e| match e {
        PanError::Format => ApiError::unprocessable("pan_format", "pan must be 13 to 19 digits"),
        PanError::Luhn => ApiError::unprocessable("pan_luhn", "pan fails the Luhn check"),
    })?;
    let expiry = CardExpiry::parse(&b.expiry)
        .ok_or_else(|| ApiError::unprocessable("expiry_format", "expiry must be YYMM with month 01-12"))?;
    let mut scratch = TxnRow::default();
    let (token, instrument) = match s.payments.merchant_token(&pan, &expiry, &b.merchant_id, None, &mut scratch).await?
    {
        Outcome::Token { token, instrument } => (token, instrument),
        Outcome::Refused(code) => return Err(refused(code)),
    };
    s.audit(
        Event::new(&requestor.id, "merchant_token.issue", Some(token.id.clone()))
            .detail(json!({ "merchant_id": b.merchant_id, "masked_pan": pan.masked() })),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token.token,
            "token_ref": token.id,
            "merchant_id": b.merchant_id,
            "instrument_id": instrument.id,
            "masked_pan": pan.masked(),
            "token_expiry": token.token_expiry,
            "expires_at": rfc3339(token.expires_at),
            "multi_use": true,
        })),
    ))
}

/// `DELETE /v1/merchant-tokens/{token}`: ends a merchant token of one of the caller's merchants.
#[utoipa::path(
    delete,
    path = "/v1/merchant-tokens/{token}",
    operation_id = "delete_merchant_token",
    tag = "terminals",
    params(("token" = String, Path, description = "the merchant token number")),
    responses(
        (status = 200, description = "the token is revoked", body = super::schemas::MerchantTokenRevoked),
        (status = 404, description = "`not_found`: no live merchant token of the caller's merchants")
    ),
    security(("api_key" = []))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(number): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Terminal)?;
    let token = s.store.token_by_number(&number).await?.filter(|t| t.multi_use).ok_or_else(ApiError::not_found)?;
    let merchant = token.merchant_id.clone().unwrap_or_default();
    if s.store.merchant_owner(&merchant).await?.as_deref() != Some(requestor.id.as_str()) {
        return Err(ApiError::not_found());
    }
    if !s.store.end_token(&token.id, true, s.clock.now_ms()).await? {
        return Err(ApiError::not_found());
    }
    s.audit(
        Event::new(&requestor.id, "merchant_token.revoke", Some(token.id.clone()))
            .detail(json!({ "merchant_id": merchant })),
    )
    .await?;
    Ok(Json(json!({ "token_ref": token.id, "merchant_id": merchant, "state": "revoked", "status": "deleted" })))
}
