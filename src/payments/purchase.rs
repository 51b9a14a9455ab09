//! `0200` purchase (DE3 `00xxxx`) paid with a token in DE2 (a card number there is a terminal that
//! read a card: `tokenize`).
//!
//! The checks every instrument gets, in order: duplicate key; a reversal that came first; amount
//! and currency; the token (known, live, unexpired, its instrument active); DE14 against the
//! token's expiry; the token's domain (merchant, currency, entry mode) and amount ceiling; for chip
//! and contactless entry (DE22 `05x`/`07x`) the ARQC in DE55. Then the instrument's kind decides
//! (`funding`): a card's issuer, a gift certificate's balance, a wallet's region and balance.

use std::time::Instant;

use super::funding::{self, Paying};
use super::request::Request;
use super::{Chip, InFlight, MAX_FAILED_ATTEMPTS, Payments, Reply, ResponseCode};
use crate::instruments::InstrumentKind;
use crate::money::Amount;
use crate::store::{InstrumentRow, TokenRow};
use crate::vault::Pan;

pub async fn purchase(p: &Payments, req: &Request<'_>, started: Instant) -> crate::Result<Reply> {
    let Some(mut f) = p.open(req, started) else { return Ok(req.refuse(ResponseCode::FORMAT_ERROR)) };
    // A card number instead of a token: the terminal read a card (terminal tokenization).
    if let Some(number) = req.number.filter(|n| super::tokenize::is_card_number(p, n))
        && let Ok(pan) = Pan::parse(number)
    {
        f.txn.masked_pan = Some(pan.masked());
        return super::tokenize::pay_with_pan(f, &pan).await;
    }
    if let Err(replay) = f.claim().await? {
        return Ok(replay);
    }
    let paying = match check(&mut f).await? {
        Ok(paying) => paying,
        Err(code) => return f.conclude(code).await,
    };
    match paying.instrument.kind {
        InstrumentKind::Card => funding::card::pay(f, paying).await,
        InstrumentKind::Gift => funding::gift::pay(f, paying).await,
        InstrumentKind::Local => funding::local::pay(f, paying).await,
    }
}

/// The checks every kind of instrument gets; `Err` is the code that refuses the payment. Records
/// the token and its instrument on the transaction, and a verified chip cryptogram on `f`.
async fn check(f: &mut InFlight<'_>) -> crate::Result<Result<Paying, ResponseCode>> {
    use ResponseCode as C;
    let (p, req) = (f.p, f.req);
    if p.store.reversal_waiting_for(&f.txn.key()).await?.is_some() {
        // The terminal already reversed this payment: it must not take effect now.
        return Ok(Err(C::DO_NOT_HONOR));
    }
    let Some(amount) = req.amount.filter(|a| a.is_positive()) else { return Ok(Err(C::INVALID_AMOUNT)) };
    // DE49 absent: the platform's currency (a domestic terminal may leave it out); unknown: 12.
    let Some(currency) = p.config.currency_of_de49(req.currency).cloned() else {
        return Ok(Err(C::INVALID_TRANSACTION));
    };
    let Some(number) = req.number else { return Ok(Err(C::FORMAT_ERROR)) };
    let Some(token) = p.store.token_by_number(number).await? else { return Ok(Err(C::UNKNOWN_CARD)) };
    f.txn.token_id = Some(token.id.clone());
    f.txn.instrument_id = Some(token.instrument_id.clone());
    let Some(instrument) = p.store.instrument(&token.instrument_id).await? else {
        return Ok(Err(C::INSTRUMENT_BLOCKED));
    };
    f.txn.instrument_kind = Some(instrument.kind);
    f.txn.issuer_id = instrument.issuer_id.clone();
    f.txn.masked_pan = masked(&instrument);
    if let Some(e) = p.tokens.refusal_for(&token, Some(&instrument)) {
        return Ok(Err(C::from_error(&e)));
    }
    // A merchant token's terminal may send the token's month or the card's (it read the card);
    // its expiry is the TSP's to enforce either way.
    let expiry_ok = |e: &str| e == token.token_expiry || (token.multi_use && instrument.expiry.as_deref() == Some(e));
    if req.expiry.is_some_and(|e| !expiry_ok(e)) {
        return Ok(Err(C::CARD_EXPIRED));
    }
    if let Some(code) = domain_check(f, &token, &currency.code, amount).await? {
        return Ok(Err(code));
    }
    // A merchant token has no chip key: a card-on-file payment carries no cryptogram of its own.
    if !token.multi_use && req.is_chip() {
        match Chip::verify(&p.hsm, req, &token, &instrument).await? {
            Ok(c) => f.chip = Some(c),
            Err(code) => {
                if code == C::CRYPTOGRAM_FAILED {
                    p.store.fail_token_attempt(&token.id, MAX_FAILED_ATTEMPTS, p.clock.now_ms()).await?;
                }
                return Ok(Err(code));
            }
        }
    }
    Ok(Ok(Paying { token, instrument, currency, amount }))
}

fn masked(i: &InstrumentRow) -> Option<String> {
    let (bin, last4) = (i.bin.as_deref()?, i.last4.as_deref()?);
    Some(crate::vault::pan::mask(bin, last4, i.pan_len.unwrap_or(16) as usize))
}

/// The token's domain controls; a violation counts as a failed attempt.
async fn domain_check(
    f: &InFlight<'_>,
    t: &TokenRow,
    currency: &str,
    amount: Amount,
) -> crate::Result<Option<ResponseCode>> {
    let (p, req) = (f.p, f.req);
    let merchant = req.merchant.unwrap_or("");
    let entry = req.entry_method();
    let wrong_domain = t.merchant_id.as_deref().is_some_and(|m| m != merchant)
        || t.currency.as_deref().is_some_and(|c| c != currency)
        || t.entry_modes.as_deref().is_some_and(|modes| !modes.split(',').any(|m| m == entry));
    if wrong_domain {
        // Another merchant trying a merchant token must not be able to lock it for its own.
        if !t.multi_use {
            p.store.fail_token_attempt(&t.id, MAX_FAILED_ATTEMPTS, p.clock.now_ms()).await?;
        }
        return Ok(Some(ResponseCode::NOT_PERMITTED));
    }
    // Same currency (checked above), so same scale; a mismatch all the same counts as over the limit.
    if t.max_amount.is_some_and(|m| !amount.checked_le(m).unwrap_or(false)) {
        return Ok(Some(ResponseCode::EXCEEDS_LIMIT));
    }
    Ok(None)
}
