//! The demo pages in a real browser (issue 10): headless Chromium (Debian's `/usr/bin/chromium`)
//! driven by playwright-core (`tests/browser/e2e.mjs`) against `tsp serve` — add a card, verify a card
//! its issuer steps up through the simulated phone, pay from
//! the wallet through the terminal page, see the wallet update, close the day in the console; no
//! page, response or request but the card's own registration carries the PAN.
//! `TSP_SCREENSHOTS=docs` writes the phone-size screenshots README.md shows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::TestServer;
use serde_json::{Value, json};

#[tokio::test]
async fn wallet_terminal_and_console_in_chromium() {
    let s = TestServer::start().await;
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(s.data_dir().join("demo-keys.json")).unwrap()).unwrap();
    assert!(keys["terminal"].is_string(), "the demo keys include a terminal key: {keys}");
    let (st, gift) = s
        .post(
            &s.keys.admin,
            "/v1/admin/gift-certificates",
            json!({ "face_value": "50000", "currency": "KRW", "expires_at": "2030-12-31T00:00:00Z" }),
        )
        .await;
    assert_eq!(st, 201, "{gift}");
    let pan = common::card("424242", 583_920_174, 16);
    let dir = env!("CARGO_MANIFEST_DIR");
    let script = format!("{dir}/tests/browser/e2e.mjs");
    let mut cmd = std::process::Command::new("node");
    cmd.arg(&script)
        .current_dir(format!("{dir}/tests/browser"))
        .env("TSP_BASE", &s.base)
        .env("TSP_KEYS", json!({ "app": s.keys.app, "admin": s.keys.admin, "terminal": keys["terminal"] }).to_string())
        .env("TSP_PAN", &pan)
        .env("TSP_STEPUP_PAN", common::card("457000", 583_920_175, 16))
        .env("TSP_GIFT_CODE", gift["code"].as_str().unwrap());
    if let Ok(shots) = std::env::var("TSP_SCREENSHOTS") {
        cmd.env("TSP_SCREENSHOTS", std::path::Path::new(dir).join(shots));
    }
    let out =
        tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run node (npm ci in tests/browser)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("one JSON line");
    let seen = &v["seen"];
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(seen["card_registrations"], 2, "{v}");
    assert_eq!(seen["step_up"]["verified"], true, "{v}");
    assert!(seen["step_up"]["message"].as_str().unwrap().contains("######"), "{v}");
    assert!(seen["checked_bodies"].as_u64().unwrap() > 20, "{v}");
    assert_eq!(seen["pages"]["terminal"]["card"], "00", "{v}");
    // The card tile showed its product's art (the PAN is a Hanbit Platinum BIN in the demo config).
    assert_eq!(
        (seen["card_art"]["src"].as_str(), seen["card_art"]["alt"].as_str()),
        (Some("/v1/card-art/hanbit/platinum"), Some("Hanbit Platinum card")),
        "{v}"
    );
    // The calls the pages made, each one checked against /openapi.json by the script.
    let calls: Vec<&str> = seen["rest_calls"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for expected in
        ["POST /v1/instruments", "POST /v1/tokens", "POST /v1/terminal/payments", "POST /v1/admin/settlements"]
    {
        assert!(calls.contains(&expected), "{expected} in {calls:?}");
    }
    assert!(seen["pages"]["console"]["closed"].as_str().unwrap().contains("stl_"), "{v}");
    // The script checked each ratio against 4.5:1; here, that it measured the text it should have.
    for page in ["wallet_light", "console_dark", "terminal_light"] {
        let measured = seen["contrast"][page].as_object().map_or(0, |m| m.len());
        assert!(measured >= 4, "{page}: {v}");
    }
    eprintln!("contrast ratios: {}", seen["contrast"]);

    // What the pages did is what the server recorded: the two approved payments and the settlement.
    let (_, txns) = s.get(&s.keys.admin, "/v1/transactions?limit=50").await;
    let approved = txns["items"].as_array().unwrap().iter().filter(|t| t["response_code"] == "00").count();
    assert_eq!(approved, 2, "{txns}");
    let db = s.database().await;
    let settlements: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settlements").fetch_one(&db).await.unwrap();
    assert!(settlements >= 1);
    db.close().await;
}
