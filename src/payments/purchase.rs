//! `0200` purchase (DE3 `00xxxx`) paid with a token in DE2 (a card number there is a terminal that
//! read a card: `tokenize`).
//!
//! The checks every instrument gets, in order: amount and currency; the token (known, live,
//! unexpired, its instrument active); DE14 against the token's expiry; the token's domain
//! (merchant, currency, entry mode) and amount ceiling; for chip and contactless entry (DE22
//! `05x`/`07x`) the ARQC in DE55. They only read. Then the request claims its duplicate key (a
//! repeat gets the first answer) and a reversal that came first declines it; a refusal that counts
//! against the token is recorded only now, once. Then the instrument's kind decides (`funding`): a
//! card's issuer, a gift certificate's balance, a wallet's region and balance. A card's one-time
//! token takes the short way: the claim, the reversal check and the token's lease are one write
//! (`funding::card::claim_and_pay`), so the payment is two durable writes — that and its outcome.

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
    // The checks only read: a repeat of this request runs them again harmlessly, and what they
    // would write (a failed attempt on the token) waits until the request is claimed as new.
    let checked = match check(&mut f).await? {
        // The hot path, a card's one-time token: claimed and its token leased in one write.
        Ok(paying) if paying.instrument.kind == InstrumentKind::Card && !paying.token.multi_use => {
            return funding::card::claim_and_pay(f, paying).await;
        }
        checked => checked,
    };
    if let Err(replay) = f.claim().await? {
        return Ok(replay);
    }
    if p.store.reversal_waiting_for(&f.txn.key()).await?.is_some() {
        // The terminal already reversed this payment: it must not take effect now.
        return f.conclude(ResponseCode::DO_NOT_HONOR).await;
    }
    let p = f.p;
    let paying = match checked {
        Ok(paying) => paying,
        Err(refused) => {
            if let Some(token_id) = refused.failed_attempt {
                p.store.fail_token_attempt(&token_id, MAX_FAILED_ATTEMPTS, p.clock.now_ms()).await?;
            }
            return f.conclude(refused.code).await;
        }
    };
    match paying.instrument.kind {
        InstrumentKind::Card => funding::card::pay(f, paying).await,
        InstrumentKind::Gift => funding::gift::pay(f, paying).await,
        InstrumentKind::Local => funding::local::pay(f, paying).await,
    }
}

/// Why the checks refuse a payment: its code and, when the refusal counts against the token (its
/// domain broken, its cryptogram wrong), the token's id.
pub(crate) struct Refused {
    pub code: ResponseCode,
    pub failed_attempt: Option<String>,
}

impl From<ResponseCode> for Refused {
    fn from(code: ResponseCode) -> Self {
        Refused { code, failed_attempt: None }
    }
}

/// The checks every kind of instrument gets, reading only; `Err` refuses the payment. Records the
/// token and its instrument on the transaction, and a verified chip cryptogram on `f`.
async fn check(f: &mut InFlight<'_>) -> crate::Result<Result<Paying, Refused>> {
    use ResponseCode as C;
    let (p, req) = (f.p, f.req);
    let Some(amount) = req.amount.filter(|a| a.is_positive()) else { return Ok(Err(C::INVALID_AMOUNT.into())) };
    // DE49 absent: the platform's currency (a domestic terminal may leave it out); unknown: 12.
    let Some(currency) = p.config.currency_of_de49(req.currency).cloned() else {
        return Ok(Err(C::INVALID_TRANSACTION.into()));
    };
    let Some(number) = req.number else { return Ok(Err(C::FORMAT_ERROR.into())) };
    let Some((token, instrument)) = p.store.token_with_instrument(number).await? else {
        return Ok(Err(C::UNKNOWN_CARD.into()));
    };
    f.txn.token_id = Some(token.id.clone());
    f.txn.instrument_id = Some(token.instrument_id.clone());
    let Some(instrument) = instrument else { return Ok(Err(C::INSTRUMENT_BLOCKED.into())) };
    f.txn.instrument_kind = Some(instrument.kind);
    f.txn.issuer_id = instrument.issuer_id.clone();
    f.txn.masked_pan = masked(&instrument);
    if let Some(e) = p.tokens.refusal_for(&token, Some(&instrument)) {
        return Ok(Err(C::from_error(&e).into()));
    }
    // A merchant token's terminal may send the token's month or the card's (it read the card);
    // its expiry is the TSP's to enforce either way.
    let expiry_ok = |e: &str| e == token.token_expiry || (token.multi_use && instrument.expiry.as_deref() == Some(e));
    if req.expiry.is_some_and(|e| !expiry_ok(e)) {
        return Ok(Err(C::CARD_EXPIRED.into()));
    }
    if let Some(refused) = domain_check(f, &token, &currency.code, amount) {
        return Ok(Err(refused));
    }
    // A merchant token has no chip key: a card-on-file payment carries no cryptogram of its own.
    if !token.multi_use && req.is_chip() {
        match Chip::verify(&p.hsm, req, &token, &instrument).await? {
            Ok(c) => f.chip = Some(c),
            Err(code) => {
                let failed_attempt = (code == C::CRYPTOGRAM_FAILED).then(|| token.id.clone());
                return Ok(Err(Refused { code, failed_attempt }));
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
fn domain_check(f: &InFlight<'_>, t: &TokenRow, currency: &str, amount: Amount) -> Option<Refused> {
    let req = f.req;
    let merchant = req.merchant.unwrap_or("");
    let entry = req.entry_method();
    let wrong_domain = t.merchant_id.as_deref().is_some_and(|m| m != merchant)
        || t.currency.as_deref().is_some_and(|c| c != currency)
        || t.entry_modes.as_deref().is_some_and(|modes| !modes.split(',').any(|m| m == entry));
    if wrong_domain {
        // Another merchant trying a merchant token must not be able to lock it for its own.
        let failed_attempt = (!t.multi_use).then(|| t.id.clone());
        return Some(Refused { code: ResponseCode::NOT_PERMITTED, failed_attempt });
    }
    // Same currency (checked above), so same scale; a mismatch all the same counts as over the limit.
    if t.max_amount.is_some_and(|m| !amount.checked_le(m).unwrap_or(false)) {
        return Some(ResponseCode::EXCEEDS_LIMIT.into());
    }
    None
}
