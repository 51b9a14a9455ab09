//! `GET /openapi.json` lists every route the router serves, with its methods, and names the API-key
//! scheme the protected ones need.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::TestServer;
use serde_json::{Value, json};

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
        let public =
            ["/healthz", "/metrics", "/openapi.json", "/v1/card-art/{issuer}/{product}"].contains(&path.as_str());
        assert_eq!(op["security"].is_array(), !public, "{method} {path}: security");
        if !public {
            assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
        }
    }
    // And nothing the router does not serve.
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len());

    // Complete: every body and every answer has a schema, every status a route can give is listed.
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]), "{error}");
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(operation_ids.insert(op["operationId"].as_str().unwrap().to_string()), "{at}: operationId taken");
            let responses = op["responses"].as_object().unwrap();
            for (status, r) in responses {
                let content = r["content"].as_object().unwrap_or_else(|| panic!("{at} {status}: no content"));
                for (media, c) in content {
                    let schema = &c["schema"];
                    assert!(
                        schema.as_object().is_some_and(|o| !o.is_empty())
                            || media != "application/json"
                            || path == "/openapi.json",
                        "{at} {status}: no schema"
                    );
                }
                if status.as_str() >= "400" && path != "/healthz" {
                    assert_eq!(
                        content["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
                        "{at} {status}"
                    );
                }
            }
            let mut expected = vec!["500", "503"];
            if op["security"].is_array() {
                expected.extend(["401", "403", "429"]);
                assert!(responses["429"]["headers"]["Retry-After"].is_object(), "{at}: 429 names Retry-After");
            }
            if let Some(body) = op.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                assert!(schema.as_object().is_some_and(|o| !o.is_empty()), "{at}: the body has no schema");
                expected.extend(["400", "413", "422"]);
            }
            if path.contains('{') {
                expected.push("404");
            }
            for status in expected {
                assert!(responses.contains_key(status), "{at} does not list {status}");
            }
            assert!(responses.keys().any(|s| s.starts_with('2')), "{at}: no success answer");
        }
    }
    // POST /v1/instruments: one of the three shapes, by `type`.
    let create = &paths["/v1/instruments"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let name = create["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(doc["components"]["schemas"][name]["oneOf"].as_array().map(Vec::len), Some(3), "{create}");
}

/// Every route that reads a body refuses a key without its scope first: an invalid body (not JSON,
/// the wrong shape, too large) gets 403 `scope_missing`, not the 400/413/422 that would tell such a
/// key the body's shape.
#[tokio::test]
async fn a_key_without_the_scope_learns_nothing_of_the_body() {
    let s = TestServer::start().await;
    let (app, van) = (s.keys.app.as_str(), s.keys.van.as_str());
    // (path, a key that lacks the route's scope): the app holds instruments and tokens, the VAN
    // detokenize.
    let routes = [
        ("/v1/instruments", van),
        ("/v1/instruments/ins_x/charge", van),
        ("/v1/instruments/ins_x/verification", van),
        ("/v1/instruments/ins_x/verify", van),
        ("/v1/tokens", van),
        ("/v1/detokenize", app),
        ("/v1/merchant-tokens", app),
        ("/v1/terminal/payments", van),
        ("/v1/admin/requestors", app),
        ("/v1/admin/api-keys/abc/rotate", app),
        ("/v1/admin/gift-certificates", van),
        ("/v1/admin/regions", app),
        ("/v1/admin/merchants", van),
        ("/v1/admin/terminals", app),
        ("/v1/webhooks", van),
        ("/v1/admin/cards/T0010000/reissue", app),
        ("/v1/admin/cards/T0010000/lost", van),
    ];
    // Every operation of the document that has a body is in the table.
    let doc: Value = s.http.get(s.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_some() {
                let known = routes.iter().any(|(p, _)| {
                    p.split('/').zip(path.split('/')).all(|(a, b)| a == b || b.starts_with('{'))
                        && p.split('/').count() == path.split('/').count()
                });
                assert!(known && method == "post", "{method} {path} takes a body: add it to the table");
            }
        }
    }
    let too_large = vec![b'x'; 70 * 1024];
    for (path, key) in routes {
        for body in
            [b"{not json".to_vec(), b"{}".to_vec(), b"[1,2]".to_vec(), br#"{"bogus":1}"#.to_vec(), too_large.clone()]
        {
            let (st, e) = s.post_raw(Some(key), path, body).await;
            assert_eq!((st, e["error"]["code"].as_str()), (403, Some("scope_missing")), "{path}: {e}");
        }
        // And without a key at all, 401 first.
        let (st, e) = s.post_raw(None, path, b"{not json".to_vec()).await;
        assert_eq!((st, e["error"]["code"].as_str()), (401, Some("auth_missing")), "{path}: {e}");
    }
    // A key that holds the scope still gets the body's own errors.
    let (st, e) = s.post_raw(Some(app), "/v1/tokens", b"{not json".to_vec()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("invalid_json")), "{e}");
    let (st, e) = s.post_raw(Some(app), "/v1/tokens", b"{}".to_vec()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("instrument_id_missing")), "{e}");
}

/// Two 500s found probing the inputs schemathesis may generate (NUL characters, extreme integers):
/// on PostgreSQL a NUL character in a path or a body field reached the database, whose query failed;
/// a region whose bonus lifetime overflowed the grants' expiry was accepted, and every charge in it
/// failed. Now 404 and 422, on both stores.
#[tokio::test]
async fn nul_characters_and_endless_bonuses_are_refused() {
    let s = TestServer::start().await;
    let (app, admin) = (s.keys.app.as_str(), s.keys.admin.as_str());
    for path in ["/v1/instruments/%00", "/v1/instruments/ins_%00x/balance", "/v1/tokens/tok_%00"] {
        let (st, e) = s.get(app, path).await;
        assert_eq!((st, e["error"]["code"].as_str()), (404, Some("not_found")), "{path}: {e}");
    }
    let (st, e) = s.post_raw(Some(app), "/v1/instruments/%00/suspend", b"".to_vec()).await;
    assert_eq!(st, 404, "{e}");
    let (st, e) = s.post_raw(Some(app), "/v1/instruments", br#"{"type":"local","region":"a\u0000"}"#.to_vec()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("region_invalid")), "{e}");
    let (st, e) = s.post_raw(Some(app), "/v1/tokens", br#"{"instrument_id":"ins_\u0000"}"#.to_vec()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("instrument_id_invalid")), "{e}");
    let (st, e) = s.post(admin, "/v1/admin/requestors", json!({ "name": "x\u{0}", "scopes": ["admin"] })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("name_invalid")), "{e}");

    let region = |lifetime: i64| {
        json!({
            "id": "endless", "name": "Endless", "currency": "KRW", "incentive_rate": "0.10",
            "monthly_bonus_cap": "100000", "bonus_lifetime_seconds": lifetime,
        })
    };
    let (st, e) = s.post(admin, "/v1/admin/regions", region(i64::MAX)).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("bonus_lifetime_seconds_invalid")), "{e}");
    let (st, r) = s.post(admin, "/v1/admin/regions", region(10 * 365 * 86_400)).await;
    assert_eq!(st, 201, "ten years is the longest: {r}");
    let (st, w) = s.post(app, "/v1/instruments", json!({ "type": "local", "region": "endless" })).await;
    assert_eq!(st, 201, "{w}");
    let charge = format!("/v1/instruments/{}/charge", w["id"].as_str().unwrap());
    let (st, c) = s.post(app, &charge, json!({ "amount": "10000" })).await;
    assert_eq!((st, c["bonus"].as_str()), (201, Some("1000")), "{c}");
}
