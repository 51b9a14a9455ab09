//! `GET /openapi.json` lists every route the router serves, with its methods, and names the API-key
//! scheme the protected ones need.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::TestServer;
use serde_json::Value;

/// (method, path) of every `.route(…)` in the router's source.
fn routes_in_router() -> Vec<(String, String)> {
    let src = include_str!("../src/api/mod.rs");
    let mut out = Vec::new();
    for line in src.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let rest = &line[".route(\"".len()..];
        let Some((path, handlers)) = rest.split_once('"') else { continue };
        // `get(a::b).delete(c::delete)` → get, delete: a method is a name right before `(` that does
        // not follow `::`.
        for method in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{method}(");
            let n = handlers.match_indices(&call).filter(|(i, _)| !handlers[..*i].ends_with("::")).count();
            out.extend(std::iter::repeat_n((method.to_string(), path.to_string()), n));
        }
    }
    out
}

#[tokio::test]
async fn the_document_lists_every_route() {
    let routes = routes_in_router();
    assert!(routes.len() >= 23, "the router's routes were read: {routes:?}");
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in &routes {
        let op =
            &paths.get(path.as_str()).unwrap_or_else(|| panic!("{path} missing from /openapi.json"))[method.as_str()];
        assert!(op.is_object(), "{method} {path} missing from /openapi.json");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
        let public = ["/healthz", "/metrics", "/openapi.json"].contains(&path.as_str());
        assert_eq!(op["security"].is_array(), !public, "{method} {path}: security");
        if !public {
            assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
        }
    }
    // And nothing the router does not serve.
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len());
}
