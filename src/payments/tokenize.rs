//! Terminal tokenization (docs/iso8583.md "Terminal tokenization"): a terminal or VAN hands over the PAN it read and gets a merchant
//! token back, so the merchant keeps the token for receipts, refunds and card-on-file payments.
//!
//! - `0100` with DE3 `90xxxx`: the card is verified with its issuer (an account verification, amount
//!   zero); approved, it is registered for the merchant's terminal requestor and the `0110` carries
//!   the merchant token in DE48 as `TK` + 2-digit length + token. A decline gives the issuer's code
//!   and no token (and nothing is stored of the card).
//! - `0200` with a card PAN in DE2 (`purchase.rs` sends it here): the card is registered, authorized
//!   by its issuer like any card payment, and an approval's `0210` carries the merchant token in DE48.
//!
//! A merchant token is multi-use at its merchant (DE42) and nowhere else; the same card at the same
//! merchant always gets the same one back. No answer echoes DE2 (`reply.rs`; docs/iso8583.md
//! "Terminal tokenization"), and the stored transaction keeps the masked PAN and the token, never the
//! PAN; its duplicate-detection hash is keyed (`Payments::claim`).

use std::time::Instant;

use super::issuer::{IssuerAnswer, financial_request};
use super::request::Request;
use super::{InFlight, Payments, Reply, ResponseCode};
use crate::instruments::InstrumentKind;
use crate::iso8583::{Message, Mti};
use crate::store::{InstrumentRow, TokenRow, TxnRow};
use crate::vault::{CardExpiry, Pan};

/// The requestor that holds the cards read at merchants no terminal requestor claims (migration 8).
pub const UNCLAIMED_MERCHANTS_REQUESTOR: &str = "req_terminals";

/// Where tokenizing a card for a merchant ended.
pub enum Outcome {
    /// The card's merchant token at that merchant.
    Token { token: Box<TokenRow>, instrument: Box<InstrumentRow> },
    /// Refused (by the issuer, or before it) with this code.
    Refused(ResponseCode),
}

/// True when `number` is a card number of a configured issuer (not a token: the configuration keeps
/// token ranges apart from card ranges).
pub(super) fn is_card_number(p: &Payments, number: &str) -> bool {
    p.vault.issuer_for(number).is_some() && crate::luhn::is_valid(number)
}

/// `0100` DE3 `90xxxx`.
pub(super) async fn tokenize(p: &Payments, req: &Request<'_>, started: Instant) -> crate::Result<Reply> {
    use ResponseCode as C;
    let Some(mut f) = p.open(req, started) else { return Ok(req.refuse(ResponseCode::FORMAT_ERROR)) };
    let Some(pan) = req.number.and_then(|n| Pan::parse(n).ok()) else { return Ok(f.respond(C::UNKNOWN_CARD)) };
    f.txn.masked_pan = Some(pan.masked());
    if let Err(replay) = f.claim().await? {
        return Ok(replay);
    }
    let outcome = match (req.merchant_named(), req.expiry.and_then(CardExpiry::parse)) {
        (Some(merchant), Some(expiry)) if req.is_zero_amount() => {
            p.merchant_token(&pan, &expiry, merchant, Some(req.msg), &mut f.txn).await?
        }
        (Some(_), Some(_)) => Outcome::Refused(C::INVALID_AMOUNT),
        _ => Outcome::Refused(C::FORMAT_ERROR),
    };
    let code = match outcome {
        Outcome::Token { token, .. } => {
            let mut resp = f.reply(C::APPROVED).await?;
            resp.set_merchant_token(&token.token);
            f.finish(&resp, crate::store::TxnStatus::Approved).await?;
            return Ok(resp);
        }
        Outcome::Refused(code) => code,
    };
    // Refused after the issuer approved the verification (the card is barred here): no approval code.
    f.txn.auth_code = None;
    f.conclude(code).await
}

/// A `0200` purchase whose DE2 is a card number: authorized by the card's issuer with that number,
/// and, approved, answered with the card's merchant token in DE48. `f` is not yet claimed.
pub(super) async fn pay_with_pan(mut f: InFlight<'_>, pan: &Pan) -> crate::Result<Reply> {
    use ResponseCode as C;
    if let Err(replay) = f.claim().await? {
        return Ok(replay);
    }
    let (code, timed_out, token) = match pay_decision(&mut f, pan).await? {
        Paid::Done(code) => (code, false, None),
        Paid::TimedOut => (C::ISSUER_UNAVAILABLE, true, None),
        Paid::Approved(token) => (C::APPROVED, false, token),
    };
    if timed_out {
        // The issuer may still approve late: the 0420 that undoes it is owed from now on.
        return f.decline(code, None, true).await;
    }
    let mut resp = f.reply(code).await?;
    if let Some(t) = &token {
        resp.set_merchant_token(&t.token);
    }
    let status = if code.is_approved() { crate::store::TxnStatus::Approved } else { crate::store::TxnStatus::Declined };
    f.finish(&resp, status).await?;
    Ok(resp)
}

enum Paid {
    Done(ResponseCode),
    TimedOut,
    /// Approved; the merchant token, unless the card's instrument is suspended at this merchant's
    /// requestor (the issuer's approval stands, the merchant just gets no token).
    Approved(Option<Box<TokenRow>>),
}

async fn pay_decision(f: &mut InFlight<'_>, pan: &Pan) -> crate::Result<Paid> {
    use ResponseCode as C;
    let (p, req) = (f.p, f.req);
    if p.store.reversal_waiting_for(&f.txn.key()).await?.is_some() {
        return Ok(Paid::Done(C::DO_NOT_HONOR));
    }
    if req.amount.filter(|a| a.is_positive()).is_none() {
        return Ok(Paid::Done(C::INVALID_AMOUNT));
    }
    if p.config.currency_of_de49(req.currency).is_none() {
        return Ok(Paid::Done(C::INVALID_TRANSACTION));
    }
    let (Some(merchant), Some(expiry)) = (req.merchant_named(), req.expiry.and_then(CardExpiry::parse)) else {
        return Ok(Paid::Done(C::FORMAT_ERROR));
    };
    // Registered first, so that a refund or a reversal advice can reach the issuer with the card.
    let instrument = match register(p, pan, &expiry, merchant).await? {
        Ok(i) => i,
        Err(code) => return Ok(Paid::Done(code)),
    };
    let txn = &mut f.txn;
    txn.instrument_id = Some(instrument.id.clone());
    txn.instrument_kind = Some(InstrumentKind::Card);
    txn.issuer_id = instrument.issuer_id.clone();
    // What resolving this payment after a crash needs is recorded before the issuer is asked.
    if !p.store.hold_for_issuer(txn).await? {
        return Ok(Paid::Done(C::SYSTEM_ERROR));
    }
    let issuer_req = financial_request(req.msg, pan.expose(), Some(&expiry.yymm()), instrument.assurance);
    let auth_code = match p.ask_issuer(instrument.issuer_id.as_deref(), issuer_req, txn).await {
        IssuerAnswer::Answered { code, auth_code } if code.is_approved() => auth_code,
        IssuerAnswer::Answered { code, .. } => return Ok(Paid::Done(code)),
        IssuerAnswer::Unavailable => return Ok(Paid::Done(C::ISSUER_UNAVAILABLE)),
        IssuerAnswer::Unknown => return Ok(Paid::TimedOut),
    };
    txn.auth_code = Some(auth_code.unwrap_or_else(|| "000000".into()));
    match p.tokens.merchant_token(&instrument, merchant).await {
        Ok(t) => {
            txn.token_id = Some(t.id.clone());
            Ok(Paid::Approved(Some(Box::new(t))))
        }
        Err(crate::Error::InstrumentSuspended | crate::Error::InstrumentDeleted | crate::Error::TokenSuspended) => {
            Ok(Paid::Approved(None))
        }
        Err(e) => Err(e),
    }
}

/// The card as an instrument of the merchant's terminal requestor (registered now if it is new).
/// A card the requestor suspended is `62`.
async fn register(
    p: &Payments,
    pan: &Pan,
    expiry: &CardExpiry,
    merchant: &str,
) -> crate::Result<Result<InstrumentRow, ResponseCode>> {
    use ResponseCode as C;
    if expiry.is_past(p.clock.now_ms()) {
        return Ok(Err(C::CARD_EXPIRED));
    }
    let owner = p.store.merchant_owner(merchant).await?;
    let owner = owner.as_deref().unwrap_or(UNCLAIMED_MERCHANTS_REQUESTOR);
    let instrument = match p.vault.register_card_as(owner, pan.expose(), &expiry.yymm()).await {
        Ok((i, _)) => i,
        Err(crate::Error::Invalid { .. }) => return Ok(Err(C::UNKNOWN_CARD)),
        Err(e) => return Err(e),
    };
    if instrument.status.refusal().is_some() {
        return Ok(Err(C::INSTRUMENT_BLOCKED));
    }
    Ok(Ok(instrument))
}

impl Payments {
    /// Verifies the card with its issuer (an account verification, amount zero), registers it for
    /// the merchant's terminal requestor and gives its merchant token at `merchant`. `req` is the
    /// terminal's `0100` (None over REST: the verification's own fields are made up). Fills `txn`'s
    /// card, issuer and token fields.
    pub async fn merchant_token(
        &self,
        pan: &Pan,
        expiry: &CardExpiry,
        merchant: &str,
        req: Option<&Message>,
        txn: &mut TxnRow,
    ) -> crate::Result<Outcome> {
        use ResponseCode as C;
        if expiry.is_past(self.clock.now_ms()) {
            return Ok(Outcome::Refused(C::CARD_EXPIRED));
        }
        let Some(issuer) = self.vault.issuer_for(pan.expose()) else { return Ok(Outcome::Refused(C::UNKNOWN_CARD)) };
        txn.issuer_id = Some(issuer.id.clone());
        let verification = verification_request(req, pan, expiry, merchant, self.clock.now_ms());
        // A verification moves no money: an unanswered one is simply not a token.
        let IssuerAnswer::Answered { code, auth_code } = self.ask_issuer(Some(&issuer.id), verification, txn).await
        else {
            return Ok(Outcome::Refused(C::ISSUER_UNAVAILABLE));
        };
        if !code.is_approved() {
            return Ok(Outcome::Refused(code));
        }
        txn.auth_code = auth_code;
        let instrument = match register(self, pan, expiry, merchant).await? {
            Ok(i) => i,
            Err(code) => return Ok(Outcome::Refused(code)),
        };
        txn.instrument_id = Some(instrument.id.clone());
        txn.instrument_kind = Some(InstrumentKind::Card);
        let token = match self.tokens.merchant_token(&instrument, merchant).await {
            Ok(t) => t,
            Err(crate::Error::InstrumentSuspended | crate::Error::InstrumentDeleted | crate::Error::TokenSuspended) => {
                return Ok(Outcome::Refused(C::INSTRUMENT_BLOCKED));
            }
            Err(e) => return Err(e),
        };
        txn.token_id = Some(token.id.clone());
        Ok(Outcome::Token { token: Box::new(token), instrument: Box::new(instrument) })
    }
}

/// The account verification sent to the issuer: `0100`, DE3 `000000`, DE4 zero, the card's number
/// and expiry, and the terminal's identifying fields (made up over REST).
fn verification_request(req: Option<&Message>, pan: &Pan, expiry: &CardExpiry, merchant: &str, now: i64) -> Message {
    let mut out = Message::new(Mti::AUTHORIZATION_REQUEST);
    match req {
        Some(r) => {
            for de in [7u8, 11, 12, 13, 22, 25, 32, 37, 41, 42, 49] {
                if let Some(v) = r.get(de) {
                    let _ = out.set(de, v);
                }
            }
        }
        None => {
            let secs = now / 1000;
            let _ = out.set_transmission_date_time(&crate::clock::de7(now));
            let _ = out.set_stan(&format!("{:06}", secs.rem_euclid(1_000_000)));
            let _ = out.set_terminal_id("TSPREST0");
            let _ = out.set_merchant_id(&format!("{merchant:<15}"));
            let _ = out.set_acquirer_id("0");
        }
    }
    let _ = out.set_processing_code("000000");
    let _ = out.set_amount(0);
    let _ = out.set_pan(pan.expose());
    let _ = out.set_expiry(&expiry.yymm());
    out
}
