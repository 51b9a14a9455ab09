//! `POST /v1/terminal/payments` (scope `terminal`): a purchase sent over this node's own ISO 8583
//! front by the service's terminal client (`crate::terminal`), for the demo terminal page. It goes
//! the way a real terminal's would: framed, over TCP, through the same checks and the same issuer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Scoped, scope};
use crate::money::Amount;
use crate::payments::ResponseCode;
use crate::store::TerminalStatus;

/// The demo terminal's STANs, counted from this process's start (seeded from the clock so a restart
/// within the same second does not reuse one).
static NEXT_STAN: std::sync::LazyLock<std::sync::atomic::AtomicU32> = std::sync::LazyLock::new(|| {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    std::sync::atomic::AtomicU32::new((secs % 900_000) as u32)
});

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalPaymentBody {
    /// A one-time or merchant token (never a card number: the page is for tokens).
    pub token: String,
    /// A decimal amount in the platform's currency (KRW).
    pub amount: String,
    pub merchant_id: String,
}

/// `POST /v1/terminal/payments`: pays `amount` with `token` at one of the caller's merchants.
#[utoipa::path(
    post,
    path = "/v1/terminal/payments",
    tag = "terminals",
    request_body(content = TerminalPaymentBody, description = r#"a payment with a token at one of the caller's merchants"#),
    responses(
        (status = 200, description = "the 0210's answer (approved or declined)", body = super::schemas::TerminalPayment),
        (status = 403, description = "`scope_missing`, or `merchant_not_bound`"),
        (status = 409, description = "`terminal_not_registered`: the merchant has no active terminal without a VAN"),
        (status = 422, description = "`token_invalid`, `amount_invalid`, …"),
        (status = 503, description = "`iso_unavailable`: the ISO 8583 front did not answer")
    ),
    security(("api_key" = []))
)]
pub async fn pay(
    State(s): State<AppState>,
    Scoped(auth, JsonBody(b), _): Scoped<scope::Terminal, JsonBody<TerminalPaymentBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let requestor = &auth;
    if s.store.merchant_owner(&b.merchant_id).await?.as_deref() != Some(requestor.id.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "merchant_not_bound",
            "this API key is not bound to that merchant",
        ));
    }
    let token = crate::tokens::TokenValue::parse(b.token.trim())
        .filter(|t| s.vault.issuer_for(t.as_str()).is_none())
        .ok_or_else(|| ApiError::unprocessable("token_invalid", "token must be a token number"))?;
    let currency =
        s.config.default_currency().cloned().ok_or_else(|| ApiError::unprocessable("currency", "no currency"))?;
    let minor = Amount::parse(&b.amount, &currency)
        .ok()
        .and_then(|a| a.to_minor())
        .and_then(|m| u64::try_from(m).ok())
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            ApiError::unprocessable("amount_invalid", "amount must be a positive amount in the platform's currency")
        })?;
    let Some(addr) = s.iso_addr.get().copied() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "iso_unavailable",
            "the ISO 8583 front is not listening in clear text",
        ));
    };
    let unavailable = |e: crate::terminal::TerminalError| {
        tracing::warn!(error = %e, "terminal page payment");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "iso_unavailable", "the ISO 8583 front did not answer")
    };
    // The page pays as the merchant's first registered terminal that connects without a VAN's
    // certificate: the registry checks it as it checks any terminal.
    let registered = s.store.terminals(Some(&b.merchant_id)).await?;
    let Some(term) = registered.iter().find(|t| t.status == TerminalStatus::Active && t.van.is_none()) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "terminal_not_registered",
            "no active terminal of this merchant is registered to connect without a VAN",
        ));
    };
    let mut terminal =
        crate::terminal::Terminal::connect(&addr.to_string(), &term.id, &b.merchant_id).await.map_err(unavailable)?;
    // STANs from one counter across requests and terminals: this process's.
    terminal.continue_stan_after(NEXT_STAN.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let answer = terminal.pay(token.as_str(), minor).await.map_err(unavailable)?;
    let code = answer.response_code().and_then(ResponseCode::parse).unwrap_or(ResponseCode::SYSTEM_ERROR);
    Ok((
        StatusCode::OK,
        Json(json!({
            "response_code": code.as_str(),
            "meaning": code.meaning(),
            "approved": code.is_approved(),
            "auth_code": answer.authorization_code(),
            "stan": answer.stan(),
            "amount": Amount::from_minor(minor as i64, &currency).to_string(),
        })),
    ))
}
