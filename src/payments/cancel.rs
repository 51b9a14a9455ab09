//! `0200` cancellation (DE3 `20xxxx`) of a card payment: DE90 names the original purchase, DE4 the
//! amount to cancel. Partial and repeated cancels are allowed up to the original (`64` past it).
//!
//! The amount is first reserved on the original by a checked update (a trigger caps the total in the
//! database too), so racing cancels can never exceed it. The refund goes to the card's issuer; its
//! approval commits the cancel, a decline gives the reservation back, and an unknown outcome gives
//! it back and owes the issuer a `0420` for the refund. A cancel within the payment's business day
//! is a *void*, after the day's settlement a *refund*; the transaction records which.
//!
//! An unknown original is `25`; a reversed or declined one `12` (there is nothing left to cancel).
//!
//! Stored value has no issuer: a gift certificate gets exactly the cancelled amount back, a
//! local-currency wallet what its region's policy restores (`local`); both record void or refund by
//! the same business-day rule, and the split they moved.

use std::time::Instant;

use super::{IssuerAnswer, Payments, Reply, ResponseCode, find_original};
use crate::iso8583::{Message, Mti, OriginalData};
use crate::store::InstrumentKind;
use crate::store::TxnKind;
use crate::store::TxnStatus;

pub async fn cancel(p: &Payments, req: &Message, started: Instant) -> crate::Result<Reply> {
    use ResponseCode as C;
    let resp_mti = Mti::FINANCIAL_RESPONSE;
    let Some(mut txn) = p.new_txn(req, TxnKind::Cancel, "02") else {
        return Ok(p.respond(req, resp_mti, C::FORMAT_ERROR));
    };
    let Some(orig) = req.original_data() else { return Ok(p.respond(req, resp_mti, C::FORMAT_ERROR)) };
    if let Err(replay) = p.claim(req, &mut txn, resp_mti).await? {
        return Ok(replay);
    }
    let code = match decide(p, req, &mut txn, &orig).await? {
        Step::Code(code) => code,
        Step::Refused { code, original_id, reserved, owed } => {
            // The refusal, the reservation given back and the advice owed commit together: a
            // crash leaves either all of it or a pending cancel that `recovery` resolves the same way.
            let resp = p.respond(req, resp_mti, code);
            p.decline(&mut txn, &resp, started, Some((&original_id, reserved)), owed).await?;
            return Ok(resp);
        }
        Step::Gift { original, gift, currency, amount } => {
            return cancel_gift(p, req, &mut txn, &original, &gift, &currency, amount, started).await;
        }
        Step::Local { original, amount } => {
            return super::local::cancel(p, req, &mut txn, &original, amount, started).await;
        }
    };
    let resp = p.respond(req, resp_mti, code);
    let status = if code.is_approved() { TxnStatus::Approved } else { TxnStatus::Declined };
    p.finish(&mut txn, &resp, status, started).await?;
    Ok(resp)
}

/// Where the checks leave a cancel.
enum Step {
    Code(ResponseCode),
    /// A card cancel refused after `reserved` was reserved on its payment: the reservation is
    /// given back with the refusal, and when the issuer may have refunded, a `0420` is owed.
    Refused {
        code: ResponseCode,
        original_id: String,
        reserved: i64,
        owed: bool,
    },
    /// A gift certificate payment to cancel: restore `amount` to it.
    Gift {
        original: Box<crate::store::TxnRow>,
        gift: Box<crate::store::GiftRow>,
        currency: Box<crate::money::Currency>,
        amount: i64,
    },
    /// A local-currency payment to cancel by its region's policy.
    Local {
        original: Box<crate::store::TxnRow>,
        amount: i64,
    },
}

impl From<ResponseCode> for Step {
    fn from(c: ResponseCode) -> Self {
        Step::Code(c)
    }
}

async fn decide(
    p: &Payments,
    req: &Message,
    txn: &mut crate::store::TxnRow,
    orig: &OriginalData,
) -> crate::Result<Step> {
    use ResponseCode as C;
    let Some(amount) = txn.amount.filter(|a| *a > 0) else { return Ok(C::INVALID_AMOUNT.into()) };
    let Some(original) = find_original(p, &txn.terminal_id, orig).await? else {
        return Ok(C::ORIGINAL_NOT_FOUND.into());
    };
    txn.original_id = Some(original.id.clone());
    txn.token_id = original.token_id.clone();
    txn.instrument_id = original.instrument_id.clone();
    txn.instrument_kind = original.instrument_kind;
    txn.masked_pan = original.masked_pan.clone();
    txn.issuer_id = original.issuer_id.clone();
    if original.kind != TxnKind::Purchase || original.status != TxnStatus::Approved {
        return Ok(C::INVALID_TRANSACTION.into());
    }
    if original.instrument_kind == Some(InstrumentKind::Gift) {
        let gift = p.store.gift_by_instrument(original.instrument_id.as_deref().unwrap_or("")).await?;
        let currency = gift.as_ref().and_then(|g| p.config.currency(&g.currency)).cloned();
        let (Some(gift), Some(currency)) = (gift, currency) else { return Ok(C::INSTRUMENT_BLOCKED.into()) };
        return Ok(Step::Gift {
            original: Box::new(original),
            gift: Box::new(gift),
            currency: Box::new(currency),
            amount,
        });
    }
    if original.instrument_kind == Some(InstrumentKind::Local) {
        return Ok(Step::Local { original: Box::new(original), amount });
    }
    if original.instrument_kind != Some(InstrumentKind::Card) {
        return Ok(C::NOT_PERMITTED.into());
    }
    let now = p.clock.now_ms();
    // The reservation and what resolving this cancel after a crash needs commit together, before
    // the issuer is asked.
    if !p.store.reserve_cancel_for(txn, &original.id, amount, now).await? {
        return Ok(C::EXCEEDS_CANCELLABLE.into());
    }
    let instrument = p.store.instrument(original.instrument_id.as_deref().unwrap_or("")).await?;
    let pan = match instrument.as_ref() {
        Some(i) => p.vault.reveal_pan(i).await.ok(),
        None => None,
    };
    let refused = |code: ResponseCode, owed: bool| Step::Refused {
        code,
        original_id: original.id.clone(),
        reserved: amount,
        owed,
    };
    let (Some(instrument), Some(pan)) = (instrument, pan) else {
        // The card was deleted and its PAN destroyed: the issuer can no longer be asked.
        return Ok(refused(C::INSTRUMENT_BLOCKED, false));
    };
    // The refund as the issuer sees it: DE90 names the purchase as it was sent to the issuer.
    let mut issuer_req = super::purchase::issuer_request(req, pan.expose(), instrument.expiry.as_deref());
    drop(pan);
    let acquirer = original.acquirer_id.trim_start_matches('0');
    if let Ok(de90) = OriginalData::new(Mti::FINANCIAL_REQUEST, &original.stan, &original.transmitted, acquirer) {
        let _ = issuer_req.set_original_data(&de90);
    }
    match p.ask_issuer(original.issuer_id.as_deref(), issuer_req, txn).await {
        IssuerAnswer::Answered(ans) => {
            let code = ans.response_code().and_then(ResponseCode::parse).unwrap_or(C::SYSTEM_ERROR);
            txn.issuer_response = Some(code.as_str().to_string());
            if !code.is_approved() {
                return Ok(refused(code, false));
            }
            txn.cancel_type = Some(cancel_type(p, &original).await?);
            txn.auth_code = ans.authorization_code().map(Into::into);
            Ok(code.into())
        }
        IssuerAnswer::Unavailable => Ok(refused(C::ISSUER_UNAVAILABLE, false)),
        // The issuer may have refunded: the 0420 that undoes the refund is owed.
        IssuerAnswer::Unknown => Ok(refused(C::ISSUER_UNAVAILABLE, true)),
    }
}

/// `void` when the cancel falls in the payment's business day, `refund` after its settlement (the
/// cut-off or `tsp settle`). The same rule for every kind of instrument: for stored value it says
/// whether the merchant's payable was already settled.
pub(super) async fn cancel_type(p: &Payments, original: &crate::store::TxnRow) -> crate::Result<String> {
    let settlements = p.store.settlements().await?;
    let rule = p.config.business_day().map_err(|e| crate::Error::invalid("config", e.to_string()))?;
    Ok(rule.cancel_type(original.created_at, p.clock.now_ms(), &settlements).as_str().to_string())
}

/// Restores exactly the cancelled amount to the certificate — also after its expiry, when it joins
/// the refundable balance. The reservation on the payment, the entry and the cancel commit together.
#[allow(clippy::too_many_arguments)]
async fn cancel_gift(
    p: &Payments,
    req: &Message,
    txn: &mut crate::store::TxnRow,
    original: &crate::store::TxnRow,
    gift: &crate::store::GiftRow,
    currency: &crate::money::Currency,
    amount: i64,
    started: Instant,
) -> crate::Result<Reply> {
    use crate::store::Movement;
    let resp_mti = Mti::FINANCIAL_RESPONSE;
    let original_id = original.id.as_str();
    let merchant = original.merchant_id.clone().unwrap_or_default();
    let entry = crate::ledger::gift_cancel(
        crate::ledger::EntryId::fresh(),
        currency,
        &gift.id,
        &merchant,
        crate::money::Amount::from_minor(amount, currency),
    );
    let Ok(entry) = entry else {
        let resp = p.respond(req, resp_mti, ResponseCode::SYSTEM_ERROR);
        p.finish(txn, &resp, TxnStatus::Declined, started).await?;
        return Ok(resp);
    };
    let resp = p.respond(req, resp_mti, ResponseCode::APPROVED);
    p.fill(txn, &resp, TxnStatus::Approved, started);
    txn.cancel_type = Some(cancel_type(p, original).await?);
    txn.principal = Some(amount);
    let code = match p.store.cancel_stored_value(original_id, amount, txn, &entry, p.clock.now_ms()).await? {
        Movement::Done => return Ok(resp),
        Movement::ExceedsCancellable => ResponseCode::EXCEEDS_CANCELLABLE,
        Movement::Insufficient | Movement::TokenGone | Movement::Superseded => ResponseCode::SYSTEM_ERROR,
    };
    txn.cancel_type = None;
    txn.principal = None;
    let resp = p.respond(req, resp_mti, code);
    p.finish(txn, &resp, TxnStatus::Declined, started).await?;
    Ok(resp)
}
