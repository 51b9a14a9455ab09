//! `tsp load` against the real binary: pay, mixed, echo, register and detokenize runs report no
//! wrong answers, and what the report counts as approved (registered, detokenized) is what the
//! database holds; a run that cannot reach the server
//! fails with exit status 1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::process::Command;

use common::{TestServer, audit_ledger, tsp_bin};
use serde_json::Value;

/// Runs `tsp load ARGS --json` against `s`: (exit status success, the JSON report, stderr).
async fn load(s: &TestServer, args: &[&str]) -> (bool, Value, String) {
    let keys = s.data_dir().join("demo-keys.json");
    let mut cmd = Command::new(tsp_bin());
    cmd.arg("load")
        .args(args)
        .args(["--json", "--iso", &s.iso, "--http", &s.base, "--keys"])
        .arg(&keys)
        .env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run tsp load");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("tsp load printed no JSON report ({e}): {stdout}\n{stderr}"));
    (out.status.success(), report, stderr)
}

async fn count(s: &TestServer, sql: &str) -> i64 {
    let pool = s.database().await;
    // The statements are this file's own text (no outside input).
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

#[tokio::test]
async fn pay_300_all_approved_and_stored() {
    let s = TestServer::start().await;
    let (ok, r, err) = load(&s, &["--mode", "pay", "--count", "300", "--connections", "4"]).await;
    assert!(ok, "{r}\n{err}");
    assert_eq!((r["mode"].as_str(), n(&r["requests"]), n(&r["wrong"])), (Some("pay"), 300, 0), "{r}");
    assert_eq!(n(&r["codes"]["00"]), 300, "{r}");
    assert_eq!(n(&r["approved"]["purchase"]), 300, "{r}");
    assert!(r["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(r["latency_ms"]["p99.9"].as_f64().unwrap() >= r["latency_ms"]["p99"].as_f64().unwrap());
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM transactions WHERE kind = 'purchase' AND status = 'approved'").await,
        300
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM transactions").await, 300, "nothing but the payments");
}

#[tokio::test]
async fn mixed_300_matches_the_database_and_the_ledger_audits_clean() {
    let s = TestServer::start().await;
    let (ok, r, err) = load(&s, &["--mode", "mixed", "--count", "300", "--connections", "2", "--pipeline", "2"]).await;
    assert!(ok, "{r}\n{err}");
    mixed_matches_the_database(&s, &r, 300).await;
}

/// A third of the payments are on one wallet, and its cancels and reversals name payments made
/// long enough before that the wallet's lane no longer keeps them: 128 requests in flight, and
/// every one is answered as it should be (no `96`).
#[tokio::test]
async fn mixed_2560_with_128_in_flight_answers_every_request() {
    let s = TestServer::start().await;
    let (ok, r, err) =
        load(&s, &["--mode", "mixed", "--count", "2560", "--connections", "32", "--pipeline", "4"]).await;
    assert!(ok, "{r}\n{err}");
    mixed_matches_the_database(&s, &r, 2560).await;
}

/// A `mixed` run of `requests` all answered `00`, counted alike by the load tool and the database,
/// and a ledger that audits clean.
async fn mixed_matches_the_database(s: &TestServer, r: &serde_json::Value, requests: i64) {
    let fifth = requests / 5;
    assert_eq!((n(&r["requests"]), n(&r["wrong"]), n(&r["skipped"])), (requests, 0, 0), "{r}");
    let approved = &r["approved"];
    // Per five requests: three payments, a partial cancel, a reversal.
    assert_eq!(
        (n(&approved["purchase"]), n(&approved["cancel"]), n(&approved["reversal"])),
        (3 * fifth, fifth, fifth),
        "{r}"
    );
    let q = |kind: &str, status: &str| {
        format!("SELECT COUNT(*) FROM transactions WHERE kind = '{kind}' AND status IN ({status})")
    };
    // A reversed payment was approved first.
    assert_eq!(count(s, &q("purchase", "'approved', 'reversed'")).await, n(&approved["purchase"]));
    assert_eq!(count(s, &q("purchase", "'reversed'")).await, n(&approved["reversal"]));
    assert_eq!(count(s, &q("cancel", "'approved'")).await, n(&approved["cancel"]));
    assert_eq!(count(s, &q("reversal", "'approved'")).await, n(&approved["reversal"]));
    assert_eq!(count(s, "SELECT COUNT(*) FROM transactions WHERE status NOT IN ('approved', 'reversed')").await, 0);
    for kind in ["card", "gift", "local"] {
        let paid = n(&r["ops"][format!("purchase {kind}")]["codes"]["00"]);
        assert_eq!(paid, fifth, "{kind}: {r}");
        let sql = format!(
            "SELECT COUNT(*) FROM transactions WHERE kind = 'purchase' AND instrument_kind = '{kind}' \
             AND status IN ('approved', 'reversed')"
        );
        assert_eq!(count(s, &sql).await, paid, "{kind}");
    }
    // Each cancel took half of its payment's 100 KRW.
    let cancelled =
        count(s, "SELECT CAST(COALESCE(SUM(cancelled_amount), 0) AS BIGINT) FROM transactions WHERE kind = 'purchase'")
            .await;
    assert_eq!(cancelled, 50 * n(&approved["cancel"]));
    audit_ledger(s).await;
}

#[tokio::test]
async fn register_and_detokenize_runs_match_the_database() {
    let s = TestServer::start().await;
    let cards = "SELECT COUNT(*) FROM instruments WHERE kind = 'card'";
    let before = count(&s, cards).await;
    let (ok, r, err) = load(&s, &["--mode", "register", "--count", "200", "--connections", "4"]).await;
    assert!(ok, "{r}\n{err}");
    assert_eq!((r["mode"].as_str(), n(&r["requests"]), n(&r["wrong"])), (Some("register"), 200, 0), "{r}");
    assert_eq!((n(&r["codes"]["201"]), n(&r["approved"]["register"])), (200, 200), "{r}");
    assert!(r["latency_ms"]["p99"].as_f64().unwrap() >= r["latency_ms"]["p50"].as_f64().unwrap());
    assert_eq!(count(&s, cards).await, before + 200, "every card registered is stored, each once");
    assert_eq!(
        count(&s, "SELECT COUNT(DISTINCT fingerprint) FROM instruments WHERE kind = 'card'").await,
        before + 200
    );

    let (ok, r, err) = load(&s, &["--mode", "detokenize", "--count", "300", "--connections", "4"]).await;
    assert!(ok, "{r}\n{err}");
    assert_eq!((r["mode"].as_str(), n(&r["requests"]), n(&r["wrong"])), (Some("detokenize"), 300, 0), "{r}");
    assert_eq!((n(&r["codes"]["200"]), n(&r["approved"]["detokenize"])), (300, 300), "{r}");
    // Its setup registered one card per client; every detokenize answered is in the audit trail.
    assert_eq!(count(&s, cards).await, before + 204);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM audit_log WHERE action = 'detokenize' AND outcome = 'ok'").await, 300);
}

#[tokio::test]
async fn echo_500_and_an_unreachable_server_fails() {
    let s = TestServer::start().await;
    let (ok, r, err) = load(&s, &["--mode", "echo", "--count", "500", "--connections", "8", "--pipeline", "8"]).await;
    assert!(ok, "{r}\n{err}");
    assert_eq!((n(&r["requests"]), n(&r["wrong"]), n(&r["approved"]["echo"])), (500, 0, 500), "{r}");

    // Nothing listens on the ISO port: every connection fails, the run reports it and exits 1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let keys = s.data_dir().join("demo-keys.json");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(tsp_bin())
            .args(["load", "--mode", "echo", "--count", "10", "--connections", "2", "--json", "--iso", &addr, "--keys"])
            .arg(keys)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((n(&r["wrong"]), n(&r["wrong_by_reason"]["connect"])), (2, 2), "{r}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 wrong answers"));
}

/// `tsp seed` writes real rows: as many cards and live tokens as asked, owned by a `seed` requestor,
/// with sealed PANs that the running service opens to pay with them.
#[tokio::test]
async fn seeded_cards_are_real_and_pay() {
    let s = TestServer::start().await;
    let mut cmd = Command::new(tsp_bin());
    cmd.arg("seed").args(s.storage_args()).args(["--count", "4500"]).env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run tsp seed");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("seeded 4500 cards and 4500 tokens"), "{stdout}");
    let seeded = "FROM instruments i JOIN requestors r ON r.id = i.requestor_id WHERE r.name = 'seed'";
    assert_eq!(count(&s, &format!("SELECT COUNT(*) {seeded}")).await, 4500);
    assert_eq!(count(&s, &format!("SELECT COUNT(DISTINCT i.fingerprint) {seeded}")).await, 4500);
    assert_eq!(
        count(&s, &format!("SELECT COUNT(*) {seeded} AND EXISTS (SELECT 1 FROM tokens t WHERE t.instrument_id = i.id AND t.state = 'active')")).await,
        4500
    );
    // Three of them pay over ISO 8583: the issuer simulator gets each sealed PAN opened.
    let pool = s.database().await;
    let numbers: Vec<(String,)> = sqlx::query_as(
        "SELECT t.token FROM tokens t JOIN requestors r ON r.id = t.requestor_id WHERE r.name = 'seed' \
         ORDER BY t.created_at, t.id LIMIT 3",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // The indexes the bulk load dropped are back: a second live token with a seeded number is refused.
    let copy = sqlx::query(
        "INSERT INTO tokens (id, token, instrument_id, requestor_id, state, token_expiry, psn, failed_attempts, \
         created_at, expires_at) SELECT 'tok_copy', token, instrument_id, requestor_id, 'active', token_expiry, psn, 0, \
         created_at, expires_at FROM tokens WHERE token = $1",
    )
    .bind(&numbers[0].0)
    .execute(&pool)
    .await;
    assert!(copy.is_err(), "the live-number unique index must be rebuilt");
    pool.close().await;
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    for (number,) in &numbers {
        let ans = term.pay(number, 1200).await;
        assert_eq!(ans.response_code(), Some("00"));
    }
    assert_eq!(count(&s, "SELECT COUNT(*) FROM transactions WHERE status = 'approved'").await, 3);
}

#[tokio::test]
async fn pay_over_a_binary_listener() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let config = format!("{}\n[[iso.listeners]]\naddr = \"{addr}\"\ndialect = \"binary\"\n", tsp::config::DEFAULT_TOML);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap().to_string();
    let s = TestServer::start_with(dir, &["--config", &path]).await;
    let keys = s.data_dir().join("demo-keys.json");
    let mut cmd = Command::new(tsp_bin());
    cmd.args(["load", "--mode", "pay", "--count", "100", "--connections", "2", "--dialect", "binary", "--json"])
        .args(["--iso", &addr, "--http", &s.base, "--keys"])
        .arg(&keys)
        .env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let r: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(out.status.success(), "{r}");
    assert_eq!((n(&r["requests"]), n(&r["wrong"]), n(&r["codes"]["00"])), (100, 0, 100), "{r}");
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM transactions WHERE kind = 'purchase' AND status = 'approved'").await,
        100
    );
}
