//! The REST API (docs/rest-api.md): JSON over HTTP for pay apps (instruments, tokens), VANs
//! (detokenize) and operators (admin). One file per resource; [`error`] maps domain errors to statuses
//! once.

pub mod admin;
pub mod barcodes;
pub mod card_art;
pub mod error;
pub mod extract;
mod health;
pub mod instruments;
pub mod issuer_tokens;
pub mod limits;
pub mod listener;
pub mod merchant_tokens;
pub mod openapi;
pub mod schemas;
pub mod terminal;
pub mod terminals;
pub mod tokens;
mod transactions;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};

use crate::clock::Clock;
use crate::config::Config;
use crate::issuer::Issuers;
use crate::store::Store;
use crate::tokens::Tokens;
use crate::vault::Vault;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub vault: Arc<Vault>,
    pub tokens: Arc<Tokens>,
    pub config: Arc<Config>,
    pub issuers: Arc<Issuers>,
    pub clock: Clock,
    pub payments: Arc<crate::payments::Payments>,
    /// The terminal registry the ISO 8583 front checks (`/v1/admin/terminals` changes it).
    pub terminals: Arc<crate::terminals::Registry>,
    /// The in-process issuer simulator that issuers configured with `host = "sim"` use.
    pub simulator: Arc<crate::issuer::sim::Simulator>,
    pub limits: Arc<limits::RestLimits>,
    /// API keys as recently read (`[limits] api_key_cache_ms`); revoking or rotating a key here drops it.
    pub api_keys: Arc<crate::requestors::KeyCache>,
    /// Where this node's ISO 8583 front listens, once it does (the terminal page pays through it).
    pub iso_addr: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
    /// Requestors' webhook endpoints and the delivery of events to them.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// `tsp serve --production`: the simulator's routes are not served.
    pub production: bool,
}

/// `GET /metrics`: the Prometheus text format (no authentication: scrape it from the internal
/// network; it holds counts and timings, no field values).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(axum::extract::State(s): axum::extract::State<AppState>) -> Response {
    s.store.sample_pools();
    let body = crate::metrics::get().render();
    axum::response::IntoResponse::into_response((
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    ))
}

impl AppState {
    /// Appends `event` to the audit trail; the request fails if it cannot be recorded.
    pub async fn audit(&self, event: crate::audit::Event) -> Result<(), ApiError> {
        crate::audit::record(&self.store, &event, self.clock.now_ms()).await?;
        Ok(())
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/instruments", post(instruments::create).get(instruments::list))
        .route("/v1/instruments/{id}", get(instruments::get_one).delete(instruments::delete))
        .route("/v1/instruments/{id}/suspend", post(instruments::suspend))
        .route("/v1/instruments/{id}/resume", post(instruments::resume))
        .route("/v1/instruments/{id}/balance", get(instruments::balance))
        .route("/v1/instruments/{id}/charge", post(instruments::charge))
        .route("/v1/instruments/{id}/verification", post(instruments::send_code))
        .route("/v1/instruments/{id}/verify", post(instruments::verify))
        .route("/v1/issuer-sim/messages", get(instruments::simulated_messages))
        .route("/v1/card-art/{issuer}/{product}", get(card_art::get))
        .route("/v1/tokens", post(tokens::issue))
        .route("/v1/tokens/{token_ref}", get(tokens::status).delete(tokens::delete))
        .route("/v1/tokens/{token_ref}/suspend", post(tokens::suspend))
        .route("/v1/tokens/{token_ref}/resume", post(tokens::resume))
        .route("/v1/tokens/{token_ref}/code", get(barcodes::code))
        .route("/v1/terminal/payments", post(terminal::pay))
        .route("/v1/detokenize", post(tokens::detokenize))
        .route("/v1/merchant-tokens", post(merchant_tokens::create))
        .route("/v1/merchant-tokens/{token}", delete(merchant_tokens::delete))
        .route("/v1/transactions", get(transactions::list))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/{id}", delete(webhooks::delete))
        .route("/v1/events", get(webhooks::events))
        .route("/v1/events/{id}", get(webhooks::event))
        .route("/v1/events/{id}/replay", post(webhooks::replay))
        .route("/v1/admin/issuers", get(admin::issuers))
        .route("/v1/admin/requestors", post(admin::create_requestor))
        .route("/v1/admin/api-keys/{key_id}/revoke", post(admin::revoke_key))
        .route("/v1/admin/api-keys/{key_id}/rotate", post(admin::rotate_key))
        .route("/v1/admin/settlements", post(admin::settle))
        .route("/v1/admin/gift-certificates", post(admin::issue_gift))
        .route("/v1/admin/regions", post(admin::define_region).get(admin::regions))
        .route("/v1/admin/merchants", post(admin::define_merchant).get(admin::merchants))
        .route("/v1/admin/tokens/{number}", get(issuer_tokens::get_one).delete(issuer_tokens::delete))
        .route("/v1/admin/tokens/{number}/suspend", post(issuer_tokens::suspend))
        .route("/v1/admin/tokens/{number}/resume", post(issuer_tokens::resume))
        .route("/v1/admin/cards/{par}/tokens", get(issuer_tokens::list))
        .route("/v1/admin/cards/{par}/tokens/{action}", post(issuer_tokens::act_on_card))
        .route("/v1/admin/cards/{par}/reissue", post(issuer_tokens::reissue))
        .route("/v1/admin/cards/{par}/lost", post(issuer_tokens::lost))
        .route("/v1/admin/terminals", post(terminals::register).get(terminals::list))
        .route("/v1/admin/terminals/{id}", get(terminals::get_one).delete(terminals::remove))
        .route("/v1/admin/terminals/{id}/suspend", post(terminals::suspend))
        .route("/v1/admin/terminals/{id}/resume", post(terminals::resume))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this path")
        })
        .layer(middleware::from_fn(refuse_nul_path))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(no_store))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            ))
        }))
        .with_state(state)
}

/// One log line and one metrics sample per request, inside a span carrying the request id (the
/// client's `X-Request-Id` when it is a sane one, else a fresh UUIDv7; echoed in the answer), so every
/// line the request causes — down to the issuer call — names it. Lines name the route pattern, never the
/// raw path: a raw path could carry anything a client typed, a PAN included.
async fn log_request(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let started = Instant::now();
    // A client may send any token as its method: only a known one is logged or counted.
    let method = crate::metrics::method_label(req.method().as_str());
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "(unmatched)".into());
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_string);
    let span = tracing::info_span!("request", id = %id);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    let status = resp.status().as_u16();
    span.in_scope(|| tracing::info!(%method, route, status, micros = took.as_micros() as u64, "http"));
    crate::metrics::get().http(method, &route, status, took);
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

const REQUEST_ID: &str = "x-request-id";

/// A path holding an encoded NUL (`%00`) names nothing: 404 before any handler sees it. (No id holds
/// one, and PostgreSQL cannot even compare text holding one: the lookup failed, which was a 500.)
async fn refuse_nul_path(req: Request, next: Next) -> Response {
    if req.uri().path().contains("%00") {
        return axum::response::IntoResponse::into_response(ApiError::not_found());
    }
    next.run(req).await
}

/// A client's request id is kept (logged, echoed) only when it is short, plain and holds nothing
/// that could be a card number; anything else is replaced by a fresh id.
fn sane_request_id(v: &str) -> bool {
    let plain = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    plain && !holds_card_number(v)
}

/// True when `v`, read without its `.`, `_` and `-` separators, holds a run of 13 to 19 digits that
/// passes the Luhn check (the shape of a card number), or a run of more than 19 digits (which could
/// hide one).
fn holds_card_number(v: &str) -> bool {
    let digits_only: String = v.chars().filter(|c| !matches!(c, '.' | '_' | '-')).collect();
    digits_only
        .split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() > 19 || ((13..=19).contains(&run.len()) && crate::luhn::is_valid(run)))
}

/// API answers are for their caller only: none may be kept by a cache on the way (a detokenize
/// answer holds a card number, a new requestor's answer its API key).
async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_that_could_be_card_numbers_are_not_kept() {
        assert!(sane_request_id("0190f1a2-7c3e-7d4b-9a61-3b0c2f4e5d6a"));
        assert!(sane_request_id("req-20261204-000042"));
        for pan_like in ["4111111111111111", "x4111-1111-1111-1111y", "4111.1111.1111.1111", "ab_5500000000000004"] {
            assert!(!sane_request_id(pan_like), "{pan_like}");
        }
        // Digits that fail the Luhn check are not a card number; a long run could hide one.
        assert!(sane_request_id("4111111111111112"));
        assert!(!sane_request_id("0041111111111111111000"));
    }
}
