//! The SQL both backends share. SQLite and PostgreSQL run the same statements: parameters are
//! written `$N` (sqlx-sqlite binds `$N` to the N-th argument as PostgreSQL does), integers are 64-bit on
//! both, and what differs is passed in: the row-lock suffix for a read that decides a write
//! (`FOR UPDATE` on PostgreSQL; SQLite has one writer, so nothing) and the statement that makes a read
//! transaction one snapshot. Each backend expands [`sql_store!`] for its own types; the
//! backend files keep only connecting and migrating.

// Column lists as macros so every statement stays a `&'static str` (sqlx refuses run-time SQL).
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
         max_amount, currency, entry_modes, failed_attempts, created_at, expires_at, consumed_at, multi_use"
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

pub(super) const TXN_INSERT: &str = concat!(
    "INSERT INTO transactions (",
    txn_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
     $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36) \
     ON CONFLICT (msg_class, terminal_id, stan, transmitted, acquirer_id) DO NOTHING"
);

/// Writes a transaction's outcome: its mutable columns (the key and the request's hash never change),
/// once. Its parameters are [`bind_txn!`]'s (the numbers of `txn_cols!`; the key, the request's hash,
/// `created_at` and the cancel reservation are left as they are). Only a `pending` row is written: a row another writer has decided — a reversal that found
/// its original still pending because the node handling it died — is never overwritten by a late
/// outcome, so a payment the terminal reversed cannot take effect afterwards.
pub(super) const TXN_UPDATE: &str = "UPDATE transactions SET kind = $2, status = $3, mti = $4, response = $11, \
     response_code = $12, processing_code = $13, merchant_id = $14, amount = $15, currency = $16, entry_mode = $17, \
     token_id = $18, instrument_id = $19, instrument_kind = $20, masked_pan = $21, issuer_id = $22, original_id = $23, \
     original_key = $24, auth_code = $25, rrn = $26, issuer_response = $27, issuer_ms = $28, total_ms = $29, \
     updated_at = $31, cancel_type = $33, principal = $34, bonus = $35, forfeited = $36 \
     WHERE id = $1 AND status = 'pending'";

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
        seed_indexes = $seed_indexes:literal,
        audit_lock = $audit_lock:literal
    ) => {
        /// Writes a journal entry: the entry, its postings, and each account's cached balance, on `conn`
        /// (inside the caller's transaction). `Ok(false)` when a stored-value account would go negative:
        /// the caller drops the transaction and nothing is written.
        async fn post_entry(
            conn: &mut $Conn,
            e: &JournalEntry,
            transaction_id: Option<&str>,
            now: i64,
        ) -> StoreResult<bool> {
            sqlx::query(
                "INSERT INTO ledger_entries (id, kind, currency, transaction_id, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(e.id().as_str())
            .bind(e.kind().as_str())
            .bind(&e.currency().code)
            .bind(transaction_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            // Accounts in one global order (by id), so two transactions touching the same accounts
            // lock their rows in the same order and cannot deadlock on PostgreSQL.
            let mut order: Vec<(usize, &crate::ledger::Posting)> = e.lines().iter().enumerate().collect();
            order.sort_by(|a, b| a.1.account.id.as_str().cmp(b.1.account.id.as_str()));
            for (line, p) in order {
                let amount = p.amount.to_minor().ok_or_else(|| StoreError::Corrupt("ledger amount out of range".into()))?;
                let signed = if p.side == p.account.kind.normal_side() { amount } else { -amount };
                sqlx::query("INSERT INTO ledger_accounts (id, kind, currency, balance, non_negative) VALUES ($1, $2, $3, 0, $4) ON CONFLICT (id) DO NOTHING")
                    .bind(p.account.id.as_str())
                    .bind(p.account.kind.as_str())
                    .bind(&p.account.currency)
                    .bind(p.account.kind.non_negative())
                    .execute(&mut *conn)
                    .await?;
                let r = sqlx::query("UPDATE ledger_accounts SET balance = balance + $2 WHERE id = $1")
                    .bind(p.account.id.as_str())
                    .bind(signed)
                    .execute(&mut *conn)
                    .await;
                match r {
                    Ok(_) => {}
                    Err(err) if is_check_violation(&err) => return Ok(false),
                    Err(err) => return Err(err.into()),
                }
                sqlx::query(
                    "INSERT INTO ledger_postings (entry_id, line, account_id, side, amount) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(e.id().as_str())
                .bind(line as i64)
                .bind(p.account.id.as_str())
                .bind(p.side.as_str())
                .bind(amount)
                .execute(&mut *conn)
                .await?;
            }
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
                LeaseEnd::Spend => sqlx::query(
                    "UPDATE tokens SET state = 'consumed', consumed_at = $3, lease_id = NULL, lease_until = NULL \
                     WHERE id = $1 AND lease_id = $2 AND state = 'active'",
                )
                .bind(token_id)
                .bind(lease)
                .bind(now),
            };
            q.execute(&mut *conn).await?;
            Ok(())
        }

        /// Gives a cancel's reservation of `amount` back to the payment `id`, inside the caller's
        /// transaction.
        async fn give_back(conn: &mut $Conn, id: &str, amount: i64, now: i64) -> StoreResult<()> {
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

        async fn local_payment_in(conn: &mut $Conn, id: &str) -> StoreResult<Option<LocalPaymentRow>> {
            let row = sqlx::query(
                "SELECT transaction_id, instrument_id, principal, bonus, cancelled_principal, cancelled_bonus, forfeited_bonus \
                 FROM local_payments WHERE transaction_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let takes: Vec<TakeRow> = sqlx::query_as(
                "SELECT grant_id, expires_at, taken, returned FROM local_payment_takes WHERE transaction_id = $1 \
                 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            Ok(Some(LocalPaymentRow {
                transaction_id: row.try_get("transaction_id")?,
                instrument_id: row.try_get("instrument_id")?,
                principal: row.try_get("principal")?,
                bonus: row.try_get("bonus")?,
                cancelled_principal: row.try_get("cancelled_principal")?,
                cancelled_bonus: row.try_get("cancelled_bonus")?,
                forfeited_bonus: row.try_get("forfeited_bonus")?,
                takes,
            }))
        }

        impl $Store {
            pub async fn insert_requestor(&self, r: &RequestorRow, key: &ApiKeyRow) -> StoreResult<()> {
                let mut w = self.atomic_writer().await?;
                sqlx::query("INSERT INTO requestors (id, trid, name, scopes, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&r.id)
                    .bind(&r.trid)
                    .bind(&r.name)
                    .bind(&r.scopes)
                    .bind(r.created_at)
                    .execute(w.conn())
                    .await?;
                sqlx::query("INSERT INTO api_keys (key_id, requestor_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&key.key_id)
                    .bind(&key.requestor_id)
                    .bind(&key.secret_hash)
                    .bind(key.created_at)
                    .execute(w.conn())
                    .await?;
                w.done().await?;
                Ok(())
            }

            pub async fn find_api_key(&self, key_id: &str) -> StoreResult<Option<(ApiKeyRow, RequestorRow)>> {
                let row = sqlx::query(
                    "SELECT k.key_id, k.requestor_id, k.secret_hash, k.created_at, k.revoked_at, \
                            r.id, r.trid, r.name, r.scopes, r.created_at AS r_created_at \
                     FROM api_keys k JOIN requestors r ON r.id = k.requestor_id WHERE k.key_id = $1",
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
                    "SELECT version, kek_label, kek_version, wrapped, created_at, fp_version FROM data_keys ORDER BY version",
                )
                .fetch_all(&self.read)
                .await?)
            }

            pub async fn insert_data_key(&self, k: &DataKeyRow) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "INSERT INTO data_keys (version, kek_label, kek_version, wrapped, created_at, fp_version) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version) DO NOTHING",
                )
                .bind(k.version)
                .bind(&k.kek_label)
                .bind(k.kek_version)
                .bind(&k.wrapped)
                .bind(k.created_at)
                .bind(k.fp_version)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
            }

            pub async fn insert_card(&self, c: &InstrumentRow) -> StoreResult<InsertCard> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "INSERT INTO instruments (id, requestor_id, kind, status, issuer_id, bin, last4, pan_len, expiry, par, \
                     fingerprint, fp_version, pan_sealed, dek_version, created_at, updated_at) \
                     SELECT $1, $2, 'card', 'active', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13 \
                     WHERE $12 = (SELECT MAX(version) FROM data_keys) \
                     ON CONFLICT DO NOTHING",
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
                .execute(w.conn())
                .await?;
                if r.rows_affected() == 1 {
                    w.done().await?;
                    return Ok(InsertCard::Inserted);
                }
                // (No error to catch: on PostgreSQL a failed statement would end the transaction.)
                // Read through the writer: the row that beat us may be in its uncommitted epoch.
                let fp = c.fingerprint.as_deref().unwrap_or_default();
                let existing = sqlx::query_as::<_, InstrumentRow>(concat!(
                    "SELECT ",
                    instrument_cols!(),
                    " FROM instruments WHERE requestor_id = $1 AND fingerprint = $2 AND status <> 'deleted'"
                ))
                .bind(&c.requestor_id)
                .bind(fp)
                .fetch_optional(w.conn())
                .await?;
                let newest: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM data_keys").fetch_one(w.conn()).await?;
                w.abort().await?;
                match existing {
                    Some(row) => Ok(InsertCard::Duplicate(Box::new(row))),
                    None if newest != c.dek_version => Ok(InsertCard::StaleKey),
                    None => Err(StoreError::Corrupt("conflict without a matching instrument".into())),
                }
            }

            /// Up to `limit` sealed cards under a data key older than `newest`, in id order from `after`.
            pub async fn cards_sealed_before(
                &self,
                newest: i64,
                after: &str,
                limit: i64,
            ) -> StoreResult<Vec<SealedCard>> {
                Ok(sqlx::query_as(
                    "SELECT id, dek_version, fp_version, pan_sealed FROM instruments \
                     WHERE dek_version < $1 AND pan_sealed IS NOT NULL AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(newest)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            /// Moves cards onto newer keys in one write. A card deleted or re-keyed since it was read
            /// is left alone. Returns how many were moved.
            pub async fn rekey_cards(&self, cards: &[Rekeyed]) -> StoreResult<u64> {
                let mut w = self.atomic_writer().await?;
                let mut moved = 0;
                for c in cards {
                    moved += sqlx::query(
                        "UPDATE instruments SET pan_sealed = $2, dek_version = $3, fingerprint = $4, fp_version = $5 \
                         WHERE id = $1 AND dek_version = $6 AND pan_sealed IS NOT NULL",
                    )
                    .bind(&c.id)
                    .bind(&c.pan_sealed)
                    .bind(c.dek_version)
                    .bind(&c.fingerprint)
                    .bind(c.fp_version)
                    .bind(c.from_dek)
                    .execute(w.conn())
                    .await?
                    .rows_affected();
                }
                w.done().await?;
                Ok(moved)
            }

            /// Sealed cards per data-key and fingerprint-key version.
            pub async fn key_usage(&self) -> StoreResult<Vec<KeyUsage>> {
                Ok(sqlx::query_as(
                    "SELECT dek_version, fp_version, COUNT(*) AS cards FROM instruments \
                     WHERE dek_version IS NOT NULL GROUP BY dek_version, fp_version ORDER BY dek_version, fp_version",
                )
                .fetch_all(&self.read)
                .await?)
            }

            /// Destroys a data key that is not the newest and seals no card. The foreign key from
            /// `instruments.dek_version` stops the delete if a card still names it.
            pub async fn destroy_data_key(&self, version: i64) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "DELETE FROM data_keys WHERE version = $1 AND version < (SELECT MAX(version) FROM data_keys) \
                     AND NOT EXISTS (SELECT 1 FROM instruments WHERE dek_version = $1)",
                )
                .bind(version)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
            }

            pub async fn instrument(&self, id: &str) -> StoreResult<Option<InstrumentRow>> {
                Ok(sqlx::query_as(concat!("SELECT ", instrument_cols!(), " FROM instruments WHERE id = $1"))
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
                    " FROM instruments WHERE requestor_id = $1 AND fingerprint = $2 AND status <> 'deleted'"
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
                    " FROM instruments WHERE requestor_id = $1 AND ($2 OR status <> 'deleted') \
                     ORDER BY created_at, id"
                ))
                .bind(requestor_id)
                .bind(include_deleted)
                .fetch_all(&self.read)
                .await?)
            }

            pub async fn update_card_expiry(&self, id: &str, expiry: &str, now: i64) -> StoreResult<()> {
                let mut w = self.writer().await?;
                sqlx::query("UPDATE instruments SET expiry = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(expiry)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                w.done().await
            }

            pub async fn set_instrument_status(
                &self,
                id: &str,
                from: &[InstrumentStatus],
                to: InstrumentStatus,
                now: i64,
            ) -> StoreResult<Option<InstrumentRow>> {
                let mut w = self.atomic_writer().await?;
                let current: Option<String> = sqlx::query_scalar(concat!("SELECT status FROM instruments WHERE id = $1", $for_update))
                    .bind(id)
                    .fetch_optional(w.conn())
                    .await?;
                let allowed = current.as_deref().and_then(InstrumentStatus::parse).is_some_and(|s| from.contains(&s));
                if !allowed {
                    w.abort().await?;
                    return Ok(None);
                }
                // A deleted card keeps its masked facts for the transaction history; the sealed PAN is
                // destroyed.
                let sql = if to == InstrumentStatus::Deleted {
                    "UPDATE instruments SET status = $2, updated_at = $3, pan_sealed = NULL, dek_version = NULL WHERE id = $1"
                } else {
                    "UPDATE instruments SET status = $2, updated_at = $3 WHERE id = $1"
                };
                sqlx::query(sql).bind(id).bind(to.as_str()).bind(now).execute(w.conn()).await?;
                if to != InstrumentStatus::Active {
                    sqlx::query("UPDATE tokens SET state = 'revoked' WHERE instrument_id = $1 AND state = 'active'")
                        .bind(id)
                        .execute(w.conn())
                        .await?;
                }
                let row = sqlx::query_as(concat!("SELECT ", instrument_cols!(), " FROM instruments WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(w.conn())
                    .await?;
                w.done().await?;
                Ok(row)
            }

            /// Inserts a live token unless its number is taken by another live token or is a vaulted
            /// card's number: `number_fingerprints` are the candidate number's fingerprints under the
            /// fingerprint keys in use (two while a rotation is under way).
            pub async fn insert_token(&self, t: &TokenRow, number_fingerprints: [&str; 2]) -> StoreResult<InsertToken> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "INSERT INTO tokens (id, token, instrument_id, requestor_id, state, token_expiry, psn, merchant_id, \
                     max_amount, currency, entry_modes, failed_attempts, created_at, expires_at, multi_use) \
                     SELECT $1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $10, 0, $11, $12, $15 \
                     WHERE EXISTS (SELECT 1 FROM instruments WHERE id = $3 AND status = 'active') \
                       AND NOT EXISTS (SELECT 1 FROM instruments WHERE fingerprint IN ($13, $14)) \
                     ON CONFLICT DO NOTHING",
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
                .bind(number_fingerprints[0])
                .bind(number_fingerprints[1])
                .bind(t.multi_use)
                .execute(w.conn())
                .await?;
                if r.rows_affected() == 1 {
                    w.done().await?;
                    return Ok(InsertToken::Inserted);
                }
                let active: Option<String> = sqlx::query_scalar("SELECT status FROM instruments WHERE id = $1")
                    .bind(&t.instrument_id)
                    .fetch_optional(w.conn())
                    .await?;
                let taken: Option<bool> =
                    sqlx::query_scalar("SELECT TRUE FROM tokens WHERE token = $1 AND state = 'active'")
                        .bind(&t.token)
                        .fetch_optional(w.conn())
                        .await?;
                w.abort().await?;
                Ok(if active.as_deref() != Some("active") {
                    InsertToken::InstrumentNotActive
                } else if taken.is_some() {
                    InsertToken::NumberTaken
                } else {
                    InsertToken::NumberIsPan
                })
            }

            /// `tsp seed`'s bulk load, in one transaction: the secondary indexes of `instruments` and
            /// `tokens` are dropped, every batch from `batches` is inserted, live token numbers drawn
            /// twice get new ones from `redraw`, and the indexes are built again (a sort each, instead
            /// of a random page write per row and index). If anything fails, the transaction rolls it
            /// all back, indexes included. Returns the cards and tokens written.
            pub async fn bulk_seed(
                &self,
                mut batches: tokio::sync::mpsc::Receiver<(Vec<InstrumentRow>, Vec<TokenRow>)>,
                redraw: &(dyn Fn() -> Option<String> + Sync),
            ) -> StoreResult<(u64, u64)> {
                // 500 rows × 16 columns stays under both backends' bind-parameter limits.
                const ROWS: usize = 500;
                let mut w = self.atomic_writer().await?;
                let indexes: Vec<(String, String)> = sqlx::query_as($seed_indexes).fetch_all(w.conn()).await?;
                for (name, _) in &indexes {
                    // (Names from the database's own catalogue, not from input.)
                    sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\""))).execute(w.conn()).await?;
                }
                let (mut n_cards, mut n_tokens) = (0, 0);
                while let Some((cards, tokens)) = batches.recv().await {
                    for chunk in cards.chunks(ROWS) {
                        let mut q = sqlx::QueryBuilder::new(concat!("INSERT INTO instruments (", instrument_cols!(), ") "));
                        q.push_values(chunk, |mut b, c| {
                            b.push_bind(&c.id)
                                .push_bind(&c.requestor_id)
                                .push_bind(&c.kind)
                                .push_bind(&c.status)
                                .push_bind(&c.issuer_id)
                                .push_bind(&c.bin)
                                .push_bind(&c.last4)
                                .push_bind(c.pan_len)
                                .push_bind(&c.expiry)
                                .push_bind(&c.par)
                                .push_bind(&c.fingerprint)
                                .push_bind(c.fp_version)
                                .push_bind(&c.pan_sealed)
                                .push_bind(c.dek_version)
                                .push_bind(c.created_at)
                                .push_bind(c.updated_at);
                        });
                        n_cards += q.build().execute(w.conn()).await?.rows_affected();
                    }
                    for chunk in tokens.chunks(ROWS) {
                        let mut q = sqlx::QueryBuilder::new(
                            "INSERT INTO tokens (id, token, instrument_id, requestor_id, state, token_expiry, psn, merchant_id, \
                             max_amount, currency, entry_modes, failed_attempts, created_at, expires_at) ",
                        );
                        q.push_values(chunk, |mut b, t| {
                            b.push_bind(&t.id)
                                .push_bind(&t.token)
                                .push_bind(&t.instrument_id)
                                .push_bind(&t.requestor_id)
                                .push_bind(&t.state)
                                .push_bind(&t.token_expiry)
                                .push_bind(&t.psn)
                                .push_bind(&t.merchant_id)
                                .push_bind(t.max_amount)
                                .push_bind(&t.currency)
                                .push_bind(&t.entry_modes)
                                .push_bind(t.failed_attempts)
                                .push_bind(t.created_at)
                                .push_bind(t.expires_at);
                        });
                        n_tokens += q.build().execute(w.conn()).await?.rows_affected();
                    }
                }
                // Live numbers drawn twice (the unique index is not there to refuse them): all but the
                // first get new numbers, until none is left.
                for _ in 0..100 {
                    let twice: Vec<String> = sqlx::query_scalar(
                        "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY token ORDER BY id) AS n \
                         FROM tokens WHERE state = 'active') AS numbered WHERE n > 1",
                    )
                    .fetch_all(w.conn())
                    .await?;
                    if twice.is_empty() {
                        break;
                    }
                    for id in twice {
                        let number = redraw().ok_or_else(|| StoreError::Corrupt("no token number to draw".into()))?;
                        sqlx::query("UPDATE tokens SET token = $2 WHERE id = $1").bind(id).bind(number).execute(w.conn()).await?;
                    }
                }
                for (_, definition) in &indexes {
                    sqlx::query(sqlx::AssertSqlSafe(definition.clone())).execute(w.conn()).await?;
                }
                w.done().await?;
                Ok((n_cards, n_tokens))
            }

            /// Appends one audit row after the last one (the first after `genesis`): `hash(prev_hash,
            /// seq)` gives its chain hash.
            /// Appends are serialized (the single writer on SQLite, an advisory lock on PostgreSQL), so
            /// the chain has no forks. Returns the row's sequence number.
            pub async fn append_audit(
                &self,
                row: &AuditFields<'_>,
                genesis: &str,
                hash: &(dyn Fn(&str, i64) -> String + Sync),
            ) -> StoreResult<i64> {
                let mut w = self.atomic_writer().await?;
                sqlx::query($audit_lock).execute(w.conn()).await?;
                let last: Option<(i64, String)> =
                    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(w.conn()).await?;
                let (seq, prev) = match last {
                    Some((seq, h)) => (seq + 1, h),
                    None => (1, genesis.to_string()),
                };
                let row_hash = hash(&prev, seq);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, action, subject, outcome, detail, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(seq)
                .bind(row.at)
                .bind(row.actor)
                .bind(row.action)
                .bind(row.subject)
                .bind(row.outcome)
                .bind(row.detail)
                .bind(&prev)
                .bind(&row_hash)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(seq)
            }

            /// Up to `limit` audit rows after `after`, in order.
            pub async fn audit_rows(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
                Ok(sqlx::query_as(
                    "SELECT seq, at, actor, action, subject, outcome, detail, prev_hash, hash FROM audit_log \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            pub async fn expire_token_number(&self, token: &str, now: i64) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "UPDATE tokens SET state = 'expired' WHERE token = $1 AND state = 'active' AND expires_at <= $2",
                )
                .bind(token)
                .bind(now)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() > 0)
            }

            pub async fn token_by_number(&self, token: &str) -> StoreResult<Option<TokenRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens WHERE token = $1 ORDER BY state = 'active' DESC, created_at DESC LIMIT 1"
                ))
                .bind(token)
                .fetch_optional(&self.read)
                .await?)
            }

            pub async fn merchant_token(&self, instrument_id: &str, merchant_id: &str) -> StoreResult<Option<TokenRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens WHERE instrument_id = $1 AND merchant_id = $2 AND multi_use AND state = 'active'"
                ))
                .bind(instrument_id)
                .bind(merchant_id)
                .fetch_optional(&self.read)
                .await?)
            }

            /// Ends a live token: `expired` when its TTL has passed by `now`, else `revoked` (when
            /// `revoke`). True if it was live.
            pub async fn end_token(&self, id: &str, revoke: bool, now: i64) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "UPDATE tokens SET state = CASE WHEN expires_at <= $2 THEN 'expired' ELSE 'revoked' END \
                     WHERE id = $1 AND state = 'active' AND (expires_at <= $2 OR $3)",
                )
                .bind(id)
                .bind(now)
                .bind(revoke)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
            }

            /// Binds merchants to a terminal requestor. Returns the merchants another requestor holds
            /// (left as they are).
            pub async fn bind_merchants(&self, requestor_id: &str, merchants: &[String], now: i64) -> StoreResult<Vec<String>> {
                let mut w = self.atomic_writer().await?;
                let mut taken = Vec::new();
                for m in merchants {
                    sqlx::query(
                        "INSERT INTO merchant_requestors (merchant_id, requestor_id, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (merchant_id) DO NOTHING",
                    )
                    .bind(m)
                    .bind(requestor_id)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                    let owner: Option<String> =
                        sqlx::query_scalar("SELECT requestor_id FROM merchant_requestors WHERE merchant_id = $1")
                            .bind(m)
                            .fetch_optional(w.conn())
                            .await?;
                    if owner.as_deref() != Some(requestor_id) {
                        taken.push(m.clone());
                    }
                }
                if taken.is_empty() {
                    w.done().await?;
                } else {
                    w.abort().await?;
                }
                Ok(taken)
            }

            pub async fn merchant_owner(&self, merchant_id: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT requestor_id FROM merchant_requestors WHERE merchant_id = $1")
                    .bind(merchant_id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            pub async fn token(&self, id: &str) -> StoreResult<Option<TokenRow>> {
                Ok(sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM tokens WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            pub async fn consume_token(&self, token: &str, now: i64) -> StoreResult<Consume> {
                let mut w = self.writer().await?;
                let consumed: Option<TokenRow> = sqlx::query_as(concat!(
                    "UPDATE tokens SET state = 'consumed', consumed_at = $2 \
                     WHERE token = $1 AND state = 'active' AND expires_at > $2 \
                       AND (lease_until IS NULL OR lease_until <= $2) \
                       AND EXISTS (SELECT 1 FROM instruments i WHERE i.id = tokens.instrument_id AND i.status = 'active') \
                     RETURNING ",
                    token_cols!()
                ))
                .bind(token)
                .bind(now)
                .fetch_optional(w.conn())
                .await?;
                if let Some(row) = consumed {
                    w.done().await?;
                    return Ok(Consume::Consumed(row));
                }
                let row: Option<TokenRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens WHERE token = $1 ORDER BY state = 'active' DESC, created_at DESC LIMIT 1"
                ))
                .bind(token)
                .fetch_optional(w.conn())
                .await?;
                w.abort().await?;
                Ok(row.map_or(Consume::Unknown, Consume::Refused))
            }

            // Payments.

            pub async fn claim_transaction(&self, t: &TxnRow) -> StoreResult<Claim> {
                let mut w = self.writer().await?;
                let r = bind_txn!(sqlx::query(TXN_INSERT), t).execute(w.conn()).await?;
                if r.rows_affected() == 1 {
                    w.done().await?;
                    return Ok(Claim::New);
                }
                let existing: Option<TxnRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE msg_class = $1 AND terminal_id = $2 AND stan = $3 AND transmitted = $4 AND acquirer_id = $5"
                ))
                .bind(&t.msg_class)
                .bind(&t.terminal_id)
                .bind(&t.stan)
                .bind(&t.transmitted)
                .bind(&t.acquirer_id)
                .fetch_optional(w.conn())
                .await?;
                w.abort().await?;
                existing
                    .map(|row| Claim::Existing(Box::new(row)))
                    .ok_or_else(|| StoreError::Corrupt("duplicate key without a transaction".into()))
            }

            pub async fn update_transaction(&self, t: &TxnRow) -> StoreResult<()> {
                let mut w = self.writer().await?;
                bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?;
                w.done().await
            }

            pub async fn transaction(&self, id: &str) -> StoreResult<Option<TxnRow>> {
                Ok(sqlx::query_as(concat!("SELECT ", txn_cols!(), " FROM transactions WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            pub async fn transaction_by_key(
                &self,
                class: &str,
                terminal: &str,
                stan: &str,
                transmitted: &str,
                acquirer: &str,
            ) -> StoreResult<Option<TxnRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE msg_class = $1 AND terminal_id = $2 AND stan = $3 AND transmitted = $4 AND acquirer_id = $5"
                ))
                .bind(class)
                .bind(terminal)
                .bind(stan)
                .bind(transmitted)
                .bind(acquirer)
                .fetch_optional(&self.read)
                .await?)
            }

            /// A reversal that arrived before its original and waits for it.
            pub async fn reversal_waiting_for(&self, original_key: &str) -> StoreResult<Option<TxnRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE original_key = $1 AND kind = 'reversal' ORDER BY created_at LIMIT 1"
                ))
                .bind(original_key)
                .fetch_optional(&self.read)
                .await?)
            }

            pub async fn transactions(&self, instrument_id: Option<&str>, limit: i64) -> StoreResult<Vec<TxnRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE ($1 IS NULL OR instrument_id = $1) ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(instrument_id)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            pub async fn release_token(&self, token_id: &str, lease_id: &str) -> StoreResult<()> {
                let mut w = self.writer().await?;
                end_lease(w.conn(), token_id, lease_id, LeaseEnd::Release, 0).await?;
                w.done().await
            }

            /// Records what later steps need of a pending transaction (its token, instrument, kind and
            /// issuer) before anything leaves for an issuer and, with `lease`, leases that token to the
            /// transaction: the lease is the transaction's id, held until its outcome is written or,
            /// after a crash, until it is resolved. One database transaction; false (nothing written)
            /// when the token is not free or the transaction is no longer pending.
            pub async fn hold_for_issuer(&self, t: &TxnRow, lease: Option<&str>, now: i64) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                if let Some(token_id) = lease {
                    let r = sqlx::query(
                        "UPDATE tokens SET lease_id = $2, lease_until = $4 \
                         WHERE id = $1 AND state = 'active' AND expires_at > $3 AND (lease_until IS NULL OR lease_until <= $3) \
                           AND EXISTS (SELECT 1 FROM instruments i WHERE i.id = tokens.instrument_id AND i.status = 'active')",
                    )
                    .bind(token_id)
                    .bind(&t.id)
                    .bind(now)
                    .bind(i64::MAX)
                    .execute(w.conn())
                    .await?;
                    if r.rows_affected() != 1 {
                        w.abort().await?;
                        return Ok(false);
                    }
                }
                if bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(false);
                }
                w.done().await?;
                Ok(true)
            }

            /// Reserves `amount` on the approved payment `original_id` for the pending card cancel `t`
            /// and records the cancel's original, instrument and issuer, in one database transaction;
            /// false (nothing written) when the payment has less than that left to cancel.
            pub async fn reserve_cancel_for(&self, t: &TxnRow, original_id: &str, amount: i64, now: i64) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                let r = sqlx::query(
                    "UPDATE transactions SET cancelled_amount = cancelled_amount + $2, updated_at = $3 \
                     WHERE id = $1 AND status = 'approved' AND amount IS NOT NULL AND cancelled_amount + $2 <= amount",
                )
                .bind(original_id)
                .bind(amount)
                .bind(now)
                .execute(w.conn())
                .await?;
                if r.rows_affected() != 1 || bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(false);
                }
                w.done().await?;
                Ok(true)
            }

            /// Pending payments, cancels and verifications created before `before`: cut off by a
            /// crash (a live one is decided within the issuer timeout). Oldest first.
            pub async fn cut_off(&self, before: i64, limit: i64) -> StoreResult<Vec<TxnRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE status = 'pending' AND created_at < $1 AND kind <> 'reversal' \
                     ORDER BY created_at LIMIT $2"
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            /// Writes the declined outcome `t` over a pending transaction, in one database transaction
            /// with what follows from it: the token leased to it, if any, is released or spent
            /// (`lease`), a card cancel's reservation (`release`: the payment and amount) is given
            /// back, and `advice` is owed to the issuer. False, and nothing written, when the row was
            /// no longer pending (a reversal or `recovery` decided it first, and owed what was owed).
            pub async fn finish_declined(
                &self,
                t: &TxnRow,
                lease: LeaseEnd,
                release: Option<(&str, i64)>,
                advice: Option<&AdviceRow>,
                now: i64,
            ) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                if bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(false);
                }
                if let Some(token_id) = t.token_id.as_deref() {
                    end_lease(w.conn(), token_id, &t.id, lease, now).await?;
                }
                if let Some((original_id, amount)) = release {
                    give_back(w.conn(), original_id, amount, now).await?;
                }
                if let Some(a) = advice {
                    insert_advice(w.conn(), a, now).await?;
                }
                w.done().await?;
                Ok(true)
            }

            /// Transactions stored by earlier versions: a bare duplicate digest (not `h1:`-keyed).
            pub async fn unscrubbed_transactions(&self, limit: i64) -> StoreResult<Vec<(String, String, Option<Vec<u8>>)>> {
                Ok(sqlx::query_as(
                    "SELECT id, content_hash, response FROM transactions WHERE content_hash NOT LIKE 'h1:%' LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            /// Writes each row's keyed hash and scrubbed answer (`id`, `content_hash`, `response`), in
            /// one database transaction.
            pub async fn scrub_transactions(&self, rows: &[(String, String, Option<Vec<u8>>)]) -> StoreResult<u64> {
                let mut w = self.atomic_writer().await?;
                let mut n = 0;
                for (id, hash, response) in rows {
                    n += sqlx::query("UPDATE transactions SET content_hash = $2, response = $3 WHERE id = $1")
                        .bind(id)
                        .bind(hash)
                        .bind(response)
                        .execute(w.conn())
                        .await?
                        .rows_affected();
                }
                w.done().await?;
                Ok(n)
            }

            /// Consumes the leased token and records the approval in one database transaction; false (and
            /// nothing written) when the lease is no longer held.
            pub async fn approve_with_token(&self, t: &TxnRow, token_id: &str, lease_id: &str, now: i64) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                let r = sqlx::query(
                    "UPDATE tokens SET state = 'consumed', consumed_at = $3, lease_id = NULL, lease_until = NULL \
                     WHERE id = $1 AND lease_id = $2 AND state = 'active'",
                )
                .bind(token_id)
                .bind(lease_id)
                .bind(now)
                .execute(w.conn())
                .await?;
                if r.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(false);
                }
                if bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() != 1 {
                    // Reversed meanwhile: the token stays unconsumed.
                    w.abort().await?;
                    return Ok(false);
                }
                w.done().await?;
                Ok(true)
            }

            /// Counts a failed attempt (bad cryptogram, wrong domain); the `max`-th locks the token.
            /// Returns the attempts so far.
            pub async fn fail_token_attempt(&self, token_id: &str, max: i64, now: i64) -> StoreResult<i64> {
                let mut w = self.writer().await?;
                let n: Option<i64> = sqlx::query_scalar(
                    "UPDATE tokens SET failed_attempts = failed_attempts + 1, \
                       state = CASE WHEN failed_attempts + 1 >= $2 AND state = 'active' THEN 'locked' ELSE state END, \
                       locked_at = CASE WHEN failed_attempts + 1 >= $2 AND state = 'active' THEN $3 ELSE locked_at END \
                     WHERE id = $1 RETURNING failed_attempts",
                )
                .bind(token_id)
                .bind(max)
                .bind(now)
                .fetch_optional(w.conn())
                .await?;
                w.done().await?;
                Ok(n.unwrap_or(0))
            }

            /// Marks an approved original reversed and records the reversal (and the advice owed to the
            /// issuer) in one database transaction. False when the original was not approved (any more):
            /// then only the reversal row is written.
            pub async fn reverse(
                &self,
                original_id: &str,
                reversal: &TxnRow,
                undo: Undo<'_>,
                now: i64,
            ) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                let r = sqlx::query(
                    "UPDATE transactions SET status = 'reversed', updated_at = $2 WHERE id = $1 AND status IN ('approved', 'pending')",
                )
                .bind(original_id)
                .bind(now)
                .execute(w.conn())
                .await?;
                let reversed = r.rows_affected() == 1;
                if reversed {
                    undo_with(w.conn(), &undo, now).await?;
                }
                bind_txn!(sqlx::query(TXN_UPDATE), reversal).execute(w.conn()).await?;
                w.done().await?;
                Ok(reversed)
            }

            /// Claims up to `limit` due advices for this node until `lease_until`: their `next_at` moves
            /// there, so no other node sends them meanwhile; a node that dies lets the lease run out
            /// and another picks them up. (The outer `next_at <= $1` is re-checked on PostgreSQL when
            /// two nodes race for a row, so only one claims it.)
            pub async fn claim_due_advices(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<AdviceRow>> {
                let mut w = self.writer().await?;
                let due = sqlx::query_as(
                    "UPDATE issuer_advices SET next_at = $3 WHERE done_at IS NULL AND next_at <= $1 AND id IN \
                     (SELECT id FROM issuer_advices WHERE done_at IS NULL AND next_at <= $1 ORDER BY next_at LIMIT $2) \
                     RETURNING id, transaction_id, issuer_id, attempts, next_at",
                )
                .bind(now)
                .bind(limit)
                .bind(lease_until)
                .fetch_all(w.conn())
                .await?;
                w.done().await?;
                Ok(due)
            }

            pub async fn advice_done(&self, id: &str, now: i64) -> StoreResult<()> {
                let mut w = self.writer().await?;
                sqlx::query("UPDATE issuer_advices SET done_at = $2, attempts = attempts + 1 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                w.done().await
            }

            pub async fn advice_retry(&self, id: &str, next_at: i64) -> StoreResult<()> {
                let mut w = self.writer().await?;
                sqlx::query("UPDATE issuer_advices SET attempts = attempts + 1, next_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(next_at)
                    .execute(w.conn())
                    .await?;
                w.done().await
            }

            // Cancellations.

            /// Reserves `amount` of an approved payment for a cancel; false when it would exceed what is
            /// left (the checked update and the cap trigger both refuse).
            pub async fn insert_settlement(&self, id: &str, closed_at: i64, reason: &str) -> StoreResult<()> {
                let mut w = self.writer().await?;
                sqlx::query("INSERT INTO settlements (id, closed_at, reason) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(closed_at)
                    .bind(reason)
                    .execute(w.conn())
                    .await?;
                w.done().await
            }

            /// Every settlement instant, oldest first.
            pub async fn settlements(&self) -> StoreResult<Vec<i64>> {
                Ok(sqlx::query_scalar("SELECT closed_at FROM settlements ORDER BY closed_at").fetch_all(&self.read).await?)
            }

            // Stored value.

            pub async fn insert_gift(&self, g: &GiftRow, issuance: &JournalEntry, now: i64) -> StoreResult<()> {
                let mut w = self.atomic_writer().await?;
                sqlx::query("INSERT INTO gift_certificates (id, code_hash, currency, face_value, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&g.id)
                    .bind(&g.code_hash)
                    .bind(&g.currency)
                    .bind(g.face_value)
                    .bind(g.expires_at)
                    .bind(g.created_at)
                    .execute(w.conn())
                    .await?;
                if !post_entry(w.conn(), issuance, None, now).await? {
                    return Err(StoreError::Corrupt("gift issuance would overdraw an account".into()));
                }
                w.done().await?;
                Ok(())
            }

            pub async fn gift_by_code_hash(&self, hash: &str) -> StoreResult<Option<GiftRow>> {
                Ok(sqlx::query_as(concat!("SELECT ", gift_cols!(), " FROM gift_certificates WHERE code_hash = $1"))
                    .bind(hash)
                    .fetch_optional(&self.read)
                    .await?)
            }

            pub async fn gift_by_instrument(&self, instrument_id: &str) -> StoreResult<Option<GiftRow>> {
                Ok(sqlx::query_as(concat!("SELECT ", gift_cols!(), " FROM gift_certificates WHERE instrument_id = $1"))
                    .bind(instrument_id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            /// Registers a gift certificate to a wallet as a new instrument; false (nothing written) when the
            /// code is already registered.
            pub async fn register_gift(&self, gift_id: &str, i: &InstrumentRow) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                sqlx::query("INSERT INTO instruments (id, requestor_id, kind, status, created_at, updated_at) VALUES ($1, $2, 'gift', 'active', $3, $3)")
                    .bind(&i.id)
                    .bind(&i.requestor_id)
                    .bind(i.created_at)
                    .execute(w.conn())
                    .await?;
                let r = sqlx::query("UPDATE gift_certificates SET instrument_id = $2 WHERE id = $1 AND instrument_id IS NULL")
                    .bind(gift_id)
                    .bind(&i.id)
                    .execute(w.conn())
                    .await?;
                if r.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(false);
                }
                w.done().await?;
                Ok(true)
            }

            pub async fn account_balance(&self, id: &str) -> StoreResult<i64> {
                let b: Option<i64> = sqlx::query_scalar("SELECT balance FROM ledger_accounts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?;
                Ok(b.unwrap_or(0))
            }

            /// A stored-value payment: the token consumed, the entry posted and the transaction recorded in
            /// one database transaction.
            pub async fn pay_stored_value(
                &self,
                t: &TxnRow,
                token_id: &str,
                entry: &JournalEntry,
                now: i64,
            ) -> StoreResult<Movement> {
                let mut w = self.atomic_writer().await?;
                let r = sqlx::query(
                    "UPDATE tokens SET state = 'consumed', consumed_at = $2 WHERE id = $1 AND state = 'active' AND expires_at > $2 \
                     AND (lease_until IS NULL OR lease_until <= $2)",
                )
                .bind(token_id)
                .bind(now)
                .execute(w.conn())
                .await?;
                if r.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(Movement::TokenGone);
                }
                if !post_entry(w.conn(), entry, Some(&t.id), now).await? {
                    w.abort().await?;
                    return Ok(Movement::Insufficient);
                }
                if bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(Movement::Superseded);
                }
                w.done().await?;
                Ok(Movement::Done)
            }

            /// A stored-value cancel: the amount reserved on the payment (checked update), the restoring
            /// entry posted and the cancel recorded, together.
            pub async fn cancel_stored_value(
                &self,
                original_id: &str,
                amount: i64,
                t: &TxnRow,
                entry: &JournalEntry,
                now: i64,
            ) -> StoreResult<Movement> {
                let mut w = self.atomic_writer().await?;
                let r = sqlx::query(
                    "UPDATE transactions SET cancelled_amount = cancelled_amount + $2, updated_at = $3 \
                     WHERE id = $1 AND status = 'approved' AND amount IS NOT NULL AND cancelled_amount + $2 <= amount",
                )
                .bind(original_id)
                .bind(amount)
                .bind(now)
                .execute(w.conn())
                .await?;
                if r.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(Movement::ExceedsCancellable);
                }
                if !post_entry(w.conn(), entry, Some(&t.id), now).await? {
                    w.abort().await?;
                    return Ok(Movement::Insufficient);
                }
                if bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(Movement::Superseded);
                }
                w.done().await?;
                Ok(Movement::Done)
            }

            /// A stored-value reversal: the original marked reversed once, the entry that restores what it
            /// still holds posted, and the reversal recorded, together. False when the original was not
            /// approved (then only the reversal is recorded).
            pub async fn reverse_stored_value(
                &self,
                original_id: &str,
                reversal: &TxnRow,
                entry: Option<&JournalEntry>,
                release: Option<(&str, i64)>,
                now: i64,
            ) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                let r = sqlx::query(
                    "UPDATE transactions SET status = 'reversed', updated_at = $2 WHERE id = $1 AND status = 'approved'",
                )
                .bind(original_id)
                .bind(now)
                .execute(w.conn())
                .await?;
                let reversed = r.rows_affected() == 1;
                if reversed
                    && let Some(e) = entry
                    && !post_entry(w.conn(), e, Some(&reversal.id), now).await?
                {
                    return Err(StoreError::Corrupt("a reversal would overdraw an account".into()));
                }
                if let (true, Some((paid, amount))) = (reversed, release) {
                    give_back(w.conn(), paid, amount, now).await?;
                }
                bind_txn!(sqlx::query(TXN_UPDATE), reversal).execute(w.conn()).await?;
                w.done().await?;
                Ok(reversed)
            }

            // Local currency.

            /// Adds a region, or updates its rules (existing wallets keep their grants; new rules apply from
            /// the next operation). True when it was new.
            pub async fn upsert_region(&self, r: &RegionRow) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let existed: Option<bool> =
                    sqlx::query_scalar("SELECT TRUE FROM regions WHERE id = $1").bind(&r.id).fetch_optional(w.conn()).await?;
                sqlx::query(
                    "INSERT INTO regions (id, name, currency, incentive_rate, monthly_bonus_cap, bonus_lifetime_seconds, \
                     cancel_restore, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, incentive_rate = excluded.incentive_rate, \
                     monthly_bonus_cap = excluded.monthly_bonus_cap, bonus_lifetime_seconds = excluded.bonus_lifetime_seconds, \
                     cancel_restore = excluded.cancel_restore, updated_at = excluded.updated_at",
                )
                .bind(&r.id)
                .bind(&r.name)
                .bind(&r.currency)
                .bind(&r.incentive_rate)
                .bind(r.monthly_bonus_cap)
                .bind(r.bonus_lifetime_seconds)
                .bind(&r.cancel_restore)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(existed.is_none())
            }

            pub async fn region(&self, id: &str) -> StoreResult<Option<RegionRow>> {
                Ok(sqlx::query_as(concat!("SELECT ", region_cols!(), " FROM regions WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            pub async fn regions(&self) -> StoreResult<Vec<RegionRow>> {
                Ok(sqlx::query_as(concat!("SELECT ", region_cols!(), " FROM regions ORDER BY id"))
                    .fetch_all(&self.read)
                    .await?)
            }

            /// Adds a merchant or moves it (name, region). True when it was new.
            pub async fn upsert_merchant(&self, m: &MerchantRow) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let existed: Option<bool> =
                    sqlx::query_scalar("SELECT TRUE FROM merchants WHERE id = $1").bind(&m.id).fetch_optional(w.conn()).await?;
                sqlx::query(
                    "INSERT INTO merchants (id, name, region_id, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, region_id = excluded.region_id",
                )
                .bind(&m.id)
                .bind(&m.name)
                .bind(&m.region_id)
                .bind(m.created_at)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(existed.is_none())
            }

            pub async fn merchant(&self, id: &str) -> StoreResult<Option<MerchantRow>> {
                Ok(sqlx::query_as("SELECT id, name, region_id, created_at FROM merchants WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            pub async fn merchants(&self, region: Option<&str>) -> StoreResult<Vec<MerchantRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, name, region_id, created_at FROM merchants WHERE $1 IS NULL OR region_id = $1 ORDER BY id",
                )
                .bind(region)
                .fetch_all(&self.read)
                .await?)
            }

            /// Opens a wallet as a new instrument. None when the requestor already has one in the region
            /// (its instrument id is returned instead, nothing written).
            pub async fn insert_wallet(&self, i: &InstrumentRow, region_id: &str) -> StoreResult<Option<String>> {
                let mut w = self.atomic_writer().await?;
                let existing: Option<String> =
                    sqlx::query_scalar(concat!(
                        "SELECT instrument_id FROM local_wallets WHERE requestor_id = $1 AND region_id = $2",
                        $for_update
                    ))
                        .bind(&i.requestor_id)
                        .bind(region_id)
                        .fetch_optional(w.conn())
                        .await?;
                if let Some(id) = existing {
                    w.abort().await?;
                    return Ok(Some(id));
                }
                sqlx::query("INSERT INTO instruments (id, requestor_id, kind, status, created_at, updated_at) VALUES ($1, $2, 'local', 'active', $3, $3)")
                    .bind(&i.id)
                    .bind(&i.requestor_id)
                    .bind(i.created_at)
                    .execute(w.conn())
                    .await?;
                sqlx::query(
                    "INSERT INTO local_wallets (instrument_id, requestor_id, region_id, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&i.id)
                .bind(&i.requestor_id)
                .bind(region_id)
                .bind(i.created_at)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(None)
            }

            pub async fn wallet_region(&self, instrument_id: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT region_id FROM local_wallets WHERE instrument_id = $1")
                    .bind(instrument_id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            /// A wallet, its two ledger balances and optionally one of its payments, read in one snapshot.
            pub async fn wallet_snapshot(
                &self,
                instrument_id: &str,
                accounts: [&str; 2],
                payment: Option<&str>,
            ) -> StoreResult<Option<WalletSnapshot>> {
                let mut tx = self.read.begin().await?;
                // One snapshot for every read below (PostgreSQL needs to be told; SQLite's WAL read
                // transaction is one already).
                if !$snapshot.is_empty() {
                    sqlx::query($snapshot).execute(&mut *tx).await?;
                }
                let row = sqlx::query(
                    "SELECT instrument_id, requestor_id, region_id, bonus_month, charged_in_month, next_grant_id, version, \
                     created_at FROM local_wallets WHERE instrument_id = $1",
                )
                .bind(instrument_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let grants: Vec<GrantRow> = sqlx::query_as(
                    "SELECT grant_id, granted_at, expires_at, amount, remaining FROM bonus_grants WHERE instrument_id = $1 \
                     ORDER BY grant_id",
                )
                .bind(instrument_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut balances = [0i64; 2];
                for (b, account) in balances.iter_mut().zip(accounts) {
                    let v: Option<i64> = sqlx::query_scalar("SELECT balance FROM ledger_accounts WHERE id = $1")
                        .bind(account)
                        .fetch_optional(&mut *tx)
                        .await?;
                    *b = v.unwrap_or(0);
                }
                let payment = match payment {
                    Some(id) => local_payment_in(&mut tx, id).await?,
                    None => None,
                };
                tx.commit().await?;
                Ok(Some(WalletSnapshot {
                    wallet: WalletRow {
                        instrument_id: row.try_get("instrument_id")?,
                        requestor_id: row.try_get("requestor_id")?,
                        region_id: row.try_get("region_id")?,
                        bonus_month: row.try_get("bonus_month")?,
                        charged_in_month: row.try_get("charged_in_month")?,
                        next_grant_id: row.try_get("next_grant_id")?,
                        version: row.try_get("version")?,
                        created_at: row.try_get("created_at")?,
                        grants,
                    },
                    principal: balances[0],
                    bonus: balances[1],
                    payment,
                }))
            }

            pub async fn local_payment(&self, transaction_id: &str) -> StoreResult<Option<LocalPaymentRow>> {
                let mut conn = self.read.acquire().await?;
                local_payment_in(&mut conn, transaction_id).await
            }

            /// Applies one change to a wallet, all of it or nothing (see [`WalletWrite`]).
            pub async fn write_wallet(&self, change: &WalletWrite<'_>, now: i64) -> StoreResult<WalletOutcome> {
                let mut w = self.atomic_writer().await?;
                if let Some(wallet) = change.wallet {
                    let r = sqlx::query(
                        "UPDATE local_wallets SET bonus_month = $3, charged_in_month = $4, next_grant_id = $5, \
                         version = version + 1 WHERE instrument_id = $1 AND version = $2",
                    )
                    .bind(&wallet.instrument_id)
                    .bind(wallet.version)
                    .bind(&wallet.bonus_month)
                    .bind(wallet.charged_in_month)
                    .bind(wallet.next_grant_id)
                    .execute(w.conn())
                    .await?;
                    if r.rows_affected() != 1 {
                        w.abort().await?;
                        return Ok(WalletOutcome::Conflict);
                    }
                    let kept: Vec<i64> = wallet.grants.iter().map(|g| g.grant_id).collect();
                    let stored: Vec<i64> = sqlx::query_scalar("SELECT grant_id FROM bonus_grants WHERE instrument_id = $1")
                        .bind(&wallet.instrument_id)
                        .fetch_all(w.conn())
                        .await?;
                    for gone in stored.iter().filter(|g| !kept.contains(g)) {
                        sqlx::query("DELETE FROM bonus_grants WHERE instrument_id = $1 AND grant_id = $2")
                            .bind(&wallet.instrument_id)
                            .bind(gone)
                            .execute(w.conn())
                            .await?;
                    }
                    for g in &wallet.grants {
                        sqlx::query(
                            "INSERT INTO bonus_grants (instrument_id, grant_id, granted_at, expires_at, amount, remaining) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (instrument_id, grant_id) DO UPDATE SET remaining = excluded.remaining",
                        )
                        .bind(&wallet.instrument_id)
                        .bind(g.grant_id)
                        .bind(g.granted_at)
                        .bind(g.expires_at)
                        .bind(g.amount)
                        .bind(g.remaining)
                        .execute(w.conn())
                        .await?;
                    }
                }
                if let Some(token_id) = change.consume_token {
                    let r = sqlx::query(
                        "UPDATE tokens SET state = 'consumed', consumed_at = $2 WHERE id = $1 AND state = 'active' AND expires_at > $2 \
                         AND (lease_until IS NULL OR lease_until <= $2)",
                    )
                    .bind(token_id)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                    if r.rows_affected() != 1 {
                        w.abort().await?;
                        return Ok(WalletOutcome::TokenGone);
                    }
                }
                if let Some(original) = change.reverse {
                    let r = sqlx::query(
                        "UPDATE transactions SET status = 'reversed', updated_at = $2 WHERE id = $1 AND status = 'approved'",
                    )
                    .bind(original)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                    if r.rows_affected() != 1 {
                        w.abort().await?;
                        return Ok(WalletOutcome::NotApproved);
                    }
                }
                if let Some((original, amount)) = change.cancel {
                    let r = sqlx::query(
                        "UPDATE transactions SET cancelled_amount = cancelled_amount + $2, updated_at = $3 \
                         WHERE id = $1 AND status = 'approved' AND amount IS NOT NULL AND cancelled_amount + $2 <= amount",
                    )
                    .bind(original)
                    .bind(amount)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                    if r.rows_affected() != 1 {
                        w.abort().await?;
                        return Ok(WalletOutcome::ExceedsCancellable);
                    }
                }
                for e in &change.entries {
                    if !post_entry(w.conn(), e, change.transaction_id, now).await? {
                        w.abort().await?;
                        return Ok(WalletOutcome::Insufficient);
                    }
                }
                if let Some(p) = change.new_payment {
                    sqlx::query(
                        "INSERT INTO local_payments (transaction_id, instrument_id, principal, bonus, cancelled_principal, \
                         cancelled_bonus, forfeited_bonus) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&p.transaction_id)
                    .bind(&p.instrument_id)
                    .bind(p.principal)
                    .bind(p.bonus)
                    .bind(p.cancelled_principal)
                    .bind(p.cancelled_bonus)
                    .bind(p.forfeited_bonus)
                    .execute(w.conn())
                    .await?;
                    for (seq, t) in p.takes.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO local_payment_takes (transaction_id, seq, grant_id, expires_at, taken, returned) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(&p.transaction_id)
                        .bind(seq as i64)
                        .bind(t.grant_id)
                        .bind(t.expires_at)
                        .bind(t.taken)
                        .bind(t.returned)
                        .execute(w.conn())
                        .await?;
                    }
                }
                if let Some(p) = change.payment_update {
                    sqlx::query(
                        "UPDATE local_payments SET cancelled_principal = $2, cancelled_bonus = $3, forfeited_bonus = $4 \
                         WHERE transaction_id = $1",
                    )
                    .bind(&p.transaction_id)
                    .bind(p.cancelled_principal)
                    .bind(p.cancelled_bonus)
                    .bind(p.forfeited_bonus)
                    .execute(w.conn())
                    .await?;
                    for t in &p.takes {
                        sqlx::query("UPDATE local_payment_takes SET returned = $3 WHERE transaction_id = $1 AND grant_id = $2")
                            .bind(&p.transaction_id)
                            .bind(t.grant_id)
                            .bind(t.returned)
                            .execute(w.conn())
                            .await?;
                    }
                }
                if let Some(t) = change.txn
                    && bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() != 1
                {
                    w.abort().await?;
                    return Ok(WalletOutcome::Superseded);
                }
                w.done().await?;
                Ok(WalletOutcome::Done)
            }
        }
    };
}
