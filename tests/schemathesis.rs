//! The OpenAPI document against the real server, checked by schemathesis (pinned in scripts/test):
//! property-based requests generated from `/openapi.json` for every operation — valid and invalid
//! bodies, parameters and methods — under four API keys (the pay app's, the VAN's, the terminal's and
//! the operator's), so each side of the scope checks is exercised. The run fails on any 5xx, any
//! status the document does not list for the operation, any content type it does not list and any
//! answer that does not match its schema.
//!
//! Before the run the test makes real objects (a card, a gift certificate, a local-currency wallet,
//! tokens, a merchant token, a spare API key) and hands their ids to schemathesis as dictionaries
//! (`schemathesis.toml`), so generated requests also reach the handlers' success paths, not only their
//! 404s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::process::Command;

use common::{TestServer, card};
use serde_json::{Value, json};

/// The pinned version (scripts/test installs it).
const SCHEMATHESIS: &str = "4.32.5";
/// Examples per operation and phase, and the seed: the same run every time, about 20 s per key.
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "17";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

async fn created(s: &TestServer, key: &str, path: &str, body: Value) -> Value {
    let (st, b) = s.post(key, path, body).await;
    assert!(st == 201 || st == 200, "{path}: {st} {b}");
    b
}

fn toml_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

#[tokio::test]
async fn the_server_answers_as_its_openapi_document_says() {
    let version = Command::new("schemathesis").arg("--version").output();
    let version = version.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
    assert!(
        version.contains(SCHEMATHESIS),
        "schemathesis {SCHEMATHESIS} is needed (scripts/test installs it: pip install schemathesis=={SCHEMATHESIS}); found: {version:?}"
    );

    let s = TestServer::start().await;
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(s.data_dir().join("demo-keys.json")).unwrap()).unwrap();
    let terminal = keys["terminal"].as_str().unwrap().to_string();
    let app = s.keys.app.clone();
    let admin = s.keys.admin.clone();

    // What the generated requests may name: a card, a gift certificate and a wallet of the app, its
    // tokens, a merchant token of the demo terminal, a requestor whose key the operator may revoke.
    let pans = [card("411111", 9_301, 16), card("555555", 9_302, 16)];
    let mut instruments = Vec::new();
    for pan in &pans {
        let c = created(&s, &app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3012" })).await;
        instruments.push(c["id"].as_str().unwrap().to_string());
    }
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let gift = json!({ "face_value": "50000", "currency": "KRW", "expires_at": expires });
    let mut gift_codes = Vec::new();
    for _ in 0..2 {
        let g = created(&s, &admin, "/v1/admin/gift-certificates", gift.clone()).await;
        gift_codes.push(g["code"].as_str().unwrap().to_string());
    }
    let g = created(&s, &app, "/v1/instruments", json!({ "type": "gift", "code": gift_codes[0] })).await;
    instruments.push(g["id"].as_str().unwrap().to_string());
    let w = created(&s, &app, "/v1/instruments", json!({ "type": "local", "region": "seoul-gangnam" })).await;
    let wallet = w["id"].as_str().unwrap().to_string();
    created(&s, &app, &format!("/v1/instruments/{wallet}/charge"), json!({ "amount": "20000" })).await;
    instruments.push(wallet);
    // A card its issuer steps up (the demo rules' BIN 457000): the verification routes get a pending
    // instrument to work on.
    let pending = card("457000", 9_304, 16);
    let p = created(&s, &app, "/v1/instruments", json!({ "type": "card", "pan": pending, "expiry": "3012" })).await;
    assert_eq!(p["status"], "pending_verification", "{p}");
    instruments.push(p["id"].as_str().unwrap().to_string());
    let (mut token_refs, mut tokens) = (Vec::new(), Vec::new());
    for ins in instruments.iter().take(3) {
        let t = created(&s, &app, "/v1/tokens", json!({ "instrument_id": ins })).await;
        token_refs.push(t["token_ref"].as_str().unwrap().to_string());
        tokens.push(t["token"].as_str().unwrap().to_string());
    }
    let m = created(
        &s,
        &terminal,
        "/v1/merchant-tokens",
        json!({ "pan": pans[0], "expiry": "3012", "merchant_id": "GN-CAFE-0001" }),
    )
    .await;
    let merchant_token = m["token"].as_str().unwrap().to_string();
    tokens.push(merchant_token.clone());
    // The issuer's token routes get a card of their own: what they suspend or delete must not be
    // what the other keys' requests pay with.
    let issuer_pan = card("424242", 9_303, 16);
    let ic = created(&s, &app, "/v1/instruments", json!({ "type": "card", "pan": issuer_pan, "expiry": "3012" })).await;
    let issuer_token = created(&s, &app, "/v1/tokens", json!({ "instrument_id": ic["id"] })).await;
    let issuer_card = [ic["par"].as_str().unwrap().to_string()];
    let issuer_tokens = [issuer_token["token"].as_str().unwrap().to_string()];
    let spare =
        created(&s, &admin, "/v1/admin/requestors", json!({ "name": "spare", "scopes": ["instruments"] })).await;
    let spare_key_id = spare["api_key"].as_str().unwrap().strip_prefix("tsp_").unwrap().split_once('_').unwrap().0;

    let work = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[dictionaries.instrument_ids]
values = {instruments}
[dictionaries.token_refs]
values = {token_refs}
[dictionaries.tokens]
values = {tokens}
[dictionaries.merchant_tokens]
values = {merchant_tokens}
[dictionaries.issuer_tokens]
values = {issuer_tokens}
[dictionaries.issuer_cards]
values = {issuer_cards}
[dictionaries.token_actions]
values = ["suspend", "resume", "delete"]
[dictionaries.gift_codes]
values = {gift_codes}
[dictionaries.regions]
values = ["seoul-gangnam", "busan-dongbaek"]
[dictionaries.merchants]
values = ["GN-CAFE-0001", "GN-MART-0002"]
[dictionaries.amounts]
values = ["1000", "5000"]
[dictionaries.key_ids]
values = {key_ids}

[parameters]
"path.id" = {{ dictionary = "instrument_ids", probability = 0.7 }}
"query.instrument_id" = {{ dictionary = "instrument_ids", probability = 0.7 }}
"body.instrument_id" = {{ dictionary = "instrument_ids", probability = 0.7 }}
"path.token_ref" = {{ dictionary = "token_refs", probability = 0.7 }}
"path.token" = {{ dictionary = "merchant_tokens", probability = 0.5 }}
"body.token" = {{ dictionary = "tokens", probability = 0.7 }}
"path.number" = {{ dictionary = "issuer_tokens", probability = 0.7 }}
"path.par" = {{ dictionary = "issuer_cards", probability = 0.7 }}
"path.action" = {{ dictionary = "token_actions", probability = 0.7 }}
"body.code" = {{ dictionary = "gift_codes", probability = 0.5 }}
"body.region" = {{ dictionary = "regions", probability = 0.5 }}
"body.merchant_id" = {{ dictionary = "merchants", probability = 0.5 }}
"body.amount" = {{ dictionary = "amounts", probability = 0.5 }}
"path.key_id" = {{ dictionary = "key_ids", probability = 0.5 }}
"#,
        instruments = toml_list(&instruments),
        token_refs = toml_list(&token_refs),
        tokens = toml_list(&tokens),
        merchant_tokens = toml_list(std::slice::from_ref(&merchant_token)),
        gift_codes = toml_list(&gift_codes),
        issuer_tokens = toml_list(&issuer_tokens),
        issuer_cards = toml_list(&issuer_card),
        key_ids = toml_list(&[spare_key_id.to_string()]),
    );
    let config_path = work.path().join("schemathesis.toml");
    std::fs::write(&config_path, config).unwrap();

    // The VAN and the terminal first; then the operator (it may suspend, move or remove the demo
    // terminals the terminal's payments go through, and acts on the issuer card's tokens only); the
    // app last (it may suspend or delete the instruments the others' requests name).
    for (who, key) in [("van", &s.keys.van), ("terminal", &terminal), ("admin", &admin), ("app", &app)] {
        let out = Command::new("schemathesis")
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .arg("--config-file")
            .arg(&config_path)
            .args(["run", &s.url("/openapi.json")])
            .args(["--header", &format!("Authorization: Bearer {key}")])
            .args(["--checks", CHECKS])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
            .args(["--generation-database", "none", "--request-timeout", "10", "--no-color"])
            .output()
            .expect("run schemathesis");
        let mut text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // Its report may quote a request or an answer: never a card number.
        for pan in pans.iter().chain([&issuer_pan]) {
            text = text.replace(pan.as_str(), "<pan>");
        }
        assert!(out.status.success(), "schemathesis with the {who} key found problems:\n{text}");
        let summary = text.lines().rfind(|l| l.contains("generated") || l.contains("passed")).unwrap_or("");
        println!("schemathesis, {who} key: {summary}");
    }

    // The generated requests reached the handlers' work, not only their refusals: the server's log
    // line of each request names its route and status.
    let log = std::fs::read_to_string(s.stderr_path()).unwrap() + &std::fs::read_to_string(s.stdout_path()).unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for line in log.lines().filter(|l| l.contains(" http ")) {
        let field = |name: &str| line.split(&format!(" {name}=")).nth(1).and_then(|r| r.split(' ').next());
        if let (Some(method), Some(route), Some(status)) = (field("method"), field("route"), field("status")) {
            *seen.entry(format!("{status} {method} {}", route.trim_matches('"'))).or_default() += 1;
        }
    }
    println!("answers (status, method, route): {seen:?}");
    for expected in [
        "200 GET /v1/instruments/{id}",
        "200 GET /v1/instruments/{id}/balance",
        "201 POST /v1/tokens",
        "200 GET /v1/tokens/{token_ref}",
        "200 POST /v1/detokenize",
        "200 POST /v1/admin/api-keys/{key_id}/revoke",
        "200 POST /v1/terminal/payments",
        "200 GET /v1/admin/tokens/{number}",
        "200 GET /v1/admin/cards/{par}/tokens",
    ] {
        assert!(seen.contains_key(expected), "no {expected} in the run: {seen:#?}");
    }
}
