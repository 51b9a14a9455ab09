//! Production mode and the sealed key store, against the real binary: a key ceremony makes M-of-N
//! custodian shares; a node started without them is sealed (it serves nothing that needs a key) and
//! opens with M shares, not M−1; the data directory copied off it yields no master key; production
//! refuses the demo's keys and the development key store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, card, tsp_bin};
use serde_json::{Value, json};

/// The demo configuration with IMKs of its own (production refuses the published demo IMKs).
fn production_config(dir: &Path) -> PathBuf {
    let mut cfg = include_str!("../config/default.toml").to_string();
    for (i, demo) in
        ["8A4A7C3E1F2D5B6C9E0A1B2C3D4E5F60", "0123456789ABCDEFFEDCBA9876543210", "89ABCDEF0123456776543210FEDCBA98"]
            .iter()
            .enumerate()
    {
        assert!(cfg.contains(demo), "the demo config changed its IMKs");
        let own: String = (0..32).map(|k| char::from(b"0123456789ABCDEF"[(k * 7 + i * 5 + 3) % 16])).collect();
        cfg = cfg.replace(demo, &own);
    }
    // Production endpoints must be public (the demo allows any).
    assert!(cfg.contains("allow_private_addresses = true"), "the demo config changed its webhooks");
    cfg = cfg.replace("allow_private_addresses = true", "allow_private_addresses = false");
    // A second terminal of the demo merchant: the restarted node is paid from a new connection.
    cfg.push_str("\n[[terminals]]\nid = \"TERM0002\"\nmerchant_id = \"MERCHANT000001\"\n");
    let path = dir.join("production.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn tsp(args: &[&str]) -> (bool, String, String) {
    let out =
        Command::new(tsp_bin()).args(args).env("RUST_LOG", "warn").env_remove("TSP_UNSEAL_SHARES").output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_sealed_node_opens_with_m_of_n_shares_and_not_fewer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shares = dir.path().join("shares");
    let cfg = production_config(dir.path());

    // The ceremony: 2 of 3.
    let (ok, out, err) = tsp(&[
        "keys",
        "init",
        "--data-dir",
        &arg(&data),
        "--custodians",
        "3",
        "--threshold",
        "2",
        "--share-dir",
        &arg(&shares),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let share = |n: u8| shares.join(format!("custodian-{n}.share"));
    let (ok, _, err) = tsp(&["keys", "init", "--data-dir", &arg(&data), "--custodians", "3", "--threshold", "2"]);
    assert!(!ok && err.contains("exists"), "a second ceremony over the first is refused: {err}");

    // Started without shares, the node is sealed: no route, no payment.
    let s = TestServer::start_with(dir, &["--production", "--config", &arg(&cfg)]).await;
    let (st, h) = get_json(&s.url("/healthz")).await;
    assert_eq!((st, h["status"].as_str()), (503, Some("sealed")));
    let (st, e) = get_json(&s.url("/v1/instruments")).await;
    assert_eq!((st, e["error"]["code"].as_str()), (503, Some("sealed")));
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    assert_eq!(term.pay("4610000000000012", 1000).await.response_code(), Some("91"));
    let (_, status) = get_json(&s.url("/v1/sys/seal-status")).await;
    assert_eq!((status["threshold"].as_u64(), status["progress"].as_u64()), (Some(2), Some(0)));

    // One share (M−1) does not open it; a share of another ceremony is refused by name.
    let (ok, out, _) = tsp(&["keys", "unlock", "--url", &s.url(""), "--share-file", &arg(&share(1))]);
    assert!(!ok && out.contains("1 of 2"), "{out}");
    let other = tempfile::tempdir().unwrap();
    let (ok, other_shares, _) =
        tsp(&["keys", "init", "--data-dir", &arg(other.path()), "--custodians", "2", "--threshold", "2"]);
    assert!(ok);
    let foreign = other_shares.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let r =
        reqwest::Client::new().post(s.url("/v1/sys/unseal")).json(&json!({ "share": foreign })).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!((get_json(&s.url("/healthz")).await.0), 503, "still sealed");

    // The second share opens it; the node then serves on the same addresses.
    let (ok, out, err) = tsp(&["keys", "unlock", "--url", &s.url(""), "--share-file", &arg(&share(3))]);
    assert!(ok && out.contains("unsealed"), "{out} {err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_json(&s.url("/healthz")).await.0 != 200 {
        assert!(Instant::now() < deadline, "the node did not start after unsealing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Production has no demo keys: the operator makes the requestors.
    assert!(!s.data_dir().join("demo-keys.json").exists());
    let storage = s.storage_args();
    let mut create = vec!["admin", "create-requestor", "--name", "pay app", "--scopes", "instruments,tokens"];
    create.extend(storage.iter().map(String::as_str));
    let (ok, key, err) = tsp(&create);
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    let pan = card("411111", 827_364_519, 16);
    let (st, ins) = s.post(&key, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
    assert_eq!(st, 201, "{ins}");
    let (st, t) = s.post(&key, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    assert_eq!(st, 201, "{t}");
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    assert_eq!(term.pay(t["token"].as_str().unwrap(), 1000).await.response_code(), Some("00"));

    // The data directory copied off the node holds no master key: the key store opens with two
    // shares, not with one and not without.
    let copy = tempfile::tempdir().unwrap();
    for f in common::files_under(&s.data_dir()) {
        std::fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
    }
    let keystore = copy.path().join("hsm-keystore.json");
    let text = std::fs::read_to_string(&keystore).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert!(file.get("lmk").is_none() && file.get("seal").is_some(), "no master key in clear");
    assert!(hsm_sim::Hsm::open(&keystore).is_err(), "a sealed store does not open as a development one");
    let read = |n: u8| std::fs::read_to_string(share(n)).unwrap().trim().to_string();
    assert!(hsm_sim::Hsm::open_sealed(&keystore, &[&read(2)]).unwrap().is_none());
    assert!(hsm_sim::Hsm::open_sealed(&keystore, &[&read(2), &read(1)]).unwrap().is_some());

    // Restarted with two share files, the node serves at once, with what it held.
    let (one, three) = (arg(&share(1)), arg(&share(3)));
    let s = s.restart_with(&["--unseal-share-file", &one, "--unseal-share-file", &three]).await;
    let stdout = std::fs::read_to_string(s.stdout_path()).unwrap();
    assert!(stdout.contains("REST API listening on") && !stdout.contains("SEALED"), "{stdout}");
    let (st, got) = s.get(&key, &format!("/v1/instruments/{}", ins["id"].as_str().unwrap())).await;
    assert_eq!((st, got["last4"].as_str()), (200, Some(&pan[12..])));
    let (st, t) = s.post(&key, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    assert_eq!(st, 201);
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    term.terminal_id = "TERM0002".into(); // a new connection starts its STANs again
    assert_eq!(term.pay(t["token"].as_str().unwrap(), 1000).await.response_code(), Some("00"));
}

/// Production mode takes nothing of the demo: not its published IMKs, not its key store whose master
/// key is in clear, not a data directory without a key store, not demo API keys.
#[tokio::test]
async fn production_refuses_what_only_the_demo_may_use() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = production_config(dir.path());
    let serve = |data: &Path, extra: &[&str]| {
        let mut args = vec!["serve", "--production", "--http-addr", "127.0.0.1:0", "--iso-addr", "127.0.0.1:0"];
        let d = arg(data);
        let mut owned: Vec<String> = args.drain(..).map(String::from).collect();
        owned.extend(["--data-dir".to_string(), d]);
        owned.extend(extra.iter().map(|e| e.to_string()));
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        tsp(&refs)
    };
    // The demo configuration's IMKs are published.
    let (ok, _, err) = serve(&dir.path().join("a"), &[]);
    assert!(!ok && err.contains("demo token IMK"), "{err}");
    // No key store: production makes one only in a ceremony.
    let (ok, _, err) = serve(&dir.path().join("b"), &["--config", &arg(&cfg)]);
    assert!(!ok && err.contains("no key store"), "{err}");
    // The development key store (its master key in clear), as a development start leaves it.
    let dev = dir.path().join("c");
    std::fs::create_dir_all(&dev).unwrap();
    hsm_sim::Hsm::open(&dev.join("hsm-keystore.json")).unwrap();
    let (ok, _, err) = serve(&dev, &["--config", &arg(&cfg)]);
    assert!(!ok && err.contains("development key store"), "{err}");
    // Demo API keys in the data directory.
    std::fs::write(dev.join("demo-keys.json"), "{}").unwrap();
    let (ok, _, err) = serve(&dev, &["--config", &arg(&cfg)]);
    assert!(!ok && err.contains("demo API keys"), "{err}");
}
