//! Transactions cut off by a crash: claimed (pending), but their node died before it wrote the
//! outcome. A live transaction is decided within its issuer timeout, so a pending one older than
//! [`Payments::stale_after`] is cut off. Each node resolves them at start and every second; a
//! repeat of one resolves it at once.
//!
//! What the claim recorded decides (the kind, the issuer and the token are written before any
//! issuer is asked):
//! - A card payment or card cancel that may have reached its issuer has an unknown outcome: it is
//!   declined `91` and owes the issuer a `0420`; a payment's one-time token is spent (its first
//!   attempt may have been approved, so it must not pay a second time); a cancel's reservation on
//!   its payment is given back.
//! - Anything else moved nothing (a stored-value movement commits with its outcome; a verification
//!   moves no money): declined `96`.
//! - A reversal is not resolved here: nothing of it took effect, and its repeat carries it out
//!   (see `Payments::claim`).

use std::sync::Arc;
use std::time::Duration;

use super::{Payments, Reply, ResponseCode, advice};
use crate::iso8583::{Message, Mti};
use crate::store::InstrumentKind;
use crate::store::TxnKind;
use crate::store::TxnStatus;
use crate::store::{LeaseEnd, TxnRow};

/// Resolves cut-off transactions until `stop` resolves: at once, then every second.
pub async fn run(p: Arc<Payments>, stop: tokio::sync::watch::Receiver<bool>) {
    super::every(Duration::from_secs(1), "resolving transactions cut off by a crash", stop, || sweep(&p)).await
}

/// One pass: resolves up to 100 cut-off transactions; returns how many this node resolved.
pub async fn sweep(p: &Payments) -> crate::Result<usize> {
    let before = p.clock.now_ms() - p.stale_after().as_millis() as i64;
    let mut resolved = 0;
    for row in p.store.cut_off(before, 100).await? {
        if resolve(p, &row).await?.is_some() {
            resolved += 1;
        }
    }
    Ok(resolved)
}

/// Resolves one cut-off transaction and returns its answer; None when another node or request
/// resolved it first.
pub(super) async fn resolve(p: &Payments, row: &TxnRow) -> crate::Result<Option<Reply>> {
    let money = matches!(row.kind, TxnKind::Purchase | TxnKind::Cancel);
    let at_issuer = money && row.instrument_kind == Some(InstrumentKind::Card) && row.issuer_id.is_some();
    let code = if at_issuer { ResponseCode::ISSUER_UNAVAILABLE } else { ResponseCode::SYSTEM_ERROR };
    let Some(resp_mti) = Mti::from_bytes(row.mti.as_bytes()).ok().and_then(|m| m.response()) else {
        return Ok(None);
    };
    let reply = Reply::to(&request_of(row), resp_mti, code);
    let now = p.clock.now_ms();
    let mut t = row.clone();
    t.status = TxnStatus::Declined;
    t.response_code = Some(code.as_str().into());
    t.response = reply.encode().ok();
    t.updated_at = now;
    let owed = at_issuer.then(|| advice::owed(row, now));
    let release = match (at_issuer && row.kind == TxnKind::Cancel, row.original_id.as_deref(), row.amount) {
        (true, Some(paid), Some(amount)) => Some((paid, amount)),
        _ => None,
    };
    let done = p.store.finish_declined(&t, LeaseEnd::Spend, release, owed.as_ref(), now).await?;
    if done {
        tracing::warn!(transaction = %row.id, kind = %row.kind, code = code.as_str(), "resolved a transaction cut off by a crash");
    }
    Ok(done.then_some(reply))
}

/// The request a transaction row was made from, as far as the row keeps it: the fields an answer
/// echoes and an issuer advice carries (not DE2: no row holds a card number).
pub(super) fn request_of(row: &TxnRow) -> Message {
    let mti = Mti::from_bytes(row.mti.as_bytes()).unwrap_or(Mti::FINANCIAL_REQUEST);
    let mut m = Message::new(mti);
    let acquirer = row.acquirer_id.trim_start_matches('0');
    let merchant = row.merchant_id.as_deref().map(|id| format!("{id:<15}"));
    let amount = row.amount.map(|a| format!("{a:012}"));
    let fields = [
        (3u8, row.processing_code.as_deref()),
        (4, amount.as_deref()),
        (7, Some(row.transmitted.as_str())),
        (11, Some(row.stan.as_str())),
        (22, row.entry_mode.as_deref()),
        (32, Some(if acquirer.is_empty() { "0" } else { acquirer })),
        (37, row.rrn.as_deref()),
        (41, Some(row.terminal_id.as_str())),
        (42, merchant.as_deref()),
        (49, row.currency.as_deref()),
    ];
    for (de, value) in fields {
        if let Some(v) = value {
            // Each was a valid field of the request; one that is not any more is left out.
            let _ = m.set(de, v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_gives_back_the_fields_that_identify_its_request() {
        let row = TxnRow {
            mti: "0200".into(),
            terminal_id: "TERM0001".into(),
            stan: "000042".into(),
            transmitted: "1123103000".into(),
            acquirer_id: "00000012345".into(),
            processing_code: Some("000000".into()),
            amount: Some(11_000),
            merchant_id: Some("MERCHANT000001".into()),
            currency: Some("410".into()),
            ..Default::default()
        };
        let m = request_of(&row);
        assert_eq!((m.stan(), m.terminal_id(), m.acquirer_id()), (Some("000042"), Some("TERM0001"), Some("12345")));
        assert_eq!((m.amount(), m.merchant_id(), m.pan()), (Some(11_000), Some("MERCHANT000001 "), None));
    }
}
