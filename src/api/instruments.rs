//! `/v1/instruments`: register, list, show, suspend, resume, delete (scope `instruments`).

use crate::audit::Event;
use crate::store::InstrumentKind;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, Scoped, parse_json, scope};
use crate::clock::rfc3339;
use crate::requestors::Scope;
use crate::store::InstrumentRow;
use crate::vault::pan::mask;

/// The instrument as clients see it: masked, never the PAN.
pub fn view(issuers: &crate::issuer::Issuers, row: &InstrumentRow) -> Value {
    let mut v = json!({
        "id": row.id,
        "type": row.kind,
        "status": row.status,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    });
    if row.kind == InstrumentKind::Card {
        let bin = row.bin.clone().unwrap_or_default();
        let last4 = row.last4.clone().unwrap_or_default();
        let len = row.pan_len.unwrap_or(16) as usize;
        v["issuer_id"] = json!(row.issuer_id);
        v["masked_pan"] = json!(mask(&bin, &last4, len));
        v["bin"] = json!(bin);
        v["last4"] = json!(last4);
        v["expiry"] = json!(row.expiry);
        v["par"] = json!(row.par);
        v["assurance"] = json!(row.assurance);
        if let Some(m) = row.issuer_id.as_deref().and_then(|id| issuers.metadata(id, &bin)) {
            v["card_metadata"] = json!(m);
        }
    }
    v
}

#[derive(Deserialize)]
pub struct Kind {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Deserialize)]
pub struct NewGift {
    pub code: String,
}

#[derive(Deserialize)]
pub struct NewLocal {
    pub region: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeBody {
    pub amount: String,
}

/// The view with what needs a lookup: a wallet's region, a pending card's verification.
async fn view_of(s: &AppState, row: &InstrumentRow) -> ApiResult<Value> {
    let mut v = view(&s.issuers, row);
    if row.kind == InstrumentKind::Local {
        v["region"] = json!(s.store.wallet_region(&row.id).await.map_err(crate::Error::from)?);
    }
    if let Some(p) = s.payments.verification_of(row).await? {
        v["verification"] = json!({
            "methods": p.state.offered,
            "method": p.state.method,
            "code_expires_at": p.state.code_expires_at.map(rfc3339),
            "attempts_left": p.state.attempts_left(&p.policy),
            "codes_left": p.state.codes_left(&p.policy),
        });
    }
    Ok(v)
}

#[derive(Deserialize)]
pub struct NewCard {
    pub pan: String,
    pub expiry: String,
}

/// The audit event of a new instrument (its kind and, for a card, the masked number).
fn registered(requestor: &crate::requestors::Requestor, row: &crate::store::InstrumentRow) -> Event {
    let masked = match (&row.bin, &row.last4) {
        (Some(b), Some(l)) => Some(crate::vault::pan::mask(b, l, row.pan_len.unwrap_or(16) as usize)),
        _ => None,
    };
    Event::new(&requestor.id, "instrument.register", Some(row.id.clone()))
        .detail(serde_json::json!({ "kind": row.kind, "masked_pan": masked }))
}

/// `POST /v1/instruments`: 201 with a new instrument, 200 with the one already registered.
#[utoipa::path(
    post,
    path = "/v1/instruments",
    operation_id = "create_instrument",
    tag = "instruments",
    request_body(content = super::schemas::NewInstrument, description = r#"one of three shapes, by `type`: a card `{"type":"card","pan","expiry":"YYMM"}`, a gift certificate `{"type":"gift","code"}` or a local-currency wallet `{"type":"local","region"}`"#),
    responses(
        (status = 201, description = "a new instrument: `active`, or for a card whose issuer asked for step-up `pending_verification` with the ways to send a one-time code in `verification.methods`", body = super::schemas::Instrument),
        (status = 200, description = "already registered: the same instrument", body = super::schemas::Instrument),
        (status = 409, description = "`gift_registered`: the gift certificate is registered by another requestor; `instrument_*`: the instrument is in the wrong state"),
        (status = 422, description = "`registration_declined`: the card's issuer declined it; or an invalid field, the code names it: `type_invalid`, `pan_missing`, `pan_format`, `pan_luhn`, `pan_unknown_bin`, `expiry_format`, `expiry_past`, `code_invalid`, `region_unknown`, …")
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(body), _): Scoped<scope::Instruments, JsonBody<Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let requestor = &auth;
    let bytes = body.to_string();
    let Kind { kind } = parse_json(bytes.as_bytes())?;
    match kind.parse::<InstrumentKind>() {
        Ok(InstrumentKind::Card) => {
            let card: NewCard = parse_json(bytes.as_bytes())?;
            let (row, created) = s.payments.register_card(requestor, &card.pan, &card.expiry).await?;
            if created {
                tracing::info!(instrument = %row.id, requestor = %requestor.id, status = %row.status, "card registered");
                s.audit(registered(requestor, &row)).await?;
            }
            Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view_of(&s, &row).await?)))
        }
        Ok(InstrumentKind::Gift) => {
            let gift: NewGift = parse_json(bytes.as_bytes())?;
            let (row, created) =
                crate::stored_value::gift::register(&s.store, requestor, &gift.code, s.clock.now_ms()).await?;
            if created {
                tracing::info!(instrument = %row.id, requestor = %requestor.id, "gift certificate registered");
                s.audit(registered(requestor, &row)).await?;
            }
            Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view(&s.issuers, &row))))
        }
        Ok(InstrumentKind::Local) => {
            let local: NewLocal = parse_json(bytes.as_bytes())?;
            let (row, created) =
                crate::stored_value::wallet::open(&s.store, requestor, &local.region, s.clock.now_ms()).await?;
            if created {
                tracing::info!(instrument = %row.id, requestor = %requestor.id, region = %local.region, "wallet opened");
                s.audit(registered(requestor, &row)).await?;
            }
            Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view_of(&s, &row).await?)))
        }
        Err(_) => Err(ApiError::unprocessable("type_invalid", "type must be card, gift or local")),
    }
}

/// `GET /v1/instruments`: the caller's instruments (deleted ones with `?include_deleted=true`).
#[utoipa::path(
    get,
    path = "/v1/instruments",
    operation_id = "list_instruments",
    tag = "instruments",
    params(("include_deleted" = Option<bool>, Query, description = "also deleted instruments")),
    responses(
        (status = 200, description = "the caller's instruments, masked", body = super::schemas::InstrumentList)
    ),
    security(("api_key" = []))
)]
pub async fn list(State(s): State<AppState>, caller: Caller, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let include_deleted = q.is_some_and(|q| q.split('&').any(|kv| kv == "include_deleted=true"));
    let rows = s.vault.instruments(requestor, include_deleted).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(view_of(&s, row).await?);
    }
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(
    get,
    path = "/v1/instruments/{id}",
    operation_id = "get_instrument",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    responses(
        (status = 200, description = "the instrument", body = super::schemas::Instrument),
        (status = 404, description = "`instrument_not_found`: unknown or another requestor's")
    ),
    security(("api_key" = []))
)]
pub async fn get_one(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    Ok(Json(view_of(&s, &s.vault.instrument(requestor, &id).await?).await?))
}

#[utoipa::path(
    post,
    path = "/v1/instruments/{id}/suspend",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    responses(
        (status = 200, description = "suspended: live tokens revoked", body = super::schemas::Instrument),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "wrong state (`instrument_suspended`, `instrument_deleted`, …)")
    ),
    security(("api_key" = []))
)]
pub async fn suspend(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.suspend(requestor, &id).await?;
    tracing::info!(instrument = %row.id, "instrument suspended");
    s.audit(Event::new(&requestor.id, "instrument.suspend", Some(row.id.clone()))).await?;
    Ok(Json(view(&s.issuers, &row)))
}

#[utoipa::path(
    post,
    path = "/v1/instruments/{id}/resume",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    responses(
        (status = 200, description = "active again", body = super::schemas::Instrument),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "wrong state (`instrument_active`, `instrument_deleted`, `instrument_expired`, …)")
    ),
    security(("api_key" = []))
)]
pub async fn resume(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.resume(requestor, &id).await?;
    tracing::info!(instrument = %row.id, "instrument resumed");
    s.audit(Event::new(&requestor.id, "instrument.resume", Some(row.id.clone()))).await?;
    Ok(Json(view(&s.issuers, &row)))
}

#[utoipa::path(
    delete,
    path = "/v1/instruments/{id}",
    operation_id = "delete_instrument",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    responses(
        (status = 200, description = "deleted: live tokens revoked, sealed PAN destroyed", body = super::schemas::Instrument),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "`instrument_deleted`: already deleted")
    ),
    security(("api_key" = []))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.delete(requestor, &id).await?;
    tracing::info!(instrument = %row.id, "instrument deleted");
    s.audit(Event::new(&requestor.id, "instrument.delete", Some(row.id.clone()))).await?;
    Ok(Json(view(&s.issuers, &row)))
}

/// `GET /v1/instruments/{id}/balance`: `{"currency","principal","bonus","refundable"}` of stored
/// value (a gift certificate's balance is its principal).
#[utoipa::path(
    get,
    path = "/v1/instruments/{id}/balance",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    responses(
        (status = 200, description = "the stored value's balance", body = super::schemas::Balance),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "`not_stored_value`: a card has no balance")
    ),
    security(("api_key" = []))
)]
pub async fn balance(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.instrument(requestor, &id).await?;
    match row.kind {
        InstrumentKind::Gift => {
            let gift = s
                .store
                .gift_by_instrument(&row.id)
                .await
                .map_err(crate::Error::from)?
                .ok_or(crate::Error::InstrumentNotFound)?;
            let (cur, principal, refundable) =
                crate::stored_value::gift::balance(&s.store, &s.config, &gift, s.clock.now_ms()).await?;
            Ok(Json(json!({
                "currency": cur.code,
                "principal": principal.to_string(),
                "bonus": crate::money::Amount::zero(&cur).to_string(),
                "refundable": refundable.to_string(),
                "face_value": gift.face_value.to_string(),
                "expires_at": crate::clock::rfc3339(gift.expires_at),
            })))
        }
        InstrumentKind::Local => {
            let b = crate::stored_value::wallet::balance(&s.store, &s.config, &row.id, s.clock.now_ms()).await?;
            let grants: Vec<Value> = b
                .grants
                .iter()
                .map(|(left, expires)| json!({ "amount": left.to_string(), "expires_at": rfc3339(*expires) }))
                .collect();
            Ok(Json(json!({
                "currency": b.currency.code,
                "principal": b.principal.to_string(),
                "bonus": b.bonus.to_string(),
                "refundable": b.refundable.to_string(),
                "region": b.region,
                "bonus_grants": grants,
            })))
        }
        InstrumentKind::Card => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_stored_value",
            "only gift certificates and local-currency wallets have a balance",
        )),
    }
}

/// `POST /v1/instruments/{id}/charge` `{"amount"}`: charges a local-currency wallet; the principal is
/// the amount, the bonus the region's incentive on the part within this month's cap.
#[utoipa::path(
    post,
    path = "/v1/instruments/{id}/charge",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    request_body(content = ChargeBody, description = r#"the amount to charge, decimal text in the wallet's currency"#),
    responses(
        (status = 201, description = "charged: principal and the bonus granted", body = super::schemas::Charge),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "`not_local_currency`, or the wallet is suspended or deleted"),
        (status = 422, description = "`amount_invalid`, `amount_missing`, …")
    ),
    security(("api_key" = []))
)]
pub async fn charge(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Instruments, JsonBody<ChargeBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let requestor = &auth;
    let row = s.vault.instrument(requestor, &id).await?;
    if row.kind != InstrumentKind::Local {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_local_currency",
            "only local-currency wallets can be charged",
        ));
    }
    let clock = s.clock.clone();
    let c = crate::stored_value::wallet::charge(
        s.payments.wallets(),
        &s.store,
        &s.config,
        move || clock.now_ms(),
        &row,
        &b.amount,
    )
    .await?;
    tracing::info!(instrument = %row.id, entry = %c.entry_id, "wallet charged");
    let b = crate::stored_value::wallet::balance(&s.store, &s.config, &row.id, s.clock.now_ms()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": c.entry_id,
            "currency": c.currency.code,
            "principal": c.principal.to_string(),
            "bonus": c.bonus.to_string(),
            "bonus_expires_at": c.bonus_expires_at.map(rfc3339),
            "balance": {
                "currency": b.currency.code,
                "principal": b.principal.to_string(),
                "bonus": b.bonus.to_string(),
                "refundable": b.refundable.to_string(),
            },
        })),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCodeBody {
    /// `sms` or `app`: one of the instrument's `verification.methods`.
    pub method: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The one-time code the cardholder received: six digits.
    pub code: String,
}

/// `POST /v1/instruments/{id}/verification` `{"method"}`: has the issuer send the cardholder a
/// one-time code (docs/instruments.md "Step-up verification"). A later call sends a new code that
/// replaces the last one.
#[utoipa::path(
    post,
    path = "/v1/instruments/{id}/verification",
    operation_id = "send_verification_code",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    request_body(content = SendCodeBody, description = "how the issuer should send the code"),
    responses(
        (status = 202, description = "the issuer is sending the code", body = super::schemas::CodeSent),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "`instrument_active` (nothing to verify), `verification_codes_exhausted`, or the instrument is deleted"),
        (status = 422, description = "`method_invalid`, `method_not_offered`"),
        (status = 503, description = "`issuer_unavailable`: the issuer could not send it; try again")
    ),
    security(("api_key" = []))
)]
pub async fn send_code(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Instruments, JsonBody<SendCodeBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let sent = s.payments.send_code(&auth, &id, &b.method).await?;
    tracing::info!(instrument = %id, method = sent.method.as_str(), "verification code sent");
    s.audit(
        Event::new(&auth.id, "instrument.verification_sent", Some(id.clone())).detail(json!({ "method": sent.method })),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "method": sent.method,
            "destination": sent.destination,
            "expires_at": rfc3339(sent.expires_at),
            "attempts_left": sent.attempts_left,
            "codes_left": sent.codes_left,
        })),
    ))
}

/// `POST /v1/instruments/{id}/verify` `{"code"}`: the cardholder's one-time code. Right, the card
/// is active with the assurance of the code's method; wrong, an attempt is used, and the last wrong
/// one deletes the registration.
#[utoipa::path(
    post,
    path = "/v1/instruments/{id}/verify",
    operation_id = "verify_instrument",
    tag = "instruments",
    params(("id" = String, Path, description = "instrument id (ins_…)")),
    request_body(content = VerifyBody, description = "the one-time code"),
    responses(
        (status = 200, description = "verified: the instrument is active", body = super::schemas::Instrument),
        (status = 404, description = "`instrument_not_found`"),
        (status = 409, description = "`verification_not_started` (no code sent yet), `verification_failed` (too many wrong codes: the registration is deleted), `instrument_active`, `instrument_deleted`"),
        (status = 422, description = "`code_format`, `code_incorrect` (attempts are left; the message says how many), `code_expired` (request a new one)")
    ),
    security(("api_key" = []))
)]
pub async fn verify(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Instruments, JsonBody<VerifyBody>>,
) -> ApiResult<Json<Value>> {
    match s.payments.verify_code(&auth, &id, &b.code).await {
        Ok(row) => {
            tracing::info!(instrument = %row.id, "instrument verified");
            s.audit(
                Event::new(&auth.id, "instrument.verify", Some(row.id.clone()))
                    .detail(json!({ "assurance": row.assurance })),
            )
            .await?;
            Ok(Json(view_of(&s, &row).await?))
        }
        Err(e) => {
            if let crate::Error::Verification(r) = &e {
                tracing::info!(instrument = %id, refusal = %r, "verification refused");
                if *r == crate::instruments::verification::Refusal::Exhausted {
                    s.audit(Event::new(&auth.id, "instrument.verification_failed", Some(id.clone()))).await?;
                }
            }
            Err(e.into())
        }
    }
}

/// `GET /v1/issuer-sim/messages?instrument_id=…`: the one-time codes the in-process issuer
/// simulator "sent" the cardholder of the caller's card — the demo's and the tests' stand-in for
/// the cardholder's phone. Not served in production, nor for an issuer that is not the simulator.
#[utoipa::path(
    get,
    path = "/v1/issuer-sim/messages",
    operation_id = "simulated_issuer_messages",
    tag = "simulator",
    params(("instrument_id" = String, Query, description = "the caller's card instrument (ins_…)")),
    responses(
        (status = 200, description = "the messages, oldest first", body = super::schemas::SimMessages),
        (status = 404, description = "`not_found` in production or for an issuer that is not the in-process simulator; `instrument_not_found`"),
        (status = 409, description = "`instrument_deleted`: a deleted card's number is gone, and with it its messages"),
        (status = 422, description = "`instrument_id_missing`")
    ),
    security(("api_key" = []))
)]
pub async fn simulated_messages(
    State(s): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    if s.production {
        return Err(ApiError::not_found());
    }
    let q = q.unwrap_or_default();
    let id = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("instrument_id="))
        .ok_or_else(|| ApiError::unprocessable("instrument_id_missing", "instrument_id is required"))?;
    let row = s.vault.instrument(requestor, id).await?;
    let simulated = row
        .issuer_id
        .as_deref()
        .and_then(|id| s.config.issuers.iter().find(|i| i.id == id))
        .is_some_and(|i| i.host == "sim");
    if !simulated {
        return Err(ApiError::not_found());
    }
    let pan = s.vault.reveal_pan(&row).await?;
    let items: Vec<Value> = s
        .simulator
        .codes_sent(pan.expose())
        .into_iter()
        .map(|m| {
            json!({
                "method": m.method,
                "destination": m.destination,
                "text": m.text,
                "sent_at": rfc3339(m.at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
