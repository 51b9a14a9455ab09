//! `GET /v1/card-art/{issuer}/{product}`: a card product's art (no key: it holds no card data, and
//! a wallet page loads it as an image). The configured file, or the art drawn from the product's
//! colours (`issuer::products`).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ApiResult};

/// `GET /v1/card-art/{issuer}/{product}`: the image.
#[utoipa::path(
    get,
    path = "/v1/card-art/{issuer}/{product}",
    operation_id = "card_art",
    tag = "instruments",
    params(
        ("issuer" = String, Path, description = "the issuer id"),
        ("product" = String, Path, description = "the product id (an instrument's `card_metadata.product_id`)")
    ),
    responses(
        (status = 200, description = "the card art (SVG, PNG or JPEG)", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "`not_found`: no such issuer or product")
    )
)]
pub async fn get(State(s): State<AppState>, Path((issuer, product)): Path<(String, String)>) -> ApiResult<Response> {
    let issuer = s.issuers.get(&issuer).ok_or_else(ApiError::not_found)?;
    let configured = issuer.products.iter().find(|p| p.id == product);
    let (content_type, body) = match configured.and_then(|p| p.art.as_ref()) {
        Some(path) => {
            let kind = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
                Some("png") => "image/png",
                Some("jpg" | "jpeg") => "image/jpeg",
                _ => "image/svg+xml",
            };
            let bytes = tokio::fs::read(path).await.map_err(|e| {
                tracing::warn!(issuer = %issuer.id, %product, error = %e, "card art file unreadable");
                ApiError::not_found()
            })?;
            (kind, bytes)
        }
        None => {
            // A configured product without a file, or the plain card of an issuer with no products.
            let bin = match configured {
                Some(p) => p.bin_prefixes.first().cloned().unwrap_or_default(),
                None if issuer.products.is_empty() && product == "standard" => String::new(),
                None => return Err(ApiError::not_found()),
            };
            let mut m = crate::issuer::products::metadata(issuer, &bin);
            if let Some(p) = configured {
                // (A product without prefixes is what `metadata` falls back to; name it directly.)
                m.product_name.clone_from(&p.name);
                m.background_color.clone_from(&p.background_color);
                m.foreground_color.clone_from(&p.foreground_color);
            }
            ("image/svg+xml", crate::issuer::products::drawn_art(&m).into_bytes())
        }
    };
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    Ok(r)
}
