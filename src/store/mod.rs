//! Storage. The rest of the service talks to [`Store`], whose methods are the few atomic steps the
//! flows need ("insert this card unless the requestor has it", "consume this token if it is still
//! live"), each one database transaction. Invariants live in the database: unique live token
//! numbers, conditional state changes. This module knows no flows and no HTTP.
//!
//! Backends: SQLite (embedded, the default) and PostgreSQL (several nodes on one database). Both run
//! the same statements (`sql.rs`); each has its own migrations.

mod records;
#[macro_use]
mod sql;
mod group;
mod postgres;
mod readers;
mod sqlite;
mod write_thread;

pub use records::*;

use crate::money::{Amount, Currencies};
use std::sync::Arc;

use std::path::Path;

/// Storage failures. Their text never contains stored values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// Writers kept racing for the same row; the caller may try again later.
    #[error("database busy: too many conflicting writes")]
    Busy,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Unavailable(e.to_string())
            }
            // As with sqlx: SQLite's messages name constraints and columns, never bound values.
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            // A database error's message names constraints and columns, never bound values.
            other => StoreError::Database(other.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// The service's storage; cheap to clone. (Clones share one audit appender: one chain per process.)
#[derive(Clone)]
pub struct Store(Backend, Arc<audit_log::Appender>);

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.0 {
            Backend::Sqlite($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

mod audit_log;

impl Backend {
    async fn audit_last(&self) -> StoreResult<Option<(i64, String)>> {
        match self {
            Backend::Sqlite(s) => s.audit_last().await,
            Backend::Postgres(s) => s.audit_last().await,
        }
    }

    async fn audit_heads_since(&self, after: i64, own: &str) -> StoreResult<Vec<AuditHead>> {
        match self {
            Backend::Sqlite(s) => s.audit_heads_since(after, own).await,
            Backend::Postgres(s) => s.audit_heads_since(after, own).await,
        }
    }

    async fn insert_audit_rows(&self, rows: &[NewAuditRow]) -> StoreResult<Vec<(i64, i64)>> {
        match self {
            Backend::Sqlite(s) => s.insert_audit_rows(rows).await,
            Backend::Postgres(s) => s.insert_audit_rows(rows).await,
        }
    }
}

impl Store {
    fn new(backend: Backend) -> Store {
        Store(backend, Arc::default())
    }

    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> StoreResult<Store> {
        Ok(Store::new(Backend::Sqlite(sqlite::SqliteStore::open(path).await?)))
    }

    /// Opens the database a URL names (`postgres://…`, `postgresql://…` or `sqlite://path`) and
    /// applies its migrations. The error never echoes the URL (it may hold a password).
    pub async fn open_url(url: &str) -> StoreResult<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Store::new(Backend::Postgres(postgres::PgStore::open(url).await?)));
        }
        match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Some(path) => Self::open_sqlite(Path::new(path)).await,
            None => Err(StoreError::Unavailable(format!(
                "unsupported database URL scheme (expected postgres:// or sqlite://): {}",
                url.split(':').next().unwrap_or("")
            ))),
        }
    }

    /// The store, reading amounts back with `currencies` (the configuration's): each row's stored
    /// minor units at the scale of the row's own currency (see `crate::money`). A store without them
    /// reads no row that holds money (the `tsp migrate`/`audit` commands need none).
    pub fn with_currencies(self, currencies: Currencies) -> Store {
        let money = Some(Arc::new(currencies));
        match self.0 {
            Backend::Sqlite(mut s) => {
                s.money = money;
                Store(Backend::Sqlite(s), self.1)
            }
            Backend::Postgres(mut s) => {
                s.money = money;
                Store(Backend::Postgres(s), self.1)
            }
        }
    }

    /// Which backend this is (`sqlite`, `postgres`), for logs and health.
    pub fn backend(&self) -> &'static str {
        match &self.0 {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The highest migration version applied.
    pub async fn migrations(&self) -> StoreResult<i64> {
        dispatch!(self, s => s.migrations().await)
    }

    pub async fn health(&self) -> StoreResult<()> {
        dispatch!(self, s => s.health().await)
    }

    /// Puts the connection pools' sizes into the metrics.
    pub fn sample_pools(&self) {
        dispatch!(self, s => s.sample_pools())
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    // Requestors and keys.

    pub async fn insert_requestor(&self, r: &RequestorRow, key: &ApiKeyRow) -> StoreResult<()> {
        dispatch!(self, s => s.insert_requestor(r, key).await)
    }

    /// A requestor by id.
    pub async fn requestor(&self, id: &str) -> StoreResult<Option<RequestorRow>> {
        dispatch!(self, s => s.requestor(id).await)
    }

    pub async fn find_api_key(&self, key_id: &str) -> StoreResult<Option<(ApiKeyRow, RequestorRow)>> {
        dispatch!(self, s => s.find_api_key(key_id).await)
    }

    /// Ends an API key now (see [`KeyChange`]); a key in a rotation's overlap ends now too.
    pub async fn revoke_api_key(&self, key_id: &str, now: i64) -> StoreResult<KeyChange> {
        dispatch!(self, s => s.revoke_api_key(key_id, now).await)
    }

    /// Replaces a live API key by a new one of the same requestor, together: the old key works until
    /// `old_ends_at`. A key that is revoked or already rotated is left alone.
    pub async fn rotate_api_key(
        &self,
        key_id: &str,
        new_key_id: &str,
        secret_hash: &[u8],
        old_ends_at: i64,
        now: i64,
    ) -> StoreResult<KeyChange> {
        dispatch!(self, s => s.rotate_api_key(key_id, new_key_id, secret_hash, old_ends_at, now).await)
    }

    // The payShield backend's key table (keys under the HSM's LMK).

    /// Every version of the key `label`, oldest first.
    pub async fn hsm_keys(&self, label: &str) -> StoreResult<Vec<HsmKeyRow>> {
        dispatch!(self, s => s.hsm_keys(label).await)
    }

    /// Inserts a key version unless that label and version exist (another node won); true if inserted.
    pub async fn insert_hsm_key(&self, k: &HsmKeyRow) -> StoreResult<bool> {
        dispatch!(self, s => s.insert_hsm_key(k).await)
    }

    /// Deletes a key version unless it is the label's newest; true if deleted.
    pub async fn delete_hsm_key(&self, label: &str, version: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.delete_hsm_key(label, version).await)
    }

    // Data keys.

    pub async fn data_keys(&self) -> StoreResult<Vec<DataKeyRow>> {
        dispatch!(self, s => s.data_keys().await)
    }

    /// Inserts a data key version unless that version exists (another node won); true if inserted.
    pub async fn insert_data_key(&self, k: &DataKeyRow) -> StoreResult<bool> {
        dispatch!(self, s => s.insert_data_key(k).await)
    }

    /// Sealed cards under a data key older than `newest`, `limit` at a time in id order after `after`.
    pub async fn cards_sealed_before(&self, newest: i64, after: &str, limit: i64) -> StoreResult<Vec<SealedCard>> {
        dispatch!(self, s => s.cards_sealed_before(newest, after, limit).await)
    }

    /// Moves cards onto newer keys in one write; a card deleted or re-keyed meanwhile is skipped.
    pub async fn rekey_cards(&self, cards: &[Rekeyed]) -> StoreResult<u64> {
        dispatch!(self, s => s.rekey_cards(cards).await)
    }

    /// Sealed cards per key version.
    pub async fn key_usage(&self) -> StoreResult<Vec<KeyUsage>> {
        dispatch!(self, s => s.key_usage().await)
    }

    /// Deletes data key `version` if it is not the newest and no card is sealed under it.
    pub async fn destroy_data_key(&self, version: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.destroy_data_key(version).await)
    }

    // Instruments.

    /// Inserts a card unless the requestor has it already, or it is sealed under a data key that is no
    /// longer the newest ([`InsertCard::StaleKey`]). A card pending step-up gets its verification
    /// row with the issuer's `offered` ways (JSON) in the same transaction.
    pub async fn insert_card(&self, c: &InstrumentRow, offered: Option<&str>) -> StoreResult<InsertCard> {
        dispatch!(self, s => s.insert_card(c, offered).await)
    }

    // Step-up verification (`sql/verifications.rs`).

    /// The pending verification of instrument `id`.
    pub async fn verification(&self, id: &str) -> StoreResult<Option<VerificationRow>> {
        dispatch!(self, s => s.verification(id).await)
    }

    /// Records a sent code (replacing the one before) if the instrument is still pending and fewer
    /// than `max_codes` were sent. False when not.
    pub async fn record_code(&self, code: &NewCode<'_>, max_codes: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.record_code(code, max_codes).await)
    }

    /// The code with MAC `code_mac` was entered: if it is still the current one, unexpired, and
    /// attempts are left, the instrument becomes active with `assurance` and the verification ends,
    /// in one transaction. The instrument as it now is; None when the conditions no longer held.
    pub async fn pass_verification(
        &self,
        id: &str,
        code_mac: &[u8],
        assurance: crate::instruments::assurance::Assurance,
        max_attempts: i64,
        now: i64,
    ) -> StoreResult<Option<InstrumentRow>> {
        dispatch!(self, s => s.pass_verification(id, code_mac, assurance, max_attempts, now).await)
    }

    /// A wrong code was entered: counts it, and the one that reaches `max_attempts` deletes the
    /// instrument in the same transaction. The failed attempts now; None when nothing is pending.
    pub async fn fail_verification(&self, id: &str, max_attempts: i64, now: i64) -> StoreResult<Option<i64>> {
        dispatch!(self, s => s.fail_verification(id, max_attempts, now).await)
    }

    pub async fn instrument(&self, id: &str) -> StoreResult<Option<InstrumentRow>> {
        dispatch!(self, s => s.instrument(id).await)
    }

    /// The requestor's non-deleted instrument with this fingerprint.
    pub async fn instrument_by_fingerprint(
        &self,
        requestor_id: &str,
        fingerprint: &str,
    ) -> StoreResult<Option<InstrumentRow>> {
        dispatch!(self, s => s.instrument_by_fingerprint(requestor_id, fingerprint).await)
    }

    pub async fn instruments_of(&self, requestor_id: &str, include_deleted: bool) -> StoreResult<Vec<InstrumentRow>> {
        dispatch!(self, s => s.instruments_of(requestor_id, include_deleted).await)
    }

    pub async fn update_card_expiry(&self, id: &str, expiry: &str, now: i64) -> StoreResult<()> {
        dispatch!(self, s => s.update_card_expiry(id, expiry, now).await)
    }

    /// Moves the instrument from one of `from` to `to`, in one transaction with revoking its live
    /// tokens when `to` is not `active`. None when it was in none of `from`.
    pub async fn set_instrument_status(
        &self,
        id: &str,
        from: &[InstrumentStatus],
        to: InstrumentStatus,
        now: i64,
    ) -> StoreResult<Option<InstrumentRow>> {
        dispatch!(self, s => s.set_instrument_status(id, from, to, now).await)
    }

    // Tokens.

    /// The live merchant token of a card at a merchant (terminal tokenization).
    pub async fn merchant_token(&self, instrument_id: &str, merchant_id: &str) -> StoreResult<Option<TokenRow>> {
        dispatch!(self, s => s.merchant_token(instrument_id, merchant_id).await)
    }

    /// Ends a live token: expired if its TTL has passed, else revoked when `revoke`. True if it was live.
    pub async fn end_token(&self, id: &str, revoke: bool, now: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.end_token(id, revoke, now).await)
    }

    /// Suspends (`suspend`) or resumes a live, unexpired token. The row as it now is, or None when
    /// it was not in the state the change starts from (the caller reads why).
    pub async fn suspend_token(&self, id: &str, suspend: bool, now: i64) -> StoreResult<Option<TokenRow>> {
        dispatch!(self, s => s.suspend_token(id, suspend, now).await)
    }

    /// The PAR of a card registered under one of `fingerprints`, if any.
    pub async fn par_by_fingerprints(&self, fingerprints: &[String]) -> StoreResult<Option<String>> {
        dispatch!(self, s => s.par_by_fingerprints(fingerprints).await)
    }

    /// Live card instruments of a PAR, of every requestor.
    pub async fn cards_by_par(&self, par: &str) -> StoreResult<Vec<InstrumentRow>> {
        dispatch!(self, s => s.cards_by_par(par).await)
    }

    /// Writes a reissued card's new facts (same id and PAR) with its event.
    pub async fn reissue_card(&self, c: &InstrumentRow, now: i64) -> StoreResult<InsertCard> {
        dispatch!(self, s => s.reissue_card(c, now).await)
    }

    // Webhooks (`sql/events.rs`).

    pub async fn insert_endpoint(&self, e: &EndpointRow) -> StoreResult<()> {
        dispatch!(self, s => s.insert_endpoint(e).await)
    }

    pub async fn endpoint(&self, id: &str) -> StoreResult<Option<EndpointRow>> {
        dispatch!(self, s => s.endpoint(id).await)
    }

    pub async fn endpoints_of(&self, requestor_id: &str) -> StoreResult<Vec<EndpointRow>> {
        dispatch!(self, s => s.endpoints_of(requestor_id).await)
    }

    /// Disables an endpoint; true if it was active.
    pub async fn disable_endpoint(&self, id: &str, now: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.disable_endpoint(id, now).await)
    }

    /// A requestor's events oldest first, after event `after`, optionally of one instrument.
    pub async fn events_of(
        &self,
        requestor_id: &str,
        instrument_id: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        dispatch!(self, s => s.events_of(requestor_id, instrument_id, after, limit).await)
    }

    pub async fn event(&self, id: &str) -> StoreResult<Option<EventRow>> {
        dispatch!(self, s => s.event(id).await)
    }

    pub async fn deliveries_of(&self, event_id: &str) -> StoreResult<Vec<DeliveryRow>> {
        dispatch!(self, s => s.deliveries_of(event_id).await)
    }

    /// Queues an event again for its requestor's active endpoints; how many deliveries.
    pub async fn replay_event(&self, e: &EventRow, now: i64) -> StoreResult<u64> {
        dispatch!(self, s => s.replay_event(e, now).await)
    }

    /// Claims due deliveries, each endpoint's oldest only, for `owner` until `lease_until`.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<(DeliveryRow, EventRow, EndpointRow)>> {
        dispatch!(self, s => s.claim_deliveries(owner, now, lease_until, limit).await)
    }

    /// Records one try of a delivery `owner` holds; false if its lease was lost.
    pub async fn delivery_tried(
        &self,
        owner: &str,
        event_id: &str,
        endpoint_id: &str,
        outcome: &DeliveryOutcome,
        now: i64,
    ) -> StoreResult<bool> {
        dispatch!(self, s => s.delivery_tried(owner, event_id, endpoint_id, outcome, now).await)
    }

    /// Ends live tokens past their TTL with their events; how many.
    pub async fn expire_due_tokens(&self, now: i64, limit: i64) -> StoreResult<u64> {
        dispatch!(self, s => s.expire_due_tokens(now, limit).await)
    }

    /// Whether any instrument (of any requestor, in any state) has the PAR `par`.
    pub async fn par_known(&self, par: &str) -> StoreResult<bool> {
        dispatch!(self, s => s.par_known(par).await)
    }

    /// The tokens of every instrument with the Payment Account Reference `par`, newest first: the
    /// live ones (active or suspended) only unless `all`; at most `limit`.
    pub async fn tokens_by_par(&self, par: &str, all: bool, limit: i64) -> StoreResult<Vec<TokenRow>> {
        dispatch!(self, s => s.tokens_by_par(par, all, limit).await)
    }

    /// Binds merchants to a terminal requestor, all or none; returns those another requestor holds.
    pub async fn bind_merchants(&self, requestor_id: &str, merchants: &[String], now: i64) -> StoreResult<Vec<String>> {
        dispatch!(self, s => s.bind_merchants(requestor_id, merchants, now).await)
    }

    /// Lets VAN `van_id` detokenize the tokens of `requestors`.
    pub async fn serve_requestors(&self, van_id: &str, requestors: &[String], now: i64) -> StoreResult<()> {
        dispatch!(self, s => s.serve_requestors(van_id, requestors, now).await)
    }

    /// Whether VAN `van_id` serves requestor `requestor_id`.
    pub async fn van_serves(&self, van_id: &str, requestor_id: &str) -> StoreResult<bool> {
        dispatch!(self, s => s.van_serves(van_id, requestor_id).await)
    }

    /// The terminal requestor a merchant belongs to.
    pub async fn merchant_owner(&self, merchant_id: &str) -> StoreResult<Option<String>> {
        dispatch!(self, s => s.merchant_owner(merchant_id).await)
    }

    /// Registers a terminal or changes its merchant and VAN; true when it is new.
    pub async fn upsert_terminal(&self, t: &TerminalRow) -> StoreResult<bool> {
        dispatch!(self, s => s.upsert_terminal(t).await)
    }

    pub async fn terminal(&self, id: &str) -> StoreResult<Option<TerminalRow>> {
        dispatch!(self, s => s.terminal(id).await)
    }

    /// Every registered terminal, or a merchant's.
    pub async fn terminals(&self, merchant: Option<&str>) -> StoreResult<Vec<TerminalRow>> {
        dispatch!(self, s => s.terminals(merchant).await)
    }

    /// Suspends or resumes a terminal; false when there is none with this id.
    pub async fn set_terminal_status(&self, id: &str, status: TerminalStatus, now: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.set_terminal_status(id, status, now).await)
    }

    /// Every version of a link's key of `kind` (`tak`, `zmk`), newest first.
    pub async fn link_keys(&self, link: &str, kind: &str) -> StoreResult<Vec<LinkKeyRow>> {
        dispatch!(self, s => s.link_keys(link, kind).await)
    }

    /// Adds a new current version of a link's key (see `sql/terminals.rs`).
    #[allow(clippy::too_many_arguments)]
    pub async fn add_link_key(
        &self,
        link: &str,
        kind: &str,
        key_block: &str,
        kcv: &str,
        now: i64,
        retire_at: i64,
        first_only: bool,
    ) -> StoreResult<Option<i64>> {
        dispatch!(self, s => s.add_link_key(link, kind, key_block, kcv, now, retire_at, first_only).await)
    }

    /// Removes a terminal from the registry; false when there was none.
    pub async fn delete_terminal(&self, id: &str) -> StoreResult<bool> {
        dispatch!(self, s => s.delete_terminal(id).await)
    }

    /// Appends an audit row to this process's chain (see `crate::audit`); its `seq` once durable.
    pub async fn append_audit(&self, row: AuditDraft) -> StoreResult<i64> {
        self.1.append(&self.0, row).await
    }

    /// Hands the audit rows to `visit` in `seq` order, in one snapshot (see the backends).
    pub async fn audit_scan(&self, links: bool, visit: &mut dyn FnMut(AuditPass, AuditRow) -> bool) -> StoreResult<()> {
        dispatch!(self, s => s.audit_scan(links, visit).await)
    }

    /// `tsp seed`'s bulk load of cards and tokens, in one transaction (see the backends).
    pub async fn bulk_seed(
        &self,
        batches: tokio::sync::mpsc::Receiver<(Vec<InstrumentRow>, Vec<TokenRow>)>,
        redraw: &(dyn Fn() -> Option<String> + Sync),
    ) -> StoreResult<(u64, u64)> {
        dispatch!(self, s => s.bulk_seed(batches, redraw).await)
    }

    /// Inserts a live token if its instrument is active, no live token has the same number, and the
    /// number is not a registered PAN (`number_fingerprint` is its fingerprint).
    pub async fn insert_token(&self, t: &TokenRow, number_fingerprints: [&str; 2]) -> StoreResult<InsertToken> {
        dispatch!(self, s => s.insert_token(t, number_fingerprints).await)
    }

    /// Marks a live token whose TTL has passed as expired, freeing its number; true if one was.
    pub async fn expire_token_number(&self, token: &str, now: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.expire_token_number(token, now).await)
    }

    /// The live token with this number, else the newest dead one.
    pub async fn token_by_number(&self, token: &str) -> StoreResult<Option<TokenRow>> {
        dispatch!(self, s => s.token_by_number(token).await)
    }

    /// The live token with this number, else the newest dead one, with its instrument (`None` when
    /// the instrument is gone).
    pub async fn token_with_instrument(&self, number: &str) -> StoreResult<Option<(TokenRow, Option<InstrumentRow>)>> {
        dispatch!(self, s => s.token_with_instrument(number).await)
    }

    pub async fn token(&self, id: &str) -> StoreResult<Option<TokenRow>> {
        dispatch!(self, s => s.token(id).await)
    }

    /// Atomically consumes the live token with this number: at most one caller ever gets
    /// [`Consume::Consumed`] for a token, however many race.
    pub async fn consume_token(&self, token: &str, now: i64) -> StoreResult<Consume> {
        dispatch!(self, s => s.consume_token(token, now).await)
    }

    // Payments.

    /// Records a new request under its duplicate key, or finds the request that holds the key.
    pub async fn claim_transaction(&self, t: &TxnRow) -> StoreResult<Claim> {
        dispatch!(self, s => s.claim_transaction(t).await)
    }

    /// [`Store::claim_transaction`] and, in the same write, the lease of token `lease` to it (what
    /// [`Store::hold_for_issuer`] does for a claimed one): a card payment's first durable write.
    /// `key` is the payment's own key as a reversal names it: a reversal that came first leaves the
    /// token alone.
    pub async fn claim_holding(&self, t: &TxnRow, key: &str, lease: &str, now: i64) -> StoreResult<ClaimHold> {
        dispatch!(self, s => s.claim_holding(t, key, lease, now).await)
    }

    /// Writes a transaction's mutable columns.
    pub async fn update_transaction(&self, t: &TxnRow) -> StoreResult<()> {
        dispatch!(self, s => s.update_transaction(t).await)
    }

    pub async fn transaction(&self, id: &str) -> StoreResult<Option<TxnRow>> {
        dispatch!(self, s => s.transaction(id).await)
    }

    pub async fn transaction_by_key(
        &self,
        class: &str,
        terminal: &str,
        stan: &str,
        transmitted: &str,
        acquirer: &str,
    ) -> StoreResult<Option<TxnRow>> {
        dispatch!(self, s => s.transaction_by_key(class, terminal, stan, transmitted, acquirer).await)
    }

    pub async fn reversal_waiting_for(&self, original_key: &str) -> StoreResult<Option<TxnRow>> {
        dispatch!(self, s => s.reversal_waiting_for(original_key).await)
    }

    /// The newest transactions, of one instrument or of all.
    pub async fn transactions(&self, instrument_id: Option<&str>, limit: i64) -> StoreResult<Vec<TxnRow>> {
        dispatch!(self, s => s.transactions(instrument_id, limit).await)
    }

    pub async fn release_token(&self, token_id: &str, lease_id: &str) -> StoreResult<()> {
        dispatch!(self, s => s.release_token(token_id, lease_id).await)
    }

    pub async fn approve_with_token(&self, t: &TxnRow, token_id: &str, lease_id: &str, now: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.approve_with_token(t, token_id, lease_id, now).await)
    }

    pub async fn fail_token_attempt(&self, token_id: &str, max: i64, now: i64) -> StoreResult<i64> {
        dispatch!(self, s => s.fail_token_attempt(token_id, max, now).await)
    }

    /// Marks the original reversed and records the reversal, with what it undoes (`undo`: the advice
    /// owed, a pending original's token spent, a cancel's reservation given back), together.
    pub async fn reverse(&self, original_id: &str, reversal: &TxnRow, undo: Undo<'_>, now: i64) -> StoreResult<bool> {
        dispatch!(self, s => s.reverse(original_id, reversal, undo, now).await)
    }

    /// Up to `limit` transactions stored by earlier versions: id, bare duplicate digest, answer.
    pub async fn unscrubbed_transactions(&self, limit: i64) -> StoreResult<Vec<(String, String, Option<Vec<u8>>)>> {
        dispatch!(self, s => s.unscrubbed_transactions(limit).await)
    }

    /// Writes keyed hashes and scrubbed answers over transactions of earlier versions.
    pub async fn scrub_transactions(&self, rows: &[(String, String, Option<Vec<u8>>)]) -> StoreResult<u64> {
        dispatch!(self, s => s.scrub_transactions(rows).await)
    }

    /// Records a pending transaction's token, instrument, kind and issuer (see the backends),
    /// before the issuer is asked.
    pub async fn hold_for_issuer(&self, t: &TxnRow) -> StoreResult<bool> {
        dispatch!(self, s => s.hold_for_issuer(t).await)
    }

    /// Reserves a card cancel's amount on its payment and records the cancel, together.
    pub async fn reserve_cancel_for(
        &self,
        t: &TxnRow,
        original_id: &str,
        amount: Amount,
        now: i64,
    ) -> StoreResult<bool> {
        dispatch!(self, s => s.reserve_cancel_for(t, original_id, amount, now).await)
    }

    /// Pending transactions (not reversals) created before `before`: cut off by a crash.
    pub async fn cut_off(&self, before: i64, limit: i64) -> StoreResult<Vec<TxnRow>> {
        dispatch!(self, s => s.cut_off(before, limit).await)
    }

    /// Writes a declined outcome with its consequences: the token leased to it released or spent,
    /// a reservation given back, an advice owed (see the backends).
    pub async fn finish_declined(
        &self,
        t: &TxnRow,
        lease: LeaseEnd,
        release: Option<(&str, Amount)>,
        advice: Option<&AdviceRow>,
        now: i64,
    ) -> StoreResult<bool> {
        dispatch!(self, s => s.finish_declined(t, lease, release, advice, now).await)
    }

    /// Claims due advices for this node until `lease_until` (see the backends).
    pub async fn claim_due_advices(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<AdviceRow>> {
        dispatch!(self, s => s.claim_due_advices(now, lease_until, limit).await)
    }

    pub async fn advice_done(&self, id: &str, now: i64) -> StoreResult<()> {
        dispatch!(self, s => s.advice_done(id, now).await)
    }

    pub async fn advice_retry(&self, id: &str, next_at: i64) -> StoreResult<()> {
        dispatch!(self, s => s.advice_retry(id, next_at).await)
    }

    // Cancellations.

    /// Records that the business day closed at `closed_at` (`manual` or `cutoff`).
    pub async fn insert_settlement(&self, id: &str, closed_at: i64, reason: &str) -> StoreResult<()> {
        dispatch!(self, s => s.insert_settlement(id, closed_at, reason).await)
    }

    pub async fn settlements(&self) -> StoreResult<Vec<i64>> {
        dispatch!(self, s => s.settlements().await)
    }

    // Stored value.

    /// Issues a gift certificate with its issuance entry.
    pub async fn insert_gift(&self, g: &GiftRow, issuance: &crate::ledger::JournalEntry, now: i64) -> StoreResult<()> {
        dispatch!(self, s => s.insert_gift(g, issuance, now).await)
    }

    pub async fn gift_by_code_hash(&self, hash: &str) -> StoreResult<Option<GiftRow>> {
        dispatch!(self, s => s.gift_by_code_hash(hash).await)
    }

    pub async fn gift_by_instrument(&self, instrument_id: &str) -> StoreResult<Option<GiftRow>> {
        dispatch!(self, s => s.gift_by_instrument(instrument_id).await)
    }

    pub async fn register_gift(&self, gift_id: &str, i: &InstrumentRow) -> StoreResult<bool> {
        dispatch!(self, s => s.register_gift(gift_id, i).await)
    }

    /// A ledger account's cached balance, in its currency (None for an account never posted to).
    pub async fn account_balance(&self, id: &str) -> StoreResult<Option<Amount>> {
        dispatch!(self, s => s.account_balance(id).await)
    }

    pub async fn pay_stored_value(
        &self,
        t: &TxnRow,
        token_id: &str,
        entry: &crate::ledger::JournalEntry,
        now: i64,
    ) -> StoreResult<Movement> {
        dispatch!(self, s => s.pay_stored_value(t, token_id, entry, now).await)
    }

    pub async fn cancel_stored_value(
        &self,
        original_id: &str,
        amount: Amount,
        t: &TxnRow,
        entry: &crate::ledger::JournalEntry,
        now: i64,
    ) -> StoreResult<Movement> {
        dispatch!(self, s => s.cancel_stored_value(original_id, amount, t, entry, now).await)
    }

    pub async fn reverse_stored_value(
        &self,
        original_id: &str,
        reversal: &TxnRow,
        entry: Option<&crate::ledger::JournalEntry>,
        release: Option<(&str, Amount)>,
        now: i64,
    ) -> StoreResult<bool> {
        dispatch!(self, s => s.reverse_stored_value(original_id, reversal, entry, release, now).await)
    }

    // Local currency.

    /// Adds a region or updates its rules; true when it was new.
    pub async fn upsert_region(&self, r: &RegionRow) -> StoreResult<bool> {
        dispatch!(self, s => s.upsert_region(r).await)
    }

    pub async fn region(&self, id: &str) -> StoreResult<Option<RegionRow>> {
        dispatch!(self, s => s.region(id).await)
    }

    pub async fn regions(&self) -> StoreResult<Vec<RegionRow>> {
        dispatch!(self, s => s.regions().await)
    }

    /// Adds a merchant or moves it; true when it was new.
    pub async fn upsert_merchant(&self, m: &MerchantRow) -> StoreResult<bool> {
        dispatch!(self, s => s.upsert_merchant(m).await)
    }

    pub async fn merchant(&self, id: &str) -> StoreResult<Option<MerchantRow>> {
        dispatch!(self, s => s.merchant(id).await)
    }

    pub async fn merchants(&self, region: Option<&str>) -> StoreResult<Vec<MerchantRow>> {
        dispatch!(self, s => s.merchants(region).await)
    }

    /// Opens a wallet; `Some(existing instrument id)` when the requestor has one in the region already.
    pub async fn insert_wallet(&self, i: &InstrumentRow, region_id: &str) -> StoreResult<Option<String>> {
        dispatch!(self, s => s.insert_wallet(i, region_id).await)
    }

    pub async fn wallet_region(&self, instrument_id: &str) -> StoreResult<Option<String>> {
        dispatch!(self, s => s.wallet_region(instrument_id).await)
    }

    /// A wallet with the balances of `accounts` (principal, bonus) and optionally one payment, in one
    /// snapshot.
    pub async fn wallet_snapshot(
        &self,
        instrument_id: &str,
        accounts: [&str; 2],
        payment: Option<&str>,
    ) -> StoreResult<Option<WalletSnapshot>> {
        dispatch!(self, s => s.wallet_snapshot(instrument_id, accounts, payment).await)
    }

    pub async fn local_payment(&self, transaction_id: &str) -> StoreResult<Option<LocalPaymentRow>> {
        dispatch!(self, s => s.local_payment(transaction_id).await)
    }

    /// Writes a wallet's new state with the changes that led to it, in order, all or nothing; the
    /// wallet only if it is still at `wallet.version`. On anything but `Done`, the index of the change
    /// that a guard refused (0 for `Conflict`).
    pub async fn write_wallet(
        &self,
        wallet: &WalletRow,
        changes: &[WalletWrite<'_>],
    ) -> StoreResult<(WalletOutcome, usize)> {
        dispatch!(self, s => s.write_wallet(wallet, changes).await)
    }
}
