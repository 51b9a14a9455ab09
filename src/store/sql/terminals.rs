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

            /// Every version of a link's key of `kind`, newest first.
            pub async fn link_keys(&self, link: &str, kind: &str) -> StoreResult<Vec<LinkKeyRow>> {
                Ok(sqlx::query_as(
                    "SELECT link, kind, version, key_block, kcv, created_at, retires_at FROM link_keys \
                     WHERE link = $1 AND kind = $2 ORDER BY version DESC",
                )
                .bind(link)
                .bind(kind)
                .fetch_all(&self.read)
                .await?)
            }

            /// Adds a new current version of a link's key; the versions current until now are accepted
            /// until `retire_at`. With `first_only`, only when the link has no key of this kind yet
            /// (None otherwise). Returns the new version.
            #[allow(clippy::too_many_arguments)]
            pub async fn add_link_key(
                &self,
                link: &str,
                kind: &str,
                key_block: &str,
                kcv: &str,
                now: i64,
                retire_at: i64,
                first_only: bool,
            ) -> StoreResult<Option<i64>> {
                let mut w = self.atomic_writer().await?;
                let last: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM link_keys WHERE link = $1 AND kind = $2")
                        .bind(link)
                        .bind(kind)
                        .fetch_one(w.conn())
                        .await?;
                if first_only && last.is_some() {
                    w.done().await?;
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE link_keys SET retires_at = $3 WHERE link = $1 AND kind = $2 \
                     AND (retires_at IS NULL OR retires_at > $3)",
                )
                .bind(link)
                .bind(kind)
                .bind(retire_at)
                .execute(w.conn())
                .await?;
                let version = last.unwrap_or(0) + 1;
                sqlx::query(
                    "INSERT INTO link_keys (link, kind, version, key_block, kcv, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(link)
                .bind(kind)
                .bind(version)
                .bind(key_block)
                .bind(kcv)
                .bind(now)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(Some(version))
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
