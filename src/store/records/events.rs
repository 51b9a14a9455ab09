//! Rows of the webhook outbox: requestors' endpoints, events, and their deliveries.

use super::*;

/// Whether an endpoint receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointStatus {
    Active,
    /// Removed by its requestor: it gets nothing more; its past deliveries stay listed.
    Disabled,
}

text_enum!(EndpointStatus { Active => "active", Disabled => "disabled" });

/// A requestor's webhook endpoint. Its signing secret is stored only sealed by the HSM.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub requestor_id: String,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub status: EndpointStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An event as stored: what changed (`kind`, e.g. `token.suspended`), on which instrument, its place
/// in that instrument's sequence, and its data (a JSON object, never a clear PAN).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub requestor_id: String,
    pub instrument_id: String,
    pub sequence: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub data: String,
    pub created_at: i64,
}

/// Where one event's delivery to one endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet; tried again at `next_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every try failed until the retry window ended (the dead-letter state); a replay revives it.
    Dead,
}

text_enum!(DeliveryState { Pending => "pending", Delivered => "delivered", Dead => "dead" });

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub event_id: String,
    pub endpoint_id: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// An event to append to the outbox inside the caller's database transaction.
pub struct EventDraft<'a> {
    pub instrument_id: &'a str,
    /// `instrument.created`, `token.suspended`, `payment.approved`, ... (docs/webhooks.md).
    pub kind: &'static str,
    pub data: serde_json::Value,
    pub now: i64,
}

/// How one try of a delivery went.
pub struct DeliveryOutcome {
    pub delivered: bool,
    /// When to try again; None: never (the delivery is dead).
    pub next_at: Option<i64>,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<i64>,
    /// Why it failed (no secret, no body), if it did.
    pub error: Option<String>,
}
