//! Payments over ISO 8583 on real TCP (docs/iso8583.md): the terminal side against `tsp serve`, the
//! issuer side against an issuer simulator this test controls (a `tsp issuer-sim` in process).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use common::iso::{Terminal, de55};
use serde_json::{Value, json};
use tsp::iso8583::Mti;
use tsp::issuer::sim::Simulator;

const PAN: &str = "4111111111111111";

struct Rig {
    s: TestServer,
    sim: Arc<Simulator>,
}

/// A server whose two issuers are the simulator of this test over TCP (600 ms timeout), and whose
/// tokens may live as briefly as one second.
async fn rig() -> Rig {
    let (s, sim) = common::with_tcp_issuer(|c| {
        c.replace(
            "[tokens]\nttl_seconds = 600\nmin_ttl_seconds = 30",
            "[tokens]\nttl_seconds = 600\nmin_ttl_seconds = 1",
        )
    })
    .await;
    Rig { s, sim }
}

impl Rig {
    async fn card(&self, pan: &str) -> String {
        let (st, ins) = self
            .s
            .post(&self.s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3012" }))
            .await;
        assert!(st == 201 || st == 200, "{ins}");
        ins["id"].as_str().unwrap().to_string()
    }
    async fn token(&self, instrument: &str, extra: Value) -> Value {
        let mut body = json!({ "instrument_id": instrument });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, t) = self.s.post(&self.s.keys.app, "/v1/tokens", body).await;
        assert_eq!(st, 201, "{t}");
        t
    }
    async fn terminal(&self) -> Terminal {
        Terminal::connect(&self.s.iso).await
    }
}

fn code(m: &tsp::iso8583::Message) -> &str {
    m.response_code().unwrap_or("--")
}

#[tokio::test]
async fn approve_repeat_duplicate_and_reuse() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let t = r.token(&ins, json!({})).await;
    let tok = t["token"].as_str().unwrap();
    let mut term = r.terminal().await;

    let req = term.purchase(tok, 15000);
    let ans = term.call(&req).await;
    assert_eq!(ans.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(code(&ans), "00");
    assert_eq!(ans.stan(), req.stan());
    assert_eq!(ans.terminal_id(), req.terminal_id());
    assert_eq!(ans.authorization_code().map(str::len), Some(6));
    assert_eq!(r.sim.used(PAN), 15000);
    // (The card's registration was approved by the issuer too: its token activation request.)
    let approvals = r.sim.stats().approved;
    assert_eq!(approvals, 2);

    // The same request again: the first answer, no second effect at the issuer.
    let again = term.call(&req).await;
    assert_eq!(again.encode().unwrap(), ans.encode().unwrap());
    assert_eq!(r.sim.used(PAN), 15000);
    assert_eq!(r.sim.stats().approved, approvals);

    // The same key with other content: 94.
    let mut changed = req.clone();
    changed.set_amount(16000).unwrap();
    assert_eq!(code(&term.call(&changed).await), "94");

    // The token is used: a new payment with it is 78.
    let reuse = term.purchase(tok, 1000);
    assert_eq!(code(&term.call(&reuse).await), "78");
    let (_, status) = r.s.get(&r.s.keys.app, &format!("/v1/tokens/{}", t["token_ref"].as_str().unwrap())).await;
    assert_eq!(status["status"], "consumed");

    // Stored and visible with the masked PAN and the token reference, never the PAN.
    let (st, txns) = r.s.get(&r.s.keys.app, &format!("/v1/transactions?instrument_id={ins}")).await;
    assert_eq!(st, 200);
    let items = txns["items"].as_array().unwrap();
    let approved: Vec<&Value> = items.iter().filter(|i| i["response_code"] == "00").collect();
    assert_eq!(approved.len(), 1, "{txns}");
    assert_eq!(approved[0]["masked_pan"], "411111******1111");
    assert_eq!(approved[0]["token_ref"], t["token_ref"]);
    assert_eq!(approved[0]["amount"], "15000");
    assert_eq!(approved[0]["currency"], "KRW");
    assert_eq!(approved[0]["kind"], "purchase");
    assert!(!txns.to_string().contains(PAN));
}

#[tokio::test]
async fn declines_and_domain_controls() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut term = r.terminal().await;

    // Over the credit limit: the issuer's 51; the token is released and pays a smaller amount.
    r.sim.set_limit(PAN, 10_000);
    let t = r.token(&ins, json!({})).await;
    let tok = t["token"].as_str().unwrap();
    assert_eq!(code(&term.pay(tok, 20_000).await), "51");
    assert_eq!(code(&term.pay(tok, 5_000).await), "00");

    // Bound to a merchant: elsewhere 57. Over its ceiling: 61.
    let t = r.token(&ins, json!({ "merchant_id": "OTHERSHOP", "max_amount": "3000" })).await;
    let tok = t["token"].as_str().unwrap();
    assert_eq!(code(&term.pay(tok, 1000).await), "57");
    let mut other = r.s.terminal_as("OTHER001", "OTHERSHOP").await;
    assert_eq!(code(&other.pay(tok, 3001).await), "61");
    assert_eq!(code(&other.pay(tok, 3000).await), "00");

    // Bound to another currency: 57.
    let t = r.token(&ins, json!({ "currency": "USD" })).await;
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 1000).await), "57");

    // No DE49: the platform's currency (KRW); an unknown DE49: 12.
    let t = r.token(&ins, json!({})).await;
    let mut no_currency = term.purchase(t["token"].as_str().unwrap(), 1000);
    no_currency.remove(49);
    let mut unknown_currency = no_currency.clone();
    unknown_currency.set_currency_code("999").unwrap();
    unknown_currency.set_stan("777777").unwrap();
    assert_eq!(code(&term.call(&unknown_currency).await), "12");
    assert_eq!(code(&term.call(&no_currency).await), "00");
    // A cancel is in its payment's currency: another configured one 13 (USD cents are not won), an
    // unknown one 12, none the platform's.
    let mut in_usd = term.cancellation(&no_currency, 500);
    in_usd.set_currency_code("840").unwrap();
    assert_eq!(code(&term.call(&in_usd).await), "13");
    let mut in_unknown = term.cancellation(&no_currency, 500);
    in_unknown.set_currency_code("999").unwrap();
    assert_eq!(code(&term.call(&in_unknown).await), "12");
    let mut in_none = term.cancellation(&no_currency, 500);
    in_none.remove(49);
    assert_eq!(code(&term.call(&in_none).await), "00");

    // Unknown token 14; zero amount 13; a wrong DE14 54.
    assert_eq!(code(&term.pay("4610000000000009", 1000).await), "14");
    let t = r.token(&ins, json!({})).await;
    let tok = t["token"].as_str().unwrap();
    assert_eq!(code(&term.pay(tok, 0).await), "13");
    let mut wrong_expiry = term.purchase(tok, 1000);
    wrong_expiry.set_expiry("2001").unwrap();
    assert_eq!(code(&term.call(&wrong_expiry).await), "54");
    let mut right_expiry = term.purchase(tok, 1000);
    right_expiry.set_expiry(t["token_expiry"].as_str().unwrap()).unwrap();
    assert_eq!(code(&term.call(&right_expiry).await), "00");

    // Expired token: 33.
    let t = r.token(&ins, json!({ "ttl_seconds": 1 })).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 1000).await), "33");

    // Suspended card: 62.
    let t = r.token(&ins, json!({})).await;
    r.s.post(&r.s.keys.app, &format!("/v1/instruments/{ins}/suspend"), json!({})).await;
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 1000).await), "62");
}

#[tokio::test]
async fn chip_cryptogram_is_verified_and_answered_with_tag_91() {
    let r = rig().await;
    let ins = r.card("5555555555554444").await;
    let mut term = r.terminal().await;
    let t = r.token(&ins, json!({})).await;
    let (tok, key) = (t["token"].as_str().unwrap(), t["icc_key"].as_str().unwrap());

    let mut req = term.purchase(tok, 15000);
    req.set_pos_entry_mode("071").unwrap();
    req.set_card_sequence_number("000").unwrap();
    let icc = de55(key, 15000, 42, [1, 2, 3, 4]);
    req.set_icc_data(&icc).unwrap();
    let ans = term.call(&req).await;
    assert_eq!(code(&ans), "00");
    // Tag 91 = ARPC method 2 over ARQC ‖ CSU under the same session key, ‖ CSU.
    let de55_out = ans.icc_data().expect("DE55 in the answer");
    let iad = tsp::iso8583::tlv::find(&de55_out, tsp::iso8583::tlv::Tag(0x91)).unwrap().expect("tag 91").to_vec();
    assert_eq!(iad.len(), 8);
    let arqc = tsp::iso8583::tlv::find(&icc, tsp::iso8583::tlv::Tag(0x9F26)).unwrap().unwrap().to_vec();
    let mk = hex::decode(key).unwrap();
    let sk = hsm_sim::crypto::emv::session_key(&mk, &[0, 42, 0, 0, 0, 0, 0, 0]).unwrap();
    let arpc = hsm_sim::crypto::emv::arpc2(&sk[..], &arqc, &iad[4..], &[]).unwrap();
    assert_eq!(&iad[..4], &arpc[..]);

    // A bad cryptogram is 82; the fifth failure locks the token; then even a good one is 78.
    let t = r.token(&ins, json!({})).await;
    let (tok, key) = (t["token"].as_str().unwrap(), t["icc_key"].as_str().unwrap());
    for i in 0..5 {
        let mut bad = term.purchase(tok, 15000);
        bad.set_pos_entry_mode("051").unwrap();
        // The last byte of DE55 is the ARQC's (9F26 is written last): flip one of its bits.
        let mut icc = de55(key, 15000, 7 + i as u16, [9, 9, 9, 9]);
        let n = icc.len();
        icc[n - 1] ^= 0x01;
        bad.set_icc_data(&icc).unwrap();
        assert_eq!(code(&term.call(&bad).await), "82", "attempt {i}");
    }
    let mut good = term.purchase(tok, 15000);
    good.set_pos_entry_mode("051").unwrap();
    good.set_icc_data(&de55(key, 15000, 8, [1, 1, 1, 1])).unwrap();
    assert_eq!(code(&term.call(&good).await), "78");
    let (_, status) = r.s.get(&r.s.keys.app, &format!("/v1/tokens/{}", t["token_ref"].as_str().unwrap())).await;
    assert_eq!(status["status"], "locked");

    // Chip entry without DE55: 30.
    let t = r.token(&ins, json!({})).await;
    let mut no_icc = term.purchase(t["token"].as_str().unwrap(), 1000);
    no_icc.set_pos_entry_mode("051").unwrap();
    assert_eq!(code(&term.call(&no_icc).await), "30");
}

#[tokio::test]
async fn issuer_down_is_91_and_the_issuer_gets_a_0420_when_back() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut term = r.terminal().await;
    let t = r.token(&ins, json!({})).await;
    r.sim.set_offline(true);
    let ans = term.pay(t["token"].as_str().unwrap(), 7000).await;
    assert_eq!(code(&ans), "91");
    assert_eq!(r.sim.stats().received(Mti::REVERSAL_ADVICE), 0);
    r.sim.set_offline(false);
    let mut seen = 0;
    for _ in 0..100 {
        seen = r.sim.stats().received(Mti::REVERSAL_ADVICE);
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen >= 1, "the issuer never received the 0420");
    // A decline released the token: it still pays.
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 7000).await), "00");
}

#[tokio::test]
async fn reversal_rules() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut term = r.terminal().await;

    // Reverse an approved payment: 00, the issuer's open-to-buy restored (by the 0420 it is
    // owed), the token stays used.
    let t = r.token(&ins, json!({})).await;
    let tok = t["token"].as_str().unwrap();
    let pay = term.purchase(tok, 12_000);
    assert_eq!(code(&term.call(&pay).await), "00");
    assert_eq!(r.sim.used(PAN), 12_000);
    let rev = term.reversal_of(&pay);
    let ans = term.call(&rev).await;
    assert_eq!((ans.mti(), code(&ans)), (Mti::REVERSAL_RESPONSE, "00"));
    for _ in 0..100 {
        if r.sim.used(PAN) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(r.sim.used(PAN), 0, "the card reversal reached the issuer");
    assert_eq!(code(&term.pay(tok, 1000).await), "78", "a reversal does not revive a token");
    // The same reversal again: the same answer; a second reversal of the same original: 00, no change.
    assert_eq!(term.call(&rev).await.encode().unwrap(), ans.encode().unwrap());
    let rev2 = term.reversal_of(&pay);
    assert_eq!(code(&term.call(&rev2).await), "00");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.sim.stats().received(Mti::REVERSAL_ADVICE), 1);

    // Reversing a declined original: 00, nothing changes.
    r.sim.set_limit(PAN, 1000);
    let t = r.token(&ins, json!({})).await;
    let declined = term.purchase(t["token"].as_str().unwrap(), 5000);
    assert_eq!(code(&term.call(&declined).await), "51");
    assert_eq!(code(&term.reverse(&declined).await), "00");
    r.sim.set_limit(PAN, 1_000_000);

    // A reversal before its original: 25, remembered; the late original is then declined.
    let t = r.token(&ins, json!({})).await;
    let late = term.purchase(t["token"].as_str().unwrap(), 3000);
    assert_eq!(code(&term.reverse(&late).await), "25");
    let ans = term.call(&late).await;
    assert_eq!(code(&ans), "05", "a late original after its reversal is declined 05 (do not honor)");
    assert_eq!(r.sim.used(PAN), 0, "the late original never reached the issuer");
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 3000).await), "00", "its token is still live");
}

#[tokio::test]
async fn malformed_frames_get_30_or_close_and_other_connections_live_on() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut good = r.terminal().await;

    let mut bad = r.terminal().await;
    // A bitmap naming fields that are absent: the MTI is readable, so 30 comes back.
    bad.send_raw(b"0200723C000000000000").await;
    let ans = bad.recv().await.expect("an answer to an identifiable message");
    assert_eq!((ans.mti(), code(&ans)), (Mti::FINANCIAL_RESPONSE, "30"));
    // A truncated message whose STAN and terminal were readable: 30 echoing them.
    let mut req = bad.purchase("4610000000000009", 1000);
    req.remove(49);
    let mut bytes = req.encode().unwrap();
    bytes.truncate(bytes.len() - 3);
    bad.send_raw(&bytes).await;
    let ans = bad.recv().await.expect("30");
    assert_eq!(code(&ans), "30");
    // Pure garbage: nothing identifiable to answer; the connection stays usable.
    bad.send_raw(b"\x00\x01garbage\xff").await;
    let t = r.token(&ins, json!({})).await;
    let ans = bad.pay(t["token"].as_str().unwrap(), 1000).await;
    assert_eq!(code(&ans), "00");
    // A length prefix over the limit: closed.
    bad.stream.write_all(&[0xFF, 0xFF]).await.unwrap();
    assert!(bad.recv().await.is_none());

    // The other connection never noticed.
    let t = r.token(&ins, json!({})).await;
    assert_eq!(code(&good.pay(t["token"].as_str().unwrap(), 1000).await), "00");
    let mut echo = tsp::iso8583::Message::new(Mti::NETWORK_REQUEST);
    echo.set_transmission_date_time("1123103000").unwrap();
    echo.set_stan("999999").unwrap();
    echo.set_network_management_code("301").unwrap();
    let ans = good.call(&echo).await;
    assert_eq!((ans.mti(), code(&ans)), (Mti::NETWORK_RESPONSE, "00"));
}

#[tokio::test]
async fn pipelined_requests_are_answered_as_they_complete() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut term = r.terminal().await;
    let mut sent = Vec::new();
    for _ in 0..20 {
        let t = r.token(&ins, json!({})).await;
        sent.push(term.purchase(t["token"].as_str().unwrap(), 1000));
    }
    for m in &sent {
        term.send_raw(&m.encode().unwrap()).await;
    }
    let mut stans = std::collections::HashSet::new();
    for _ in 0..20 {
        let ans = term.recv().await.expect("an answer");
        assert_eq!(code(&ans), "00");
        stans.insert(ans.stan().unwrap().to_string());
    }
    let want: std::collections::HashSet<String> = sent.iter().map(|m| m.stan().unwrap().to_string()).collect();
    assert_eq!(stans, want);
}

use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn an_independent_pyiso8583_terminal_pays_and_reverses() {
    let s = TestServer::start().await;
    s.register_terminal("PYTERM01", "PYMERCHANT00001").await;
    let (_, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": PAN, "expiry": "3012" })).await;
    let (_, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    let (host, port) = s.iso.rsplit_once(':').unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyiso_client.py");
    let token = t["token"].as_str().unwrap().to_string();
    let (host, port) = (host.to_string(), port.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args([script, &host, &port, &token]).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pyiso8583 client: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((v["purchase"].as_str(), v["reversal"].as_str()), (Some("00"), Some("00")));
    // This used the default configuration: the in-process issuer simulator.
    let (_, txns) =
        s.get(&s.keys.app, &format!("/v1/transactions?instrument_id={}", ins["id"].as_str().unwrap())).await;
    let kinds: Vec<&str> = txns["items"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"reversed"), "{txns}");
}

#[tokio::test]
async fn a_running_tsp_issuer_sim_is_the_issuer_host() {
    // The real `tsp issuer-sim` binary, with a credit limit of 10,000 KRW.
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_tsp"))
        .args(["issuer-sim", "--listen", "127.0.0.1:0", "--limit", "10000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sim.stdout.take().unwrap()), &mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = tsp::config::DEFAULT_TOML.replace("[[issuers]]\n", &format!("[[issuers]]\nhost = \"tcp://{addr}\"\n"));
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let s = TestServer::start_with(dir, &["--config", path.to_str().unwrap()]).await;
    let (_, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": PAN, "expiry": "3012" })).await;
    let mut term = Terminal::connect(&s.iso).await;
    let (_, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 12_000).await), "51", "the issuer-sim's limit applies");
    assert_eq!(code(&term.pay(t["token"].as_str().unwrap(), 9_000).await), "00");
    let _ = sim.kill();
    let _ = sim.wait();
}

#[tokio::test]
async fn card_cancellation_partial_repeated_and_capped() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut term = r.terminal().await;
    let t = r.token(&ins, json!({})).await;
    let pay = term.purchase(t["token"].as_str().unwrap(), 30_000);
    assert_eq!(code(&term.call(&pay).await), "00");
    assert_eq!(r.sim.used(PAN), 30_000);

    // Two partial cancels, forwarded to the issuer as refunds.
    assert_eq!(code(&term.cancel(&pay, 10_000).await), "00");
    assert_eq!(r.sim.used(PAN), 20_000);
    assert_eq!(code(&term.cancel(&pay, 15_000).await), "00");
    assert_eq!(r.sim.used(PAN), 5_000);
    // Above what is left: 64, and nothing reaches the issuer.
    assert_eq!(code(&term.cancel(&pay, 6_000).await), "64");
    assert_eq!(r.sim.used(PAN), 5_000);
    // The rest, then nothing more.
    assert_eq!(code(&term.cancel(&pay, 5_000).await), "00");
    assert_eq!(code(&term.cancel(&pay, 1).await), "64");
    assert_eq!(r.sim.used(PAN), 0);

    let (_, txns) = r.s.get(&r.s.keys.app, &format!("/v1/transactions?instrument_id={ins}")).await;
    let items = txns["items"].as_array().unwrap();
    let cancels: Vec<&Value> = items.iter().filter(|i| i["kind"] == "cancel" && i["response_code"] == "00").collect();
    assert_eq!(cancels.len(), 3);
    assert!(cancels.iter().all(|c| c["cancel_type"] == "void"), "same business day: voids ({txns})");
    let purchase = items.iter().find(|i| i["kind"] == "purchase").unwrap();
    assert_eq!(purchase["cancelled_amount"], "30000");

    // Unknown original: 25. A reversed payment cannot be cancelled: 12.
    let t = r.token(&ins, json!({})).await;
    let never = term.purchase(t["token"].as_str().unwrap(), 1000);
    assert_eq!(code(&term.cancel(&never, 500).await), "25");
    let paid = term.purchase(t["token"].as_str().unwrap(), 2000);
    assert_eq!(code(&term.call(&paid).await), "00");
    assert_eq!(code(&term.reverse(&paid).await), "00");
    assert_eq!(code(&term.cancel(&paid, 500).await), "12");
}

#[tokio::test]
async fn void_before_the_settlement_refund_after() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut term = r.terminal().await;
    let t1 = r.token(&ins, json!({})).await;
    let t2 = r.token(&ins, json!({})).await;
    let p1 = term.purchase(t1["token"].as_str().unwrap(), 10_000);
    let p2 = term.purchase(t2["token"].as_str().unwrap(), 10_000);
    assert_eq!(code(&term.call(&p1).await), "00");
    assert_eq!(code(&term.call(&p2).await), "00");
    assert_eq!(code(&term.cancel(&p1, 1_000).await), "00");

    // The operator closes the day over REST; a second time with the CLI (the same database).
    let (st, stl) = r.s.post(&r.s.keys.admin, "/v1/admin/settlements", json!({})).await;
    assert_eq!(st, 201, "{stl}");
    let (st, _) = r.s.post(&r.s.keys.app, "/v1/admin/settlements", json!({})).await;
    assert_eq!(st, 403);
    assert_eq!(code(&term.cancel(&p1, 1_000).await), "00");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_tsp")).arg("settle").args(r.s.storage_args()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(code(&term.cancel(&p2, 2_000).await), "00");

    let (_, txns) = r.s.get(&r.s.keys.app, &format!("/v1/transactions?instrument_id={ins}")).await;
    let mut types: Vec<(String, String)> = txns["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "cancel")
        .map(|i| (i["amount"].as_str().unwrap().to_string(), i["cancel_type"].as_str().unwrap().to_string()))
        .collect();
    types.sort();
    assert_eq!(
        types,
        vec![("1000".into(), "refund".into()), ("1000".into(), "void".into()), ("2000".into(), "refund".into())]
    );
}

#[tokio::test]
async fn a_reversed_cancel_gives_its_amount_back() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let mut term = r.terminal().await;
    let t = r.token(&ins, json!({})).await;
    let pay = term.purchase(t["token"].as_str().unwrap(), 10_000);
    assert_eq!(code(&term.call(&pay).await), "00");
    let mut cancel = term.purchase(t["token"].as_str().unwrap(), 10_000);
    cancel.set_processing_code("200000").unwrap();
    cancel
        .set_original_data(
            &tsp::iso8583::OriginalData::new(
                pay.mti(),
                pay.stan().unwrap(),
                pay.transmission_date_time().unwrap(),
                "12345",
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(code(&term.call(&cancel).await), "00");
    assert_eq!(code(&term.cancel(&pay, 1).await), "64");
    assert_eq!(code(&term.reverse(&cancel).await), "00");
    // The issuer learns of the reversed refund through the 0420 it is owed.
    for _ in 0..100 {
        if r.sim.stats().received(Mti::REVERSAL_ADVICE) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(r.sim.used(PAN), 10_000, "the refund was undone at the issuer");
    assert_eq!(code(&term.cancel(&pay, 4_000).await), "00", "the reversed cancel's amount is cancellable again");
}

/// The checks read before the request is claimed; a refusal that counts against the token is
/// recorded once, by the request that claimed the key: its repeats get the first answer and cost
/// the token nothing more.
#[tokio::test]
async fn a_repeated_refusal_counts_against_the_token_once() {
    let r = rig().await;
    let ins = r.card(PAN).await;
    let t = r.token(&ins, json!({ "merchant_id": "OTHERSHOP" })).await;
    let tok = t["token"].as_str().unwrap();
    let mut term = r.terminal().await;
    let wrong_shop = term.purchase(tok, 1000);
    let first = term.call(&wrong_shop).await;
    assert_eq!(code(&first), "57");
    for _ in 0..6 {
        let again = term.call(&wrong_shop).await;
        assert_eq!(again.encode().unwrap(), first.encode().unwrap(), "a repeat gets the first answer");
    }
    let pool = r.s.database().await;
    let (failed, state): (i64, String) = sqlx::query_as("SELECT failed_attempts, state FROM tokens WHERE token = $1")
        .bind(tok)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!((failed, state.as_str()), (1, "active"), "seven copies of one request are one failed attempt");
    // The token still pays where it belongs.
    let mut shop = r.s.terminal_as("OTHER001", "OTHERSHOP").await;
    assert_eq!(code(&shop.pay(tok, 1000).await), "00");
}
