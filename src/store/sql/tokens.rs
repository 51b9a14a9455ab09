//! Tokens: insertion under the database's uniqueness rules, the bulk seed, lookups, consumption, merchant tokens.
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_tokens {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal
    ) => {
        impl $Store {
            /// Whether a live token has this number (after a token insert was refused).
            async fn number_live(&self, number: &str) -> StoreResult<bool> {
                let live: Option<bool> = sqlx::query_scalar("SELECT TRUE FROM tokens WHERE token = $1 AND state = 'active'")
                    .bind(number)
                    .fetch_optional(&self.read)
                    .await?;
                Ok(live.is_some())
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
                                .push_bind(c.assurance)
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


            pub async fn expire_token_number(&self, token: &str, now: i64) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                let ended: Vec<(String, String)> = sqlx::query_as(
                    "UPDATE tokens SET state = 'expired' WHERE token = $1 AND state = 'active' AND expires_at <= $2 \
                     RETURNING id, instrument_id",
                )
                .bind(token)
                .bind(now)
                .fetch_all(w.conn())
                .await?;
                for (id, instrument_id) in &ended {
                    let data = crate::events::token_data(id, "expired");
                    emit(w.conn(), &EventDraft { instrument_id, kind: "token.expired", data, now }).await?;
                }
                w.done().await?;
                Ok(!ended.is_empty())
            }

            pub async fn token_by_number(&self, token: &str) -> StoreResult<Option<TokenRow>> {
                let row: Option<TokenRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    token_cols!(),
                    " ",
                    token_by_number_from!()
                ))
                .bind(token)
                .fetch_optional(&self.read)
                .await?;
                row.map(|r| r.read_money(self.money())).transpose()
            }

            pub async fn merchant_token(&self, instrument_id: &str, merchant_id: &str) -> StoreResult<Option<TokenRow>> {
                let row: Option<TokenRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens WHERE instrument_id = $1 AND merchant_id = $2 AND multi_use AND state = 'active'"
                ))
                .bind(instrument_id)
                .bind(merchant_id)
                .fetch_optional(&self.read)
                .await?;
                row.map(|r| r.read_money(self.money())).transpose()
            }

            /// Ends a live token: `expired` when its TTL has passed by `now`, else `revoked` (when
            /// `revoke`). True if it was live.
            pub async fn end_token(&self, id: &str, revoke: bool, now: i64) -> StoreResult<bool> {
                let mut w = self.atomic_writer().await?;
                let ended: Option<(String, String)> = sqlx::query_as(
                    "UPDATE tokens SET state = CASE WHEN expires_at <= $2 THEN 'expired' ELSE 'revoked' END \
                     WHERE id = $1 AND state = 'active' AND (expires_at <= $2 OR $3) RETURNING state, instrument_id",
                )
                .bind(id)
                .bind(now)
                .bind(revoke)
                .fetch_optional(w.conn())
                .await?;
                if let Some((state, instrument_id)) = &ended {
                    let (kind, status) =
                        if state == "expired" { ("token.expired", "expired") } else { ("token.deleted", "deleted") };
                    let data = crate::events::token_data(id, status);
                    emit(w.conn(), &EventDraft { instrument_id, kind, data, now }).await?;
                }
                w.done().await?;
                Ok(ended.is_some())
            }

            pub async fn suspend_token(&self, id: &str, suspend: bool, now: i64) -> StoreResult<Option<TokenRow>> {
                let mut w = self.atomic_writer().await?;
                let row: Option<TokenRow<i64>> = sqlx::query_as(concat!(
                    "UPDATE tokens SET suspended_at = CASE WHEN $2 THEN $3 ELSE NULL END \
                     WHERE id = $1 AND state = 'active' AND expires_at > $3 AND ((suspended_at IS NULL) = $2) \
                     RETURNING ",
                    token_cols!()
                ))
                .bind(id)
                .bind(suspend)
                .bind(now)
                .fetch_optional(w.conn())
                .await?;
                match row {
                    Some(row) => {
                        let (kind, status) = if suspend { ("token.suspended", "suspended") } else { ("token.resumed", "active") };
                        let data = crate::events::token_data(&row.id, status);
                        emit(w.conn(), &EventDraft { instrument_id: &row.instrument_id, kind, data, now }).await?;
                        w.done().await?;
                        Ok(Some(row.read_money(self.money())?))
                    }
                    None => {
                        w.abort().await?;
                        Ok(None)
                    }
                }
            }

            pub async fn par_known(&self, par: &str) -> StoreResult<bool> {
                let found: Option<String> = sqlx::query_scalar("SELECT id FROM instruments WHERE par = $1 LIMIT 1")
                    .bind(par)
                    .fetch_optional(&self.read)
                    .await?;
                Ok(found.is_some())
            }

            pub async fn tokens_by_par(&self, par: &str, all: bool, limit: i64) -> StoreResult<Vec<TokenRow>> {
                let rows: Vec<TokenRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens WHERE instrument_id IN (SELECT id FROM instruments WHERE par = $1) \
                     AND ($2 OR state = 'active') ORDER BY created_at DESC, id DESC LIMIT $3"
                ))
                .bind(par)
                .bind(all)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
                rows.into_iter().map(|r| r.read_money(self.money())).collect()
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

            /// Lets VAN `van_id` detokenize the tokens of `requestors` (already served ones stay).
            pub async fn serve_requestors(&self, van_id: &str, requestors: &[String], now: i64) -> StoreResult<()> {
                let mut w = self.atomic_writer().await?;
                for r in requestors {
                    sqlx::query(
                        "INSERT INTO van_requestors (van_id, requestor_id, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (van_id, requestor_id) DO NOTHING",
                    )
                    .bind(van_id)
                    .bind(r)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                }
                w.done().await
            }

            pub async fn merchant_owner(&self, merchant_id: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT requestor_id FROM merchant_requestors WHERE merchant_id = $1")
                    .bind(merchant_id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            pub async fn token(&self, id: &str) -> StoreResult<Option<TokenRow>> {
                let row: Option<TokenRow<i64>> = sqlx::query_as(concat!("SELECT ", token_cols!(), " FROM tokens WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|r| r.read_money(self.money())).transpose()
            }

            pub async fn consume_token(&self, token: &str, now: i64) -> StoreResult<Consume> {
                let mut w = self.atomic_writer().await?;
                let consumed: Option<TokenRow<i64>> = sqlx::query_as(concat!(
                    "UPDATE tokens SET state = 'consumed', consumed_at = $2 \
                     WHERE token = $1 AND state = 'active' AND suspended_at IS NULL AND expires_at > $2 \
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
                    let data = crate::events::token_data(&row.id, "consumed");
                    emit(w.conn(), &EventDraft { instrument_id: &row.instrument_id, kind: "token.consumed", data, now }).await?;
                    w.done().await?;
                    return Ok(Consume::Consumed(row.read_money(self.money())?));
                }
                let row: Option<TokenRow<i64>> = sqlx::query_as(concat!(
                    "SELECT ",
                    token_cols!(),
                    " ",
                    token_by_number_from!()
                ))
                .bind(token)
                .fetch_optional(w.conn())
                .await?;
                w.abort().await?;
                Ok(match row {
                    Some(row) => Consume::Refused(row.read_money(self.money())?),
                    None => Consume::Unknown,
                })
            }
        }
    };
}
