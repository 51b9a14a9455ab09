//! Local currency: regions, merchants, wallets and their atomic writes.
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_local {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal
    ) => {
        impl $Store {
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
                let row: Option<RegionRow<i64>> = sqlx::query_as(concat!("SELECT ", region_cols!(), " FROM regions WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|r| r.read_money(self.money())).transpose()
            }

            pub async fn regions(&self) -> StoreResult<Vec<RegionRow>> {
                let rows: Vec<RegionRow<i64>> = sqlx::query_as(concat!("SELECT ", region_cols!(), " FROM regions ORDER BY id"))
                    .fetch_all(&self.read)
                    .await?;
                rows.into_iter().map(|r| r.read_money(self.money())).collect()
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
                let data = crate::events::instrument_data(&i.id, "active");
                emit(w.conn(), &EventDraft { instrument_id: &i.id, kind: "instrument.created", data, now: i.created_at }).await?;
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
                    "SELECT w.instrument_id, w.requestor_id, w.region_id, w.bonus_month, w.charged_in_month, w.next_grant_id, \
                     w.version, w.created_at, r.currency FROM local_wallets w JOIN regions r ON r.id = w.region_id \
                     WHERE w.instrument_id = $1",
                )
                .bind(instrument_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                // The wallet's amounts are in its region's currency.
                let currency: String = row.try_get("currency")?;
                let money = |minor: i64| self.money().read(Some(&currency), minor);
                let grants: Vec<GrantRow<i64>> = sqlx::query_as(
                    "SELECT grant_id, granted_at, expires_at, amount, remaining FROM bonus_grants WHERE instrument_id = $1 \
                     ORDER BY grant_id",
                )
                .bind(instrument_id)
                .fetch_all(&mut *tx)
                .await?;
                let grants = grants.into_iter().map(|g| g.read_money(self.money(), &currency)).collect::<StoreResult<_>>()?;
                let mut balances = [0i64; 2];
                for (b, account) in balances.iter_mut().zip(accounts) {
                    let v: Option<i64> = sqlx::query_scalar("SELECT balance FROM ledger_accounts WHERE id = $1")
                        .bind(account)
                        .fetch_optional(&mut *tx)
                        .await?;
                    *b = v.unwrap_or(0);
                }
                let payment = match payment {
                    Some(id) => local_payment_in(&mut tx, id, self.money()).await?,
                    None => None,
                };
                tx.commit().await?;
                Ok(Some(WalletSnapshot {
                    wallet: WalletRow {
                        instrument_id: row.try_get("instrument_id")?,
                        requestor_id: row.try_get("requestor_id")?,
                        region_id: row.try_get("region_id")?,
                        bonus_month: row.try_get("bonus_month")?,
                        charged_in_month: money(row.try_get("charged_in_month")?)?,
                        next_grant_id: row.try_get("next_grant_id")?,
                        version: row.try_get("version")?,
                        created_at: row.try_get("created_at")?,
                        grants,
                    },
                    principal: money(balances[0])?,
                    bonus: money(balances[1])?,
                    payment,
                }))
            }

            pub async fn local_payment(&self, transaction_id: &str) -> StoreResult<Option<LocalPaymentRow>> {
                let mut conn = self.read.acquire().await?;
                local_payment_in(&mut conn, transaction_id, self.money()).await
            }

            /// Writes a wallet's new state and the changes that led to it, in order, all of it or
            /// nothing: the wallet row only if it is still at `wallet.version` (else `Conflict`), then each
            /// change (see [`WalletWrite`]), their ledger entries posted together. On anything but `Done`,
            /// the index of the change it stopped at (0 for the wallet itself).
            pub async fn write_wallet(
                &self,
                wallet: &WalletRow,
                changes: &[WalletWrite<'_>],
            ) -> StoreResult<(WalletOutcome, usize)> {
                // Entries are posted for all changes at once; only when that finds an account short are
                // they posted change by change, to tell which change it was.
                for one_by_one in [false, true] {
                    let mut w = self.atomic_writer().await?;
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
                        return Ok((WalletOutcome::Conflict, 0));
                    }
                    write_grants(w.conn(), wallet).await?;
                    for (i, change) in changes.iter().enumerate() {
                        let mut outcome = write_wallet_change(w.conn(), change).await?;
                        if one_by_one
                            && outcome == WalletOutcome::Done
                            && !post_entries(w.conn(), &posted(&changes[i..=i])).await?
                        {
                            outcome = WalletOutcome::Insufficient;
                        }
                        if outcome != WalletOutcome::Done {
                            w.abort().await?;
                            return Ok((outcome, i));
                        }
                    }
                    if !one_by_one && !post_entries(w.conn(), &posted(changes)).await? {
                        w.abort().await?;
                        if changes.len() == 1 {
                            return Ok((WalletOutcome::Insufficient, 0));
                        }
                        continue;
                    }
                    w.done().await?;
                    return Ok((WalletOutcome::Done, changes.len()));
                }
                Err(StoreError::Corrupt("a wallet's entries were short together but not one by one".into()))
            }
        }

        /// The ledger entries of wallet changes, each with its transaction.
        fn posted<'a>(changes: &'a [WalletWrite<'a>]) -> Vec<Posted<'a>> {
            changes
                .iter()
                .flat_map(|c| c.entries.iter().map(|entry| Posted { entry, transaction_id: c.transaction_id, now: c.now }))
                .collect()
        }

        /// A wallet's bonus grants as `wallet` holds them, inside the caller's transaction.
        async fn write_grants(conn: &mut $Conn, wallet: &WalletRow) -> StoreResult<()> {
            let kept: Vec<i64> = wallet.grants.iter().map(|g| g.grant_id).collect();
            let stored: Vec<i64> = sqlx::query_scalar("SELECT grant_id FROM bonus_grants WHERE instrument_id = $1")
                .bind(&wallet.instrument_id)
                .fetch_all(&mut *conn)
                .await?;
            for gone in stored.iter().filter(|g| !kept.contains(g)) {
                sqlx::query("DELETE FROM bonus_grants WHERE instrument_id = $1 AND grant_id = $2")
                    .bind(&wallet.instrument_id)
                    .bind(gone)
                    .execute(&mut *conn)
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
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// One change to a wallet but its ledger entries, inside the caller's transaction: anything but
        /// `Done` means a guard held and the caller must roll back.
        async fn write_wallet_change(conn: &mut $Conn, change: &WalletWrite<'_>) -> StoreResult<WalletOutcome> {
        let now = change.now;
        if let Some(token_id) = change.consume_token {
            let r = sqlx::query(
                "UPDATE tokens SET state = 'consumed', consumed_at = $2 WHERE id = $1 AND state = 'active' AND expires_at > $2 \
                 AND suspended_at IS NULL AND (lease_until IS NULL OR lease_until <= $2)",
            )
            .bind(token_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if r.rows_affected() != 1 {
                return Ok(WalletOutcome::TokenGone);
            }
        }
        if let Some(original) = change.reverse {
            let r = sqlx::query(
                "UPDATE transactions SET status = 'reversed', updated_at = $2 WHERE id = $1 AND status = 'approved'",
            )
            .bind(original)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if r.rows_affected() != 1 {
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
            .execute(&mut *conn)
            .await?;
            if r.rows_affected() != 1 {
                return Ok(WalletOutcome::ExceedsCancellable);
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
            .execute(&mut *conn)
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
                .execute(&mut *conn)
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
            .execute(&mut *conn)
            .await?;
            for t in &p.takes {
                sqlx::query("UPDATE local_payment_takes SET returned = $3 WHERE transaction_id = $1 AND grant_id = $2")
                    .bind(&p.transaction_id)
                    .bind(t.grant_id)
                    .bind(t.returned)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        if let Some(t) = change.txn {
            if bind_txn!(sqlx::query(TXN_UPDATE), t).execute(&mut *conn).await?.rows_affected() != 1 {
                return Ok(WalletOutcome::Superseded);
            }
            if let (Some(token_id), Some(instrument_id)) = (change.consume_token, t.instrument_id.as_deref()) {
                let data = crate::events::token_data(token_id, "consumed");
                emit(&mut *conn, &EventDraft { instrument_id, kind: "token.consumed", data, now }).await?;
            }
            emit_txn(&mut *conn, t).await?;
        }
            Ok(WalletOutcome::Done)
        }
    };
}
