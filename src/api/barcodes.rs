//! `GET /v1/tokens/{token_ref}/code` (scope `tokens`): a live token of the caller's as a picture a
//! terminal's scanner reads — a QR code or a Code 128 barcode, SVG drawn here, so the wallet page
//! needs no script from anywhere else.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Caller;
use crate::requestors::Scope;

/// The token number as SVG: `qr` (ISO/IEC 18004, error correction M) or `code128` (ISO/IEC 15417,
/// code set C: two digits per symbol).
pub fn svg(number: &str, format: &str) -> Option<String> {
    match format {
        "qr" => {
            let code = qrcode::QrCode::with_error_correction_level(number, qrcode::EcLevel::M).ok()?;
            Some(
                code.render::<qrcode::render::svg::Color<'_>>()
                    .min_dimensions(200, 200)
                    .quiet_zone(true)
                    .dark_color(qrcode::render::svg::Color("#000000"))
                    .light_color(qrcode::render::svg::Color("#ffffff"))
                    .build(),
            )
        }
        "code128" => {
            // `Ć` selects code set C (an even count of digits: a token has 16).
            let data = format!("\u{0106}{number}");
            let modules = barcoders::sym::code128::Code128::new(&data).ok()?.encode();
            Some(bars_svg(&modules))
        }
        _ => None,
    }
}

/// Bars as a standalone SVG: 2 px per module, 80 px high, the 10-module quiet zone ISO/IEC 15417
/// asks for on each side, white behind.
fn bars_svg(modules: &[u8]) -> String {
    const X: usize = 2;
    const QUIET: usize = 10;
    let width = (modules.len() + 2 * QUIET) * X;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{width}\" height=\"80\" \
         viewBox=\"0 0 {width} 80\" shape-rendering=\"crispEdges\"><rect width=\"{width}\" height=\"80\" fill=\"#ffffff\"/>"
    );
    for (i, m) in modules.iter().enumerate() {
        if *m == 1 {
            out.push_str(&format!("<rect x=\"{}\" width=\"{X}\" height=\"80\" fill=\"#000000\"/>", (QUIET + i) * X));
        }
    }
    out.push_str("</svg>");
    out
}

/// `GET /v1/tokens/{token_ref}/code?format=qr|code128`.
#[utoipa::path(
    get,
    path = "/v1/tokens/{token_ref}/code",
    tag = "tokens",
    params(("token_ref" = String, Path, description = "the token's reference"), ("format" = Option<String>, Query, description = "qr (default) or code128")),
    responses(
        (status = 200, description = "the token as an SVG picture", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "`token_unknown`: not one of the caller's tokens"),
        (status = 409, description = "the token is no longer live"),
        (status = 422, description = "`format_invalid`: unknown format")
    ),
    security(("api_key" = []))
)]
pub async fn code(
    State(s): State<AppState>,
    caller: Caller,
    Path(token_ref): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let requestor = caller.require(Scope::Tokens)?;
    let format = q.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("format="))).unwrap_or("qr");
    let token = s.tokens.token(requestor, &token_ref).await?;
    if let Some(e) = s.tokens.refusal(&token).await? {
        return Err(e.into());
    }
    let body = svg(&token.token, format)
        .ok_or_else(|| ApiError::unprocessable("format_invalid", "format must be qr or code128"))?;
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_draw_and_others_do_not() {
        let qr = svg("9410001234567897", "qr").unwrap();
        assert!(qr.starts_with("<?xml") && qr.contains("<svg"), "{qr}");
        let bars = svg("9410001234567897", "code128").unwrap();
        assert!(bars.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{bars}");
        // (123 + 2 × 10 quiet modules) × 2 px.
        assert!(bars.contains("width=\"286\""), "{bars}");
        // Code set C: start C (105), 8 digit pairs, checksum, stop: 11 modules per symbol, 13 for the
        // stop, so 11 × 10 + 13 = 123 modules wide.
        let encoded = barcoders::sym::code128::Code128::new("\u{0106}9410001234567897").unwrap().encode();
        assert_eq!(encoded.len(), 123);
        assert!(svg("9410001234567897", "pdf417").is_none());
    }
}
