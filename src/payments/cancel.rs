//! `0200` cancellation (DE3 `20xxxx`) of a purchase: DE90 names the original, DE4 the amount to
//! cancel. Partial and repeated cancels are allowed up to the original (`64` past it). A cancel
//! within the payment's business day is a *void*, after the day's settlement a *refund*; the
//! transaction records which.
//!
//! Checked here for every instrument: the amount (`13`), the original (unknown `25`; not an
//! approved purchase — reversed, declined, itself a cancel — `12`: there is nothing left to
//! cancel). Then the original's instrument kind decides (`funding`): a card's issuer refunds, a gift
//! certificate gets exactly the amount back, a wallet what its region's policy restores.

use std::time::Instant;

use super::funding;
use super::request::Request;
use super::{Payments, Reply, ResponseCode, find_original};
use crate::instruments::InstrumentKind;
use crate::store::{TxnKind, TxnStatus};

pub async fn cancel(p: &Payments, req: &Request<'_>, started: Instant) -> crate::Result<Reply> {
    use ResponseCode as C;
    let Some(mut f) = p.open(req, started) else { return Ok(req.refuse(ResponseCode::FORMAT_ERROR)) };
    let Some(orig) = req.original.as_ref() else { return Ok(f.respond(C::FORMAT_ERROR)) };
    if let Err(replay) = f.claim().await? {
        return Ok(replay);
    }
    let Some(amount) = req.amount.filter(|a| a.is_positive()) else { return f.conclude(C::INVALID_AMOUNT).await };
    let Some(original) = find_original(p, &f.txn.terminal_id, orig).await? else {
        return f.conclude(C::ORIGINAL_NOT_FOUND).await;
    };
    f.follow(&original);
    if original.kind != TxnKind::Purchase || original.status != TxnStatus::Approved {
        return f.conclude(C::INVALID_TRANSACTION).await;
    }
    // A cancel is in its payment's currency (DE49; the platform's where absent): one nobody
    // configured is 12 as for a purchase, another configured one 13 (its amount means something else).
    let Some(currency) = p.config.currency_of_de49(req.currency) else {
        return f.conclude(C::INVALID_TRANSACTION).await;
    };
    if p.config.currency_of_de49(original.currency.as_deref()) != Some(currency) {
        return f.conclude(C::INVALID_AMOUNT).await;
    }
    match original.instrument_kind {
        Some(InstrumentKind::Card) => funding::card::cancel(f, &original, amount).await,
        Some(InstrumentKind::Gift) => funding::gift::cancel(f, &original, amount).await,
        Some(InstrumentKind::Local) => funding::local::cancel(f, &original, amount).await,
        // An approved purchase always has its instrument.
        None => f.conclude(C::NOT_PERMITTED).await,
    }
}
