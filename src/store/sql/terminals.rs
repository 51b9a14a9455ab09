//! The terminal registry: which terminals exist, their merchant, VAN and status.
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_terminals {
    ($Store:ident) => {
        impl $Store {
            /// Registers a terminal, or changes an existing one's merchant and VAN (its status and
            /// creation time stay). True when it is new.
            pub async fn upsert_terminal(&self, t: &TerminalRow) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let existed: Option<bool> = sqlx::query_scalar("SELECT TRUE FROM terminals WHERE id = $1")
                    .bind(&t.id)
                    .fetch_optional(w.conn())
                    .await?;
                sqlx::query(
                    "INSERT INTO terminals (id, merchant_id, van, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET merchant_id = excluded.merchant_id, van = excluded.van, \
                     updated_at = excluded.updated_at",
                )
                .bind(&t.id)
                .bind(&t.merchant_id)
                .bind(&t.van)
                .bind(&t.status)
                .bind(t.created_at)
                .bind(t.updated_at)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(existed.is_none())
            }

            pub async fn terminal(&self, id: &str) -> StoreResult<Option<TerminalRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, merchant_id, van, status, created_at, updated_at FROM terminals WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.read)
                .await?)
            }

            /// Every terminal, or a merchant's, by id.
            pub async fn terminals(&self, merchant: Option<&str>) -> StoreResult<Vec<TerminalRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, merchant_id, van, status, created_at, updated_at FROM terminals \
                     WHERE $1 IS NULL OR merchant_id = $1 ORDER BY id",
                )
                .bind(merchant)
                .fetch_all(&self.read)
                .await?)
            }

            /// Sets a terminal's status; false when there is no such terminal.
            pub async fn set_terminal_status(&self, id: &str, status: TerminalStatus, now: i64) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let n = sqlx::query("UPDATE terminals SET status = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(&status)
                    .bind(now)
                    .execute(w.conn())
                    .await?
                    .rows_affected();
                w.done().await?;
                Ok(n == 1)
            }

            /// Removes a terminal from the registry (its transactions stay); false when there was none.
            pub async fn delete_terminal(&self, id: &str) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let n = sqlx::query("DELETE FROM terminals WHERE id = $1")
                    .bind(id)
                    .execute(w.conn())
                    .await?
                    .rows_affected();
                w.done().await?;
                Ok(n == 1)
            }
        }
    };
}
