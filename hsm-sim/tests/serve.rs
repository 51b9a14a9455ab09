//! `hsm-sim serve`, the real binary: banner, answers, malformed requests, many clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    addr: String,
    banner: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--ephemeral"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let mut banner = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut banner).unwrap();
    Server { child, addr, banner }
}

fn send(s: &mut TcpStream, body: &[u8]) -> serde_json::Value {
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    serde_json::from_slice(&buf).unwrap()
}

#[test]
fn serves_operations_and_survives_malformed_requests() {
    let srv = start();
    assert!(srv.banner.contains("SIMULATOR") && srv.banner.contains("NOT for production"), "{}", srv.banner);
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    // RFC 4231 test case 2 over the wire.
    let req = serde_json::json!({"op": "hmac", "key": {"kind": "clear", "key": hex::encode(b"Jefe")}, "data": hex::encode(b"what do ya want for nothing?")});
    let r = send(&mut s, req.to_string().as_bytes());
    assert_eq!(r["ok"]["mac"], "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843");

    // Garbage, an unknown op, a wrong field type: each a format error; the connection lives on.
    for bad in [
        &b"not json"[..],
        br#"{"op":"launch_missiles"}"#,
        br#"{"op":"hmac","key":{"kind":"clear","key":"zz"},"data":"00"}"#,
    ] {
        let r = send(&mut s, bad);
        assert_eq!(r["error"]["kind"], "format", "{r}");
        assert!(!r.to_string().contains("missiles"), "the answer must not echo request content: {r}");
    }
    // A wrong key is a key error, not a crash.
    let r = send(
        &mut s,
        serde_json::json!({"op": "hmac", "key": {"kind": "stored", "label": "nope"}, "data": "00"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r["error"]["kind"], "key");
    let r = send(&mut s, req.to_string().as_bytes());
    assert!(r["ok"]["mac"].is_string());

    // An oversize length prefix closes that connection only.
    let mut bad = TcpStream::connect(&srv.addr).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    bad.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    let mut len = [0u8; 4];
    bad.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    bad.read_exact(&mut buf).unwrap();
    let r: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(r["error"]["kind"], "format");
    assert_eq!(bad.read(&mut [0u8; 1]).unwrap(), 0, "closed after an oversize frame");
    let r = send(&mut s, req.to_string().as_bytes());
    assert!(r["ok"]["mac"].is_string());

    // Many clients at once.
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let addr = srv.addr.clone();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                for j in 0..50 {
                    let data = format!("client {i} message {j}");
                    let req = serde_json::json!({"op": "hmac", "key": {"kind": "clear", "key": "0102030405"}, "data": hex::encode(&data)});
                    let r = send(&mut c, req.to_string().as_bytes());
                    let want = hex::encode_upper(ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[1, 2, 3, 4, 5]), data.as_bytes()));
                    assert_eq!(r["ok"]["mac"].as_str().unwrap(), want);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
