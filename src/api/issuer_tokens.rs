//! `/v1/admin/tokens` and `/v1/admin/cards/{par}/…` (scope `admin`): the issuer's and the
//! operator's side of the token lifecycle — one token by its number, or every token of a card by
//! its Payment Account Reference (PAR), whichever requestor holds it — and the account updater: a
//! reissued card (new number, new expiry) and a lost or stolen one. The same changes as the
//! requestor's own (`tokens.rs`), recorded in the audit trail under the admin's id.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, Scoped, scope};
use super::tokens::{Action, view};
use crate::requestors::Scope;

/// At most this many tokens in a card's list (newest first).
const LIST_LIMIT: i64 = 1000;

async fn act(s: AppState, caller: Caller, number: &str, action: Action) -> ApiResult<Json<Value>> {
    let admin = caller.require(Scope::Admin)?;
    let t = s.tokens.by_number(number).await?;
    let t = action.apply(&s, &admin.id, &t).await?;
    Ok(Json(view(&s, &t)))
}

/// `GET /v1/admin/tokens/{number}`: a token by its number — the live one holding it, else the newest
/// that did.
#[utoipa::path(
    get,
    path = "/v1/admin/tokens/{number}",
    operation_id = "get_token_by_number",
    tag = "admin",
    params(("number" = String, Path, description = "the token number")),
    responses(
        (status = 200, description = "the token and its status", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`")
    ),
    security(("api_key" = []))
)]
pub async fn get_one(State(s): State<AppState>, caller: Caller, Path(number): Path<String>) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let t = s.tokens.by_number(&number).await?;
    Ok(Json(view(&s, &t)))
}

/// `POST /v1/admin/tokens/{number}/suspend`: as the requestor's suspend, by number.
#[utoipa::path(
    post,
    path = "/v1/admin/tokens/{number}/suspend",
    operation_id = "suspend_token_by_number",
    tag = "admin",
    params(("number" = String, Path, description = "the token number")),
    responses(
        (status = 200, description = "suspended", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`"),
        (status = 409, description = "not active: `token_suspended`, `token_revoked`, `token_used`, `token_expired`, `token_locked`")
    ),
    security(("api_key" = []))
)]
pub async fn suspend(State(s): State<AppState>, caller: Caller, Path(number): Path<String>) -> ApiResult<Json<Value>> {
    act(s, caller, &number, Action::Suspend).await
}

/// `POST /v1/admin/tokens/{number}/resume`: as the requestor's resume, by number.
#[utoipa::path(
    post,
    path = "/v1/admin/tokens/{number}/resume",
    operation_id = "resume_token_by_number",
    tag = "admin",
    params(("number" = String, Path, description = "the token number")),
    responses(
        (status = 200, description = "active", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`"),
        (status = 409, description = "not suspended: `token_active`, `token_revoked`, `token_used`, `token_expired`, `token_locked`")
    ),
    security(("api_key" = []))
)]
pub async fn resume(State(s): State<AppState>, caller: Caller, Path(number): Path<String>) -> ApiResult<Json<Value>> {
    act(s, caller, &number, Action::Resume).await
}

/// `DELETE /v1/admin/tokens/{number}`: as the requestor's delete, by number.
#[utoipa::path(
    delete,
    path = "/v1/admin/tokens/{number}",
    operation_id = "delete_token_by_number",
    tag = "admin",
    params(("number" = String, Path, description = "the token number")),
    responses(
        (status = 200, description = "deleted", body = super::schemas::TokenState),
        (status = 404, description = "`token_unknown`"),
        (status = 409, description = "not live: `token_revoked`, `token_used`, `token_expired`, `token_locked`")
    ),
    security(("api_key" = []))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(number): Path<String>) -> ApiResult<Json<Value>> {
    act(s, caller, &number, Action::Delete).await
}

/// A PAR no instrument has is answered 404, not an empty list.
async fn known(s: &AppState, par: &str) -> ApiResult<()> {
    if s.store.par_known(par).await? {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "card_unknown",
        "no instrument has this Payment Account Reference",
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// `true`: ended tokens too (consumed, expired, deleted, locked); by default only live ones.
    pub all: Option<bool>,
}

/// `GET /v1/admin/cards/{par}/tokens`: every token of the card with this PAR, of every requestor
/// that registered it, newest first (at most 1,000).
#[utoipa::path(
    get,
    path = "/v1/admin/cards/{par}/tokens",
    operation_id = "list_card_tokens",
    tag = "admin",
    params(("par" = String, Path, description = "the card's Payment Account Reference"), ListQuery),
    responses(
        (status = 200, description = "`{\"par\",\"items\":[…]}`", body = super::schemas::CardTokens),
        (status = 404, description = "`card_unknown`: no instrument has this PAR")
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(par): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    known(&s, &par).await?;
    let items = s.store.tokens_by_par(&par, q.all.unwrap_or(false), LIST_LIMIT).await?;
    Ok(Json(json!({ "par": par, "items": items.iter().map(|t| view(&s, t)).collect::<Vec<_>>() })))
}

/// `POST /v1/admin/cards/{par}/tokens/{action}` (`suspend`, `resume` or `delete`): the change on
/// every live token of the card that is in a state to take it (a resume skips active tokens, a
/// suspend suspended ones). Answers how many changed and the card's live tokens after.
#[utoipa::path(
    post,
    path = "/v1/admin/cards/{par}/tokens/{action}",
    operation_id = "act_on_card_tokens",
    tag = "admin",
    params(
        ("par" = String, Path, description = "the card's Payment Account Reference"),
        ("action" = String, Path, description = "`suspend`, `resume` or `delete`")
    ),
    responses(
        (status = 200, description = "`{\"par\",\"action\",\"changed\",\"items\":[…]}`", body = super::schemas::CardTokensChanged),
        (status = 404, description = "`card_unknown`: no instrument has this PAR; `not_found`: an action other than these three")
    ),
    security(("api_key" = []))
)]
pub async fn act_on_card(
    State(s): State<AppState>,
    caller: Caller,
    Path((par, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let admin = caller.require(Scope::Admin)?;
    let action = match action.as_str() {
        "suspend" => Action::Suspend,
        "resume" => Action::Resume,
        "delete" => Action::Delete,
        _ => return Err(ApiError::not_found()),
    };
    known(&s, &par).await?;
    Ok(Json(on_every_token(&s, &admin.id, &par, action).await?))
}

/// The change `action` on every live token of the card `par` that is in a state to take it; the
/// answer of the bulk routes.
async fn on_every_token(s: &AppState, actor: &str, par: &str, action: Action) -> ApiResult<Value> {
    let mut changed = 0;
    for t in s.store.tokens_by_par(par, false, LIST_LIMIT).await? {
        let status = s.tokens.status(&t);
        let applies = match action {
            Action::Suspend => status == crate::tokens::TokenStatus::Active,
            Action::Resume => status == crate::tokens::TokenStatus::Suspended,
            Action::Delete => status.is_live(),
        };
        if !applies {
            continue;
        }
        match action.apply(s, actor, &t).await {
            Ok(_) => changed += 1,
            // A token that changed meanwhile (spent, expired) is skipped, not an error.
            Err(e) if e.status == axum::http::StatusCode::CONFLICT => {}
            Err(e) => return Err(e),
        }
    }
    let items = s.store.tokens_by_par(par, false, LIST_LIMIT).await?;
    Ok(json!({
        "par": par,
        "action": action.name(),
        "changed": changed,
        "items": items.iter().map(|t| view(s, t)).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReissueBody {
    /// The card's new number, if it has one.
    pub pan: Option<String>,
    /// The card's new expiry (`YYMM`), if it has one.
    pub expiry: Option<String>,
}

/// `POST /v1/admin/cards/{par}/reissue` `{"pan"?,"expiry"?}`: the account updater. The issuer
/// reissued the card: every live instrument of it keeps its id and PAR, holds the new number and
/// expiry, and its tokens (merchant tokens included) pay against the new number from now on; each
/// requestor gets an `instrument.updated` event. The answer shows the instruments, masked.
#[utoipa::path(
    post,
    path = "/v1/admin/cards/{par}/reissue",
    operation_id = "reissue_card",
    tag = "admin",
    params(("par" = String, Path, description = "the card's Payment Account Reference")),
    request_body(content = ReissueBody, description = r#"the new number and/or expiry"#),
    responses(
        (status = 200, description = "`{\"par\",\"items\":[…]}`: the card's instruments now", body = super::schemas::CardInstruments),
        (status = 404, description = "`card_unknown`"),
        (status = 422, description = "`pan_format`, `pan_luhn`, `pan_other_issuer`, `expiry_format`, `reissue_empty`")
    ),
    security(("api_key" = []))
)]
pub async fn reissue(
    State(s): State<AppState>,
    Path(par): Path<String>,
    Scoped(admin, JsonBody(b), _): Scoped<scope::Admin, JsonBody<ReissueBody>>,
) -> ApiResult<Json<Value>> {
    known(&s, &par).await?;
    let items = s.vault.reissue(&par, b.pan.as_deref(), b.expiry.as_deref()).await?;
    s.audit(
        crate::audit::Event::new(&admin.id, "card.reissue", Some(par.clone()))
            .detail(json!({ "new_number": b.pan.is_some(), "expiry": b.expiry })),
    )
    .await?;
    Ok(Json(json!({ "par": par, "items": items.iter().map(super::instruments::view).collect::<Vec<_>>() })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LostBody {
    /// What becomes of the card's tokens: `suspend` (the default: the issuer may resume them) or
    /// `delete`.
    pub tokens: Option<String>,
}

/// `POST /v1/admin/cards/{par}/lost` `{"tokens":"suspend"|"delete"}`: the card was reported lost or
/// stolen; every live token of it, of every requestor, is suspended (or deleted).
#[utoipa::path(
    post,
    path = "/v1/admin/cards/{par}/lost",
    operation_id = "card_lost_or_stolen",
    tag = "admin",
    params(("par" = String, Path, description = "the card's Payment Account Reference")),
    request_body(content = LostBody, description = r#"what becomes of its tokens"#),
    responses(
        (status = 200, description = "`{\"par\",\"action\",\"changed\",\"items\":[…]}`", body = super::schemas::CardTokensChanged),
        (status = 404, description = "`card_unknown`"),
        (status = 422, description = "`tokens_invalid`")
    ),
    security(("api_key" = []))
)]
pub async fn lost(
    State(s): State<AppState>,
    Path(par): Path<String>,
    Scoped(admin, JsonBody(b), _): Scoped<scope::Admin, JsonBody<LostBody>>,
) -> ApiResult<Json<Value>> {
    let action = match b.tokens.as_deref().unwrap_or("suspend") {
        "suspend" => Action::Suspend,
        "delete" => Action::Delete,
        _ => return Err(ApiError::unprocessable("tokens_invalid", "tokens must be suspend or delete")),
    };
    known(&s, &par).await?;
    s.audit(crate::audit::Event::new(&admin.id, "card.lost", Some(par.clone()))).await?;
    Ok(Json(on_every_token(&s, &admin.id, &par, action).await?))
}
