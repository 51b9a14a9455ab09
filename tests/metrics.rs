//! `GET /metrics` against the real binary: what was done shows up, counted where it happened, in the
//! Prometheus text format, with no PAN in it; request ids reach the logs and come back to the client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::{TestServer, card};
use serde_json::json;
use tsp::iso8583::{Message, Mti};

/// The value of the sample `name{labels…}` (every `k="v"` of `labels` present), if any.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let ok = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        ok.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let s = TestServer::start().await;
    let pan = card("411111", 271_828_182, 16);
    let (st, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
    assert_eq!(st, 201);
    let (_, t1) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    let (_, _t2) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    assert_eq!(term.pay(t1["token"].as_str().unwrap(), 1500).await.response_code(), Some("00"));
    assert_eq!(term.pay("4610009999999995", 1500).await.response_code(), Some("14"));
    let mut echo = Message::new(Mti::NETWORK_REQUEST);
    echo.set(11, "000777").unwrap();
    echo.set(70, "301").unwrap();
    assert_eq!(term.call(&echo).await.response_code(), Some("00"));

    // A request id chosen by the client comes back and is in the log lines of its request.
    let r = s
        .http
        .get(s.url("/v1/instruments"))
        .bearer_auth(&s.keys.app)
        .header("X-Request-Id", "trace-me-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-4711");
    let r = s.http.get(s.url("/v1/instruments")).bearer_auth(&s.keys.app).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 32, "a fresh UUIDv7 otherwise");
    let r = s.http.get(s.url("/v1/instruments")).header("X-Request-Id", "no spaces allowed").send().await.unwrap();
    assert_ne!(r.headers()["x-request-id"], "no spaces allowed");

    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let m = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
    let post_instruments = [("method", "POST"), ("route", "/v1/instruments"), ("status", "201")];
    assert_eq!(m("tsp_http_requests_total", &post_instruments), Some(1.0), "{text}");
    assert_eq!(m("tsp_http_requests_total", &[("route", "/v1/tokens"), ("status", "201")]), Some(2.0));
    assert_eq!(m("tsp_http_requests_total", &[("route", "/v1/instruments"), ("status", "401")]), Some(1.0));
    assert_eq!(m("tsp_http_request_duration_seconds_count", &[("route", "/v1/tokens")]), Some(2.0));
    assert_eq!(m("tsp_iso_requests_total", &[("mti", "0200"), ("code", "00")]), Some(1.0));
    assert_eq!(m("tsp_iso_requests_total", &[("mti", "0200"), ("code", "14")]), Some(1.0));
    assert_eq!(m("tsp_iso_requests_total", &[("mti", "0800"), ("code", "00")]), Some(1.0));
    assert_eq!(m("tsp_iso_request_duration_seconds_count", &[("mti", "0200")]), Some(2.0));
    assert_eq!(m("tsp_tokens_issued_total", &[]), Some(2.0));
    assert_eq!(m("tsp_tokens_consumed_total", &[("kind", "card")]), Some(1.0));
    // The card's PAN was sealed once and opened once (for the issuer), each an HSM call.
    assert!(m("tsp_hsm_operations_total", &[("op", "aead_encrypt"), ("outcome", "ok")]) >= Some(1.0));
    assert!(m("tsp_hsm_operations_total", &[("op", "aead_decrypt"), ("outcome", "ok")]) >= Some(1.0));
    assert!(m("tsp_hsm_operation_duration_seconds_count", &[("op", "hmac")]) >= Some(2.0));
    assert!(m("tsp_db_connections", &[("state", "open")]) >= Some(1.0));
    if !common::on_postgres() {
        assert!(m("tsp_db_group_commits_total", &[]) >= Some(5.0));
        assert!(m("tsp_db_writes_per_commit_count", &[]) >= Some(5.0));
    }
    assert!(!text.contains(&pan) && !text.contains(&pan[6..12]));

    let log = std::fs::read_to_string(s.stderr_path()).unwrap();
    assert!(log.lines().any(|l| l.contains("trace-me-4711") && l.contains("http")), "the request id names its lines");
    // ISO 8583 requests run in their own span too: the issuer call's lines carry it.
    assert!(log.lines().any(|l| l.contains("iso{id=")), "ISO request spans in the log");
}

/// Nothing a client chooses becomes a label or a kept request id: an HTTP method made of a card
/// number, an MTI no one uses, a request id shaped like a card number. And API answers are never
/// cached on the way (a detokenize answer holds a PAN).
#[tokio::test]
async fn clients_choose_no_label_and_no_request_id_that_could_be_a_card_number() {
    let s = TestServer::start().await;
    let pan = card("411111", 314_159_265, 16);
    let method = reqwest::Method::from_bytes(pan.as_bytes()).unwrap();
    let r = s.http.request(method, s.url("/v1/instruments")).send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let mut odd = Message::new(Mti::from_bytes(b"0900").unwrap());
    odd.set(11, "000778").unwrap();
    odd.set(41, "TERM0001").unwrap();
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    assert_eq!(term.call(&odd).await.response_code(), Some("12"));

    let r = s
        .http
        .get(s.url("/v1/instruments"))
        .bearer_auth(&s.keys.app)
        .header("X-Request-Id", &pan)
        .send()
        .await
        .unwrap();
    let echoed = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(echoed, pan);
    assert_eq!(echoed.len(), 32, "a fresh id instead");
    let dashed = format!("{}-{}-{}-{}", &pan[..4], &pan[4..8], &pan[8..12], &pan[12..]);
    let r = s
        .http
        .get(s.url("/v1/instruments"))
        .bearer_auth(&s.keys.app)
        .header("X-Request-Id", &dashed)
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"].to_str().unwrap(), dashed);

    let text = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains(&pan[..12]), "a client-chosen method is not a label");
    assert!(sample(&text, "tsp_http_requests_total", &[("method", "other")]).is_some(), "{text}");
    assert!(sample(&text, "tsp_iso_requests_total", &[("mti", "other"), ("code", "12")]).is_some(), "{text}");
    assert!(!text.contains("mti=\"0900\""), "an unused MTI is not a label");
    let log = std::fs::read_to_string(s.stderr_path()).unwrap();
    assert!(!log.contains(&pan) && !log.contains(&dashed), "no card-shaped request id in the log");

    // Detokenize, like every API answer, is not to be stored by a cache.
    let (st, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
    assert_eq!(st, 201, "{ins}");
    let (_, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    let r = s
        .http
        .post(s.url("/v1/detokenize"))
        .bearer_auth(&s.keys.van)
        .json(&json!({ "token": t["token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
}
