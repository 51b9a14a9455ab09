//! The REST API's request bodies, read as the handlers read them: the first byte picks the body
//! type (`'0'`…`'9'`, `':'`, `';'`: see `BODIES`), the rest is the body, deserialized by `parse_json::<T>` into the
//! handler's own struct. Any bytes give a value or a 4xx-style error, never a panic; no error code
//! or message echoes a card number; whatever parses goes through the field validators the handler
//! runs next (PAN, expiry, amounts, currency, scopes, dates, token numbers, regions).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tsp::api::error::ApiError;
use tsp::api::extract::parse_json;
use tsp::api::{admin, instruments, merchant_tokens, terminal, tokens};
use tsp::config::Config;
use tsp::money::{Amount, Currency};
use tsp::requestors::Scope;
use tsp::tokens::TokenValue;
use tsp::config::RegionSpec;
use tsp::vault::{CardExpiry, Pan};

/// The body types, by selector: `'0'` + the index.
const BODIES: [&str; 12] = [
    "any JSON (field validators on its string fields)",
    "POST /v1/instruments: Value → Kind → NewCard | NewGift | NewLocal",
    "NewCard",
    "POST /v1/instruments/{id}/charge: ChargeBody",
    "POST /v1/tokens: IssueBody",
    "POST /v1/detokenize: DetokenizeBody",
    "POST /v1/admin/requestors: NewRequestorBody",
    "POST /v1/admin/gift-certificates: NewGiftBody",
    "POST /v1/admin/regions: RegionSpec",
    "POST /v1/admin/merchants: NewMerchantBody",
    "POST /v1/merchant-tokens: MerchantTokenBody",
    "POST /v1/terminal/payments: TerminalPaymentBody",
];

static CONFIG: LazyLock<Config> = LazyLock::new(|| Config::default_config().expect("the demo config loads"));
static ISSUERS: LazyLock<tsp::issuer::Issuers> = LazyLock::new(|| tsp::issuer::Issuers::from_config(&CONFIG));

/// True when `s` holds a run of 12 or more digits: what a card number (or a token) would leave in a
/// text that echoed one.
fn has_digit_run(s: &str) -> bool {
    let mut run = 0;
    for b in s.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 12 {
            return true;
        }
    }
    false
}

fn check_error(e: &ApiError) {
    assert!(e.status.is_client_error(), "a body error is a 4xx");
    assert!(!has_digit_run(&e.code) && !has_digit_run(&e.message), "an error must not echo digits of the body");
}

/// `parse_json::<T>` as `JsonBody<T>` runs it; errors are checked and dropped.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    parse_json::<T>(bytes).map_err(|e| check_error(&e)).ok()
}

fn check_domain_error(e: tsp::Error) {
    check_error(&ApiError::from(e));
}

fn card_fields(pan: &str, expiry: &str) {
    match Pan::parse(pan) {
        Ok(p) => {
            let masked = p.masked();
            assert!(!has_digit_run(&masked) && !has_digit_run(&format!("{p:?}")), "a PAN shows only masked");
            assert_eq!(masked.len(), pan.len());
        }
        Err(e) => assert!(!has_digit_run(&format!("{e:?}"))),
    }
    if let Some(e) = CardExpiry::parse(expiry) {
        let _ = (e.is_past(0), e.is_past(1_767_225_600_000));
        assert_eq!(CardExpiry::parse(&e.yymm()), Some(e), "an expiry reads back");
    }
}

fn amount_in(text: &str, currency: &Currency) {
    if let Ok(a) = Amount::parse(text, currency) {
        let minor = a.to_minor().expect("a parsed amount fits DE4");
        assert_eq!(Amount::from_minor(minor, currency), a, "an amount survives minor units");
        let _ = a.to_string();
    }
}

fn amount_any(text: &str) {
    for c in &CONFIG.currencies {
        amount_in(text, c);
    }
}

fn token_field(text: &str) {
    if let Some(t) = TokenValue::parse(text) {
        assert!(!has_digit_run(&format!("{t:?}")), "a token shows only masked");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else { return };
    let sel = usize::from(sel.wrapping_sub(b'0')) % BODIES.len();
    match sel {
        0 => {
            let Some(v) = body::<Value>(bytes) else { return };
            for field in ["pan", "expiry", "max_amount", "amount", "face_value", "token", "type"] {
                if let Some(s) = v.get(field).and_then(Value::as_str) {
                    card_fields(s, s);
                    amount_any(s);
                    token_field(s);
                }
            }
        }
        1 => {
            // `instruments::create`: any JSON value, its text re-read for `type`, then for the kind.
            let Some(v) = body::<Value>(bytes) else { return };
            let text = v.to_string();
            let Some(instruments::Kind { kind }) = body(text.as_bytes()) else { return };
            match kind.as_str() {
                "card" => {
                    if let Some(c) = body::<instruments::NewCard>(text.as_bytes()) {
                        card_fields(&c.pan, &c.expiry);
                    }
                }
                "gift" => {
                    if let Some(g) = body::<instruments::NewGift>(text.as_bytes()) {
                        assert_eq!(tsp::stored_value::gift::code_hash(&g.code).len(), 64);
                    }
                }
                "local" => {
                    let _ = body::<instruments::NewLocal>(text.as_bytes());
                }
                _ => {}
            }
        }
        2 => {
            if let Some(c) = body::<instruments::NewCard>(bytes) {
                card_fields(&c.pan, &c.expiry);
            }
        }
        3 => {
            if let Some(c) = body::<instruments::ChargeBody>(bytes) {
                amount_any(&c.amount);
            }
        }
        4 => {
            let Some(b) = body::<tokens::IssueBody>(bytes) else { return };
            let currency = match &b.currency {
                Some(c) => CONFIG.currency(c),
                None => CONFIG.default_currency(),
            };
            if let (Some(text), Some(cur)) = (&b.max_amount, currency) {
                amount_in(text, cur);
            }
            let _ = b.ttl_seconds.map(|t| t.checked_mul(1000));
            let _ = b.entry_modes.map(|m| m.join(","));
        }
        5 => {
            if let Some(b) = body::<tokens::DetokenizeBody>(bytes) {
                token_field(&b.token);
            }
        }
        6 => {
            if let Some(b) = body::<admin::NewRequestorBody>(bytes) {
                let scopes: Option<Vec<Scope>> = b.scopes.iter().map(|s| Scope::parse(s)).collect();
                if let Some(scopes) = scopes {
                    assert!(scopes.iter().all(|s| Scope::parse(s.as_str()) == Some(*s)));
                }
                let _ = (b.name.len(), b.merchant_ids.len());
            }
        }
        7 => {
            let Some(b) = body::<admin::NewGiftBody>(bytes) else { return };
            if let Ok(t) = time::OffsetDateTime::parse(&b.expires_at, &time::format_description::well_known::Rfc3339) {
                // As `admin::issue_gift` converts it.
                let _ = (t.unix_timestamp_nanos() / 1_000_000) as i64;
            }
            if let Some(cur) = CONFIG.currency(&b.currency)
                && let Ok(face) = Amount::parse(&b.face_value, cur)
            {
                let entry = tsp::ledger::gift_issuance(tsp::ledger::EntryId::fresh(), cur, "gft_fuzz", face);
                assert!(entry.is_ok(), "a valid face value makes a balanced issuance");
            }
        }
        8 => {
            let Some(spec) = body::<RegionSpec>(bytes) else { return };
            match tsp::config::region_row(&spec, &CONFIG, 0) {
                Ok(row) => {
                    tsp::stored_value::wallet::policy(&row, &CONFIG).expect("a valid region row gives its policy");
                }
                Err(e) => check_domain_error(e),
            }
        }
        9 => {
            let _ = body::<admin::NewMerchantBody>(bytes).map(|m| (m.id.len(), m.name.len(), m.region.len()));
        }
        10 => {
            if let Some(b) = body::<merchant_tokens::MerchantTokenBody>(bytes) {
                card_fields(&b.pan, &b.expiry);
                let _ = b.merchant_id.len();
            }
        }
        11 => {
            let Some(b) = body::<terminal::TerminalPaymentBody>(bytes) else { return };
            // As `terminal::pay` reads them: a token number that is no card's, an amount in the
            // platform's currency.
            if let Some(t) = TokenValue::parse(b.token.trim()) {
                let _ = ISSUERS.for_pan(t.as_str()).is_none();
                token_field(t.as_str());
            }
            if let Some(cur) = CONFIG.default_currency() {
                amount_in(&b.amount, cur);
            }
            let _ = b.merchant_id.len();
        }
        _ => unreachable!("the selector is taken modulo BODIES.len()"),
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = tsp::luhn::complete(s);
        let _ = tsp::luhn::is_valid(s);
    }
});
