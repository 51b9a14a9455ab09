//! The hash-chained audit trail: what the appender (`audit_log.rs`) reads before a batch, and the
//! walk that verifies and exports it. Each backend writes a batch itself (`insert_audit_rows`).
//! Expanded by `sql_store!` (`sql.rs`) once per backend, inside that backend's module.

macro_rules! sql_audit {
    (
        $Store:ident,
        $Conn:ty,
        for_update = $for_update:literal,
        snapshot = $snapshot:literal,
        seed_indexes = $seed_indexes:literal
    ) => {
        impl $Store {
            /// The trail's last row (by `seq`): its `seq` and hash.
            pub async fn audit_last(&self) -> StoreResult<Option<(i64, String)>> {
                Ok(sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&self.read)
                    .await?)
            }

            /// The last row of every chain but `own` (and the legacy one) that has rows after `after`.
            pub async fn audit_heads_since(&self, after: i64, own: &str) -> StoreResult<Vec<AuditHead>> {
                Ok(sqlx::query_as(
                    "SELECT a.chain, a.link, a.hash FROM audit_log a JOIN \
                     (SELECT chain, MAX(link) AS link FROM audit_log WHERE seq > $1 AND chain <> $2 AND chain <> '' \
                      GROUP BY chain) m ON a.chain = m.chain AND a.link = m.link ORDER BY a.chain",
                )
                .bind(after)
                .bind(own)
                .fetch_all(&self.read)
                .await?)
            }

            /// Hands every row to `visit` in `seq` order, all in one snapshot: first (when `links`)
            /// the chain starts and anchors ([`AuditPass::Links`]), then every row
            /// ([`AuditPass::Rows`]). Stops when `visit` answers false.
            pub async fn audit_scan(
                &self,
                links: bool,
                visit: &mut dyn FnMut(AuditPass, AuditRow) -> bool,
            ) -> StoreResult<()> {
                let mut tx = self.read.begin().await?;
                if !$snapshot.is_empty() {
                    sqlx::query($snapshot).execute(&mut *tx).await?;
                }
                let passes: &[AuditPass] = if links { &[AuditPass::Links, AuditPass::Rows] } else { &[AuditPass::Rows] };
                for pass in passes {
                    let mut after = 0;
                    loop {
                        let q = match pass {
                            AuditPass::Links => sqlx::query_as::<_, AuditRow>(
                                "SELECT seq, chain, link, at, actor, action, subject, outcome, detail, prev_hash, hash \
                                 FROM audit_log WHERE seq > $1 AND action IN ('audit.chain', 'audit.anchor') \
                                 ORDER BY seq LIMIT 10000",
                            ),
                            AuditPass::Rows => sqlx::query_as::<_, AuditRow>(
                                "SELECT seq, chain, link, at, actor, action, subject, outcome, detail, prev_hash, hash \
                                 FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 10000",
                            ),
                        };
                        let page = q.bind(after).fetch_all(&mut *tx).await?;
                        let Some(last) = page.last() else { break };
                        after = last.seq;
                        for r in page {
                            if !visit(*pass, r) {
                                return Ok(());
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    };
}
