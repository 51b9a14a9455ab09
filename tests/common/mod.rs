//! A real `tsp serve` process on loopback for integration tests: its own temporary data directory,
//! OS-chosen ports, stdout and stderr captured to files so tests can read every log line.
//!
//! The store: SQLite in the data directory, or — with `TSP_TEST_STORE=postgres` — a fresh PostgreSQL
//! database per server, created on the server `TSP_TEST_DATABASE_URL` names, so tests run in parallel.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod iso;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    /// host:port of the ISO 8583 front.
    pub iso: String,
    pub keys: DemoKeys,
    pub http: reqwest::Client,
    /// The PostgreSQL database of this server, on PostgreSQL runs.
    pub database_url: Option<String>,
    /// The data directory (the key store, the demo keys, and on SQLite the database); another node
    /// of the same deployment shares it.
    data: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

#[derive(Debug, Clone)]
pub struct DemoKeys {
    pub app: String,
    pub van: String,
    pub admin: String,
}

pub fn tsp_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tsp")
}

/// True when this run tests the PostgreSQL store (`TSP_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("TSP_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// A new, empty PostgreSQL database for one test (`tsp_t_<uuid>`), as a URL; None on SQLite runs.
/// A PostgreSQL run without `TSP_TEST_DATABASE_URL` fails rather than quietly testing SQLite.
pub async fn fresh_database() -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let base = std::env::var("TSP_TEST_DATABASE_URL").expect("TSP_TEST_STORE=postgres needs TSP_TEST_DATABASE_URL");
    let name = format!("tsp_t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base).await.expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create db");
    let _ = sqlx::Connection::close(conn).await;
    let (head, _) = base.rsplit_once('/').expect("a database URL with a path");
    Some(format!("{head}/{name}"))
}

/// The `--data-dir` (and on PostgreSQL runs `--database-url`) arguments for a CLI command that must
/// reach this server's database.
pub fn storage_args(data: &Path, database_url: Option<&str>) -> Vec<String> {
    let mut v = vec!["--data-dir".to_string(), data.display().to_string()];
    if let Some(url) = database_url {
        v.extend(["--database-url".to_string(), url.to_string()]);
    }
    v
}

/// A pool on the server's database for audits: SQLite in the data directory or its PostgreSQL
/// database. Queries use `$N` parameters and return BIGINT/TEXT (both backends agree on those).
pub async fn database(data: &Path, database_url: Option<&str>) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match database_url {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", data.join("tsp.db").display()),
    };
    sqlx::pool::PoolOptions::<sqlx::Any>::new().max_connections(2).connect(&url).await.expect("open the database")
}

impl TestServer {
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }
    pub fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("stdout.log")
    }
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }
    pub fn storage_args(&self) -> Vec<String> {
        storage_args(&self.data_dir(), self.database_url.as_deref())
    }
    pub async fn database(&self) -> sqlx::AnyPool {
        database(&self.data_dir(), self.database_url.as_deref()).await
    }

    /// Starts a server in a fresh data directory.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir).await
    }

    /// Starts a server in `dir/data` (which may already hold state).
    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        Self::start_with(dir, &[]).await
    }

    /// Starts a server in `dir/data` with extra `tsp serve` arguments.
    pub async fn start_with(dir: tempfile::TempDir, extra: &[&str]) -> TestServer {
        let data = dir.path().join("data");
        // A restart in the same directory finds the same database.
        let url_file = dir.path().join("database-url");
        let database_url = match std::fs::read_to_string(&url_file) {
            Ok(u) => Some(u),
            Err(_) => {
                let u = fresh_database().await;
                if let Some(u) = &u {
                    std::fs::write(&url_file, u).expect("database-url file");
                }
                u
            }
        };
        let extra: Vec<String> = extra.iter().map(|e| e.to_string()).collect();
        Self::spawn(dir, data, database_url, extra).await
    }

    /// Starts a server on a given database (e.g. a private PostgreSQL cluster a test controls).
    pub async fn start_on_database(url: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("database-url"), url).expect("database-url file");
        Self::start_in(dir).await
    }

    /// Another node of the same deployment: its own process, ports and logs, the same data
    /// directory (key store, demo keys) and database.
    pub async fn another_node(&self) -> TestServer {
        let logs = tempfile::tempdir().expect("tempdir");
        Self::spawn(logs, self.data.clone(), self.database_url.clone(), self.extra.clone()).await
    }

    /// Starts this node again after it stopped or was killed.
    pub async fn restart(self) -> TestServer {
        let mut old = self;
        old.kill();
        let (data, url, extra) = (old.data.clone(), old.database_url.clone(), old.extra.clone());
        let dir = std::mem::replace(&mut old.dir, tempfile::tempdir().expect("tempdir"));
        drop(old);
        Self::spawn(dir, data, url, extra).await
    }

    /// Starts this node again with `more` arguments added to those it had.
    pub async fn restart_with(mut self, more: &[&str]) -> TestServer {
        self.extra.extend(more.iter().map(|m| m.to_string()));
        self.restart().await
    }

    /// SIGKILL: the process dies mid-flight, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.harvest_metrics();
            let _ = child.kill();
            let _ = child.wait();
            self.harvest_logs();
        }
    }

    /// For the suite-wide PAN scan: the server's `/metrics` now (a plain blocking HTTP/1.0 GET).
    fn harvest_metrics(&self) {
        use std::io::{Read, Write};
        let Some(dir) = collect_dir() else { return };
        let Some(addr) = self.base.strip_prefix("http://") else { return };
        let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n");
        let mut text = String::new();
        let _ = conn.read_to_string(&mut text);
        let _ = std::fs::create_dir_all(dir.join("metrics"));
        let _ = std::fs::write(dir.join("metrics").join(format!("{}.txt", uuid::Uuid::now_v7())), text);
    }

    /// For the suite-wide PAN scan: every file of the data directory as it is now (on SQLite the
    /// database itself, its WAL and the key store), and on PostgreSQL every stored answer.
    fn harvest_data(&self) {
        let Some(dir) = collect_dir() else { return };
        let dest = dir.join("data").join(uuid::Uuid::now_v7().to_string());
        for f in files_under(&self.data) {
            let Ok(rel) = f.strip_prefix(&self.data) else { continue };
            let to = dest.join(rel);
            if let Some(parent) = to.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::copy(&f, &to);
        }
        if let Some(url) = &self.database_url {
            let sql = "SELECT encode(response, 'escape') FROM transactions WHERE response IS NOT NULL";
            if let Ok(out) = Command::new("psql").args([url.as_str(), "-Atc", sql]).output() {
                let _ = std::fs::create_dir_all(&dest);
                let _ = std::fs::write(dest.join("transactions.rows"), out.stdout);
            }
        }
    }

    /// For the suite-wide PAN scan: this server's stdout and stderr so far.
    fn harvest_logs(&self) {
        let Some(dir) = collect_dir() else { return };
        let _ = std::fs::create_dir_all(dir.join("logs"));
        let id = uuid::Uuid::now_v7();
        let _ = std::fs::copy(self.stdout_path(), dir.join("logs").join(format!("{id}.out")));
        let _ = std::fs::copy(self.stderr_path(), dir.join("logs").join(format!("{id}.err")));
    }

    async fn spawn(
        dir: tempfile::TempDir,
        data: PathBuf,
        database_url: Option<String>,
        extra: Vec<String>,
    ) -> TestServer {
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout file");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let child = Command::new(tsp_bin())
            .args(["serve", "--http-addr", "127.0.0.1:0", "--iso-addr", "127.0.0.1:0"])
            .args(storage_args(&data, database_url.as_deref()))
            .args(&extra)
            // The most verbose logs: a PAN that reaches any log line must be caught.
            .env("RUST_LOG", "trace")
            .env_remove("TSP_DATABASE_URL")
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn tsp serve");
        let mut server = TestServer {
            dir,
            base: String::new(),
            iso: String::new(),
            keys: DemoKeys { app: "".into(), van: "".into(), admin: "".into() },
            http: {
                tsp::tls::install_crypto_provider();
                reqwest::Client::new()
            },
            database_url,
            data: data.clone(),
            extra,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = std::fs::read_to_string(server.stdout_path()).unwrap_or_default();
            // `http://` or `https://`; the ISO 8583 line may end with its TLS mode in parentheses. A sealed
            // node (production, waiting for its custodians) answers on the same addresses.
            let after =
                |l: &str, marker: &str| l.split(marker).nth(1).and_then(|r| r.split(' ').next()).map(str::to_string);
            let iso = out.lines().find_map(|l| {
                after(l, "ISO 8583 listening on ").or_else(|| after(l, "(sealed: every request 91) on "))
            });
            let rest = out
                .lines()
                .find_map(|l| after(l, "REST API listening on ").or_else(|| after(l, "REST API (sealed) on ")));
            if let (Some(rest), Some(iso)) = (rest, iso) {
                server.base = rest;
                server.iso = iso;
                break;
            }
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "tsp serve exited early ({status}): {}",
                    std::fs::read_to_string(server.stderr_path()).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "tsp serve did not start: {out}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A production node has no demo keys: its tests make their own requestors.
        let Ok(text) = std::fs::read_to_string(data.join("demo-keys.json")) else { return server };
        let keys: Value = serde_json::from_str(&text).expect("json");
        server.keys = DemoKeys {
            app: keys["app"].as_str().expect("app").into(),
            van: keys["van"].as_str().expect("van").into(),
            admin: keys["admin"].as_str().expect("admin").into(),
        };
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).bearer_auth(key).json(&body).send().await.expect("POST");
        let (status, answer) = (r.status().as_u16(), r.json().await.unwrap_or(Value::Null));
        collect_exchange(Some(&body), status, &answer);
        (status, answer)
    }

    /// Registers terminal `id` for `merchant` (DE41/DE42, trailing spaces ignored) in the terminal
    /// registry, as an operator does; only registered terminals may pay.
    pub async fn register_terminal(&self, id: &str, merchant: &str) {
        let body = serde_json::json!({ "id": id.trim_end(), "merchant_id": merchant.trim_end() });
        let (st, v) = self.post(&self.keys.admin, "/v1/admin/terminals", body).await;
        assert!(st == 201 || st == 200, "terminal {id} for {merchant}: {st} {v}");
    }

    /// A test terminal (`common::iso::Terminal`) connected to this server's ISO 8583 front as `id`
    /// paying for `merchant`, registered first.
    pub async fn terminal_as(&self, id: &str, merchant: &str) -> iso::Terminal {
        self.register_terminal(id, merchant).await;
        let mut t = iso::Terminal::connect(&self.iso).await;
        t.terminal_id = id.to_string();
        t.merchant_id = format!("{merchant:<15}");
        t
    }

    pub async fn post_raw(&self, key: Option<&str>, path: &str, body: Vec<u8>) -> (u16, Value) {
        let body_copy = body.clone();
        let mut req = self.http.post(self.url(path)).header("content-type", "application/json").body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.expect("POST");
        let (status, answer) = (r.status().as_u16(), r.json().await.unwrap_or(Value::Null));
        collect_exchange(serde_json::from_slice::<Value>(&body_copy).ok().as_ref(), status, &answer);
        (status, answer)
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).bearer_auth(key).send().await.expect("GET");
        let (status, answer) = (r.status().as_u16(), r.json().await.unwrap_or(Value::Null));
        collect_exchange(None, status, &answer);
        (status, answer)
    }

    pub async fn delete(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self.http.delete(self.url(path)).bearer_auth(key).send().await.expect("DELETE");
        let (status, answer) = (r.status().as_u16(), r.json().await.unwrap_or(Value::Null));
        collect_exchange(None, status, &answer);
        (status, answer)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if self.child.is_some() {
            self.harvest_metrics();
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    self.harvest_logs();
                    self.harvest_data();
                    assert!(status.success(), "tsp serve exited with {status}");
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("tsp serve did not stop on SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.harvest_metrics();
            let _ = child.kill();
            let _ = child.wait();
            self.harvest_logs();
            self.harvest_data();
        }
    }
}

/// The suite-wide PAN scan (`scripts/test` sets `TSP_TEST_COLLECT` and scans it afterwards): every PAN
/// the tests register, every error body, every server's logs and last `/metrics` go there.
fn collect_dir() -> Option<PathBuf> {
    std::env::var_os("TSP_TEST_COLLECT").map(PathBuf::from)
}

/// Appends `line` to the collector's `file`.
fn collect(file: &str, line: &str) {
    use std::io::Write;
    if let Some(dir) = collect_dir() {
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(file)) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Records the PAN a request body carries and the body of an error answer.
fn collect_exchange(request: Option<&Value>, status: u16, answer: &Value) {
    if let Some(pan) = request.and_then(|b| b.get("pan")).and_then(Value::as_str) {
        collect("pans.txt", pan);
    }
    if status >= 400 {
        collect("errors.jsonl", &answer.to_string());
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The first place `needle` occurs in `haystack`, if any.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A server whose issuers are a simulator of the test's own, over TCP (the protocol of `tsp
/// issuer-sim`) with a 600 ms timeout; `edit` changes the rest of the demo configuration.
pub async fn with_tcp_issuer(
    edit: impl Fn(String) -> String,
) -> (TestServer, std::sync::Arc<tsp::issuer::sim::Simulator>) {
    with_tcp_issuer_as(tsp::issuer::sim::SimConfig::default(), edit).await
}

/// [`with_tcp_issuer`] with a simulator configured as `cfg`.
pub async fn with_tcp_issuer_as(
    cfg: tsp::issuer::sim::SimConfig,
    edit: impl Fn(String) -> String,
) -> (TestServer, std::sync::Arc<tsp::issuer::sim::Simulator>) {
    use tsp::issuer::sim::Simulator;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let sim = std::sync::Arc::new(Simulator::new(cfg));
    tokio::spawn(tsp::issuer::tcp::serve(listener, sim.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = edit(
        tsp::config::DEFAULT_TOML
            .replace("[[issuers]]\n", &format!("[[issuers]]\nhost = \"tcp://{addr}\"\ntimeout_ms = 600\n")),
    );
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).expect("config file");
    let path = path.to_str().expect("a UTF-8 path").to_string();
    (TestServer::start_with(dir, &["--config", &path]).await, sim)
}

/// Hands a card number the test uses another way (over ISO 8583, say) to the suite-wide PAN scan.
pub fn scan_for(pan: &str) -> &str {
    collect("pans.txt", pan);
    pan
}

/// Luhn-valid card numbers for a BIN prefix: `prefix` + `serial` zero-padded + check digit.
pub fn card(prefix: &str, serial: u64, len: usize) -> String {
    let body = format!("{prefix}{serial:0width$}", width = len - 1 - prefix.len());
    let pan = tsp::luhn::complete(&body).expect("digits");
    collect("pans.txt", &pan);
    pan
}

/// Every ledger account's cached balance equals the sum of its postings, and the books balance.
pub async fn audit_ledger(s: &TestServer) {
    let pool = s.database().await;
    let accounts: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT id, kind, balance FROM ledger_accounts").fetch_all(&pool).await.unwrap();
    assert!(!accounts.is_empty());
    let mut net = 0i64;
    for (id, kind, cached) in accounts {
        let postings: Vec<(String, i64)> =
            sqlx::query_as("SELECT side, amount FROM ledger_postings WHERE account_id = $1")
                .bind(&id)
                .fetch_all(&pool)
                .await
                .unwrap();
        let normal = <tsp::ledger::AccountKind as std::str::FromStr>::from_str(&kind).unwrap().normal_side();
        let sum: i64 = postings.iter().map(|(side, a)| if side == normal.as_str() { *a } else { -*a }).sum();
        assert_eq!(cached, sum, "account {id}: cached {cached}, postings {sum}");
        assert!(
            cached >= 0 || !<tsp::ledger::AccountKind as std::str::FromStr>::from_str(&kind).unwrap().non_negative(),
            "{id} negative"
        );
        net += if normal == tsp::ledger::Side::Debit { cached } else { -cached };
    }
    assert_eq!(net, 0, "the books do not balance");
    let unbalanced: Vec<(String,)> = sqlx::query_as(
        "SELECT entry_id FROM ledger_postings GROUP BY entry_id \
         HAVING SUM(CASE side WHEN 'debit' THEN amount ELSE 0 END) <> SUM(CASE side WHEN 'credit' THEN amount ELSE 0 END)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unbalanced.is_empty(), "unbalanced entries: {unbalanced:?}");
    // A local-currency wallet's bonus grants hold exactly its bonus account, and no payment has had
    // more cancelled than it took, per bucket and in total.
    let wallets: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT w.instrument_id, CAST(COALESCE((SELECT SUM(remaining) FROM bonus_grants g WHERE g.instrument_id = w.instrument_id), 0) AS BIGINT), \
         COALESCE((SELECT balance FROM ledger_accounts a WHERE a.id = 'wallet:' || w.instrument_id || ':bonus'), 0) FROM local_wallets w",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (id, grants, account) in wallets {
        assert_eq!(grants, account, "wallet {id}: grants hold {grants}, bonus account {account}");
    }
    let over: Vec<(String,)> = sqlx::query_as(
        "SELECT t.id FROM transactions t WHERE t.cancelled_amount > COALESCE(t.amount, 0) OR t.cancelled_amount < 0 \
         OR t.cancelled_amount <> COALESCE((SELECT CAST(SUM(c.amount) AS BIGINT) FROM transactions c WHERE c.original_id = t.id \
         AND c.kind = 'cancel' AND c.status = 'approved'), 0) AND t.kind = 'purchase' AND t.instrument_kind <> 'card'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(over.is_empty(), "payments with cancels beyond or apart from their approved cancels: {over:?}");
    pool.close().await;
}
