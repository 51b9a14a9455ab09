//! The embedded SQLite backend: WAL journal with `synchronous=FULL`, so a commit is on disk before
//! it returns. SQLite admits one writer at a time, so writes go through a one-connection pool (no
//! busy-waiting between our own connections) and reads through a small separate pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

// Column lists as macros so every statement stays a `&'static str` (sqlx refuses run-time SQL).
macro_rules! instrument_cols {
    () => {
        "id, requestor_id, kind, status, issuer_id, bin, last4, pan_len, expiry, par, \
         fingerprint, fp_version, pan_sealed, dek_version, created_at, updated_at"
    };
}
macro_rules! token_cols {
    () => {
        "id, token, instrument_id, requestor_id, state, token_expiry, psn, merchant_id, \
         max_amount, currency, entry_modes, failed_attempts, created_at, expires_at, consumed_at"
    };
}

#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl SqliteStore {
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&write).await.map_err(|e| StoreError::Migrate(e.to_string()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteStore { write, read })
    }

    pub async fn health(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    pub async fn insert_requestor(&self, r: &RequestorRow, key: &ApiKeyRow) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT INTO requestors (id, trid, name, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(&r.id)
            .bind(&r.trid)
            .bind(&r.name)
            .bind(&r.scopes)
            .bind(r.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO api_keys (key_id, requestor_id, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(&key.key_id)
            .bind(&key.requestor_id)
            .bind(&key.secret_hash)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn find_api_key(&self, key_id: &str) -> StoreResult<Option<(ApiKeyRow, RequestorRow)>> {
        let row = sqlx::query(
            "SELECT k.key_id, k.requestor_id, k.secret_hash, k.created_at, k.revoked_at, \
                    r.id, r.trid, r.name, r.scopes, r.created_at AS r_created_at \
             FROM api_keys k JOIN requestors r ON r.id = k.requestor_id WHERE k.key_id = ?1",
        )
        .bind(key_id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key = ApiKeyRow {
            key_id: row.try_get("key_id")?,
            requestor_id: row.try_get("requestor_id")?,
            secret_hash: row.try_get("secret_hash")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        };
        let req = RequestorRow {
            id: row.try_get("id")?,
            trid: row.try_get("trid")?,
            name: row.try_get("name")?,
            scopes: row.try_get("scopes")?,
            created_at: row.try_get("r_created_at")?,
        };
        Ok(Some((key, req)))
    }

    pub async fn data_keys(&self) -> StoreResult<Vec<DataKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT version, kek_label, kek_version, wrapped, created_at FROM data_keys ORDER BY version",
        )
        .fetch_all(&self.write)
        .await?)
    }

    pub async fn insert_data_key(&self, k: &DataKeyRow) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO data_keys (version, kek_label, kek_version, wrapped, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(k.version)
        .bind(&k.kek_label)
        .bind(k.kek_version)
        .bind(&k.wrapped)
        .bind(k.created_at)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn insert_card(&self, c: &InstrumentRow) -> StoreResult<InsertCard> {
        let r = sqlx::query(
            "INSERT INTO instruments (id, requestor_id, kind, status, issuer_id, bin, last4, pan_len, expiry, par, \
             fingerprint, fp_version, pan_sealed, dek_version, created_at, updated_at) \
             VALUES (?1, ?2, 'card', 'active', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
        )
        .bind(&c.id)
        .bind(&c.requestor_id)
        .bind(&c.issuer_id)
        .bind(&c.bin)
        .bind(&c.last4)
        .bind(c.pan_len)
        .bind(&c.expiry)
        .bind(&c.par)
        .bind(&c.fingerprint)
        .bind(c.fp_version)
        .bind(&c.pan_sealed)
        .bind(c.dek_version)
        .bind(c.created_at)
        .execute(&self.write)
        .await;
        match r {
            Ok(_) => Ok(InsertCard::Inserted),
            Err(e) if is_unique_violation(&e) => {
                let fp = c.fingerprint.as_deref().unwrap_or_default();
                // Read through the writer: the row that beat us is committed there.
                let existing = sqlx::query_as::<_, InstrumentRow>(concat!(
                    "SELECT ",
                    instrument_cols!(),
                    " FROM instruments WHERE requestor_id = ?1 AND fingerprint = ?2 AND status <> 'deleted'"
                ))
                .bind(&c.requestor_id)
                .bind(fp)
                .fetch_optional(&self.write)
                .await?;
                existing
                    .map(|row| InsertCard::Duplicate(Box::new(row)))
                    .ok_or_else(|| StoreError::Corrupt("unique violation without a matching instrument".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn instrument(&self, id: &str) -> StoreResult<Option<InstrumentRow>> {
        Ok(sqlx::query_as(concat!("SELECT ", instrument_cols!(), " FROM instruments WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    pub async fn instrument_by_fingerprint(
        &self,
        requestor_id: &str,
        fingerprint: &str,
    ) -> StoreResult<Option<InstrumentRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            instrument_cols!(),
            " FROM instruments WHERE requestor_id = ?1 AND fingerprint = ?2 AND status <> 'deleted'"
        ))
        .bind(requestor_id)
        .bind(fingerprint)
        .fetch_optional(&self.read)
        .await?)
    }

    pub async fn instruments_of(&self, requestor_id: &str, include_deleted: bool) -> StoreResult<Vec<InstrumentRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            instrument_cols!(),
            " FROM instruments WHERE requestor_id = ?1 AND (?2 OR status <> 'deleted') \
             ORDER BY created_at, id"
        ))
        .bind(requestor_id)
        .bind(include_deleted)
        .fetch_all(&self.read)
        .await?)
    }

    pub async fn update_card_expiry(&self, id: &str, expiry: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE instruments SET expiry = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id)
            .bind(expiry)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn set_instrument_status(
        &self,
        id: &str,
        from: &[InstrumentStatus],
        to: InstrumentStatus,
        now: i64,
    ) -> StoreResult<Option<InstrumentRow>> {
        let mut tx = self.write.begin().await?;
        let current: Option<String> = sqlx::query_scalar("SELECT status FROM instruments WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let allowed = current.as_deref().and_then(InstrumentStatus::parse).is_some_and(|s| from.contains(&s));
        if !allowed {
            return Ok(None);
        }
        // A deleted card keeps its masked facts for the transaction history; the sealed PAN is
        // destroyed.
        let sql = if to == InstrumentStatus::Deleted {
            "UPDATE instruments SET status = ?2, updated_at = ?3, pan_sealed = NULL WHERE id = ?1"
        } else {
            "UPDATE instruments SET status = ?2, updated_at = ?3 WHERE id = ?1"
        };
        sqlx::query(sql).bind(id).bind(to.as_str()).bind(now).execute(&mut *tx).await?;
        if to != InstrumentStatus::Active {
            sqlx::query("UPDATE tokens SET state = 'revoked' WHERE instrument_id = ?1 AND state = 'active'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query_as(concat!("SELECT ", instrument_cols!(), " FROM instruments WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn insert_token(&self, t: &TokenRow, number_fingerprint: &str) -> StoreResult<InsertToken> {
        let r = sqlx::query(
            "INSERT INTO tokens (id, token, instrument_id, requestor_id, state, token_expiry, psn, merchant_id, \
             max_amount, currency, entry_modes, failed_attempts, created_at, expires_at) \
             SELECT ?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?12 \
             WHERE EXISTS (SELECT 1 FROM instruments WHERE id = ?3 AND status = 'active') \
               AND NOT EXISTS (SELECT 1 FROM instruments WHERE fingerprint = ?13)",
        )
        .bind(&t.id)
        .bind(&t.token)
        .bind(&t.instrument_id)
        .bind(&t.requestor_id)
        .bind(&t.token_expiry)
        .bind(&t.psn)
        .bind(&t.merchant_id)
        .bind(t.max_amount)
        .bind(&t.currency)
        .bind(&t.entry_modes)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(number_fingerprint)
        .execute(&self.write)
        .await;
        match r {
            Ok(r) if r.rows_affected() == 1 => Ok(InsertToken::Inserted),
            Ok(_) => {
                let active: Option<String> = sqlx::query_scalar("SELECT status FROM instruments WHERE id = ?1")
                    .bind(&t.instrument_id)
                    .fetch_optional(&self.write)
                    .await?;
                Ok(if active.as_deref() == Some("active") {
                    InsertToken::NumberIsPan
                } else {
                    InsertToken::InstrumentNotActive
                })
            }
            Err(e) if is_unique_violation(&e) => Ok(InsertToken::NumberTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn expire_token_number(&self, token: &str, now: i64) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE tokens SET state = 'expired' WHERE token = ?1 AND state = 'active' AND expires_at <= ?2",
        )
        .bind(token)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn token_by_number(&self, token: &str) -> StoreResult<Option<TokenRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            token_cols!(),
            " FROM tokens WHERE token = ?1 ORDER BY state = 'active' DESC, created_at DESC LIMIT 1"
        ))
        .bind(token)
        .fetch_optional(&self.read)
        .await?)
    }

    pub async fn token(&self, id: &str) -> StoreResult<Option<TokenRow>> {
        Ok(sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM tokens WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    pub async fn consume_token(&self, token: &str, now: i64) -> StoreResult<Consume> {
        let consumed: Option<TokenRow> = sqlx::query_as(concat!(
            "UPDATE tokens SET state = 'consumed', consumed_at = ?2 \
             WHERE token = ?1 AND state = 'active' AND expires_at > ?2 \
               AND (lease_until IS NULL OR lease_until <= ?2) \
               AND EXISTS (SELECT 1 FROM instruments i WHERE i.id = tokens.instrument_id AND i.status = 'active') \
             RETURNING ",
            token_cols!()
        ))
        .bind(token)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        if let Some(row) = consumed {
            return Ok(Consume::Consumed(row));
        }
        let row: Option<TokenRow> = sqlx::query_as(concat!(
            "SELECT ",
            token_cols!(),
            " FROM tokens WHERE token = ?1 ORDER BY state = 'active' DESC, created_at DESC LIMIT 1"
        ))
        .bind(token)
        .fetch_optional(&self.write)
        .await?;
        Ok(row.map_or(Consume::Unknown, Consume::Refused))
    }
}
