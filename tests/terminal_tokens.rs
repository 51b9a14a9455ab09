//! Terminals and VANs as token requestors (issue 9, docs/iso8583.md "Terminal tokenization"):
//! merchant tokens for the card a terminal reads, over ISO 8583 (`0100` DE3 `900000`, real-PAN
//! `0200`) and REST (`/v1/merchant-tokens`), against an issuer simulator this test controls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::Arc;

use common::TestServer;
use common::iso::Terminal;
use serde_json::{Value, json};
use tsp::iso8583::{Message, Mti};
use tsp::issuer::sim::Simulator;

const PAN: &str = "4111110000000013";
const M1: &str = "MERCHANT000001";
const M2: &str = "MERCHANT000002";

struct Rig {
    s: TestServer,
    sim: Arc<Simulator>,
}

async fn rig() -> Rig {
    let (s, sim) = common::with_tcp_issuer(|c| c).await;
    Rig { s, sim }
}

async fn terminal(s: &TestServer, id: &str, merchant: &str) -> Terminal {
    s.terminal_as(id, merchant).await
}

/// A `0100` tokenization request for the card `pan`.
fn tokenize_request(t: &mut Terminal, pan: &str, expiry: &str) -> Message {
    let mut m = t.purchase(pan, 0);
    m.set_mti(Mti::AUTHORIZATION_REQUEST);
    m.set_processing_code("900000").unwrap();
    m.set_expiry(expiry).unwrap();
    m.set_pos_entry_mode("051").unwrap();
    m
}

async fn tokenize(t: &mut Terminal, pan: &str, expiry: &str) -> Message {
    let req = tokenize_request(t, pan, expiry);
    t.call(&req).await
}

/// The merchant token in DE48 (`TK` + 2-digit length + token).
fn token_in(m: &Message) -> Option<String> {
    let de48 = m.additional_data()?;
    let rest = de48.strip_prefix("TK")?;
    let n: usize = rest.get(..2)?.parse().ok()?;
    let token = rest.get(2..2 + n)?;
    assert_eq!(rest.len(), 2 + n, "DE48 is exactly one TK element: {de48}");
    Some(token.to_string())
}

fn code(m: &Message) -> &str {
    m.response_code().unwrap_or("--")
}

#[tokio::test]
async fn iso_tokenization_pays_twice_at_its_merchant_not_elsewhere_and_refunds() {
    let Rig { s, sim } = rig().await;
    common::scan_for(PAN);
    let mut t1 = terminal(&s, "TTOK0001", M1).await;
    let mut t2 = terminal(&s, "TTOK0002", M2).await;

    let req = tokenize_request(&mut t1, PAN, "3012");
    let ans = t1.call(&req).await;
    assert_eq!((ans.mti(), code(&ans)), (Mti::AUTHORIZATION_RESPONSE, "00"));
    assert_eq!(ans.pan(), None, "the 0110 does not echo the card number");
    let token = token_in(&ans).expect("a merchant token in DE48");
    assert_eq!(token.len(), 16);
    assert_ne!(token, PAN);
    assert!(tsp::luhn::is_valid(&token));
    assert_eq!(sim.stats().received(Mti::AUTHORIZATION_REQUEST), 1, "verified with the issuer");
    assert_eq!(sim.used(PAN), 0, "a verification takes nothing");

    // The same card at the same merchant: the same token, however often; at another: another.
    for _ in 0..3 {
        let again = tokenize(&mut t1, PAN, "3012").await;
        assert_eq!(token_in(&again).as_deref(), Some(token.as_str()));
    }
    let other = tokenize(&mut t2, PAN, "3012").await;
    let other = token_in(&other).expect("a token at the other merchant");
    assert_ne!(other, token);

    // Multi-use at its merchant: two payments, both approved, the card charged twice.
    let p1 = t1.purchase(&token, 12_000);
    let a1 = t1.call(&p1).await;
    assert_eq!(code(&a1), "00");
    let p2 = t1.purchase(&token, 8_000);
    assert_eq!(code(&t1.call(&p2).await), "00");
    assert_eq!(sim.used(PAN), 20_000);
    // At another merchant it is not permitted, however often (and it does not lock).
    for _ in 0..6 {
        assert_eq!(code(&t2.pay(&token, 1_000).await), "57");
    }
    assert_eq!(code(&t1.pay(&token, 1_000).await), "00", "still good at its own merchant");
    // A refund of the first payment by DE90 goes to the issuer like any card's.
    let refund = t1.cancel(&p1, 12_000).await;
    assert_eq!(code(&refund), "00");
    assert_eq!(sim.used(PAN), 9_000);
    // A reversal of the second: the issuer gets its 0420 from the advice queue.
    assert_eq!(code(&t1.reverse(&p2).await), "00");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sim.used(PAN) != 1_000 {
        assert!(std::time::Instant::now() < deadline, "the 0420 reached the issuer: {}", sim.used(PAN));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // An issuer decline on verification gives its code and no token, and keeps nothing of the card.
    let blocked = common::card("555555", 604_917_382, 16);
    sim.set_blocked(&blocked, true);
    let ans = tokenize(&mut t1, &blocked, "3012").await;
    assert_eq!((code(&ans), token_in(&ans)), ("05", None));
    let db = s.database().await;
    let cards: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instruments WHERE last4 = $1")
        .bind(&blocked[12..])
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(cards, 0, "a declined card is not vaulted");
    // An expired card is refused before the issuer; a malformed request is 30.
    assert_eq!(code(&tokenize(&mut t1, PAN, "2001").await), "54");
    let mut no_merchant = tokenize_request(&mut t1, PAN, "3012");
    no_merchant.remove(42);
    assert_eq!(code(&t1.call(&no_merchant).await), "30");
    db.close().await;
}

#[tokio::test]
async fn a_real_pan_payment_answers_with_the_merchant_token_and_stores_no_pan() {
    let Rig { s, sim } = rig().await;
    let pan = common::card("424242", 739_182_645, 16);
    let pan = pan.as_str();
    let mut t = terminal(&s, "TPAN0001", M1).await;
    let mut pay = t.purchase(pan, 15_000);
    pay.set_expiry("3012").unwrap();
    pay.set_pos_entry_mode("051").unwrap();
    let ans = t.call(&pay).await;
    assert_eq!((ans.mti(), code(&ans)), (Mti::FINANCIAL_RESPONSE, "00"));
    assert_eq!(ans.pan(), None, "the 0210 does not echo the card number");
    assert!(ans.authorization_code().is_some());
    let token = token_in(&ans).expect("the merchant token in DE48");
    assert_eq!(sim.used(pan), 15_000, "the issuer authorized the real card");
    // The same token the 0100 gives for this card at this merchant, and it pays (card on file).
    let tok = tokenize(&mut t, pan, "3012").await;
    assert_eq!(token_in(&tok).as_deref(), Some(token.as_str()));
    assert_eq!(code(&t.pay(&token, 5_000).await), "00");
    // A repeat of the real-PAN request gets the first answer, not a second charge.
    let again = t.call(&pay).await;
    assert_eq!((code(&again), token_in(&again)), ("00", Some(token.clone())));
    assert_eq!(sim.used(pan), 20_000);
    // Declined by the issuer: its code, no token.
    // (A number whose middle digits are not mostly zeros: the suite's PAN scan looks for them in
    // /metrics, where a float's rounding tail such as `…0000000026` would match one by chance.)
    let blocked = common::card("424242", 318_046_275, 16);
    sim.set_blocked(&blocked, true);
    let mut declined = t.purchase(&blocked, 1_000);
    declined.set_expiry("3012").unwrap();
    let ans = t.call(&declined).await;
    assert_eq!((code(&ans), token_in(&ans), ans.pan()), ("05", None, None));

    // What is stored of the payment: the masked PAN and the token, never the number.
    let db = s.database().await;
    type Stored = (Option<String>, Option<String>, Option<String>, String);
    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT masked_pan, token_id, instrument_id, content_hash FROM transactions \
         WHERE kind = 'purchase' AND terminal_id = 'TPAN0001' AND stan = $1",
    )
    .bind(pay.stan().unwrap())
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let (masked, token_id, instrument_id, hash) = &rows[0];
    assert_eq!(masked.as_deref(), Some(format!("424242******{}", &pan[12..]).as_str()));
    assert!(token_id.is_some() && instrument_id.is_some());
    assert_ne!(hash.len(), 0);
    let blobs: Vec<Vec<u8>> = sqlx::query_scalar("SELECT response FROM transactions WHERE response IS NOT NULL")
        .fetch_all(&db)
        .await
        .unwrap();
    for b in &blobs {
        assert!(common::find(b, pan.as_bytes()).is_none(), "a stored answer holds the PAN");
        assert!(common::find(b, &pan.as_bytes()[6..12]).is_none(), "a stored answer holds its middle digits");
    }
    db.close().await;
}

async fn terminal_requestor(s: &TestServer, merchants: &[&str], scopes: &[&str]) -> (u16, Value) {
    s.post(
        &s.keys.admin,
        "/v1/admin/requestors",
        json!({ "name": "a VAN", "scopes": scopes, "merchant_ids": merchants }),
    )
    .await
}

#[tokio::test]
async fn rest_merchant_tokens_are_the_iso_ones_bound_to_the_callers_merchants() {
    let Rig { s, sim } = rig().await;
    let (st, van) = terminal_requestor(&s, &["VANSHOP0000001"], &["terminal", "instruments"]).await;
    assert_eq!(st, 201, "{van}");
    let key = van["api_key"].as_str().unwrap().to_string();
    // A merchant belongs to one terminal requestor; the scope needs merchants and merchants the scope.
    assert_eq!(terminal_requestor(&s, &["VANSHOP0000001"], &["terminal"]).await.0, 409);
    assert_eq!(terminal_requestor(&s, &[], &["terminal"]).await.0, 422);
    assert_eq!(terminal_requestor(&s, &["X1"], &["tokens"]).await.0, 422);

    let card = common::card("555555", 271_839_046, 16);
    let pan = card.as_str();
    let body = json!({ "pan": pan, "expiry": "3012", "merchant_id": "VANSHOP0000001" });
    let (st, t) = s.post(&key, "/v1/merchant-tokens", body.clone()).await;
    assert_eq!(st, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_string();
    assert_eq!(t["masked_pan"], format!("555555******{}", &pan[12..]));
    assert!(!t.to_string().contains(pan));
    let (_, again) = s.post(&key, "/v1/merchant-tokens", body.clone()).await;
    assert_eq!(again["token"], token.as_str(), "one token per card and merchant");
    // The ISO 8583 path gives the very same token.
    let mut term = terminal(&s, "TVAN0001", "VANSHOP0000001").await;
    let iso = tokenize(&mut term, pan, "3012").await;
    assert_eq!(token_in(&iso).as_deref(), Some(token.as_str()));

    // Another merchant's tokens are not this key's to ask for; other scopes are not enough.
    let (st, e) = s.post(&key, "/v1/merchant-tokens", json!({ "pan": pan, "expiry": "3012", "merchant_id": M1 })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("merchant_not_bound")));
    let (st, _) = s.post(&s.keys.app, "/v1/merchant-tokens", body.clone()).await;
    assert_eq!(st, 403);
    // Bad input, and an issuer decline.
    let (st, e) = s
        .post(
            &key,
            "/v1/merchant-tokens",
            json!({ "pan": "4111111111111112", "expiry": "3012", "merchant_id": "VANSHOP0000001" }),
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("pan_luhn")));
    sim.set_blocked("5555550000000036", true);
    let (st, e) = s
        .post(
            &key,
            "/v1/merchant-tokens",
            json!({ "pan": "5555550000000036", "expiry": "3012", "merchant_id": "VANSHOP0000001" }),
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("issuer_declined")));

    // The card's lifecycle: its terminal requestor suspends the card, and the token stops.
    assert_eq!(code(&term.pay(&token, 3_000).await), "00");
    let instrument = t["instrument_id"].as_str().unwrap();
    let (st, _) = s.post(&key, &format!("/v1/instruments/{instrument}/suspend"), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!(code(&term.pay(&token, 3_000).await), "62");
    let (st, e) = s.post(&key, "/v1/merchant-tokens", body.clone()).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("instrument_suspended")));
    let (st, _) = s.post(&key, &format!("/v1/instruments/{instrument}/resume"), json!({})).await;
    assert_eq!(st, 200);
    // Resumed, the card gets a new merchant token (the suspension revoked the old one for good).
    let (st, fresh) = s.post(&key, "/v1/merchant-tokens", body.clone()).await;
    assert_eq!(st, 201);
    let fresh = fresh["token"].as_str().unwrap().to_string();
    assert_ne!(fresh, token);
    assert_eq!(code(&term.pay(&fresh, 3_000).await), "00");

    // DELETE ends it; a payment with it is then refused, and the next request makes a new one.
    let (st, _) = s.delete(&key, &format!("/v1/merchant-tokens/{fresh}")).await;
    assert_eq!(st, 200);
    assert_ne!(code(&term.pay(&fresh, 3_000).await), "00");
    let (st, _) = s.delete(&key, &format!("/v1/merchant-tokens/{fresh}")).await;
    assert_eq!(st, 404);
    let (_, newer) = s.post(&key, "/v1/merchant-tokens", body).await;
    assert_ne!(newer["token"].as_str().unwrap(), fresh);
}

#[tokio::test]
async fn an_independent_pyiso8583_terminal_tokenizes_and_pays_with_the_token() {
    let s = TestServer::start().await;
    s.register_terminal("PYTERM02", "PYMERCHANT00002").await;
    let (host, port) = s.iso.rsplit_once(':').unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyiso_tokenize.py");
    let (host, port) = (host.to_string(), port.to_string());
    let card = common::card("411111", 583_104_726, 16);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args([script, &host, &port, &card, "3012", "PYMERCHANT00002"]).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pyiso8583 client: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((v["tokenize_mti"].as_str(), v["tokenize"].as_str()), (Some("0110"), Some("00")), "{v}");
    assert_eq!(v["tokenize_has_de2"], false, "{v}");
    let token = v["token"].as_str().unwrap();
    assert_eq!(v["de48"].as_str().unwrap(), format!("TK{}{token}", token.len()));
    assert_eq!((v["purchase_mti"].as_str(), v["purchase"].as_str()), (Some("0210"), Some("00")), "{v}");
}
