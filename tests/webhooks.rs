//! Notifications to token requestors (issue 19, docs/webhooks.md), over real HTTP: a receiver in the
//! test verifies every signature and sequence number; with the receiver down for a while events
//! arrive later, in order, once per id; a delivery that fails past the retry window is dead and a
//! replay revives it; two nodes deliver each event once. The signature is also checked by the
//! Python recipe of the docs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use common::iso::Terminal;
use serde_json::{Value, json};

const PAN: &str = "4111111111111111";

/// One delivery the receiver accepted.
#[derive(Clone, Debug)]
struct Got {
    event_id: String,
    signature: String,
    body: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver: answers 200 and keeps what it got while up, 503 while down.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    up: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/tsp", listener.local_addr().unwrap());
        let r = Receiver { url, got: Arc::default(), up: Arc::new(AtomicBool::new(true)), refused: Arc::default() };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hooks/tsp",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    if !state.up.load(Ordering::SeqCst) {
                        state.refused.fetch_add(1, Ordering::SeqCst);
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    state.got.lock().unwrap().push(Got {
                        event_id: h("tsp-event-id"),
                        signature: h("tsp-signature"),
                        body,
                    });
                    axum::http::StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until it has accepted `n` deliveries (at most 30 s).
    async fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "only {} of {n} deliveries arrived: {got:#?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A server whose webhooks retry quickly: every 100 ms at first, at most 400 ms apart, for
/// `retry_for_seconds`.
async fn server(retry_for_seconds: u64) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let config = tsp::config::DEFAULT_TOML.replace(
        "[webhooks]\n",
        &format!(
            "[webhooks]\npoll_ms = 50\nbackoff_ms = 100\nmax_backoff_ms = 400\nretry_for_seconds = {retry_for_seconds}\n"
        ),
    );
    assert!(config.contains("retry_for_seconds"), "the demo config has a [webhooks] section");
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap().to_string();
    TestServer::start_with(dir, &["--config", &path]).await
}

/// Registers an endpoint for the demo app; its id and signing secret.
async fn endpoint(s: &TestServer, url: &str) -> (String, String) {
    let (st, v) = s.post(&s.keys.app, "/v1/webhooks", json!({ "url": url })).await;
    assert_eq!(st, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{v}");
    (v["id"].as_str().unwrap().to_string(), secret)
}

/// Checks a delivery's signature as a receiver does: `t=<unix>,v1=<hex HMAC-SHA256 over "t.body">`
/// under the secret's bytes, the timestamp recent, the event id header the body's.
fn verify(g: &Got, secret: &str) {
    let (t, v1) = g.signature.split_once(",v1=").expect("t=…,v1=…");
    let t: i64 = t.strip_prefix("t=").expect("t=").parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - t).abs() < 300, "a recent timestamp: {t} vs {now}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let expected = ring::hmac::sign(&key, format!("{t}.{}", g.body).as_bytes());
    assert_eq!(v1, hex::encode(expected.as_ref()), "signature of {}", g.body);
    // With another secret, or another body, it does not verify.
    let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"whsec_not_the_secret");
    assert_ne!(v1, hex::encode(ring::hmac::sign(&other, format!("{t}.{}", g.body).as_bytes()).as_ref()));
    assert_eq!(g.event_id, g.json()["id"].as_str().unwrap());
}

async fn card(s: &TestServer) -> String {
    let (st, v) = s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": PAN, "expiry": "3012" })).await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn token(s: &TestServer, ins: &str) -> Value {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins })).await;
    assert_eq!(st, 201, "{t}");
    t
}

fn kinds(got: &[Got]) -> Vec<String> {
    got.iter().map(|g| g.json()["type"].as_str().unwrap().to_string()).collect()
}

fn sequences(got: &[Got]) -> Vec<i64> {
    got.iter().map(|g| g.json()["sequence"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn events_arrive_signed_in_order_and_after_an_outage_once_per_id() {
    let s = server(600).await;
    let rx = Receiver::start(Duration::ZERO).await;
    let (endpoint_id, secret) = endpoint(&s, &rx.url).await;
    let (st, list) = s.get(&s.keys.app, "/v1/webhooks").await;
    assert_eq!((st, list["items"][0]["id"].as_str()), (200, Some(endpoint_id.as_str())));
    assert!(list["items"][0].get("secret").is_none(), "the secret is shown once: {list}");

    // Register, tokenize, suspend, resume, pay.
    let ins = card(&s).await;
    let t = token(&s, &ins).await;
    let tref = t["token_ref"].as_str().unwrap();
    assert_eq!(s.post(&s.keys.app, &format!("/v1/tokens/{tref}/suspend"), json!({})).await.0, 200);
    assert_eq!(s.post(&s.keys.app, &format!("/v1/tokens/{tref}/resume"), json!({})).await.0, 200);
    let mut term = Terminal::connect(&s.iso).await;
    let ans = term.pay(t["token"].as_str().unwrap(), 15_000).await;
    assert_eq!(ans.response_code(), Some("00"));

    let got = rx.wait_for(6).await;
    assert_eq!(
        kinds(&got),
        [
            "instrument.created",
            "token.created",
            "token.suspended",
            "token.resumed",
            "token.consumed",
            "payment.approved"
        ]
    );
    assert_eq!(sequences(&got), [1, 2, 3, 4, 5, 6]);
    for g in &got {
        verify(g, &secret);
        let v = g.json();
        assert_eq!(v["instrument_id"], ins.as_str());
        assert!(!g.body.contains(PAN), "no clear PAN in an event: {}", g.body);
    }
    let paid = got[5].json();
    assert_eq!(
        (paid["data"]["amount"].as_str(), paid["data"]["response_code"].as_str(), paid["data"]["token_ref"].as_str()),
        (Some("15000"), Some("00"), Some(tref))
    );
    assert_eq!(paid["data"]["masked_pan"].as_str(), Some("411111******1111"));

    // The same recipe in Python (docs/webhooks.md) accepts a delivery and refuses a forged one.
    let recipe = r#"
import hashlib, hmac, sys, time
def verify(secret, header, body, tolerance=300):
    fields = dict(part.split("=", 1) for part in header.split(","))
    t, v1 = fields["t"], fields["v1"]
    if abs(time.time() - int(t)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, v1)
secret, header, body = sys.argv[1], sys.argv[2], sys.argv[3].encode()
print(verify(secret, header, body), verify(secret, header, body.replace(b"15000", b"15001")))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", recipe, &secret, &got[5].signature, &got[5].body])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True False", "{}", String::from_utf8_lossy(&out.stderr));

    // The receiver goes down: the next events are retried until it is back, then arrive in order.
    rx.up.store(false, Ordering::SeqCst);
    let t2 = token(&s, &ins).await;
    let t2ref = t2["token_ref"].as_str().unwrap();
    assert_eq!(s.delete(&s.keys.app, &format!("/v1/tokens/{t2ref}")).await.0, 200);
    assert_eq!(s.post(&s.keys.app, &format!("/v1/instruments/{ins}/suspend"), json!({})).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.refused.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the endpoint was not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Meanwhile the API says where they stand: the first waits, retried; the others behind it.
    let (_, events) = s.get(&s.keys.app, &format!("/v1/events?instrument_id={ins}")).await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 9, "{events}");
    let d = &items[6]["deliveries"][0];
    assert_eq!((d["state"].as_str(), d["last_status"].as_i64()), (Some("pending"), Some(503)), "{d}");
    assert!(d["attempts"].as_i64().unwrap() >= 2, "{d}");
    assert_eq!(items[0]["deliveries"][0]["state"], "delivered");
    rx.up.store(true, Ordering::SeqCst);
    let got = rx.wait_for(9).await;
    assert_eq!(&kinds(&got)[6..], ["token.created", "token.deleted", "instrument.suspended"]);
    assert_eq!(sequences(&got), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for g in &got[6..] {
        verify(g, &secret);
    }
    // Exactly once per id: nothing more comes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = rx.got();
    let mut ids: Vec<&str> = got.iter().map(|g| g.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (9, 9));

    // A replay sends an event again, with its id (receivers drop the duplicate).
    let first = got[0].event_id.clone();
    let (st, v) = s.post(&s.keys.app, &format!("/v1/events/{first}/replay"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    let got = rx.wait_for(10).await;
    assert_eq!(got[9].event_id, first);
    verify(&got[9], &secret);

    // Another requestor sees none of it.
    let (st, other) =
        s.post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": "other wallet", "scopes": ["tokens"] })).await;
    assert_eq!(st, 201);
    let other = other["api_key"].as_str().unwrap();
    let (st, v) = s.get(other, &format!("/v1/events/{first}")).await;
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("event_not_found")));
    let (_, v) = s.get(other, "/v1/events").await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0));
    let (st, _) = s.delete(other, &format!("/v1/webhooks/{endpoint_id}")).await;
    assert_eq!(st, 404);

    // A disabled endpoint gets nothing more.
    let (st, v) = s.delete(&s.keys.app, &format!("/v1/webhooks/{endpoint_id}")).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("disabled")));
    let _ = token(&s, &card_b(&s).await).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.got().len(), 10);
}

/// A second card of the demo app (the first is suspended by then).
async fn card_b(s: &TestServer) -> String {
    let (st, v) = s
        .post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": "5555555555554444", "expiry": "3012" }))
        .await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_delivery_failing_past_the_retry_window_is_dead_and_a_replay_revives_it() {
    let s = server(1).await;
    let rx = Receiver::start(Duration::ZERO).await;
    rx.up.store(false, Ordering::SeqCst);
    let (_, secret) = endpoint(&s, &rx.url).await;
    let ins = card(&s).await;
    let (_, events) = s.get(&s.keys.app, "/v1/events").await;
    let id = events["items"][0]["id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (_, e) = s.get(&s.keys.app, &format!("/v1/events/{id}")).await;
        if e["deliveries"][0]["state"] == "dead" {
            break e;
        }
        assert!(Instant::now() < deadline, "never dead: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = &dead["deliveries"][0];
    assert!(d["attempts"].as_i64().unwrap() >= 2, "retried before giving up: {d}");
    assert_eq!((d["last_status"].as_i64(), d["next_attempt_at"].as_str()), (Some(503), None), "{d}");

    // A dead delivery does not hold up the next events.
    rx.up.store(true, Ordering::SeqCst);
    let _ = token(&s, &ins).await;
    let got = rx.wait_for(1).await;
    assert_eq!(kinds(&got), ["token.created"]);
    // The replay brings the dead one.
    let (st, v) = s.post(&s.keys.app, &format!("/v1/events/{id}/replay"), json!({})).await;
    assert_eq!((st, v["deliveries"][0]["state"].as_str()), (200, Some("pending")), "{v}");
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].event_id, id);
    verify(&got[1], &secret);
    // The receiver has it before the sender has read the answer and marked it delivered: wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, e) = s.get(&s.keys.app, &format!("/v1/events/{id}")).await;
        if e["deliveries"][0]["state"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "never marked delivered: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_nodes_deliver_each_event_once() {
    let a = server(600).await;
    let b = a.another_node().await;
    // A slow receiver: both nodes have due deliveries at the same moments.
    let rx = Receiver::start(Duration::from_millis(20)).await;
    let (_, secret) = endpoint(&a, &rx.url).await;
    let ins = card(&a).await;
    let mut expected = 1;
    for i in 0..12 {
        let node = if i % 2 == 0 { &a } else { &b };
        let _ = token(node, &ins).await;
        expected += 1;
    }
    let got = rx.wait_for(expected).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got_after = rx.got();
    assert_eq!(got_after.len(), got.len(), "nothing delivered twice");
    let mut ids: Vec<&str> = got_after.iter().map(|g| g.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected);
    assert_eq!(sequences(&got_after), (1..=expected as i64).collect::<Vec<_>>(), "in order");
    for g in &got_after {
        verify(g, &secret);
    }
}
