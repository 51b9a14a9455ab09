//! Local-currency (지역화폐) payments, cancels and reversals over ISO 8583: the glue between the
//! message handlers and the wallet (`vault::local`), whose rules are `instruments::local`'s.
//!
//! - A payment is accepted only at a merchant (DE42) registered in the wallet's region, else `57`; it
//!   spends bonus first, then principal, `51` when both together are short. The split, the token's
//!   consumption, the ledger entry and the answer commit together.
//! - A cancel (DE3 `20xxxx`) restores by the region's policy (`reverse` or `pro_rata`); bonus whose
//!   grant has expired by then is forfeited to the region, not restored; `64` past what is left.
//! - A reversal (`0400`) of a payment restores what it still holds, so payment + reversal leave the
//!   wallet as it was (less bonus that expired meanwhile).

use std::time::Instant;

use super::purchase::{Chip, arpc_tlv, auth_code};
use super::{Payments, Reply, ResponseCode};
use crate::instruments::card::RuleError;
use crate::iso8583::{Message, Mti};
use crate::ledger::{self, EntryId, LocalRestore, Split};
use crate::money::Amount;
use crate::store::TxnStatus;
use crate::store::{TxnRow, WalletOutcome};
use crate::vault::local::{self as wallet, Applied, Loaded, Plan, Step};

fn corrupt(m: impl std::fmt::Display) -> crate::Error {
    crate::Error::Store(crate::store::StoreError::Corrupt(m.to_string()))
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
    let entry = build(EntryId::fresh(), &l.currency, wallet_id, &l.region.id, merchant, restore).map_err(corrupt)?;
    t.principal = r.principal.to_minor();
    t.bonus = r.bonus.to_minor();
    t.forfeited = r.forfeited.to_minor();
    Ok(entry)
}

/// A payment from a wallet at merchant DE42.
#[allow(clippy::too_many_arguments)]
pub(super) async fn pay(
    p: &Payments,
    req: &Message,
    txn: &mut TxnRow,
    chip: Option<&Chip>,
    token_id: &str,
    amount: i64,
    started: Instant,
) -> crate::Result<Reply> {
    let resp_mti = Mti::FINANCIAL_RESPONSE;
    let instrument_id = txn.instrument_id.clone().unwrap_or_default();
    let merchant = txn.merchant_id.clone().unwrap_or_default();
    let region = p.store.wallet_region(&instrument_id).await?;
    let at_merchant = p.store.merchant(&merchant).await?.map(|m| m.region_id);
    let code = if region.is_none() || at_merchant != region {
        ResponseCode::NOT_PERMITTED
    } else {
        txn.auth_code = Some(auth_code());
        let mut resp = p.respond(req, resp_mti, ResponseCode::APPROVED);
        resp.set_authorization_code(txn.auth_code.as_deref().unwrap_or("000000"));
        if let Some(c) = chip
            && let Some(de55) = arpc_tlv(p, txn, c, ResponseCode::APPROVED).await?
        {
            resp.set_icc_data(&de55);
        }
        p.fill(txn, &resp, TxnStatus::Approved, started);
        let approved: &TxnRow = txn;
        // DE49 (numeric) or, absent, the platform's currency; the purchase checks already refused
        // an unknown one.
        let currency = match approved.currency.as_deref() {
            Some(c) => p.config.currency(c),
            None => p.config.default_currency(),
        }
        .map(|c| c.code.clone());
        let applied = wallet::apply(
            &p.store,
            &p.config,
            || p.clock.now_ms(),
            &instrument_id,
            None,
            |l, at| {
                if currency.as_deref() != Some(l.currency.code.as_str()) {
                    return Ok(Step::Refuse(ResponseCode::NOT_PERMITTED));
                }
                let paid = match l.wallet.pay(Amount::from_minor(amount, &l.currency), at, &l.policy) {
                    Ok(paid) => paid,
                    Err(RuleError::InsufficientFunds { .. }) => {
                        return Ok(Step::Refuse(ResponseCode::INSUFFICIENT_FUNDS));
                    }
                    Err(RuleError::InvalidAmount(_)) => return Ok(Step::Refuse(ResponseCode::INVALID_AMOUNT)),
                    Err(e) => return Err(corrupt(e)),
                };
                let split = Split { principal: paid.principal, bonus: paid.bonus };
                let entry = ledger::local_payment(EntryId::fresh(), &l.currency, &instrument_id, &merchant, split)
                    .map_err(corrupt)?;
                let mut t = approved.clone();
                t.principal = paid.principal.to_minor();
                t.bonus = paid.bonus.to_minor();
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
        match applied {
            Applied::Done(ResponseCode::APPROVED) => {
                crate::metrics::get().consumed(crate::store::InstrumentKind::Local);
                return Ok(resp);
            }
            Applied::Done(code) => code,
            Applied::Refused(o) => refused(o),
        }
    };
    txn.auth_code = None;
    let resp = p.respond(req, resp_mti, code);
    p.finish(txn, &resp, TxnStatus::Declined, started).await?;
    Ok(resp)
}

/// A (partial) cancel of `original`, a payment from a wallet.
pub(super) async fn cancel(
    p: &Payments,
    req: &Message,
    txn: &mut TxnRow,
    original: &TxnRow,
    amount: i64,
    started: Instant,
) -> crate::Result<Reply> {
    let resp_mti = Mti::FINANCIAL_RESPONSE;
    let instrument_id = original.instrument_id.clone().unwrap_or_default();
    let merchant = original.merchant_id.clone().unwrap_or_default();
    txn.cancel_type = Some(super::cancel::cancel_type(p, original).await?);
    let resp = p.respond(req, resp_mti, ResponseCode::APPROVED);
    p.fill(txn, &resp, TxnStatus::Approved, started);
    let approved: &TxnRow = txn;
    let applied = wallet::apply(
        &p.store,
        &p.config,
        || p.clock.now_ms(),
        &instrument_id,
        Some(&original.id),
        |l, at| {
            let mut payment = l.payment.clone().ok_or_else(|| corrupt("a local payment's record is missing"))?;
            let done = match l.wallet.cancel(&mut payment, Amount::from_minor(amount, &l.currency), at, &l.policy) {
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
            *txn = t;
            return Ok(resp);
        }
        Applied::Done((code, _)) => code,
        Applied::Refused(o) => refused(o),
    };
    let resp = p.respond(req, resp_mti, code);
    txn.cancel_type = None;
    p.finish(txn, &resp, TxnStatus::Declined, started).await?;
    Ok(resp)
}

/// Reverses `original`, an approved payment from a wallet: what it still holds (its amount less
/// earlier cancels) goes back by the region's policy, which completes its exact split. The reversal
/// row `txn` is recorded in the same transaction. False (nothing written) when the original was no
/// longer approved.
pub(super) async fn reverse(p: &Payments, original: &TxnRow, txn: &mut TxnRow) -> crate::Result<bool> {
    let instrument_id = original.instrument_id.clone().unwrap_or_default();
    let merchant = original.merchant_id.clone().unwrap_or_default();
    let reversal: &TxnRow = txn;
    let applied = wallet::apply(
        &p.store,
        &p.config,
        || p.clock.now_ms(),
        &instrument_id,
        Some(&original.id),
        |l, at| {
            let mut payment = l.payment.clone().ok_or_else(|| corrupt("a local payment's record is missing"))?;
            let minor = |a: Amount| a.to_minor().unwrap_or(0);
            let left = minor(payment.principal) + minor(payment.bonus)
                - minor(payment.cancelled_principal)
                - minor(payment.cancelled_bonus);
            let mut t = reversal.clone();
            let mut plan = Plan { reverse: Some(original.id.clone()), ..Plan::default() };
            if left > 0 {
                let done = l
                    .wallet
                    .cancel(&mut payment, Amount::from_minor(left, &l.currency), at, &l.policy)
                    .map_err(corrupt)?;
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
            *txn = t;
            Ok(true)
        }
        Applied::Refused(WalletOutcome::NotApproved) => Ok(false),
        Applied::Refused(o) => Err(corrupt(format!("a reversal was refused: {o:?}"))),
    }
}
