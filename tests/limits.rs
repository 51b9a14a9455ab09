//! Abuse limits against the real binary: per-requestor token and detokenize rates (429 with
//! `Retry-After`), refused API keys that stop being looked up, the ISO 8583 per-connection rate (`91`,
//! nothing processed), the slow-sender frame timeout, and a flooded connection that does not hold up
//! another one's payments.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, card};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsp::iso8583::{Message, Mti};

/// A server whose `[limits]` are `overrides` (`key = value` lines) on top of the demo configuration.
async fn server_with_limits(overrides: &[(&str, &str)]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = include_str!("../config/default.toml").to_string();
    for (key, value) in overrides {
        let line =
            cfg.lines().find(|l| l.starts_with(&format!("{key} ="))).unwrap_or_else(|| panic!("{key}")).to_string();
        cfg = cfg.replace(&line, &format!("{key} = {value}"));
    }
    let path = dir.path().join("limits.toml");
    std::fs::write(&path, cfg).unwrap();
    let path = path.to_string_lossy().to_string();
    TestServer::start_with(dir, &["--config", &path]).await
}

fn echo(stan: u32) -> Message {
    let mut m = Message::new(Mti::NETWORK_REQUEST);
    m.set(11, &format!("{stan:06}")).unwrap();
    m.set(70, "301").unwrap();
    m
}

#[tokio::test]
async fn rest_rates_answer_429_with_retry_after() {
    let s = server_with_limits(&[
        ("tokens_per_second", "1"),
        ("tokens_burst", "3"),
        ("detokenize_per_second", "1"),
        ("detokenize_burst", "1"),
        ("auth_failures_per_second", "1"),
        ("auth_failures_burst", "3"),
    ])
    .await;
    let (_, ins) = s
        .post(
            &s.keys.app,
            "/v1/instruments",
            json!({ "type": "card", "pan": card("411111", 577_215_664, 16), "expiry": "3106" }),
        )
        .await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
        assert_eq!(st, 201);
        tokens.push(t["token"].as_str().unwrap().to_string());
    }
    let r = s
        .http
        .post(s.url("/v1/tokens"))
        .bearer_auth(&s.keys.app)
        .json(&json!({ "instrument_id": ins["id"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // Another requestor has its own allowance.
    let (st, other) = s
        .post(&s.keys.admin, "/v1/admin/requestors", json!({ "name": "other", "scopes": ["instruments", "tokens"] }))
        .await;
    assert_eq!(st, 201);
    let other_key = other["api_key"].as_str().unwrap().to_string();
    let (_, ins2) = s
        .post(
            &other_key,
            "/v1/instruments",
            json!({ "type": "card", "pan": card("555555", 141_421_356, 16), "expiry": "3106" }),
        )
        .await;
    assert_eq!(s.post(&other_key, "/v1/tokens", json!({ "instrument_id": ins2["id"] })).await.0, 201);

    // After Retry-After, the first requestor issues again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await.0, 201);

    // Detokenize: one, then 429.
    assert_eq!(s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tokens[0] })).await.0, 200);
    let r = s
        .http
        .post(s.url("/v1/detokenize"))
        .bearer_auth(&s.keys.van)
        .json(&json!({ "token": tokens[1] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // A source that keeps sending wrong secrets is refused with 429 without being looked up — even
    // for the real key id it names: its owner, elsewhere, is not locked out. (Three refusals spend
    // the allowance; the fourth finds it spent and blocks the source.) The attacker is 127.0.0.2.
    let attacker = reqwest::Client::builder().local_address("127.0.0.2".parse().ok()).build().unwrap();
    let (key_id, _) = s.keys.app.strip_prefix("tsp_").unwrap().split_once('_').unwrap();
    let bad = format!("tsp_{key_id}_{}", "A".repeat(32));
    let attempt = || async { attacker.get(s.url("/v1/instruments")).bearer_auth(&bad).send().await.unwrap() };
    for _ in 0..4 {
        assert_eq!(attempt().await.status(), 401);
    }
    for _ in 0..20 {
        let r = attempt().await;
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        // The owner's right secret works throughout the flood.
        assert_eq!(s.get(&s.keys.app, "/v1/instruments").await.0, 200);
    }
}

#[tokio::test]
async fn connections_past_the_caps_are_refused_clearly_and_the_rest_serve_on() {
    let s = server_with_limits(&[("http_max_connections", "4"), ("iso_max_connections", "3")]).await;
    // Three idle ISO 8583 connections fill the cap: a fourth is closed unread.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&s.iso).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = tokio::net::TcpStream::connect(&s.iso).await.unwrap();
    let frame = echo(1).encode().unwrap();
    let mut framed = (frame.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&frame);
    let _ = extra.write_all(&framed).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "closed unread: {read:?}");
    // Four idle HTTP connections fill that cap: a fifth is answered 503 and closed.
    let mut held = Vec::new();
    for _ in 0..4 {
        let addr = s.url("/").trim_start_matches("http://").trim_end_matches('/').to_string();
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let r = fresh.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "connections_exhausted");
    // Once the idle ones go, both fronts serve again, and the refusals were counted.
    drop(idle);
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = fresh.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let refused = |front: &str| {
        let series = format!("tsp_connections_refused_total{{front=\"{front}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
    };
    assert!(refused("iso") >= 1.0 && refused("http") >= 1.0, "{text}");
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    assert_eq!(term.call(&echo(2)).await.response_code(), Some("00"));
}

#[tokio::test]
async fn an_iso_connection_over_its_rate_gets_91_and_nothing_happens() {
    let s = server_with_limits(&[("iso_requests_per_second", "2"), ("iso_burst", "4")]).await;
    let (_, ins) = s
        .post(
            &s.keys.app,
            "/v1/instruments",
            json!({ "type": "card", "pan": card("411111", 693_147_180, 16), "expiry": "3106" }),
        )
        .await;
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    let mut purchases = Vec::new();
    for _ in 0..8 {
        let (_, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
        purchases.push(term.purchase(t["token"].as_str().unwrap(), 1000));
    }
    // All eight at once: the burst of four is handled, the rest answered 91 unprocessed.
    for p in &purchases {
        term.send_raw(&p.encode().unwrap()).await;
    }
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(term.recv().await.unwrap().response_code().unwrap().to_string());
    }
    let approved = codes.iter().filter(|c| *c == "00").count();
    let throttled = codes.iter().filter(|c| *c == "91").count();
    assert_eq!((approved + throttled, approved >= 4, throttled >= 3), (8, true, true), "{codes:?}");
    let pool = s.database().await;
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM transactions").fetch_one(&pool).await.unwrap();
    assert_eq!(rows as usize, approved, "a throttled request leaves no trace");
    // Sent again later, a throttled purchase is processed as new.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answers: Vec<Message> = {
        let mut out = Vec::new();
        for p in &purchases {
            out.push(term.call(p).await);
        }
        out
    };
    assert!(answers.iter().all(|a| a.response_code() == Some("00") || a.response_code() == Some("91")));
    assert!(answers.iter().filter(|a| a.response_code() == Some("00")).count() >= 2);
    pool.close().await;
}

#[tokio::test]
async fn a_stalled_frame_closes_only_its_connection() {
    let s = server_with_limits(&[("iso_frame_timeout_ms", "300")]).await;
    let mut slow = tokio::net::TcpStream::connect(&s.iso).await.unwrap();
    // A length of 100 and then only 10 bytes.
    slow.write_all(&[0, 100]).await.unwrap();
    slow.write_all(&[b'0'; 10]).await.unwrap();
    let mut other = common::iso::Terminal::connect(&s.iso).await;
    assert_eq!(other.call(&echo(1)).await.response_code(), Some("00"));
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the stalled connection is closed: {closed:?}");
    assert_eq!(other.call(&echo(2)).await.response_code(), Some("00"));
}

/// docs/operations.md "Abuse limits": with one connection flooding at its limits, another
/// connection's payments are still answered within two seconds each.
#[tokio::test]
async fn a_flooding_connection_does_not_hold_up_another() {
    let s = TestServer::start().await;
    let (_, ins) = s
        .post(
            &s.keys.app,
            "/v1/instruments",
            json!({ "type": "card", "pan": card("555555", 173_205_080, 16), "expiry": "3106" }),
        )
        .await;
    let mut tokens = Vec::new();
    for _ in 0..10 {
        let (_, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
        tokens.push(t["token"].as_str().unwrap().to_string());
    }
    let iso = s.iso.clone();
    let flood = tokio::spawn(async move {
        let f = tokio::net::TcpStream::connect(&iso).await.unwrap();
        let frames: Vec<u8> = (0..20_000u32)
            .flat_map(|i| {
                let body = echo(i % 999_999 + 1).encode().unwrap();
                let mut out = (body.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&body);
                out
            })
            .collect();
        // Written as fast as the socket takes them; answers are read and dropped.
        let (mut rd, mut wr) = f.into_split();
        let writer = async move { wr.write_all(&frames).await.is_ok() };
        let reader = async move {
            let mut sink = vec![0u8; 64 * 1024];
            while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        tokio::select! { _ = async { tokio::join!(writer, reader) } => {}, _ = tokio::time::sleep(Duration::from_secs(30)) => {} }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    let mut slowest = Duration::ZERO;
    for t in &tokens {
        let started = Instant::now();
        assert_eq!(term.pay(t, 1000).await.response_code(), Some("00"));
        slowest = slowest.max(started.elapsed());
    }
    flood.abort();
    assert!(slowest < Duration::from_secs(2), "slowest payment beside the flood: {slowest:?}");
}
