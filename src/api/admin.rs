//! `/v1/admin/*`: the operator's API (scope `admin`).

use crate::audit::Event;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, OptionalJsonBody, Scoped, scope};
use crate::requestors::{self, Scope};

/// `GET /v1/admin/issuers`: the configured issuers with their BIN and token BIN prefixes.
#[utoipa::path(
    get,
    path = "/v1/admin/issuers",
    tag = "admin",
    responses(
        (status = 200, description = "issuers with their BIN and token BIN prefixes", body = super::schemas::IssuerList)
    ),
    security(("api_key" = []))
)]
pub async fn issuers(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let items: Vec<Value> = s
        .issuers
        .all()
        .iter()
        .map(|i| json!({ "id": i.id, "name": i.name, "bin_prefixes": i.bin_prefixes, "token_bin_prefixes": i.token_bin_prefixes }))
        .collect();
    Ok(Json(json!({ "items": items, "platform_token_bin_prefixes": s.config.platform.token_bin_prefixes })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewRequestorBody {
    pub name: String,
    pub scopes: Vec<String>,
    /// The merchants (DE42) a `terminal` requestor acts for: required with that scope.
    #[serde(default)]
    pub merchant_ids: Vec<String>,
    /// The requestors whose tokens a `detokenize` requestor (a VAN) may detokenize: only with that
    /// scope; a VAN that serves nobody detokenizes nothing.
    #[serde(default)]
    pub serves: Vec<String>,
}

/// `POST /v1/admin/requestors`: a new requestor and its API key, shown this once.
#[utoipa::path(
    post,
    path = "/v1/admin/requestors",
    tag = "admin",
    request_body(content = NewRequestorBody, description = r#"`merchant_ids`: the merchants of a terminal requestor (required with that scope, only with it); `serves`: the requestors a detokenize requestor (a VAN) detokenizes for"#),
    responses(
        (status = 201, description = "the new requestor and its API key (shown this once)", body = super::schemas::NewRequestor),
        (status = 409, description = "`merchant_taken`: a merchant is bound to another requestor"),
        (status = 422, description = "invalid name, scopes, merchant ids or served requestors (`serves_invalid`)")
    ),
    security(("api_key" = []))
)]
pub async fn create_requestor(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Admin, JsonBody<NewRequestorBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = &auth;
    let scopes: Option<Vec<Scope>> = b.scopes.iter().map(|x| Scope::parse(x)).collect();
    let scopes = scopes.filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::unprocessable(
            "scopes_invalid",
            "scopes must be a non-empty list of instruments, tokens, terminal, detokenize, admin",
        )
    })?;
    let terminal = scopes.contains(&Scope::Terminal);
    if terminal == b.merchant_ids.is_empty() {
        return Err(ApiError::unprocessable(
            "merchant_ids_invalid",
            "merchant_ids lists the merchants of a terminal requestor, and only of one",
        ));
    }
    if !b.merchant_ids.iter().all(|m| requestors::valid_merchant_id(m)) {
        return Err(ApiError::unprocessable(
            "merchant_ids_invalid",
            "a merchant id is 1 to 15 printable ASCII characters without trailing spaces",
        ));
    }
    if !b.serves.is_empty() && !scopes.contains(&Scope::Detokenize) {
        return Err(ApiError::unprocessable("serves_invalid", "serves lists the requestors of a detokenize requestor"));
    }
    for id in &b.serves {
        if s.store.requestor(id).await?.is_none() {
            return Err(ApiError::unprocessable("serves_invalid", format!("no requestor {id}")));
        }
    }
    let taken_already = |taken: Vec<String>| {
        ApiError::new(
            StatusCode::CONFLICT,
            "merchant_taken",
            format!("merchants already bound to another requestor: {}", taken.join(", ")),
        )
    };
    let mut taken = Vec::new();
    for m in &b.merchant_ids {
        if s.store.merchant_owner(m).await?.is_some() {
            taken.push(m.clone());
        }
    }
    if !taken.is_empty() {
        return Err(taken_already(taken));
    }
    let created =
        requestors::create(&s.store, &s.config.platform.trid_prefix, &b.name, &scopes, s.clock.now_ms()).await?;
    let r = &created.requestor;
    // (A merchant bound by a racing request meanwhile leaves this requestor without merchants.)
    let taken = s.store.bind_merchants(&r.id, &b.merchant_ids, s.clock.now_ms()).await?;
    if !taken.is_empty() {
        return Err(taken_already(taken));
    }
    s.store.serve_requestors(&r.id, &b.serves, s.clock.now_ms()).await?;
    tracing::info!(admin = %admin.id, requestor = %r.id, "requestor created");
    s.audit(
        Event::new(&admin.id, "requestor.create", Some(r.id.clone()))
            .detail(json!({ "scopes": r.scopes, "merchant_ids": b.merchant_ids, "serves": b.serves })),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": r.id,
            "trid": r.trid,
            "name": r.name,
            "scopes": r.scopes,
            "merchant_ids": b.merchant_ids,
            "serves": b.serves,
            "api_key": created.api_key,
        })),
    ))
}

/// `POST /v1/admin/api-keys/{key_id}/revoke`: the key stops working now, on every route and node.
/// Idempotent: revoking a revoked key answers 200 again, with its first `revoked_at` and
/// `"already_revoked": true`. A rotated key still in its overlap ends now.
#[utoipa::path(
    post,
    path = "/v1/admin/api-keys/{key_id}/revoke",
    tag = "admin",
    params(("key_id" = String, Path, description = "the key id: the part between `tsp_` and the next `_` of the key")),
    responses(
        (status = 200, description = "revoked now, or already revoked (then nothing changed)", body = super::schemas::KeyRevoked),
        (status = 404, description = "`api_key_not_found`: no key has this id")
    ),
    security(("api_key" = []))
)]
pub async fn revoke_key(
    State(s): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let admin = caller.require(Scope::Admin)?;
    let r = requestors::revoke_key(&s.store, &key_id, s.clock.now_ms()).await?;
    s.api_keys.forget(&r.key_id);
    tracing::info!(admin = %admin.id, key_id = %r.key_id, requestor = %r.requestor_id, already = r.already, "API key revoked");
    let revoked_at = crate::clock::rfc3339(r.revoked_at);
    s.audit(Event::new(&admin.id, "api_key.revoke", Some(r.key_id.clone())).detail(json!({
        "requestor_id": r.requestor_id,
        "revoked_at": revoked_at,
        "already_revoked": r.already,
    })))
    .await?;
    Ok(Json(json!({
        "key_id": r.key_id,
        "requestor_id": r.requestor_id,
        "revoked_at": revoked_at,
        "already_revoked": r.already,
    })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyBody {
    /// How long the old key keeps working, in seconds (0 to 2,592,000; default 86,400).
    pub overlap_seconds: Option<i64>,
}

/// `POST /v1/admin/api-keys/{key_id}/rotate` `{"overlap_seconds"?}`: a new key for the same requestor
/// (shown this once); the old key works until the overlap ends, then gets 401.
#[utoipa::path(
    post,
    path = "/v1/admin/api-keys/{key_id}/rotate",
    tag = "admin",
    params(("key_id" = String, Path, description = "the key id: the part between `tsp_` and the next `_` of the key")),
    request_body(content = Option<RotateKeyBody>, description = r#"optional (an empty body is the defaults): how long the old key keeps working, 0 to 2592000 seconds (30 days); default 86400"#),
    responses(
        (status = 201, description = "a new key (shown this once); the old one works until the overlap ends", body = super::schemas::KeyRotated),
        (status = 404, description = "`api_key_not_found`: no key has this id"),
        (status = 409, description = "`api_key_revoked`: the key is revoked or was already rotated"),
        (status = 422, description = "`overlap_seconds_invalid`: negative, over 30 days, or not an integer")
    ),
    security(("api_key" = []))
)]
pub async fn rotate_key(
    State(s): State<AppState>,
    Path(key_id): Path<String>,
    Scoped(auth, OptionalJsonBody(b), _): Scoped<scope::Admin, OptionalJsonBody<RotateKeyBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = &auth;
    let overlap = b.unwrap_or_default().overlap_seconds.unwrap_or(requestors::DEFAULT_OVERLAP_SECONDS);
    let r = requestors::rotate_key(&s.store, &key_id, overlap, s.clock.now_ms()).await?;
    s.api_keys.forget(&r.previous_key_id);
    tracing::info!(admin = %admin.id, key_id = %r.previous_key_id, new_key_id = %r.key_id, requestor = %r.requestor_id, overlap, "API key rotated");
    let previous_revoked_at = crate::clock::rfc3339(r.previous_revoked_at);
    s.audit(Event::new(&admin.id, "api_key.rotate", Some(r.previous_key_id.clone())).detail(json!({
        "requestor_id": r.requestor_id,
        "new_key_id": r.key_id,
        "overlap_seconds": overlap,
        "previous_key_revoked_at": previous_revoked_at,
    })))
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "key_id": r.key_id,
            "api_key": r.api_key,
            "requestor_id": r.requestor_id,
            "previous_key_id": r.previous_key_id,
            "previous_key_revoked_at": previous_revoked_at,
            "overlap_seconds": overlap,
        })),
    ))
}

/// `POST /v1/admin/settlements`: closes the current business day now (the same as `tsp settle`).
/// Card cancels of payments made before this instant are refunds from now on, not voids.
#[utoipa::path(
    post,
    path = "/v1/admin/settlements",
    tag = "admin",
    responses(
        (status = 201, description = "the business day is closed", body = super::schemas::Settlement)
    ),
    security(("api_key" = []))
)]
pub async fn settle(State(s): State<AppState>, caller: Caller) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = caller.require(Scope::Admin)?;
    let (id, closed_at) = crate::payments::settle(&s.store, &s.clock).await?;
    tracing::info!(admin = %admin.id, settlement = %id, "business day closed");
    s.audit(Event::new(&admin.id, "settlement.close", Some(id.clone()))).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "closed_at": crate::clock::rfc3339(closed_at) }))))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewGiftBody {
    pub face_value: String,
    pub currency: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// `POST /v1/admin/gift-certificates`: issues a certificate; its code is shown this once.
#[utoipa::path(
    post,
    path = "/v1/admin/gift-certificates",
    tag = "admin",
    request_body(content = NewGiftBody, description = r#"face value (decimal text), currency and expiry (RFC 3339)"#),
    responses(
        (status = 201, description = "issued; its code is shown this once", body = super::schemas::IssuedGift),
        (status = 422, description = "invalid field")
    ),
    security(("api_key" = []))
)]
pub async fn issue_gift(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Admin, JsonBody<NewGiftBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = &auth;
    let expires = time::OffsetDateTime::parse(&b.expires_at, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::unprocessable("expires_at_invalid", "expires_at must be an RFC 3339 date-time"))?;
    let expires_ms = (expires.unix_timestamp_nanos() / 1_000_000) as i64;
    let g =
        crate::stored_value::gift::issue(&s.store, &s.config, &b.face_value, &b.currency, expires_ms, s.clock.now_ms())
            .await?;
    tracing::info!(admin = %admin.id, gift = %g.row.id, "gift certificate issued");
    let face = g.row.face_value.to_string();
    s.audit(
        Event::new(&admin.id, "gift.issue", Some(g.row.id.clone()))
            .detail(json!({ "face_value": face, "currency": g.currency.code })),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": g.row.id,
            "code": g.code,
            "face_value": face,
            "balance": face,
            "currency": g.currency.code,
            "expires_at": crate::clock::rfc3339(g.row.expires_at),
        })),
    ))
}

fn region_view(r: &crate::store::RegionRow, cur: Option<&crate::money::Currency>, merchants: &[Value]) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "currency": r.currency,
        "incentive_rate": r.incentive_rate,
        // Shown only in a currency the configuration knows.
        "monthly_bonus_cap": cur.map(|_| r.monthly_bonus_cap.to_string()),
        "bonus_lifetime_seconds": r.bonus_lifetime_seconds,
        "cancel_restore": r.cancel_restore,
        "merchants": merchants,
        "created_at": crate::clock::rfc3339(r.created_at),
        "updated_at": crate::clock::rfc3339(r.updated_at),
    })
}

fn merchant_view(m: &crate::store::MerchantRow) -> Value {
    json!({ "id": m.id, "name": m.name, "region": m.region_id, "created_at": crate::clock::rfc3339(m.created_at) })
}

/// `POST /v1/admin/regions`: defines a local-currency region (201), or updates its rules (200);
/// merchants listed with it are registered in it.
#[utoipa::path(
    post,
    path = "/v1/admin/regions",
    tag = "admin",
    request_body(content = crate::config::RegionSpec, description = r#"the region's rules, and merchants to register in it"#),
    responses(
        (status = 201, description = "a new region", body = super::schemas::Region),
        (status = 200, description = "rules updated", body = super::schemas::Region),
        (status = 409, description = "a merchant belongs to another region"),
        (status = 422, description = "invalid field")
    ),
    security(("api_key" = []))
)]
pub async fn define_region(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Admin, JsonBody<crate::config::RegionSpec>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = &auth;
    let (r, merchants, created) =
        crate::stored_value::wallet::define_region(&s.store, &s.config, &b, s.clock.now_ms()).await?;
    tracing::info!(admin = %admin.id, region = %r.id, created, "region defined");
    s.audit(Event::new(&admin.id, "region.define", Some(r.id.clone())).detail(json!({ "created": created }))).await?;
    let merchants: Vec<Value> = merchants.iter().map(merchant_view).collect();
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(region_view(&r, s.config.currency(&r.currency), &merchants))))
}

/// `GET /v1/admin/regions`: every region with its merchants.
#[utoipa::path(
    get,
    path = "/v1/admin/regions",
    tag = "admin",
    responses(
        (status = 200, description = "every region with its merchants", body = super::schemas::RegionList)
    ),
    security(("api_key" = []))
)]
pub async fn regions(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let regions = s.store.regions().await.map_err(crate::Error::from)?;
    let merchants = s.store.merchants(None).await.map_err(crate::Error::from)?;
    let items: Vec<Value> = regions
        .iter()
        .map(|r| {
            let mine: Vec<Value> = merchants.iter().filter(|m| m.region_id == r.id).map(merchant_view).collect();
            region_view(r, s.config.currency(&r.currency), &mine)
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMerchantBody {
    pub id: String,
    pub name: String,
    pub region: String,
}

/// `POST /v1/admin/merchants` `{"id","name","region"}`: registers a merchant (201) or moves it (200).
/// The id is what its terminals send in DE42.
#[utoipa::path(
    post,
    path = "/v1/admin/merchants",
    tag = "admin",
    request_body(content = NewMerchantBody, description = r#"a merchant: the id its terminals send in DE42, its name, its region"#),
    responses(
        (status = 201, description = "a new merchant", body = super::schemas::Merchant),
        (status = 200, description = "moved or renamed", body = super::schemas::Merchant),
        (status = 422, description = "invalid field or unknown region")
    ),
    security(("api_key" = []))
)]
pub async fn define_merchant(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Admin, JsonBody<NewMerchantBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = &auth;
    let (m, created) =
        crate::stored_value::wallet::define_merchant(&s.store, &b.id, &b.name, &b.region, s.clock.now_ms()).await?;
    tracing::info!(admin = %admin.id, merchant = %m.id, region = %m.region_id, created, "merchant defined");
    s.audit(
        Event::new(&admin.id, "merchant.define", Some(m.id.clone()))
            .detail(json!({ "region": m.region_id, "created": created })),
    )
    .await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(merchant_view(&m))))
}

/// `GET /v1/admin/merchants[?region=…]`.
#[utoipa::path(
    get,
    path = "/v1/admin/merchants",
    tag = "admin",
    params(("region" = Option<String>, Query, description = "only this region's")),
    responses(
        (status = 200, description = "merchants", body = super::schemas::MerchantList)
    ),
    security(("api_key" = []))
)]
pub async fn merchants(
    State(s): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let region = q.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("region=")));
    let rows = s.store.merchants(region).await.map_err(crate::Error::from)?;
    Ok(Json(json!({ "items": rows.iter().map(merchant_view).collect::<Vec<_>>() })))
}
