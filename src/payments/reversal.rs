//! `0400` reversal and `0420` reversal advice by DE90 (docs/iso8583.md "Messages").
//!
//! - The original is found by its duplicate key: the terminal (DE41) and DE90's original STAN, DE7
//!   and acquirer.
//! - An approved original is reversed exactly once (`funding`): a card's issuer is owed a `0420`,
//!   sent in the background until it answers, and the token stays consumed; stored value is restored
//!   in the same database transaction as the reversal — a gift payment's amount less its cancels, a
//!   wallet payment's remaining split. A wallet cancel is final: its reversal is `12`.
//! - A second reversal of the same original, or the reversal of a declined original: `00`, no change.
//! - An original still pending after the wait (its node died mid-flight) is marked reversed, so no
//!   late outcome can apply; a card's issuer is owed a `0420` for it.
//! - An unknown original: `25`, and the reversal is remembered, so the original, if it comes late,
//!   is declined.

use std::time::Instant;

use super::funding;
use super::request::Request;
use super::{Payments, Reply, ResponseCode};
use crate::instruments::InstrumentKind;
use crate::store::TxnStatus;

pub async fn reversal(p: &Payments, req: &Request<'_>, started: Instant) -> crate::Result<Reply> {
    let Some(mut f) = p.open(req, started) else { return Ok(req.refuse(ResponseCode::FORMAT_ERROR)) };
    let Some(orig) = req.original.as_ref() else { return Ok(f.respond(ResponseCode::FORMAT_ERROR)) };
    if let Err(replay) = f.claim().await? {
        return Ok(replay);
    }
    let Some(original) = super::find_original(p, &f.txn.terminal_id, orig).await? else {
        f.txn.original_key = Some(super::original_key(&f.txn.terminal_id, orig));
        return f.conclude(ResponseCode::ORIGINAL_NOT_FOUND).await;
    };
    f.follow(&original);
    if f.txn.amount.is_none() {
        f.txn.amount = original.amount;
    }
    let resp = f.respond(ResponseCode::APPROVED);
    f.fill(&resp, TxnStatus::Approved);
    if original.status == TxnStatus::Pending {
        let reversed = funding::reverse_undecided(&mut f, &original).await?;
        tracing::warn!(original = %original.id, reversed, "reversal of an undecided transaction");
        return Ok(resp);
    }
    let reversed = match original.instrument_kind {
        Some(InstrumentKind::Card) => funding::card::reverse(&mut f, &original).await?,
        Some(InstrumentKind::Gift) => funding::gift::reverse(&mut f, &original).await?,
        Some(InstrumentKind::Local) => match funding::local::reverse(&mut f, &original).await? {
            ResponseCode::APPROVED => return Ok(resp),
            refused => return f.conclude(refused).await,
        },
        None => funding::reverse_unfunded(&mut f, &original).await?,
    };
    tracing::info!(original = %original.id, reversed, "reversal");
    Ok(resp)
}
