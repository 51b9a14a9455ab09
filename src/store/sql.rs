//! The SQL both backends share. SQLite and PostgreSQL run the same statements: parameters are
//! written `$N` (sqlx-sqlite binds `$N` to the N-th argument as PostgreSQL does), integers are 64-bit on
//! both, and what differs is passed in: the row-lock suffix for a read that decides a write
//! (`FOR UPDATE` on PostgreSQL; SQLite has one writer, so nothing) and the statement that makes a read
//! transaction one snapshot. Each backend expands [`sql_store!`] for its own types; the
//! backend files keep only connecting and migrating. The methods live by aggregate, one file each
//! under `sql/` (vault, tokens, audit, transactions, stored value, local currency, terminals, events,
//! verifications); this file keeps
//! the column lists, the helpers several aggregates share inside one database transaction (ledger
//! postings, advices, leases, reservations) and the macro that puts them together.

#[macro_use]
mod vault;
#[macro_use]
mod tokens;
#[macro_use]
mod audit;
#[macro_use]
mod transactions;
#[macro_use]
mod stored_value;
#[macro_use]
mod local;
#[macro_use]
mod terminals;
#[macro_use]
mod events;
#[macro_use]
mod verifications;

// Column lists as macros so every statement stays a `&'static str` (sqlx refuses run-time SQL).
macro_rules! instrument_cols {
    () => {
        "id, requestor_id, kind, status, issuer_id, bin, last4, pan_len, expiry, par, \
         fingerprint, fp_version, pan_sealed, dek_version, assurance, created_at, updated_at"
    };
}
macro_rules! token_cols {
    () => {
        "id, token, instrument_id, requestor_id, state, token_expiry, psn, merchant_id, \
         max_amount, currency, entry_modes, failed_attempts, created_at, expires_at, consumed_at, multi_use, suspended_at"
    };
}

macro_rules! txn_cols {
    () => {
        "id, kind, status, mti, msg_class, terminal_id, stan, transmitted, acquirer_id, content_hash, response, \
         response_code, processing_code, merchant_id, amount, currency, entry_mode, token_id, instrument_id, \
         instrument_kind, masked_pan, issuer_id, original_id, original_key, auth_code, rrn, issuer_response, \
         issuer_ms, total_ms, created_at, updated_at, cancelled_amount, cancel_type, principal, bonus, forfeited"
    };
}

macro_rules! region_cols {
    () => {
        "id, name, currency, incentive_rate, monthly_bonus_cap, bonus_lifetime_seconds, cancel_restore, created_at, \
         updated_at"
    };
}

macro_rules! gift_cols {
    () => {
        "id, code_hash, currency, face_value, expires_at, instrument_id, created_at"
    };
}

/// Binds every column of a transaction row in `txn_cols!` order ($1 … $36).
macro_rules! bind_txn {
    ($q:expr, $t:expr) => {
        $q.bind(&$t.id)
            .bind(&$t.kind)
            .bind(&$t.status)
            .bind(&$t.mti)
            .bind(&$t.msg_class)
            .bind(&$t.terminal_id)
            .bind(&$t.stan)
            .bind(&$t.transmitted)
            .bind(&$t.acquirer_id)
            .bind(&$t.content_hash)
            .bind(&$t.response)
            .bind(&$t.response_code)
            .bind(&$t.processing_code)
            .bind(&$t.merchant_id)
            .bind($t.amount)
            .bind(&$t.currency)
            .bind(&$t.entry_mode)
            .bind(&$t.token_id)
            .bind(&$t.instrument_id)
            .bind(&$t.instrument_kind)
            .bind(&$t.masked_pan)
            .bind(&$t.issuer_id)
            .bind(&$t.original_id)
            .bind(&$t.original_key)
            .bind(&$t.auth_code)
            .bind(&$t.rrn)
            .bind(&$t.issuer_response)
            .bind($t.issuer_ms)
            .bind($t.total_ms)
            .bind($t.created_at)
            .bind($t.updated_at)
            .bind($t.cancelled_amount)
            .bind(&$t.cancel_type)
            .bind($t.principal)
            .bind($t.bonus)
            .bind($t.forfeited)
    };
}

/// Inserts a transaction row unless its duplicate key is taken; binds as [`bind_txn!`]. (A macro so
/// that SQLite's units of work can put it into their text.)
macro_rules! txn_insert {
    () => {
        concat!(
            "INSERT INTO transactions (",
            txn_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36) \
             ON CONFLICT (msg_class, terminal_id, stan, transmitted, acquirer_id) DO NOTHING"
        )
    };
}
pub(super) const TXN_INSERT: &str = txn_insert!();

/// Inserts a live token unless its instrument is not active, its number is a vaulted card's (under
/// either fingerprint, `$13`/`$14`) or is live already (a unique index). Parameters: `$1` id, `$2`
/// number, `$3` instrument, `$4` requestor, `$5` expiry, `$6` PSN, `$7` merchant, `$8` max amount, `$9`
/// currency, `$10` entry modes, `$11` now, `$12` expires at, `$15` multi-use. (A macro so that both
/// backends' one-round-trip forms put it into their text: `insert_token` in `sqlite.rs` and
/// `postgres.rs`.)
macro_rules! token_insert {
    () => {
        "INSERT INTO tokens (id, token, instrument_id, requestor_id, state, token_expiry, psn, merchant_id, \
         max_amount, currency, entry_modes, failed_attempts, created_at, expires_at, multi_use) \
         SELECT $1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $10, 0, $11, $12, $15 \
         WHERE EXISTS (SELECT 1 FROM instruments WHERE id = $3 AND status = 'active') \
           AND NOT EXISTS (SELECT 1 FROM instruments WHERE fingerprint IN ($13, $14)) \
         ON CONFLICT DO NOTHING"
    };
}

/// What a token insert reports, after it: inserted, its instrument active. Parameters as
/// [`token_insert!`]. (Whether the number is live under another token is asked only when the insert
/// was refused with the instrument active, on its own: folded into PostgreSQL's one statement, the
/// planner scanned every live token for it.)
macro_rules! token_insert_report {
    () => {
        "SELECT EXISTS (SELECT 1 FROM tokens WHERE id = $1), \
         EXISTS (SELECT 1 FROM instruments WHERE id = $3 AND status = 'active')"
    };
}

/// Binds a token insert's parameters (see [`token_insert!`]), then the `token.created` event's id
/// (`$16`) and data (`$17`).
macro_rules! bind_token_insert {
    ($q:expr, $t:expr, $fps:expr, $event:expr) => {
        $q.bind(&$t.id)
            .bind(&$t.token)
            .bind(&$t.instrument_id)
            .bind(&$t.requestor_id)
            .bind(&$t.token_expiry)
            .bind(&$t.psn)
            .bind(&$t.merchant_id)
            .bind($t.max_amount)
            .bind(&$t.currency)
            .bind(&$t.entry_modes)
            .bind($t.created_at)
            .bind($t.expires_at)
            .bind(&$fps[0])
            .bind(&$fps[1])
            .bind($t.multi_use)
            .bind(&$event.0)
            .bind(&$event.1)
    };
}

/// The `token.created` event of a new token: its id and data (written as `emit` writes events).
pub(super) fn token_created(t: &super::TokenRow) -> (String, String) {
    let mut data = crate::events::token_data(&t.id, "active");
    data["multi_use"] = serde_json::json!(t.multi_use);
    data["merchant_id"] = serde_json::json!(t.merchant_id);
    data["expires_at"] = serde_json::json!(crate::clock::rfc3339(t.expires_at));
    (format!("evt_{}", uuid::Uuid::now_v7().simple()), data.to_string())
}

/// What a token insert's report means.
pub(super) fn token_inserted(inserted: bool, active: bool, taken: bool) -> super::InsertToken {
    use super::InsertToken;
    if inserted {
        InsertToken::Inserted
    } else if !active {
        InsertToken::InstrumentNotActive
    } else if taken {
        InsertToken::NumberTaken
    } else {
        InsertToken::NumberIsPan
    }
}

/// Writes a transaction's outcome: its mutable columns (the key and the request's hash never change),
/// once. Its parameters are [`bind_txn!`]'s (the numbers of `txn_cols!`; the key, the request's hash,
/// `created_at` and the cancel reservation are left as they are). Only a `pending` row is written: a row another writer has decided — a reversal that found
/// its original still pending because the node handling it died — is never overwritten by a late
/// outcome, so a payment the terminal reversed cannot take effect afterwards.
macro_rules! txn_update {
    () => {
        concat!(
            "UPDATE transactions SET ",
            txn_outcome_set!(),
            ", instrument_id = $19, original_key = $24 WHERE id = $1 AND status = 'pending'"
        )
    };
}

/// The outcome of a card payment approved with its leased token (both backends' approval units):
/// [`txn_update!`]'s, except that the instrument and the original key must still be those its
/// claim wrote rather than be set again — a column in SQLite's `SET` makes it delete and reinsert
/// the column's index entries even when the value is unchanged — so a row that disagrees is not
/// approved.
macro_rules! txn_approve {
    () => {
        concat!("UPDATE transactions SET ", txn_outcome_set!(), " WHERE ", txn_approvable!())
    };
}

/// Which row [`txn_approve!`] writes: the pending transaction `$1` with the instrument `$19` and
/// the original key `$24` its claim wrote.
macro_rules! txn_approvable {
    () => {
        "id = $1 AND status = 'pending' AND instrument_id IS NOT DISTINCT FROM $19 \
         AND original_key IS NOT DISTINCT FROM $24"
    };
}

/// The columns of [`txn_update!`]'s `SET` but the two indexed ones a transaction usually has from
/// its claim on, its instrument and the original key it names.
macro_rules! txn_outcome_set {
    () => {
        "kind = $2, status = $3, mti = $4, response = $11, \
         response_code = $12, processing_code = $13, merchant_id = $14, amount = $15, currency = $16, entry_mode = $17, \
         token_id = $18, instrument_kind = $20, masked_pan = $21, issuer_id = $22, original_id = $23, \
         auth_code = $25, rrn = $26, issuer_response = $27, issuer_ms = $28, total_ms = $29, \
         updated_at = $31, cancel_type = $33, principal = $34, bonus = $35, forfeited = $36"
    };
}
pub(super) const TXN_UPDATE: &str = txn_update!();

/// When a one-time token may be leased to a payment: live, not suspended, unexpired at `$now`, not
/// leased (or its lease run out), its instrument active. The one rule both backends' claims run.
macro_rules! token_free {
    ($now:literal) => {
        concat!(
            "state = 'active' AND suspended_at IS NULL AND expires_at > ",
            $now,
            " AND (lease_until IS NULL OR lease_until <= ",
            $now,
            ") AND EXISTS (SELECT 1 FROM instruments i WHERE i.id = tokens.instrument_id AND i.status = 'active')"
        )
    };
}

/// Consumes the one-time token `$tok` leased to the transaction `$lease`, at `$now`.
macro_rules! consume_leased {
    ($tok:literal, $lease:literal, $now:literal) => {
        concat!(
            "UPDATE tokens SET state = 'consumed', consumed_at = ",
            $now,
            ", lease_id = NULL, lease_until = NULL WHERE id = ",
            $tok,
            " AND lease_id = ",
            $lease,
            " AND state = 'active'"
        )
    };
}

/// The token a number names, from `FROM`: the live one holding it, else the newest that held it.
/// (Token numbers are reused once a token has ended.)
macro_rules! token_by_number_from {
    () => {
        "FROM tokens WHERE token = $1 ORDER BY state = 'active' DESC, created_at DESC LIMIT 1"
    };
}

/// Inserts a card sealed under the newest data key (else nothing: the caller seals it again), unless
/// the requestor already has it (a unique index); binds as [`bind_card!`]. (A macro so that SQLite's
/// unit of work puts it into its text.)
macro_rules! card_insert {
    () => {
        "INSERT INTO instruments (id, requestor_id, kind, status, issuer_id, bin, last4, pan_len, expiry, par, \
         fingerprint, fp_version, pan_sealed, dek_version, created_at, updated_at, assurance) \
         SELECT $1, $2, 'card', $14, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $15 \
         WHERE $12 = (SELECT MAX(version) FROM data_keys) \
         ON CONFLICT DO NOTHING"
    };
}
pub(super) const CARD_INSERT: &str = card_insert!();

/// Binds a card's columns for [`card_insert!`] ($1 … $15).
macro_rules! bind_card {
    ($q:expr, $c:expr) => {
        $q.bind(&$c.id)
            .bind(&$c.requestor_id)
            .bind(&$c.issuer_id)
            .bind(&$c.bin)
            .bind(&$c.last4)
            .bind($c.pan_len)
            .bind(&$c.expiry)
            .bind(&$c.par)
            .bind(&$c.fingerprint)
            .bind($c.fp_version)
            .bind(&$c.pan_sealed)
            .bind($c.dek_version)
            .bind($c.created_at)
            .bind($c.status)
            .bind($c.assurance)
    };
}

/// The instrument with id `$1`. (Each backend runs it its own way: SQLite in place, `readers.rs`.)
pub(super) const INSTRUMENT_BY_ID: &str = concat!("SELECT ", instrument_cols!(), " FROM instruments WHERE id = $1");

/// The requestor `$1`'s instrument (not deleted) with the fingerprint `$2`.
pub(super) const INSTRUMENT_BY_FINGERPRINT: &str = concat!(
    "SELECT ",
    instrument_cols!(),
    " FROM instruments WHERE requestor_id = $1 AND fingerprint = $2 AND status <> 'deleted'"
);

/// The PAR of any instrument with the fingerprint `$1`, if one has a PAR.
pub(super) const PAR_BY_FINGERPRINT: &str =
    "SELECT par FROM instruments WHERE fingerprint = $1 AND par IS NOT NULL LIMIT 1";

/// Whether the VAN `$1` serves the requestor `$2`: a row when it does.
pub(super) const VAN_SERVES: &str = "SELECT 1 FROM van_requestors WHERE van_id = $1 AND requestor_id = $2";

/// Whether a reversal naming `$key` as its original came first.
macro_rules! reversal_came_first {
    ($key:literal) => {
        concat!("EXISTS (SELECT 1 FROM transactions WHERE original_key = ", $key, " AND kind = 'reversal')")
    };
}

/// The events an approval with a one-time token makes (`token.consumed`, then the payment's),
/// drawn before its unit runs; bound as `$40`–`$44` by [`bind_approval_events!`]. The unit writes
/// them as `emit` does, only for a requestor with an active webhook endpoint.
pub(super) struct ApprovalEvents {
    pub(super) consumed_id: String,
    pub(super) consumed_data: String,
    pub(super) paid: Option<(String, &'static str, String)>,
}

impl ApprovalEvents {
    pub(super) fn of(t: &super::TxnRow, token_id: &str) -> ApprovalEvents {
        let id = || format!("evt_{}", uuid::Uuid::now_v7().simple());
        ApprovalEvents {
            consumed_id: id(),
            consumed_data: crate::events::token_data(token_id, "consumed").to_string(),
            paid: crate::events::of_transaction(t)
                .map(|(_, kind)| (id(), kind, crate::events::transaction_data(t).to_string())),
        }
    }
}

/// Binds an [`ApprovalEvents`]: the token event's id and data, the payment event's id (NULL when it
/// makes none), kind and data.
macro_rules! bind_approval_events {
    ($q:expr, $e:expr) => {
        $q.bind(&$e.consumed_id)
            .bind(&$e.consumed_data)
            .bind($e.paid.as_ref().map(|p| p.0.as_str()))
            .bind($e.paid.as_ref().map(|p| p.1))
            .bind($e.paid.as_ref().map(|p| p.2.as_str()))
    };
}

/// A journal entry to write with the transaction it belongs to (see `post_entries`).
pub(super) struct Posted<'a> {
    pub entry: &'a crate::ledger::JournalEntry,
    pub transaction_id: Option<&'a str>,
    pub now: i64,
}

pub(super) fn is_check_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::CheckViolation)
}

/// The store's methods for one backend: `$Store` has a `read` pool and a `writer()` that hands out its
/// connection for one write (see `group.rs`), whose connection type is `$Conn`. A write runs on
/// `w.conn()` and ends with `w.done()` (keep) or `w.abort()` (undo); each returns once the outcome is
/// durable. Conflicts are avoided with `ON CONFLICT`/conditional statements rather than caught as errors:
/// on PostgreSQL a failed statement ends the transaction.
macro_rules! sql_store {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal
    ) => {
        impl $Store {
            /// What reads this store's rows' amounts (see [`Money`]).
            fn money(&self) -> Money<'_> {
                Money(self.money.as_deref())
            }
        }

        /// Writes a journal entry: the entry, its postings, and each account's cached balance, on `conn`
        /// (inside the caller's transaction). `Ok(false)` when a stored-value account would go negative:
        /// the caller drops the transaction and nothing is written.
        async fn post_entry(
            conn: &mut $Conn,
            e: &JournalEntry,
            transaction_id: Option<&str>,
            now: i64,
        ) -> StoreResult<bool> {
            post_entries(conn, &[Posted { entry: e, transaction_id, now }]).await
        }

        /// Writes journal entries in four statements whatever their number: the entries, the accounts
        /// first used, each account's cached balance moved once by the sum of its postings, and the
        /// postings. Balances move in one global order (by account id), so two transactions touching the
        /// same accounts lock their rows in the same order and cannot deadlock on PostgreSQL. Several
        /// entries' postings on one account are checked against the balance they leave together (each
        /// was checked in order by its rule before it was written). `Ok(false)` when a stored-value
        /// account would go negative: the caller drops the transaction and nothing is written.
        async fn post_entries(conn: &mut $Conn, entries: &[Posted<'_>]) -> StoreResult<bool> {
            if entries.is_empty() {
                return Ok(true);
            }
            // Texts of one entry are few and kept prepared; a batch's vary with its size.
            let keep = entries.len() == 1;
            let out_of_range = || StoreError::Corrupt("ledger amount out of range".into());
            let mut moves: std::collections::BTreeMap<&str, (&crate::ledger::Account, i64)> = Default::default();
            let mut postings = Vec::new();
            for p in entries {
                for (line, posting) in p.entry.lines().iter().enumerate() {
                    let amount = posting.amount.to_minor().ok_or_else(out_of_range)?;
                    let signed = if posting.side == posting.account.kind.normal_side() { amount } else { -amount };
                    let m = moves.entry(posting.account.id.as_str()).or_insert((&posting.account, 0));
                    m.1 = m.1.checked_add(signed).ok_or_else(out_of_range)?;
                    postings.push((p.entry.id().as_str(), line as i64, posting, amount));
                }
            }
            let mut q = sqlx::QueryBuilder::new("INSERT INTO ledger_entries (id, kind, currency, transaction_id, created_at) ");
            q.push_values(entries, |mut b, p| {
                b.push_bind(p.entry.id().as_str())
                    .push_bind(p.entry.kind().as_str())
                    .push_bind(&p.entry.currency().code)
                    .push_bind(p.transaction_id)
                    .push_bind(p.now);
            });
            q.build().persistent(keep).execute(&mut *conn).await?;
            let mut q = sqlx::QueryBuilder::new("INSERT INTO ledger_accounts (id, kind, currency, balance, non_negative) ");
            q.push_values(moves.values(), |mut b, (a, _)| {
                b.push_bind(a.id.as_str()).push_bind(a.kind.as_str()).push_bind(&a.currency).push("0").push_bind(a.kind.non_negative());
            });
            q.push(" ON CONFLICT (id) DO NOTHING");
            q.build().persistent(keep).execute(&mut *conn).await?;
            for (id, (_, delta)) in &moves {
                let r = sqlx::query("UPDATE ledger_accounts SET balance = balance + $2 WHERE id = $1")
                    .bind(*id)
                    .bind(*delta)
                    .execute(&mut *conn)
                    .await;
                match r {
                    Ok(_) => {}
                    Err(err) if is_check_violation(&err) => return Ok(false),
                    Err(err) => return Err(err.into()),
                }
            }
            let mut q = sqlx::QueryBuilder::new("INSERT INTO ledger_postings (entry_id, line, account_id, side, amount) ");
            q.push_values(&postings, |mut b, (entry, line, p, amount)| {
                b.push_bind(*entry).push_bind(*line).push_bind(p.account.id.as_str()).push_bind(p.side.as_str()).push_bind(*amount);
            });
            q.build().persistent(keep).execute(&mut *conn).await?;
            Ok(true)
        }

        /// Records a reversal advice owed to an issuer, inside the caller's transaction.
        async fn insert_advice(conn: &mut $Conn, a: &AdviceRow, now: i64) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO issuer_advices (id, transaction_id, issuer_id, attempts, next_at, created_at) VALUES ($1, $2, $3, 0, $4, $5)",
            )
            .bind(&a.id)
            .bind(&a.transaction_id)
            .bind(&a.issuer_id)
            .bind(a.next_at)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Ends the lease transaction `lease` holds on a one-time token, inside the caller's
        /// transaction: given back, or spent when the transaction's fate at its issuer is unknown.
        /// Nothing happens when the token is not leased to it.
        async fn end_lease(conn: &mut $Conn, token_id: &str, lease: &str, end: LeaseEnd, now: i64) -> StoreResult<()> {
            let q = match end {
                LeaseEnd::Release => {
                    sqlx::query("UPDATE tokens SET lease_id = NULL, lease_until = NULL WHERE id = $1 AND lease_id = $2")
                        .bind(token_id)
                        .bind(lease)
                }
                LeaseEnd::Spend => sqlx::query(consume_leased!("$1", "$2", "$3"))
                .bind(token_id)
                .bind(lease)
                .bind(now),
            };
            q.execute(&mut *conn).await?;
            Ok(())
        }

        /// Appends an event to the webhook outbox inside the caller's transaction, so it commits or
        /// rolls back with the change it tells of: the instrument's next sequence number, the event,
        /// and a pending delivery to each of its requestor's active endpoints. A requestor with no
        /// active endpoint gets no event: one statement that changes nothing.
        /// (The approval units, `approve_with_token`, and the token inserts, `insert_token`, in
        /// `sqlite.rs` and `postgres.rs`, and SQLite's card insert, write their events by the same
        /// rule in their own statements (`unit_event!` in `sqlite.rs`): a change here belongs there
        /// too.)
        async fn emit(conn: &mut $Conn, e: &EventDraft<'_>) -> StoreResult<()> {
            let next: Option<(i64, String)> = sqlx::query_as(
                "UPDATE instruments SET event_seq = event_seq + 1 WHERE id = $1 AND EXISTS \
                 (SELECT 1 FROM webhook_endpoints w WHERE w.requestor_id = instruments.requestor_id AND w.status = 'active') \
                 RETURNING event_seq, requestor_id",
            )
            .bind(e.instrument_id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((sequence, requestor_id)) = next else { return Ok(()) };
            let id = format!("evt_{}", uuid::Uuid::now_v7().simple());
            sqlx::query(
                "INSERT INTO events (id, requestor_id, instrument_id, sequence, type, data, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(&requestor_id)
            .bind(e.instrument_id)
            .bind(sequence)
            .bind(e.kind)
            .bind(e.data.to_string())
            .bind(e.now)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO event_deliveries (event_id, endpoint_id, state, attempts, next_at, created_at) \
                 SELECT $1, id, 'pending', 0, $2, $2 FROM webhook_endpoints WHERE requestor_id = $3 AND status = 'active'",
            )
            .bind(&id)
            .bind(e.now)
            .bind(&requestor_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// The event a transaction's outcome makes, if it has one (a decided payment, cancel or
        /// reversal of an instrument), appended inside the caller's transaction.
        async fn emit_txn(conn: &mut $Conn, t: &TxnRow) -> StoreResult<()> {
            let Some((instrument_id, kind)) = crate::events::of_transaction(t) else { return Ok(()) };
            let data = crate::events::transaction_data(t);
            emit(&mut *conn, &EventDraft { instrument_id, kind, data, now: t.updated_at }).await
        }

        /// Gives a cancel's reservation of `amount` back to the payment `id`, inside the caller's
        /// transaction.
        async fn give_back(conn: &mut $Conn, id: &str, amount: Amount, now: i64) -> StoreResult<()> {
            sqlx::query("UPDATE transactions SET cancelled_amount = cancelled_amount - $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(amount)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// What a reversal undoes with its original, inside the caller's transaction.
        async fn undo_with(conn: &mut $Conn, undo: &Undo<'_>, now: i64) -> StoreResult<()> {
            if let Some((token_id, lease)) = undo.spend {
                end_lease(&mut *conn, token_id, lease, LeaseEnd::Spend, now).await?;
            }
            if let Some((paid, amount)) = undo.release {
                give_back(&mut *conn, paid, amount, now).await?;
            }
            if let Some(a) = undo.advice {
                insert_advice(&mut *conn, a, now).await?;
            }
            Ok(())
        }

        /// A wallet payment, its amounts in its wallet's region's currency.
        async fn local_payment_in(conn: &mut $Conn, id: &str, money: Money<'_>) -> StoreResult<Option<LocalPaymentRow>> {
            let row = sqlx::query(
                "SELECT p.transaction_id, p.instrument_id, p.principal, p.bonus, p.cancelled_principal, p.cancelled_bonus, \
                 p.forfeited_bonus, r.currency FROM local_payments p JOIN local_wallets w ON w.instrument_id = p.instrument_id \
                 JOIN regions r ON r.id = w.region_id WHERE p.transaction_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let currency: String = row.try_get("currency")?;
            let amount = |column: &str| -> StoreResult<Amount> { money.read(Some(&currency), row.try_get(column)?) };
            let takes: Vec<TakeRow<i64>> = sqlx::query_as(
                "SELECT grant_id, expires_at, taken, returned FROM local_payment_takes WHERE transaction_id = $1 \
                 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            Ok(Some(LocalPaymentRow {
                transaction_id: row.try_get("transaction_id")?,
                instrument_id: row.try_get("instrument_id")?,
                principal: amount("principal")?,
                bonus: amount("bonus")?,
                cancelled_principal: amount("cancelled_principal")?,
                cancelled_bonus: amount("cancelled_bonus")?,
                forfeited_bonus: amount("forfeited_bonus")?,
                takes: takes.into_iter().map(|t| t.read_money(money, &currency)).collect::<StoreResult<_>>()?,
            }))
        }

        sql_vault!(
            $Store,
            $Conn,
            for_update = $for_update,
            snapshot = $snapshot,
            seed_indexes = $seed_indexes
        );
        sql_tokens!(
            $Store,
            $Conn,
            for_update = $for_update,
            snapshot = $snapshot,
            seed_indexes = $seed_indexes
        );
        sql_audit!(
            $Store,
            $Conn,
            for_update = $for_update,
            snapshot = $snapshot,
            seed_indexes = $seed_indexes
        );
        sql_transactions!(
            $Store,
            $Conn,
            for_update = $for_update,
            snapshot = $snapshot,
            seed_indexes = $seed_indexes
        );
        sql_stored_value!(
            $Store,
            $Conn,
            for_update = $for_update,
            snapshot = $snapshot,
            seed_indexes = $seed_indexes
        );
        sql_local!(
            $Store,
            $Conn,
            for_update = $for_update,
            snapshot = $snapshot,
            seed_indexes = $seed_indexes
        );
        sql_terminals!($Store);
        sql_events!($Store, for_update = $for_update);
        sql_verifications!($Store, for_update = $for_update);
    };
}
