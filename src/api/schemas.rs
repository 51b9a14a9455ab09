//! The JSON shapes of the REST API's answers (and of the bodies handlers read by hand), for the
//! OpenAPI document only: handlers build their answers with `json!`, and `tests/schemathesis.rs`
//! checks that what they send matches these.
//!
//! Fields that an answer may carry as `null`, or leave out for some kinds (a card's `bin`, a
//! wallet's `region`), are `Option`: nullable and not required.

#![allow(dead_code)] // shapes for the document: never built

use serde::Deserialize;
use utoipa::ToSchema;

/// Every refusal: `{"error":{"code","message"}}`. The code is stable and machine-readable (e.g.
/// `scope_missing`, `pan_missing`, `instrument_suspended`); the message is for people.
#[derive(ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `<field>_missing`, `<field>_invalid`, `not_found`, ….
    pub code: String,
    /// For people; never holds a card number.
    pub message: String,
}

/// `POST /v1/instruments`: one of three shapes, chosen by `type`.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum NewInstrument {
    /// A card: its PAN (13 to 19 digits, Luhn) and expiry `YYMM`.
    Card { pan: String, expiry: String },
    /// A gift certificate, by the code it was issued with.
    Gift { code: String },
    /// A local-currency wallet in a region.
    Local { region: String },
}

/// An instrument as its requestor sees it: masked, never the PAN.
#[derive(ToSchema)]
pub struct Instrument {
    /// `ins_…`
    pub id: String,
    #[serde(rename = "type")]
    pub kind: InstrumentType,
    /// `active`, `pending_verification` (a card the issuer asked to step up: no tokens until
    /// `/verify` succeeds), `suspended` or `deleted`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    /// Cards only.
    pub issuer_id: Option<String>,
    /// Cards only: BIN and last four, the rest masked.
    pub masked_pan: Option<String>,
    pub bin: Option<String>,
    pub last4: Option<String>,
    /// Cards only: `YYMM`.
    pub expiry: Option<String>,
    /// Cards only: the payment account reference.
    pub par: Option<String>,
    /// Cards only: how the cardholder was verified at registration — `issuer_approved`, `otp_sms`,
    /// `otp_app`, `card_present`, `stand_in`; null while pending, and for cards registered before
    /// tsp recorded it.
    pub assurance: Option<String>,
    /// Cards pending step-up only.
    pub verification: Option<VerificationState>,
    /// Local-currency wallets only.
    pub region: Option<String>,
}

/// Where a pending card's step-up stands.
#[derive(ToSchema)]
pub struct VerificationState {
    /// The ways the issuer can send a one-time code.
    pub methods: Vec<VerificationMethod>,
    /// The method of the current code; null before the first.
    pub method: Option<String>,
    pub code_expires_at: Option<String>,
    pub attempts_left: i64,
    pub codes_left: i64,
}

#[derive(ToSchema)]
pub struct VerificationMethod {
    /// `sms` or `app`.
    pub method: String,
    /// Where it goes, masked by the issuer (`010-****-1234`).
    pub destination: String,
}

/// A one-time code on its way.
#[derive(ToSchema)]
pub struct CodeSent {
    pub method: String,
    pub destination: String,
    pub expires_at: String,
    pub attempts_left: i64,
    pub codes_left: i64,
}

/// What the simulated issuer sent a cardholder.
#[derive(ToSchema)]
pub struct SimMessages {
    pub items: Vec<SimMessage>,
}

#[derive(ToSchema)]
pub struct SimMessage {
    pub method: String,
    pub destination: String,
    /// The text, code included.
    pub text: String,
    pub sent_at: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstrumentType {
    Card,
    Gift,
    Local,
}

#[derive(ToSchema)]
pub struct InstrumentList {
    pub items: Vec<Instrument>,
}

/// Stored value: amounts are decimal text in the currency's major unit.
#[derive(ToSchema)]
pub struct Balance {
    pub currency: String,
    pub principal: String,
    pub bonus: String,
    pub refundable: String,
    /// Gift certificates only.
    pub face_value: Option<String>,
    /// Gift certificates only.
    pub expires_at: Option<String>,
    /// Local-currency wallets only.
    pub region: Option<String>,
    /// Local-currency wallets only: the bonus still left of each grant.
    pub bonus_grants: Option<Vec<BonusGrant>>,
}

#[derive(ToSchema)]
pub struct BonusGrant {
    pub amount: String,
    pub expires_at: String,
}

#[derive(ToSchema)]
pub struct Charge {
    /// The ledger entry.
    pub id: String,
    pub currency: String,
    pub principal: String,
    pub bonus: String,
    pub bonus_expires_at: Option<String>,
    pub balance: ChargeBalance,
}

#[derive(ToSchema)]
pub struct ChargeBalance {
    pub currency: String,
    pub principal: String,
    pub bonus: String,
    pub refundable: String,
}

/// A one-time token.
#[derive(ToSchema)]
pub struct IssuedToken {
    /// The token number (16 digits).
    pub token: String,
    /// `tok_…`
    pub token_ref: String,
    /// `YYMM`
    pub token_expiry: String,
    pub expires_at: String,
    pub psn: String,
    /// The limited-use ICC key, hex.
    pub icc_key: String,
    pub instrument_id: String,
    pub merchant_id: Option<String>,
    pub currency: Option<String>,
    pub max_amount: Option<String>,
    pub entry_modes: Option<Vec<String>>,
}

#[derive(ToSchema)]
pub struct TokenState {
    pub token_ref: String,
    pub instrument_id: String,
    /// `active`, `suspended`, `deleted`, `consumed`, `expired` or `locked`.
    pub status: String,
    /// The token number masked: first 6 and last 4 digits.
    pub masked_token: Option<String>,
    /// A merchant token (terminal tokenization), paid any number of times at its merchant.
    pub multi_use: bool,
    pub token_expiry: String,
    pub expires_at: String,
    pub consumed_at: Option<String>,
    pub suspended_at: Option<String>,
    pub merchant_id: Option<String>,
    pub currency: Option<String>,
    pub max_amount: Option<String>,
    pub entry_modes: Option<Vec<String>>,
}

#[derive(ToSchema)]
pub struct Detokenized {
    pub pan: String,
    pub expiry: String,
}

#[derive(ToSchema)]
pub struct MerchantToken {
    pub token: String,
    pub token_ref: String,
    pub merchant_id: String,
    pub instrument_id: String,
    pub masked_pan: String,
    pub token_expiry: String,
    pub expires_at: String,
    pub multi_use: bool,
}

#[derive(ToSchema)]
pub struct MerchantTokenRevoked {
    pub token_ref: String,
    pub merchant_id: String,
    /// `revoked` (kept for the clients that read it; `status` is the lifecycle's word)
    pub state: String,
    /// `deleted`
    pub status: String,
}

/// Every token of a card.
#[derive(ToSchema)]
pub struct CardTokens {
    pub par: String,
    pub items: Vec<TokenState>,
}

/// A change on every token of a card.
#[derive(ToSchema)]
pub struct CardTokensChanged {
    pub par: String,
    /// `suspend`, `resume` or `delete`
    pub action: String,
    /// How many tokens changed.
    pub changed: u64,
    /// The card's live tokens after the change.
    pub items: Vec<TokenState>,
}

/// The 0210's answer.
#[derive(ToSchema)]
pub struct TerminalPayment {
    pub response_code: String,
    pub meaning: String,
    pub approved: bool,
    pub auth_code: Option<String>,
    pub stan: Option<String>,
    pub amount: String,
}

/// A payment, reversal or cancellation, masked.
#[derive(ToSchema)]
pub struct Transaction {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub mti: String,
    pub response_code: Option<String>,
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub instrument_id: Option<String>,
    pub instrument_kind: Option<String>,
    pub token_ref: Option<String>,
    pub masked_pan: Option<String>,
    pub issuer_id: Option<String>,
    pub merchant_id: Option<String>,
    pub terminal_id: String,
    pub stan: String,
    pub transmitted: String,
    pub processing_code: Option<String>,
    pub entry_mode: Option<String>,
    pub auth_code: Option<String>,
    pub issuer_response: Option<String>,
    pub original_id: Option<String>,
    pub cancel_type: Option<String>,
    pub principal: Option<String>,
    pub bonus: Option<String>,
    pub forfeited: Option<String>,
    pub cancelled_amount: Option<String>,
    pub issuer_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct TransactionList {
    pub items: Vec<Transaction>,
}

#[derive(ToSchema)]
pub struct Issuer {
    pub id: String,
    pub name: String,
    pub bin_prefixes: Vec<String>,
    pub token_bin_prefixes: Vec<String>,
}

#[derive(ToSchema)]
pub struct IssuerList {
    pub items: Vec<Issuer>,
    pub platform_token_bin_prefixes: Vec<String>,
}

/// A new requestor; its API key is shown this once.
#[derive(ToSchema)]
pub struct NewRequestor {
    pub id: String,
    pub trid: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub merchant_ids: Vec<String>,
    /// For a detokenize requestor: the requestors it serves.
    pub serves: Vec<String>,
    pub api_key: String,
}

#[derive(ToSchema)]
pub struct KeyRevoked {
    pub key_id: String,
    pub requestor_id: String,
    pub revoked_at: String,
    pub already_revoked: bool,
}

/// The new key is shown this once.
#[derive(ToSchema)]
pub struct KeyRotated {
    pub key_id: String,
    pub api_key: String,
    pub requestor_id: String,
    pub previous_key_id: String,
    pub previous_key_revoked_at: String,
    pub overlap_seconds: i64,
}

#[derive(ToSchema)]
pub struct Settlement {
    pub id: String,
    pub closed_at: String,
}

/// An issued gift certificate; its code is shown this once.
#[derive(ToSchema)]
pub struct IssuedGift {
    pub id: String,
    pub code: String,
    pub face_value: String,
    pub balance: String,
    pub currency: String,
    pub expires_at: String,
}

#[derive(ToSchema)]
pub struct Region {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub incentive_rate: String,
    pub monthly_bonus_cap: Option<String>,
    pub bonus_lifetime_seconds: i64,
    pub cancel_restore: String,
    pub merchants: Vec<Merchant>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct RegionList {
    pub items: Vec<Region>,
}

#[derive(ToSchema)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub region: String,
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct MerchantList {
    pub items: Vec<Merchant>,
}

/// A registered terminal.
#[derive(ToSchema)]
pub struct Terminal {
    /// DE41.
    pub id: String,
    /// DE42: the one merchant it pays for.
    pub merchant_id: String,
    /// The VAN whose client certificate it comes through; null: it connects without one.
    pub van: Option<String>,
    /// `active` or `suspended`
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct TerminalList {
    pub items: Vec<Terminal>,
}

#[derive(ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`
    pub status: String,
    /// `unreachable` when the database does not answer.
    pub database: Option<String>,
}

/// `/healthz`'s 503: the health answer when the database does not answer, the error shape when
/// the listener refuses the connection (`connections_exhausted`).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum HealthOrError {
    Health(Health),
    Error(ErrorBody),
}

/// A webhook endpoint.
#[derive(ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// `active` or `disabled`
    pub status: String,
    pub created_at: String,
}

/// A webhook endpoint just made, with its signing secret (shown this once).
#[derive(ToSchema)]
pub struct WebhookCreated {
    pub id: String,
    pub url: String,
    pub status: String,
    pub created_at: String,
    /// `whsec_…`: the HMAC-SHA256 key of the `Tsp-Signature` header (its text's bytes).
    pub secret: String,
}

#[derive(ToSchema)]
pub struct Webhooks {
    pub items: Vec<Webhook>,
}

/// One delivery of an event to one endpoint.
#[derive(ToSchema)]
pub struct Delivery {
    pub endpoint_id: String,
    /// `pending`, `delivered` or `dead`
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// An event, as delivered (plus its deliveries).
#[derive(ToSchema)]
pub struct EventView {
    /// `evt_…`: receivers drop a repeated id.
    pub id: String,
    /// `token.suspended`, `payment.approved`, … (docs/webhooks.md)
    #[schema(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub instrument_id: String,
    /// 1, 2, 3, … per instrument: receivers put an instrument's events in order by it.
    pub sequence: i64,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub deliveries: Vec<Delivery>,
}

#[derive(ToSchema)]
pub struct Events {
    pub items: Vec<EventView>,
}

/// A card's instruments, of every requestor.
#[derive(ToSchema)]
pub struct CardInstruments {
    pub par: String,
    pub items: Vec<Instrument>,
}
