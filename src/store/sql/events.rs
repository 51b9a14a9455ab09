//! The webhook outbox: endpoints, events, and deliveries claimed under a lease so that of several
//! nodes one sends each, in order per endpoint. Events themselves are appended by `emit` (`sql.rs`)
//! inside the transaction of each change. Expanded by `sql_store!` once per backend.

macro_rules! sql_events {
    ($Store:ident, for_update = $for_update:literal) => {
        impl $Store {
            pub async fn insert_endpoint(&self, e: &EndpointRow) -> StoreResult<()> {
                let mut w = self.writer().await?;
                sqlx::query(
                    "INSERT INTO webhook_endpoints (id, requestor_id, url, secret_sealed, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&e.id)
                .bind(&e.requestor_id)
                .bind(&e.url)
                .bind(&e.secret_sealed)
                .bind(e.status)
                .bind(e.created_at)
                .bind(e.updated_at)
                .execute(w.conn())
                .await?;
                w.done().await
            }

            pub async fn endpoint(&self, id: &str) -> StoreResult<Option<EndpointRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, requestor_id, url, secret_sealed, status, created_at, updated_at FROM webhook_endpoints WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.read)
                .await?)
            }

            pub async fn endpoints_of(&self, requestor_id: &str) -> StoreResult<Vec<EndpointRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, requestor_id, url, secret_sealed, status, created_at, updated_at FROM webhook_endpoints \
                     WHERE requestor_id = $1 ORDER BY created_at, id",
                )
                .bind(requestor_id)
                .fetch_all(&self.read)
                .await?)
            }

            /// Disables an endpoint: it gets nothing more. True if it was active.
            pub async fn disable_endpoint(&self, id: &str, now: i64) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let r = sqlx::query(
                    "UPDATE webhook_endpoints SET status = 'disabled', updated_at = $2 WHERE id = $1 AND status = 'active'",
                )
                .bind(id)
                .bind(now)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
            }

            /// A requestor's events, oldest first, after the event `after` (exclusive), optionally of
            /// one instrument.
            pub async fn events_of(
                &self,
                requestor_id: &str,
                instrument_id: Option<&str>,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<EventRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, requestor_id, instrument_id, sequence, type, data, created_at FROM events \
                     WHERE requestor_id = $1 AND ($2 IS NULL OR instrument_id = $2) \
                       AND ($3 IS NULL OR (created_at, id) > (SELECT created_at, id FROM events WHERE id = $3)) \
                     ORDER BY created_at, id LIMIT $4",
                )
                .bind(requestor_id)
                .bind(instrument_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            pub async fn event(&self, id: &str) -> StoreResult<Option<EventRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, requestor_id, instrument_id, sequence, type, data, created_at FROM events WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.read)
                .await?)
            }

            pub async fn deliveries_of(&self, event_id: &str) -> StoreResult<Vec<DeliveryRow>> {
                Ok(sqlx::query_as(
                    "SELECT event_id, endpoint_id, state, attempts, next_at, last_status, last_error, created_at, delivered_at \
                     FROM event_deliveries WHERE event_id = $1 ORDER BY endpoint_id",
                )
                .bind(event_id)
                .fetch_all(&self.read)
                .await?)
            }

            /// Sends an event again to each of its requestor's active endpoints: their deliveries are
            /// pending again, due now, with their tries counted afresh (a delivered one is sent once
            /// more: receivers drop duplicates by the event id). Returns how many are queued.
            pub async fn replay_event(&self, e: &EventRow, now: i64) -> StoreResult<u64> {
                let mut w = self.atomic_writer().await?;
                let revived = sqlx::query(
                    "UPDATE event_deliveries SET state = 'pending', attempts = 0, next_at = $2, lease_owner = NULL, \
                     lease_until = NULL, last_error = NULL, created_at = $2 \
                     WHERE event_id = $1 AND endpoint_id IN \
                       (SELECT id FROM webhook_endpoints WHERE requestor_id = $3 AND status = 'active')",
                )
                .bind(&e.id)
                .bind(now)
                .bind(&e.requestor_id)
                .execute(w.conn())
                .await?
                .rows_affected();
                // Endpoints registered after the event get it too.
                let added = sqlx::query(
                    "INSERT INTO event_deliveries (event_id, endpoint_id, state, attempts, next_at, created_at) \
                     SELECT $1, id, 'pending', 0, $2, $2 FROM webhook_endpoints WHERE requestor_id = $3 AND status = 'active' \
                     ON CONFLICT (event_id, endpoint_id) DO NOTHING",
                )
                .bind(&e.id)
                .bind(now)
                .bind(&e.requestor_id)
                .execute(w.conn())
                .await?
                .rows_affected();
                w.done().await?;
                Ok(revived + added)
            }

            /// Claims for `owner`, until `lease_until`, the next due delivery of each active endpoint
            /// (at most `limit`): only an endpoint's oldest pending delivery is ever claimed, so an
            /// endpoint gets its events in order, and a leased one is claimed by nobody else. The lease
            /// is checked again on the row being updated, so two nodes never hold one delivery.
            pub async fn claim_deliveries(
                &self,
                owner: &str,
                now: i64,
                lease_until: i64,
                limit: i64,
            ) -> StoreResult<Vec<(DeliveryRow, EventRow, EndpointRow)>> {
                let mut w = self.writer().await?;
                let claimed: Vec<(String, String)> = sqlx::query_as(
                    "UPDATE event_deliveries SET lease_owner = $1, lease_until = $3 \
                     WHERE state = 'pending' AND next_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
                       AND (event_id, endpoint_id) IN ( \
                         SELECT d.event_id, d.endpoint_id FROM event_deliveries d \
                         JOIN webhook_endpoints ep ON ep.id = d.endpoint_id AND ep.status = 'active' \
                         WHERE d.state = 'pending' AND d.next_at <= $2 AND (d.lease_until IS NULL OR d.lease_until <= $2) \
                           AND NOT EXISTS (SELECT 1 FROM event_deliveries o WHERE o.endpoint_id = d.endpoint_id \
                             AND o.state = 'pending' AND (o.created_at, o.event_id) < (d.created_at, d.event_id)) \
                         LIMIT $4) \
                     RETURNING event_id, endpoint_id",
                )
                .bind(owner)
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(w.conn())
                .await?;
                w.done().await?;
                let mut out = Vec::with_capacity(claimed.len());
                for (event_id, endpoint_id) in claimed {
                    let d: Option<DeliveryRow> = sqlx::query_as(
                        "SELECT event_id, endpoint_id, state, attempts, next_at, last_status, last_error, created_at, delivered_at \
                         FROM event_deliveries WHERE event_id = $1 AND endpoint_id = $2",
                    )
                    .bind(&event_id)
                    .bind(&endpoint_id)
                    .fetch_optional(&self.read)
                    .await?;
                    let (Some(d), Some(e), Some(ep)) = (d, self.event(&event_id).await?, self.endpoint(&endpoint_id).await?) else {
                        continue;
                    };
                    out.push((d, e, ep));
                }
                Ok(out)
            }

            /// Records a try's outcome, if `owner` still holds the lease: delivered, or failed and due
            /// again at `next_at`, or (`dead`) failed for the last time.
            pub async fn delivery_tried(
                &self,
                owner: &str,
                event_id: &str,
                endpoint_id: &str,
                outcome: &DeliveryOutcome,
                now: i64,
            ) -> StoreResult<bool> {
                let mut w = self.writer().await?;
                let (state, next_at, delivered_at) = match outcome.next_at {
                    _ if outcome.delivered => ("delivered", now, Some(now)),
                    Some(next) => ("pending", next, None),
                    None => ("dead", now, None),
                };
                let r = sqlx::query(
                    "UPDATE event_deliveries SET state = $4, attempts = attempts + 1, next_at = $5, lease_owner = NULL, \
                     lease_until = NULL, last_status = $6, last_error = $7, delivered_at = $8 \
                     WHERE event_id = $1 AND endpoint_id = $2 AND lease_owner = $3 AND state = 'pending'",
                )
                .bind(event_id)
                .bind(endpoint_id)
                .bind(owner)
                .bind(state)
                .bind(next_at)
                .bind(outcome.status)
                .bind(&outcome.error)
                .bind(delivered_at)
                .execute(w.conn())
                .await?;
                w.done().await?;
                Ok(r.rows_affected() == 1)
            }

            /// Ends up to `limit` live tokens whose TTL has passed, each with its `token.expired` event,
            /// in one transaction. Returns how many.
            pub async fn expire_due_tokens(&self, now: i64, limit: i64) -> StoreResult<u64> {
                let mut w = self.atomic_writer().await?;
                let ended: Vec<(String, String)> = sqlx::query_as(
                    "UPDATE tokens SET state = 'expired' WHERE id IN \
                       (SELECT id FROM tokens WHERE state = 'active' AND expires_at <= $1 LIMIT $2) \
                     AND state = 'active' RETURNING id, instrument_id",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(w.conn())
                .await?;
                for (id, instrument_id) in &ended {
                    let data = crate::events::token_data(id, "expired");
                    emit(w.conn(), &EventDraft { instrument_id, kind: "token.expired", data, now }).await?;
                }
                w.done().await?;
                Ok(ended.len() as u64)
            }
        }
    };
}
