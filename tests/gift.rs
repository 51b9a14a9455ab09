//! Gift certificates end to end: operator issuance, registration by code to one wallet, payments
//! over ISO 8583 against the balance, exact cancels, reversals, expiry and the refundable balance,
//! concurrency — and afterwards the ledger in the database balances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::time::Duration;

use common::iso::Terminal;
use common::{TestServer, audit_ledger};
use serde_json::{Value, json};

fn code(m: &tsp::iso8583::Message) -> String {
    m.response_code().unwrap_or("--").to_string()
}

async fn issue(s: &TestServer, face: &str, ttl: Duration) -> Value {
    let expires = time::OffsetDateTime::now_utc() + ttl;
    let at = expires.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (st, g) = s
        .post(
            &s.keys.admin,
            "/v1/admin/gift-certificates",
            json!({ "face_value": face, "currency": "KRW", "expires_at": at }),
        )
        .await;
    assert_eq!(st, 201, "{g}");
    g
}

async fn register(s: &TestServer, key: &str, code: &str) -> (u16, Value) {
    s.post(key, "/v1/instruments", json!({ "type": "gift", "code": code })).await
}

async fn token(s: &TestServer, ins: &str) -> String {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins })).await;
    assert_eq!(st, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

async fn balance(s: &TestServer, ins: &str) -> Value {
    let (st, b) = s.get(&s.keys.app, &format!("/v1/instruments/{ins}/balance")).await;
    assert_eq!(st, 200, "{b}");
    b
}

#[tokio::test]
async fn issue_register_pay_cancel_reverse_and_refund() {
    let s = TestServer::start().await;
    let g = issue(&s, "50000", Duration::from_secs(86_400)).await;
    let code_text = g["code"].as_str().unwrap();
    assert_eq!(code_text.len(), 19);
    assert_eq!(g["balance"], "50000");

    // A code registers to one wallet only.
    let (st, ins) = register(&s, &s.keys.app, code_text).await;
    assert_eq!(st, 201, "{ins}");
    assert_eq!(ins["type"], "gift");
    let id = ins["id"].as_str().unwrap().to_string();
    let (st, again) = register(&s, &s.keys.app, &code_text.to_lowercase()).await;
    assert_eq!((st, again["id"].as_str()), (200, Some(id.as_str())));
    let (_, other) =
        s.post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": "other", "scopes": ["instruments"] })).await;
    let (st, e) = register(&s, other["api_key"].as_str().unwrap(), code_text).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("gift_registered")));
    let (st, e) = register(&s, &s.keys.app, "AAAA-BBBB-CCCC-DDDD").await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("code_unknown")));

    let b = balance(&s, &id).await;
    assert_eq!(
        (b["principal"].as_str(), b["bonus"].as_str(), b["refundable"].as_str(), b["currency"].as_str()),
        (Some("50000"), Some("0"), Some("0"), Some("KRW"))
    );

    // Tokens come from the platform's range; detokenize has no PAN to give.
    let tok = token(&s, &id).await;
    assert!(tok.starts_with("990001"), "{tok}");
    let (st, e) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("not_a_card")));

    let mut term = Terminal::connect(&s.iso).await;
    let pay = term.purchase(&tok, 20_000);
    let ans = term.call(&pay).await;
    assert_eq!(code(&ans), "00");
    assert_eq!(ans.authorization_code().map(str::len), Some(6));
    assert_eq!(balance(&s, &id).await["principal"], "30000");
    // Above the balance: 51, and nothing moves.
    assert_eq!(code(&term.pay(&token(&s, &id).await, 40_000).await), "51");
    assert_eq!(balance(&s, &id).await["principal"], "30000");

    // Cancels restore exactly the cancelled amount, up to the payment.
    assert_eq!(code(&term.cancel(&pay, 5_000).await), "00");
    assert_eq!(balance(&s, &id).await["principal"], "35000");
    assert_eq!(code(&term.cancel(&pay, 16_000).await), "64");
    assert_eq!(code(&term.cancel(&pay, 15_000).await), "00");
    assert_eq!(balance(&s, &id).await["principal"], "50000");

    // A reversal restores what the payment took; a second changes nothing.
    let pay2 = term.purchase(&token(&s, &id).await, 10_000);
    assert_eq!(code(&term.call(&pay2).await), "00");
    assert_eq!(balance(&s, &id).await["principal"], "40000");
    assert_eq!(code(&term.reverse(&pay2).await), "00");
    assert_eq!(balance(&s, &id).await["principal"], "50000");
    assert_eq!(code(&term.reverse(&pay2).await), "00");
    assert_eq!(balance(&s, &id).await["principal"], "50000");
    // A reversed payment cannot be cancelled.
    assert_eq!(code(&term.cancel(&pay2, 1_000).await), "12");

    // Once 60 % is used, the balance is refundable.
    assert_eq!(code(&term.pay(&token(&s, &id).await, 31_000).await), "00");
    let b = balance(&s, &id).await;
    assert_eq!((b["principal"].as_str(), b["refundable"].as_str()), (Some("19000"), Some("19000")));

    let (_, txns) = s.get(&s.keys.app, &format!("/v1/transactions?instrument_id={id}")).await;
    assert!(txns["items"].as_array().unwrap().iter().all(|t| t["instrument_kind"] == "gift"));
    audit_ledger(&s).await;
}

#[tokio::test]
async fn after_expiry_not_spendable_but_cancels_restore_to_the_refundable_balance() {
    let s = TestServer::start().await;
    let g = issue(&s, "12345", Duration::from_secs(3)).await;
    let (_, ins) = register(&s, &s.keys.app, g["code"].as_str().unwrap()).await;
    let id = ins["id"].as_str().unwrap().to_string();
    let mut term = Terminal::connect(&s.iso).await;
    let pay = term.purchase(&token(&s, &id).await, 2_345);
    assert_eq!(code(&term.call(&pay).await), "00");
    let late = token(&s, &id).await;
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(code(&term.pay(&late, 100).await), "54", "an expired certificate is not spendable");
    // A cancel after expiry restores the amount; it joins what a refund would pay (90 %).
    assert_eq!(code(&term.cancel(&pay, 2_345).await), "00");
    let b = balance(&s, &id).await;
    assert_eq!((b["principal"].as_str(), b["refundable"].as_str()), (Some("12345"), Some("11110")));
    audit_ledger(&s).await;
}

#[tokio::test]
async fn concurrent_payments_and_cancels_on_one_certificate() {
    let s = TestServer::start().await;
    let g = issue(&s, "10000", Duration::from_secs(86_400)).await;
    let (_, ins) = register(&s, &s.keys.app, g["code"].as_str().unwrap()).await;
    let id = ins["id"].as_str().unwrap().to_string();
    let mut tokens = Vec::new();
    for _ in 0..24 {
        tokens.push(token(&s, &id).await);
    }
    // 24 payments of 1,000 at once on 8 connections: at most 10 fit.
    let mut tasks = Vec::new();
    for i in 0..tokens.chunks(3).len() {
        s.register_terminal(&format!("CONC{i:04}"), "MERCHANT000001").await;
    }
    for (i, chunk) in tokens.chunks(3).enumerate() {
        let (addr, chunk) = (s.iso.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut t = Terminal::connect(&addr).await;
            t.terminal_id = format!("CONC{i:04}");
            let mut out = Vec::new();
            for tok in chunk {
                let req = t.purchase(&tok, 1_000);
                let ans = t.call(&req).await;
                out.push((req, ans.response_code().unwrap().to_string(), t.terminal_id.clone()));
            }
            out
        }));
    }
    let mut approved = Vec::new();
    for task in tasks {
        for (req, c, term_id) in task.await.unwrap() {
            assert!(c == "00" || c == "51", "{c}");
            if c == "00" {
                approved.push((req, term_id));
            }
        }
    }
    assert_eq!(approved.len(), 10, "exactly what the balance allows");
    assert_eq!(balance(&s, &id).await["principal"], "0");

    // Cancel every approved payment at once, twice over (the second time each is 64).
    let mut tasks = Vec::new();
    for (n, (req, term_id)) in approved.into_iter().enumerate() {
        let addr = s.iso.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Terminal::connect(&addr).await;
            t.terminal_id = term_id;
            // Each task its own STANs: the same terminal must not reuse one with other content.
            t.stan = 1000 * (n as u32 + 1);
            let first = t.cancel(&req, 1_000).await.response_code().unwrap().to_string();
            let second = t.cancel(&req, 1_000).await.response_code().unwrap().to_string();
            (first, second)
        }));
    }
    let mut restored = 0;
    for task in tasks {
        let (first, second) = task.await.unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("00", "64"));
        restored += 1;
    }
    assert_eq!(restored, 10);
    assert_eq!(balance(&s, &id).await["principal"], "10000");
    audit_ledger(&s).await;
}

#[tokio::test]
async fn an_expired_certificate_gets_no_token() {
    let s = TestServer::start().await;
    let g = issue(&s, "10000", Duration::from_secs(2)).await;
    let (_, ins) = register(&s, &s.keys.app, g["code"].as_str().unwrap()).await;
    let id = ins["id"].as_str().unwrap().to_string();
    token(&s, &id).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (st, body) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": id })).await;
    assert_eq!(st, 409, "a token for an expired certificate: {body}");
    assert_eq!(body["error"]["code"], "instrument_expired", "{body}");
}
