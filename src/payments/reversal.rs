//! `0400` reversal and `0420` reversal advice by DE90 (docs/iso8583.md "Messages").
//!
//! - The original is found by its duplicate key: the terminal (DE41) and DE90's original STAN, DE7
//!   and acquirer.
//! - An approved original is reversed exactly once; for a card the issuer is owed a `0420`, sent in
//!   the background until it answers. The token stays consumed.
//! - A second reversal of the same original, or the reversal of a declined original: `00`, no change.
//! - Stored value is restored in the same database transaction as the reversal: a gift payment's
//!   amount less its cancels, a local-currency payment's remaining split (`local`). A local-currency
//!   cancel is final: its reversal is `12`.
//! - An original still pending after the wait (its node died mid-flight) is marked reversed, so no
//!   late outcome can apply; a card's issuer is owed a `0420` for it.
//! - An unknown original: `25`, and the reversal is remembered, so the original, if it comes late,
//!   is declined.

use std::time::Instant;

use super::{Payments, Reply, ResponseCode, advice};
use crate::iso8583::Message;
use crate::store::InstrumentKind;
use crate::store::TxnKind;
use crate::store::TxnStatus;
use crate::store::{TxnRow, Undo};

pub async fn reversal(p: &Payments, req: &Message, started: Instant) -> crate::Result<Reply> {
    let Some(resp_mti) = req.mti().response() else {
        return Ok(p.respond(req, req.mti(), ResponseCode::INVALID_TRANSACTION));
    };
    let Some(mut txn) = p.new_txn(req, TxnKind::Reversal, "04") else {
        return Ok(p.respond(req, resp_mti, ResponseCode::FORMAT_ERROR));
    };
    let Some(orig) = req.original_data() else { return Ok(p.respond(req, resp_mti, ResponseCode::FORMAT_ERROR)) };
    if let Err(replay) = p.claim(req, &mut txn, resp_mti).await? {
        return Ok(replay);
    }
    let Some(original) = super::find_original(p, &txn.terminal_id, &orig).await? else {
        txn.original_key = Some(super::original_key(&txn.terminal_id, &orig));
        let resp = p.respond(req, resp_mti, ResponseCode::ORIGINAL_NOT_FOUND);
        p.finish(&mut txn, &resp, TxnStatus::Declined, started).await?;
        return Ok(resp);
    };
    txn.original_id = Some(original.id.clone());
    txn.token_id = original.token_id.clone();
    txn.instrument_id = original.instrument_id.clone();
    txn.instrument_kind = original.instrument_kind;
    txn.masked_pan = original.masked_pan.clone();
    txn.issuer_id = original.issuer_id.clone();
    if txn.amount.is_none() {
        txn.amount = original.amount;
    }
    let resp = p.respond(req, resp_mti, ResponseCode::APPROVED);
    p.fill(&mut txn, &resp, TxnStatus::Approved, started);
    let now = p.clock.now_ms();
    let card = original.instrument_kind == Some(InstrumentKind::Card);
    if original.status == TxnStatus::Pending {
        // Still undecided after the wait: the node handling it died mid-flight. It is marked
        // reversed, so that no late outcome can take effect (outcomes are written only over a
        // pending row); stored value moved nothing (its movement commits with the outcome); a card's
        // issuer may have approved, so it is owed a 0420, the one-time token the payment leased is
        // spent, and a card cancel's reservation on its payment is given back.
        let owed = card.then(|| advice::owed(&original, now));
        let undo = Undo {
            advice: owed.as_ref(),
            spend: original.token_id.as_deref().map(|t| (t, original.id.as_str())),
            release: if card { reservation(&original) } else { None },
        };
        let reversed = p.store.reverse(&original.id, &txn, undo, now).await?;
        tracing::warn!(original = %original.id, reversed, "reversal of an undecided transaction");
        return Ok(resp);
    }
    if original.instrument_kind == Some(InstrumentKind::Local) {
        if original.kind == TxnKind::Cancel {
            // A local cancel's restore went by policy into grants that may since have been spent or
            // have lapsed: it is final (pay again to undo it).
            let resp = p.respond(req, resp_mti, ResponseCode::INVALID_TRANSACTION);
            p.finish(&mut txn, &resp, TxnStatus::Declined, started).await?;
            return Ok(resp);
        }
        let reversed = original.status == TxnStatus::Approved && super::local::reverse(p, &original, &mut txn).await?;
        if !reversed {
            p.store.update_transaction(&txn).await?;
        }
        tracing::info!(original = %original.id, reversed, "reversal");
        return Ok(resp);
    }
    if original.instrument_kind == Some(InstrumentKind::Gift) {
        let reversed = reverse_gift(p, &original, &mut txn, now).await?;
        tracing::info!(original = %original.id, reversed, "reversal");
        return Ok(resp);
    }
    // Reversing a cancel gives its amount back to the payment it cancelled.
    let owed = card.then(|| advice::owed(&original, now));
    let undo = Undo { advice: owed.as_ref(), spend: None, release: reservation(&original) };
    let reversed = p.store.reverse(&original.id, &txn, undo, now).await?;
    tracing::info!(original = %original.id, reversed, "reversal");
    Ok(resp)
}

/// Undoes a gift certificate's payment (restoring what it still holds: its amount less earlier
/// cancels) or cancel (taking the cancelled amount again), with the reversal, in one transaction.
async fn reverse_gift(p: &Payments, original: &TxnRow, txn: &mut TxnRow, now: i64) -> crate::Result<bool> {
    let gift = p.store.gift_by_instrument(original.instrument_id.as_deref().unwrap_or("")).await?;
    let currency = gift.as_ref().and_then(|g| p.config.currency(&g.currency)).cloned();
    let (Some(gift), Some(cur)) = (gift, currency) else {
        return Ok(p.store.reverse_stored_value(&original.id, txn, None, reservation(original), now).await?);
    };
    let merchant = original.merchant_id.clone().unwrap_or_default();
    let held =
        original.amount.unwrap_or(0) - if original.kind == TxnKind::Purchase { original.cancelled_amount } else { 0 };
    let entry = if held > 0 && original.status == TxnStatus::Approved {
        let amount = crate::money::Amount::from_minor(held, &cur);
        let id = crate::ledger::EntryId::fresh();
        // Reversing a cancel takes its amount again; reversing a payment gives it back.
        let e = match original.kind {
            TxnKind::Cancel => crate::ledger::gift_payment(id, &cur, &gift.id, &merchant, amount),
            _ => crate::ledger::gift_reversal(id, &cur, &gift.id, &merchant, amount),
        };
        txn.principal = Some(held);
        Some(e.map_err(|e| crate::Error::invalid("ledger", e.to_string()))?)
    } else {
        None
    };
    Ok(p.store.reverse_stored_value(&original.id, txn, entry.as_ref(), reservation(original), now).await?)
}

/// For a cancel, what it holds of the payment it cancelled (payment id, amount): a reversal of the
/// cancel gives it back, in the same database transaction.
fn reservation(original: &TxnRow) -> Option<(&str, i64)> {
    match (original.kind, original.original_id.as_deref(), original.amount) {
        (TxnKind::Cancel, Some(paid), Some(amount)) => Some((paid, amount)),
        _ => None,
    }
}
