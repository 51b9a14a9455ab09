//! `/v1/webhooks` and `/v1/events` (scope `tokens`): a requestor's webhook endpoints, and the events
//! about its instruments and tokens with where each delivery stands (`crate::webhooks`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, Scoped, scope};
use crate::audit::Event;
use crate::clock::rfc3339;
use crate::requestors::Scope;
use crate::store::{EndpointRow, EventRow};

/// At most this many events in one list.
const MAX_EVENTS: i64 = 500;

fn endpoint_view(e: &EndpointRow) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "status": e.status,
        "created_at": rfc3339(e.created_at),
    })
}

fn endpoint_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", "no webhook endpoint of this requestor has this id")
}

fn event_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "event_not_found", "no event of this requestor has this id")
}

async fn event_view(s: &AppState, e: &EventRow) -> ApiResult<Value> {
    let mut v = crate::webhooks::envelope(e);
    let deliveries = s.store.deliveries_of(&e.id).await?;
    v["deliveries"] = deliveries
        .iter()
        .map(|d| {
            json!({
                "endpoint_id": d.endpoint_id,
                "state": d.state,
                "attempts": d.attempts,
                "next_attempt_at": (d.state == crate::store::DeliveryState::Pending).then(|| rfc3339(d.next_at)),
                "last_status": d.last_status,
                "last_error": d.last_error,
                "delivered_at": d.delivered_at.map(rfc3339),
            })
        })
        .collect();
    Ok(v)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// Where events are posted: `https://…` (or `http://…`).
    pub url: String,
}

/// `POST /v1/webhooks` `{"url"}`: registers an endpoint; the answer carries its signing secret, shown
/// this once.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    request_body(content = EndpointBody, description = r#"the endpoint's URL"#),
    responses(
        (status = 201, description = "the endpoint and its signing secret (shown once)", body = super::schemas::WebhookCreated),
        (status = 422, description = "`url_invalid`, `url_not_public`")
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Tokens, JsonBody<EndpointBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (row, secret) = s.webhooks.register(&auth.id, &b.url).await?;
    s.audit(Event::new(&auth.id, "webhook.create", Some(row.id.clone()))).await?;
    let mut v = endpoint_view(&row);
    v["secret"] = json!(secret.as_str());
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /v1/webhooks`: the caller's endpoints (without their secrets).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    responses((status = 200, description = "`{\"items\":[…]}`", body = super::schemas::Webhooks)),
    security(("api_key" = []))
)]
pub async fn list(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Tokens)?;
    let items = s.store.endpoints_of(&requestor.id).await?;
    Ok(Json(json!({ "items": items.iter().map(endpoint_view).collect::<Vec<_>>() })))
}

/// `DELETE /v1/webhooks/{id}`: the endpoint gets nothing more (its pending deliveries stop).
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "the endpoint id (whe_…)")),
    responses(
        (status = 200, description = "disabled", body = super::schemas::Webhook),
        (status = 404, description = "`webhook_not_found`")
    ),
    security(("api_key" = []))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Tokens)?;
    let ep = s.store.endpoint(&id).await?.filter(|e| e.requestor_id == requestor.id).ok_or_else(endpoint_not_found)?;
    s.store.disable_endpoint(&ep.id, s.clock.now_ms()).await?;
    s.audit(Event::new(&requestor.id, "webhook.delete", Some(ep.id.clone()))).await?;
    let ep = s.store.endpoint(&id).await?.ok_or_else(endpoint_not_found)?;
    Ok(Json(endpoint_view(&ep)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Only this instrument's events.
    pub instrument_id: Option<String>,
    /// Only events after this one (its id), for paging.
    pub after: Option<String>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// `GET /v1/events`: the caller's events, oldest first, each with its deliveries.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "webhooks",
    params(EventsQuery),
    responses(
        (status = 200, description = "`{\"items\":[…]}`", body = super::schemas::Events),
        (status = 422, description = "`limit_range`")
    ),
    security(("api_key" = []))
)]
pub async fn events(State(s): State<AppState>, caller: Caller, Query(q): Query<EventsQuery>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Tokens)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS).contains(&limit) {
        return Err(ApiError::unprocessable("limit_range", "limit must be 1 to 500"));
    }
    let rows = s.store.events_of(&requestor.id, q.instrument_id.as_deref(), q.after.as_deref(), limit).await?;
    let mut items = Vec::with_capacity(rows.len());
    for e in &rows {
        items.push(event_view(&s, e).await?);
    }
    Ok(Json(json!({ "items": items })))
}

async fn own_event(s: &AppState, caller: &Caller, id: &str) -> ApiResult<EventRow> {
    let requestor = caller.require(Scope::Tokens)?;
    s.store.event(id).await?.filter(|e| e.requestor_id == requestor.id).ok_or_else(event_not_found)
}

/// `GET /v1/events/{id}`: one event and its deliveries.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    operation_id = "get_event",
    tag = "webhooks",
    params(("id" = String, Path, description = "the event id (evt_…)")),
    responses(
        (status = 200, description = "the event", body = super::schemas::EventView),
        (status = 404, description = "`event_not_found`")
    ),
    security(("api_key" = []))
)]
pub async fn event(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = own_event(&s, &caller, &id).await?;
    Ok(Json(event_view(&s, &e).await?))
}

/// `POST /v1/events/{id}/replay`: sends the event again to each of the caller's active endpoints
/// (a dead delivery too; a delivered one once more, with the same id).
#[utoipa::path(
    post,
    path = "/v1/events/{id}/replay",
    operation_id = "replay_event",
    tag = "webhooks",
    params(("id" = String, Path, description = "the event id (evt_…)")),
    responses(
        (status = 200, description = "queued again", body = super::schemas::EventView),
        (status = 404, description = "`event_not_found`")
    ),
    security(("api_key" = []))
)]
pub async fn replay(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = own_event(&s, &caller, &id).await?;
    s.store.replay_event(&e, s.clock.now_ms()).await?;
    s.audit(Event::new(&e.requestor_id, "event.replay", Some(e.id.clone()))).await?;
    Ok(Json(event_view(&s, &e).await?))
}
