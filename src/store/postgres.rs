//! The PostgreSQL backend: several `tsp serve` nodes share one database. The statements are the
//! SQLite ones (`sql.rs`); what makes them safe across processes is in the statements themselves —
//! conditional updates (`… WHERE state = 'active'`), unique indexes, `FOR UPDATE` on a read that
//! decides a write, versioned wallet rows, CHECK constraints and the cancel-cap trigger — never an
//! in-process lock. Reads that must agree with each other run in one REPEATABLE READ snapshot.

use std::time::Duration;

use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::sql::{
    ApprovalEvents, CARD_INSERT, INSTRUMENT_BY_FINGERPRINT, INSTRUMENT_BY_ID, PAR_BY_FINGERPRINT, Posted, TXN_INSERT,
    TXN_UPDATE, VAN_SERVES, is_check_violation, token_created, token_inserted,
};
use super::*;
use crate::ledger::JournalEntry;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per node: enough for the ISO front's in-flight requests to overlap their round trips.
const MAX_CONNECTIONS: u32 = 16;

#[derive(Clone)]
pub struct PgStore {
    write: PgPool,
    read: PgPool,
    pub(super) money: Option<std::sync::Arc<crate::money::Currencies>>,
}

impl PgStore {
    /// Connects and applies the migrations (sqlx holds an advisory lock while it migrates, so nodes
    /// starting together do not race).
    pub async fn open(url: &str) -> StoreResult<Self> {
        let opts: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::Unavailable(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            // A connection broken by a database restart is found out before use and replaced.
            // (Pinging only connections idle for a second or more was 1.2x faster for detokenize
            // and registration, but let a connection broken under load answer a request after the
            // database came back: tests/pg_restart.rs failed once in two CI runs.)
            .test_before_acquire(true)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(PgStore { write: pool.clone(), read: pool, money: None })
    }

    pub async fn migrations(&self) -> StoreResult<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.read).await?;
        Ok(v.unwrap_or(0))
    }

    pub fn sample_pools(&self) {
        crate::metrics::get().pool("postgres", self.read.size(), self.read.num_idle());
    }

    pub async fn health(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
    }

    /// Writes a batch of chained audit rows in one statement (autocommit: durable when it returns)
    /// and returns each row's (`seq`, `link`); `seq` comes from the table's sequence, in link order.
    pub async fn insert_audit_rows(&self, rows: &[NewAuditRow]) -> StoreResult<Vec<(i64, i64)>> {
        let col = |f: fn(&NewAuditRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
        let chains = col(|r| r.chain.clone());
        let links: Vec<i64> = rows.iter().map(|r| r.link).collect();
        let ats: Vec<i64> = rows.iter().map(|r| r.at).collect();
        let subjects: Vec<Option<String>> = rows.iter().map(|r| r.subject.clone()).collect();
        Ok(sqlx::query_as(
            "INSERT INTO audit_log (chain, link, at, actor, action, subject, outcome, detail, prev_hash, hash) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::text[], $10::text[]) AS r(chain, link, at, actor, action, subject, outcome, detail, \
             prev_hash, hash) ORDER BY link RETURNING seq, link",
        )
        .bind(chains)
        .bind(links)
        .bind(ats)
        .bind(col(|r| r.actor.clone()))
        .bind(col(|r| r.action.clone()))
        .bind(subjects)
        .bind(col(|r| r.outcome.clone()))
        .bind(col(|r| r.detail.clone()))
        .bind(col(|r| r.prev_hash.clone()))
        .bind(col(|r| r.hash.clone()))
        .fetch_all(&self.write)
        .await?)
    }

    /// A connection for one write of at most one writing statement (autocommit: PostgreSQL shares
    /// fsyncs between concurrent commits itself).
    async fn writer(&self) -> StoreResult<PgWriter> {
        Ok(PgWriter::Plain(self.write.acquire().await?))
    }

    /// A connection for a write of several statements, in one transaction.
    async fn atomic_writer(&self) -> StoreResult<PgWriter> {
        Ok(PgWriter::Atomic(self.write.begin().await?))
    }
}

/// One write's connection: [`PgWriter::done`] commits an atomic one, [`PgWriter::abort`] or dropping
/// it rolls it back. (The same shape as SQLite's group-commit writer, so `sql.rs` serves both.)
pub enum PgWriter {
    Plain(PoolConnection<Postgres>),
    Atomic(Transaction<'static, Postgres>),
}

impl PgWriter {
    pub fn conn(&mut self) -> &mut PgConnection {
        match self {
            PgWriter::Plain(c) => c,
            PgWriter::Atomic(t) => t,
        }
    }

    pub async fn done(self) -> StoreResult<()> {
        match self {
            PgWriter::Plain(_) => Ok(()),
            PgWriter::Atomic(t) => Ok(t.commit().await?),
        }
    }

    pub async fn abort(self) -> StoreResult<()> {
        match self {
            PgWriter::Plain(_) => Ok(()),
            PgWriter::Atomic(t) => Ok(t.rollback().await?),
        }
    }
}

impl PgStore {
    /// A card's row with its `instrument.created` event and, when the issuer stepped the
    /// registration up, its pending verification, in one transaction.
    pub async fn insert_card(&self, c: &InstrumentRow, offered: Option<&str>) -> StoreResult<InsertCard> {
        let mut w = self.atomic_writer().await?;
        let r = bind_card!(sqlx::query(CARD_INSERT), c).execute(w.conn()).await?;
        if r.rows_affected() == 1 {
            if let Some(offered) = offered {
                sqlx::query(
                    "INSERT INTO instrument_verifications (instrument_id, offered, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3)",
                )
                .bind(&c.id)
                .bind(offered)
                .bind(c.created_at)
                .execute(w.conn())
                .await?;
            }
            let data = crate::events::instrument_data(&c.id, c.status.as_str());
            emit(w.conn(), &EventDraft { instrument_id: &c.id, kind: "instrument.created", data, now: c.created_at })
                .await?;
            w.done().await?;
            return Ok(InsertCard::Inserted);
        }
        // (No error to catch: on PostgreSQL a failed statement would end the transaction.)
        // Read in the writer's transaction, which met the row that beat it.
        let fp = c.fingerprint.as_deref().unwrap_or_default();
        let existing = sqlx::query_as::<_, InstrumentRow>(INSTRUMENT_BY_FINGERPRINT)
            .bind(&c.requestor_id)
            .bind(fp)
            .fetch_optional(w.conn())
            .await?;
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM data_keys").fetch_one(w.conn()).await?;
        w.abort().await?;
        match existing {
            Some(row) => Ok(InsertCard::Duplicate(Box::new(row))),
            None if newest != c.dek_version => Ok(InsertCard::StaleKey),
            None => Err(StoreError::Corrupt("conflict without a matching instrument".into())),
        }
    }

    pub async fn instrument(&self, id: &str) -> StoreResult<Option<InstrumentRow>> {
        Ok(sqlx::query_as(INSTRUMENT_BY_ID).bind(id).fetch_optional(&self.read).await?)
    }

    pub async fn instrument_by_fingerprint(
        &self,
        requestor_id: &str,
        fingerprint: &str,
    ) -> StoreResult<Option<InstrumentRow>> {
        Ok(sqlx::query_as(INSTRUMENT_BY_FINGERPRINT)
            .bind(requestor_id)
            .bind(fingerprint)
            .fetch_optional(&self.read)
            .await?)
    }

    /// The PAR of an instrument with any of `fingerprints` (tried in order), if one has a PAR.
    pub async fn par_by_fingerprints(&self, fingerprints: &[String]) -> StoreResult<Option<String>> {
        for fp in fingerprints {
            let par: Option<String> =
                sqlx::query_scalar(PAR_BY_FINGERPRINT).bind(fp).fetch_optional(&self.read).await?;
            if par.is_some() {
                return Ok(par);
            }
        }
        Ok(None)
    }

    pub async fn van_serves(&self, van_id: &str, requestor_id: &str) -> StoreResult<bool> {
        let found = sqlx::query(VAN_SERVES).bind(van_id).bind(requestor_id).fetch_optional(&self.read).await?;
        Ok(found.is_some())
    }

    /// The live token with this number (else the newest dead one) and its instrument, in one
    /// round trip: the instrument's columns come prefixed `i_` beside the token's.
    pub async fn token_with_instrument(&self, number: &str) -> StoreResult<Option<(TokenRow, Option<InstrumentRow>)>> {
        use sqlx::FromRow;
        let row = sqlx::query(concat!(
            "SELECT t.*, i.id AS i_id, i.requestor_id AS i_requestor_id, i.kind AS i_kind, i.status AS i_status, \
             i.issuer_id AS i_issuer_id, i.bin AS i_bin, i.last4 AS i_last4, i.pan_len AS i_pan_len, \
             i.expiry AS i_expiry, i.par AS i_par, i.fingerprint AS i_fingerprint, i.fp_version AS i_fp_version, \
             i.pan_sealed AS i_pan_sealed, i.dek_version AS i_dek_version, i.assurance AS i_assurance, \
             i.created_at AS i_created_at, i.updated_at AS i_updated_at \
             FROM (SELECT ",
            token_cols!(),
            " ",
            token_by_number_from!(),
            ") t \
             LEFT JOIN instruments i ON i.id = t.instrument_id"
        ))
        .bind(number)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = TokenRow::<i64>::from_row(&row)?.read_money(self.money())?;
        let Some(id) = row.try_get::<Option<String>, _>("i_id")? else { return Ok(Some((token, None))) };
        let instrument = InstrumentRow {
            id,
            requestor_id: row.try_get("i_requestor_id")?,
            kind: row.try_get("i_kind")?,
            status: row.try_get("i_status")?,
            issuer_id: row.try_get("i_issuer_id")?,
            bin: row.try_get("i_bin")?,
            last4: row.try_get("i_last4")?,
            pan_len: row.try_get("i_pan_len")?,
            expiry: row.try_get("i_expiry")?,
            par: row.try_get("i_par")?,
            fingerprint: row.try_get("i_fingerprint")?,
            fp_version: row.try_get("i_fp_version")?,
            pan_sealed: row.try_get("i_pan_sealed")?,
            dek_version: row.try_get("i_dek_version")?,
            assurance: row.try_get("i_assurance")?,
            created_at: row.try_get("i_created_at")?,
            updated_at: row.try_get("i_updated_at")?,
        };
        Ok(Some((token, Some(instrument))))
    }
}

/// The hot path's writes, each one round trip: PostgreSQL runs a statement's data-modifying CTEs as
/// one atomic statement (SQLite's form is a script of statements on the writer's thread, `sqlite.rs`).
impl PgStore {
    /// Claims a payment's duplicate key and leases its one-time token in one statement (see
    /// [`Store::claim_holding`]): the pending row is inserted, and the token leased only when the row
    /// is new and no reversal of it came first.
    pub async fn claim_holding(&self, t: &TxnRow, key: &str, token_id: &str, now: i64) -> StoreResult<ClaimHold> {
        let mut w = self.writer().await?;
        let (claimed, reversed, held): (bool, bool, bool) = bind_txn!(
            sqlx::query_as(concat!(
                "WITH claimed AS (",
                txn_insert!(),
                " RETURNING id), reversed AS (SELECT ",
                reversal_came_first!("$37"),
                " AS yes), held AS (UPDATE tokens SET lease_id = $1, lease_until = $40 WHERE id = $38 \
                 AND EXISTS (SELECT 1 FROM claimed) AND NOT (SELECT yes FROM reversed) AND ",
                token_free!("$39"),
                " RETURNING id) \
                 SELECT EXISTS (SELECT 1 FROM claimed), (SELECT yes FROM reversed), EXISTS (SELECT 1 FROM held)"
            )),
            t
        )
        .bind(key)
        .bind(token_id)
        .bind(now)
        .bind(i64::MAX)
        .fetch_one(w.conn())
        .await?;
        if !claimed {
            return Ok(ClaimHold::Existing(self.holder_of_key(w.conn(), t).await?));
        }
        Ok(match (reversed, held) {
            (true, _) => ClaimHold::ReversalWaiting,
            (false, true) => ClaimHold::Held,
            (false, false) => ClaimHold::TokenBusy,
        })
    }

    /// Inserts a live token unless its number is taken by another live token or is a vaulted card's
    /// number (see [`token_insert!`]), with its `token.created` event written as `emit` (`sql.rs`)
    /// writes it, in one statement.
    pub async fn insert_token(&self, t: &TokenRow, number_fingerprints: [&str; 2]) -> StoreResult<InsertToken> {
        let event = token_created(t);
        let mut w = self.writer().await?;
        let (inserted, active): (bool, bool) = bind_token_insert!(
            sqlx::query_as(concat!(
                "WITH ins AS (",
                token_insert!(),
                " RETURNING id), \
                 seq AS (UPDATE instruments SET event_seq = event_seq + 1 WHERE id = $3 AND EXISTS (SELECT 1 FROM ins) \
                   AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.requestor_id = instruments.requestor_id \
                   AND e.status = 'active') RETURNING requestor_id, event_seq), \
                 ev AS (INSERT INTO events (id, requestor_id, instrument_id, sequence, type, data, created_at) \
                   SELECT $16, requestor_id, $3, event_seq, 'token.created', $17, $11 FROM seq RETURNING id, requestor_id), \
                 deliveries AS (INSERT INTO event_deliveries (event_id, endpoint_id, state, attempts, next_at, created_at) \
                   SELECT ev.id, e.id, 'pending', 0, $11, $11 FROM ev JOIN webhook_endpoints e \
                   ON e.requestor_id = ev.requestor_id AND e.status = 'active') \
                 SELECT EXISTS (SELECT 1 FROM ins), \
                   EXISTS (SELECT 1 FROM instruments WHERE id = $3 AND status = 'active')"
            )),
            t,
            number_fingerprints,
            event
        )
        .fetch_one(w.conn())
        .await?;
        w.done().await?;
        let taken = !inserted && active && self.number_live(&t.token).await?;
        Ok(token_inserted(inserted, active, taken))
    }

    /// Consumes the leased token and records the approval, with the events they make, in one
    /// statement: the token's row is locked while its lease is checked, the approval is written only
    /// while the payment is pending, and the token consumed only with it; false (nothing written)
    /// otherwise. Parameters: the transaction's columns, then `$37` the token, `$38` the lease, `$39`
    /// now, `$40`–`$44` the events ([`ApprovalEvents`]), written as `emit` (`sql.rs`) writes them.
    pub async fn approve_with_token(&self, t: &TxnRow, token_id: &str, lease_id: &str, now: i64) -> StoreResult<bool> {
        let events = ApprovalEvents::of(t, token_id);
        let mut w = self.writer().await?;
        let q = bind_txn!(
            sqlx::query_scalar(concat!(
                "WITH lease AS (SELECT id FROM tokens WHERE id = $37 AND lease_id = $38 AND state = 'active' FOR UPDATE), \
                 approved AS (",
                txn_approve!(),
                " AND EXISTS (SELECT 1 FROM lease) RETURNING id), \
                 consumed AS (UPDATE tokens SET state = 'consumed', consumed_at = $39, lease_id = NULL, lease_until = NULL \
                   WHERE id IN (SELECT id FROM lease) AND EXISTS (SELECT 1 FROM approved) RETURNING id), \
                 seq AS (UPDATE instruments SET event_seq = event_seq + 1 + ($42::text IS NOT NULL)::int \
                   WHERE id = $19 AND EXISTS (SELECT 1 FROM consumed) AND EXISTS (SELECT 1 FROM webhook_endpoints e \
                   WHERE e.requestor_id = instruments.requestor_id AND e.status = 'active') RETURNING requestor_id, event_seq), \
                 ev AS (INSERT INTO events (id, requestor_id, instrument_id, sequence, type, data, created_at) \
                   SELECT $40, requestor_id, $19, event_seq - ($42::text IS NOT NULL)::int, 'token.consumed', $41, $39 FROM seq \
                   UNION ALL SELECT $42, requestor_id, $19, event_seq, $43, $44, $39 FROM seq WHERE $42::text IS NOT NULL \
                   RETURNING id, requestor_id), \
                 deliveries AS (INSERT INTO event_deliveries (event_id, endpoint_id, state, attempts, next_at, created_at) \
                   SELECT ev.id, e.id, 'pending', 0, $39, $39 FROM ev JOIN webhook_endpoints e \
                   ON e.requestor_id = ev.requestor_id AND e.status = 'active') \
                 SELECT EXISTS (SELECT 1 FROM consumed)"
            )),
            t
        )
        .bind(token_id)
        .bind(lease_id)
        .bind(now);
        let approved: bool = bind_approval_events!(q, events).fetch_one(w.conn()).await?;
        w.done().await?;
        Ok(approved)
    }
}

sql_store!(
    PgStore,
    sqlx::PgConnection,
    for_update = " FOR UPDATE",
    snapshot = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    seed_indexes = "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
                    AND tablename IN ('instruments', 'tokens') \
                    AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname"
);
