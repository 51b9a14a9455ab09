//! Settlements, gift certificates and stored-value movements (payment, cancel, reversal with their ledger entries).
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_stored_value {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal
    ) => {
        impl $Store {
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
                let row: Option<GiftRow<i64>> = sqlx::query_as(concat!("SELECT ", gift_cols!(), " FROM gift_certificates WHERE code_hash = $1"))
                    .bind(hash)
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|r| r.read_money(self.money())).transpose()
            }

            pub async fn gift_by_instrument(&self, instrument_id: &str) -> StoreResult<Option<GiftRow>> {
                let row: Option<GiftRow<i64>> = sqlx::query_as(concat!("SELECT ", gift_cols!(), " FROM gift_certificates WHERE instrument_id = $1"))
                    .bind(instrument_id)
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|r| r.read_money(self.money())).transpose()
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
                let data = crate::events::instrument_data(&i.id, "active");
                emit(w.conn(), &EventDraft { instrument_id: &i.id, kind: "instrument.created", data, now: i.created_at }).await?;
                w.done().await?;
                Ok(true)
            }

            pub async fn account_balance(&self, id: &str) -> StoreResult<Option<Amount>> {
                let b: Option<(i64, String)> = sqlx::query_as("SELECT balance, currency FROM ledger_accounts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?;
                b.map(|(balance, currency)| self.money().read(Some(&currency), balance)).transpose()
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
                     AND suspended_at IS NULL AND (lease_until IS NULL OR lease_until <= $2)",
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
                if let Some(instrument_id) = t.instrument_id.as_deref() {
                    let data = crate::events::token_data(token_id, "consumed");
                    emit(w.conn(), &EventDraft { instrument_id, kind: "token.consumed", data, now }).await?;
                }
                emit_txn(w.conn(), t).await?;
                w.done().await?;
                Ok(Movement::Done)
            }

            /// A stored-value cancel: the amount reserved on the payment (checked update), the restoring
            /// entry posted and the cancel recorded, together.
            pub async fn cancel_stored_value(
                &self,
                original_id: &str,
                amount: Amount,
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
                emit_txn(w.conn(), t).await?;
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
                release: Option<(&str, Amount)>,
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
                if bind_txn!(sqlx::query(TXN_UPDATE), reversal).execute(w.conn()).await?.rows_affected() == 1 && reversed {
                    emit_txn(w.conn(), reversal).await?;
                }
                w.done().await?;
                Ok(reversed)
            }
        }
    };
}
