//! Cards: the card's issuer decides, asked with the real PAN revealed from the vault for that one
//! message.
//!
//! - Pay: before the issuer is asked, the claim records the token, instrument, kind and issuer (what
//!   resolving it after a crash needs), and a one-time token is leased to the payment (a racing
//!   payment with it gets `78`). An approval consumes the token with the approval in one write; a
//!   decline gives the lease back; no answer in time is `91`, and the issuer is owed a `0420` so
//!   that a late approval is undone. A merchant token is multi-use: payments with it run side by
//!   side and none consumes it.
//! - Cancel (`instruments::card`'s rule: partial and repeated cancels up to the payment, `64`
//!   past it; void or refund by the business day): the amount is reserved on the payment by a
//!   checked update (a trigger caps it in the database too), then refunded by the issuer. Its
//!   approval commits the cancel; a decline gives the reservation back, and an unknown outcome gives
//!   it back and owes the issuer a `0420` for the refund.
//! - Reverse: the original is marked reversed and the issuer owed a `0420`; the token stays spent.

use super::super::issuer::{IssuerAnswer, financial_request};
use super::{InFlight, Paying, currency_of};
use crate::instruments::InstrumentKind;
use crate::instruments::card::{CardPayment, RuleError};
use crate::iso8583::{Mti, OriginalData};
use crate::money::Amount;
use crate::payments::{Reply, ResponseCode};
use crate::store::{TxnRow, TxnStatus};

/// A one-time token held by one pending payment while its issuer answers; the lease is the
/// payment's transaction id. The approval consumes it and a decline gives it back, each with the
/// outcome in one database transaction; a crash leaves it to `recovery`, which spends it.
#[must_use = "a leased token is consumed by the approval or released"]
struct Lease {
    token_id: String,
}

/// A cancel's hold on the payment it cancels: `amount` of it counted as cancelled while the issuer
/// answers, so racing cancels cannot exceed the payment. The approval keeps it; a decline gives it
/// back with its outcome, in one database transaction.
#[must_use = "a cancel's reservation is kept by the approval or released by the decline"]
struct Reservation<'a> {
    payment_id: &'a str,
    amount: Amount,
}

impl<'a> Reservation<'a> {
    /// The approved cancel keeps what it reserved: it is now cancelled for good.
    fn keep(self) {}

    /// What a declined cancel gives back to its payment (payment id, amount).
    fn release(self) -> Option<(&'a str, Amount)> {
        Some((self.payment_id, self.amount))
    }
}

/// Pays with a claimed transaction: a merchant token's, which is multi-use (nothing to lease; a
/// one-time token takes `claim_and_pay`).
pub async fn pay(mut f: InFlight<'_>, paying: Paying) -> crate::Result<Reply> {
    if !f.p.store.hold_for_issuer(&f.txn).await? {
        return f.decline(ResponseCode::TOKEN_USED, None, false).await;
    }
    ask(f, paying, None).await
}

/// Pays with a one-time token, the transaction not yet claimed: the claim and the token's lease are
/// one write (what `hold_for_issuer` would add to the claim is already on the row).
pub async fn claim_and_pay(mut f: InFlight<'_>, paying: Paying) -> crate::Result<Reply> {
    use crate::store::ClaimHold;
    let p = f.p;
    f.hash_content().await?;
    let lease = Lease { token_id: paying.token.id.clone() };
    match p.store.claim_holding(&f.txn, &f.txn.key(), &lease.token_id, p.clock.now_ms()).await? {
        ClaimHold::Held => ask(f, paying, Some(lease)).await,
        // The terminal already reversed this payment: it must not take effect now.
        ClaimHold::ReversalWaiting => f.conclude(ResponseCode::DO_NOT_HONOR).await,
        ClaimHold::TokenBusy => f.decline(ResponseCode::TOKEN_USED, None, false).await,
        ClaimHold::Existing(existing) => match f.repeat(*existing).await? {
            Err(replay) => Ok(replay),
            // (Only a reversal takes over a row; a purchase's key never names one.)
            Ok(()) => Ok(f.respond(ResponseCode::SYSTEM_ERROR)),
        },
    }
}

/// Asks the card's issuer for a held payment and records the outcome.
async fn ask(mut f: InFlight<'_>, paying: Paying, lease: Option<Lease>) -> crate::Result<Reply> {
    use ResponseCode as C;
    let p = f.p;
    let Paying { instrument, .. } = paying;
    let pan = match p.vault.reveal_pan(&instrument).await {
        Ok(pan) => pan,
        Err(e) => {
            if let Some(l) = lease {
                p.store.release_token(&l.token_id, &f.txn.id).await?;
            }
            return Err(e);
        }
    };
    let issuer_req = financial_request(f.req.msg, pan.expose(), instrument.expiry.as_deref(), instrument.assurance);
    drop(pan);
    let (code, owe_advice) = match p.ask_issuer(instrument.issuer_id.as_deref(), issuer_req, &mut f.txn).await {
        IssuerAnswer::Answered { code, auth_code } if code.is_approved() => {
            f.txn.auth_code = Some(auth_code.unwrap_or_else(|| "000000".into()));
            return match lease {
                Some(lease) => approve(f, lease).await,
                None => f.conclude(C::APPROVED).await,
            };
        }
        IssuerAnswer::Answered { code, .. } => (code, false),
        IssuerAnswer::Unavailable => (C::ISSUER_UNAVAILABLE, false),
        // The issuer may have approved: the decline owes it a 0420 (recorded with the answer),
        // which undoes a late approval, so the token may pay again.
        IssuerAnswer::Unknown => (C::ISSUER_UNAVAILABLE, true),
    };
    // A decline gives back the token leased to this payment with the answer.
    f.decline(code, None, owe_advice).await
}

/// The approval, the token's consumption and the stored answer commit together, before the answer
/// is sent.
async fn approve(mut f: InFlight<'_>, lease: Lease) -> crate::Result<Reply> {
    let p = f.p;
    let resp = f.reply(ResponseCode::APPROVED).await?;
    f.fill(&resp, TxnStatus::Approved);
    if p.store.approve_with_token(&f.txn, &lease.token_id, &f.txn.id, p.clock.now_ms()).await? {
        crate::metrics::get().consumed(InstrumentKind::Card);
        return Ok(resp);
    }
    // The payment was decided meanwhile (reversed by its terminal, or taken for cut off and
    // resolved): the approval must not stand; whoever decided it owed the 0420 that undoes it.
    f.txn.auth_code = None;
    f.chip = None;
    f.decline(ResponseCode::SYSTEM_ERROR, None, true).await
}

/// Cancels `amount` of `original`, an approved card purchase.
pub async fn cancel(mut f: InFlight<'_>, original: &TxnRow, amount: Amount) -> crate::Result<Reply> {
    use ResponseCode as C;
    let p = f.p;
    let now = p.clock.now_ms();
    let currency = currency_of(p, original)?;
    let mut payment = CardPayment {
        amount: original.amount.unwrap_or_else(|| Amount::zero(&currency)),
        cancelled: original.cancelled_amount,
        paid_at_ms: original.created_at,
    };
    let settlements = p.store.settlements().await?;
    let rule = p.config.business_day().map_err(|e| crate::Error::Internal(e.to_string()))?;
    let cancelled = match payment.cancel(amount, now, &currency, &rule, &settlements) {
        Ok(c) => c,
        Err(RuleError::ExceedsCancellable { .. }) => return f.conclude(C::EXCEEDS_CANCELLABLE).await,
        Err(RuleError::InvalidAmount(_)) => return f.conclude(C::INVALID_AMOUNT).await,
        Err(e) => return Err(crate::Error::Internal(e.to_string())),
    };
    // The reservation (the database's guard against racing cancels) and what resolving this cancel
    // after a crash needs commit together, before the issuer is asked.
    if !p.store.reserve_cancel_for(&f.txn, &original.id, amount, now).await? {
        return f.conclude(C::EXCEEDS_CANCELLABLE).await;
    }
    let reservation = Reservation { payment_id: &original.id, amount };
    let instrument = p.store.instrument(original.instrument_id.as_deref().unwrap_or("")).await?;
    let pan = match instrument.as_ref() {
        Some(i) => p.vault.reveal_pan(i).await.ok(),
        None => None,
    };
    let (Some(instrument), Some(pan)) = (instrument, pan) else {
        // The card was deleted and its PAN destroyed: the issuer can no longer be asked.
        return f.decline(C::INSTRUMENT_BLOCKED, reservation.release(), false).await;
    };
    // The refund as the issuer sees it: DE90 names the purchase as it was sent to the issuer.
    let mut issuer_req = financial_request(f.req.msg, pan.expose(), instrument.expiry.as_deref(), instrument.assurance);
    drop(pan);
    let acquirer = original.acquirer_id.trim_start_matches('0');
    if let Ok(de90) = OriginalData::new(Mti::FINANCIAL_REQUEST, &original.stan, &original.transmitted, acquirer) {
        let _ = issuer_req.set_original_data(&de90);
    }
    match p.ask_issuer(original.issuer_id.as_deref(), issuer_req, &mut f.txn).await {
        IssuerAnswer::Answered { code, auth_code } if code.is_approved() => {
            f.txn.cancel_type = Some(cancelled.cancel_type);
            f.txn.auth_code = auth_code;
            reservation.keep();
            f.conclude(code).await
        }
        IssuerAnswer::Answered { code, .. } => f.decline(code, reservation.release(), false).await,
        IssuerAnswer::Unavailable => f.decline(C::ISSUER_UNAVAILABLE, reservation.release(), false).await,
        // The issuer may have refunded: the 0420 that undoes the refund is owed.
        IssuerAnswer::Unknown => f.decline(C::ISSUER_UNAVAILABLE, reservation.release(), true).await,
    }
}

/// Reverses `original`, a decided card purchase or cancel: its issuer is owed a `0420`, and a
/// reversed cancel's reservation goes back to its payment. Returns whether it was reversed now.
pub async fn reverse(f: &mut InFlight<'_>, original: &TxnRow) -> crate::Result<bool> {
    super::reverse_recorded(f, original, true).await
}
