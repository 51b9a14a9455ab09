//! One-time tokens: issuance for an instrument, lookup, and atomic consumption.
//!
//! A token number is the token BIN prefix of the card's issuer (or the platform's range for gift
//! and local currency), CSPRNG digits and a Luhn digit. The database guarantees it is unique among
//! live tokens and differs from every registered PAN (one statement checks both while inserting).
//! Each token carries an EMV ICC master key derived in the HSM (Option A, PSN 00) from its range's
//! token IMK-AC, handed to the app as a limited-use key for chip cryptograms.

pub mod value;

use std::sync::Arc;

use hsm_sim::{KeyRef, SecretBytes};
use ring::rand::SystemRandom;

use crate::clock::Clock;
use crate::config::Config;
use crate::hsm::Hsm;
use crate::issuer::{self, Issuers};
use crate::money::{Amount, AmountError, Currency};
use crate::requestors::Requestor;
use crate::store::InstrumentKind;
use crate::store::{Consume, InsertToken, InstrumentRow, Store, TokenRow};
use crate::vault::{Pan, Vault};
use crate::{Error, Result};
pub use value::{GenerateError, TOKEN_LEN, TokenValue};

/// The PAN sequence number every token carries.
pub const TOKEN_PSN: &str = "00";

/// How many fresh numbers to try before giving up on a crowded range.
const MAX_DRAWS: usize = 16;

/// Optional restrictions on a token, as a requestor asks for them.
#[derive(Debug, Default, Clone)]
pub struct TokenOptions {
    pub merchant_id: Option<String>,
    pub max_amount: Option<String>,
    pub currency: Option<String>,
    pub ttl_seconds: Option<i64>,
    pub entry_modes: Option<Vec<String>>,
}

/// How inserting a token with a fresh number ended.
enum Fresh {
    Inserted,
    /// The instrument is not active.
    NotActive,
    /// The card's live merchant token at this merchant, made by a racing request.
    Existing(Box<TokenRow>),
}

/// A token just issued, with its limited-use key.
pub struct IssuedToken {
    pub row: TokenRow,
    pub icc_key: SecretBytes,
    /// The currency its `max_amount` is in, if bound.
    pub currency: Option<Currency>,
}

/// A token's status as requestors and the issuer see it (docs/instruments.md "Token lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Live: it pays (within its restrictions).
    Active,
    /// Live but held: nothing accepts it until it is resumed.
    Suspended,
    /// Ended by its requestor, the issuer, or its instrument's suspension or deletion.
    Deleted,
    /// Spent by its approved payment (a one-time token).
    Consumed,
    /// Its TTL has passed.
    Expired,
    /// Locked after too many failed attempts.
    Locked,
}

impl TokenStatus {
    /// The status of `t` at `now`. The store's `state` column holds `active` (with `suspended_at`
    /// set when suspended), `consumed`, `expired`, `locked` or `revoked` (shown as deleted).
    pub fn of(t: &TokenRow, now: i64) -> Self {
        match t.state.as_str() {
            "active" if t.expires_at <= now => Self::Expired,
            "active" if t.suspended_at.is_some() => Self::Suspended,
            "active" => Self::Active,
            "consumed" => Self::Consumed,
            "expired" => Self::Expired,
            "locked" => Self::Locked,
            _ => Self::Deleted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
            Self::Consumed => "consumed",
            Self::Expired => "expired",
            Self::Locked => "locked",
        }
    }

    /// Whether the token still holds its number (active or suspended).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::Suspended)
    }

    /// Why a lifecycle change cannot start from this status: `suspending` names the change (a
    /// suspend; otherwise a resume or delete).
    fn refusal(self, suspending: bool) -> Error {
        match self {
            Self::Active if suspending => Error::Internal("an active token refused to be suspended".into()),
            Self::Active => Error::TokenActive,
            Self::Suspended => Error::TokenSuspended,
            Self::Deleted => Error::TokenDeleted,
            Self::Consumed => Error::TokenUsed,
            Self::Expired => Error::TokenExpired,
            Self::Locked => Error::TokenLocked,
        }
    }
}

pub struct Tokens {
    store: Store,
    hsm: Hsm,
    vault: Arc<Vault>,
    config: Arc<Config>,
    issuers: Arc<Issuers>,
    clock: Clock,
    rng: SystemRandom,
}

/// The month (`YYMM`) a token is shown to expire: the one its TTL ends in, counted a day late so a
/// terminal a time zone ahead of UTC does not see it expired while it is live.
pub(crate) fn token_expiry(expires_at_ms: i64) -> String {
    let (y, m) = crate::clock::year_month(expires_at_ms + 86_400_000);
    format!("{:02}{m:02}", y % 100)
}

impl Tokens {
    pub fn new(
        store: Store,
        hsm: Hsm,
        vault: Arc<Vault>,
        config: Arc<Config>,
        issuers: Arc<Issuers>,
        clock: Clock,
    ) -> Self {
        Tokens { store, hsm, vault, config, issuers, clock, rng: SystemRandom::new() }
    }

    /// Loads the token IMKs of the configuration into the HSM.
    pub async fn load_keys(hsm: &Hsm, config: &Config) -> Result<()> {
        let import = |label: String, hex_key: String| async move {
            let key =
                zeroize::Zeroizing::new(hex::decode(&hex_key).map_err(|_| Error::invalid("config", "bad IMK hex"))?);
            hsm.import_clear_key(&label, hsm_sim::KeyUsage::EmvImkAc, &key).await?;
            Ok::<_, Error>(())
        };
        import(issuer::PLATFORM_IMK_LABEL.to_string(), config.platform.token_imk_ac.clone()).await?;
        for i in &config.issuers {
            import(issuer::imk_label(&i.id), i.token_imk_ac.clone()).await?;
        }
        Ok(())
    }

    /// Issues a one-time token for the requestor's instrument.
    pub async fn issue(&self, requestor: &Requestor, instrument_id: &str, opts: &TokenOptions) -> Result<IssuedToken> {
        let instrument = self.vault.instrument(requestor, instrument_id).await?;
        if let Some(e) = instrument.status.refusal() {
            return Err(e);
        }
        let now = self.clock.now_ms();
        if self.expired(&instrument, now).await? {
            return Err(Error::InstrumentExpired);
        }
        let (prefix, imk_label) = self.range_of(&instrument)?;
        let mut row = self.validate(requestor, &instrument, opts, now)?;
        let currency = row.currency.as_deref().and_then(|c| self.config.currency(c)).cloned();

        if let Fresh::NotActive = self.insert_fresh(&mut row, &prefix, now).await? {
            let now_row = self.vault.instrument(requestor, instrument_id).await?;
            return Err(now_row.status.refusal().unwrap_or(Error::InstrumentDeleted));
        }
        let icc_key = self.hsm.derive_icc_mk(KeyRef::stored(imk_label), &row.token, TOKEN_PSN).await?;
        crate::metrics::get().tokens_issued.inc();
        Ok(IssuedToken { row, icc_key, currency })
    }

    /// Gives `row` a fresh number from the range `prefix` and inserts it. The database refuses a
    /// number that is live already or is a vaulted card's number (under any fingerprint key in use),
    /// an instrument that is not active, and a second live merchant token of a card at a merchant.
    async fn insert_fresh(&self, row: &mut TokenRow, prefix: &str, now: i64) -> Result<Fresh> {
        let mut draws = 0;
        let mut number: Option<TokenValue> = None;
        loop {
            let candidate = match number.take() {
                Some(n) => n,
                None => {
                    draws += 1;
                    if draws > MAX_DRAWS {
                        return Err(Error::TokenRangeExhausted);
                    }
                    TokenValue::generate_system(prefix, TOKEN_LEN, &self.rng).map_err(|_| Error::TokenRangeExhausted)?
                }
            };
            row.token = candidate.as_str().to_string();
            let fps = self.vault.fingerprints(&self.vault.keys(), candidate.as_str()).await?;
            let (first, second) = (fps.first().map_or("", String::as_str), fps.get(1).or(fps.first()));
            match self.store.insert_token(row, [first, second.map_or(first, String::as_str)]).await? {
                InsertToken::Inserted => return Ok(Fresh::Inserted),
                InsertToken::NumberIsPan => {
                    // Or another request made this card's merchant token at this merchant first.
                    if row.multi_use
                        && let Some(m) = row.merchant_id.as_deref()
                        && let Some(existing) = self.store.merchant_token(&row.instrument_id, m).await?
                    {
                        return Ok(Fresh::Existing(Box::new(existing)));
                    }
                }
                InsertToken::NumberTaken => {
                    // A live-looking holder whose TTL has passed frees the number; try it again.
                    if self.store.expire_token_number(candidate.as_str(), now).await? {
                        number = Some(candidate);
                    }
                }
                InsertToken::InstrumentNotActive => return Ok(Fresh::NotActive),
            }
        }
    }

    /// The merchant token of a card at a merchant (terminal tokenization): the live one if there is
    /// one, else a new one — multi-use, bound to `merchant_id`, living `merchant_ttl_days`.
    pub async fn merchant_token(&self, instrument: &InstrumentRow, merchant_id: &str) -> Result<TokenRow> {
        let now = self.clock.now_ms();
        if let Some(t) = self.store.merchant_token(&instrument.id, merchant_id).await? {
            if t.expires_at > now {
                // A suspended merchant token stays the card's token at this merchant, held.
                return match t.suspended_at {
                    Some(_) => Err(Error::TokenSuspended),
                    None => Ok(t),
                };
            }
            // Past its expiry: it ends, and the card gets a new one at this merchant.
            self.store.end_token(&t.id, false, now).await?;
        }
        let (prefix, _) = self.range_of(instrument)?;
        let expires_at = now + i64::from(self.config.tokens.merchant_ttl_days) * 86_400_000;
        let mut row = TokenRow {
            id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
            token: String::new(),
            instrument_id: instrument.id.clone(),
            requestor_id: instrument.requestor_id.clone(),
            state: "active".into(),
            token_expiry: token_expiry(expires_at),
            psn: TOKEN_PSN.into(),
            merchant_id: Some(merchant_id.to_string()),
            max_amount: None,
            currency: None,
            entry_modes: None,
            failed_attempts: 0,
            created_at: now,
            expires_at,
            consumed_at: None,
            multi_use: true,
            suspended_at: None,
        };
        match self.insert_fresh(&mut row, &prefix, now).await? {
            Fresh::Inserted => {
                crate::metrics::get().tokens_issued.inc();
                Ok(row)
            }
            Fresh::Existing(t) => Ok(*t),
            Fresh::NotActive => Err(self
                .store
                .instrument(&instrument.id)
                .await?
                .and_then(|i| i.status.refusal())
                .unwrap_or(Error::InstrumentDeleted)),
        }
    }

    /// True when the instrument can no longer pay: a card past its expiry month, a gift certificate
    /// past its expiry. (A local-currency wallet does not expire; its bonus grants do.)
    async fn expired(&self, instrument: &InstrumentRow, now: i64) -> Result<bool> {
        Ok(match instrument.kind {
            InstrumentKind::Card => {
                instrument.expiry.as_deref().and_then(crate::vault::CardExpiry::parse).is_some_and(|e| e.is_past(now))
            }
            InstrumentKind::Gift => {
                self.store.gift_by_instrument(&instrument.id).await?.is_some_and(|g| now >= g.expires_at)
            }
            InstrumentKind::Local => false,
        })
    }

    /// The token BIN prefix and the IMK label for an instrument's tokens.
    fn range_of(&self, instrument: &InstrumentRow) -> Result<(String, String)> {
        let platform = || (self.config.platform.token_bin_prefixes[0].clone(), issuer::PLATFORM_IMK_LABEL.to_string());
        match instrument.kind {
            InstrumentKind::Card => {
                let id = instrument.issuer_id.as_deref().unwrap_or_default();
                let iss = self
                    .issuers
                    .get(id)
                    .ok_or_else(|| Error::invalid("issuer_unknown", "the card's issuer is no longer configured"))?;
                Ok((iss.token_bin_prefixes[0].clone(), issuer::imk_label(&iss.id)))
            }
            _ => Ok(platform()),
        }
    }

    /// Checks the requested options and builds the row to insert (without its number).
    fn validate(
        &self,
        requestor: &Requestor,
        instrument: &InstrumentRow,
        opts: &TokenOptions,
        now: i64,
    ) -> Result<TokenRow> {
        let t = &self.config.tokens;
        let ttl = opts.ttl_seconds.unwrap_or(i64::from(t.ttl_seconds));
        if ttl < i64::from(t.min_ttl_seconds) || ttl > i64::from(t.max_ttl_seconds) {
            return Err(Error::invalid(
                "ttl_seconds_range",
                format!("ttl_seconds must be {} to {}", t.min_ttl_seconds, t.max_ttl_seconds),
            ));
        }
        if let Some(m) = &opts.merchant_id
            && (m.is_empty() || m.len() > 15 || !m.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(Error::invalid(
                "merchant_id_invalid",
                "merchant_id must be 1 to 15 printable ASCII characters",
            ));
        }
        let currency = match &opts.currency {
            Some(c) => {
                Some(self.config.currency(c).ok_or_else(|| Error::invalid("currency_unknown", "unknown currency"))?)
            }
            None if opts.max_amount.is_some() => self.config.default_currency(),
            None => None,
        };
        let max_amount = match (&opts.max_amount, currency) {
            (Some(text), Some(cur)) => Some(
                Amount::parse(text, cur)
                    .map_err(|e| match e {
                        AmountError::Format => {
                            Error::invalid("max_amount_invalid", "max_amount must be a decimal string")
                        }
                        AmountError::Scale => {
                            Error::invalid("max_amount_scale", "max_amount has more decimals than its currency")
                        }
                        AmountError::Range => {
                            Error::invalid("max_amount_range", "max_amount must be positive and fit 12 digits")
                        }
                    })
                    .and_then(|a| {
                        a.to_minor()
                            .map(|_| a)
                            .ok_or_else(|| Error::invalid("max_amount_range", "max_amount must fit 12 digits"))
                    })?,
            ),
            _ => None,
        };
        let entry_modes = match &opts.entry_modes {
            Some(modes) => {
                if modes.is_empty()
                    || modes.len() > 16
                    || !modes.iter().all(|m| m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(Error::invalid(
                        "entry_modes_invalid",
                        "entry_modes must be two-digit DE22 PAN entry modes",
                    ));
                }
                Some(modes.join(","))
            }
            None => None,
        };
        let expires_at = now + ttl * 1000;
        Ok(TokenRow {
            id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
            token: String::new(),
            instrument_id: instrument.id.clone(),
            requestor_id: requestor.id.clone(),
            state: "active".into(),
            token_expiry: token_expiry(expires_at),
            psn: TOKEN_PSN.into(),
            merchant_id: opts.merchant_id.clone(),
            max_amount,
            currency: currency.map(|c| c.code.clone()),
            entry_modes,
            failed_attempts: 0,
            created_at: now,
            expires_at,
            consumed_at: None,
            multi_use: false,
            suspended_at: None,
        })
    }

    /// A token of the requestor's, by its reference.
    pub async fn token(&self, requestor: &Requestor, token_ref: &str) -> Result<TokenRow> {
        match self.store.token(token_ref).await? {
            Some(t) if t.requestor_id == requestor.id => Ok(t),
            _ => Err(Error::TokenUnknown),
        }
    }

    /// The status a token is in now (a live token past its TTL is expired).
    pub fn status(&self, t: &TokenRow) -> TokenStatus {
        TokenStatus::of(t, self.clock.now_ms())
    }

    /// Why a token that exists cannot be used now, if it cannot. Reads its instrument.
    pub async fn refusal(&self, t: &TokenRow) -> Result<Option<Error>> {
        let instrument = self.store.instrument(&t.instrument_id).await?;
        Ok(self.refusal_for(t, instrument.as_ref()))
    }

    /// [`Tokens::refusal`] for a caller that already holds the token's instrument (None: gone).
    pub fn refusal_for(&self, t: &TokenRow, instrument: Option<&InstrumentRow>) -> Option<Error> {
        let instrument_refusal = instrument.map_or(Some(Error::InstrumentDeleted), |i| i.status.refusal());
        match (self.status(t), instrument_refusal) {
            (TokenStatus::Consumed, _) => Some(Error::TokenUsed),
            (TokenStatus::Locked, _) => Some(Error::TokenLocked),
            (TokenStatus::Expired, _) => Some(Error::TokenExpired),
            (_, Some(e)) => Some(e),
            (TokenStatus::Deleted, _) => Some(Error::TokenDeleted),
            (TokenStatus::Suspended, _) => Some(Error::TokenSuspended),
            (TokenStatus::Active, _) => None,
        }
    }

    /// Suspends a live token: no payment, lease or detokenize accepts it until it is resumed. A
    /// payment that holds its lease already finishes.
    pub async fn suspend(&self, t: &TokenRow) -> Result<TokenRow> {
        self.set_suspended(t, true).await
    }

    /// Resumes a suspended token; it is active again (if its TTL has not passed meanwhile).
    pub async fn resume(&self, t: &TokenRow) -> Result<TokenRow> {
        self.set_suspended(t, false).await
    }

    async fn set_suspended(&self, t: &TokenRow, suspend: bool) -> Result<TokenRow> {
        let now = self.clock.now_ms();
        if let Some(row) = self.store.suspend_token(&t.id, suspend, now).await? {
            return Ok(row);
        }
        // Not in the state the change starts from: say which state it is in now.
        let now_row = self.store.token(&t.id).await?.ok_or(Error::TokenUnknown)?;
        Err(TokenStatus::of(&now_row, now).refusal(suspend))
    }

    /// Deletes a live (active or suspended) token for good: its number is free to be drawn again.
    pub async fn delete(&self, t: &TokenRow) -> Result<TokenRow> {
        let now = self.clock.now_ms();
        let ended = self.store.end_token(&t.id, true, now).await?;
        let now_row = self.store.token(&t.id).await?.ok_or(Error::TokenUnknown)?;
        match TokenStatus::of(&now_row, now) {
            TokenStatus::Deleted if ended => Ok(now_row),
            s => Err(s.refusal(false)),
        }
    }

    /// A token by its number, for the issuer or an operator: the live one holding the number, else
    /// the newest that held it.
    pub async fn by_number(&self, number: &str) -> Result<TokenRow> {
        let value = TokenValue::parse(number).ok_or(Error::TokenUnknown)?;
        self.store.token_by_number(value.as_str()).await?.ok_or(Error::TokenUnknown)
    }

    /// The card behind a live token: its PAN and expiry. A read: the token stays live.
    pub async fn detokenize(&self, van: &Requestor, number: &str) -> Result<(Pan, String)> {
        let value = TokenValue::parse(number).ok_or(Error::TokenUnknown)?;
        let (t, instrument) = self.store.token_with_instrument(value.as_str()).await?.ok_or(Error::TokenUnknown)?;
        // A VAN detokenizes for the requestors it serves only; another's token is, to it, unknown (no
        // answer tells it the token exists).
        let owner = instrument.as_ref().map_or("", |i| i.requestor_id.as_str());
        if !self.store.van_serves(&van.id, owner).await? {
            return Err(Error::TokenUnknown);
        }
        if let Some(e) = self.refusal_for(&t, instrument.as_ref()) {
            return Err(e);
        }
        let instrument = instrument.ok_or(Error::InstrumentDeleted)?;
        if instrument.kind != InstrumentKind::Card {
            return Err(Error::NotACard);
        }
        let pan = self.vault.reveal_pan(&instrument).await?;
        Ok((pan, instrument.expiry.unwrap_or_default()))
    }

    /// Consumes a live token atomically: of any number of racing callers, at most one succeeds.
    pub async fn consume(&self, number: &str) -> Result<TokenRow> {
        match self.store.consume_token(number, self.clock.now_ms()).await? {
            Consume::Consumed(row) => Ok(row),
            Consume::Unknown => Err(Error::TokenUnknown),
            Consume::Refused(row) => Err(self.refusal(&row).await?.unwrap_or(Error::TokenUsed)),
        }
    }
}
