//! `tsp serve --hsm tcp://…`: the service with its keys in a separate HSM reached over TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::Arc;

use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn the_service_works_against_a_tcp_hsm() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keystore = tempfile::tempdir().unwrap();
    let (hsm, _) = hsm_sim::Hsm::open(&keystore.path().join("ks.json")).unwrap();
    tokio::spawn(hsm_sim::server::serve(listener, Arc::new(hsm)));

    let url = format!("tcp://{addr}");
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), &["--hsm", &url]).await;
    let out = std::fs::read_to_string(s.stdout_path()).unwrap();
    assert!(out.contains(&format!("HSM at {url}")), "{out}");
    // The service's keys were created in the remote HSM, not in a local key store.
    assert!(!s.data_dir().join("hsm-keystore.json").exists());
    let ks = std::fs::read_to_string(keystore.path().join("ks.json")).unwrap();
    assert!(ks.contains("tsp.vault.kek") && ks.contains("tsp.vault.fingerprint"));

    let (st, ins) = s
        .post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": "5555555555554444", "expiry": "3012" }))
        .await;
    assert_eq!(st, 201, "{ins}");
    let (st, again) = s
        .post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": "5555555555554444", "expiry": "3012" }))
        .await;
    assert_eq!((st, again["id"].clone()), (200, ins["id"].clone()), "fingerprints from the TCP HSM are stable");
    let (st, tok) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    assert_eq!(st, 201);
    let imk = hex::decode("89ABCDEF0123456776543210FEDCBA98").unwrap();
    let mk = hsm_sim::crypto::emv::icc_mk_option_a(&imk, tok["token"].as_str().unwrap(), "00").unwrap();
    assert_eq!(tok["icc_key"].as_str().unwrap(), hex::encode_upper(&mk[..]));
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok["token"] })).await;
    assert_eq!((st, d["pan"].as_str()), (200, Some("5555555555554444")));
}
