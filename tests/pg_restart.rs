//! The database restarts under load: a private PostgreSQL cluster (its own data directory and port,
//! so other tests are not disturbed) is stopped hard while a terminal keeps paying, then started
//! again, with two nodes on it. While it is down the nodes answer `96`/`91` — never `00` — and
//! `/healthz` fails; when it is back they recover by themselves, and every `00` given is stored.
//!
//! This test brings its own PostgreSQL, whatever store the run tests (`scripts/test` runs it in the
//! SQLite pass only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::iso::Terminal;
use common::{TestServer, audit_ledger};
use serde_json::json;

/// A throwaway PostgreSQL cluster.
struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    // PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
    if nix_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl Cluster {
    fn new() -> Cluster {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .max()
            .expect("a PostgreSQL version");
        let bin = version.join("bin");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).unwrap();
        if nix_is_root() {
            Command::new("chmod").arg("755").arg(dir.path()).status().unwrap();
            Command::new("chown").args(["-R", "postgres:"]).arg(&data).status().unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out =
            as_postgres(&bin, "initdb").args(["-A", "trust", "-U", "postgres", "-D"]).arg(&data).output().unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let c = Cluster { _dir: dir, data, bin, port };
        c.start();
        c
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.data.display());
        let out = as_postgres(&self.bin, "pg_ctl")
            .args(["-w", "-D"])
            .arg(&self.data)
            .args(["-o", &opts, "-l"])
            .arg(self.data.join("log"))
            .arg("start")
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// An immediate stop: no clean shutdown, as in a crash.
    fn crash(&self) {
        let out = as_postgres(&self.bin, "pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl").args(["-m", "immediate", "-D"]).arg(&self.data).arg("stop").output();
    }
}

#[tokio::test]
async fn database_restart_under_load_never_a_wrong_approval() {
    let pg = Cluster::new();
    let s = TestServer::start_on_database(&pg.url()).await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, g) = s
        .post(
            &s.keys.admin,
            "/v1/admin/gift-certificates",
            json!({ "face_value": "1000000", "currency": "KRW", "expires_at": expires }),
        )
        .await;
    let (_, gift) = s.post(&s.keys.app, "/v1/instruments", json!({ "type": "gift", "code": g["code"] })).await;
    let mut tokens = Vec::new();
    for _ in 0..80 {
        let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": gift["id"] })).await;
        assert_eq!(st, 201);
        tokens.push(t["token"].as_str().unwrap().to_string());
    }
    let mut term = Terminal::connect(&s.iso).await;
    let mut answers: Vec<(tsp::iso8583::Message, String)> = Vec::new();
    // Before: all approved.
    for _ in 0..10 {
        let req = term.purchase(&tokens.pop().unwrap(), 1_000);
        let ans = term.call(&req).await;
        answers.push((req, ans.response_code().unwrap().to_string()));
    }
    assert!(answers.iter().all(|(_, c)| c == "00"));

    // A second node on the same database.
    let s2 = s.another_node().await;
    s2.register_terminal("NODE2001", "MERCHANT000001").await;
    let mut term2 = Terminal::connect(&s2.iso).await;
    term2.terminal_id = "NODE2001".into();

    pg.crash();
    let down_at = Instant::now();
    for node in [&s, &s2] {
        let (st, _) = node.get(&node.keys.app, "/healthz").await;
        assert_eq!(st, 503, "healthz fails while the database is down");
    }
    let mut while_down = Vec::new();
    for _ in 0..2 {
        let (r1, r2) = (term.purchase(&tokens.pop().unwrap(), 1_000), term2.purchase(&tokens.pop().unwrap(), 1_000));
        let (a1, a2) = tokio::join!(term.try_call(&r1), term2.try_call(&r2));
        for (req, ans) in [(r1, a1), (r2, a2)] {
            let c = ans.expect("each node answers while the database is down").response_code().unwrap().to_string();
            while_down.push(c.clone());
            answers.push((req, c));
        }
    }
    assert!(while_down.iter().all(|c| c == "96" || c == "91"), "answers while down: {while_down:?}");
    let down_for = down_at.elapsed();

    pg.start();
    // Back: the node recovers by itself (new connections from its pool), within seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut recovered = false;
    while Instant::now() < deadline {
        let req = term.purchase(&tokens.pop().unwrap(), 1_000);
        let Some(ans) = term.try_call(&req).await else { break };
        let c = ans.response_code().unwrap().to_string();
        answers.push((req, c.clone()));
        if c == "00" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "no approval within 30 s after the database came back (down for {down_for:?})");
    for node in [&s, &s2] {
        let (st, _) = node.get(&node.keys.app, "/healthz").await;
        assert_eq!(st, 200);
    }
    // The second node recovered too.
    let req = term2.purchase(&tokens.pop().unwrap(), 1_000);
    let ans = term2.call(&req).await;
    answers.push((req, ans.response_code().unwrap().to_string()));
    assert_eq!(answers.last().unwrap().1, "00", "the second node approves again");
    for _ in 0..5 {
        let req = term.purchase(&tokens.pop().unwrap(), 1_000);
        let ans = term.call(&req).await;
        answers.push((req, ans.response_code().unwrap().to_string()));
    }

    // Every 00 is stored as approved and took exactly its amount; nothing else moved the balance.
    let pool = s.database().await;
    let mut approved = 0;
    for (req, c) in &answers {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT status FROM transactions WHERE terminal_id = $1 AND stan = $2 AND msg_class = '02'")
                .bind(req.terminal_id().unwrap())
                .bind(req.stan().unwrap())
                .fetch_optional(&pool)
                .await
                .unwrap();
        if c == "00" {
            approved += 1;
            assert_eq!(row.map(|r| r.0).as_deref(), Some("approved"), "an answered 00 is stored as approved");
        } else {
            assert_ne!(row.map(|r| r.0).as_deref(), Some("approved"), "a refused payment is not stored as approved");
        }
    }
    let (_, bal) = s.get(&s.keys.app, &format!("/v1/instruments/{}/balance", gift["id"].as_str().unwrap())).await;
    assert_eq!(bal["principal"].as_str().unwrap().parse::<i64>().unwrap(), 1_000_000 - 1_000 * approved);
    audit_ledger(&s).await;
}
