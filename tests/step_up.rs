//! Step-up verification at card registration (issue 19 item 5, docs/instruments.md "Step-up
//! verification"): the issuer decides each registration (approve, step-up, decline) by the
//! simulator's configured rules; a stepped-up card is `pending_verification` and gets no tokens
//! until the one-time code the issuer sent is posted to `/verify`; wrong, expired and too many
//! codes; the assurance reaches the issuer with each payment. Over real HTTP and TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::TestServer;
use common::iso::Terminal;
use serde_json::{Value, json};
use tsp::config::ActivationRule;
use tsp::issuer::sim::SimConfig;

fn err(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(none)")
}

async fn register(s: &TestServer, key: &str, pan: &str) -> (u16, Value) {
    s.post(key, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3012" })).await
}

/// The six digits in a simulated message.
fn code_in(text: &str) -> String {
    let digits: Vec<String> =
        text.split(|c: char| !c.is_ascii_digit()).filter(|w| w.len() == 6).map(str::to_string).collect();
    assert_eq!(digits.len(), 1, "one six-digit code in {text:?}");
    digits[0].clone()
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

/// The demo configuration's rules: BIN 457000 steps up, 457099 is declined.
fn demo_rules() -> Vec<ActivationRule> {
    tsp::config::Config::default_config().unwrap().issuer_sim.activation
}

#[tokio::test]
async fn a_stepped_up_card_verifies_by_sms_and_its_assurance_reaches_the_issuer() {
    let cfg = SimConfig { activation: demo_rules(), ..SimConfig::default() };
    let (s, sim) = common::with_tcp_issuer_as(cfg, |c| c).await;
    let app = s.keys.app.clone();
    let pan = common::card("457000", 1, 16);

    let (st, ins) = register(&s, &app, &pan).await;
    assert_eq!((st, ins["status"].as_str()), (201, Some("pending_verification")), "{ins}");
    assert!(ins["assurance"].is_null(), "{ins}");
    let id = ins["id"].as_str().unwrap().to_string();
    let methods = ins["verification"]["methods"].as_array().unwrap().clone();
    let sms = methods.iter().find(|m| m["method"] == "sms").expect("sms offered");
    assert!(methods.iter().any(|m| m["method"] == "app"), "{ins}");
    let phone = sms["destination"].as_str().unwrap().to_string();
    assert!(phone.starts_with("010-****-"), "{phone}");
    assert_eq!(ins["verification"]["attempts_left"], 5, "{ins}");
    assert!(!ins.to_string().contains(&pan), "no PAN in the answer");

    // Pending: no token, nothing to verify yet, the same card again is the same pending instrument.
    let (st, v) = s.post(&app, "/v1/tokens", json!({ "instrument_id": id })).await;
    assert_eq!((st, err(&v)), (409, "instrument_pending_verification"), "{v}");
    let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": "123456" })).await;
    assert_eq!((st, err(&v)), (409, "verification_not_started"), "{v}");
    let (st, again) = register(&s, &app, &pan).await;
    assert_eq!(
        (st, again["id"].as_str(), again["status"].as_str()),
        (200, Some(id.as_str()), Some("pending_verification"))
    );
    let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verification"), json!({ "method": "email" })).await;
    assert_eq!((st, err(&v)), (422, "method_invalid"), "{v}");
    assert!(sim.codes_sent(&pan).is_empty());

    // The issuer sends the code by SMS.
    let (st, sent) = s.post(&app, &format!("/v1/instruments/{id}/verification"), json!({ "method": "sms" })).await;
    assert_eq!(st, 202, "{sent}");
    assert_eq!((sent["method"].as_str(), sent["destination"].as_str()), (Some("sms"), Some(phone.as_str())));
    assert_eq!(sent["codes_left"], 2, "{sent}");
    let msgs = sim.codes_sent(&pan);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].destination, phone);
    let code = code_in(&msgs[0].text);

    // A wrong code costs an attempt; the right one activates the card with assurance otp_sms.
    let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": other_than(&code) })).await;
    assert_eq!((st, err(&v)), (422, "code_incorrect"), "{v}");
    let (_, now) = s.get(&app, &format!("/v1/instruments/{id}")).await;
    assert_eq!(now["verification"]["attempts_left"], 4, "{now}");
    let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": "12ab56" })).await;
    assert_eq!((st, err(&v)), (422, "code_format"), "{v}");
    let (st, done) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": code })).await;
    assert_eq!(st, 200, "{done}");
    assert_eq!((done["status"].as_str(), done["assurance"].as_str()), (Some("active"), Some("otp_sms")), "{done}");
    assert!(done.get("verification").is_none(), "{done}");
    let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": code })).await;
    assert_eq!((st, err(&v)), (409, "instrument_active"), "the code is spent: {v}");

    // The card pays, and the issuer sees how it was verified (DE48 TA 21); a green-path card is 10.
    let mut term = Terminal::connect(&s.iso).await;
    let (st, t) = s.post(&app, "/v1/tokens", json!({ "instrument_id": id })).await;
    assert_eq!(st, 201, "{t}");
    let resp = term.pay(t["token"].as_str().unwrap(), 1_000).await;
    assert_eq!(resp.response_code(), Some("00"));
    assert_eq!(sim.last_assurance(&pan).as_deref(), Some("21"));

    let green = common::card("411111", 77, 16);
    let (st, g) = register(&s, &app, &green).await;
    assert_eq!((st, g["status"].as_str(), g["assurance"].as_str()), (201, Some("active"), Some("issuer_approved")));
    let (_, t) = s.post(&app, "/v1/tokens", json!({ "instrument_id": g["id"] })).await;
    let resp = term.pay(t["token"].as_str().unwrap(), 1_000).await;
    assert_eq!(resp.response_code(), Some("00"));
    assert_eq!(sim.last_assurance(&green).as_deref(), Some("10"));

    // Declined by the issuer: nothing is stored.
    let declined = common::card("457099", 1, 16);
    let (st, v) = register(&s, &app, &declined).await;
    assert_eq!((st, err(&v)), (422, "registration_declined"), "{v}");
    let (_, list) = s.get(&app, "/v1/instruments").await;
    assert!(list["items"].as_array().unwrap().iter().all(|i| i["last4"] != declined[12..]), "{list}");
}

#[tokio::test]
async fn the_demo_walks_a_step_up_through_the_simulated_phone() {
    // The demo configuration with the velocity rule its comments show.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tsp.toml");
    let velocity = "[[issuer_sim.activation]]\nregistrations_over = 5\nwindow_seconds = 3600\ndecision = \"step_up\"\n";
    std::fs::write(&path, format!("{}\n{velocity}", tsp::config::DEFAULT_TOML)).unwrap();
    let s = TestServer::start_with(dir, &["--config", path.to_str().unwrap()]).await;
    let app = s.keys.app.clone();
    let (st, _) = s.post(&app, "/v1/webhooks", json!({ "url": "http://127.0.0.1:9/hook" })).await;
    assert_eq!(st, 201);
    let pan = common::card("457000", 2, 16);
    let (st, ins) = register(&s, &app, &pan).await;
    assert_eq!((st, ins["status"].as_str()), (201, Some("pending_verification")), "{ins}");
    let id = ins["id"].as_str().unwrap().to_string();
    let inbox = format!("/v1/issuer-sim/messages?instrument_id={id}");
    let (st, v) = s.get(&app, &inbox).await;
    assert_eq!((st, v["items"].as_array().map(Vec::len)), (200, Some(0)), "{v}");

    // By the issuer's app this time; a second code replaces the first.
    for _ in 0..2 {
        let (st, sent) = s.post(&app, &format!("/v1/instruments/{id}/verification"), json!({ "method": "app" })).await;
        assert_eq!(st, 202, "{sent}");
    }
    let (_, v) = s.get(&app, &inbox).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    assert_eq!(items[1]["method"], "app");
    let (first, second) = (code_in(items[0]["text"].as_str().unwrap()), code_in(items[1]["text"].as_str().unwrap()));
    if first != second {
        let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": first })).await;
        assert_eq!((st, err(&v)), (422, "code_incorrect"), "the replaced code is void: {v}");
    }
    let (st, done) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": second })).await;
    assert_eq!((st, done["assurance"].as_str()), (200, Some("otp_app")), "{done}");

    // Another requestor cannot read this card's messages.
    let (st, other) =
        s.post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": "other", "scopes": ["instruments"] })).await;
    assert_eq!(st, 201);
    let (st, v) = s.get(other["api_key"].as_str().unwrap(), &inbox).await;
    assert_eq!((st, err(&v)), (404, "instrument_not_found"), "{v}");

    // The requestor heard of it: created pending, then verified, in sequence.
    let (_, events) = s.get(&app, "/v1/events").await;
    let mine: Vec<&Value> =
        events["items"].as_array().unwrap().iter().filter(|e| e["instrument_id"] == id.as_str()).collect();
    let kinds: Vec<(&str, &str)> =
        mine.iter().map(|e| (e["type"].as_str().unwrap(), e["data"]["status"].as_str().unwrap())).collect();
    assert!(kinds.contains(&("instrument.created", "pending_verification")), "{kinds:?}");
    assert!(kinds.contains(&("instrument.verified", "active")), "{kinds:?}");
    assert!(!events.to_string().contains(&pan), "no PAN in events");

    // A card asked to be registered more than 5 times in an hour is stepped up (the velocity rule,
    // after the demo's BIN rules).
    let busy = common::card("411111", 88, 16);
    for round in 0..6 {
        let (st, v) = register(&s, &app, &busy).await;
        let expected = if round < 5 { "active" } else { "pending_verification" };
        assert_eq!((st, v["status"].as_str()), (201, Some(expected)), "round {round}: {v}");
        let (st, _) = s.delete(&app, &format!("/v1/instruments/{}", v["id"].as_str().unwrap())).await;
        assert_eq!(st, 200);
    }
}

#[tokio::test]
async fn expired_codes_too_many_tries_and_too_many_codes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tsp.toml");
    let config = tsp::config::DEFAULT_TOML
        .replace("code_ttl_seconds = 300", "code_ttl_seconds = 1")
        .replace("max_attempts = 5", "max_attempts = 3");
    std::fs::write(&path, config).unwrap();
    let s = TestServer::start_with(dir, &["--config", path.to_str().unwrap()]).await;
    let app = s.keys.app.clone();
    let send = |id: String| {
        let s = &s;
        let app = app.clone();
        async move { s.post(&app, &format!("/v1/instruments/{id}/verification"), json!({ "method": "sms" })).await }
    };
    let inbox_code = |id: String| {
        let s = &s;
        let app = app.clone();
        async move {
            let (_, v) = s.get(&app, &format!("/v1/issuer-sim/messages?instrument_id={id}")).await;
            code_in(v["items"].as_array().unwrap().last().unwrap()["text"].as_str().unwrap())
        }
    };

    // Expired: refused without costing an attempt; a new code then works.
    let (_, ins) = register(&s, &app, &common::card("457000", 3, 16)).await;
    let id = ins["id"].as_str().unwrap().to_string();
    assert_eq!(send(id.clone()).await.0, 202);
    let code = inbox_code(id.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": code })).await;
    assert_eq!((st, err(&v)), (422, "code_expired"), "{v}");
    let (_, now) = s.get(&app, &format!("/v1/instruments/{id}")).await;
    assert_eq!(now["verification"]["attempts_left"], 3, "{now}");
    assert_eq!(send(id.clone()).await.0, 202);
    let code = inbox_code(id.clone()).await;
    let (st, v) = s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": code })).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("active")), "{v}");

    // Too many codes: the fourth is refused.
    let (_, ins) = register(&s, &app, &common::card("457000", 4, 16)).await;
    let id = ins["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        assert_eq!(send(id.clone()).await.0, 202);
    }
    let (st, v) = send(id.clone()).await;
    assert_eq!((st, err(&v)), (409, "verification_codes_exhausted"), "{v}");

    // Too many wrong codes: the last one deletes the registration, and the right code is too late.
    let (_, ins) = register(&s, &app, &common::card("457000", 5, 16)).await;
    let id = ins["id"].as_str().unwrap().to_string();
    assert_eq!(send(id.clone()).await.0, 202);
    let code = inbox_code(id.clone()).await;
    let wrong = other_than(&code);
    let verify = |c: String| {
        let s = &s;
        let app = app.clone();
        let id = id.clone();
        async move { s.post(&app, &format!("/v1/instruments/{id}/verify"), json!({ "code": c })).await }
    };
    for left in [2, 1] {
        let (st, v) = verify(wrong.clone()).await;
        assert_eq!((st, err(&v)), (422, "code_incorrect"), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(&format!("{left} attempts left")), "{v}");
    }
    let (st, v) = verify(wrong.clone()).await;
    assert_eq!((st, err(&v)), (409, "verification_failed"), "{v}");
    let (st, v) = verify(code).await;
    assert_eq!((st, err(&v)), (409, "instrument_deleted"), "{v}");
    let (_, now) = s.get(&app, &format!("/v1/instruments/{id}")).await;
    assert_eq!(now["status"], "deleted", "{now}");
}

#[tokio::test]
async fn an_issuer_that_cannot_be_asked_gets_its_stand_in() {
    // Approve by default: assurance stand_in.
    let (s, sim) = common::with_tcp_issuer(|c| c).await;
    sim.set_offline(true);
    let (st, v) = register(&s, &s.keys.app, &common::card("411111", 5, 16)).await;
    assert_eq!((st, v["status"].as_str(), v["assurance"].as_str()), (201, Some("active"), Some("stand_in")), "{v}");
    drop(s);

    // Or decline, as configured.
    let (s, sim) =
        common::with_tcp_issuer(|c| c.replace("[[issuers]]\n", "[[issuers]]\nactivation_stand_in = \"decline\"\n"))
            .await;
    sim.set_offline(true);
    let (st, v) = register(&s, &s.keys.app, &common::card("411111", 6, 16)).await;
    assert_eq!((st, err(&v)), (422, "registration_declined"), "{v}");
    sim.set_offline(false);
    let (st, v) = register(&s, &s.keys.app, &common::card("411111", 6, 16)).await;
    assert_eq!((st, v["assurance"].as_str()), (201, Some("issuer_approved")), "{v}");
}
