//! The hash-chained audit trail: appends (serialized) and reads.
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_audit {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal,
        audit_lock = $audit_lock:literal
    ) => {
        impl $Store {
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
                    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                        .fetch_optional(w.conn())
                        .await?;
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
        }
    };
}
