//! `hsm-sim serve --tls-cert --tls-key --client-ca`, the real binary: it answers a client with a
//! certificate of the client CA, and refuses one without a certificate or with another CA's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ca(dir: &Path, name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), ca.pem()).unwrap();
    ca
}

fn leaf(dir: &Path, ca: &CertifiedIssuer<'static, KeyPair>, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
    let params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// One HMAC request over TLS; the answer, or None when the server refused the client.
fn hmac_over_tls(addr: &str, ca: &Path, client: Option<&(PathBuf, PathBuf)>) -> Option<serde_json::Value> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((c, k)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(c).unwrap()],
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let req = serde_json::json!({"op": "hmac", "key": {"kind": "clear", "key": hex::encode(b"Jefe")}, "data": hex::encode(b"what do ya want for nothing?")});
    let body = req.to_string().into_bytes();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    s.write_all(&out).ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(serde_json::from_slice(&buf).unwrap())
}

#[test]
fn serves_only_clients_of_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = ca(d, "clients-ca");
    let other = ca(d, "other-ca");
    let server = leaf(d, &good, "server", &["127.0.0.1"]);
    let client = leaf(d, &good, "client", &["tsp-node-1"]);
    let stranger = leaf(d, &other, "stranger", &["rogue"]);
    let ca_pem = d.join("clients-ca.pem");

    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--ephemeral"])
        .arg("--tls-cert")
        .arg(&server.0)
        .arg("--tls-key")
        .arg(&server.1)
        .arg("--client-ca")
        .arg(&ca_pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _srv = Server(child);
    assert!(line.contains("(TLS, client certificates required)"), "{line}");
    let addr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_string();

    let answer = hmac_over_tls(&addr, &ca_pem, Some(&client)).expect("the certified client is answered");
    assert_eq!(answer["ok"]["mac"], "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843");
    assert!(hmac_over_tls(&addr, &ca_pem, None).is_none(), "a client without a certificate was answered");
    assert!(hmac_over_tls(&addr, &ca_pem, Some(&stranger)).is_none(), "another CA's client was answered");
    // Clear text gets nothing either.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = br#"{"op":"key_info","label":"x"}"#;
    let _ = tcp.write_all(&(body.len() as u32).to_be_bytes());
    let _ = tcp.write_all(body);
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("\"ok\"") && !buf.starts_with(&[0, 0]), "{buf:?}");
}

#[test]
fn tls_needs_the_client_ca() {
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--ephemeral", "--tls-cert", "a.pem", "--tls-key", "a.key"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--client-ca"), "{}", String::from_utf8_lossy(&out.stderr));
    // A missing file is a clear error, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--ephemeral", "--tls-cert", "/nonexistent/a.pem"])
        .args(["--tls-key", "/nonexistent/a.key", "--client-ca", "/nonexistent/ca.pem"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/") && !err.contains("panicked"), "{err}");
}

/// `hsm-sim serve --protocol payshield` with the same TLS options: `NC` over TLS for a certified
/// client; nothing for a client without a certificate.
#[test]
fn payshield_over_tls_serves_only_clients_of_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = ca(d, "clients-ca");
    let server = leaf(d, &good, "server", &["127.0.0.1"]);
    let client = leaf(d, &good, "client", &["tsp-node-1"]);
    let ca_pem = d.join("clients-ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-sim"))
        .args(["serve", "--protocol", "payshield", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&server.0)
        .arg("--tls-key")
        .arg(&server.1)
        .arg("--client-ca")
        .arg(&ca_pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _srv = Server(child);
    assert!(line.contains("payShield host commands, header 4, TLS, client certificates required"), "{line}");
    let addr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_string();

    let nc = |client: Option<&(PathBuf, PathBuf)>| -> Option<Vec<u8>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&ca_pem).unwrap()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((c, k)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(c).unwrap()],
                    PrivateKeyDer::from_pem_file(k).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
        let tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(b"\x00\x06HDR1NC").ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    // The test LMK's check value, as tests/payshield.rs pins it (psec).
    assert_eq!(nc(Some(&client)).expect("the certified client is answered"), b"HDR1ND007D22274C5745C5A10001-HSIM");
    assert!(nc(None).is_none(), "a client without a certificate was answered");
}
