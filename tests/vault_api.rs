//! The vault and token REST API, end to end against a real `tsp serve` on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::collections::HashSet;

use common::{TestServer, card};
use serde_json::{Value, json};

const HANBIT_PAN: &str = "4111111111111111";

async fn register(s: &TestServer, key: &str, pan: &str, expiry: &str) -> (u16, Value) {
    s.post(key, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": expiry })).await
}

#[tokio::test]
async fn card_and_token_lifecycle() {
    let s = TestServer::start().await;
    let app = s.keys.app.clone();

    // Register, then register again: same instrument, 200.
    let (st, ins) = register(&s, &app, HANBIT_PAN, "2912").await;
    assert_eq!(st, 201, "{ins}");
    let id = ins["id"].as_str().unwrap().to_string();
    assert_eq!(ins["type"], "card");
    assert_eq!(ins["status"], "active");
    assert_eq!(ins["issuer_id"], "hanbit");
    assert_eq!(ins["bin"], "411111");
    assert_eq!(ins["last4"], "1111");
    assert_eq!(ins["masked_pan"], "411111******1111");
    assert_eq!(ins["expiry"], "2912");
    let par = ins["par"].as_str().unwrap();
    assert_eq!(par.len(), 29);
    assert!(par.starts_with("T001") && par.bytes().all(|b| b.is_ascii_alphanumeric()), "{par}");
    assert!(!ins.to_string().contains(HANBIT_PAN));
    let (st, again) = register(&s, &app, HANBIT_PAN, "2912").await;
    assert_eq!(st, 200);
    assert_eq!(again["id"], id.as_str());

    // A second issuer's card.
    let nuri_pan = card("555555", 4, 16);
    let (st, nuri) = register(&s, &app, &nuri_pan, "3001").await;
    assert_eq!(st, 201);
    assert_eq!(nuri["issuer_id"], "nuri");
    assert_ne!(nuri["par"], ins["par"]);

    // The list is masked.
    let (st, list) = s.get(&app, "/v1/instruments").await;
    assert_eq!(st, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(!list.to_string().contains(HANBIT_PAN) && !list.to_string().contains(&nuri_pan));
    let (st, one) = s.get(&app, &format!("/v1/instruments/{id}")).await;
    assert_eq!((st, one["masked_pan"].as_str()), (200, Some("411111******1111")));

    // 1,000 tokens: 16 digits, Luhn-valid, the issuer's token BIN, all distinct.
    let mut seen = HashSet::new();
    let mut tasks = Vec::new();
    for chunk in 0..8 {
        let (http, url, app, id) = (s.http.clone(), s.url("/v1/tokens"), app.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..125 {
                let r = http.post(&url).bearer_auth(&app).json(&json!({ "instrument_id": id })).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 201, "chunk {chunk}");
                out.push(r.json::<Value>().await.unwrap());
            }
            out
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.extend(t.await.unwrap());
    }
    assert_eq!(tokens.len(), 1000);
    for t in &tokens {
        let n = t["token"].as_str().unwrap();
        assert_eq!(n.len(), 16, "{n}");
        assert!(n.starts_with("461000"), "{n}");
        assert!(tsp::luhn::is_valid(n), "{n}");
        assert_ne!(n, HANBIT_PAN);
        assert!(seen.insert(n.to_string()), "duplicate token {n}");
        assert_eq!(t["psn"], "00");
        assert_eq!(t["icc_key"].as_str().unwrap().len(), 32);
        assert!(t["token_ref"].as_str().unwrap().starts_with("tok_"));
        assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(t["token_expiry"].as_str().unwrap().len(), 4);
    }
    // The limited-use key is the EMV Option A derivation from the issuer's token IMK-AC: check one
    // token against the independent derivation in hsm-sim's primitives.
    let t0 = &tokens[0];
    let imk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let mk = hsm_sim::crypto::emv::icc_mk_option_a(&imk, t0["token"].as_str().unwrap(), "00").unwrap();
    assert_eq!(t0["icc_key"].as_str().unwrap(), hex::encode_upper(&mk[..]));

    // Detokenize: the VAN gets the PAN; the app's key lacks the scope. A read leaves it live.
    let tok = tokens[0]["token"].as_str().unwrap().to_string();
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok })).await;
    assert_eq!((st, d["pan"].as_str(), d["expiry"].as_str()), (200, Some(HANBIT_PAN), Some("2912")));
    let (st, d) = s.post(&app, "/v1/detokenize", json!({ "token": tok })).await;
    assert_eq!((st, d["error"]["code"].as_str()), (403, Some("scope_missing")));
    let (st, _) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok })).await;
    assert_eq!(st, 200);
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": "4610000000000009" })).await;
    assert_eq!((st, d["error"]["code"].as_str()), (404, Some("token_unknown")));

    // Bound tokens echo their restrictions.
    let (st, b) = s
        .post(&app, "/v1/tokens", json!({ "instrument_id": id, "merchant_id": "M-0001", "max_amount": "50000", "currency": "KRW", "ttl_seconds": 120 }))
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        (b["merchant_id"].as_str(), b["max_amount"].as_str(), b["currency"].as_str()),
        (Some("M-0001"), Some("50000"), Some("KRW"))
    );

    // Suspend: token issue refused with a clear error; existing tokens unusable at once.
    let (st, sus) = s.post(&app, &format!("/v1/instruments/{id}/suspend"), json!({})).await;
    assert_eq!((st, sus["status"].as_str()), (200, Some("suspended")));
    let (st, e) = s.post(&app, "/v1/tokens", json!({ "instrument_id": id })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("instrument_suspended")));
    let (st, e) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("instrument_suspended")));

    // Resume: new tokens work; the ones revoked by the suspension stay revoked.
    let (st, res) = s.post(&app, &format!("/v1/instruments/{id}/resume"), json!({})).await;
    assert_eq!((st, res["status"].as_str()), (200, Some("active")));
    let (st, e) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("token_revoked")));
    let (st, fresh) = s.post(&app, "/v1/tokens", json!({ "instrument_id": id })).await;
    assert_eq!(st, 201);
    let fresh_tok = fresh["token"].as_str().unwrap().to_string();
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": fresh_tok })).await;
    assert_eq!((st, d["pan"].as_str()), (200, Some(HANBIT_PAN)));

    // Delete: its live tokens are gone (status `deleted`, issue 19), and the instrument is final.
    let (st, del) = s.delete(&app, &format!("/v1/instruments/{id}")).await;
    assert_eq!((st, del["status"].as_str()), (200, Some("deleted")));
    let (st, e) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": fresh_tok })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("instrument_deleted")));
    let (st, status) = s.get(&app, &format!("/v1/tokens/{}", fresh["token_ref"].as_str().unwrap())).await;
    assert_eq!((st, status["status"].as_str()), (200, Some("deleted")));
    let (st, e) = s.post(&app, "/v1/tokens", json!({ "instrument_id": id })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("instrument_deleted")));
    let (st, e) = s.post(&app, &format!("/v1/instruments/{id}/resume"), json!({})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("instrument_deleted")));
    let (_, list) = s.get(&app, "/v1/instruments").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = s.get(&app, "/v1/instruments?include_deleted=true").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Registering the deleted card again makes a new instrument with the same PAR.
    let (st, again) = register(&s, &app, HANBIT_PAN, "2912").await;
    assert_eq!(st, 201);
    assert_ne!(again["id"], id.as_str());
    assert_eq!(again["par"], ins["par"]);
}

#[tokio::test]
async fn requestors_see_only_their_own_instruments() {
    let s = TestServer::start().await;
    let (st, ins) = register(&s, &s.keys.app, HANBIT_PAN, "2912").await;
    assert_eq!(st, 201);
    let id = ins["id"].as_str().unwrap();

    let (st, other) = s
        .post(
            &s.keys.admin,
            "/v1/admin/requestors",
            json!({ "name": "other wallet", "scopes": ["instruments", "tokens"] }),
        )
        .await;
    assert_eq!(st, 201, "{other}");
    assert_eq!(other["trid"].as_str().unwrap().len(), 11);
    assert!(other["trid"].as_str().unwrap().bytes().all(|b| b.is_ascii_digit()));
    let key = other["api_key"].as_str().unwrap().to_string();

    for (st, body) in [
        s.get(&key, &format!("/v1/instruments/{id}")).await,
        s.post(&key, &format!("/v1/instruments/{id}/suspend"), json!({})).await,
        s.delete(&key, &format!("/v1/instruments/{id}")).await,
        s.post(&key, "/v1/tokens", json!({ "instrument_id": id })).await,
    ] {
        assert_eq!((st, body["error"]["code"].as_str()), (404, Some("instrument_not_found")));
    }
    let (_, list) = s.get(&key, "/v1/instruments").await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // The same PAN under another requestor: another instrument, the same PAR.
    let (st, mine) = register(&s, &key, HANBIT_PAN, "2912").await;
    assert_eq!(st, 201);
    assert_ne!(mine["id"], ins["id"]);
    assert_eq!(mine["par"], ins["par"]);

    // The app cannot administer; the admin sees the issuers of the config.
    let (st, e) = s.get(&s.keys.app, "/v1/admin/issuers").await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("scope_missing")));
    let (st, iss) = s.get(&s.keys.admin, "/v1/admin/issuers").await;
    assert_eq!(st, 200);
    let items = iss["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "hanbit");
    assert_eq!(items[0]["bin_prefixes"], json!(["411111", "424242", "457000", "457099"]));
    assert_eq!(items[0]["token_bin_prefixes"], json!(["461000"]));
    assert_eq!(items[1]["id"], "nuri");
    assert!(items.iter().all(|i| i["name"].is_string()));
}

#[tokio::test]
async fn bad_input_gets_a_specific_error_and_the_server_keeps_serving() {
    let s = TestServer::start().await;
    let app = s.keys.app.clone();
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({ "type": "card", "pan": "4111111111111112", "expiry": "2912" }), 422, "pan_luhn"),
        (json!({ "type": "card", "pan": "6011111111111117", "expiry": "2912" }), 422, "pan_unknown_bin"),
        (json!({ "type": "card", "pan": "4111111111111111", "expiry": "2001" }), 422, "expiry_past"),
        (json!({ "type": "card", "pan": "4111111111111111", "expiry": "2913" }), 422, "expiry_format"),
        (json!({ "type": "card", "pan": "4111-1111-1111-1111", "expiry": "2912" }), 422, "pan_format"),
        (json!({ "type": "card", "pan": 4111111111111111u64, "expiry": "2912" }), 422, "pan_invalid"),
        (json!({ "type": "card", "pan": "4111111111111111", "expiry": 2912 }), 422, "expiry_invalid"),
        (json!({ "type": "card", "expiry": "2912" }), 422, "pan_missing"),
        (json!({ "type": "card", "pan": "4111111111111111" }), 422, "expiry_missing"),
        (json!({ "type": 7 }), 422, "type_invalid"),
        (json!({ "type": "bond" }), 422, "type_invalid"),
        (json!({ "pan": "4111111111111111" }), 422, "type_missing"),
        (json!(["card"]), 422, "body_invalid"),
    ];
    for (body, status, code) in &cases {
        let (st, e) = s.post(&app, "/v1/instruments", body.clone()).await;
        assert_eq!((st, e["error"]["code"].as_str()), (*status, Some(*code)), "body {body}");
        assert!(e["error"]["message"].is_string());
        assert!(!e.to_string().contains("4111111111111111"), "error echoes the PAN: {e}");
    }

    let (st, e) = s.post_raw(Some(&app), "/v1/instruments", b"{\"type\":\"card\",".to_vec()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("invalid_json")));
    let big = format!("{{\"type\":\"card\",\"pan\":\"{}\"}}", "4".repeat(70 * 1024));
    let (st, e) = s.post_raw(Some(&app), "/v1/instruments", big.into_bytes()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (413, Some("body_too_large")));
    let (st, e) = s.post_raw(None, "/v1/instruments", b"{}".to_vec()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("auth_missing")));
    for bad in ["tsp_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "nonsense", ""] {
        let (st, e) = s.post(bad, "/v1/instruments", json!({})).await;
        assert_eq!((st, e["error"]["code"].as_str()), (401, Some("auth_invalid")), "key {bad:?}");
    }
    // A real key id with a wrong secret is refused too.
    // (Its last character changed: to `y` when it already is an `x`, or the "forgery" would be the key.)
    let swap = if app.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{swap}", &app[..app.len() - 1]);
    let (st, _) = s.post(&forged, "/v1/instruments", json!({})).await;
    assert_eq!(st, 401);

    // Token options are checked field by field.
    let (_, ins) =
        s.post(&app, "/v1/instruments", json!({ "type": "card", "pan": "4242424242424242", "expiry": "3012" })).await;
    let id = ins["id"].as_str().unwrap();
    for (body, status, code) in [
        (json!({}), 422, "instrument_id_missing"),
        (json!({ "instrument_id": "ins_nope" }), 404, "instrument_not_found"),
        (json!({ "instrument_id": id, "ttl_seconds": 5 }), 422, "ttl_seconds_range"),
        (json!({ "instrument_id": id, "ttl_seconds": "600" }), 422, "ttl_seconds_invalid"),
        (json!({ "instrument_id": id, "max_amount": 5000 }), 422, "max_amount_invalid"),
        (json!({ "instrument_id": id, "max_amount": "-5" }), 422, "max_amount_invalid"),
        (json!({ "instrument_id": id, "max_amount": "1.5" }), 422, "max_amount_scale"),
        (json!({ "instrument_id": id, "currency": "XXX" }), 422, "currency_unknown"),
        (json!({ "instrument_id": id, "merchant_id": "M".repeat(16) }), 422, "merchant_id_invalid"),
        (json!({ "instrument_id": id, "entry_modes": ["5"] }), 422, "entry_modes_invalid"),
    ] {
        let (st, e) = s.post(&app, "/v1/tokens", body.clone()).await;
        assert_eq!((st, e["error"]["code"].as_str()), (status, Some(code)), "body {body}");
    }
    let (st, e) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": 12 })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("token_invalid")));

    // Unknown routes and methods get the same error shape.
    let (st, e) = s.get(&app, "/v1/nothing").await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("not_found")));
    let r = s.http.put(s.url("/v1/instruments")).bearer_auth(&app).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // Still serving.
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (st, _) =
        s.post(&app, "/v1/instruments", json!({ "type": "card", "pan": "5105105105105100", "expiry": "3012" })).await;
    assert_eq!(st, 201);
}

#[tokio::test]
async fn cli_creates_a_requestor_whose_key_works() {
    let dir = tempfile::tempdir().unwrap();
    // The server started below must find the same database: remember it as TestServer does.
    let url = common::fresh_database().await;
    if let Some(u) = &url {
        std::fs::write(dir.path().join("database-url"), u).unwrap();
    }
    let storage = common::storage_args(&dir.path().join("data"), url.as_deref());
    let out = std::process::Command::new(common::tsp_bin())
        .args(["admin", "create-requestor", "--name", "kiosk wallet", "--scopes", "instruments,tokens"])
        .args(&storage)
        .env_remove("TSP_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout must be the key alone: {stdout:?}");
    let key = lines[0].to_string();
    assert!(key.starts_with("tsp_"));

    let bad = std::process::Command::new(common::tsp_bin())
        .args(["admin", "create-requestor", "--name", "x", "--scopes", "instruments,root"])
        .args(&storage)
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let s = TestServer::start_in(dir).await;
    let (st, _) =
        s.post(&key, "/v1/instruments", json!({ "type": "card", "pan": "4111111111111111", "expiry": "2912" })).await;
    assert_eq!(st, 201);
    let (st, e) = s.get(&key, "/v1/admin/issuers").await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("scope_missing")));
}

#[tokio::test]
async fn restart_keeps_instruments_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir).await;
    let (st, ins) = register(&s, &s.keys.app, HANBIT_PAN, "2912").await;
    assert_eq!(st, 201);
    let (_, tok) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    let keys = s.keys.clone();
    s.stop();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);

    // Same data directory: the same demo keys, the same data key, the token still detokenizes.
    let s = TestServer::start_in(dir).await;
    assert_eq!(s.keys.app, keys.app);
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok["token"] })).await;
    assert_eq!((st, d["pan"].as_str()), (200, Some(HANBIT_PAN)));
    let (st, again) = register(&s, &s.keys.app, HANBIT_PAN, "2912").await;
    assert_eq!((st, again["id"].as_str()), (200, ins["id"].as_str()));
}

/// A VAN detokenizes the tokens of the requestors it serves and no others: another's token is, to
/// it, unknown (404, as a token that does not exist).
#[tokio::test]
async fn a_van_detokenizes_only_for_the_requestors_it_serves() {
    let s = TestServer::start().await;
    let admin = s.keys.admin.clone();
    let (st, wallet) = s
        .post(&admin, "/v1/admin/requestors", json!({ "name": "wallet two", "scopes": ["instruments", "tokens"] }))
        .await;
    assert_eq!(st, 201, "{wallet}");
    let wallet_key = wallet["api_key"].as_str().unwrap().to_string();
    let body = json!({ "name": "van two", "scopes": ["detokenize"], "serves": [wallet["id"]] });
    let (st, van) = s.post(&admin, "/v1/admin/requestors", body).await;
    assert_eq!(st, 201, "{van}");
    let van_key = van["api_key"].as_str().unwrap().to_string();
    // `serves` belongs to a detokenize requestor, and names requestors that exist.
    let (st, e) = s
        .post(&admin, "/v1/admin/requestors", json!({ "name": "x", "scopes": ["tokens"], "serves": [wallet["id"]] }))
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("serves_invalid")));
    let (st, e) = s
        .post(
            &admin,
            "/v1/admin/requestors",
            json!({ "name": "x", "scopes": ["detokenize"], "serves": ["req_nobody"] }),
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("serves_invalid")));

    let token_of = |key: String, pan: String| {
        let s = &s;
        async move {
            let (st, ins) =
                s.post(&key, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
            assert_eq!(st, 201, "{ins}");
            let (st, t) = s.post(&key, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
            assert_eq!(st, 201, "{t}");
            t["token"].as_str().unwrap().to_string()
        }
    };
    let wallet_pan = card("411111", 271_913_457, 16);
    let demo_pan = card("555555", 318_264_597, 16);
    let theirs = token_of(wallet_key, wallet_pan.clone()).await;
    let demo = token_of(s.keys.app.clone(), demo_pan.clone()).await;
    let detokenize = |key: &str, token: &str| {
        let (key, token) = (key.to_string(), token.to_string());
        let s = &s;
        async move { s.post(&key, "/v1/detokenize", json!({ "token": token })).await }
    };
    let (st, got) = detokenize(&van_key, &theirs).await;
    assert_eq!((st, got["pan"].as_str()), (200, Some(wallet_pan.as_str())));
    let (st, e) = detokenize(&van_key, &demo).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("token_unknown")));
    let (st, e) = detokenize(&s.keys.van, &theirs).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("token_unknown")));
    let (st, got) = detokenize(&s.keys.van, &demo).await;
    assert_eq!((st, got["pan"].as_str()), (200, Some(demo_pan.as_str())));
}

/// Card metadata (issue 19 item 4): each card carries its issuer's and product's names, colours,
/// terms and card art from `[[issuers.products]]` (the longest BIN prefix wins, else the issuer's
/// default product), and the art is served as an image without a key.
#[tokio::test]
async fn cards_carry_their_products_metadata_and_art() {
    let s = TestServer::start().await;
    let app = s.keys.app.clone();
    for (pan, product, name, bg) in [
        ("4242424242424242", "platinum", "Hanbit Platinum", "#334155"),
        ("4111111111111111", "classic", "Hanbit Classic", "#1E3A8A"),
        ("5555555555554444", "check", "Nuri Check", "#065F46"),
    ] {
        let (st, ins) = s.post(&app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3012" })).await;
        assert_eq!(st, 201, "{ins}");
        let m = &ins["card_metadata"];
        assert_eq!(
            (m["product_id"].as_str(), m["product_name"].as_str(), m["background_color"].as_str()),
            (Some(product), Some(name), Some(bg)),
            "{ins}"
        );
        assert!(m["terms_url"].as_str().unwrap().starts_with("https://"), "{ins}");
        let url = m["card_art_url"].as_str().unwrap();
        let (_, listed) = s.get(&app, &format!("/v1/instruments/{}", ins["id"].as_str().unwrap())).await;
        assert_eq!(listed["card_metadata"], *m, "the same on a read");
        // The art: no key needed, an SVG naming the product in its colours, no card data.
        let r = s.http.get(s.url(url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "image/svg+xml");
        let svg = r.text().await.unwrap();
        assert!(svg.starts_with("<svg") && svg.contains(name) && svg.contains(bg), "{svg}");
        assert!(!svg.contains(&pan[pan.len() - 4..]), "no card data in the art");
    }
    let (st, ins) = s.post(&app, "/v1/instruments", json!({ "type": "gift", "code": "NOPE-NOPE" })).await;
    assert!(st >= 400 && ins.get("card_metadata").is_none());
    for missing in ["/v1/card-art/hanbit/diamond", "/v1/card-art/nobank/classic"] {
        let r = s.http.get(s.url(missing)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{missing}");
    }
}
