//! Requestors and their API keys, the vault's data keys, and card instruments.
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_vault {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal
    ) => {
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

            pub async fn requestor(&self, id: &str) -> StoreResult<Option<RequestorRow>> {
                Ok(sqlx::query_as("SELECT id, trid, name, scopes, created_at FROM requestors WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
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

            /// Ends an API key now: sets `revoked_at` to `now` unless it is already at or before `now`.
            /// A key in a rotation's overlap (`revoked_at` later than `now`) ends now.
            pub async fn revoke_api_key(&self, key_id: &str, now: i64) -> StoreResult<KeyChange> {
                let mut w = self.atomic_writer().await?;
                let row: Option<(String, Option<i64>)> = sqlx::query_as(concat!(
                    "SELECT requestor_id, revoked_at FROM api_keys WHERE key_id = $1",
                    $for_update
                ))
                .bind(key_id)
                .fetch_optional(w.conn())
                .await?;
                let Some((requestor_id, revoked_at)) = row else {
                    w.abort().await?;
                    return Ok(KeyChange::Unknown);
                };
                if let Some(at) = revoked_at.filter(|at| *at <= now) {
                    w.abort().await?;
                    return Ok(KeyChange::AlreadyEnding { requestor_id, revoked_at: at });
                }
                sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1")
                    .bind(key_id)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                w.done().await?;
                Ok(KeyChange::Changed { requestor_id, revoked_at: now })
            }

            /// Replaces a live API key (one without `revoked_at`): in one transaction, the old key
            /// gets `revoked_at = old_ends_at` and a new key (`new_key_id`, `secret_hash`) is added for
            /// the same requestor. A key that already has an end is left alone.
            pub async fn rotate_api_key(
                &self,
                key_id: &str,
                new_key_id: &str,
                secret_hash: &[u8],
                old_ends_at: i64,
                now: i64,
            ) -> StoreResult<KeyChange> {
                let mut w = self.atomic_writer().await?;
                let row: Option<(String, Option<i64>)> = sqlx::query_as(concat!(
                    "SELECT requestor_id, revoked_at FROM api_keys WHERE key_id = $1",
                    $for_update
                ))
                .bind(key_id)
                .fetch_optional(w.conn())
                .await?;
                let Some((requestor_id, revoked_at)) = row else {
                    w.abort().await?;
                    return Ok(KeyChange::Unknown);
                };
                if let Some(at) = revoked_at {
                    w.abort().await?;
                    return Ok(KeyChange::AlreadyEnding { requestor_id, revoked_at: at });
                }
                sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1")
                    .bind(key_id)
                    .bind(old_ends_at)
                    .execute(w.conn())
                    .await?;
                sqlx::query("INSERT INTO api_keys (key_id, requestor_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(new_key_id)
                    .bind(&requestor_id)
                    .bind(secret_hash)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                w.done().await?;
                Ok(KeyChange::Changed { requestor_id, revoked_at: old_ends_at })
            }

            pub async fn hsm_keys(&self, label: &str) -> StoreResult<Vec<HsmKeyRow>> {
                Ok(sqlx::query_as(
                    "SELECT label, version, usage, key_lmk, kcv, created_at FROM hsm_keys WHERE label = $1 \
                     ORDER BY version",
                )
                .bind(label)
                .fetch_all(&self.read)
                .await?)
            }

            pub async fn insert_hsm_key(&self, k: &HsmKeyRow) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "INSERT INTO hsm_keys (label, version, usage, key_lmk, kcv, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (label, version) DO NOTHING",
                )
                .bind(&k.label)
                .bind(k.version)
                .bind(&k.usage)
                .bind(&k.key_lmk)
                .bind(&k.kcv)
                .bind(k.created_at)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
            }

            pub async fn delete_hsm_key(&self, label: &str, version: i64) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "DELETE FROM hsm_keys WHERE label = $1 AND version = $2 \
                     AND version < (SELECT MAX(version) FROM hsm_keys WHERE label = $1)",
                )
                .bind(label)
                .bind(version)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
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

            /// The PAR of a card already registered under one of `fingerprints` (by any requestor),
            /// if any: a reissued card keeps its PAR, and a later registration of its new number must
            /// get the same one.
            /// Card instruments of the PAR `par` that are not deleted, of every requestor.
            pub async fn cards_by_par(&self, par: &str) -> StoreResult<Vec<InstrumentRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    instrument_cols!(),
                    " FROM instruments WHERE par = $1 AND kind = 'card' AND status <> 'deleted' ORDER BY created_at, id"
                ))
                .bind(par)
                .fetch_all(&self.read)
                .await?)
            }

            /// A reissued card's new facts on its instrument (same id, same PAR), with its
            /// `instrument.updated` event, in one transaction. `StaleKey` when a rotation made its
            /// data key old meanwhile, `Duplicate` when its requestor has the new number already.
            pub async fn reissue_card(&self, c: &InstrumentRow, now: i64) -> StoreResult<InsertCard> {
                let mut w = self.atomic_writer().await?;
                let taken: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM instruments WHERE requestor_id = $1 AND fingerprint = $2 AND status <> 'deleted' AND id <> $3",
                )
                .bind(&c.requestor_id)
                .bind(&c.fingerprint)
                .bind(&c.id)
                .fetch_optional(w.conn())
                .await?;
                if taken.is_some() {
                    w.abort().await?;
                    return Ok(InsertCard::Duplicate(Box::new(c.clone())));
                }
                let status: Option<String> = sqlx::query_scalar(
                    "UPDATE instruments SET bin = $2, last4 = $3, pan_len = $4, expiry = $5, fingerprint = $6, fp_version = $7, \
                     pan_sealed = $8, dek_version = $9, updated_at = $10 \
                     WHERE id = $1 AND status <> 'deleted' AND $9 = (SELECT MAX(version) FROM data_keys) RETURNING status",
                )
                .bind(&c.id)
                .bind(&c.bin)
                .bind(&c.last4)
                .bind(c.pan_len)
                .bind(&c.expiry)
                .bind(&c.fingerprint)
                .bind(c.fp_version)
                .bind(&c.pan_sealed)
                .bind(c.dek_version)
                .bind(now)
                .fetch_optional(w.conn())
                .await?;
                let Some(status) = status else {
                    w.abort().await?;
                    return Ok(InsertCard::StaleKey);
                };
                let mut data = crate::events::instrument_data(&c.id, &status);
                data["reason"] = serde_json::json!("reissued");
                data["last4"] = serde_json::json!(c.last4);
                data["expiry"] = serde_json::json!(c.expiry);
                emit(w.conn(), &EventDraft { instrument_id: &c.id, kind: "instrument.updated", data, now }).await?;
                w.done().await?;
                Ok(InsertCard::Inserted)
            }

            pub async fn update_card_expiry(&self, id: &str, expiry: &str, now: i64) -> StoreResult<()> {
                let mut w = self.atomic_writer().await?;
                let status: Option<String> =
                    sqlx::query_scalar("UPDATE instruments SET expiry = $2, updated_at = $3 WHERE id = $1 RETURNING status")
                        .bind(id)
                        .bind(expiry)
                        .bind(now)
                        .fetch_optional(w.conn())
                        .await?;
                if let Some(status) = status {
                    let mut data = crate::events::instrument_data(id, &status);
                    data["expiry"] = serde_json::json!(expiry);
                    emit(w.conn(), &EventDraft { instrument_id: id, kind: "instrument.updated", data, now }).await?;
                }
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
                    sqlx::query("DELETE FROM instrument_verifications WHERE instrument_id = $1")
                        .bind(id)
                        .execute(w.conn())
                        .await?;
                    "UPDATE instruments SET status = $2, updated_at = $3, pan_sealed = NULL, dek_version = NULL WHERE id = $1"
                } else {
                    "UPDATE instruments SET status = $2, updated_at = $3 WHERE id = $1"
                };
                sqlx::query(sql).bind(id).bind(to.as_str()).bind(now).execute(w.conn()).await?;
                let kind = match to {
                    InstrumentStatus::Active => "instrument.resumed",
                    InstrumentStatus::Suspended => "instrument.suspended",
                    InstrumentStatus::Deleted => "instrument.deleted",
                    // (No lifecycle change leads back to pending.)
                    InstrumentStatus::PendingVerification => "instrument.updated",
                };
                let data = crate::events::instrument_data(id, to.as_str());
                emit(w.conn(), &EventDraft { instrument_id: id, kind, data, now }).await?;
                if to != InstrumentStatus::Active {
                    let ended: Vec<String> = sqlx::query_scalar(
                        "UPDATE tokens SET state = 'revoked' WHERE instrument_id = $1 AND state = 'active' RETURNING id",
                    )
                    .bind(id)
                    .fetch_all(w.conn())
                    .await?;
                    for token_id in &ended {
                        let data = crate::events::token_data(token_id, "deleted");
                        emit(w.conn(), &EventDraft { instrument_id: id, kind: "token.deleted", data, now }).await?;
                    }
                }
                let row = sqlx::query_as(concat!("SELECT ", instrument_cols!(), " FROM instruments WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(w.conn())
                    .await?;
                w.done().await?;
                Ok(row)
            }
        }
    };
}
