//! What pays: one module per kind of instrument, each owning that kind's pay, cancel and reverse.
//! The flows (`purchase`, `cancel`, `reversal`) make the checks every kind shares and choose the
//! module by one `match` on [`InstrumentKind`](crate::instruments::InstrumentKind).
//!
//! - `card`: the card's issuer decides; its answer, or its silence, is recorded with a `0420` owed.
//! - `gift`: a gift certificate's balance on the platform's ledger, by `instruments::gift`'s rules.
//! - `local`: a local-currency wallet, by its region's rules (`instruments::local`).
//!
//! Each loads the state its rule needs, applies the pure rule, and writes the outcome, its ledger
//! entry and the answer in one database transaction; the database's own guards (balances that
//! cannot go negative, cancels capped at the payment) stay as the second line.

pub mod card;
pub mod gift;
pub mod local;

use super::{InFlight, Payments};
use crate::instruments::card::CancelType;
use crate::money::{Amount, Currency};
use crate::store::{InstrumentRow, TokenRow, TxnKind, TxnRow, Undo};

/// A purchase every shared check has passed, handed to its instrument's module.
pub struct Paying {
    pub token: TokenRow,
    pub instrument: InstrumentRow,
    /// DE49's currency (or the platform's).
    pub currency: Currency,
    /// DE4, positive, in DE49's currency.
    pub amount: Amount,
}

/// A 6-digit approval code for payments the platform approves itself.
fn auth_code() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("{:06}", u32::from_be_bytes(b) % 1_000_000)
}

/// `void` when a cancel now falls in `original`'s business day, `refund` after its settlement (the
/// cut-off or `tsp settle`): the rule every kind of instrument follows (docs/instruments.md).
async fn cancel_type(p: &Payments, original: &TxnRow) -> crate::Result<CancelType> {
    let settlements = p.store.settlements().await?;
    let rule = p.config.business_day().map_err(|e| crate::Error::Internal(e.to_string()))?;
    Ok(rule.cancel_type(original.created_at, p.clock.now_ms(), &settlements))
}

/// The currency a stored transaction was made in: its DE49, or the platform's.
fn currency_of(p: &Payments, t: &TxnRow) -> crate::Result<Currency> {
    p.config
        .currency_of_de49(t.currency.as_deref())
        .cloned()
        .ok_or_else(|| crate::Error::Internal(format!("transaction {}: unknown currency", t.id)))
}

/// For a cancel, what it holds of the payment it cancelled (payment id, amount): a reversal of the
/// cancel gives it back, in the same database transaction.
fn reservation(original: &TxnRow) -> Option<(&str, Amount)> {
    match (original.kind, original.original_id.as_deref(), original.amount) {
        (TxnKind::Cancel, Some(paid), Some(amount)) => Some((paid, amount)),
        _ => None,
    }
}

/// Reverses `original` when what it moved needs no ledger entry to undo (a card's issuer is told by
/// the `0420` owed with `owe_advice`; a declined or unknown original moved nothing): the reversal
/// row, the original marked reversed, a reversed cancel's reservation given back and the advice
/// owed, in one transaction. Returns whether the original was reversed now.
async fn reverse_recorded(f: &mut InFlight<'_>, original: &TxnRow, owe_advice: bool) -> crate::Result<bool> {
    let now = f.p.clock.now_ms();
    let owed = owe_advice.then(|| super::advice::owed(original, now));
    let undo = Undo { advice: owed.as_ref(), spend: None, release: reservation(original) };
    Ok(f.p.store.reverse(&original.id, &f.txn, undo, now).await?)
}

/// Reverses `original` while it is still undecided: the node handling it died mid-flight. It is
/// marked reversed, so that no late outcome can take effect (outcomes are written only over a
/// pending row); stored value moved nothing (its movement commits with the outcome); a card's
/// issuer may have approved, so it is owed a `0420`, the one-time token the payment leased is
/// spent, and a card cancel's reservation on its payment is given back.
pub(super) async fn reverse_undecided(f: &mut InFlight<'_>, original: &TxnRow) -> crate::Result<bool> {
    let now = f.p.clock.now_ms();
    let at_issuer = original.instrument_kind.is_some_and(|k| k.authorized_by_issuer());
    let owed = at_issuer.then(|| super::advice::owed(original, now));
    let undo = Undo {
        advice: owed.as_ref(),
        spend: original.token_id.as_deref().map(|t| (t, original.id.as_str())),
        release: if at_issuer { reservation(original) } else { None },
    };
    Ok(f.p.store.reverse(&original.id, &f.txn, undo, now).await?)
}

/// Reverses an original no instrument was found for (declined before its token was known): there
/// is nothing to undo but the record.
pub(super) async fn reverse_unfunded(f: &mut InFlight<'_>, original: &TxnRow) -> crate::Result<bool> {
    reverse_recorded(f, original, false).await
}
