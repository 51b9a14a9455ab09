//! The demo pages (`/wallet`, `/console`, `/terminal`) and their assets, embedded in the binary:
//! no separate front-end server and no script from anywhere else. The pages call only the public,
//! documented REST API with a key the user types in (kept in the tab's session storage).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Every embedded file: name, content type, bytes.
const FILES: [(&str, &str, &str); 8] = [
    ("wallet.html", "text/html; charset=utf-8", include_str!("../../web/wallet.html")),
    ("console.html", "text/html; charset=utf-8", include_str!("../../web/console.html")),
    ("terminal.html", "text/html; charset=utf-8", include_str!("../../web/terminal.html")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../web/app.css")),
    ("common.js", "text/javascript; charset=utf-8", include_str!("../../web/common.js")),
    ("wallet.js", "text/javascript; charset=utf-8", include_str!("../../web/wallet.js")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("../../web/console.js")),
    ("terminal.js", "text/javascript; charset=utf-8", include_str!("../../web/terminal.js")),
];

/// Only this origin's scripts, styles, connections; images also from `blob:` (the token's codes,
/// fetched with the key) and `data:`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn file(name: &str) -> Response {
    let Some((_, kind, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such page").into_response();
    };
    let mut resp = (StatusCode::OK, *body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn asset(Path(name): Path<String>) -> Response {
    if name.ends_with(".html") {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    }
    file(&name)
}

pub fn router() -> Router {
    Router::new()
        .route("/wallet", get(|| async { file("wallet.html") }))
        .route("/console", get(|| async { file("console.html") }))
        .route("/terminal", get(|| async { file("terminal.html") }))
        .route("/assets/{name}", get(asset))
}
