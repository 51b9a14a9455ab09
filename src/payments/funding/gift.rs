//! Gift certificates: stored value on the platform's ledger, no issuer. `instruments::gift`'s rules
//! decide on the certificate as loaded (its balance from the ledger); the movement, the token's
//! consumption and the answer then commit in one transaction, whose guard (no balance below zero,
//! no cancel past its payment) catches a race the loaded state did not see.
//!
//! - Pay: in the certificate's currency only (`57`), before its expiry (`54`), up to its balance
//!   (`51`).
//! - Cancel: exactly the cancelled amount back — also after expiry, when it joins the refundable
//!   balance; `64` past what the payment has left.
//! - Reverse: a payment's amount less its cancels back, or a cancel's amount taken again.

use super::{InFlight, Paying, auth_code, reservation};
use crate::instruments::InstrumentKind;
use crate::instruments::card::RuleError;
use crate::instruments::gift::{GiftCertificate, GiftPayment};
use crate::ledger::{self, EntryId};
use crate::money::Amount;
use crate::payments::{Reply, ResponseCode};
use crate::store::{GiftRow, Movement, TxnKind, TxnRow, TxnStatus};
use crate::stored_value::gift::certificate;

/// The certificate `instrument_id` holds, and its state as the rules see it.
async fn load(f: &InFlight<'_>, instrument_id: &str) -> crate::Result<Option<(GiftRow, GiftCertificate)>> {
    let Some(gift) = f.p.store.gift_by_instrument(instrument_id).await? else { return Ok(None) };
    let cert = certificate(&f.p.store, &f.p.config, &gift).await?;
    Ok(Some((gift, cert)))
}

pub async fn pay(mut f: InFlight<'_>, paying: Paying) -> crate::Result<Reply> {
    use ResponseCode as C;
    let p = f.p;
    let Some((gift, mut cert)) = load(&f, &paying.instrument.id).await? else {
        return f.conclude(C::INSTRUMENT_BLOCKED).await;
    };
    if gift.currency != paying.currency.code {
        return f.conclude(C::NOT_PERMITTED).await;
    }
    let amount = paying.amount;
    match cert.pay(amount, p.clock.now_ms()) {
        Ok(_) => {}
        Err(RuleError::Expired) => return f.conclude(C::CARD_EXPIRED).await,
        Err(RuleError::InsufficientFunds { .. }) => return f.conclude(C::INSUFFICIENT_FUNDS).await,
        Err(RuleError::InvalidAmount(_)) => return f.conclude(C::INVALID_AMOUNT).await,
        Err(e) => return Err(crate::Error::Internal(e.to_string())),
    }
    let merchant = f.txn.merchant_id.clone().unwrap_or_default();
    let Ok(entry) = ledger::gift_payment(EntryId::fresh(), &paying.currency, &gift.id, &merchant, amount) else {
        // A merchant id the ledger cannot name an account after.
        return f.conclude(C::FORMAT_ERROR).await;
    };
    f.txn.auth_code = Some(auth_code());
    let resp = f.reply(C::APPROVED).await?;
    f.fill(&resp, TxnStatus::Approved);
    f.txn.principal = Some(paying.amount);
    let declined = match p.store.pay_stored_value(&f.txn, &paying.token.id, &entry, p.clock.now_ms()).await? {
        Movement::Done => {
            crate::metrics::get().consumed(InstrumentKind::Gift);
            return Ok(resp);
        }
        Movement::Insufficient => C::INSUFFICIENT_FUNDS,
        Movement::TokenGone | Movement::ExceedsCancellable => C::TOKEN_USED,
        Movement::Superseded => C::SYSTEM_ERROR,
    };
    f.txn.auth_code = None;
    f.txn.principal = None;
    f.conclude(declined).await
}

/// Restores exactly the cancelled amount to the certificate. The reservation on the payment, the
/// entry and the cancel commit together.
pub async fn cancel(mut f: InFlight<'_>, original: &TxnRow, amount: Amount) -> crate::Result<Reply> {
    use ResponseCode as C;
    let p = f.p;
    let Some((gift, mut cert)) = load(&f, original.instrument_id.as_deref().unwrap_or("")).await? else {
        return f.conclude(C::INSTRUMENT_BLOCKED).await;
    };
    let cur = cert.currency.clone();
    let mut payment = GiftPayment {
        amount: original.amount.unwrap_or_else(|| Amount::zero(&cur)),
        cancelled: original.cancelled_amount,
    };
    let restored = match cert.cancel(&mut payment, amount, p.clock.now_ms()) {
        Ok(c) => c.restored,
        Err(RuleError::ExceedsCancellable { .. }) => return f.conclude(C::EXCEEDS_CANCELLABLE).await,
        Err(RuleError::InvalidAmount(_)) => return f.conclude(C::INVALID_AMOUNT).await,
        Err(e) => return Err(crate::Error::Internal(e.to_string())),
    };
    let merchant = original.merchant_id.clone().unwrap_or_default();
    let entry = ledger::gift_cancel(EntryId::fresh(), &cur, &gift.id, &merchant, restored)?;
    let resp = f.reply(C::APPROVED).await?;
    f.fill(&resp, TxnStatus::Approved);
    f.txn.cancel_type = Some(super::cancel_type(p, original).await?);
    f.txn.principal = Some(amount);
    let code = match p.store.cancel_stored_value(&original.id, amount, &f.txn, &entry, p.clock.now_ms()).await? {
        Movement::Done => return Ok(resp),
        Movement::ExceedsCancellable => C::EXCEEDS_CANCELLABLE,
        Movement::Insufficient | Movement::TokenGone | Movement::Superseded => C::SYSTEM_ERROR,
    };
    f.txn.cancel_type = None;
    f.txn.principal = None;
    f.conclude(code).await
}

/// Undoes a certificate's payment (restoring what it still holds: its amount less earlier
/// cancels) or cancel (taking the cancelled amount again), with the reversal, in one transaction.
/// Returns whether it was reversed now.
pub async fn reverse(f: &mut InFlight<'_>, original: &TxnRow) -> crate::Result<bool> {
    let p = f.p;
    let now = p.clock.now_ms();
    let loaded = load(f, original.instrument_id.as_deref().unwrap_or("")).await?;
    let Some((gift, cert)) = loaded else {
        return Ok(p.store.reverse_stored_value(&original.id, &f.txn, None, reservation(original), now).await?);
    };
    let cur = &cert.currency;
    let amount = original.amount.unwrap_or_else(|| Amount::zero(cur));
    let held = match original.kind {
        TxnKind::Purchase => {
            let paid = GiftPayment { amount, cancelled: original.cancelled_amount };
            paid.remaining(cur).map_err(|e| crate::Error::Internal(e.to_string()))?
        }
        _ => amount,
    };
    let merchant = original.merchant_id.clone().unwrap_or_default();
    let entry = if held.is_positive() && original.status == TxnStatus::Approved {
        let id = EntryId::fresh();
        // Reversing a cancel takes its amount again; reversing a payment gives it back.
        let e = match original.kind {
            TxnKind::Cancel => ledger::gift_payment(id, cur, &gift.id, &merchant, held)?,
            _ => ledger::gift_reversal(id, cur, &gift.id, &merchant, held)?,
        };
        f.txn.principal = Some(held);
        Some(e)
    } else {
        None
    };
    Ok(p.store.reverse_stored_value(&original.id, &f.txn, entry.as_ref(), reservation(original), now).await?)
}
