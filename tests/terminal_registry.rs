//! The terminal registry over real TCP (docs/security.md "Terminal registry"): an unknown terminal is
//! answered `58` and a merchant that is not the terminal's `03`, with nothing recorded and nothing
//! spent; `/v1/admin/terminals` registers, suspends (reversals still pass), resumes and removes
//! terminals, each change audited; the demo configuration's terminals are registered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::TestServer;
use common::iso::Terminal;
use serde_json::{Value, json};
use tsp::iso8583::Message;

const PAN: &str = "4111111111111111";

fn code(m: &Message) -> String {
    m.response_code().unwrap_or("none").to_string()
}

async fn card(s: &TestServer) -> String {
    let (st, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": PAN, "expiry": "3012" })).await;
    assert!(st == 201 || st == 200, "{ins}");
    ins["id"].as_str().unwrap().to_string()
}

async fn token(s: &TestServer, ins: &str) -> String {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins })).await;
    assert_eq!(st, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

/// How many transactions the database holds for terminal `id`.
async fn recorded(s: &TestServer, id: &str) -> i64 {
    let pool = s.database().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transactions WHERE terminal_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn unknown_terminals_get_58_and_foreign_merchants_03_with_nothing_spent() {
    let s = TestServer::start().await;
    let ins = card(&s).await;
    let tok = token(&s, &ins).await;

    // A terminal nobody registered: 58 to a payment and to a card check (no card-checking oracle).
    let mut stranger = Terminal::connect(&s.iso).await;
    stranger.terminal_id = "ROGUE001".into();
    let paid = stranger.pay(&tok, 1_000).await;
    assert_eq!(code(&paid), "58");
    assert_eq!((paid.stan(), paid.terminal_id()), (Some("000001"), Some("ROGUE001")), "the answer names its request");
    let mut check = stranger.purchase(PAN, 0);
    check.set_mti(tsp::iso8583::Mti::AUTHORIZATION_REQUEST);
    check.set_processing_code("900000").unwrap();
    check.set_expiry("3012").unwrap();
    assert_eq!(code(&stranger.call(&check).await), "58");
    // The connection lives on: an echo is still answered.
    let mut echo = Message::new(tsp::iso8583::Mti::NETWORK_REQUEST);
    echo.set(11, "000777").unwrap();
    echo.set(70, "301").unwrap();
    assert_eq!(code(&stranger.call(&echo).await), "00");

    // A registered terminal naming another merchant in DE42: 03.
    let mut term = Terminal::connect(&s.iso).await;
    term.merchant_id = "OTHERSHOP      ".into();
    assert_eq!(code(&term.pay(&tok, 1_000).await), "03");
    assert_eq!(recorded(&s, "ROGUE001").await, 0, "a refused request is not recorded");
    assert_eq!(recorded(&s, "TERM0001").await, 0, "a refused request is not recorded");

    // The token was not spent: the registered terminal, as its own merchant, pays with it.
    term.merchant_id = "MERCHANT000001 ".into();
    assert_eq!(code(&term.pay(&tok, 1_000).await), "00");
}

#[tokio::test]
async fn terminals_are_registered_suspended_resumed_and_removed_by_the_operator() {
    let s = TestServer::start().await;
    let admin = s.keys.admin.clone();
    let ins = card(&s).await;

    // Only the admin scope.
    let body = json!({ "id": "SHOP0001", "merchant_id": "SHOP-0001" });
    let (st, _) = s.post(&s.keys.app, "/v1/admin/terminals", body.clone()).await;
    assert_eq!(st, 403);
    // Invalid ids are 422 with the field's code.
    for (bad, code_) in [
        (json!({ "id": "TOOLONG01", "merchant_id": "SHOP-0001" }), "terminal_id_invalid"),
        (json!({ "id": "SHOP0001", "merchant_id": "" }), "merchant_id_invalid"),
        (json!({ "id": "SHOP0001", "merchant_id": "SHOP-0001", "van": "a b" }), "van_invalid"),
    ] {
        let (st, e) = s.post(&admin, "/v1/admin/terminals", bad).await;
        assert_eq!((st, e["error"]["code"].as_str()), (422, Some(code_)), "{e}");
    }

    // Before registration: 58. Registered: 201, then 200 for the same id again.
    let mut t = Terminal::connect(&s.iso).await;
    t.terminal_id = "SHOP0001".into();
    t.merchant_id = "SHOP-0001      ".into();
    assert_eq!(code(&t.pay(&token(&s, &ins).await, 1_000).await), "58");
    let (st, reg) = s.post(&admin, "/v1/admin/terminals", body.clone()).await;
    assert_eq!(st, 201, "{reg}");
    assert_eq!(
        (reg["id"].as_str(), reg["status"].as_str(), &reg["van"]),
        (Some("SHOP0001"), Some("active"), &Value::Null)
    );
    let (st, _) = s.post(&admin, "/v1/admin/terminals", body.clone()).await;
    assert_eq!(st, 200);
    let first = t.pay(&token(&s, &ins).await, 2_000).await;
    assert_eq!(code(&first), "00");

    // Listed, alone for its merchant; one by id; 404 for no such id.
    let (st, list) = s.get(&admin, "/v1/admin/terminals?merchant_id=SHOP-0001").await;
    assert_eq!(st, 200);
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["SHOP0001"]);
    let (st, all) = s.get(&admin, "/v1/admin/terminals").await;
    assert_eq!(st, 200);
    assert!(all["items"].as_array().unwrap().iter().any(|t| t["id"] == "TERM0001"), "the demo terminals: {all}");
    assert_eq!(s.get(&admin, "/v1/admin/terminals/SHOP0001").await.0, 200);
    let (st, e) = s.get(&admin, "/v1/admin/terminals/NOPE0001").await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("terminal_not_found")));

    // Suspended: payments 58, but the reversal of what it already did passes and undoes it.
    let (st, sus) = s.post(&admin, "/v1/admin/terminals/SHOP0001/suspend", json!({})).await;
    assert_eq!((st, sus["status"].as_str()), (200, Some("suspended")));
    assert_eq!(code(&t.pay(&token(&s, &ins).await, 1_000).await), "58");
    let rev = t.reversal_of(&first);
    assert_eq!(code(&t.call(&rev).await), "00");
    let pool = s.database().await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM transactions WHERE terminal_id = 'SHOP0001' AND stan = $1")
            .bind(first.stan().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "reversed");

    // Resumed: pays again. Removed: 58 again, and 404 for a second removal.
    let (st, res) = s.post(&admin, "/v1/admin/terminals/SHOP0001/resume", json!({})).await;
    assert_eq!((st, res["status"].as_str()), (200, Some("active")));
    assert_eq!(code(&t.pay(&token(&s, &ins).await, 1_000).await), "00");
    let (st, gone) = s.delete(&admin, "/v1/admin/terminals/SHOP0001").await;
    assert_eq!((st, gone["id"].as_str()), (200, Some("SHOP0001")));
    assert_eq!(code(&t.pay(&token(&s, &ins).await, 1_000).await), "58");
    assert_eq!(s.delete(&admin, "/v1/admin/terminals/SHOP0001").await.0, 404);
    let (st, _) = s.post(&admin, "/v1/admin/terminals/SHOP0001/suspend", json!({})).await;
    assert_eq!(st, 404);

    // Every change is one audit row naming the terminal.
    let actions: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT action, subject FROM audit_log WHERE action LIKE 'terminal.%' ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let shop = Some("SHOP0001".to_string());
    assert_eq!(
        actions,
        [
            ("terminal.register".to_string(), shop.clone()),
            ("terminal.register".to_string(), shop.clone()),
            ("terminal.suspend".to_string(), shop.clone()),
            ("terminal.resume".to_string(), shop.clone()),
            ("terminal.delete".to_string(), shop.clone()),
        ]
    );
}
