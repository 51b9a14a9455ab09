//! `tsp serve --hsm payshield://…` (issue 21, item 4): the whole service with a payShield as its HSM —
//! here hsm-sim's payShield front over TCP (and over mutual TLS), reached through a proxy that records
//! every byte either way. Cards are registered, found again by fingerprint, tokenized, detokenized and
//! paid by chip (ARQC verified and ARPC made with `KW`); the keys are rotated and the old versions
//! destroyed; the key table is in the database; and the recorded bytes are searched for what must
//! never cross the link in clear.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use common::iso::de55;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAN: &str = "5555555555554444";
const PAN2: &str = "5105105105105100";
/// The demo configuration's IMK-AC of the issuer of 5555… (config/default.toml).
const IMK: &str = "89ABCDEF0123456776543210FEDCBA98";

/// A CA, the HSM's server certificate (127.0.0.1) and tsp's client certificate, as PEM files.
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

impl Pki {
    fn write(dir: &Path) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "payShield test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let leaf = |name: &str, sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        };
        let server = leaf("hsm", vec!["127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth);
        let client = leaf("tsp-node", vec![], ExtendedKeyUsagePurpose::ClientAuth);
        Pki { ca: dir.join("ca.pem"), server, client }
    }
}

/// Bytes the proxy saw: host → HSM and HSM → host.
#[derive(Default)]
struct Wire {
    up: Vec<u8>,
    down: Vec<u8>,
}

/// Starts hsm-sim's payShield front (header of 4) on a port of its own, over TLS with `tls`.
async fn payshield(tls: Option<hsm_sim::tls::TlsAcceptor>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let front = Arc::new(hsm_sim::payshield::Front::new(4));
    match tls {
        None => tokio::spawn(hsm_sim::server::serve_payshield(listener, front)),
        Some(t) => tokio::spawn(hsm_sim::server::serve_payshield_tls(listener, front, t)),
    };
    addr
}

/// A TCP proxy to `to` recording both directions.
async fn recording_proxy(to: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<Mutex<Wire>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let wire = Arc::new(Mutex::new(Wire::default()));
    let w = wire.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let Ok(server) = TcpStream::connect(to).await else { return };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let (w1, w2) = (w.clone(), w.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    w1.lock().unwrap().up.extend_from_slice(&buf[..n]);
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    w2.lock().unwrap().down.extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, wire)
}

/// Every way a secret could show on the wire: its text, its bytes (BCD for digits), upper and lower hex.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let mut out = vec![secret.as_bytes().to_vec(), secret.to_lowercase().into_bytes()];
    if let Ok(b) = hex::decode(secret) {
        out.push(b);
    }
    out.push(hex::encode_upper(secret.as_bytes()).into_bytes());
    out.push(hex::encode(secret.as_bytes()).into_bytes());
    out
}

fn assert_absent(wire: &[u8], what: &str, secret: &str) {
    for f in forms(secret) {
        assert!(common::find(wire, &f).is_none(), "{what} crossed the payShield link in clear ({} bytes)", f.len());
    }
}

fn keys_cmd(s: &TestServer, hsm: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(common::tsp_bin())
        .arg("keys")
        .args(args)
        .args(s.storage_args())
        .args(["--hsm", hsm])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tsp keys");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn register(s: &TestServer, pan: &str) -> (u16, Value) {
    s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3012" })).await
}

async fn token(s: &TestServer, instrument: &Value) -> Value {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": instrument })).await;
    assert_eq!(st, 201, "{t}");
    t
}

/// A chip purchase with the token's limited-use key; checks tag 91 against the ARPC computed here.
async fn chip_payment(term: &mut common::iso::Terminal, tok: &Value, atc: u16) {
    let (number, key) = (tok["token"].as_str().unwrap(), tok["icc_key"].as_str().unwrap());
    let mut req = term.purchase(number, 15000);
    req.set_pos_entry_mode("071").unwrap();
    req.set_card_sequence_number("000").unwrap();
    let icc = de55(key, 15000, atc, [1, 2, 3, 4]);
    req.set_icc_data(&icc).unwrap();
    let ans = term.call(&req).await;
    assert_eq!(ans.get(39), Some("00"), "chip payment");
    let out = ans.icc_data().expect("DE55 in the answer");
    let tag91 = tsp::iso8583::tlv::find(&out, tsp::iso8583::tlv::Tag(0x91)).unwrap().expect("tag 91").to_vec();
    let arqc = tsp::iso8583::tlv::find(&icc, tsp::iso8583::tlv::Tag(0x9F26)).unwrap().unwrap().to_vec();
    let mk = hex::decode(key).unwrap();
    let mut r = atc.to_be_bytes().to_vec();
    r.extend_from_slice(&[0; 6]);
    let sk = hsm_sim::crypto::emv::session_key(&mk, &r).unwrap();
    let arpc = hsm_sim::crypto::emv::arpc2(&sk[..], &arqc, &tag91[4..], &[]).unwrap();
    assert_eq!(&tag91[..4], &arpc[..], "ARPC method 2 over ARQC ‖ CSU");
}

async fn wait_for_rotation(s: &TestServer, hsm: &str, version: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, text) = keys_cmd(s, hsm, &["status", "--json"]);
        assert!(ok, "{text}");
        let st: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        let keys = st["data_keys"].as_array().unwrap();
        if keys.len() == 1 && keys[0]["dek_version"] == version && st["fingerprint_keys_in_hsm"] == json!([version]) {
            return st;
        }
        assert!(Instant::now() < deadline, "rotation to v{version} did not finish: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_against_a_payshield() {
    let (proxy, wire) = recording_proxy(payshield(None).await).await;
    let url = format!("payshield://{proxy}");
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), &["--hsm", &url]).await;
    let out = std::fs::read_to_string(s.stdout_path()).unwrap();
    assert!(out.contains(&format!("HSM at {url}")), "{out}");
    assert!(!s.data_dir().join("hsm-keystore.json").exists(), "no local key store");

    // Registration, duplicates by fingerprint (LQ), tokens and their limited-use keys, detokenize.
    let (st, ins) = register(&s, PAN).await;
    assert_eq!(st, 201, "{ins}");
    let (st, again) = register(&s, PAN).await;
    assert_eq!((st, &again["id"]), (200, &ins["id"]), "fingerprints over payShield are stable");
    assert_eq!(again["par"], ins["par"]);
    let tok = token(&s, &ins["id"]).await;
    let imk = hex::decode(IMK).unwrap();
    let mk = hsm_sim::crypto::emv::icc_mk_option_a(&imk, tok["token"].as_str().unwrap(), "00").unwrap();
    assert_eq!(tok["icc_key"].as_str().unwrap(), hex::encode_upper(&mk[..]), "EMV Option A ICC MK");
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok["token"] })).await;
    assert_eq!((st, d["pan"].as_str()), (200, Some(PAN)));

    // A chip payment (KW verifies the ARQC, KW makes the ARPC); a wrong cryptogram is 82.
    let mut term = s.terminal_as("PSHIELD1", "MERCHANT000001").await;
    chip_payment(&mut term, &tok, 42).await;
    let bad_tok = token(&s, &ins["id"]).await;
    let mut bad = term.purchase(bad_tok["token"].as_str().unwrap(), 15000);
    bad.set_pos_entry_mode("051").unwrap();
    let mut icc = de55(bad_tok["icc_key"].as_str().unwrap(), 15000, 7, [9, 9, 9, 9]);
    let n = icc.len();
    icc[n - 1] ^= 0x01;
    bad.set_icc_data(&icc).unwrap();
    assert_eq!(term.call(&bad).await.get(39), Some("82"));

    // The key table: the service's keys under the LMK, in the database, with their check values.
    let db = s.database().await;
    let rows: Vec<(String, i64, String, String)> =
        sqlx::query_as("SELECT label, version, usage, key_lmk FROM hsm_keys ORDER BY label, version")
            .fetch_all(&db)
            .await
            .unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for l in ["tsp.vault.fingerprint", "tsp.vault.par", "tsp.payments.duplicate"] {
        assert!(labels.contains(&l), "{l} in {labels:?}");
    }
    assert!(rows.iter().all(|r| r.3.starts_with('S') || r.3.starts_with('U')), "keys only under the LMK");
    assert!(rows.iter().any(|r| r.2 == "emv_imk_ac" && r.3.starts_with('U')), "the IMKs under the LMK");

    // An IMK formed at the HSM (here: K1 of psec's examples, check value 08D7B4 by psec's
    // generate_kcv) is loaded under the LMK; the HSM's BU gives its check value.
    let (k1, _) = hsm_sim::payshield::commands::form_key("109", b'U', &["0123456789ABCDEFFEDCBA9876543210"]).unwrap();
    let (ok, text) = keys_cmd(&s, &url, &["payshield-load", "--label", "tsp.test.imk", "--key", &k1]);
    assert!(ok && text.contains("tsp.test.imk v1 loaded, check value 08D7B4"), "{text}");
    let (ok, text) = keys_cmd(&s, &url, &["payshield-load", "--label", "tsp.test.imk", "--key", "U1234"]);
    assert!(!ok && text.contains("key under the LMK"), "{text}");

    // Rotation: a new data key and fingerprint key; the cards move; the old versions are destroyed.
    let kept = token(&s, &ins["id"]).await;
    let (ok, text) = keys_cmd(&s, &url, &["rotate"]);
    assert!(ok, "{text}");
    let (st, ins2) = register(&s, PAN2).await;
    assert_eq!(st, 201, "{ins2}");
    wait_for_rotation(&s, &url, 2).await;
    let (st, again) = register(&s, PAN).await;
    assert_eq!((st, &again["id"]), (200, &ins["id"]), "found again under the new fingerprint key");
    let tok2 = token(&s, &ins2["id"]).await;
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok2["token"] })).await;
    assert_eq!((st, d["pan"].as_str()), (200, Some(PAN2)));
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": kept["token"] })).await;
    assert_eq!((st, d["pan"].as_str()), (200, Some(PAN)), "re-encrypted under the new data key");
    chip_payment(&mut term, &tok2, 43).await;
    let fp: Vec<(i64,)> = sqlx::query_as("SELECT version FROM hsm_keys WHERE label = 'tsp.vault.fingerprint'")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(fp, vec![(2,)], "the old fingerprint key is gone from the key table");

    // What crossed the link: never a clear key from the host — not the configured IMKs, not the
    // limited-use keys it derived. (PANs do: M0 enciphers and LQ keys them, so the link needs TLS;
    // see the next test.)
    let w = wire.lock().unwrap();
    assert!(common::find(&w.up, b"0FFFS#M7C00N&H2").is_some(), "the proxy saw the host commands");
    assert!(common::find(&w.up, PAN.as_bytes()).is_some(), "over clear TCP the PAN reaches M0 and LQ in clear");
    for imk in
        ["89ABCDEF0123456776543210FEDCBA98", "0123456789ABCDEFFEDCBA9876543210", "8A4A7C3E1F2D5B6C9E0A1B2C3D4E5F60"]
    {
        assert_absent(&w.up, "a configured IMK", imk);
        assert_absent(&w.down, "a configured IMK", imk);
    }
    for t in [&tok, &tok2, &bad_tok, &kept] {
        assert_absent(&w.up, "a limited-use key", t["icc_key"].as_str().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_payshield_tls_no_pan_or_key_crosses_the_link_in_clear() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Pki::write(pki.path());
    let acceptor = hsm_sim::tls::acceptor(&ca.server.0, &ca.server.1, &ca.ca).unwrap();
    let (proxy, wire) = recording_proxy(payshield(Some(acceptor)).await).await;
    let url = format!("payshield+tls://{proxy}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}\n[hsm]\nurl = {url:?}\n\n[tls.hsm]\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
        tsp::config::DEFAULT_TOML,
        ca.ca.display().to_string(),
        ca.client.0.display().to_string(),
        ca.client.1.display().to_string()
    );
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, cfg).unwrap();
    let path = path.display().to_string();
    // The HSM named by the configuration's [hsm] url this time, not by --hsm.
    let s = TestServer::start_with(dir, &["--config", &path]).await;
    let out = std::fs::read_to_string(s.stdout_path()).unwrap();
    assert!(out.contains(&format!("HSM at {url}")), "{out}");

    let (st, ins) = register(&s, PAN).await;
    assert_eq!(st, 201, "{ins}");
    let tok = token(&s, &ins["id"]).await;
    let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok["token"] })).await;
    assert_eq!((st, d["pan"].as_str()), (200, Some(PAN)));
    let mut term = s.terminal_as("PSHIELD2", "MERCHANT000001").await;
    chip_payment(&mut term, &tok, 5).await;

    let w = wire.lock().unwrap();
    assert!(w.up.len() > 1000, "the proxy saw the traffic");
    assert!(common::find(&w.up, b"0FFFS#M7C00N&H2").is_none(), "host commands in clear over TLS");
    for dir in [&w.up, &w.down] {
        assert_absent(dir, "the PAN", PAN);
        assert_absent(dir, "the token's limited-use key", tok["icc_key"].as_str().unwrap());
        assert_absent(dir, "the IMK", IMK);
    }
}
