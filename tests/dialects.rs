//! ISO 8583 dialects and framings on real TCP (docs/iso8583.md "Dialects", "Framing"): one server
//! with an `ascii` listener (`--iso-addr`) and `binary` and `bcd` listeners at once, each paid by a
//! terminal built on pyiso8583 (its own `default` spec for `binary`), one of them behind a 4-byte
//! ASCII length and a TPDU; and the card issuer reached over a `bcd` link, whose bytes are checked
//! on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::{Arc, Mutex};

use common::TestServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAN: &str = "4111111111111111";

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Connects to `addr`, retrying while it refuses, for at most `wait`.
async fn connect_within(addr: &str, wait: std::time::Duration) -> tokio::net::TcpStream {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < deadline && e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(e) => panic!("{addr}: {e}"),
        }
    }
}

/// A TCP relay in front of `to` that keeps a copy of every byte sent toward it.
async fn tap(to: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let copy = seen.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(&to).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let seen = copy.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    (addr, seen)
}

/// Runs a pyiso8583 script from tests/ with `args`; its stdout as JSON.
async fn python(script: &str, args: Vec<String>) -> Value {
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").arg(path).args(args).output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap()
}

async fn token(s: &TestServer, instrument: &Value) -> String {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": instrument["id"] })).await;
    assert_eq!(st, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn ascii_binary_and_bcd_listeners_at_once_over_a_bcd_issuer_link() {
    // The card issuer: a simulator speaking `bcd`, behind a relay that keeps what tsp sends it.
    use tsp::issuer::sim::{SimConfig, Simulator};
    let issuer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_addr = issuer.local_addr().unwrap().to_string();
    let sim = Arc::new(Simulator::new(SimConfig::default()));
    tokio::spawn(tsp::issuer::tcp::serve_in(issuer, sim, None, tsp::iso8583::Dialect::Bcd));
    let (relay, seen) = tap(issuer_addr).await;

    let (binary, framed, bcd) = (free_addr(), free_addr(), free_addr());
    let mut config = tsp::config::DEFAULT_TOML.replace(
        "[[issuers]]\n",
        &format!("[[issuers]]\nhost = \"tcp://{relay}\"\ntimeout_ms = 3000\ndialect = \"bcd\"\n"),
    );
    config.push_str(&format!(
        "\n[[iso.listeners]]\naddr = \"{binary}\"\ndialect = \"binary\"\n\
         \n[[iso.listeners]]\naddr = \"{framed}\"\ndialect = \"binary\"\nlength = \"ascii4\"\ntpdu = true\n\
         \n[[iso.listeners]]\naddr = \"{bcd}\"\ndialect = \"bcd\"\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap().to_string();
    let s = TestServer::start_with(dir, &["--config", &path]).await;
    let stdout = std::fs::read_to_string(s.stdout_path()).unwrap_or_default();
    assert!(stdout.contains(&format!("ISO 8583 (bcd, binary2 length) listening on {bcd}")), "{stdout}");

    let (st, card) = s
        .post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": common::scan_for(PAN), "expiry": "3012" }))
        .await;
    assert_eq!(st, 201, "{card}");

    // `ascii` on --iso-addr: the pyiso8583 default_ascii terminal pays and reverses.
    s.register_terminal("PYTERM01", "PYMERCHANT00001").await;
    let (host, port) = s.iso.rsplit_once(':').unwrap();
    let v = python("pyiso_client.py", vec![host.into(), port.into(), token(&s, &card).await]).await;
    assert_eq!((v["purchase"].as_str(), v["reversal"].as_str()), (Some("00"), Some("00")), "{v}");

    // `binary`, `binary` with a 4-byte ASCII length and a TPDU, and `bcd`: each first sends a
    // malformed purchase (a byte after the last field), answered 30 with its DE11 and DE41 on a
    // connection that lives on, then pays.
    let cases = [
        (&binary, "binary", "binary2", "--", "PYBIN001", "PYMERCHANT00002", "000300"),
        (&framed, "binary", "ascii4", "tpdu", "PYTPDU01", "PYMERCHANT00003", "000400"),
        (&bcd, "bcd", "binary2", "--", "PYBCD001", "PYMERCHANT00004", "000500"),
    ];
    for (addr, dialect, length, tpdu, terminal, merchant, stan) in cases {
        s.register_terminal(terminal, merchant).await;
        let (host, port) = addr.rsplit_once(':').unwrap();
        let args = [host, port, dialect, length, tpdu].map(String::from).to_vec();
        let token = token(&s, &card).await;
        let args = [args, vec![token, terminal.into(), merchant.into(), stan.into()]].concat();
        let v = python("pyiso_dialect.py", args).await;
        let next = format!("{:06}", stan.parse::<u32>().unwrap() + 1);
        assert_eq!(v["bad"]["mti"], "0210", "{dialect} {length}: {v}");
        assert_eq!(v["bad"]["39"], "30", "{dialect} {length}: {v}");
        assert_eq!((v["bad"]["11"].as_str(), v["bad"]["41"].as_str()), (Some(next.as_str()), Some(terminal)), "{v}");
        assert_eq!(v["good"]["39"], "00", "{dialect} {length}: {v}");
        assert_eq!((v["good"]["11"].as_str(), v["good"]["41"].as_str()), (Some(stan), Some(terminal)), "{v}");
        assert_eq!(v["good"]["38"].as_str().map(str::len), Some(6), "an approval code: {v}");
        // The TPDU 60 0001 8002 comes back as 60 8002 0001: source and destination swapped.
        let expected = if tpdu == "tpdu" { "6080020001" } else { "" };
        assert_eq!((v["bad"]["tpdu"].as_str(), v["good"]["tpdu"].as_str()), (Some(expected), Some(expected)));
    }

    // The issuer link spoke BCD: a 2-byte length, the MTI 0200 as the bytes 02 00, a binary bitmap
    // with DE2, and DE2 as a 1-byte BCD length 16 and the PAN two digits a byte.
    // (Its first frames are the card's registration, `0100`s: the first `0200` is the one.)
    let all = seen.lock().unwrap().clone();
    assert!(all.len() > 20, "the issuer got nothing");
    let mut at = 0;
    let mut mtis = Vec::new();
    while at + 4 <= all.len() && all[at + 2..at + 4] != [0x02, 0x00] {
        mtis.push(all[at + 2..at + 4].to_vec());
        at += 2 + usize::from(u16::from_be_bytes([all[at], all[at + 1]]));
    }
    assert!(mtis.iter().all(|m| m == &[0x01, 0x00]), "only 0100s before the purchase: {mtis:?}");
    let wire = all[at..].to_vec();
    assert_eq!(&wire[2..4], &[0x02, 0x00], "BCD MTI");
    assert_ne!(wire[4] & 0x40, 0, "DE2 in a binary bitmap");
    let de2 = if wire[4] & 0x80 != 0 { 4 + 16 } else { 4 + 8 };
    assert_eq!(wire[de2], 0x16, "BCD length of DE2");
    assert_eq!(&wire[de2 + 1..de2 + 9], &hex::decode(PAN).unwrap()[..], "DE2 in BCD");
    // Nothing it received was ASCII: the PAN is nowhere in its digits.
    assert!(common::find(&all, PAN.as_bytes()).is_none(), "the PAN never travels as ASCII on a bcd link");
}

/// Reads one answer in 4-byte ASCII length framing: its body (TPDU and message).
async fn read_ascii4(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let n: usize = std::str::from_utf8(&len).unwrap().parse().unwrap();
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).await.unwrap();
    body
}

#[tokio::test]
async fn a_tpdu_listener_survives_short_frames_and_closes_on_a_bad_length() {
    let framed = free_addr();
    let config = format!(
        "{}\n[[iso.listeners]]\naddr = \"{framed}\"\ndialect = \"binary\"\nlength = \"ascii4\"\ntpdu = true\n",
        tsp::config::DEFAULT_TOML
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap().to_string();
    let _s = TestServer::start_with(dir, &["--config", &path]).await;

    // An 0800 echo written by hand from the layout: 4-digit length, TPDU 60 0001 8002, MTI "0800",
    // an 8-byte bitmap (DE1 for the secondary, DE7, DE11) and the secondary (DE70), DE7, DE11, DE70.
    let mut echo = vec![0x60, 0x00, 0x01, 0x80, 0x02];
    echo.extend_from_slice(b"0800");
    echo.extend_from_slice(&[0x82, 0x20, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0]);
    echo.extend_from_slice(b"0612143015000001301");
    let mut frame = format!("{:04}", echo.len()).into_bytes();
    frame.extend_from_slice(&echo);

    // (The extra listener may come up a moment after the server answers its health check.)
    let mut s = connect_within(&framed, std::time::Duration::from_secs(5)).await;
    // A frame shorter than a TPDU has nowhere to be answered: no answer, and the connection lives on.
    s.write_all(b"0003\x60\x00\x01").await.unwrap();
    s.write_all(&frame).await.unwrap();
    let answer = read_ascii4(&mut s).await;
    assert_eq!(&answer[..5], &[0x60, 0x80, 0x02, 0x00, 0x01], "the TPDU swapped");
    assert_eq!(&answer[5..9], b"0810");
    assert!(common::find(&answer, b"000001").is_some(), "DE11 echoed");

    // A length that is not 4 digits: the stream is out of step, the connection is closed.
    s.write_all(b"00x9").await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert_eq!(n, 0, "closed without an answer");
}

#[tokio::test]
async fn tsp_issuer_sim_speaks_bcd_to_a_pyiso8583_acquirer() {
    // The real binary, `--dialect bcd`; its last word is its address.
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_tsp"))
        .args(["issuer-sim", "--listen", "127.0.0.1:0", "--dialect", "bcd"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sim.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("tsp issuer-sim (bcd): listening on "), "{line}");
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let (host, port) = addr.rsplit_once(':').unwrap();
    // An acquirer written with pyiso8583's BCD spec: a malformed request is answered 30 with its DE11
    // and DE41, then a card purchase is approved on the same connection.
    let args = [host, port, "bcd", "binary2", "--", PAN, "ACQ00001", "ACQUIRER0000001", "000700"];
    let v = python("pyiso_dialect.py", args.map(String::from).to_vec()).await;
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!((v["bad"]["39"].as_str(), v["bad"]["11"].as_str()), (Some("30"), Some("000701")), "{v}");
    assert_eq!(v["bad"]["41"], "ACQ00001", "{v}");
    assert_eq!((v["good"]["mti"].as_str(), v["good"]["39"].as_str()), (Some("0210"), Some("00")), "{v}");
}
