//! The REST API's body parsing and the card fields it validates: any bytes give a value or a
//! 4xx-style error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsp::api::extract::parse_json;
use tsp::money::{Amount, Currency};
use tsp::tokens::TokenValue;
use tsp::vault::{CardExpiry, Pan};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = parse_json::<serde_json::Value>(data) {
        for field in ["pan", "expiry", "max_amount", "token", "type"] {
            if let Some(s) = v.get(field).and_then(|x| x.as_str()) {
                let _ = Pan::parse(s).map(|p| p.masked());
                let _ = CardExpiry::parse(s).map(|e| e.is_past(0));
                let krw = Currency { code: "KRW".into(), numeric: "410".into(), scale: 0 };
                let usd = Currency { code: "USD".into(), numeric: "840".into(), scale: 2 };
                let _ = Amount::parse(s, &krw).map(|a| a.to_minor());
                let _ = Amount::parse(s, &usd).map(|a| a.to_string());
                let _ = TokenValue::parse(s).map(|t| format!("{t:?}"));
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tsp::luhn::complete(s);
        let _ = tsp::luhn::is_valid(s);
    }
});
