//! API keys that end: revoke and rotate, over REST (admin) and the CLI, against the real binary. A
//! revoked key gets 401 at once on every route while the requestor's other key works; a rotated key
//! works through its overlap and not after; every change is one audit row naming the key id, never
//! the secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, tsp_bin};
use serde_json::{Value, json};

/// The key id of `tsp_<key id>_<secret>`.
fn key_id(key: &str) -> &str {
    key.strip_prefix("tsp_").unwrap().split_once('_').unwrap().0
}

/// The secret of `tsp_<key id>_<secret>`.
fn secret(key: &str) -> &str {
    key.strip_prefix("tsp_").unwrap().split_once('_').unwrap().1
}

/// A new requestor with `scopes`: (its id, its API key).
async fn requestor(s: &TestServer, name: &str, scopes: &[&str]) -> (String, String) {
    let (st, b) = s.post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": name, "scopes": scopes })).await;
    assert_eq!(st, 201, "{b}");
    (b["id"].as_str().unwrap().to_string(), b["api_key"].as_str().unwrap().to_string())
}

async fn revoke(s: &TestServer, admin: &str, id: &str) -> (u16, Value) {
    s.post(admin, &format!("/v1/admin/api-keys/{id}/revoke"), json!({})).await
}

async fn rotate(s: &TestServer, admin: &str, id: &str, body: Value) -> (u16, Value) {
    s.post(admin, &format!("/v1/admin/api-keys/{id}/rotate"), body).await
}

/// The status `key` gets on `GET /v1/instruments`.
async fn list_status(s: &TestServer, key: &str) -> u16 {
    s.get(key, "/v1/instruments").await.0
}

/// (actor, action, subject, detail) of every `api_key.*` audit row, in order.
async fn key_audit_rows(s: &TestServer) -> Vec<(String, String, Option<String>, String)> {
    let pool = s.database().await;
    let rows = sqlx::query_as(
        "SELECT actor, action, subject, detail FROM audit_log WHERE action LIKE 'api_key.%' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// Every `tsp_…` secret in `keys` is absent from every column of every audit row.
async fn no_secret_in_the_trail(s: &TestServer, keys: &[&str]) {
    let pool = s.database().await;
    let rows: Vec<(String, String, Option<String>, String, String)> =
        sqlx::query_as("SELECT actor, action, subject, outcome, detail FROM audit_log").fetch_all(&pool).await.unwrap();
    pool.close().await;
    assert!(!rows.is_empty());
    for k in keys {
        for r in &rows {
            let text = format!("{r:?}");
            assert!(!text.contains(secret(k)), "a key's secret is in the audit row {text}");
        }
    }
}

fn rfc3339_ms(t: &str) -> i64 {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn a_revoked_key_gets_401_at_once_while_the_requestors_other_key_works() {
    let s = TestServer::start().await;
    let (req_id, k1) = requestor(&s, "rotating wallet", &["instruments", "tokens"]).await;
    assert_eq!(list_status(&s, &k1).await, 200);

    // A second key of the same requestor, the first kept for an hour.
    let (st, rot) = rotate(&s, &s.keys.admin, key_id(&k1), json!({ "overlap_seconds": 3600 })).await;
    assert_eq!(st, 201, "{rot}");
    let k2 = rot["api_key"].as_str().unwrap().to_string();
    assert!(k2.starts_with("tsp_"), "{k2}");
    assert_eq!(rot["key_id"], key_id(&k2));
    assert_ne!(key_id(&k2), key_id(&k1));
    assert_ne!(secret(&k2), secret(&k1));
    assert_eq!(rot["requestor_id"], req_id.as_str());
    assert_eq!(rot["previous_key_id"], key_id(&k1));
    assert_eq!(rot["overlap_seconds"], 3600);
    let ends = rfc3339_ms(rot["previous_key_revoked_at"].as_str().unwrap());
    assert!((ends - (now_ms() + 3_600_000)).abs() < 60_000, "the old key ends in an hour: {rot}");
    assert_eq!(list_status(&s, &k1).await, 200, "the old key works during its overlap");
    assert_eq!(list_status(&s, &k2).await, 200, "the new key works at once");

    // Revoking the first ends it now, on every route, in its overlap or not.
    let (st, r) = revoke(&s, &s.keys.admin, key_id(&k1)).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["key_id"], key_id(&k1));
    assert_eq!(r["requestor_id"], req_id.as_str());
    assert_eq!(r["already_revoked"], false);
    let revoked_at = r["revoked_at"].as_str().unwrap().to_string();
    assert!((rfc3339_ms(&revoked_at) - now_ms()).abs() < 60_000, "revoked now, not at the overlap's end: {r}");
    let (st, e) = s.get(&k1, "/v1/instruments").await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("auth_invalid")));
    assert_eq!(s.post(&k1, "/v1/tokens", json!({ "instrument_id": "ins_x" })).await.0, 401);
    assert_eq!(s.get(&k1, "/v1/transactions").await.0, 401);
    // The other key of the same requestor, with the same scopes, still works.
    assert_eq!(list_status(&s, &k2).await, 200);
    let (st, e) = s.post(&k2, "/v1/tokens", json!({ "instrument_id": "ins_unknown" })).await;
    assert_eq!(st, 404, "the tokens scope carried over: {e}");
    assert_eq!(s.get(&k2, "/v1/admin/issuers").await.0, 403, "and no scope was added");

    // Revoking twice is idempotent: 200 with the first revocation's time, nothing changed.
    let (st, again) = revoke(&s, &s.keys.admin, key_id(&k1)).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["already_revoked"], true);
    assert_eq!(again["revoked_at"], revoked_at.as_str());
    assert_eq!(list_status(&s, &k1).await, 401);

    // A revoked key cannot be rotated; unknown key ids are 404.
    let (st, e) = rotate(&s, &s.keys.admin, key_id(&k1), json!({})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("api_key_revoked")), "{e}");
    for id in ["abcdefghijkm", "nope", "tsp_abcdefghijkm"] {
        let (st, e) = revoke(&s, &s.keys.admin, id).await;
        assert_eq!((st, e["error"]["code"].as_str()), (404, Some("api_key_not_found")), "revoke {id}: {e}");
        let (st, e) = rotate(&s, &s.keys.admin, id, json!({})).await;
        assert_eq!((st, e["error"]["code"].as_str()), (404, Some("api_key_not_found")), "rotate {id}: {e}");
    }

    // Without the admin scope: 403, and nothing happens.
    for key in [&s.keys.app, &s.keys.van, &k2] {
        let (st, e) = revoke(&s, key, key_id(&k2)).await;
        assert_eq!((st, e["error"]["code"].as_str()), (403, Some("scope_missing")), "{e}");
        let (st, e) = rotate(&s, key, key_id(&k2), json!({ "overlap_seconds": 0 })).await;
        assert_eq!((st, e["error"]["code"].as_str()), (403, Some("scope_missing")), "{e}");
    }
    assert_eq!(list_status(&s, &k2).await, 200, "the refused calls did not end the key");

    // An admin key revoked loses the admin routes at once.
    let (admin2_id, admin2) = requestor(&s, "second operator", &["admin"]).await;
    assert_eq!(s.get(&admin2, "/v1/admin/issuers").await.0, 200);
    let (st, _) = revoke(&s, &s.keys.admin, key_id(&admin2)).await;
    assert_eq!(st, 200);
    assert_eq!(s.get(&admin2, "/v1/admin/issuers").await.0, 401);
    assert_eq!(revoke(&s, &admin2, key_id(&k2)).await.0, 401);
    assert_eq!(list_status(&s, &k2).await, 200);

    // One audit row per change (the refused calls made none), naming the key id, never the secret.
    let rows = key_audit_rows(&s).await;
    let summary: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.1.as_str(), r.2.as_deref())).collect();
    assert_eq!(
        summary,
        vec![
            ("api_key.rotate", Some(key_id(&k1))),
            ("api_key.revoke", Some(key_id(&k1))),
            ("api_key.revoke", Some(key_id(&k1))),
            ("api_key.revoke", Some(key_id(&admin2))),
        ]
    );
    let details: Vec<Value> = rows.iter().map(|r| serde_json::from_str(&r.3).unwrap()).collect();
    assert_eq!(details[0]["new_key_id"], key_id(&k2));
    assert_eq!(details[0]["overlap_seconds"], 3600);
    assert_eq!(details[0]["requestor_id"], req_id.as_str());
    assert_eq!(
        (details[1]["already_revoked"].as_bool(), details[2]["already_revoked"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(details[3]["requestor_id"], admin2_id.as_str());
    for r in &rows {
        assert!(r.0.starts_with("req_") && r.0 != req_id && r.0 != admin2_id, "the demo operator acted: {r:?}");
    }
    no_secret_in_the_trail(&s, &[&k1, &k2, &admin2]).await;
    let (st, _) = s.post(&s.keys.admin, "/v1/admin/settlements", json!({})).await;
    assert_eq!(st, 201, "the demo admin key was untouched throughout");
}

#[tokio::test]
async fn a_rotated_key_works_through_its_overlap_and_not_after() {
    let s = TestServer::start().await;
    let (_, k1) = requestor(&s, "overlap wallet", &["instruments"]).await;

    // One second of overlap: the old key works now, and gets 401 once the second is over.
    let (st, rot) = rotate(&s, &s.keys.admin, key_id(&k1), json!({ "overlap_seconds": 1 })).await;
    let answered = Instant::now();
    assert_eq!(st, 201, "{rot}");
    let k2 = rot["api_key"].as_str().unwrap().to_string();
    assert_eq!(list_status(&s, &k2).await, 200);
    assert_eq!(list_status(&s, &k1).await, 200, "still in its overlap");
    assert!(answered.elapsed() < Duration::from_millis(900), "the overlap check ran in time");
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(answered.elapsed())).await;
    assert_eq!(list_status(&s, &k1).await, 401, "the overlap is over");
    assert_eq!(list_status(&s, &k2).await, 200);

    // No overlap: the old key ends with the answer.
    let (st, rot) = rotate(&s, &s.keys.admin, key_id(&k2), json!({ "overlap_seconds": 0 })).await;
    assert_eq!(st, 201, "{rot}");
    let k3 = rot["api_key"].as_str().unwrap().to_string();
    assert_eq!(list_status(&s, &k2).await, 401);
    assert_eq!(list_status(&s, &k3).await, 200);

    // No body: the default overlap, a day.
    let r = s.http.post(s.url(&format!("/v1/admin/api-keys/{}/rotate", key_id(&k3)))).bearer_auth(&s.keys.admin);
    let r = r.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let rot: Value = r.json().await.unwrap();
    assert_eq!(rot["overlap_seconds"], 86_400);
    let ends = rfc3339_ms(rot["previous_key_revoked_at"].as_str().unwrap());
    assert!((ends - (now_ms() + 86_400_000)).abs() < 60_000, "{rot}");
    let k4 = rot["api_key"].as_str().unwrap().to_string();
    assert_eq!(list_status(&s, &k3).await, 200);
    assert_eq!(list_status(&s, &k4).await, 200);
    // A key already rotated (in its overlap) is not rotated again.
    let (st, e) = rotate(&s, &s.keys.admin, key_id(&k3), json!({ "overlap_seconds": 0 })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("api_key_revoked")), "{e}");
    assert_eq!(list_status(&s, &k3).await, 200, "the refused rotation left its overlap alone");

    // Overlaps out of range or of the wrong type are 422, and change nothing.
    for bad in [json!(-1), json!(2_592_001), json!(i64::MAX), json!("60"), json!(1.5)] {
        let (st, e) = rotate(&s, &s.keys.admin, key_id(&k4), json!({ "overlap_seconds": bad })).await;
        assert_eq!((st, e["error"]["code"].as_str()), (422, Some("overlap_seconds_invalid")), "{bad}: {e}");
    }
    let (st, e) = rotate(&s, &s.keys.admin, key_id(&k4), json!({ "overlap": 5 })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("body_invalid")), "{e}");
    assert_eq!(list_status(&s, &k4).await, 200);
    // The cap itself is allowed (and shows k4 had not been rotated by the refused calls).
    let (st, rot) = rotate(&s, &s.keys.admin, key_id(&k4), json!({ "overlap_seconds": 2_592_000 })).await;
    assert_eq!(st, 201, "{rot}");
    let k5 = rot["api_key"].as_str().unwrap().to_string();

    let rows = key_audit_rows(&s).await;
    let subjects: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.1.as_str(), r.2.as_deref())).collect();
    let want: Vec<(&str, Option<&str>)> =
        [&k1, &k2, &k3, &k4].iter().map(|k| ("api_key.rotate", Some(key_id(k)))).collect();
    assert_eq!(subjects, want);
    let overlaps: Vec<i64> = rows
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.3).unwrap()["overlap_seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(overlaps, [1, 0, 86_400, 2_592_000]);
    no_secret_in_the_trail(&s, &[&k1, &k2, &k3, &k4, &k5]).await;
}

/// Runs `tsp admin ARGS` on the server's storage: (success, stdout, stderr).
async fn admin_cli(s: &TestServer, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(tsp_bin());
    cmd.arg("admin").args(args).args(s.storage_args()).env("RUST_LOG", "warn").env_remove("TSP_DATABASE_URL");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run tsp admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn the_cli_revokes_and_rotates_keys_on_the_database() {
    let mut s = TestServer::start().await;
    let (_, ka) = requestor(&s, "cli revoked", &["instruments"]).await;
    let (kb_req, kb) = requestor(&s, "cli rotated", &["instruments"]).await;
    assert_eq!(list_status(&s, &ka).await, 200);
    assert_eq!(list_status(&s, &kb).await, 200);
    s.stop();

    let (ok, out, err) = admin_cli(&s, &["revoke-key", key_id(&ka)]).await;
    assert!(ok, "{err}");
    assert!(out.contains(key_id(&ka)) && out.contains("revoked at") && !out.contains("already"), "{out}");
    let (ok, out, err) = admin_cli(&s, &["revoke-key", key_id(&ka)]).await;
    assert!(ok && out.contains("already revoked"), "revoking twice is no error: {out} {err}");
    let (ok, _, err) = admin_cli(&s, &["revoke-key", "abcdefghijkm"]).await;
    assert!(!ok && err.contains("unknown API key"), "{err}");
    let (ok, _, err) = admin_cli(&s, &["rotate-key", key_id(&ka)]).await;
    assert!(!ok && err.contains("revoked"), "{err}");
    let (ok, _, err) = admin_cli(&s, &["rotate-key", key_id(&kb), "--overlap-seconds", "-5"]).await;
    assert!(!ok && err.contains("overlap_seconds"), "{err}");

    let (ok, out, err) = admin_cli(&s, &["rotate-key", key_id(&kb), "--overlap-seconds", "0"]).await;
    assert!(ok, "{err}");
    let kb2 = out.trim().to_string();
    assert!(kb2.starts_with("tsp_") && out.lines().count() == 1, "the new key alone on stdout: {out}");
    assert_ne!(key_id(&kb2), key_id(&kb));
    assert!(!err.contains(secret(&kb2)), "the secret is not on stderr");

    let s = s.restart().await;
    assert_eq!(list_status(&s, &ka).await, 401);
    assert_eq!(list_status(&s, &kb).await, 401);
    assert_eq!(list_status(&s, &kb2).await, 200);
    assert_eq!(s.get(&kb2, "/v1/admin/issuers").await.0, 403, "the same scopes, no more");

    let rows = key_audit_rows(&s).await;
    let summary: Vec<(&str, &str, Option<&str>)> =
        rows.iter().map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_deref())).collect();
    assert_eq!(
        summary,
        vec![
            ("cli", "api_key.revoke", Some(key_id(&ka))),
            ("cli", "api_key.revoke", Some(key_id(&ka))),
            ("cli", "api_key.rotate", Some(key_id(&kb))),
        ]
    );
    let rotated: Value = serde_json::from_str(&rows[2].3).unwrap();
    assert_eq!(
        (rotated["new_key_id"].as_str(), rotated["requestor_id"].as_str()),
        (Some(key_id(&kb2)), Some(kb_req.as_str()))
    );
    no_secret_in_the_trail(&s, &[&ka, &kb, &kb2]).await;
}

/// Nodes authenticate API keys from memory for `[limits] api_key_cache_ms` (here 400 ms): a key
/// revoked on one node gets 401 there at once, and on another node that holds it in memory once that
/// bound has passed.
#[tokio::test]
async fn a_key_revoked_on_another_node_stops_there_within_the_cache_bound() {
    let config = tsp::config::DEFAULT_TOML.replace("api_key_cache_ms = 5000", "api_key_cache_ms = 400");
    assert_ne!(config, tsp::config::DEFAULT_TOML, "the default config names the knob");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap().to_string();
    let a = TestServer::start_with(dir, &["--config", &path]).await;
    let b = a.another_node().await;
    let (_, k) = requestor(&a, "cached", &["instruments"]).await;
    // Node B reads the key (and keeps it), node A too.
    assert_eq!(list_status(&b, &k).await, 200);
    assert_eq!(list_status(&a, &k).await, 200);
    let read = Instant::now();
    let (st, _) = revoke(&a, &a.keys.admin, key_id(&k)).await;
    assert_eq!(st, 200);
    assert_eq!(list_status(&a, &k).await, 401, "at once on the node that revoked it");
    tokio::time::sleep(Duration::from_millis(600).saturating_sub(read.elapsed())).await;
    assert_eq!(list_status(&b, &k).await, 401, "past the bound on the other node");
    assert_eq!(list_status(&b, &b.keys.app).await, 200, "the other keys still work");
}
