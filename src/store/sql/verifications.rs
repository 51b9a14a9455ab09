//! Step-up verification of card registrations (`instrument_verifications`): the issuer's offers,
//! the current code's MAC and expiry, codes sent and wrong attempts. Every change repeats the rule's
//! conditions in its statement (`instruments::verification` decides first, the statement makes it
//! hold under concurrency). Expanded by `sql_store!` once per backend.

macro_rules! sql_verifications {
    ($Store:ident, for_update = $for_update:literal) => {
        impl $Store {
            pub async fn verification(&self, id: &str) -> StoreResult<Option<VerificationRow>> {
                Ok(sqlx::query_as(
                    "SELECT instrument_id, offered, method, code_mac, code_expires_at, codes_sent, failed_attempts, \
                     created_at, updated_at FROM instrument_verifications WHERE instrument_id = $1",
                )
                .bind(id)
                .fetch_optional(&self.read)
                .await?)
            }

            pub async fn record_code(&self, c: &NewCode<'_>, max_codes: i64) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "UPDATE instrument_verifications SET method = $2, code_mac = $3, code_expires_at = $4, \
                     codes_sent = codes_sent + 1, updated_at = $5 \
                     WHERE instrument_id = $1 AND codes_sent < $6 AND EXISTS (SELECT 1 FROM instruments i \
                       WHERE i.id = instrument_verifications.instrument_id AND i.status = 'pending_verification')",
                )
                .bind(c.instrument_id)
                .bind(c.method)
                .bind(c.code_mac)
                .bind(c.expires_at)
                .bind(c.now)
                .bind(max_codes)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
            }

            pub async fn pass_verification(
                &self,
                id: &str,
                code_mac: &[u8],
                assurance: crate::instruments::assurance::Assurance,
                max_attempts: i64,
                now: i64,
            ) -> StoreResult<Option<InstrumentRow>> {
                let mut w = self.atomic_writer().await?;
                let r = sqlx::query(
                    "UPDATE instruments SET status = 'active', assurance = $2, updated_at = $3 \
                     WHERE id = $1 AND status = 'pending_verification' AND EXISTS (SELECT 1 FROM instrument_verifications v \
                       WHERE v.instrument_id = $1 AND v.code_mac = $4 AND v.code_expires_at > $3 AND v.failed_attempts < $5)",
                )
                .bind(id)
                .bind(assurance)
                .bind(now)
                .bind(code_mac)
                .bind(max_attempts)
                .execute(w.conn())
                .await?;
                if r.rows_affected() != 1 {
                    w.abort().await?;
                    return Ok(None);
                }
                sqlx::query("DELETE FROM instrument_verifications WHERE instrument_id = $1")
                    .bind(id)
                    .execute(w.conn())
                    .await?;
                let data = serde_json::json!({ "instrument_id": id, "status": "active", "assurance": assurance });
                emit(w.conn(), &EventDraft { instrument_id: id, kind: "instrument.verified", data, now }).await?;
                let row = sqlx::query_as(concat!("SELECT ", instrument_cols!(), " FROM instruments WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(w.conn())
                    .await?;
                w.done().await?;
                Ok(row)
            }

            pub async fn fail_verification(&self, id: &str, max_attempts: i64, now: i64) -> StoreResult<Option<i64>> {
                let mut w = self.atomic_writer().await?;
                let failed: Option<i64> = sqlx::query_scalar(
                    "UPDATE instrument_verifications SET failed_attempts = failed_attempts + 1, updated_at = $2 \
                     WHERE instrument_id = $1 AND failed_attempts < $3 RETURNING failed_attempts",
                )
                .bind(id)
                .bind(now)
                .bind(max_attempts)
                .fetch_optional(w.conn())
                .await?;
                let Some(failed) = failed else {
                    w.abort().await?;
                    return Ok(None);
                };
                if failed >= max_attempts {
                    // The registration fails: the instrument is deleted and its sealed PAN destroyed,
                    // as a requestor's delete would.
                    sqlx::query("DELETE FROM instrument_verifications WHERE instrument_id = $1")
                        .bind(id)
                        .execute(w.conn())
                        .await?;
                    sqlx::query(
                        "UPDATE instruments SET status = 'deleted', updated_at = $2, pan_sealed = NULL, dek_version = NULL \
                         WHERE id = $1 AND status = 'pending_verification'",
                    )
                    .bind(id)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                    let data = serde_json::json!({ "instrument_id": id, "status": "deleted", "reason": "verification_failed" });
                    emit(w.conn(), &EventDraft { instrument_id: id, kind: "instrument.deleted", data, now }).await?;
                }
                w.done().await?;
                Ok(Some(failed))
            }
        }
    };
}
