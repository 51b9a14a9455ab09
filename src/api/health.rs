use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// 200 when the database answers, 503 when it does not.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "the database answers", body = super::schemas::Health),
        (status = 503, description = "the database does not answer: `{\"status\":\"unavailable\",\"database\":\"unreachable\"}`", body = super::schemas::HealthOrError)
    )
)]
pub async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    match s.store.health().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": "unreachable" })))
        }
    }
}
