//! The embedded SQLite backend: WAL journal with `synchronous=FULL`, so a commit is on disk before
//! it returns. SQLite admits one writer at a time: the hot path's writes (a payment's claim and
//! approval, a token's insert, a card's registration) run whole on the write thread
//! (`write_thread.rs`), every other write goes through the group-commit connection (`group.rs`), and
//! the two take turns through one lock; either way, commits are shared by the writers that queue up
//! together. The hot path's reads run in place on the connections of `readers.rs`, the others go
//! through a small separate sqlx pool. The statements are shared with PostgreSQL (`sql.rs`).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Row};

use super::group::{GroupCommit, Writer};
use super::readers::Readers;
use super::write_thread::{Params, Unit, UnitKind, WriteThread};

use super::sql::{
    ApprovalEvents, INSTRUMENT_BY_FINGERPRINT, INSTRUMENT_BY_ID, PAR_BY_FINGERPRINT, Posted, TXN_INSERT, TXN_UPDATE,
    VAN_SERVES, is_check_violation, token_created, token_inserted,
};
use super::*;
use crate::ledger::JournalEntry;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// What both write connections (the group-commit one and the write thread's) set beyond what every
/// connection does. The writer touches index pages all over the tables: a 64 MiB page cache (SQLite's
/// default is 2 MiB) keeps them, and checkpoints every 32 MiB of WAL rather than 4 MiB keep the epoch
/// commits short. Overwritten and deleted content is zeroed, not left in free space (a scrubbed
/// answer, a deleted card's sealed PAN).
const WRITER_PRAGMAS: [(&str, &str); 3] =
    [("cache_size", "-65536"), ("wal_autocheckpoint", "8192"), ("secure_delete", "on")];

#[derive(Clone)]
pub struct SqliteStore {
    group: Arc<GroupCommit>,
    units: WriteThread,
    read: SqlitePool,
    readers: Arc<Readers>,
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
        let mut write = WRITER_PRAGMAS
            .iter()
            .fold(opts.clone(), |o, (name, value)| o.pragma(*name, *value))
            // Every write statement stays prepared.
            .statement_cache_capacity(512)
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
        let readers = Arc::new(Readers::open(path)?);
        let write_lock = Arc::new(tokio::sync::Mutex::new(()));
        let units = WriteThread::start(unit_connection(path)?, write_lock.clone())?;
        let group = GroupCommit::start(write, write_lock);
        Ok(SqliteStore { group, units, read, readers, money: None })
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
        self.units.close().await;
        self.group.close().await;
        self.read.close().await;
    }
}

/// The hot path's writes as units of work: each is a few statements that the write thread runs whole
/// (`write_thread.rs`). Each statement after the first decides from what the
/// earlier ones did (`changes()`, the rows they left), and a final `SELECT` reports the outcome.
/// (PostgreSQL's form is one statement of CTEs, `postgres.rs`; the conditions are the shared macros of
/// `sql.rs`.)
///
/// The claim of a payment's duplicate key with its one-time token's lease (see
/// [`Store::claim_holding`]). Parameters: the transaction's columns, then `$37` its key as a reversal
/// names it, `$38` the token, `$39` now, `$40` the lease's end. Reports: claimed, a reversal came
/// first, leased.
static CLAIM: UnitKind = UnitKind::new(concat!(
    txn_insert!(),
    "; UPDATE tokens SET lease_id = $1, lease_until = $40 WHERE changes() = 1 AND id = $38 AND NOT ",
    reversal_came_first!("$37"),
    " AND ",
    token_free!("$39"),
    "; SELECT EXISTS (SELECT 1 FROM transactions WHERE id = $1), ",
    reversal_came_first!("$37"),
    ", EXISTS (SELECT 1 FROM tokens WHERE id = $38 AND lease_id = $1)"
));

/// The approval of a payment with the consumption of its leased token and the events they make
/// (`token.consumed`, then the payment's) for the instrument's requestor's webhook endpoints,
/// written as `emit` (`sql.rs`) writes them — the instrument's next sequence numbers, one delivery
/// per active endpoint, nothing when the requestor has no endpoint. Nothing is written when the
/// lease is no longer held or the payment was decided meanwhile (the outcome as [`txn_approve!`]
/// writes it). Parameters: the transaction's
/// columns, then `$37` the token, `$38` the lease, `$39` now, `$40`–`$44` the events
/// ([`ApprovalEvents`]). Reports: approved.
static APPROVE: UnitKind = UnitKind::new(concat!(
    consume_leased!("$37", "$38", "$39"),
    " AND EXISTS (SELECT 1 FROM transactions WHERE ",
    txn_approvable!(),
    "); ",
    txn_approve!(),
    " AND changes() = 1; \
         UPDATE instruments SET event_seq = event_seq + 1 + ($42 IS NOT NULL) WHERE id = $19 AND changes() = 1 \
           AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.requestor_id = instruments.requestor_id \
           AND e.status = 'active'); \
         INSERT INTO events (id, requestor_id, instrument_id, sequence, type, data, created_at) \
           SELECT $40, requestor_id, id, event_seq - ($42 IS NOT NULL), 'token.consumed', $41, $39 \
           FROM instruments WHERE id = $19 AND changes() = 1 \
           UNION ALL SELECT $42, requestor_id, id, event_seq, $43, $44, $39 \
           FROM instruments WHERE id = $19 AND changes() = 1 AND $42 IS NOT NULL; \
         INSERT INTO event_deliveries (event_id, endpoint_id, state, attempts, next_at, created_at) \
           SELECT v.id, e.id, 'pending', 0, $39, $39 FROM events v JOIN webhook_endpoints e \
           ON e.requestor_id = v.requestor_id AND e.status = 'active' WHERE v.id IN ($40, $42); \
         SELECT EXISTS (SELECT 1 FROM transactions WHERE id = $1 AND status = 'approved')"
));

/// `emit` (`sql.rs`) as statements of a unit, right after the statement that wrote the instrument's
/// row or the row the event is about (`changes() = 1`): the instrument `$ins`'s next sequence number
/// and the event `$id` of type `$kind` with data `$data` at `$now`, with one delivery per active
/// endpoint, only for a requestor with an active webhook endpoint.
macro_rules! unit_event {
    ($ins:literal, $id:literal, $kind:literal, $data:literal, $now:literal) => {
        concat!(
            "UPDATE instruments SET event_seq = event_seq + 1 WHERE id = ",
            $ins,
            " AND changes() = 1 AND EXISTS (SELECT 1 FROM webhook_endpoints e \
             WHERE e.requestor_id = instruments.requestor_id AND e.status = 'active'); \
             INSERT INTO events (id, requestor_id, instrument_id, sequence, type, data, created_at) SELECT ",
            $id,
            ", requestor_id, id, event_seq, '",
            $kind,
            "', ",
            $data,
            ", ",
            $now,
            " FROM instruments WHERE id = ",
            $ins,
            " AND changes() = 1; \
             INSERT INTO event_deliveries (event_id, endpoint_id, state, attempts, next_at, created_at) \
             SELECT v.id, e.id, 'pending', 0, ",
            $now,
            ", ",
            $now,
            " FROM events v JOIN webhook_endpoints e ON e.requestor_id = v.requestor_id AND e.status = 'active' \
             WHERE v.id = ",
            $id
        )
    };
}

/// The insert of a live token (see [`token_insert!`]) with its `token.created` event. Parameters:
/// the insert's, then `$16` the event's id and `$17` its data. Reports: inserted, instrument active.
static TOKEN: UnitKind = UnitKind::new(concat!(
    token_insert!(),
    "; ",
    unit_event!("$3", "$16", "token.created", "$17", "$11"),
    "; ",
    token_insert_report!()
));

/// The insert of a card (see [`card_insert!`]) with its `instrument.created` event and, when the
/// issuer stepped the registration up, its pending verification. Parameters: the insert's, then
/// `$16` the verification's offers (NULL: none), `$17` the event's id and `$18` its data. Reports:
/// inserted, sealed under the newest data key.
static CARD: UnitKind = UnitKind::new(concat!(
    card_insert!(),
    "; ",
    unit_event!("$1", "$17", "instrument.created", "$18", "$13"),
    "; \
         INSERT INTO instrument_verifications (instrument_id, offered, created_at, updated_at) \
           SELECT $1, $16, $13, $13 WHERE $16 IS NOT NULL AND EXISTS (SELECT 1 FROM instruments WHERE id = $1); \
         SELECT EXISTS (SELECT 1 FROM instruments WHERE id = $1), $12 = (SELECT MAX(version) FROM data_keys)"
));

pub(super) struct CardUnit {
    card: InstrumentRow,
    offered: Option<String>,
    event: (String, String),
}

impl Unit for CardUnit {
    fn bind(&self, q: Params) -> Params {
        bind_card!(q, self.card).bind(&self.offered).bind(&self.event.0).bind(&self.event.1)
    }
}

pub(super) struct TokenUnit {
    token: TokenRow,
    fingerprints: [String; 2],
    event: (String, String),
}

impl Unit for TokenUnit {
    fn bind(&self, q: Params) -> Params {
        bind_token_insert!(q, self.token, self.fingerprints, self.event)
    }
}

pub(super) struct ClaimUnit {
    txn: TxnRow,
    key: String,
    token_id: String,
    now: i64,
}

impl Unit for ClaimUnit {
    fn bind(&self, q: Params) -> Params {
        bind_txn!(q, self.txn).bind(&self.key).bind(&self.token_id).bind(self.now).bind(i64::MAX)
    }
}

pub(super) struct ApproveUnit {
    txn: TxnRow,
    token_id: String,
    lease_id: String,
    now: i64,
    events: ApprovalEvents,
}

impl Unit for ApproveUnit {
    fn bind(&self, q: Params) -> Params {
        let q = bind_txn!(q, self.txn).bind(&self.token_id).bind(&self.lease_id).bind(self.now);
        bind_approval_events!(q, self.events)
    }
}

impl SqliteStore {
    pub async fn claim_holding(&self, t: &TxnRow, key: &str, token_id: &str, now: i64) -> StoreResult<ClaimHold> {
        let unit = ClaimUnit { txn: t.clone(), key: key.to_string(), token_id: token_id.to_string(), now };
        let [claimed, reversed, held] = self.units.run(&CLAIM, &unit).await?;
        if !claimed {
            // Committed by now (the claim waited for its epoch), so a reader sees it.
            let existing = self
                .transaction_by_key(&t.msg_class, &t.terminal_id, &t.stan, &t.transmitted, &t.acquirer_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt("duplicate key without a transaction".into()))?;
            return Ok(ClaimHold::Existing(Box::new(existing)));
        }
        Ok(match (reversed, held) {
            (true, _) => ClaimHold::ReversalWaiting,
            (false, true) => ClaimHold::Held,
            (false, false) => ClaimHold::TokenBusy,
        })
    }

    /// Inserts a live token unless its number is taken by another live token or is a vaulted card's
    /// number: `number_fingerprints` are the candidate number's fingerprints under the fingerprint
    /// keys in use (two while a rotation is under way).
    pub async fn insert_token(&self, t: &TokenRow, number_fingerprints: [&str; 2]) -> StoreResult<InsertToken> {
        let unit = TokenUnit {
            token: t.clone(),
            fingerprints: number_fingerprints.map(str::to_string),
            event: token_created(t),
        };
        let [inserted, active] = self.units.run(&TOKEN, &unit).await?;
        let taken = !inserted && active && self.number_live(&t.token).await?;
        Ok(token_inserted(inserted, active, taken))
    }

    /// A card's row with its `instrument.created` event and, when the issuer stepped the
    /// registration up, its pending verification: one unit on the write thread.
    pub async fn insert_card(&self, c: &InstrumentRow, offered: Option<&str>) -> StoreResult<InsertCard> {
        let event = (
            format!("evt_{}", uuid::Uuid::now_v7().simple()),
            crate::events::instrument_data(&c.id, c.status.as_str()).to_string(),
        );
        let unit = CardUnit { card: c.clone(), offered: offered.map(str::to_string), event };
        let [inserted, newest_key] = self.units.run(&CARD, &unit).await?;
        if inserted {
            return Ok(InsertCard::Inserted);
        }
        // The row it met, if any, is committed by now (the unit waited for its epoch's commit).
        let fp = c.fingerprint.as_deref().unwrap_or_default();
        match self.instrument_by_fingerprint(&c.requestor_id, fp).await? {
            Some(row) => Ok(InsertCard::Duplicate(Box::new(row))),
            None if !newest_key => Ok(InsertCard::StaleKey),
            None => Err(StoreError::Corrupt("conflict without a matching instrument".into())),
        }
    }

    pub async fn approve_with_token(&self, t: &TxnRow, token_id: &str, lease_id: &str, now: i64) -> StoreResult<bool> {
        let unit = ApproveUnit {
            txn: t.clone(),
            token_id: token_id.to_string(),
            lease_id: lease_id.to_string(),
            now,
            events: ApprovalEvents::of(t, token_id),
        };
        let [approved] = self.units.run(&APPROVE, &unit).await?;
        Ok(approved)
    }
}

impl SqliteStore {
    pub async fn instrument(&self, id: &str) -> StoreResult<Option<InstrumentRow>> {
        use rusqlite::OptionalExtension;
        self.readers.with(|c| {
            Ok(c.prepare_cached(INSTRUMENT_BY_ID)?.query_row([id], InstrumentRow::from_rusqlite).optional()?)
        })
    }

    pub async fn instrument_by_fingerprint(
        &self,
        requestor_id: &str,
        fingerprint: &str,
    ) -> StoreResult<Option<InstrumentRow>> {
        use rusqlite::OptionalExtension;
        self.readers.with(|c| {
            Ok(c.prepare_cached(INSTRUMENT_BY_FINGERPRINT)?
                .query_row([requestor_id, fingerprint], InstrumentRow::from_rusqlite)
                .optional()?)
        })
    }

    /// The PAR of an instrument with any of `fingerprints` (tried in order), if one has a PAR.
    pub async fn par_by_fingerprints(&self, fingerprints: &[String]) -> StoreResult<Option<String>> {
        use rusqlite::OptionalExtension;
        self.readers.with(|c| {
            let mut s = c.prepare_cached(PAR_BY_FINGERPRINT)?;
            for fp in fingerprints {
                if let Some(par) = s.query_row([fp], |r| r.get::<_, String>(0)).optional()? {
                    return Ok(Some(par));
                }
            }
            Ok(None)
        })
    }

    pub async fn van_serves(&self, van_id: &str, requestor_id: &str) -> StoreResult<bool> {
        self.readers.with(|c| Ok(c.prepare_cached(VAN_SERVES)?.exists([van_id, requestor_id])?))
    }

    /// The live token with this number (else the newest dead one) and its instrument, read in place
    /// (`readers.rs`): the payment's one read.
    pub async fn token_with_instrument(&self, number: &str) -> StoreResult<Option<(TokenRow, Option<InstrumentRow>)>> {
        use rusqlite::OptionalExtension;
        let found = self.readers.with(|c| {
            let token = c
                .prepare_cached(concat!("SELECT ", token_cols!(), " ", token_by_number_from!()))?
                .query_row([number], TokenRow::from_rusqlite)
                .optional()?;
            let Some(token) = token else { return Ok(None) };
            let instrument = c
                .prepare_cached(INSTRUMENT_BY_ID)?
                .query_row([&token.instrument_id], InstrumentRow::from_rusqlite)
                .optional()?;
            Ok(Some((token, instrument)))
        })?;
        found.map(|(token, instrument)| Ok((token.read_money(self.money())?, instrument))).transpose()
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

/// The write thread's connection, set up as the group-commit connection is (see `open`).
fn unit_connection(path: &Path) -> StoreResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    // What `open`'s options give every connection, then the writers' own.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")?;
    for (name, value) in WRITER_PRAGMAS {
        conn.pragma_update(None, name, value)?;
    }
    // Every unit's statements, and the epoch's, stay prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

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
