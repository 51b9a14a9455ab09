//! Reversal advices owed to issuers. A `0420` is owed when a card payment is reversed and when an
//! issuer did not answer in time (so that a late approval is undone). A background task sends each
//! until the issuer answers `0430`, backing off between attempts. The message is rebuilt from the
//! stored transaction and the vault at send time: no PAN is stored with the advice.

use std::sync::Arc;
use std::time::Duration;

use super::Payments;
use super::issuer::financial_request;
use super::request::rebuilt;
use crate::iso8583::{Message, Mti, OriginalData};
use crate::store::{AdviceRow, TxnRow};

/// The advice owed for `original`, due now.
pub fn owed(original: &TxnRow, now: i64) -> AdviceRow {
    AdviceRow {
        id: format!("adv_{}", uuid::Uuid::now_v7().simple()),
        transaction_id: original.id.clone(),
        issuer_id: original.issuer_id.clone().unwrap_or_default(),
        attempts: 0,
        next_at: now,
    }
}

/// The wait before attempt `n + 1`: 1 s, 2 s, 4 s, … at most 60 s.
fn backoff(attempts: i64) -> i64 {
    1000 * (1i64 << attempts.clamp(0, 6)).min(60)
}

/// Sends due advices every 250 ms until `stop` resolves.
pub async fn run(p: Arc<Payments>, stop: tokio::sync::watch::Receiver<bool>) {
    super::every(Duration::from_millis(250), "sending reversal advices", stop, || send_due(&p)).await
}

/// One pass over the advices that are due.
pub async fn send_due(p: &Payments) -> crate::Result<usize> {
    let now = p.clock.now_ms();
    let mut sent = 0;
    // Claimed for a minute: long enough to send eight at the issuer timeout, short enough that a dead
    // node's claims pass on.
    for a in p.store.claim_due_advices(now, now + 60_000, 8).await? {
        let Some(host) = p.hosts.get(&a.issuer_id).cloned() else {
            p.store.advice_retry(&a.id, now + backoff(a.attempts)).await?;
            continue;
        };
        let Some(msg) = build(p, &a).await? else {
            // Nothing to send any more (the card's PAN is gone with its instrument).
            tracing::warn!(advice = %a.id, "reversal advice cannot be rebuilt; dropped");
            p.store.advice_done(&a.id, now).await?;
            continue;
        };
        match host.send(msg).await {
            Ok(ans) if ans.mti() == Mti::REVERSAL_ADVICE_RESPONSE => {
                p.store.advice_done(&a.id, p.clock.now_ms()).await?;
                sent += 1;
            }
            _ => p.store.advice_retry(&a.id, p.clock.now_ms() + backoff(a.attempts)).await?,
        }
    }
    Ok(sent)
}

/// The `0420` for an advice: the original request as sent to the issuer, rebuilt from its stored
/// row (which a payment cut off by a crash has too: no stored answer is needed), DE90 naming it.
async fn build(p: &Payments, a: &AdviceRow) -> crate::Result<Option<Message>> {
    let Some(t) = p.store.transaction(&a.transaction_id).await? else { return Ok(None) };
    let Some(instrument) = p.store.instrument(t.instrument_id.as_deref().unwrap_or("")).await? else { return Ok(None) };
    let Ok(pan) = p.vault.reveal_pan(&instrument).await else { return Ok(None) };
    let mut msg = financial_request(&rebuilt(&t), pan.expose(), instrument.expiry.as_deref(), instrument.assurance);
    drop(pan);
    msg.set_mti(Mti::REVERSAL_ADVICE);
    let acquirer = t.acquirer_id.trim_start_matches('0');
    let Ok(de90) = OriginalData::new(Mti::FINANCIAL_REQUEST, &t.stan, &t.transmitted, acquirer) else {
        return Ok(None);
    };
    let _ = msg.set_original_data(&de90);
    let _ = msg.set_processing_code(t.processing_code.as_deref().unwrap_or("000000"));
    Ok(Some(msg))
}
