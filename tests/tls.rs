//! TLS on every front and link (docs/operations.md "TLS"): REST over HTTPS (curl and Python's `ssl`),
//! the ISO 8583 front over mutual TLS (a Python `ssl` terminal with and without a good client
//! certificate), the HSM link over mutual TLS, and an issuer link over TLS to `tsp issuer-sim`. Every
//! certificate is made here with rcgen: a CA, a server certificate for 127.0.0.1 and localhost, client
//! certificates of that CA, and one of another CA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::TestServer;
use common::iso::Terminal;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use tsp::iso8583::{Message, Mti};

const PAN: &str = "4111111111111111";

/// The PEM files of one test's certificates.
struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate and key written as `NAME.pem` and `NAME.key`.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().unwrap() };
        let ca = pki.ca("tsp test CA", "ca");
        let other = pki.ca("another CA", "other-ca");
        pki.leaf(&ca, "server", "tsp test server", &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth);
        pki.leaf(&ca, "client", "VAN-KICC-0001", &["van.kicc.example"], ExtendedKeyUsagePurpose::ClientAuth);
        pki.leaf(&ca, "client-b", "VAN-NICE-0002", &[], ExtendedKeyUsagePurpose::ClientAuth);
        pki.leaf(&other, "stranger", "VAN-ROGUE-0001", &[], ExtendedKeyUsagePurpose::ClientAuth);
        pki
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn pair(&self, name: &str) -> Pair {
        Pair { cert: self.path(&format!("{name}.pem")), key: self.path(&format!("{name}.key")) }
    }

    fn ca(&self, cn: &str, file: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(self.path(&format!("{file}.pem")), ca.pem()).unwrap();
        ca
    }

    fn leaf(
        &self,
        ca: &CertifiedIssuer<'static, KeyPair>,
        name: &str,
        cn: &str,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) {
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// A server with the demo configuration plus `extra` TOML appended (a `[tls…]` section).
async fn server_with(extra: &str, args: &[&str]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("{}\n{extra}", tsp::config::DEFAULT_TOML);
    let path = dir.path().join("tls.toml");
    std::fs::write(&path, cfg).unwrap();
    let path = p(&path);
    let mut all = vec!["--config", path.as_str()];
    all.extend_from_slice(args);
    TestServer::start_with(dir, &all).await
}

/// Runs tests/pytls_client.py; returns its exit code and stdout.
fn python(port: &str, ca: &Path, client: Option<&Pair>, mode: &str, arg: &str) -> (i32, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pytls_client.py");
    let mut cmd = Command::new("python3");
    cmd.args([script, "127.0.0.1", port, &p(ca)]);
    if let Some(c) = client {
        cmd.args(["--cert", &p(&c.cert), "--key", &p(&c.key)]);
    }
    let out = cmd.args([mode, arg]).output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
}

fn port_of(addr: &str) -> String {
    addr.rsplit(':').next().unwrap().trim_end_matches('/').to_string()
}

fn echo_hex() -> String {
    let mut m = Message::new(Mti::NETWORK_REQUEST);
    m.set(11, "000301").unwrap();
    m.set(70, "301").unwrap();
    hex::encode(m.encode().unwrap())
}

fn logs(s: &TestServer) -> String {
    std::fs::read_to_string(s.stdout_path()).unwrap() + &std::fs::read_to_string(s.stderr_path()).unwrap()
}

#[tokio::test]
async fn rest_is_served_over_https_to_curl_and_python() {
    let pki = Pki::new();
    let server = pki.pair("server");
    let s = server_with(&format!("[tls.rest]\ncert = {:?}\nkey = {:?}\n", p(&server.cert), p(&server.key)), &[]).await;
    assert!(s.url("").starts_with("https://127.0.0.1:"), "{}", s.url(""));
    let port = port_of(&s.url(""));
    let url = format!("https://127.0.0.1:{port}/healthz");

    // curl, verifying the server against the test CA.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", &p(&pki.path("ca.pem")), "-w", "\n%{http_code}", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.ends_with("\n200") && text.contains(r#""status":"ok""#), "{text}");
    // …and against the other CA it refuses the server: the certificate really is checked.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", &p(&pki.path("other-ca.pem")), &url])
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl trusted a server its CA did not sign");

    // Python's ssl module, another TLS stack.
    let (code, out) = python(&port, &pki.path("ca.pem"), None, "http", "/healthz");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("HTTP/1.1 200") && out.contains(r#""status":"ok""#), "{out}");

    // Clear-text HTTP to the TLS port gets no HTTP answer.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://127.0.0.1:{port}/healthz")])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"ok\""), "clear text was served on the TLS port");

    // A stalled handshake does not stall the accept loop: with one silent TCP client connected
    // (whose handshake the server waits 10 s for), another client is served within the script's 5 s.
    let _silent = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
    let (code, out) = python(&port, &pki.path("ca.pem"), None, "http", "/healthz");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn iso_8583_over_mutual_tls_serves_only_certified_clients() {
    let pki = Pki::new();
    let server = pki.pair("server");
    let s = server_with(
        &format!(
            "[tls.iso]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
            p(&server.cert),
            p(&server.key),
            p(&pki.path("ca.pem"))
        ),
        &[],
    )
    .await;
    let out = std::fs::read_to_string(s.stdout_path()).unwrap();
    assert!(out.contains("(TLS, client certificates required)"), "{out}");
    let port = port_of(&s.iso);
    let ca = pki.path("ca.pem");

    // With the client certificate of the CA: the echo is answered 0810 / 00.
    let (code, out) = python(&port, &ca, Some(&pki.pair("client")), "iso", &echo_hex());
    assert_eq!(code, 0, "{out}");
    let hex_answer = out.lines().find_map(|l| l.strip_prefix("answer ")).expect("an answer");
    let answer = Message::decode(&hex::decode(hex_answer).unwrap()).unwrap();
    assert_eq!(answer.mti(), Mti::NETWORK_RESPONSE);
    assert_eq!(answer.get(39), Some("00"));
    assert_eq!(answer.get(11), Some("000301"));
    // The connection knew its client by the certificate's CN.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !logs(&s).contains("VAN-KICC-0001") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(logs(&s).contains("client=VAN-KICC-0001"), "the client's CN is not in the logs");

    // Without a client certificate: refused, nothing answered.
    let (code, out) = python(&port, &ca, None, "iso", &echo_hex());
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("refused:") && !out.contains("answer"), "{out}");
    // With a certificate of another CA: refused too.
    let (code, out) = python(&port, &ca, Some(&pki.pair("stranger")), "iso", &echo_hex());
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("refused:") && !out.contains("answer"), "{out}");
    assert!(!logs(&s).contains("VAN-ROGUE-0001"), "a refused certificate's name became an identity");
    // And a clear-text terminal gets no answer.
    let mut term = Terminal::connect(&s.iso).await;
    let mut echo = Message::new(Mti::NETWORK_REQUEST);
    echo.set(11, "000302").unwrap();
    echo.set(70, "301").unwrap();
    assert!(term.try_call(&echo).await.is_none(), "a clear-text terminal was answered");
}

#[tokio::test]
async fn over_mutual_tls_a_terminal_is_served_only_through_its_vans_certificate() {
    let pki = Pki::new();
    let server = pki.pair("server");
    // Terminals of the VAN whose certificate says CN VAN-KICC-0001 (and DNS van.kicc.example).
    let s = server_with(
        &format!(
            "[tls.iso]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\n\
             [[terminals]]\nid = \"KICC0001\"\nmerchant_id = \"MERCHANT000001\"\nvan = \"VAN-KICC-0001\"\n\n\
             [[terminals]]\nid = \"KICC0002\"\nmerchant_id = \"MERCHANT000001\"\nvan = \"van.kicc.example\"\n",
            p(&server.cert),
            p(&server.key),
            p(&pki.path("ca.pem"))
        ),
        &[],
    )
    .await;
    let (port, ca) = (port_of(&s.iso), pki.path("ca.pem"));
    let (_, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": PAN, "expiry": "3012" })).await;
    let mut stan = 0;
    // One purchase with a fresh token from `terminal` for `merchant`, sent by `client`: its DE39.
    let mut pay = async |client: &str, terminal: &str, merchant: &str| {
        let (_, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
        let mut msg =
            tsp::terminal::Requests::new(terminal, merchant).purchase(t["token"].as_str().unwrap(), 1_000).unwrap();
        stan += 1;
        msg.set_stan(&format!("{stan:06}")).unwrap();
        let (code, out) = python(&port, &ca, Some(&pki.pair(client)), "iso", &hex::encode(msg.encode().unwrap()));
        assert_eq!(code, 0, "{out}");
        let answer = out.lines().find_map(|l| l.strip_prefix("answer ")).expect("an answer");
        Message::decode(&hex::decode(answer).unwrap()).unwrap().get(39).unwrap().to_string()
    };
    // Its VAN's certificate, matched by CN or by a DNS name: paid.
    assert_eq!(pay("client", "KICC0001", "MERCHANT000001").await, "00");
    assert_eq!(pay("client", "KICC0002", "MERCHANT000001").await, "00");
    // Another VAN's certificate of the same CA: 58.
    assert_eq!(pay("client-b", "KICC0001", "MERCHANT000001").await, "58");
    // A terminal registered to connect without a VAN: 58 through one. An unknown terminal: 58.
    assert_eq!(pay("client", "TERM0001", "MERCHANT000001").await, "58");
    assert_eq!(pay("client", "NOPE0001", "MERCHANT000001").await, "58");
    // The right VAN, another merchant: 03.
    assert_eq!(pay("client", "KICC0001", "OTHERSHOP").await, "03");
}

fn hsm_tls_section(pki: &Pki, client: Option<&str>) -> String {
    let mut out = format!("[tls.hsm]\nca = {:?}\n", p(&pki.path("ca.pem")));
    if let Some(c) = client {
        let pair = pki.pair(c);
        out += &format!("cert = {:?}\nkey = {:?}\n", p(&pair.cert), p(&pair.key));
    }
    out
}

#[tokio::test]
async fn the_hsm_link_is_mutual_tls() {
    let pki = Pki::new();
    let server = pki.pair("server");
    let acceptor = hsm_sim::tls::acceptor(&server.cert, &server.key, &pki.path("ca.pem")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keystore = tempfile::tempdir().unwrap();
    let (hsm, _) = hsm_sim::Hsm::open(&keystore.path().join("ks.json")).unwrap();
    tokio::spawn(hsm_sim::server::serve_tls(listener, Arc::new(hsm), acceptor));
    let url = format!("tls://{addr}");

    // A tsp node with its client certificate registers a card, issues a token and pays with it.
    let s = server_with(&hsm_tls_section(&pki, Some("client")), &["--hsm", &url]).await;
    assert!(!s.data_dir().join("hsm-keystore.json").exists());
    let ks = std::fs::read_to_string(keystore.path().join("ks.json")).unwrap();
    assert!(ks.contains("tsp.vault.kek"), "the service's keys are in the TLS HSM");
    let (st, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": PAN, "expiry": "3012" })).await;
    assert_eq!(st, 201, "{ins}");
    let (st, tok) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    assert_eq!(st, 201, "{tok}");
    let mut term = Terminal::connect(&s.iso).await;
    let paid = term.pay(tok["token"].as_str().unwrap(), 9_000).await;
    assert_eq!(paid.get(39), Some("00"));

    // Clients the HSM does not know are refused at the handshake.
    let tls = |client: Option<&str>| {
        let cfg = tsp::config::ClientTlsConfig {
            ca: pki.path("ca.pem"),
            cert: client.map(|c| pki.pair(c).cert),
            key: client.map(|c| pki.pair(c).key),
            server_name: None,
        };
        tsp::hsm::Hsm::tcp_with_tls(&url, Some(&cfg)).unwrap()
    };
    assert!(tls(Some("client")).key_versions("tsp.vault.kek").await.is_ok(), "the certified client is served");
    let refused = tls(None).key_versions("tsp.vault.kek").await;
    assert!(refused.is_err(), "a client without a certificate was served");
    assert!(tls(Some("stranger")).key_versions("tsp.vault.kek").await.is_err(), "another CA's client was served");
    let clear = tsp::hsm::Hsm::tcp(&format!("tcp://{addr}")).unwrap();
    assert!(clear.key_versions("tsp.vault.kek").await.is_err(), "a clear-text client was served");
}

#[tokio::test]
async fn the_issuer_link_is_tls_to_tsp_issuer_sim() {
    let pki = Pki::new();
    let server = pki.pair("server");
    // The real `tsp issuer-sim`, over TLS with client certificates required, credit limit 10,000 KRW.
    let mut sim = Killed(
        Command::new(env!("CARGO_BIN_EXE_tsp"))
            .args(["issuer-sim", "--listen", "127.0.0.1:0", "--limit", "10000"])
            .args([
                "--tls-cert",
                &p(&server.cert),
                "--tls-key",
                &p(&server.key),
                "--client-ca",
                &p(&pki.path("ca.pem")),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sim.0.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("(TLS)"), "{line}");
    let addr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_string();

    let client = pki.pair("client");
    let tls = format!(
        "tls = {{ ca = {:?}, cert = {:?}, key = {:?} }}\n",
        p(&pki.path("ca.pem")),
        p(&client.cert),
        p(&client.key)
    );
    let dir = tempfile::tempdir().unwrap();
    let config = tsp::config::DEFAULT_TOML
        .replace("[[issuers]]\n", &format!("[[issuers]]\nhost = \"tls://{addr}\"\ntimeout_ms = 3000\n{tls}"));
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let s = TestServer::start_with(dir, &["--config", path.to_str().unwrap()]).await;
    let (_, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": PAN, "expiry": "3012" })).await;
    let mut term = Terminal::connect(&s.iso).await;
    let (_, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    let token = t["token"].as_str().unwrap();
    assert_eq!(term.pay(token, 12_000).await.get(39), Some("51"), "the issuer-sim's limit applies");
    assert_eq!(term.pay(token, 9_000).await.get(39), Some("00"));

    // The same issuer-sim refuses a node that presents no client certificate: no approval.
    let dir = tempfile::tempdir().unwrap();
    let config = tsp::config::DEFAULT_TOML.replace(
        "[[issuers]]\n",
        &format!(
            "[[issuers]]\nhost = \"tls://{addr}\"\ntimeout_ms = 1500\ntls = {{ ca = {:?} }}\n",
            p(&pki.path("ca.pem"))
        ),
    );
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let s2 = TestServer::start_with(dir, &["--config", path.to_str().unwrap()]).await;
    // Another card, well within the limit: only the refused link can keep it from an approval.
    let (_, ins) = s2
        .post(&s2.keys.app, "/v1/instruments", json!({ "type": "card", "pan": "4242424242424242", "expiry": "3012" }))
        .await;
    let (_, t) = s2.post(&s2.keys.app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
    let mut term = Terminal::connect(&s2.iso).await;
    term.stan = 100; // not a duplicate of the first terminal's requests at the issuer-sim
    let refused = term.pay(t["token"].as_str().unwrap(), 1_000).await;
    assert_ne!(refused.get(39), Some("00"), "a node without a client certificate got an approval");
}

/// A child process killed when the test ends, failed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn bad_tls_files_are_start_errors_that_show_no_key() {
    let pki = Pki::new();
    let server = pki.pair("server");
    let client = pki.pair("client");
    let key_text = std::fs::read_to_string(&server.key).unwrap();
    let secret_line = key_text.lines().nth(1).unwrap().to_string();
    let cases = [
        // A missing key file.
        (format!("[tls.rest]\ncert = {:?}\nkey = {:?}\n", p(&server.cert), p(&pki.path("nope.key"))), "nope.key"),
        // A key that is not the certificate's.
        (format!("[tls.iso]\ncert = {:?}\nkey = {:?}\n", p(&server.cert), p(&client.key)), "client.key"),
        // A certificate file that holds a key.
        (format!("[tls.rest]\ncert = {:?}\nkey = {:?}\n", p(&server.key), p(&server.key)), "server.key"),
        // An unknown key in the section.
        (
            format!("[tls.rest]\ncert = {:?}\nkey = {:?}\nciphers = \"all\"\n", p(&server.cert), p(&server.key)),
            "ciphers",
        ),
    ];
    for (section, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("{}\n{section}", tsp::config::DEFAULT_TOML)).unwrap();
        let out = Command::new(common::tsp_bin())
            .args(["serve", "--http-addr", "127.0.0.1:0", "--iso-addr", "127.0.0.1:0", "--config", &p(&path)])
            .args(["--data-dir", &p(&dir.path().join("data"))])
            .env_remove("TSP_DATABASE_URL")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{section}: started");
        assert!(err.contains(named), "{section}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains(&secret_line) && !String::from_utf8_lossy(&out.stdout).contains(&secret_line));
    }
}
