//! The embedded SQLite backend: WAL journal with `synchronous=FULL`, so a commit is on disk before
//! it returns. SQLite admits one writer at a time, so every write goes through the one write
//! connection, whose commits are shared by the writers that queue up together (`group.rs`); reads go
//! through a small separate pool. The statements are shared with PostgreSQL (`sql.rs`).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Row};

use super::group::{GroupCommit, Writer};

use super::sql::{TXN_INSERT, TXN_UPDATE, is_check_violation};
use super::*;
use crate::ledger::JournalEntry;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    group: Arc<GroupCommit>,
    read: SqlitePool,
    pub(super) money: Option<Arc<crate::money::Currencies>>,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        owner_only(path)?;
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // The writer touches index pages all over the tables: a 64 MiB page cache (SQLite's default is
        // 2 MiB) keeps them, and checkpoints every 32 MiB of WAL rather than 4 MiB keep the epoch
        // commits short.
        let mut write =
            // Overwritten and deleted content is zeroed, not left in free space (a scrubbed answer,
            // a deleted card's sealed PAN).
            opts.clone()
                .pragma("cache_size", "-65536")
                .pragma("wal_autocheckpoint", "8192")
                .pragma("secure_delete", "on")
                .connect()
                .await?;
        MIGRATOR.run(&mut write).await.map_err(|e| StoreError::Migrate(e.to_string()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            // (A local file: nothing to find broken before use.)
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteStore { group: GroupCommit::start(write), read, money: None })
    }

    /// The write connection, for one write of at most one writing statement (see `group.rs`).
    async fn writer(&self) -> StoreResult<Writer<'_>> {
        self.group.writer(false).await
    }

    /// The write connection, for a write of several statements that stand or fall together.
    async fn atomic_writer(&self) -> StoreResult<Writer<'_>> {
        self.group.writer(true).await
    }

    pub async fn migrations(&self) -> StoreResult<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.read).await?;
        Ok(v.unwrap_or(0))
    }

    pub fn sample_pools(&self) {
        crate::metrics::get().pool("sqlite_read", self.read.size(), self.read.num_idle());
    }

    pub async fn health(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Writes a batch of chained audit rows in one statement (a single statement needs no
    /// savepoint) and returns once the epoch holding it is committed: each row's (`seq`, `link`).
    pub async fn insert_audit_rows(&self, rows: &[NewAuditRow]) -> StoreResult<Vec<(i64, i64)>> {
        let batch: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!([
                    r.chain,
                    r.link,
                    r.at,
                    r.actor,
                    r.action,
                    r.subject,
                    r.outcome,
                    r.detail,
                    r.prev_hash,
                    r.hash
                ])
            })
            .collect();
        let batch = serde_json::Value::Array(batch).to_string();
        let mut w = self.writer().await?;
        let assigned: Vec<(i64, i64)> = sqlx::query_as(
            "INSERT INTO audit_log (chain, link, at, actor, action, subject, outcome, detail, prev_hash, hash) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
             json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
             json_extract(value, '$[9]') FROM json_each($1) ORDER BY key \
             RETURNING seq, link",
        )
        .bind(batch)
        .fetch_all(w.conn())
        .await?;
        w.done().await?;
        Ok(assigned)
    }

    pub async fn close(&self) {
        self.group.close().await;
        self.read.close().await;
    }
}

sql_store!(
    SqliteStore,
    sqlx::SqliteConnection,
    for_update = "",
    snapshot = "",
    seed_indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('instruments', 'tokens') \
                    AND sql IS NOT NULL ORDER BY name"
);

/// Makes the database file (created empty here when new) and its `-wal` and `-shm` files readable
/// and writable by their owner only: SQLite gives the files it creates the database file's mode, so
/// the journal of a new database is `0600` from its first byte, and files an older version left
/// wider are narrowed.
fn owner_only(path: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path).map_err(fail)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
