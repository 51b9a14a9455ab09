//! Transactions cut off by a crash: claimed (pending), but their node died before it wrote the
//! outcome. A live transaction is decided within its issuer timeout, so a pending one older than
//! [`Payments::stale_after`] is cut off. Each node resolves them at start and every second; a
//! repeat of one resolves it at once.
//!
//! What the claim recorded decides (the kind, the issuer and the token are written before any
//! issuer is asked):
//! - A card payment or card cancel that may have reached its issuer has an unknown outcome: it is
//!   declined `91` and owes the issuer a `0420`; a payment's one-time token is spent (its first
//!   attempt may have been approved, so it must not pay a second time); a cancel's reservation on
//!   its payment is given back.
//! - Anything else moved nothing (a stored-value movement commits with its outcome; a verification
//!   moves no money): declined `96`.
//! - A reversal is not resolved here: nothing of it took effect, and its repeat carries it out
//!   (see `Payments::claim`).

use std::sync::Arc;
use std::time::Duration;

use super::request::rebuilt;
use super::{Payments, Reply, ResponseCode, advice};
use crate::iso8583::Mti;
use crate::store::{LeaseEnd, TxnKind, TxnRow, TxnStatus};

/// Resolves cut-off transactions until `stop` resolves: at once, then every second.
pub async fn run(p: Arc<Payments>, stop: tokio::sync::watch::Receiver<bool>) {
    super::every(Duration::from_secs(1), "resolving transactions cut off by a crash", stop, || sweep(&p)).await
}

/// One pass: resolves up to 100 cut-off transactions; returns how many this node resolved.
pub async fn sweep(p: &Payments) -> crate::Result<usize> {
    let before = p.clock.now_ms() - p.stale_after().as_millis() as i64;
    let mut resolved = 0;
    for row in p.store.cut_off(before, 100).await? {
        if resolve(p, &row).await?.is_some() {
            resolved += 1;
        }
    }
    Ok(resolved)
}

/// Resolves one cut-off transaction and returns its answer; None when another node or request
/// resolved it first.
pub(super) async fn resolve(p: &Payments, row: &TxnRow) -> crate::Result<Option<Reply>> {
    let money = matches!(row.kind, TxnKind::Purchase | TxnKind::Cancel);
    let at_issuer = money && row.instrument_kind.is_some_and(|k| k.authorized_by_issuer()) && row.issuer_id.is_some();
    let code = if at_issuer { ResponseCode::ISSUER_UNAVAILABLE } else { ResponseCode::SYSTEM_ERROR };
    let Some(resp_mti) = Mti::from_bytes(row.mti.as_bytes()).ok().and_then(|m| m.response()) else {
        return Ok(None);
    };
    let reply = Reply::to(&rebuilt(row), resp_mti, code);
    let now = p.clock.now_ms();
    let mut t = row.clone();
    t.status = TxnStatus::Declined;
    t.response_code = Some(code.as_str().into());
    t.response = reply.encode().ok();
    t.updated_at = now;
    let owed = at_issuer.then(|| advice::owed(row, now));
    let release = match (at_issuer && row.kind == TxnKind::Cancel, row.original_id.as_deref(), row.amount) {
        (true, Some(paid), Some(amount)) => Some((paid, amount)),
        _ => None,
    };
    let done = p.store.finish_declined(&t, LeaseEnd::Spend, release, owed.as_ref(), now).await?;
    if done {
        tracing::warn!(transaction = %row.id, kind = %row.kind, code = code.as_str(), "resolved a transaction cut off by a crash");
    }
    Ok(done.then_some(reply))
}
