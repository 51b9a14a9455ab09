//! Local currency (지역화폐) end to end, through the real binary: regions and merchants by the admin
//! API, wallets per region, charges with the monthly bonus cap, payments over ISO 8583 only at the
//! region's merchants (bonus first), cancels by each restore policy with forfeiture of expired bonus,
//! void vs refund around a settlement, reversals, concurrency — and afterwards the ledger audit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::time::Duration;

use common::iso::Terminal;
use common::{TestServer, audit_ledger};
use serde_json::{Value, json};

/// DE42 is 15 characters, space-padded.
fn de42(id: &str) -> String {
    format!("{id:<15}")
}

fn code(m: &tsp::iso8583::Message) -> String {
    m.response_code().unwrap_or("--").to_string()
}

async fn region(s: &TestServer, id: &str, restore: &str, lifetime: i64, merchants: &[&str]) {
    let merchants: Vec<Value> = merchants.iter().map(|m| json!({ "id": m, "name": format!("shop {m}") })).collect();
    let (st, r) = s
        .post(
            &s.keys.admin,
            "/v1/admin/regions",
            json!({
                "id": id, "name": format!("region {id}"), "currency": "KRW", "incentive_rate": "0.10",
                "monthly_bonus_cap": "100000", "bonus_lifetime_seconds": lifetime, "cancel_restore": restore,
                "merchants": merchants,
            }),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    assert_eq!((r["cancel_restore"].as_str(), r["monthly_bonus_cap"].as_str()), (Some(restore), Some("100000")));
}

async fn wallet(s: &TestServer, region: &str) -> String {
    let (st, w) = s.post(&s.keys.app, "/v1/instruments", json!({ "type": "local", "region": region })).await;
    assert_eq!(st, 201, "{w}");
    assert_eq!((w["type"].as_str(), w["region"].as_str()), (Some("local"), Some(region)));
    w["id"].as_str().unwrap().to_string()
}

async fn charge(s: &TestServer, id: &str, amount: &str) -> Value {
    let (st, c) = s.post(&s.keys.app, &format!("/v1/instruments/{id}/charge"), json!({ "amount": amount })).await;
    assert_eq!(st, 201, "{c}");
    c
}

async fn token(s: &TestServer, ins: &str) -> String {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins })).await;
    assert_eq!(st, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

/// (principal, bonus, refundable) as the balance endpoint shows them.
async fn balance(s: &TestServer, ins: &str) -> (String, String, String) {
    let (st, b) = s.get(&s.keys.app, &format!("/v1/instruments/{ins}/balance")).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["currency"], "KRW");
    let f = |k: &str| b[k].as_str().unwrap().to_string();
    (f("principal"), f("bonus"), f("refundable"))
}

fn bal(p: &str, b: &str) -> (String, String, String) {
    (p.into(), b.into(), p.into())
}

/// The transaction the response `ans` recorded (matched by STAN), as `GET /v1/transactions` shows it.
async fn txn_of(s: &TestServer, ins: &str, ans: &tsp::iso8583::Message) -> Value {
    let (_, txns) = s.get(&s.keys.app, &format!("/v1/transactions?instrument_id={ins}")).await;
    let stan = ans.stan().unwrap();
    txns["items"].as_array().unwrap().iter().find(|t| t["stan"] == stan).cloned().unwrap()
}

fn split(t: &Value) -> (String, String, String) {
    let f = |k: &str| t[k].as_str().unwrap_or("-").to_string();
    (f("principal"), f("bonus"), f("forfeited"))
}

#[tokio::test]
async fn regions_wallets_charges_and_validation() {
    let s = TestServer::start().await;
    // The demo config seeds two regions with their merchants.
    let (st, regions) = s.get(&s.keys.admin, "/v1/admin/regions").await;
    assert_eq!(st, 200);
    let items = regions["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{regions}");
    assert!(items.iter().all(|r| r["merchants"].as_array().unwrap().len() == 2));
    let (st, _) = s.get(&s.keys.app, "/v1/admin/regions").await;
    assert_eq!(st, 403, "the admin scope is needed");

    let bad = |patch: Value| {
        let mut body = json!({ "id": "r1", "name": "R", "currency": "KRW", "incentive_rate": "0.10",
            "monthly_bonus_cap": "100000", "bonus_lifetime_seconds": 60 });
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (patch, code) in [
        (json!({ "incentive_rate": "1.5" }), "incentive_rate_invalid"),
        (json!({ "incentive_rate": "ten" }), "incentive_rate_invalid"),
        (json!({ "currency": "XXX" }), "currency_unknown"),
        (json!({ "monthly_bonus_cap": "-1" }), "monthly_bonus_cap_invalid"),
        (json!({ "bonus_lifetime_seconds": 0 }), "bonus_lifetime_seconds_invalid"),
        (json!({ "cancel_restore": "random" }), "cancel_restore_invalid"),
        (json!({ "id": "has space" }), "id_invalid"),
    ] {
        let (st, e) = s.post(&s.keys.admin, "/v1/admin/regions", bad(patch.clone())).await;
        assert_eq!((st, e["error"]["code"].as_str()), (422, Some(code)), "{patch}");
    }
    let (st, e) =
        s.post(&s.keys.admin, "/v1/admin/merchants", json!({ "id": "M1", "name": "m", "region": "nowhere" })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("region_unknown")));
    let (st, e) = s
        .post(
            &s.keys.admin,
            "/v1/admin/merchants",
            json!({ "id": "SIXTEEN-CHARS-XX", "name": "m", "region": "seoul-gangnam" }),
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("id_invalid")), "DE42 holds 15 characters");
    let (st, m) = s
        .post(
            &s.keys.admin,
            "/v1/admin/merchants",
            json!({ "id": "GN-NEW-0003", "name": "New", "region": "seoul-gangnam" }),
        )
        .await;
    assert_eq!((st, m["region"].as_str()), (201, Some("seoul-gangnam")));
    let (_, ms) = s.get(&s.keys.admin, "/v1/admin/merchants?region=seoul-gangnam").await;
    assert_eq!(ms["items"].as_array().unwrap().len(), 3);

    // One wallet per requestor and region.
    let id = wallet(&s, "seoul-gangnam").await;
    let (st, again) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "local", "region": "seoul-gangnam" })).await;
    assert_eq!((st, again["id"].as_str()), (200, Some(id.as_str())));
    let (st, e) = s.post(&s.keys.app, "/v1/instruments", json!({ "type": "local", "region": "mars" })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("region_unknown")));
    assert_eq!(balance(&s, &id).await, bal("0", "0"));

    // 10 % bonus on the first 500,000 charged in a calendar month.
    let c = charge(&s, &id, "300000").await;
    assert_eq!((c["principal"].as_str(), c["bonus"].as_str()), (Some("300000"), Some("30000")));
    assert!(c["bonus_expires_at"].is_string());
    let c = charge(&s, &id, "300000").await;
    assert_eq!(c["bonus"], "20000", "only 200,000 of it is within the month's cap");
    let c = charge(&s, &id, "1000").await;
    assert_eq!(c["bonus"], "0");
    assert_eq!(balance(&s, &id).await, bal("601000", "50000"));

    for (body, code) in [
        (json!({ "amount": "0" }), "amount_invalid"),
        (json!({ "amount": "10.5" }), "amount_invalid"),
        (json!({ "amount": "abc" }), "amount_invalid"),
    ] {
        let (st, e) = s.post(&s.keys.app, &format!("/v1/instruments/{id}/charge"), body.clone()).await;
        assert_eq!((st, e["error"]["code"].as_str()), (422, Some(code)), "{body}");
    }
    let (st, _) = s.post(&s.keys.app, &format!("/v1/instruments/{id}/charge"), json!({ "amt": "1" })).await;
    assert!((400..500).contains(&st));
    // Another requestor cannot see or charge the wallet; a suspended wallet cannot be charged.
    let (_, other) =
        s.post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": "other", "scopes": ["instruments"] })).await;
    let (st, _) = s
        .post(other["api_key"].as_str().unwrap(), &format!("/v1/instruments/{id}/charge"), json!({ "amount": "1" }))
        .await;
    assert_eq!(st, 404);
    let (st, _) = s.post(&s.keys.app, &format!("/v1/instruments/{id}/suspend"), json!({})).await;
    assert_eq!(st, 200);
    let (st, e) = s.post(&s.keys.app, &format!("/v1/instruments/{id}/charge"), json!({ "amount": "1" })).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("instrument_suspended")));
    assert_eq!(balance(&s, &id).await, bal("601000", "50000"), "nothing moved");
    audit_ledger(&s).await;
}

#[tokio::test]
async fn pay_cancel_reverse_with_the_reverse_policy() {
    let s = TestServer::start().await;
    region(&s, "rev", "reverse", 86_400, &["REV-SHOP-1"]).await;
    region(&s, "far", "reverse", 86_400, &["FAR-SHOP-1"]).await;
    let id = wallet(&s, "rev").await;
    charge(&s, &id, "50000").await;
    assert_eq!(balance(&s, &id).await, bal("50000", "5000"));

    // Elsewhere: 57, and nothing moves (a merchant of no region too).
    let mut far = s.terminal_as("FAR00001", "FAR-SHOP-1").await;
    assert_eq!(code(&far.pay(&token(&s, &id).await, 1_000).await), "57");
    let mut nowhere = s.terminal_as("NOWHERE1", "NOWHERE").await;
    assert_eq!(code(&nowhere.pay(&token(&s, &id).await, 1_000).await), "57");
    assert_eq!(balance(&s, &id).await, bal("50000", "5000"));

    // Bonus first, then principal; the payment records its split.
    let mut term = s.terminal_as("REV00001", "REV-SHOP-1").await;
    let tok = token(&s, &id).await;
    assert!(tok.starts_with("990001"), "{tok}");
    let pay = term.purchase(&tok, 12_000);
    let ans = term.call(&pay).await;
    assert_eq!(code(&ans), "00");
    assert_eq!(ans.authorization_code().map(str::len), Some(6));
    assert_eq!(balance(&s, &id).await, bal("43000", "0"));
    let t = txn_of(&s, &id, &ans).await;
    assert_eq!((t["kind"].as_str(), t["instrument_kind"].as_str()), (Some("purchase"), Some("local")));
    assert_eq!(split(&t), ("7000".into(), "5000".into(), "-".into()));
    // The token was one-time.
    assert_eq!(code(&term.pay(&tok, 100).await), "78");
    // More than principal + bonus: 51.
    assert_eq!(code(&term.pay(&token(&s, &id).await, 43_001).await), "51");

    // Two partial cancels: principal comes back first, then bonus; then 64 past what is left.
    let c1 = term.cancel(&pay, 4_000).await;
    assert_eq!(code(&c1), "00");
    assert_eq!(balance(&s, &id).await, bal("47000", "0"));
    let t = txn_of(&s, &id, &c1).await;
    assert_eq!((t["kind"].as_str(), t["cancel_type"].as_str()), (Some("cancel"), Some("void")));
    assert_eq!(split(&t), ("4000".into(), "0".into(), "0".into()));
    let c2 = term.cancel(&pay, 5_000).await;
    assert_eq!(code(&c2), "00");
    assert_eq!(balance(&s, &id).await, bal("50000", "2000"));
    assert_eq!(split(&txn_of(&s, &id, &c2).await), ("3000".into(), "2000".into(), "0".into()));
    assert_eq!(code(&term.cancel(&pay, 3_001).await), "64");
    assert_eq!(code(&term.cancel(&pay, 3_000).await), "00");
    assert_eq!(balance(&s, &id).await, bal("50000", "5000"), "a full cancel restores the exact split");
    assert_eq!(code(&term.cancel(&pay, 1).await), "64");

    // Void in the payment's business day, refund after the day is settled.
    let pay2 = term.purchase(&token(&s, &id).await, 1_000);
    assert_eq!(code(&term.call(&pay2).await), "00");
    let (st, _) = s.post(&s.keys.admin, "/v1/admin/settlements", json!({})).await;
    assert_eq!(st, 201);
    let c = term.cancel(&pay2, 1_000).await;
    assert_eq!(code(&c), "00");
    assert_eq!(txn_of(&s, &id, &c).await["cancel_type"], "refund");
    let pay3 = term.purchase(&token(&s, &id).await, 1_000);
    assert_eq!(code(&term.call(&pay3).await), "00");
    let c = term.cancel(&pay3, 1_000).await;
    assert_eq!(txn_of(&s, &id, &c).await["cancel_type"], "void");
    assert_eq!(balance(&s, &id).await, bal("50000", "5000"));

    // A reversal restores exactly what the payment took, also after a partial cancel; a second
    // reversal changes nothing; a reversed payment cannot be cancelled (12).
    let pay4 = term.purchase(&token(&s, &id).await, 8_000);
    assert_eq!(code(&term.call(&pay4).await), "00");
    assert_eq!(balance(&s, &id).await, bal("47000", "0"));
    assert_eq!(code(&term.cancel(&pay4, 2_000).await), "00");
    assert_eq!(balance(&s, &id).await, bal("49000", "0"));
    let r = term.reverse(&pay4).await;
    assert_eq!(code(&r), "00");
    assert_eq!(balance(&s, &id).await, bal("50000", "5000"));
    assert_eq!(split(&txn_of(&s, &id, &r).await), ("1000".into(), "5000".into(), "0".into()));
    assert_eq!(code(&term.reverse(&pay4).await), "00");
    assert_eq!(balance(&s, &id).await, bal("50000", "5000"));
    assert_eq!(code(&term.cancel(&pay4, 1_000).await), "12");
    // A local cancel is final: its reversal is 12 and moves nothing.
    let pay5 = term.purchase(&token(&s, &id).await, 3_000);
    assert_eq!(code(&term.call(&pay5).await), "00");
    let mut cancel5 = term.reversal_of(&pay5);
    cancel5 = {
        let mut m = tsp::iso8583::Message::new(tsp::iso8583::Mti::FINANCIAL_REQUEST);
        for (de, v) in cancel5.fields() {
            m.set(de, v).unwrap();
        }
        m.set_processing_code("200000").unwrap();
        m.set_amount(1_000).unwrap();
        m
    };
    assert_eq!(code(&term.call(&cancel5).await), "00");
    assert_eq!(code(&term.reverse(&cancel5).await), "12");
    // 3,000 came all from bonus (5,000 left), and 1,000 of it went back.
    assert_eq!(balance(&s, &id).await, bal("50000", "3000"));
    audit_ledger(&s).await;
}

#[tokio::test]
async fn pro_rata_cancels_and_expired_bonus_is_forfeited() {
    let s = TestServer::start().await;
    region(&s, "pro", "pro_rata", 3, &["PRO-SHOP-1"]).await;
    let id = wallet(&s, "pro").await;
    charge(&s, &id, "10000").await;
    assert_eq!(balance(&s, &id).await, bal("10000", "1000"));
    let mut term = s.terminal_as("PRO00001", "PRO-SHOP-1").await;
    let pay = term.purchase(&token(&s, &id).await, 3_000);
    assert_eq!(code(&term.call(&pay).await), "00");
    assert_eq!(balance(&s, &id).await, bal("8000", "0"));
    // Pro rata: 1,500 of a 2,000 + 1,000 payment gives back 1,000 principal and 500 bonus.
    let c1 = term.cancel(&pay, 1_500).await;
    assert_eq!(code(&c1), "00");
    assert_eq!(split(&txn_of(&s, &id, &c1).await), ("1000".into(), "500".into(), "0".into()));
    assert_eq!(balance(&s, &id).await, bal("9000", "500"));
    let late = token(&s, &id).await;

    // The bonus expires: it is no longer spendable, and a cancel now forfeits the bonus share.
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    assert_eq!(balance(&s, &id).await, bal("9000", "0"));
    assert_eq!(code(&term.pay(&late, 9_001).await), "51", "expired bonus cannot pay");
    let c2 = term.cancel(&pay, 1_500).await;
    assert_eq!(code(&c2), "00");
    assert_eq!(split(&txn_of(&s, &id, &c2).await), ("1000".into(), "0".into(), "500".into()));
    assert_eq!(balance(&s, &id).await, bal("10000", "0"));
    assert_eq!(code(&term.cancel(&pay, 1).await), "64");
    let (_, b) = s.get(&s.keys.app, &format!("/v1/instruments/{id}/balance")).await;
    assert_eq!(b["bonus_grants"].as_array().unwrap().len(), 0);
    audit_ledger(&s).await;
}

#[tokio::test]
async fn concurrent_payments_and_cancels_on_one_wallet() {
    let s = TestServer::start().await;
    region(&s, "busy", "reverse", 86_400, &["BUSY-SHOP-1"]).await;
    let id = wallet(&s, "busy").await;
    charge(&s, &id, "10000").await; // 10,000 principal + 1,000 bonus
    let mut tokens = Vec::new();
    for _ in 0..24 {
        tokens.push(token(&s, &id).await);
    }
    let mut tasks = Vec::new();
    for i in 0..tokens.chunks(3).len() {
        s.register_terminal(&format!("LOCL{i:04}"), "BUSY-SHOP-1").await;
    }
    for (i, chunk) in tokens.chunks(3).enumerate() {
        let (addr, chunk) = (s.iso.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut t = Terminal::connect(&addr).await;
            t.terminal_id = format!("LOCL{i:04}");
            t.merchant_id = de42("BUSY-SHOP-1");
            let mut out = Vec::new();
            for tok in chunk {
                let req = t.purchase(&tok, 1_000);
                let ans = t.call(&req).await;
                out.push((req, code(&ans), t.terminal_id.clone()));
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
    assert_eq!(approved.len(), 11, "11,000 buys exactly eleven 1,000 payments");
    assert_eq!(balance(&s, &id).await, bal("0", "0"));
    // Every approved payment cancelled at once, each twice: exactly one of each pair is approved.
    let mut tasks = Vec::new();
    for (n, (req, term_id)) in approved.into_iter().enumerate() {
        for k in 0..2u32 {
            let (addr, req, term_id) = (s.iso.clone(), req.clone(), term_id.clone());
            tasks.push(tokio::spawn(async move {
                let mut t = Terminal::connect(&addr).await;
                t.terminal_id = term_id;
                // Each cancel its own STAN: the same terminal must not reuse one with other content.
                t.stan = 1000 * (2 * n as u32 + k + 1);
                t.merchant_id = de42("BUSY-SHOP-1");
                code(&t.cancel(&req, 1_000).await)
            }));
        }
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| *c == "00").count(), 11, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| *c == "64").count(), 11, "{codes:?}");
    assert_eq!(balance(&s, &id).await, bal("10000", "1000"));
    audit_ledger(&s).await;
}

/// One token sent in four payments at once among twenty others on the same wallet: the wallet's
/// node writes whatever arrives together as one batch, and the database's guard on the spent token
/// refuses only the payments that reuse it; every other payment of the batch stands.
#[tokio::test]
async fn a_spent_token_in_a_busy_batch_is_refused_alone() {
    let s = TestServer::start().await;
    region(&s, "batch", "reverse", 86_400, &["BATCH-SHOP-1"]).await;
    let id = wallet(&s, "batch").await;
    charge(&s, &id, "100000").await; // 100,000 principal + 10,000 bonus
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(token(&s, &id).await);
    }
    let mut sends: Vec<String> = tokens.clone();
    sends.extend(std::iter::repeat_n(tokens[0].clone(), 3));
    let mut terminals = Vec::new();
    for i in 0..sends.len() {
        terminals.push(s.terminal_as(&format!("BTCH{i:04}"), "BATCH-SHOP-1").await);
    }
    let mut tasks = Vec::new();
    for (mut t, tok) in terminals.into_iter().zip(sends.clone()) {
        tasks.push(tokio::spawn(async move {
            let req = t.purchase(&tok, 1_000);
            code(&t.call(&req).await)
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let reused: Vec<&String> = sends.iter().zip(&codes).filter(|(t, _)| **t == tokens[0]).map(|(_, c)| c).collect();
    assert_eq!(reused.len(), 4);
    assert_eq!(reused.iter().filter(|c| **c == "00").count(), 1, "one token pays once: {reused:?}");
    let others = sends.iter().zip(&codes).filter(|(t, _)| **t != tokens[0]);
    assert!(others.clone().all(|(_, c)| c == "00"), "{codes:?}");
    assert_eq!(codes.iter().filter(|c| *c == "00").count(), 20);
    // Bonus first: 10,000 of bonus, then 10,000 of principal.
    assert_eq!(balance(&s, &id).await, bal("90000", "0"));
    audit_ledger(&s).await;
}

/// The database's balance guard stays the second line behind the lane: with the ledger holding less
/// than the node's wallet says (300 of principal taken from under it), ten payments decided together
/// post until the account is empty; the one that finds it short is refused, those after it are
/// decided again from a fresh read and refused too, and what was written stands.
#[tokio::test]
async fn the_ledger_refuses_what_a_batch_overspends_and_keeps_what_fits() {
    let s = TestServer::start().await;
    region(&s, "short", "reverse", 86_400, &["SHORT-SHOP-1"]).await;
    let id = wallet(&s, "short").await;
    charge(&s, &id, "1000").await; // 1,000 principal + 100 bonus, as the node holds it
    let pool = s.database().await;
    let r = sqlx::query("UPDATE ledger_accounts SET balance = 300 WHERE id = $1")
        .bind(format!("wallet:{id}:principal"))
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(token(&s, &id).await);
    }
    let mut terminals = Vec::new();
    for i in 0..tokens.len() {
        terminals.push(s.terminal_as(&format!("SHRT{i:04}"), "SHORT-SHOP-1").await);
    }
    let mut tasks = Vec::new();
    for (mut t, tok) in terminals.into_iter().zip(tokens) {
        tasks.push(tokio::spawn(async move {
            let req = t.purchase(&tok, 100);
            code(&t.call(&req).await)
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    // 100 of bonus and the 300 of principal the ledger had: four payments.
    assert_eq!(codes.iter().filter(|c| *c == "00").count(), 4, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| *c == "51").count(), 6, "{codes:?}");
    assert_eq!(balance(&s, &id).await, bal("0", "0"));
}

/// A node holds a wallet as its own writes left it; another node's charge makes it stale. A payment
/// the stale wallet could not cover is approved all the same: a refusal is answered only when a
/// fresh read agrees, and the stale wallet is read again.
#[tokio::test]
async fn a_refusal_is_checked_against_what_another_node_wrote() {
    let a = TestServer::start().await;
    region(&a, "two", "reverse", 86_400, &["TWO-SHOP-1"]).await;
    let id = wallet(&a, "two").await;
    charge(&a, &id, "1000").await; // 1,000 principal + 100 bonus
    let (first, second) = (token(&a, &id).await, token(&a, &id).await);
    let mut t = a.terminal_as("TWON0001", "TWO-SHOP-1").await;
    let req = t.purchase(&first, 1_000);
    assert_eq!(code(&t.call(&req).await), "00");
    assert_eq!(balance(&a, &id).await, bal("100", "0"));
    let b = a.another_node().await;
    charge(&b, &id, "5000").await; // 5,000 principal + 500 bonus, written by the other node
    let req = t.purchase(&second, 3_000);
    assert_eq!(code(&t.call(&req).await), "00", "node A must not refuse from its stale wallet");
    assert_eq!(balance(&a, &id).await, bal("2600", "0"));
    // And a payment neither node's wallet covers is refused: 2,600 left.
    let third = token(&a, &id).await;
    let req = t.purchase(&third, 3_000);
    assert_eq!(code(&t.call(&req).await), "51");
    assert_eq!(balance(&b, &id).await, bal("2600", "0"));
    audit_ledger(&a).await;
}

/// Closing a wallet does not bar its owner from the region: opening it again reopens the same wallet,
/// with what it held and the month's charges toward the bonus cap (closing must not reset the cap);
/// tokens issued before the close stay revoked.
#[tokio::test]
async fn a_deleted_wallet_reopens_as_the_same_wallet() {
    let s = TestServer::start().await;
    region(&s, "reopen-gu", "reverse", 86_400, &["RE-SHOP-0001"]).await;
    let w = wallet(&s, "reopen-gu").await;
    charge(&s, &w, "100000").await; // the whole month's 100,000 that earns bonus: 10,000 bonus
    let old_token = token(&s, &w).await;
    let (st, _) = s.delete(&s.keys.app, &format!("/v1/instruments/{w}")).await;
    assert_eq!(st, 200);
    let (st, again) = s.post(&s.keys.app, "/v1/instruments", json!({ "type": "local", "region": "reopen-gu" })).await;
    assert_eq!(st, 201, "{again}");
    assert_eq!((again["id"].as_str(), again["status"].as_str()), (Some(w.as_str()), Some("active")));
    // Opening it once more is the live wallet again: 200, not a second reopening.
    let (st, same) = s.post(&s.keys.app, "/v1/instruments", json!({ "type": "local", "region": "reopen-gu" })).await;
    assert_eq!((st, same["id"].as_str()), (200, Some(w.as_str())));
    assert_eq!(balance(&s, &w).await, ("100000".into(), "10000".into(), "100000".into()));
    // The month's cap is spent: a new charge earns no more bonus.
    let c = charge(&s, &w, "50000").await;
    assert_eq!(c["bonus"].as_str(), Some("0"), "{c}");
    // The token from before the close pays nothing; a new one pays.
    let mut t = s.terminal_as("RESHOP01", "RE-SHOP-0001").await;
    assert_eq!(code(&t.pay(&old_token, 1_000).await), "62");
    assert_eq!(code(&t.pay(&token(&s, &w).await, 1_000).await), "00");
}
