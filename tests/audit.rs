//! The audit trail against the real binary: the events it must record are there, in order, chained;
//! the table refuses updates; a row changed behind the triggers' back is named by `tsp audit verify`;
//! two nodes and a CLI command writing at once make one trail that verifies, whose anchors catch a
//! node's rows removed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::process::Command;

use common::{TestServer, card, tsp_bin};
use serde_json::{Value, json};

/// Runs `tsp audit ARGS` on the server's storage: (success, stdout).
async fn audit(s: &TestServer, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(tsp_bin());
    cmd.arg("audit").args(args).args(s.storage_args()).env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run tsp audit");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test]
async fn the_trail_records_chains_and_names_a_tampered_row() {
    let s = TestServer::start().await;
    let pan = card("411111", 618_033_988, 16);
    let (st, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
    assert_eq!(st, 201);
    let id = ins["id"].as_str().unwrap().to_string();
    let (_, tok) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": id })).await;
    let (st, _) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok["token"] })).await;
    assert_eq!(st, 200);
    let (st, _) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": "4610001234567897" })).await;
    assert_eq!(st, 404);
    assert_eq!(s.post(&s.keys.app, &format!("/v1/instruments/{id}/suspend"), json!({})).await.0, 200);
    assert_eq!(s.post(&s.keys.app, &format!("/v1/instruments/{id}/resume"), json!({})).await.0, 200);
    let (st, _) =
        s.post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": "audited", "scopes": ["tokens"] })).await;
    assert_eq!(st, 201);

    // Many appends at once still make one chain: one node writes one chain, in batches.
    let creations: Vec<_> = (0..40u8)
        .map(|i| {
            let (http, url, admin) = (s.http.clone(), s.url("/v1/admin/requestors"), s.keys.admin.clone());
            let body = json!({ "name": format!("zzzzzzzzzz{i:02}"), "scopes": ["tokens"] });
            tokio::spawn(async move { http.post(url).bearer_auth(admin).json(&body).send().await.unwrap().status() })
        })
        .collect();
    for r in creations {
        assert_eq!(r.await.unwrap().as_u16(), 201);
    }
    // Refused keys are counted, not each recorded: the source that spends its allowance (20 with the
    // demo limits) is blocked, and the block is one row.
    for _ in 0..21 {
        assert_eq!(s.get("tsp_abcdefgh2345_wrongsecret", "/v1/instruments").await.0, 401);
    }
    assert_eq!(s.get("tsp_abcdefgh2345_wrongsecret", "/v1/instruments").await.0, 429);
    let (ok, out) = audit(&s, &["verify"]).await;
    assert!(ok && out.starts_with("audit trail intact: "), "{out}");
    let (ok, lines) = audit(&s, &["export"]).await;
    assert!(ok);
    assert!(!lines.contains(&pan) && !lines.contains(&pan[6..12]), "no PAN digits in the trail");
    let rows: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["action"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string()))
        .collect();
    let want = [
        ("key.create", "ok"),
        ("instrument.register", "ok"),
        ("detokenize", "ok"),
        ("detokenize", "token_unknown"),
        ("instrument.suspend", "ok"),
        ("instrument.resume", "ok"),
        ("requestor.create", "ok"),
        ("auth.blocked", "127.0.0.1"),
    ];
    let mut at = 0;
    for (action, outcome) in want {
        let found = seen[at..].iter().position(|(a, o)| a == action && o == outcome);
        at += found.unwrap_or_else(|| panic!("no {action}/{outcome} after row {at} in {seen:?}")) + 1;
    }
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["seq"].as_i64(), Some(i as i64 + 1));
        if i > 0 {
            assert_eq!(r["prev_hash"], rows[i - 1]["hash"], "row {} links to the one before", i + 1);
        }
    }
    let blocked: Vec<&Value> = rows.iter().filter(|r| r["action"] == "auth.blocked").collect();
    assert_eq!(blocked.len(), 1, "one row for the block, none per refusal: {blocked:?}");
    assert_eq!(blocked[0]["subject"], "abcdefgh2345");
    let created = rows.iter().filter(|r| r["action"] == "requestor.create").count();
    assert_eq!(created, 41);
    assert!(!lines.contains("wrongsecret"));

    // Append-only: the database itself refuses to change a row.
    let pool = s.database().await;
    let update = "UPDATE audit_log SET outcome = 'forged' WHERE seq = 3";
    assert!(sqlx::query(update).execute(&pool).await.is_err(), "audit_log must refuse updates");
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 3").execute(&pool).await.is_err());

    // Someone with the database's owner rights lifts the guard and changes row 3.
    let lift = if common::on_postgres() {
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"
    } else {
        "DROP TRIGGER audit_log_no_update"
    };
    sqlx::query(lift).execute(&pool).await.unwrap();
    sqlx::query(update).execute(&pool).await.unwrap();
    pool.close().await;
    let (ok, out) = audit(&s, &["verify"]).await;
    assert!(!ok, "verify must fail: {out}");
    assert!(out.contains("broken at row 3:"), "{out}");
}

/// Lifts the append-only guard as the database's owner could.
async fn lift_guard(pool: &sqlx::AnyPool) {
    let lift: &[&'static str] = if common::on_postgres() {
        &["ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"]
    } else {
        &["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"]
    };
    for sql in lift {
        sqlx::query(*sql).execute(pool).await.unwrap();
    }
}

/// `n` requestors created on `s` at once (each one audit row on that node).
async fn create_requestors(s: &TestServer, tag: &str, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, url, admin) = (s.http.clone(), s.url("/v1/admin/requestors"), s.keys.admin.clone());
            let body = json!({ "name": format!("{tag} {i}"), "scopes": ["tokens"] });
            tokio::spawn(async move { http.post(url).bearer_auth(admin).json(&body).send().await.unwrap().status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().as_u16(), 201);
    }
}

#[tokio::test]
async fn two_nodes_and_the_cli_write_one_trail_whose_anchors_catch_a_removed_tail() {
    let a = TestServer::start().await;
    let b = a.another_node().await;
    // Two rounds more than a second apart: in the second, each busy node anchors the other's chain.
    for round in 0..2 {
        let cli = {
            let mut cmd = Command::new(tsp_bin());
            cmd.args(["admin", "create-requestor", "--name", &format!("cli {round}"), "--scopes", "tokens"])
                .args(a.storage_args())
                .env("RUST_LOG", "warn");
            tokio::task::spawn_blocking(move || cmd.output())
        };
        let (tag_a, tag_b) = (format!("a{round}"), format!("b{round}"));
        tokio::join!(create_requestors(&a, &tag_a, 60), create_requestors(&b, &tag_b, 60));
        assert!(cli.await.unwrap().unwrap().status.success());
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    }
    tokio::join!(create_requestors(&a, "a2", 20), create_requestors(&b, "b2", 20));

    let (ok, out) = audit(&a, &["verify"]).await;
    assert!(ok && out.starts_with("audit trail intact: "), "{out}");
    let (ok, lines) = audit(&a, &["export"]).await;
    assert!(ok);
    let rows: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let created = rows.iter().filter(|r| r["action"] == "requestor.create").count();
    assert_eq!(created, 2 * 60 * 2 + 2 * 20 + 2, "every creation, on either node and by the CLI, is in the trail");
    // At least three chains (the two nodes, the CLI runs), each numbered 1, 2, … in seq order.
    let mut chains: std::collections::HashMap<String, i64> = Default::default();
    for r in &rows {
        let last = chains.entry(r["chain"].as_str().unwrap().to_string()).or_insert(0);
        assert_eq!(r["link"].as_i64(), Some(*last + 1), "{r}");
        *last += 1;
    }
    assert!(chains.len() >= 4, "two nodes and two CLI runs: {chains:?}");
    assert!(out.contains(&format!("in {} chains", chains.len())), "{out}");

    // An anchor of one node names the other node's row: removing that node's rows from there on is
    // found, though what is left of its chain is whole. (A chain that forked from one of the removed
    // rows may name the loss first.)
    let anchor = rows
        .iter()
        .rfind(|r| r["action"] == "audit.anchor" && r["detail"]["heads"].as_array().is_some_and(|h| !h.is_empty()))
        .unwrap_or_else(|| panic!("no anchor in {lines}"));
    let named = &anchor["detail"]["heads"][0];
    let (chain, link) = (named["chain"].as_str().unwrap().to_string(), named["link"].as_i64().unwrap());
    let pool = a.database().await;
    lift_guard(&pool).await;
    let deleted = sqlx::query("DELETE FROM audit_log WHERE chain = $1 AND link >= $2")
        .bind(chain.clone())
        .bind(link)
        .execute(&pool)
        .await
        .unwrap();
    assert!(deleted.rows_affected() >= 1);
    pool.close().await;
    let (ok, out) = audit(&a, &["verify"]).await;
    assert!(!ok, "verify must fail: {out}");
    let at = anchor["seq"].as_i64().unwrap();
    let broken: i64 =
        out.strip_prefix("audit trail broken at row ").unwrap().split(':').next().unwrap().parse().unwrap();
    assert!(broken <= at && out.contains("is missing"), "{out}");
}

#[tokio::test]
async fn a_reordered_row_is_named() {
    let s = TestServer::start().await;
    create_requestors(&s, "r", 10).await;
    let pool = s.database().await;
    lift_guard(&pool).await;
    // Rows 5 and 6 (one chain) trade places in the order.
    for (from, to) in [(5, -5), (6, 5), (-5, 6)] {
        sqlx::query("UPDATE audit_log SET seq = $2 WHERE seq = $1")
            .bind(from as i64)
            .bind(to as i64)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let (ok, out) = audit(&s, &["verify"]).await;
    assert!(!ok && out.contains("broken at row 5:"), "{out}");
}
