//! ISO 8583 transactions: the duplicate-key claim, outcomes, token leases, reversals, the recovery of transactions cut off by a crash, and the reversal advices owed to issuers.
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_transactions {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal
    ) => {
        impl $Store {
            // Payments.

            /// The transaction holding `t`'s duplicate key, read through the writer (it may be in the
            /// writer's uncommitted epoch).
            async fn holder_of_key(&self, conn: &mut $Conn, t: &TxnRow) -> StoreResult<Box<TxnRow>> {
                let existing: Option<TxnRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE msg_class = $1 AND terminal_id = $2 AND stan = $3 AND transmitted = $4 AND acquirer_id = $5"
                ))
                .bind(&t.msg_class)
                .bind(&t.terminal_id)
                .bind(&t.stan)
                .bind(&t.transmitted)
                .bind(&t.acquirer_id)
                .fetch_optional(&mut *conn)
                .await?;
                let existing = existing.ok_or_else(|| StoreError::Corrupt("duplicate key without a transaction".into()))?;
                Ok(Box::new(existing.read_money(self.money())?))
            }

            pub async fn claim_transaction(&self, t: &TxnRow) -> StoreResult<Claim> {
                let mut w = self.writer().await?;
                let r = bind_txn!(sqlx::query(TXN_INSERT), t).execute(w.conn()).await?;
                if r.rows_affected() == 1 {
                    w.done().await?;
                    return Ok(Claim::New);
                }
                let existing = self.holder_of_key(w.conn(), t).await;
                w.abort().await?;
                Ok(Claim::Existing(existing?))
            }

            pub async fn update_transaction(&self, t: &TxnRow) -> StoreResult<()> {
                let mut w = self.atomic_writer().await?;
                if bind_txn!(sqlx::query(TXN_UPDATE), t).execute(w.conn()).await?.rows_affected() == 1 {
                    emit_txn(w.conn(), t).await?;
                }
                w.done().await
            }

            pub async fn transaction(&self, id: &str) -> StoreResult<Option<TxnRow>> {
                let rows: Option<TxnRow<i64>> = sqlx::query_as(concat!("SELECT ", txn_cols!(), " FROM transactions WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?;
                rows.map(|r| r.read_money(self.money())).transpose()
            }

            pub async fn transaction_by_key(
                &self,
                class: &str,
                terminal: &str,
                stan: &str,
                transmitted: &str,
                acquirer: &str,
            ) -> StoreResult<Option<TxnRow>> {
                let rows: Option<TxnRow<i64>> = sqlx::query_as(concat!(
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
                .await?;
                rows.map(|r| r.read_money(self.money())).transpose()
            }

            /// A reversal that arrived before its original and waits for it.
            pub async fn reversal_waiting_for(&self, original_key: &str) -> StoreResult<Option<TxnRow>> {
                let rows: Option<TxnRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE original_key = $1 AND kind = 'reversal' ORDER BY created_at LIMIT 1"
                ))
                .bind(original_key)
                .fetch_optional(&self.read)
                .await?;
                rows.map(|r| r.read_money(self.money())).transpose()
            }

            pub async fn transactions(&self, instrument_id: Option<&str>, limit: i64) -> StoreResult<Vec<TxnRow>> {
                let rows: Vec<TxnRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE ($1 IS NULL OR instrument_id = $1) ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(instrument_id)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
                rows.into_iter().map(|r| r.read_money(self.money())).collect()
            }

            pub async fn release_token(&self, token_id: &str, lease_id: &str) -> StoreResult<()> {
                let mut w = self.writer().await?;
                end_lease(w.conn(), token_id, lease_id, LeaseEnd::Release, 0).await?;
                w.done().await
            }

            /// Records what later steps need of a pending transaction (its token, instrument, kind and
            /// issuer) before anything leaves for an issuer; false (nothing written) when it is no
            /// longer pending. (A one-time token's lease is taken with the claim: `claim_holding`.)
            pub async fn hold_for_issuer(&self, t: &TxnRow) -> StoreResult<bool> {
                let mut w = self.writer().await?;
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
            pub async fn reserve_cancel_for(&self, t: &TxnRow, original_id: &str, amount: Amount, now: i64) -> StoreResult<bool> {
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
                let rows: Vec<TxnRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    txn_cols!(),
                    " FROM transactions WHERE status = 'pending' AND created_at < $1 AND kind <> 'reversal' \
                     ORDER BY created_at LIMIT $2"
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
                rows.into_iter().map(|r| r.read_money(self.money())).collect()
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
                release: Option<(&str, Amount)>,
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
                emit_txn(w.conn(), t).await?;
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

            /// Counts a failed attempt (bad cryptogram, wrong domain); the `max`-th locks the token.
            /// Returns the attempts so far.
            pub async fn fail_token_attempt(&self, token_id: &str, max: i64, now: i64) -> StoreResult<i64> {
                let mut w = self.atomic_writer().await?;
                let n: Option<(i64, String, Option<i64>, String)> = sqlx::query_as(
                    "UPDATE tokens SET failed_attempts = failed_attempts + 1, \
                       state = CASE WHEN failed_attempts + 1 >= $2 AND state = 'active' THEN 'locked' ELSE state END, \
                       locked_at = CASE WHEN failed_attempts + 1 >= $2 AND state = 'active' THEN $3 ELSE locked_at END \
                     WHERE id = $1 RETURNING failed_attempts, state, locked_at, instrument_id",
                )
                .bind(token_id)
                .bind(max)
                .bind(now)
                .fetch_optional(w.conn())
                .await?;
                // Locked by this very attempt: its requestor hears of it once.
                if let Some((_, state, Some(locked_at), instrument_id)) = &n
                    && state == "locked"
                    && *locked_at == now
                {
                    let data = crate::events::token_data(token_id, "locked");
                    emit(w.conn(), &EventDraft { instrument_id, kind: "token.locked", data, now }).await?;
                }
                w.done().await?;
                Ok(n.map_or(0, |r| r.0))
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
                if bind_txn!(sqlx::query(TXN_UPDATE), reversal).execute(w.conn()).await?.rows_affected() == 1 && reversed {
                    emit_txn(w.conn(), reversal).await?;
                }
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
        }
    };
}
