//! `/v1/admin/terminals`: the terminal registry (scope `admin`). Only registered terminals may send
//! requests over ISO 8583, each for its own merchant and through its own VAN (`crate::terminals`).
//! Every change is audited and applies on this node at once, on the others within
//! [`crate::terminals::CACHE_TTL`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, Scoped, scope};
use crate::audit::Event;
use crate::config::TerminalSpec;
use crate::requestors::Scope;
use crate::store::{TerminalRow, TerminalStatus};

fn view(t: &TerminalRow) -> Value {
    json!({
        "id": t.id,
        "merchant_id": t.merchant_id,
        "van": t.van,
        "status": t.status,
        "created_at": crate::clock::rfc3339(t.created_at),
        "updated_at": crate::clock::rfc3339(t.updated_at),
    })
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "terminal_not_found", "no terminal is registered with this id")
}

/// `POST /v1/admin/terminals` `{"id","merchant_id","van"?}`: registers a terminal (201), or changes
/// a registered one's merchant and VAN (200; its status stays).
#[utoipa::path(
    post,
    path = "/v1/admin/terminals",
    operation_id = "register_terminal",
    tag = "admin",
    request_body(content = TerminalSpec, description = r#"a terminal: its DE41, the merchant (DE42) it pays for, the VAN it comes through"#),
    responses(
        (status = 201, description = "a new terminal, active", body = super::schemas::Terminal),
        (status = 200, description = "its merchant or VAN changed", body = super::schemas::Terminal),
        (status = 422, description = "`terminal_id_invalid`, `merchant_id_invalid` or `van_invalid`")
    ),
    security(("api_key" = []))
)]
pub async fn register(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Admin, JsonBody<TerminalSpec>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (t, created) = s.terminals.register(&b, s.clock.now_ms()).await?;
    tracing::info!(admin = %auth.id, terminal = %t.id, merchant = %t.merchant_id, created, "terminal registered");
    s.audit(
        Event::new(&auth.id, "terminal.register", Some(t.id.clone()))
            .detail(json!({ "merchant_id": t.merchant_id, "van": t.van, "created": created })),
    )
    .await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view(&t))))
}

/// `GET /v1/admin/terminals[?merchant_id=…]`: the registered terminals, by id.
#[utoipa::path(
    get,
    path = "/v1/admin/terminals",
    operation_id = "list_terminals",
    tag = "admin",
    params(("merchant_id" = Option<String>, Query, description = "only this merchant's")),
    responses(
        (status = 200, description = "terminals", body = super::schemas::TerminalList)
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let merchant = q.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("merchant_id=")));
    let rows = s.store.terminals(merchant).await.map_err(crate::Error::from)?;
    Ok(Json(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() })))
}

/// `GET /v1/admin/terminals/{id}`.
#[utoipa::path(
    get,
    path = "/v1/admin/terminals/{id}",
    operation_id = "get_terminal",
    tag = "admin",
    params(("id" = String, Path, description = "the terminal id (DE41)")),
    responses(
        (status = 200, description = "the terminal", body = super::schemas::Terminal),
        (status = 404, description = "`terminal_not_found`")
    ),
    security(("api_key" = []))
)]
pub async fn get_one(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let t = s.store.terminal(&id).await.map_err(crate::Error::from)?.ok_or_else(not_found)?;
    Ok(Json(view(&t)))
}

async fn set_status(s: &AppState, caller: Caller, id: &str, status: TerminalStatus) -> ApiResult<Json<Value>> {
    let admin = caller.require(Scope::Admin)?;
    let t = s.terminals.set_status(id, status, s.clock.now_ms()).await?.ok_or_else(not_found)?;
    let action = match status {
        TerminalStatus::Active => "terminal.resume",
        TerminalStatus::Suspended => "terminal.suspend",
    };
    tracing::info!(admin = %admin.id, terminal = %t.id, %status, "terminal status set");
    s.audit(Event::new(&admin.id, action, Some(t.id.clone()))).await?;
    Ok(Json(view(&t)))
}

/// `POST /v1/admin/terminals/{id}/suspend`: its requests are refused `58` from now on, except
/// reversals of what it already did. Idempotent.
#[utoipa::path(
    post,
    path = "/v1/admin/terminals/{id}/suspend",
    operation_id = "suspend_terminal",
    tag = "admin",
    params(("id" = String, Path, description = "the terminal id (DE41)")),
    responses(
        (status = 200, description = "suspended", body = super::schemas::Terminal),
        (status = 404, description = "`terminal_not_found`")
    ),
    security(("api_key" = []))
)]
pub async fn suspend(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    set_status(&s, caller, &id, TerminalStatus::Suspended).await
}

/// `POST /v1/admin/terminals/{id}/resume`: active again. Idempotent.
#[utoipa::path(
    post,
    path = "/v1/admin/terminals/{id}/resume",
    operation_id = "resume_terminal",
    tag = "admin",
    params(("id" = String, Path, description = "the terminal id (DE41)")),
    responses(
        (status = 200, description = "active", body = super::schemas::Terminal),
        (status = 404, description = "`terminal_not_found`")
    ),
    security(("api_key" = []))
)]
pub async fn resume(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    set_status(&s, caller, &id, TerminalStatus::Active).await
}

/// `DELETE /v1/admin/terminals/{id}`: removes it from the registry and answers what it was; its
/// requests are refused `58` from now on (reversals too: register it again and suspend it to let it
/// only reverse). Its transactions stay.
#[utoipa::path(
    delete,
    path = "/v1/admin/terminals/{id}",
    operation_id = "delete_terminal",
    tag = "admin",
    params(("id" = String, Path, description = "the terminal id (DE41)")),
    responses(
        (status = 200, description = "removed: the registration it had", body = super::schemas::Terminal),
        (status = 404, description = "`terminal_not_found`")
    ),
    security(("api_key" = []))
)]
pub async fn remove(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let admin = caller.require(Scope::Admin)?;
    let t = s.store.terminal(&id).await.map_err(crate::Error::from)?.ok_or_else(not_found)?;
    if !s.terminals.remove(&id).await? {
        return Err(not_found());
    }
    tracing::info!(admin = %admin.id, terminal = %id, "terminal removed");
    s.audit(Event::new(&admin.id, "terminal.delete", Some(id))).await?;
    Ok(Json(view(&t)))
}
