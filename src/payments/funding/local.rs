//! Local-currency (지역화폐) payments, cancels and reversals over ISO 8583: the glue between the
//! message handlers and the wallet (`stored_value::wallet`), whose rules are `instruments::local`'s.
//!
//! - A payment is accepted only at a merchant (DE42) registered in the wallet's region, else `57`; it
//!   spends bonus first, then principal, `51` when both together are short. The split, the token's
//!   consumption, the ledger entry and the answer commit together.
//! - A cancel (DE3 `20xxxx`) restores by the region's policy (`reverse` or `pro_rata`); bonus whose
//!   grant has expired by then is forfeited to the region, not restored; `64` past what is left.
//! - A reversal (`0400`) of a payment restores what it still holds, so payment + reversal leave the
//!   wallet as it was (less bonus that expired meanwhile).

use super::{InFlight, Paying, auth_code};
use crate::instruments::InstrumentKind;
use crate::instruments::card::RuleError;
use crate::ledger::{self, EntryId, LocalRestore, Split};
use crate::money::Amount;
use crate::payments::{Reply, ResponseCode};
use crate::store::{TxnKind, TxnRow, TxnStatus, WalletOutcome};
use crate::stored_value::wallet::{self, Applied, Loaded, Plan, Step};

fn corrupt(m: impl std::fmt::Display) -> crate::Error {
    crate::Error::Internal(format!("wallet: {m}"))
}

/// What a wallet's database guards refusing a write means for the terminal.
fn refused(o: WalletOutcome) -> ResponseCode {
    match o {
        WalletOutcome::TokenGone => ResponseCode::TOKEN_USED,
        WalletOutcome::Insufficient => ResponseCode::INSUFFICIENT_FUNDS,
        WalletOutcome::ExceedsCancellable => ResponseCode::EXCEEDS_CANCELLABLE,
        WalletOutcome::NotApproved => ResponseCode::INVALID_TRANSACTION,
        WalletOutcome::Done | WalletOutcome::Conflict | WalletOutcome::Superseded => ResponseCode::SYSTEM_ERROR,
    }
}

/// The restore of one cancel or reversal, as its ledger entry and the split recorded on `t`.
fn restore_plan(
    l: &Loaded,
    t: &mut TxnRow,
    merchant: &str,
    r: &crate::instruments::local::LocalCancel,
    reversal: bool,
) -> crate::Result<crate::ledger::JournalEntry> {
    let restore = LocalRestore { principal: r.principal, bonus: r.bonus, forfeited: r.forfeited };
    let wallet_id = &l.snapshot.wallet.instrument_id;
    let build = if reversal { ledger::local_reversal } else { ledger::local_cancel };
    let entry = build(EntryId::fresh(), &l.currency, wallet_id, &l.region.id, merchant, restore)?;
    (t.principal, t.bonus, t.forfeited) = (Some(r.principal), Some(r.bonus), Some(r.forfeited));
    Ok(entry)
}

/// A payment from a wallet at merchant DE42.
pub async fn pay(mut f: InFlight<'_>, paying: Paying) -> crate::Result<Reply> {
    let p = f.p;
    let instrument_id = paying.instrument.id.clone();
    let merchant = f.txn.merchant_id.clone().unwrap_or_default();
    let region = p.store.wallet_region(&instrument_id).await?;
    let at_merchant = p.store.merchant(&merchant).await?.map(|m| m.region_id);
    if region.is_none() || at_merchant != region {
        return f.conclude(ResponseCode::NOT_PERMITTED).await;
    }
    f.txn.auth_code = Some(auth_code());
    let resp = f.reply(ResponseCode::APPROVED).await?;
    f.fill(&resp, TxnStatus::Approved);
    let approved: &TxnRow = &f.txn;
    let (currency, amount, token_id) = (&paying.currency.code, paying.amount, paying.token.id.as_str());
    let applied = wallet::apply(
        &p.wallets,
        &p.store,
        &p.config,
        || p.clock.now_ms(),
        &instrument_id,
        None,
        |l, at| {
            if *currency != l.currency.code {
                return Ok(Step::Refuse(ResponseCode::NOT_PERMITTED));
            }
            let paid = match l.wallet.pay(amount, at, &l.policy) {
                Ok(paid) => paid,
                Err(RuleError::InsufficientFunds { .. }) => {
                    return Ok(Step::Refuse(ResponseCode::INSUFFICIENT_FUNDS));
                }
                Err(RuleError::InvalidAmount(_)) => return Ok(Step::Refuse(ResponseCode::INVALID_AMOUNT)),
                Err(e) => return Err(corrupt(e)),
            };
            let split = Split { principal: paid.principal, bonus: paid.bonus };
            let entry = ledger::local_payment(EntryId::fresh(), &l.currency, &instrument_id, &merchant, split)?;
            let mut t = approved.clone();
            (t.principal, t.bonus) = (Some(paid.principal), Some(paid.bonus));
            let plan = Plan {
                entries: vec![entry],
                transaction_id: Some(t.id.clone()),
                consume_token: Some(token_id.to_string()),
                new_payment: Some(l.payment_row(&t.id, &paid)?),
                txn: Some(t),
                ..Plan::default()
            };
            Ok(Step::Write(Box::new(plan), ResponseCode::APPROVED))
        },
    )
    .await?;
    let code = match applied {
        Applied::Done(ResponseCode::APPROVED) => {
            crate::metrics::get().consumed(InstrumentKind::Local);
            return Ok(resp);
        }
        Applied::Done(code) => code,
        Applied::Refused(o) => refused(o),
    };
    f.txn.auth_code = None;
    f.conclude(code).await
}

/// A (partial) cancel of `original`, a payment from a wallet.
pub async fn cancel(mut f: InFlight<'_>, original: &TxnRow, amount: Amount) -> crate::Result<Reply> {
    let p = f.p;
    let instrument_id = original.instrument_id.clone().unwrap_or_default();
    let merchant = original.merchant_id.clone().unwrap_or_default();
    f.txn.cancel_type = Some(super::cancel_type(p, original).await?);
    let resp = f.reply(ResponseCode::APPROVED).await?;
    f.fill(&resp, TxnStatus::Approved);
    let approved: &TxnRow = &f.txn;
    let applied = wallet::apply(
        &p.wallets,
        &p.store,
        &p.config,
        || p.clock.now_ms(),
        &instrument_id,
        Some(&original.id),
        |l, at| {
            let mut payment = l.payment.clone().ok_or_else(|| corrupt("a local payment's record is missing"))?;
            let done = match l.wallet.cancel(&mut payment, amount, at, &l.policy) {
                Ok(done) => done,
                Err(RuleError::ExceedsCancellable { .. }) => {
                    return Ok(Step::Refuse((ResponseCode::EXCEEDS_CANCELLABLE, None)));
                }
                Err(RuleError::InvalidAmount(_)) => return Ok(Step::Refuse((ResponseCode::INVALID_AMOUNT, None))),
                Err(e) => return Err(corrupt(e)),
            };
            let mut t = approved.clone();
            let entry = restore_plan(l, &mut t, &merchant, &done, false)?;
            let plan = Plan {
                entries: vec![entry],
                transaction_id: Some(t.id.clone()),
                payment_update: Some(l.payment_row(&original.id, &payment)?),
                cancel: Some((original.id.clone(), amount)),
                txn: Some(t.clone()),
                ..Plan::default()
            };
            Ok(Step::Write(Box::new(plan), (ResponseCode::APPROVED, Some(t))))
        },
    )
    .await?;
    let code = match applied {
        Applied::Done((ResponseCode::APPROVED, Some(t))) => {
            f.txn = t;
            return Ok(resp);
        }
        Applied::Done((code, _)) => code,
        Applied::Refused(o) => refused(o),
    };
    f.txn.cancel_type = None;
    f.conclude(code).await
}

/// Reverses `original`, a decided wallet payment: what it still holds (its amount less earlier
/// cancels) goes back by the region's policy, which completes its exact split; the reversal row is
/// recorded in the same transaction. A cancel is final: its restore went by policy into grants that
/// may since have been spent or have lapsed, so its reversal is `12` (pay again to undo it).
/// Returns the code to answer.
pub async fn reverse(f: &mut InFlight<'_>, original: &TxnRow) -> crate::Result<ResponseCode> {
    if original.kind == TxnKind::Cancel {
        return Ok(ResponseCode::INVALID_TRANSACTION);
    }
    let reversed = original.status == TxnStatus::Approved && reverse_payment(f, original).await?;
    if !reversed {
        f.p.store.update_transaction(&f.txn).await?;
    }
    tracing::info!(original = %original.id, reversed, "reversal");
    Ok(ResponseCode::APPROVED)
}

/// Reverses an approved wallet payment; false (nothing written) when it was no longer approved.
async fn reverse_payment(f: &mut InFlight<'_>, original: &TxnRow) -> crate::Result<bool> {
    let p = f.p;
    let instrument_id = original.instrument_id.clone().unwrap_or_default();
    let merchant = original.merchant_id.clone().unwrap_or_default();
    let reversal: &TxnRow = &f.txn;
    let applied = wallet::apply(
        &p.wallets,
        &p.store,
        &p.config,
        || p.clock.now_ms(),
        &instrument_id,
        Some(&original.id),
        |l, at| {
            let mut payment = l.payment.clone().ok_or_else(|| corrupt("a local payment's record is missing"))?;
            // What the payment still holds: all it took, less what earlier cancels returned.
            let left = payment
                .principal
                .checked_add(payment.bonus)
                .and_then(|paid| paid.checked_sub(payment.cancelled_principal))
                .and_then(|left| left.checked_sub(payment.cancelled_bonus))
                .map_err(corrupt)?;
            let mut t = reversal.clone();
            let mut plan = Plan { reverse: Some(original.id.clone()), ..Plan::default() };
            if left.is_positive() {
                let done = l.wallet.cancel(&mut payment, left, at, &l.policy).map_err(corrupt)?;
                plan.entries.push(restore_plan(l, &mut t, &merchant, &done, true)?);
                plan.transaction_id = Some(t.id.clone());
                plan.payment_update = Some(l.payment_row(&original.id, &payment)?);
            }
            plan.txn = Some(t.clone());
            Ok(Step::Write(Box::new(plan), t))
        },
    )
    .await?;
    match applied {
        Applied::Done(t) => {
            f.txn = t;
            Ok(true)
        }
        Applied::Refused(WalletOutcome::NotApproved) => Ok(false),
        Applied::Refused(o) => Err(corrupt(format!("a reversal was refused: {o:?}"))),
    }
}
