//! `/v1/instruments`: register, list, show, suspend, resume, delete (scope `instruments`).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, parse_json};
use crate::clock::rfc3339;
use crate::requestors::Scope;
use crate::store::InstrumentRow;
use crate::vault::pan::mask;

/// The instrument as clients see it: masked, never the PAN.
pub fn view(row: &InstrumentRow) -> Value {
    let mut v = json!({
        "id": row.id,
        "type": row.kind,
        "status": row.status,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    });
    if row.kind == "card" {
        let bin = row.bin.clone().unwrap_or_default();
        let last4 = row.last4.clone().unwrap_or_default();
        let len = row.pan_len.unwrap_or(16) as usize;
        v["issuer_id"] = json!(row.issuer_id);
        v["masked_pan"] = json!(mask(&bin, &last4, len));
        v["bin"] = json!(bin);
        v["last4"] = json!(last4);
        v["expiry"] = json!(row.expiry);
        v["par"] = json!(row.par);
    }
    v
}

#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct NewGift {
    code: String,
}

#[derive(Deserialize)]
struct NewCard {
    pan: String,
    expiry: String,
}

/// `POST /v1/instruments`: 201 with a new instrument, 200 with the one already registered.
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let requestor = caller.require(Scope::Instruments)?;
    let bytes = body.to_string();
    let Kind { kind } = parse_json(bytes.as_bytes())?;
    match kind.as_str() {
        "card" => {
            let card: NewCard = parse_json(bytes.as_bytes())?;
            let (row, created) = s.vault.register_card(requestor, &card.pan, &card.expiry).await?;
            if created {
                tracing::info!(instrument = %row.id, requestor = %requestor.id, "card registered");
            }
            Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view(&row))))
        }
        "gift" => {
            let gift: NewGift = parse_json(bytes.as_bytes())?;
            let (row, created) =
                crate::vault::gift::register(&s.store, requestor, &gift.code, s.clock.now_ms()).await?;
            if created {
                tracing::info!(instrument = %row.id, requestor = %requestor.id, "gift certificate registered");
            }
            Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view(&row))))
        }
        "local" => Err(ApiError::unprocessable("type_unsupported", "local-currency wallets are not offered yet")),
        _ => Err(ApiError::unprocessable("type_invalid", "type must be card, gift or local")),
    }
}

/// `GET /v1/instruments`: the caller's instruments (deleted ones with `?include_deleted=true`).
pub async fn list(State(s): State<AppState>, caller: Caller, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let include_deleted = q.is_some_and(|q| q.split('&').any(|kv| kv == "include_deleted=true"));
    let rows = s.vault.instruments(requestor, include_deleted).await?;
    Ok(Json(json!({ "items": rows.iter().map(view).collect::<Vec<_>>() })))
}

pub async fn get_one(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    Ok(Json(view(&s.vault.instrument(requestor, &id).await?)))
}

pub async fn suspend(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.suspend(requestor, &id).await?;
    tracing::info!(instrument = %row.id, "instrument suspended");
    Ok(Json(view(&row)))
}

pub async fn resume(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.resume(requestor, &id).await?;
    tracing::info!(instrument = %row.id, "instrument resumed");
    Ok(Json(view(&row)))
}

pub async fn delete(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.delete(requestor, &id).await?;
    tracing::info!(instrument = %row.id, "instrument deleted");
    Ok(Json(view(&row)))
}

/// `GET /v1/instruments/{id}/balance`: `{"currency","principal","bonus","refundable"}` of stored
/// value (a gift certificate's balance is its principal).
pub async fn balance(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let requestor = caller.require(Scope::Instruments)?;
    let row = s.vault.instrument(requestor, &id).await?;
    match row.kind.as_str() {
        "gift" => {
            let gift = s
                .store
                .gift_by_instrument(&row.id)
                .await
                .map_err(crate::Error::from)?
                .ok_or(crate::Error::InstrumentNotFound)?;
            let (cur, principal, refundable) =
                crate::vault::gift::balance(&s.store, &s.config, &gift, s.clock.now_ms()).await?;
            Ok(Json(json!({
                "currency": cur.code,
                "principal": principal.to_string(),
                "bonus": crate::money::Amount::from_minor(0, &cur).to_string(),
                "refundable": refundable.to_string(),
                "face_value": crate::money::Amount::from_minor(gift.face_value, &cur).to_string(),
                "expires_at": crate::clock::rfc3339(gift.expires_at),
            })))
        }
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_stored_value",
            "only gift certificates and local-currency wallets have a balance",
        )),
    }
}
