//! The REST API's OpenAPI document (`GET /openapi.json`), generated from the handlers' own
//! `#[utoipa::path]` annotations, so a route without one is missing here — `tests/openapi.rs`
//! compares it with the router, and `tests/schemathesis.rs` checks the server's answers against it.
//!
//! Handlers document their own answers (success shapes, 404s, 409s, their specific 422s and 503s);
//! [`complete`] adds what every route of a kind can answer, from the extractors and layers they all
//! share: 401/403/429 for routes behind an API key, 400/413/422 for routes that read a JSON body,
//! 500 and 503 everywhere — every error in the shape of [`ErrorBody`].

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::extract::BODY_LIMIT;
use super::schemas::ErrorBody;
use super::{
    admin, barcodes, card_art, health, instruments, issuer_tokens, merchant_tokens, terminal, terminals, tokens,
    transactions, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tsp",
        description = "Token Service Provider: card vault, one-time tokens, stored value (gift certificates, \
                       local currency). Payments themselves go over ISO 8583, not this API.\n\n\
                       Every refusal is `{\"error\":{\"code\",\"message\"}}` (schema `Error`). Besides \
                       what each operation lists: a path no route serves answers 404 `not_found`, a \
                       method a path does not serve 405 `method_not_allowed` (with `Allow`). Bodies are \
                       read as JSON whatever their `Content-Type`, so no route answers 415. A key \
                       without a route's scope gets 403 `scope_missing` before its body is read."
    ),
    components(schemas(ErrorBody)),
    paths(
        health::healthz,
        super::metrics,
        document,
        instruments::create,
        instruments::list,
        instruments::get_one,
        instruments::delete,
        instruments::suspend,
        instruments::resume,
        instruments::balance,
        instruments::charge,
        instruments::send_code,
        instruments::verify,
        instruments::simulated_messages,
        card_art::get,
        tokens::issue,
        tokens::status,
        tokens::suspend,
        tokens::resume,
        tokens::delete,
        tokens::detokenize,
        merchant_tokens::create,
        barcodes::code,
        terminal::pay,
        merchant_tokens::delete,
        transactions::list,
        webhooks::create,
        webhooks::list,
        webhooks::delete,
        webhooks::events,
        webhooks::event,
        webhooks::replay,
        admin::issuers,
        admin::create_requestor,
        admin::revoke_key,
        admin::rotate_key,
        admin::settle,
        admin::issue_gift,
        admin::define_region,
        admin::regions,
        admin::define_merchant,
        admin::merchants,
        issuer_tokens::get_one,
        issuer_tokens::suspend,
        issuer_tokens::resume,
        issuer_tokens::delete,
        issuer_tokens::list,
        issuer_tokens::act_on_card,
        issuer_tokens::reissue,
        issuer_tokens::lost,
        terminals::register,
        terminals::list,
        terminals::get_one,
        terminals::suspend,
        terminals::resume,
        terminals::remove,
    ),
    modifiers(&ApiKey)
)]
pub struct ApiDoc;

/// Requests carry `Authorization: Bearer tsp_<key id>_<secret>`.
struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("tsp_<key id>_<secret>").build();
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// The document, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    complete(&mut doc);
    doc
});

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    responses((status = 200, description = "the OpenAPI document", body = Object))
)]
pub async fn document() -> Json<Value> {
    Json(DOCUMENT.clone())
}

/// Adds to every operation of `doc` the answers the shared extractors and layers give (see the
/// module's documentation), and the error shape to every 4xx and 5xx that names none.
fn complete(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            let secured = op.get("security").is_some();
            let has_body = op.get("requestBody").is_some();
            // A body that may be left out (`Option<T>`, an `OptionalJsonBody`) is optional, not `null`:
            // utoipa writes `oneOf: [T, null]`, but a `null` body is refused like any other wrong one.
            if let Some(schema) = op.pointer_mut("/requestBody/content/application~1json/schema")
                && let Some(Value::Array(variants)) = schema.get("oneOf")
                && let [one, Value::Object(null)] = variants.as_slice()
                && null.get("type") == Some(&json!("null"))
            {
                *schema = one.clone();
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            let mut add = |status: &str, description: String, header: Option<(&str, &str)>| {
                let r = responses.entry(status).or_insert_with(|| json!({ "description": "" }));
                let old = r["description"].as_str().unwrap_or_default().to_string();
                r["description"] = json!(if old.is_empty() { description } else { format!("{old}; or {description}") });
                if let Some((name, text)) = header {
                    r["headers"][name] = json!({ "description": text, "schema": { "type": "integer", "minimum": 1 } });
                }
            };
            if has_body {
                add("400", "`invalid_json`: the body is not JSON, or has trailing characters".into(), None);
                add("413", format!("`body_too_large`: the body exceeds {BODY_LIMIT} bytes"), None);
                add(
                    "422",
                    "the body is not of the documented shape: `<field>_missing`, `<field>_invalid` or `body_invalid`"
                        .into(),
                    None,
                );
            }
            if secured {
                add("401", "`auth_missing` or `auth_invalid`: a missing, unknown or revoked API key".into(), None);
                add("403", "`scope_missing`: the key lacks the scope (checked before the body is read)".into(), None);
                add(
                    "429",
                    "`rate_limited`: too many requests, or too many refused keys from this address".into(),
                    Some(("Retry-After", "seconds to wait")),
                );
            }
            add("500", "`internal_error` or `hsm_error`: an unexpected fault".into(), None);
            let unavailable = if secured {
                "`database_unavailable`, or `connections_exhausted` (too many connections; `Retry-After`)"
            } else {
                "`connections_exhausted`: too many connections (`Retry-After`)"
            };
            add("503", unavailable.into(), Some(("Retry-After", "with `connections_exhausted`: seconds to wait")));
            for (status, r) in responses.iter_mut() {
                if status.as_str() >= "400" && r.get("content").is_none() {
                    r["content"] =
                        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
                }
            }
        }
    }
}
