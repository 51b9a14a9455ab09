//! The per-token lifecycle (issue 19, docs/instruments.md "Token lifecycle"): a requestor suspends,
//! resumes and deletes its own tokens by `token_ref`; the issuer or an operator does the same by
//! token number and for every token of a card by its PAR. A suspended token is declined `62` at the
//! terminal (and refused by detokenize) and pays again once resumed. Over real TCP and HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::TestServer;
use common::iso::Terminal;
use serde_json::{Value, json};
use tsp::iso8583::{Message, Mti};

const PAN: &str = "4111111111111111";

async fn card(s: &TestServer, key: &str, pan: &str) -> Value {
    let (st, ins) = s.post(key, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3012" })).await;
    assert!(st == 201 || st == 200, "{ins}");
    ins
}

async fn token(s: &TestServer, key: &str, instrument: &Value) -> Value {
    let (st, t) = s.post(key, "/v1/tokens", json!({ "instrument_id": instrument["id"] })).await;
    assert_eq!(st, 201, "{t}");
    t
}

fn code(m: &Message) -> &str {
    m.response_code().unwrap_or("--")
}

fn err(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(none)")
}

/// A requestor with `scopes`; its API key.
async fn requestor(s: &TestServer, name: &str, scopes: &[&str]) -> String {
    let (st, r) = s.post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": name, "scopes": scopes })).await;
    assert_eq!(st, 201, "{r}");
    r["api_key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_requestor_suspends_resumes_and_deletes_its_token() {
    let s = TestServer::start().await;
    let app = s.keys.app.clone();
    let ins = card(&s, &app, PAN).await;
    let t = token(&s, &app, &ins).await;
    let (number, tref) = (t["token"].as_str().unwrap(), t["token_ref"].as_str().unwrap());
    let path = format!("/v1/tokens/{tref}");
    let mut term = Terminal::connect(&s.iso).await;

    let (st, v) = s.get(&app, &path).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("active")), "{v}");
    assert_eq!(v["masked_token"].as_str().unwrap(), format!("{}******{}", &number[..6], &number[12..]));
    assert!(v["suspended_at"].is_null(), "{v}");

    // Suspended: the terminal is declined 62, the token is not spent, detokenize refuses it.
    let (st, v) = s.post(&app, &format!("{path}/suspend"), json!({})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("suspended")), "{v}");
    assert!(v["suspended_at"].is_string(), "{v}");
    let ans = term.pay(number, 12_000).await;
    assert_eq!((ans.mti(), code(&ans)), (Mti::FINANCIAL_RESPONSE, "62"));
    let (_, v) = s.get(&app, &path).await;
    assert_eq!(v["status"], "suspended", "a declined payment leaves it as it was: {v}");
    let (st, v) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": number })).await;
    assert_eq!((st, err(&v)), (409, "token_suspended"), "{v}");
    assert!(!v.to_string().contains(PAN), "{v}");
    // Suspending twice is a wrong state, as for an instrument; so is resuming an active token.
    let (st, v) = s.post(&app, &format!("{path}/suspend"), json!({})).await;
    assert_eq!((st, err(&v)), (409, "token_suspended"), "{v}");

    // Resumed: it pays, once.
    let (st, v) = s.post(&app, &format!("{path}/resume"), json!({})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("active")), "{v}");
    assert!(v["suspended_at"].is_null(), "{v}");
    let (st, v) = s.post(&app, &format!("{path}/resume"), json!({})).await;
    assert_eq!((st, err(&v)), (409, "token_active"), "{v}");
    let ans = term.pay(number, 12_000).await;
    assert_eq!(code(&ans), "00");
    let (_, v) = s.get(&app, &path).await;
    assert_eq!(v["status"], "consumed", "{v}");
    // A spent token can be neither suspended, resumed nor deleted.
    for (action, method) in [("suspend", "POST"), ("resume", "POST"), ("", "DELETE")] {
        let (st, v) = if method == "DELETE" {
            s.delete(&app, &path).await
        } else {
            s.post(&app, &format!("{path}/{action}"), json!({})).await
        };
        assert_eq!((st, err(&v)), (409, "token_used"), "{method} {action}: {v}");
    }

    // Deleted: declined 62, gone for good, and another requestor cannot touch the caller's tokens.
    let t2 = token(&s, &app, &ins).await;
    let (number2, tref2) = (t2["token"].as_str().unwrap(), t2["token_ref"].as_str().unwrap());
    let other = requestor(&s, "another wallet", &["instruments", "tokens"]).await;
    for (st, v) in [
        s.get(&other, &format!("/v1/tokens/{tref2}")).await,
        s.post(&other, &format!("/v1/tokens/{tref2}/suspend"), json!({})).await,
        s.delete(&other, &format!("/v1/tokens/{tref2}")).await,
    ] {
        assert_eq!((st, err(&v)), (404, "token_unknown"), "{v}");
    }
    let (st, v) = s.delete(&app, &format!("/v1/tokens/{tref2}")).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("deleted")), "{v}");
    let ans = term.pay(number2, 5_000).await;
    assert_eq!(code(&ans), "62");
    for (st, v) in [
        s.delete(&app, &format!("/v1/tokens/{tref2}")).await,
        s.post(&app, &format!("/v1/tokens/{tref2}/resume"), json!({})).await,
    ] {
        assert_eq!((st, err(&v)), (409, "token_revoked"), "{v}");
    }
    // The scope is needed: a VAN key may not suspend a wallet's token.
    let (st, v) = s.post(&s.keys.van, &format!("/v1/tokens/{tref2}/suspend"), json!({})).await;
    assert_eq!((st, err(&v)), (403, "scope_missing"), "{v}");
}

#[tokio::test]
async fn the_issuer_acts_on_a_token_by_number_and_on_every_token_of_a_card_by_par() {
    let s = TestServer::start().await;
    let admin = s.keys.admin.clone();
    let app = s.keys.app.clone();
    let other = requestor(&s, "second wallet", &["instruments", "tokens"]).await;
    let mut term = Terminal::connect(&s.iso).await;

    // One card in two wallets: the same PAR, two instruments, three live tokens.
    let ins_a = card(&s, &app, PAN).await;
    let ins_b = card(&s, &other, PAN).await;
    assert_ne!(ins_a["id"], ins_b["id"]);
    let par = ins_a["par"].as_str().unwrap().to_string();
    assert_eq!(ins_b["par"].as_str(), Some(par.as_str()));
    let a1 = token(&s, &app, &ins_a).await;
    let a2 = token(&s, &app, &ins_a).await;
    let b1 = token(&s, &other, &ins_b).await;
    // A token of another card stays out of it all.
    let ins_c = card(&s, &app, "5555555555554444").await;
    let c1 = token(&s, &app, &ins_c).await;

    // By number.
    let n = |t: &Value| t["token"].as_str().unwrap().to_string();
    let (st, v) = s.get(&admin, &format!("/v1/admin/tokens/{}", n(&a1))).await;
    assert_eq!((st, v["status"].as_str(), v["token_ref"].as_str()), (200, Some("active"), a1["token_ref"].as_str()));
    let (st, v) = s.post(&admin, &format!("/v1/admin/tokens/{}/suspend", n(&a1)), json!({})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("suspended")), "{v}");
    assert_eq!(code(&term.pay(&n(&a1), 1_000).await), "62");
    let (st, v) = s.post(&admin, &format!("/v1/admin/tokens/{}/resume", n(&a1)), json!({})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("active")), "{v}");
    // The requestor sees what the issuer did.
    let (_, v) = s.get(&app, &format!("/v1/tokens/{}", a1["token_ref"].as_str().unwrap())).await;
    assert_eq!(v["status"], "active", "{v}");
    let (st, v) = s.get(&admin, "/v1/admin/tokens/4610000000000000").await;
    assert_eq!((st, err(&v)), (404, "token_unknown"), "{v}");
    let (st, v) = s.get(&app, &format!("/v1/admin/tokens/{}", n(&a1))).await;
    assert_eq!((st, err(&v)), (403, "scope_missing"), "{v}");

    // By PAR: every live token of the card, of both wallets.
    let list = |all: bool| {
        let (s, admin, par) = (&s, admin.clone(), par.clone());
        async move {
            let q = if all { "?all=true" } else { "" };
            let (st, v) = s.get(&admin, &format!("/v1/admin/cards/{par}/tokens{q}")).await;
            assert_eq!(st, 200, "{v}");
            v["items"].as_array().unwrap().clone()
        }
    };
    let refs = |items: &[Value]| {
        let mut r: Vec<String> = items.iter().map(|t| t["token_ref"].as_str().unwrap().to_string()).collect();
        r.sort();
        r
    };
    let mut want: Vec<String> = [&a1, &a2, &b1].iter().map(|t| t["token_ref"].as_str().unwrap().to_string()).collect();
    want.sort();
    assert_eq!(refs(&list(false).await), want);
    // Payments go on working meanwhile: a2 is spent, so it leaves the live list.
    assert_eq!(code(&term.pay(&n(&a2), 2_000).await), "00");
    assert_eq!(list(false).await.len(), 2);

    let (st, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/tokens/suspend"), json!({})).await;
    assert_eq!((st, v["changed"].as_u64()), (200, Some(2)), "{v}");
    assert!(v["items"].as_array().unwrap().iter().all(|t| t["status"] == "suspended"), "{v}");
    assert_eq!(code(&term.pay(&n(&a1), 1_000).await), "62");
    assert_eq!(code(&term.pay(&n(&b1), 1_000).await), "62");
    assert_eq!(code(&term.pay(&n(&c1), 1_000).await), "00", "another card's token is untouched");
    // Suspending again changes nothing; resuming brings both back.
    let (_, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/tokens/suspend"), json!({})).await;
    assert_eq!(v["changed"], 0, "{v}");
    let (_, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/tokens/resume"), json!({})).await;
    assert_eq!(v["changed"], 2, "{v}");
    assert_eq!(code(&term.pay(&n(&b1), 1_000).await), "00");
    let (_, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/tokens/delete"), json!({})).await;
    assert_eq!((v["changed"].as_u64(), v["items"].as_array().map(Vec::len)), (Some(1), Some(0)), "{v}");
    assert_eq!(code(&term.pay(&n(&a1), 1_000).await), "62");
    let (_, v) = s.get(&app, &format!("/v1/tokens/{}", a1["token_ref"].as_str().unwrap())).await;
    assert_eq!(v["status"], "deleted", "{v}");

    // With `all`, the ended ones too, each with its status.
    let all = list(true).await;
    let status_of = |t: &Value| {
        all.iter().find(|x| x["token_ref"] == t["token_ref"]).map(|x| x["status"].as_str().unwrap().to_string())
    };
    assert_eq!(
        (status_of(&a1), status_of(&a2), status_of(&b1), status_of(&c1)),
        (Some("deleted".into()), Some("consumed".into()), Some("consumed".into()), None)
    );
    let (st, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/tokens/explode"), json!({})).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = s.get(&admin, "/v1/admin/cards/T0010000000000000000000000000/tokens").await;
    assert_eq!((st, err(&v)), (404, "card_unknown"), "{v}");
}

/// A merchant token (terminal tokenization, `0100` DE3 `900000`) suspended by the issuer: the
/// merchant's card-on-file payment is declined `62`, tokenizing the card again is refused `62`
/// rather than handing out a second token, and both work again after the resume.
#[tokio::test]
async fn a_suspended_merchant_token_is_declined_and_resumes() {
    let s = TestServer::start().await;
    let admin = s.keys.admin.clone();
    let mut term = Terminal::connect(&s.iso).await;
    let tokenize = |term: &mut Terminal| {
        let mut m = term.purchase(PAN, 0);
        m.set_mti(Mti::AUTHORIZATION_REQUEST);
        m.set_processing_code("900000").unwrap();
        m.set_expiry("3012").unwrap();
        m.set_pos_entry_mode("051").unwrap();
        m
    };
    let token_in = |m: &Message| {
        let de48 = m.additional_data().unwrap().to_string();
        de48[4..].to_string()
    };
    let req = tokenize(&mut term);
    let ans = term.call(&req).await;
    assert_eq!(code(&ans), "00");
    let mt = token_in(&ans);
    let (st, v) = s.get(&admin, &format!("/v1/admin/tokens/{mt}")).await;
    assert_eq!((st, v["multi_use"].as_bool(), v["status"].as_str()), (200, Some(true), Some("active")), "{v}");

    let (st, v) = s.post(&admin, &format!("/v1/admin/tokens/{mt}/suspend"), json!({})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("suspended")), "{v}");
    assert_eq!(code(&term.pay(&mt, 3_000).await), "62");
    let req = tokenize(&mut term);
    let ans = term.call(&req).await;
    assert_eq!((code(&ans), ans.additional_data()), ("62", None));

    let (st, _) = s.post(&admin, &format!("/v1/admin/tokens/{mt}/resume"), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!(code(&term.pay(&mt, 3_000).await), "00");
    assert_eq!(code(&term.pay(&mt, 4_000).await), "00", "a merchant token pays again and again");
    let req = tokenize(&mut term);
    let ans = term.call(&req).await;
    assert_eq!((code(&ans), token_in(&ans)), ("00", mt.clone()), "the same token as before");
}

/// The account updater (issue 19 item 3): the issuer reports a reissued card (new number, new
/// expiry). Its instruments keep their ids and PAR, a live merchant token pays against the new
/// number at the issuer, registering the new number finds the same card, the requestor hears of it;
/// then the card is reported stolen and every token of it ends.
#[tokio::test]
async fn a_reissued_card_keeps_its_tokens_and_pays_with_the_new_number() {
    const OLD: &str = "4111110000000021";
    const NEW: &str = "4111110000000039";
    let (s, sim) = common::with_tcp_issuer(|c| c).await;
    common::scan_for(OLD);
    common::scan_for(NEW);
    let admin = s.keys.admin.clone();
    let app = s.keys.app.clone();
    let (st, hook) = s.post(&app, "/v1/webhooks", json!({ "url": "http://127.0.0.1:9/unused" })).await;
    assert_eq!(st, 201, "{hook}");

    // The terminal's merchant token, and the same card in the app.
    let mut term = Terminal::connect(&s.iso).await;
    let mut req = term.purchase(OLD, 0);
    req.set_mti(Mti::AUTHORIZATION_REQUEST);
    req.set_processing_code("900000").unwrap();
    req.set_expiry("2712").unwrap();
    let ans = term.call(&req).await;
    assert_eq!(code(&ans), "00");
    let mt = ans.additional_data().unwrap()[4..].to_string();
    let ins = card(&s, &app, OLD).await;
    let par = ins["par"].as_str().unwrap().to_string();
    assert_eq!(code(&term.pay(&mt, 1_000).await), "00");
    assert_eq!((sim.used(OLD), sim.used(NEW)), (1_000, 0));

    // Refused: nothing new, a number of another issuer, a bad number; an unknown card.
    for (body, want) in [
        (json!({}), "reissue_empty"),
        (json!({ "pan": "5555555555554444" }), "pan_other_issuer"),
        (json!({ "pan": "4111110000000022" }), "pan_luhn"),
        (json!({ "expiry": "2713" }), "expiry_format"),
    ] {
        let (st, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/reissue"), body).await;
        assert_eq!((st, err(&v)), (422, want), "{v}");
    }
    let (st, v) =
        s.post(&admin, "/v1/admin/cards/T0010000000000000000000000000/reissue", json!({ "expiry": "3112" })).await;
    assert_eq!((st, err(&v)), (404, "card_unknown"), "{v}");

    let (st, v) =
        s.post(&admin, &format!("/v1/admin/cards/{par}/reissue"), json!({ "pan": NEW, "expiry": "3112" })).await;
    assert_eq!(st, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the terminal's and the app's instrument: {v}");
    for i in items {
        assert_eq!(
            (i["par"].as_str(), i["last4"].as_str(), i["expiry"].as_str()),
            (Some(par.as_str()), Some("0039"), Some("3112"))
        );
        assert_eq!(i["masked_pan"], "411111******0039");
    }
    assert!(items.iter().any(|i| i["id"] == ins["id"]), "the same instrument id: {v}");
    assert!(!v.to_string().contains(NEW), "{v}");

    // The merchant token goes on paying, now against the new number.
    assert_eq!(code(&term.pay(&mt, 2_000).await), "00");
    assert_eq!((sim.used(OLD), sim.used(NEW)), (1_000, 2_000));
    // The app's card detokenizes to the new number, and the new number registered again is the same card.
    let t = token(&s, &app, &ins).await;
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": t["token"] })).await;
    assert_eq!((st, d["pan"].as_str(), d["expiry"].as_str()), (200, Some(NEW), Some("3112")), "{d}");
    let again = card(&s, &app, NEW).await;
    assert_eq!((again["id"].as_str(), again["par"].as_str()), (ins["id"].as_str(), Some(par.as_str())));
    let other = requestor(&s, "third wallet", &["instruments", "tokens"]).await;
    let theirs = card(&s, &other, NEW).await;
    assert_eq!(theirs["par"].as_str(), Some(par.as_str()), "the PAR stays the card's across the reissue");
    // The app heard of it.
    let (_, ev) = s.get(&app, &format!("/v1/events?instrument_id={}", ins["id"].as_str().unwrap())).await;
    let updated: Vec<&Value> =
        ev["items"].as_array().unwrap().iter().filter(|e| e["data"]["reason"] == "reissued").collect();
    assert_eq!(updated.len(), 1, "{ev}");
    assert_eq!(
        (updated[0]["type"].as_str(), updated[0]["data"]["last4"].as_str()),
        (Some("instrument.updated"), Some("0039"))
    );
    assert!(!ev.to_string().contains(NEW) && !ev.to_string().contains(OLD), "no PAN in events");

    // Stolen: every live token of the card, of every wallet and the merchant's, is deleted.
    let (st, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/lost"), json!({ "tokens": "delete" })).await;
    assert_eq!((st, v["changed"].as_u64(), v["items"].as_array().map(Vec::len)), (200, Some(2), Some(0)), "{v}");
    assert_eq!(code(&term.pay(&mt, 500).await), "62");
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 500).await), "62");
    let (st, v) = s.post(&admin, &format!("/v1/admin/cards/{par}/lost"), json!({ "tokens": "shred" })).await;
    assert_eq!((st, err(&v)), (422, "tokens_invalid"), "{v}");
}
