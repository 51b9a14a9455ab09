//! `0200` purchase (DE3 `00xxxx`) paid with a one-time token in DE2.
//!
//! Order of checks: duplicate key; a reversal that came first; amount and currency; the token
//! (known, live, unexpired, its instrument active); DE14 against the token's expiry; the token's
//! domain (merchant, currency, entry mode) and amount ceiling; for chip and contactless entry
//! (DE22 `05x`/`07x`) the ARQC in DE55. Then the token is leased, detokenized, and the payment goes
//! to the card's issuer. An approval consumes the token and is stored in one database transaction
//! before the `0210` goes out; a decline releases the lease; no answer in time is `91`, and the
//! issuer is owed a `0420` so that a late approval is undone.

use std::time::Instant;

use hsm_sim::{KeyRef, Request, Response};

use super::{IssuerAnswer, MAX_FAILED_ATTEMPTS, Payments, Reply, ResponseCode};
use crate::iso8583::tlv::{self, Tag};
use crate::iso8583::{Message, Mti};
use crate::store::InstrumentKind;
use crate::store::TxnKind;
use crate::store::TxnStatus;
use crate::store::{InstrumentRow, TokenRow, TxnRow};

/// The DE55 tags the CVN 18 ARQC covers, in order (docs/iso8583.md "Chip cryptogram (CVN 18)").
const ARQC_TAGS: [u32; 11] = [0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37, 0x82, 0x9F36, 0x9F10];

/// Card status update for tag 91 (Visa): byte 2 bit 8 "issuer approves".
const CSU_APPROVED: [u8; 4] = [0x00, 0x80, 0x00, 0x00];
const CSU_DECLINED: [u8; 4] = [0x00, 0x00, 0x00, 0x00];

/// A verified ARQC, kept to compute the ARPC once the outcome is known.
pub(super) struct Chip {
    atc: Vec<u8>,
    arqc: Vec<u8>,
    psn: String,
}

pub async fn purchase(p: &Payments, req: &Message, started: Instant) -> crate::Result<Reply> {
    let resp_mti = Mti::FINANCIAL_RESPONSE;
    let Some(mut txn) = p.new_txn(req, TxnKind::Purchase, "02") else {
        return Ok(p.respond(req, resp_mti, ResponseCode::FORMAT_ERROR));
    };
    // A card number instead of a token: the terminal read a card (terminal tokenization).
    if let Some(number) = req.pan().filter(|n| super::tokenize::is_card_number(p, n))
        && let Ok(pan) = crate::vault::Pan::parse(number)
    {
        txn.masked_pan = Some(pan.masked());
        return super::tokenize::pay_with_pan(p, req, &pan, txn, started).await;
    }
    if let Err(replay) = p.claim(req, &mut txn, resp_mti).await? {
        return Ok(replay);
    }
    let mut chip: Option<Chip> = None;
    let (code, lease, owe_advice) = match authorize(p, req, &mut txn, &mut chip).await? {
        Decision::StoredValue { token_id, gift, currency, amount } => {
            return pay_gift(p, req, &mut txn, chip.as_ref(), &token_id, &gift, &currency, amount, started).await;
        }
        Decision::Local { token_id, amount } => {
            return super::local::pay(p, req, &mut txn, chip.as_ref(), &token_id, amount, started).await;
        }
        Decision::Done(code) => (code, None, false),
        Decision::TimedOut => (ResponseCode::ISSUER_UNAVAILABLE, None, true),
        Decision::Approve(lease) => (ResponseCode::APPROVED, Some(lease), false),
        Decision::ApproveMultiUse => {
            let mut resp = p.respond(req, resp_mti, ResponseCode::APPROVED);
            resp.set_authorization_code(txn.auth_code.as_deref().unwrap_or("000000"));
            p.finish(&mut txn, &resp, TxnStatus::Approved, started).await?;
            return Ok(resp);
        }
    };
    let mut resp = p.respond(req, resp_mti, code);
    if let Some(auth) = txn.auth_code.as_deref() {
        resp.set_authorization_code(auth);
    }
    if let Some(c) = &chip
        && let Some(de55) = arpc_tlv(p, &txn, c, code).await?
    {
        resp.set_icc_data(&de55);
    }
    let Some(lease) = lease else {
        // A decline gives back the token leased to this payment with the answer; when the issuer
        // may still approve late, the 0420 that undoes it is owed from now on, in the same write.
        p.decline(&mut txn, &resp, started, None, owe_advice).await?;
        return Ok(resp);
    };
    // The approval, the token's consumption and the stored answer commit together, before the
    // answer is sent.
    p.fill(&mut txn, &resp, TxnStatus::Approved, started);
    let now = p.clock.now_ms();
    if p.store.approve_with_token(&txn, &lease.token_id, &lease.txn_id, now).await? {
        crate::metrics::get().consumed(InstrumentKind::Card);
        return Ok(resp);
    }
    // The payment was decided meanwhile (reversed by its terminal, or taken for cut off and
    // resolved): the approval must not stand; whoever decided it owed the 0420 that undoes it.
    let resp = p.respond(req, resp_mti, ResponseCode::SYSTEM_ERROR);
    p.decline(&mut txn, &resp, started, None, true).await?;
    Ok(resp)
}

/// Where the checks and the issuer left a purchase.
enum Decision {
    /// Declined (or refused before the issuer) with this code; the token's lease is released.
    Done(ResponseCode),
    /// The issuer's outcome is unknown (no answer in time): `91`, and a `0420` is owed.
    TimedOut,
    /// The issuer approved; the leased token is to be consumed with the approval.
    Approve(Lease),
    /// The issuer approved a payment with a merchant token, which stays live.
    ApproveMultiUse,
    /// Every check passed for a stored-value payment: the token's consumption, the ledger entry and
    /// the answer commit together, or the balance is short (51).
    StoredValue { token_id: String, gift: crate::store::GiftRow, currency: crate::money::Currency, amount: i64 },
    /// Every check passed for a local-currency payment: the merchant's region, the wallet's balance
    /// and the token decide, in one transaction.
    Local { token_id: String, amount: i64 },
}

impl From<ResponseCode> for Decision {
    fn from(c: ResponseCode) -> Self {
        Decision::Done(c)
    }
}

async fn authorize(p: &Payments, req: &Message, txn: &mut TxnRow, chip: &mut Option<Chip>) -> crate::Result<Decision> {
    use ResponseCode as C;
    if p.store.reversal_waiting_for(&txn.key()).await?.is_some() {
        // The terminal already reversed this payment: it must not take effect now.
        return Ok(C::DO_NOT_HONOR.into());
    }
    let Some(amount) = txn.amount.filter(|a| *a > 0) else { return Ok(C::INVALID_AMOUNT.into()) };
    // DE49 absent: the platform's currency (a domestic terminal may leave it out); unknown: 12.
    let currency = match req.currency_code() {
        Some(c) => p.config.currency(c),
        None => p.config.default_currency(),
    };
    let Some(currency) = currency.cloned() else { return Ok(C::INVALID_TRANSACTION.into()) };
    let Some(number) = req.pan() else { return Ok(C::FORMAT_ERROR.into()) };
    let Some(token) = p.store.token_by_number(number).await? else { return Ok(C::UNKNOWN_CARD.into()) };
    txn.token_id = Some(token.id.clone());
    txn.instrument_id = Some(token.instrument_id.clone());
    let Some(instrument) = p.store.instrument(&token.instrument_id).await? else {
        return Ok(C::INSTRUMENT_BLOCKED.into());
    };
    txn.instrument_kind = Some(instrument.kind);
    txn.issuer_id = instrument.issuer_id.clone();
    txn.masked_pan = masked(&instrument);
    if let Some(e) = p.tokens.refusal_for(&token, Some(&instrument)) {
        return Ok(C::from_error(&e).into());
    }
    // A merchant token's terminal may send the token's month or the card's (it read the card);
    // its expiry is the TSP's to enforce either way.
    let expiry_ok = |e: &str| e == token.token_expiry || (token.multi_use && instrument.expiry.as_deref() == Some(e));
    if req.expiry().is_some_and(|e| !expiry_ok(e)) {
        return Ok(C::CARD_EXPIRED.into());
    }
    if let Some(code) = domain_check(p, req, &token, &currency.code, amount).await? {
        return Ok(code.into());
    }
    // A merchant token has no chip key: a card-on-file payment carries no cryptogram of its own.
    let entry = req.pos_entry_mode().unwrap_or("");
    if !token.multi_use && (entry.starts_with("05") || entry.starts_with("07")) {
        match verify_arqc(p, req, &token, &instrument).await? {
            Ok(c) => *chip = Some(c),
            Err(code) => {
                if code == C::CRYPTOGRAM_FAILED {
                    p.store.fail_token_attempt(&token.id, MAX_FAILED_ATTEMPTS, p.clock.now_ms()).await?;
                }
                return Ok(code.into());
            }
        }
    }
    if instrument.kind == InstrumentKind::Local {
        return Ok(Decision::Local { token_id: token.id.clone(), amount });
    }
    if instrument.kind == InstrumentKind::Gift {
        // Stored value: no issuer; the platform's ledger is the authority.
        let Some(gift) = p.store.gift_by_instrument(&instrument.id).await? else {
            return Ok(C::INSTRUMENT_BLOCKED.into());
        };
        if gift.currency != currency.code {
            return Ok(C::NOT_PERMITTED.into());
        }
        if p.clock.now_ms() >= gift.expires_at {
            return Ok(C::CARD_EXPIRED.into());
        }
        return Ok(Decision::StoredValue { token_id: token.id.clone(), gift, currency, amount });
    }
    // Before the issuer is asked, the claim records the token, instrument, kind and issuer (what
    // resolving it after a crash needs), and a one-time token is leased to this payment: a racing
    // payment with it gets 78. A merchant token is multi-use: payments with it may run side by
    // side, and none consumes it.
    let lease = (!token.multi_use).then(|| Lease { token_id: token.id.clone(), txn_id: txn.id.clone() });
    if !p.store.hold_for_issuer(txn, lease.as_ref().map(|l| l.token_id.as_str()), p.clock.now_ms()).await? {
        return Ok(C::TOKEN_USED.into());
    }
    let pan = match p.vault.reveal_pan(&instrument).await {
        Ok(pan) => pan,
        Err(e) => {
            Lease::release(lease, p).await?;
            return Err(e);
        }
    };
    let issuer_req = issuer_request(req, pan.expose(), instrument.expiry.as_deref());
    drop(pan);
    match p.ask_issuer(instrument.issuer_id.as_deref(), issuer_req, txn).await {
        IssuerAnswer::Answered(ans) => {
            let code = ans.response_code().and_then(ResponseCode::parse).unwrap_or(C::SYSTEM_ERROR);
            txn.issuer_response = Some(code.as_str().to_string());
            if code.is_approved() {
                txn.auth_code = Some(ans.authorization_code().unwrap_or("000000").to_string());
                return Ok(match lease {
                    Some(lease) => Decision::Approve(lease),
                    None => Decision::ApproveMultiUse,
                });
            }
            Ok(code.into())
        }
        IssuerAnswer::Unavailable => Ok(C::ISSUER_UNAVAILABLE.into()),
        // The issuer may have approved: the decline owes it a 0420 (recorded with the answer),
        // which undoes a late approval, so the token may pay again.
        IssuerAnswer::Unknown => Ok(Decision::TimedOut),
    }
}

/// A one-time token held by one pending payment while its issuer answers; the lease is the
/// payment's transaction id. The approval consumes it and a decline gives it back, each with the
/// outcome in one database transaction; a crash leaves it to `recovery`, which spends it.
#[must_use = "a leased token is consumed by the approval or released"]
pub(super) struct Lease {
    token_id: String,
    txn_id: String,
}

impl Lease {
    /// Gives the token back without an outcome (the payment failed before its issuer was asked).
    async fn release(lease: Option<Lease>, p: &Payments) -> crate::Result<()> {
        if let Some(l) = lease {
            p.store.release_token(&l.token_id, &l.txn_id).await?;
        }
        Ok(())
    }
}

fn masked(i: &InstrumentRow) -> Option<String> {
    let (bin, last4) = (i.bin.as_deref()?, i.last4.as_deref()?);
    Some(crate::vault::pan::mask(bin, last4, i.pan_len.unwrap_or(16) as usize))
}

/// The token's domain controls; a violation counts as a failed attempt.
async fn domain_check(
    p: &Payments,
    req: &Message,
    t: &TokenRow,
    currency: &str,
    amount: i64,
) -> crate::Result<Option<ResponseCode>> {
    let merchant = req.merchant_id().map(str::trim_end).unwrap_or("");
    let entry = req.pos_entry_mode().and_then(|e| e.get(..2)).unwrap_or("");
    let wrong_domain = t.merchant_id.as_deref().is_some_and(|m| m != merchant)
        || t.currency.as_deref().is_some_and(|c| c != currency)
        || t.entry_modes.as_deref().is_some_and(|modes| !modes.split(',').any(|m| m == entry));
    if wrong_domain {
        // Another merchant trying a merchant token must not be able to lock it for its own.
        if !t.multi_use {
            p.store.fail_token_attempt(&t.id, MAX_FAILED_ATTEMPTS, p.clock.now_ms()).await?;
        }
        return Ok(Some(ResponseCode::NOT_PERMITTED));
    }
    if t.max_amount.is_some_and(|m| amount > m) {
        return Ok(Some(ResponseCode::EXCEEDS_LIMIT));
    }
    Ok(None)
}

/// Verifies the ARQC in DE55 (the CVN 18 layout of docs/iso8583.md "Chip cryptogram (CVN 18)") in the HSM.
async fn verify_arqc(
    p: &Payments,
    req: &Message,
    t: &TokenRow,
    i: &InstrumentRow,
) -> crate::Result<Result<Chip, ResponseCode>> {
    let Some(de55) = req.icc_data() else { return Ok(Err(ResponseCode::FORMAT_ERROR)) };
    let mut data = Vec::with_capacity(64);
    for tag in ARQC_TAGS {
        match tlv::find(&de55, Tag(tag)) {
            Ok(Some(v)) => data.extend_from_slice(v),
            _ => return Ok(Err(ResponseCode::FORMAT_ERROR)),
        }
    }
    let (Ok(Some(arqc)), Ok(Some(atc))) = (tlv::find(&de55, Tag::APPLICATION_CRYPTOGRAM), tlv::find(&de55, Tag::ATC))
    else {
        return Ok(Err(ResponseCode::FORMAT_ERROR));
    };
    // DE23 carries the PSN as 3 digits; tokens are issued with PSN 00.
    let psn = req.card_sequence_number().map_or("00".to_string(), |s| s[s.len().saturating_sub(2)..].to_string());
    let imk = KeyRef::stored(imk_label(i));
    let verify = Request::EmvVerifyArqc {
        imk,
        pan: t.token.clone(),
        psn: psn.clone(),
        atc: atc.to_vec().into(),
        data: data.into(),
        arqc: arqc.to_vec().into(),
    };
    match p.hsm.call(verify).await {
        Ok(Response::Valid { valid: true }) => Ok(Ok(Chip { atc: atc.to_vec(), arqc: arqc.to_vec(), psn })),
        Ok(_) => Ok(Err(ResponseCode::CRYPTOGRAM_FAILED)),
        Err(e) if e.kind == hsm_sim::ErrorKind::Format => Ok(Err(ResponseCode::FORMAT_ERROR)),
        Err(e) => Err(e.into()),
    }
}

fn imk_label(i: &InstrumentRow) -> String {
    match i.issuer_id.as_deref() {
        Some(id) if i.kind == InstrumentKind::Card => crate::issuer::imk_label(id),
        _ => crate::issuer::PLATFORM_IMK_LABEL.to_string(),
    }
}

/// DE55 of the answer: tag 91 = ARPC (method 2) ‖ CSU.
pub(super) async fn arpc_tlv(
    p: &Payments,
    txn: &TxnRow,
    c: &Chip,
    code: ResponseCode,
) -> crate::Result<Option<Vec<u8>>> {
    let Some(number) = p.store.token(txn.token_id.as_deref().unwrap_or("")).await?.map(|t| t.token) else {
        return Ok(None);
    };
    let Some(instrument) = p.store.instrument(txn.instrument_id.as_deref().unwrap_or("")).await? else {
        return Ok(None);
    };
    let csu = if code.is_approved() { CSU_APPROVED } else { CSU_DECLINED };
    let req = Request::EmvCvn18Arpc {
        imk: KeyRef::stored(imk_label(&instrument)),
        pan: number,
        psn: c.psn.clone(),
        atc: c.atc.clone().into(),
        arqc: c.arqc.clone().into(),
        csu: csu.to_vec().into(),
        pad: Vec::new().into(),
    };
    let Response::Cryptogram { value } = p.hsm.call(req).await? else { return Ok(None) };
    let mut iad = value.0;
    iad.extend_from_slice(&csu);
    let mut out = Vec::with_capacity(16);
    if tlv::write(&mut out, Tag::ISSUER_AUTHENTICATION_DATA, &iad).is_err() {
        return Ok(None);
    }
    Ok(Some(out))
}

/// The request to the issuer: the terminal's request with the real PAN and the card's expiry.
pub(crate) fn issuer_request(req: &Message, pan: &str, expiry: Option<&str>) -> Message {
    let mut out = Message::new(Mti::FINANCIAL_REQUEST);
    for de in [3u8, 4, 7, 11, 12, 13, 22, 25, 32, 37, 41, 42, 49] {
        if let Some(v) = req.get(de) {
            let _ = out.set(de, v);
        }
    }
    let _ = out.set_pan(pan);
    if let Some(e) = expiry {
        let _ = out.set_expiry(e);
    }
    out
}

/// A gift certificate payment: approved when the ledger has the balance, `51` when it has not.
#[allow(clippy::too_many_arguments)]
async fn pay_gift(
    p: &Payments,
    req: &Message,
    txn: &mut TxnRow,
    chip: Option<&Chip>,
    token_id: &str,
    gift: &crate::store::GiftRow,
    currency: &crate::money::Currency,
    amount: i64,
    started: Instant,
) -> crate::Result<Reply> {
    use crate::store::Movement;
    let resp_mti = Mti::FINANCIAL_RESPONSE;
    let merchant = txn.merchant_id.clone().unwrap_or_default();
    let entry = crate::ledger::gift_payment(
        crate::ledger::EntryId::fresh(),
        currency,
        &gift.id,
        &merchant,
        crate::money::Amount::from_minor(amount, currency),
    );
    let Ok(entry) = entry else {
        // A merchant id the ledger cannot name an account after.
        let resp = p.respond(req, resp_mti, ResponseCode::FORMAT_ERROR);
        p.finish(txn, &resp, TxnStatus::Declined, started).await?;
        return Ok(resp);
    };
    txn.auth_code = Some(auth_code());
    let mut resp = p.respond(req, resp_mti, ResponseCode::APPROVED);
    resp.set_authorization_code(txn.auth_code.as_deref().unwrap_or("000000"));
    if let Some(c) = chip
        && let Some(de55) = arpc_tlv(p, txn, c, ResponseCode::APPROVED).await?
    {
        resp.set_icc_data(&de55);
    }
    p.fill(txn, &resp, TxnStatus::Approved, started);
    txn.principal = Some(amount);
    let declined = match p.store.pay_stored_value(txn, token_id, &entry, p.clock.now_ms()).await? {
        Movement::Done => {
            crate::metrics::get().consumed(InstrumentKind::Gift);
            return Ok(resp);
        }
        Movement::Insufficient => ResponseCode::INSUFFICIENT_FUNDS,
        Movement::TokenGone | Movement::ExceedsCancellable => ResponseCode::TOKEN_USED,
        Movement::Superseded => ResponseCode::SYSTEM_ERROR,
    };
    txn.auth_code = None;
    txn.principal = None;
    let resp = p.respond(req, resp_mti, declined);
    p.finish(txn, &resp, TxnStatus::Declined, started).await?;
    Ok(resp)
}

/// A 6-digit approval code for payments the platform approves itself.
pub(super) fn auth_code() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("{:06}", u32::from_be_bytes(b) % 1_000_000)
}
