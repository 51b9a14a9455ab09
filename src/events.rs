//! What the webhook outbox records of each change (docs/webhooks.md): the event kinds and the data
//! each carries. Pure: the store calls these inside the database transaction of the change, and the
//! webhook worker only delivers what they made. No event carries a clear PAN: a card shows its masked
//! number at most, a token its reference.

use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::store::{TxnKind, TxnRow, TxnStatus};

/// Every kind of event, as documented.
pub const KINDS: &[&str] = &[
    "instrument.created",
    "instrument.suspended",
    "instrument.resumed",
    "instrument.deleted",
    "instrument.updated",
    "instrument.verified",
    "token.created",
    "token.suspended",
    "token.resumed",
    "token.deleted",
    "token.consumed",
    "token.expired",
    "token.locked",
    "payment.approved",
    "payment.declined",
    "payment.reversed",
    "payment.cancelled",
    "payment.cancel_declined",
];

/// The event a decided transaction makes, and the instrument it belongs to: None for one still
/// pending, one of no instrument (an unknown token, a reversal of nothing), and an account
/// verification (its token's own event tells of it).
pub fn of_transaction(t: &TxnRow) -> Option<(&str, &'static str)> {
    let instrument = t.instrument_id.as_deref()?;
    let kind = match (t.kind, t.status) {
        (_, TxnStatus::Pending) | (TxnKind::Verification, _) => return None,
        (TxnKind::Purchase, TxnStatus::Approved) => "payment.approved",
        (TxnKind::Purchase, _) => "payment.declined",
        (TxnKind::Reversal, TxnStatus::Approved) => "payment.reversed",
        (TxnKind::Reversal, _) => return None,
        (TxnKind::Cancel, TxnStatus::Approved) => "payment.cancelled",
        (TxnKind::Cancel, _) => "payment.cancel_declined",
    };
    Some((instrument, kind))
}

/// A transaction's event data.
pub fn transaction_data(t: &TxnRow) -> Value {
    json!({
        "transaction_id": t.id,
        "kind": t.kind.as_str(),
        "status": t.status.as_str(),
        "response_code": t.response_code,
        "amount": t.amount.map(|a| a.to_string()),
        "currency": t.currency,
        "merchant_id": t.merchant_id,
        "terminal_id": t.terminal_id,
        "token_ref": t.token_id,
        "original_id": t.original_id,
        "masked_pan": t.masked_pan,
        "at": rfc3339(t.updated_at),
    })
}

/// A token's event data.
pub fn token_data(token_ref: &str, status: &str) -> Value {
    json!({ "token_ref": token_ref, "status": status })
}

/// An instrument's event data.
pub fn instrument_data(instrument_id: &str, status: &str) -> Value {
    json!({ "instrument_id": instrument_id, "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_make_their_events() {
        let mut t = TxnRow { instrument_id: Some("ins_1".into()), ..TxnRow::default() };
        assert_eq!(of_transaction(&t), None, "pending");
        t.status = TxnStatus::Approved;
        assert_eq!(of_transaction(&t), Some(("ins_1", "payment.approved")));
        t.status = TxnStatus::Declined;
        assert_eq!(of_transaction(&t), Some(("ins_1", "payment.declined")));
        t.kind = TxnKind::Cancel;
        assert_eq!(of_transaction(&t), Some(("ins_1", "payment.cancel_declined")));
        t.status = TxnStatus::Approved;
        assert_eq!(of_transaction(&t), Some(("ins_1", "payment.cancelled")));
        t.kind = TxnKind::Reversal;
        assert_eq!(of_transaction(&t), Some(("ins_1", "payment.reversed")));
        t.kind = TxnKind::Verification;
        assert_eq!(of_transaction(&t), None);
        t.kind = TxnKind::Purchase;
        t.instrument_id = None;
        assert_eq!(of_transaction(&t), None, "no instrument");
    }
}
