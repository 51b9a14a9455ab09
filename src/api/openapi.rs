//! The REST API's OpenAPI document (`GET /openapi.json`), generated from the handlers' own
//! `#[utoipa::path]` annotations, so a route without one is missing here — `tests/openapi.rs`
//! compares it with the router.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, barcodes, health, instruments, merchant_tokens, terminal, tokens, transactions};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tsp",
        description = "Token Service Provider: card vault, one-time tokens, stored value (gift certificates, \
                       local currency). Payments themselves go over ISO 8583, not this API."
    ),
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
        tokens::issue,
        tokens::status,
        tokens::detokenize,
        merchant_tokens::create,
        barcodes::code,
        terminal::pay,
        merchant_tokens::delete,
        transactions::list,
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

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "the OpenAPI document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
