//! Terminal tokenization (SPEC §5): a terminal or VAN hands over the PAN it read and gets a merchant
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
//! merchant always gets the same one back. Neither answer echoes DE2 (README "Terminal
//! tokenization"), and the stored transaction keeps the masked PAN and the token, never the PAN: its
//! duplicate-detection hash covers the PAN only as its PAR.

use std::time::Instant;

use super::{Payments, ResponseCode, advice};
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

/// DE48 of an answer that carries a merchant token: `TK`, the token's length in two digits, the token.
pub fn de48(token: &str) -> String {
    format!("TK{:02}{token}", token.len())
}

/// True when `number` is a card number of a configured issuer (not a token: the configuration keeps
/// token ranges apart from card ranges).
pub(super) fn is_card_number(p: &Payments, number: &str) -> bool {
    p.vault.issuer_for(number).is_some() && crate::luhn::is_valid(number)
}

/// The merchant id of DE42 as stored (trailing spaces of the fixed-length field dropped).
fn merchant_of(req: &Message) -> Option<String> {
    req.merchant_id().map(|m| m.trim_end().to_string()).filter(|m| !m.is_empty())
}

/// `0100` DE3 `90xxxx`.
pub async fn tokenize(p: &Payments, req: &Message, started: Instant) -> crate::Result<Message> {
    use ResponseCode as C;
    let resp_mti = Mti::AUTHORIZATION_RESPONSE;
    let respond = |code: ResponseCode| without_pan(p.respond(req, resp_mti, code));
    let Some(mut txn) = p.new_txn(req, "verification", "01") else { return Ok(respond(C::FORMAT_ERROR)) };
    let Some(pan) = req.pan().and_then(|n| Pan::parse(n).ok()) else { return Ok(respond(C::UNKNOWN_CARD)) };
    txn.content_hash = super::content_hash(req, Some(&p.vault.par(&pan).await?));
    txn.masked_pan = Some(pan.masked());
    if let Err(replay) = p.claim(req, &txn, resp_mti, p.duplicate_wait()).await? {
        return Ok(replay);
    }
    let outcome = match (merchant_of(req), req.expiry().and_then(CardExpiry::parse)) {
        (Some(merchant), Some(expiry)) if req.amount().unwrap_or(0) == 0 => {
            p.merchant_token(&pan, &expiry, &merchant, Some(req), &mut txn).await?
        }
        (Some(_), Some(_)) => Outcome::Refused(C::INVALID_AMOUNT),
        _ => Outcome::Refused(C::FORMAT_ERROR),
    };
    let (resp, status) = match outcome {
        Outcome::Token { token, .. } => {
            let mut resp = respond(C::APPROVED);
            let _ = resp.set_additional_data(&de48(&token.token));
            if let Some(auth) = txn.auth_code.as_deref() {
                let _ = resp.set_authorization_code(auth);
            }
            (resp, "approved")
        }
        Outcome::Refused(code) => (respond(code), "declined"),
    };
    p.finish(&mut txn, &resp, status, started).await?;
    Ok(resp)
}

/// A `0200` purchase whose DE2 is a card number: authorized by the card's issuer with that number,
/// and, approved, answered with the card's merchant token in DE48. `txn` is new; the caller
/// computed its duplicate hash over the PAR.
pub(super) async fn pay_with_pan(
    p: &Payments,
    req: &Message,
    pan: &Pan,
    mut txn: TxnRow,
    started: Instant,
) -> crate::Result<Message> {
    use ResponseCode as C;
    let resp_mti = Mti::FINANCIAL_RESPONSE;
    if let Err(replay) = p.claim(req, &txn, resp_mti, p.duplicate_wait()).await? {
        return Ok(replay);
    }
    let (code, timed_out, token) = match pay_decision(p, req, pan, &mut txn).await? {
        Paid::Done(code) => (code, false, None),
        Paid::TimedOut => (C::ISSUER_UNAVAILABLE, true, None),
        Paid::Approved(token) => (C::APPROVED, false, token),
    };
    let mut resp = without_pan(p.respond(req, resp_mti, code));
    if let Some(auth) = txn.auth_code.as_deref() {
        let _ = resp.set_authorization_code(auth);
    }
    if let Some(t) = &token {
        let _ = resp.set_additional_data(&de48(&t.token));
    }
    if timed_out {
        // The issuer may still approve late: the 0420 that undoes it is owed from now on.
        p.fill(&mut txn, &resp, "declined", started);
        let now = p.clock.now_ms();
        p.store.finish_with_advice(&txn, &advice::owed(&txn, now), now).await?;
    } else {
        p.finish(&mut txn, &resp, if code.is_approved() { "approved" } else { "declined" }, started).await?;
    }
    Ok(resp)
}

enum Paid {
    Done(ResponseCode),
    TimedOut,
    /// Approved; the merchant token, unless the card's instrument is suspended at this merchant's
    /// requestor (the issuer's approval stands, the merchant just gets no token).
    Approved(Option<Box<TokenRow>>),
}

async fn pay_decision(p: &Payments, req: &Message, pan: &Pan, txn: &mut TxnRow) -> crate::Result<Paid> {
    use ResponseCode as C;
    if p.store.reversal_waiting_for(&txn.key()).await?.is_some() {
        return Ok(Paid::Done(C::DO_NOT_HONOR));
    }
    if txn.amount.filter(|a| *a > 0).is_none() {
        return Ok(Paid::Done(C::INVALID_AMOUNT));
    }
    let known_currency = match req.currency_code() {
        Some(c) => p.config.currency(c).is_some(),
        None => p.config.default_currency().is_some(),
    };
    if !known_currency {
        return Ok(Paid::Done(C::INVALID_TRANSACTION));
    }
    let (Some(merchant), Some(expiry)) = (merchant_of(req), req.expiry().and_then(CardExpiry::parse)) else {
        return Ok(Paid::Done(C::FORMAT_ERROR));
    };
    // Registered first, so that a refund or a reversal advice can reach the issuer with the card.
    let instrument = match register(p, pan, &expiry, &merchant).await? {
        Ok(i) => i,
        Err(code) => return Ok(Paid::Done(code)),
    };
    txn.instrument_id = Some(instrument.id.clone());
    txn.instrument_kind = Some("card".into());
    txn.issuer_id = instrument.issuer_id.clone();
    let Some((host, timeout)) = p.host_of(instrument.issuer_id.as_deref()) else {
        return Ok(Paid::Done(C::ISSUER_UNAVAILABLE));
    };
    let issuer_req = super::purchase::issuer_request(req, pan.expose(), Some(&expiry.yymm()));
    let asked = Instant::now();
    let answer = tokio::time::timeout(timeout, host.send(issuer_req)).await;
    txn.issuer_ms = Some(asked.elapsed().as_millis() as i64);
    let answer = match answer {
        Ok(Ok(ans)) => ans,
        Ok(Err(e)) if !e.outcome_unknown() => return Ok(Paid::Done(C::ISSUER_UNAVAILABLE)),
        _ => return Ok(Paid::TimedOut),
    };
    let code = answer.response_code().and_then(ResponseCode::parse).unwrap_or(C::SYSTEM_ERROR);
    txn.issuer_response = Some(code.as_str().to_string());
    if !code.is_approved() {
        return Ok(Paid::Done(code));
    }
    txn.auth_code = Some(answer.authorization_code().unwrap_or("000000").to_string());
    match p.tokens.merchant_token(&instrument, &merchant).await {
        Ok(t) => {
            txn.token_id = Some(t.id.clone());
            Ok(Paid::Approved(Some(Box::new(t))))
        }
        Err(crate::Error::InstrumentSuspended | crate::Error::InstrumentDeleted) => Ok(Paid::Approved(None)),
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
    if instrument.status != "active" {
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
        let Some((host, timeout)) = self.host_of(Some(&issuer.id)) else {
            return Ok(Outcome::Refused(C::ISSUER_UNAVAILABLE));
        };
        let verification = verification_request(req, pan, expiry, merchant, self.clock.now_ms());
        let asked = Instant::now();
        let answer = tokio::time::timeout(timeout, host.send(verification)).await;
        txn.issuer_ms = Some(asked.elapsed().as_millis() as i64);
        // A verification moves no money: an unanswered one is simply not a token.
        let Ok(Ok(answer)) = answer else { return Ok(Outcome::Refused(C::ISSUER_UNAVAILABLE)) };
        let code = answer.response_code().and_then(ResponseCode::parse).unwrap_or(C::SYSTEM_ERROR);
        txn.issuer_response = Some(code.as_str().to_string());
        if !code.is_approved() {
            return Ok(Outcome::Refused(code));
        }
        txn.auth_code = answer.authorization_code().map(Into::into);
        let instrument = match register(self, pan, expiry, merchant).await? {
            Ok(i) => i,
            Err(code) => return Ok(Outcome::Refused(code)),
        };
        txn.instrument_id = Some(instrument.id.clone());
        txn.instrument_kind = Some("card".into());
        let token = match self.tokens.merchant_token(&instrument, merchant).await {
            Ok(t) => t,
            Err(crate::Error::InstrumentSuspended | crate::Error::InstrumentDeleted) => {
                return Ok(Outcome::Refused(C::INSTRUMENT_BLOCKED));
            }
            Err(e) => return Err(e),
        };
        txn.token_id = Some(token.id.clone());
        Ok(Outcome::Token { token: Box::new(token), instrument: Box::new(instrument) })
    }

    /// The authorization host of an issuer and its timeout.
    fn host_of(
        &self,
        issuer_id: Option<&str>,
    ) -> Option<(std::sync::Arc<dyn crate::issuer::host::IssuerHost>, std::time::Duration)> {
        let id = issuer_id?;
        let host = self.hosts.get(id)?.clone();
        let ms = self.config.issuers.iter().find(|i| i.id == id).map_or(3000, |i| i.timeout_ms);
        Some((host, std::time::Duration::from_millis(ms + 1000)))
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

/// An answer without DE2: a terminal that sent a card number has it; echoing it only spreads it.
fn without_pan(mut m: Message) -> Message {
    m.remove(2);
    m
}
