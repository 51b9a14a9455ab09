//! `GET /v1/transactions`: payments, reversals and cancellations, masked. A requestor (scope
//! `instruments`) sees those of its own instruments (`?instrument_id=` required); an operator
//! (`admin`) may list all, newest first.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Caller;
use crate::clock::rfc3339;
use crate::requestors::Scope;
use crate::store::TxnKind;
use crate::store::TxnRow;

fn param<'a>(q: &'a str, name: &str) -> Option<&'a str> {
    q.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

pub fn view(s: &AppState, t: &TxnRow) -> Value {
    // Amounts only with a DE49 the configuration knows (they are in its currency).
    let cur = t.currency.as_deref().and_then(|c| s.config.currency(c));
    json!({
        "id": t.id,
        "kind": t.kind,
        "status": t.status,
        "mti": t.mti,
        "response_code": t.response_code,
        "amount": t.amount.filter(|_| cur.is_some()).map(|a| a.to_string()),
        "currency": cur.map(|c| c.code.clone()),
        "instrument_id": t.instrument_id,
        "instrument_kind": t.instrument_kind,
        "token_ref": t.token_id,
        "masked_pan": t.masked_pan,
        "issuer_id": t.issuer_id,
        "merchant_id": t.merchant_id,
        "terminal_id": t.terminal_id,
        "stan": t.stan,
        "transmitted": t.transmitted,
        "processing_code": t.processing_code,
        "entry_mode": t.entry_mode,
        "auth_code": t.auth_code,
        "issuer_response": t.issuer_response,
        "original_id": t.original_id,
        "cancel_type": t.cancel_type,
        "principal": t.principal.filter(|_| cur.is_some()).map(|a| a.to_string()),
        "bonus": t.bonus.filter(|_| cur.is_some()).map(|a| a.to_string()),
        "forfeited": t.forfeited.filter(|_| cur.is_some()).map(|a| a.to_string()),
        "cancelled_amount": cur.filter(|_| t.kind == TxnKind::Purchase).map(|_| t.cancelled_amount.to_string()),
        "issuer_ms": t.issuer_ms,
        "total_ms": t.total_ms,
        "created_at": rfc3339(t.created_at),
    })
}

#[utoipa::path(
    get,
    path = "/v1/transactions",
    operation_id = "list_transactions",
    tag = "transactions",
    params(("instrument_id" = Option<String>, Query, description = "one instrument's (required without admin scope)"), ("limit" = Option<i64>, Query, description = "at most this many, newest first (1 to 1000, default 100)")),
    responses(
        (status = 200, description = "payments, reversals and cancellations with ledger splits", body = super::schemas::TransactionList),
        (status = 403, description = "`scope_missing`: neither instruments nor admin"),
        (status = 404, description = "`instrument_not_found`: not one of the caller's instruments"),
        (status = 422, description = "`instrument_id_missing`: required without the admin scope")
    ),
    security(("api_key" = []))
)]
pub async fn list(State(s): State<AppState>, caller: Caller, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let q = q.unwrap_or_default();
    let instrument = param(&q, "instrument_id");
    let limit = param(&q, "limit").and_then(|l| l.parse::<i64>().ok()).unwrap_or(100).clamp(1, 1000);
    let rows = match instrument {
        Some(id) if caller.0.has(Scope::Instruments) => {
            s.vault.instrument(&caller.0, id).await?;
            s.store.transactions(Some(id), limit).await.map_err(crate::Error::from)?
        }
        _ if caller.0.has(Scope::Admin) => s.store.transactions(instrument, limit).await.map_err(crate::Error::from)?,
        None if caller.0.has(Scope::Instruments) => {
            return Err(ApiError::unprocessable("instrument_id_missing", "instrument_id is required"));
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "scope_missing",
                "this API key lacks the instruments scope",
            ));
        }
    };
    Ok(Json(json!({ "items": rows.iter().map(|t| view(&s, t)).collect::<Vec<_>>() })))
}
