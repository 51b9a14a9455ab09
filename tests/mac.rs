//! ISO 8583 MACs and key exchange on real TCP (docs/iso8583.md "MAC", "Key exchange"): the HSM's
//! retail MAC and AES-CMAC against psec and cryptography; MAC listeners that check every request
//! (a pyiso8583 terminal computing its MAC in Python; `63` for a wrong or missing MAC, with nothing
//! stored) and MAC every answer; a key exchange while payments flow, the old TAK accepted during the
//! overlap and refused after it; and an issuer link MACed both ways against `tsp issuer-sim --tak`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::time::Duration;

use common::TestServer;
use common::iso::Terminal;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tsp::iso8583::{Dialect, Message, Mti, mac};

const PAN: &str = "4111111111111111";
/// Test keys (never real ones): a double-length TDES TAK, an AES-128 TAK, AES-256 zone keys.
const TAK_TDES: &str = "0123456789ABCDEFFEDCBA9876543210";
const TAK_TDES_2: &str = "89ABCDEF01234567FEDCBA9876543210";
const TAK_AES: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const ZMK: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Runs tests/pyiso_mac.py with `args` (and `stdin`); its stdout as JSON.
async fn python(args: Vec<String>, stdin: Option<String>) -> Value {
    let path = format!("{}/tests/pyiso_mac.py", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("python3")
            .arg(path)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut input, stdin.unwrap_or_default().as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pyiso_mac.py: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The terminal's side of a MAC (the same primitives the HSM uses, checked against psec and
/// cryptography in `link_macs_match_psec_and_cryptography`).
#[derive(Clone, Copy)]
enum Key<'a> {
    Retail(&'a str),
    Cmac(&'a str),
}

impl Key<'_> {
    fn mac(&self, data: &[u8]) -> [u8; 8] {
        match self {
            Key::Retail(k) => hsm_sim::crypto::mac::retail_mac(&hex::decode(k).unwrap(), data, 1).unwrap(),
            Key::Cmac(k) => {
                let t = hsm_sim::crypto::mac::aes_cmac(&hex::decode(k).unwrap(), data).unwrap();
                t[..8].try_into().unwrap()
            }
        }
    }
}

/// `msg` in `dialect` with its MAC under `key` (None: no MAC field at all).
fn sealed(dialect: Dialect, msg: &Message, key: Option<Key<'_>>) -> Vec<u8> {
    let Some(key) = key else { return dialect.encode(msg).unwrap() };
    let mut m = msg.clone();
    let mut out = mac::prepare(dialect, &mut m).unwrap();
    let tag = key.mac(mac::covered(dialect, &out));
    mac::seal(dialect, &mut out, &tag);
    out
}

async fn send(s: &mut tokio::net::TcpStream, body: &[u8]) {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    s.write_all(&out).await.unwrap();
}

async fn recv(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len)).await.expect("an answer in time").unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    body
}

/// Sends `msg` MACed under `key` and returns the answer and whether its MAC verifies under `check`.
async fn call(
    s: &mut tokio::net::TcpStream,
    dialect: Dialect,
    msg: &Message,
    key: Option<Key<'_>>,
    check: Key<'_>,
) -> (Message, bool) {
    send(s, &sealed(dialect, msg, key)).await;
    let body = recv(s).await;
    let answer = dialect.decode(&body).unwrap();
    let ok = match mac::received(dialect, &body, &answer) {
        Ok((covered, tag)) => check.mac(covered) == tag,
        Err(_) => false,
    };
    (answer, ok)
}

async fn token(s: &TestServer, instrument: &Value) -> String {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": instrument["id"] })).await;
    assert_eq!(st, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

async fn a_card(s: &TestServer) -> Value {
    let body = json!({ "type": "card", "pan": common::scan_for(PAN), "expiry": "3012" });
    let (st, card) = s.post(&s.keys.app, "/v1/instruments", body).await;
    assert!(st == 201 || st == 200, "{card}");
    card
}

async fn start(config: String) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tsp.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap().to_string();
    TestServer::start_with(dir, &["--config", &path]).await
}

async fn count(s: &TestServer, sql: &'static str, arg: &str) -> i64 {
    let db = s.database().await;
    let n: i64 = sqlx::query_scalar(sql).bind(arg).fetch_one(&db).await.unwrap();
    db.close().await;
    n
}

async fn terminal(addr: &str, id: &str, merchant: &str) -> Terminal {
    let mut t = Terminal::connect(addr).await;
    t.terminal_id = id.into();
    t.merchant_id = format!("{merchant:<15}");
    t
}

#[tokio::test]
async fn link_macs_match_psec_and_cryptography() {
    let hsm = tsp::hsm::Hsm::in_process(std::sync::Arc::new(hsm_sim::Hsm::ephemeral().unwrap()));
    hsm.ensure_link_kbpk().await.unwrap();
    let mut echo = Message::new(Mti::NETWORK_REQUEST);
    echo.set_transmission_date_time("0612143015").unwrap().set_stan("000001").unwrap();
    echo.set_network_management_code("301").unwrap();
    let iso_ascii = echo.encode().unwrap();
    let iso_binary = Dialect::Binary.encode(&echo).unwrap();
    let datas: Vec<Vec<u8>> = vec![
        vec![],
        b"1234567".to_vec(),
        b"12345678".to_vec(),
        b"Now is the time for all ".to_vec(),
        (0u8..=200).collect(),
        iso_ascii,
        iso_binary,
    ];
    let keys = [
        ("retail", TAK_TDES, "M3", "T"),
        ("retail", TAK_TDES_2, "M3", "T"),
        ("cmac", TAK_AES, "M6", "A"),
        ("cmac", ZMK, "M6", "A"),
    ];
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (alg, key, usage, algorithm) in keys {
        let (block, _kcv) = hsm.link_key_from_clear(usage, algorithm, &hex::decode(key).unwrap()).await.unwrap();
        for data in &datas {
            cases.push(json!({ "alg": alg, "key": key, "data": hex::encode(data) }));
            let m = hsm.link_mac(&block, data).await.unwrap();
            assert!(hsm.link_mac_verify(&block, data, &m).await.unwrap());
            let mut wrong = m;
            wrong[7] ^= 1;
            assert!(!hsm.link_mac_verify(&block, data, &wrong).await.unwrap(), "a flipped bit is refused");
            ours.push(hex::encode_upper(m));
        }
    }
    let theirs = python(vec!["macs".into()], Some(Value::Array(cases).to_string())).await;
    let theirs: Vec<String> = serde_json::from_value(theirs).unwrap();
    assert_eq!(ours, theirs, "HSM MACs = psec retail MAC (padding 1) and cryptography AES-CMAC (8 bytes)");
    // A TDES key is no CMAC key, and a MAC key opens no zone.
    assert!(hsm.link_key_from_clear("M6", "T", &hex::decode(TAK_TDES).unwrap()).await.is_err());
}

#[tokio::test]
async fn mac_listeners_check_every_request_and_mac_every_answer() {
    let (binary, ascii) = (free_addr(), free_addr());
    let config = format!(
        "{}\n[iso]\nkey_overlap_seconds = 60\n\
         [[iso.listeners]]\naddr = \"{binary}\"\ndialect = \"binary\"\nmac = \"required\"\n\
         [[iso.listeners]]\naddr = \"{ascii}\"\ndialect = \"ascii\"\nmac = \"required\"\n\
         [[iso.link_keys]]\nterminal = \"MACPY001\"\ntak = \"{TAK_TDES}\"\n\
         [[iso.link_keys]]\nterminal = \"MACRS001\"\ntak = \"{TAK_AES}\"\nmac_algorithm = \"cmac\"\n",
        tsp::config::DEFAULT_TOML
    );
    let s = start(config).await;
    let stdout = std::fs::read_to_string(s.stdout_path()).unwrap_or_default();
    assert!(stdout.contains(&format!("(binary, binary2 length, MAC required) listening on {binary}")), "{stdout}");
    let card = a_card(&s).await;
    s.register_terminal("MACPY001", "MACMERCHANT0001").await;
    s.register_terminal("MACRS001", "MACMERCHANT0002").await;
    s.register_terminal("NOKEY001", "MACMERCHANT0003").await;

    // A pyiso8583 terminal (binary, pyiso8583's own default spec) with its MAC computed in Python:
    // a wrong MAC and a missing one are answered 63 with DE11 and DE41 back, their tokens untouched.
    let (host, port) = binary.rsplit_once(':').unwrap();
    let (t_bad, t_none, t_good) = (token(&s, &card).await, token(&s, &card).await, token(&s, &card).await);
    let py = |number: &str, stan: &str, how: &str| {
        let args = ["pay", host, port, "retail", TAK_TDES, "MACPY001", "MACMERCHANT0001", number, stan, how];
        python(args.map(String::from).to_vec(), None)
    };
    let bad = py(&t_bad, "000101", "bad").await;
    assert_eq!((bad["mti"].as_str(), bad["39"].as_str()), (Some("0210"), Some("63")), "{bad}");
    assert_eq!((bad["11"].as_str(), bad["41"].as_str()), (Some("000101"), Some("MACPY001")), "{bad}");
    assert_eq!(bad["mac_ok"], true, "even a refusal carries a MAC under the terminal's TAK: {bad}");
    let none = py(&t_none, "000102", "none").await;
    assert_eq!((none["39"].as_str(), none["11"].as_str()), (Some("63"), Some("000102")), "{none}");
    let sql = "SELECT COUNT(*) FROM transactions WHERE terminal_id = $1";
    assert_eq!(count(&s, sql, "MACPY001").await, 0, "a refused MAC stores nothing");
    let good = py(&t_good, "000103", "good").await;
    assert_eq!((good["39"].as_str(), good["mac_ok"].as_bool()), (Some("00"), Some(true)), "{good}");
    // The refused requests' tokens were never touched: with a good MAC they pay.
    let again = py(&t_bad, "000104", "good").await;
    assert_eq!(again["39"], "00", "{again}");
    assert_eq!(count(&s, sql, "MACPY001").await, 2, "exactly the two good payments are stored");

    // ascii with AES-CMAC: a purchase; an echo (DE70: a secondary bitmap, so the MAC is DE128);
    // a MAC put in DE64 of a message with a secondary bitmap; a malformed frame (30, and the
    // connection lives on).
    let mut t = terminal(&ascii, "MACRS001", "MACMERCHANT0002").await;
    let key = Key::Cmac(TAK_AES);
    let m = t.purchase(&token(&s, &card).await, 2500);
    let (a, ok) = call(&mut t.stream, Dialect::Ascii, &m, Some(key), key).await;
    assert_eq!((a.response_code(), ok, a.contains(64)), (Some("00"), true, true));
    let mut echo = Message::new(Mti::NETWORK_REQUEST);
    echo.set_transmission_date_time("0612143015").unwrap().set_stan("000201").unwrap();
    echo.set_terminal_id("MACRS001").unwrap().set_network_management_code("301").unwrap();
    let (a, ok) = call(&mut t.stream, Dialect::Ascii, &echo, Some(key), key).await;
    assert_eq!((a.mti(), a.response_code(), ok), (Mti::NETWORK_RESPONSE, Some("00"), true));
    assert!(a.contains(128) && !a.contains(64), "the answer's MAC is DE128");
    let mut misplaced = echo.clone();
    misplaced.set(64, "0000000000000000").unwrap();
    let (a, _) = call(&mut t.stream, Dialect::Ascii, &misplaced, None, key).await;
    assert_eq!(a.response_code(), Some("63"));
    let mut raw = sealed(Dialect::Ascii, &t.purchase(&token(&s, &card).await, 100), Some(key));
    raw.push(b'0');
    send(&mut t.stream, &raw).await;
    let a = Message::decode(&recv(&mut t.stream).await).unwrap();
    assert_eq!(a.response_code(), Some("30"));
    // Under another terminal's key, or for a terminal with no key at all: 63.
    let m = t.purchase(&token(&s, &card).await, 100);
    let (a, _) = call(&mut t.stream, Dialect::Ascii, &m, Some(Key::Retail(TAK_TDES)), key).await;
    assert_eq!(a.response_code(), Some("63"));
    let mut nokey = terminal(&ascii, "NOKEY001", "MACMERCHANT0003").await;
    let m = nokey.purchase(&token(&s, &card).await, 100);
    let (a, ok) = call(&mut nokey.stream, Dialect::Ascii, &m, Some(key), key).await;
    assert_eq!((a.response_code(), ok, a.contains(64)), (Some("63"), false, false), "no TAK: 63 without a MAC");
    assert_eq!(count(&s, sql, "MACRS001").await, 1);
    assert_eq!(count(&s, sql, "NOKEY001").await, 0);
}

/// The 0800 asking for a new TAK.
fn key_request(terminal: &str, stan: &str) -> Message {
    let mut m = Message::new(Mti::NETWORK_REQUEST);
    m.set_transmission_date_time("1123103000").unwrap().set_stan(stan).unwrap();
    m.set_terminal_id(terminal).unwrap().set_network_management_code("101").unwrap();
    m
}

#[tokio::test]
async fn key_exchange_mid_traffic_with_an_overlap() {
    let binary = free_addr();
    let config = format!(
        "{}\n[iso]\nkey_overlap_seconds = 4\n\
         [[iso.listeners]]\naddr = \"{binary}\"\ndialect = \"binary\"\nmac = \"required\"\n\
         [[iso.link_keys]]\nterminal = \"KXA00001\"\ntak = \"{TAK_TDES}\"\nzmk = \"{ZMK}\"\n\
         [[iso.link_keys]]\nterminal = \"KXB00001\"\ntak = \"{TAK_TDES_2}\"\n",
        tsp::config::DEFAULT_TOML
    );
    let s = start(config).await;
    let card = a_card(&s).await;
    s.register_terminal("KXA00001", "KXMERCHANT00001").await;
    s.register_terminal("KXB00001", "KXMERCHANT00002").await;
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(token(&s, &card).await);
    }
    let old = Key::Retail(TAK_TDES);

    // Terminal B pays all along on its own connection; terminal A pays on a second connection
    // under its old TAK while its first connection changes the key.
    let b_tokens: Vec<String> = tokens.drain(..24).collect();
    let b_addr = binary.clone();
    let b = tokio::spawn(async move {
        let mut t = terminal(&b_addr, "KXB00001", "KXMERCHANT00002").await;
        let key = Key::Retail(TAK_TDES_2);
        let mut codes = Vec::new();
        for tk in b_tokens {
            let m = t.purchase(&tk, 100);
            let (a, ok) = call(&mut t.stream, Dialect::Binary, &m, Some(key), key).await;
            codes.push((a.response_code().unwrap_or("none").to_string(), ok));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        codes
    });
    let a_tokens: Vec<String> = tokens.drain(..8).collect();
    let a_addr = binary.clone();
    let a_old = tokio::spawn(async move {
        let mut t = terminal(&a_addr, "KXA00001", "KXMERCHANT00001").await;
        t.stan = 500;
        let mut codes = Vec::new();
        for tk in a_tokens {
            let m = t.purchase(&tk, 100);
            let (a, _) = call(&mut t.stream, Dialect::Binary, &m, Some(old), old).await;
            codes.push(a.response_code().unwrap_or("none").to_string());
        }
        codes
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a = terminal(&binary, "KXA00001", "KXMERCHANT00001").await;
    let (ans, ok) = call(&mut a.stream, Dialect::Binary, &key_request("KXA00001", "000900"), Some(old), old).await;
    assert_eq!(
        (ans.mti(), ans.response_code(), ok),
        (Mti::NETWORK_RESPONSE, Some("00"), true),
        "0810 MACed under the old TAK"
    );
    assert_eq!(ans.network_management_code(), Some("101"));
    // DE48: KB + 3-digit length + TR-31 block, KC + 2-digit length + KCV.
    let de48 = ans.additional_data().unwrap().to_string();
    assert!(de48.starts_with("KB"), "{de48}");
    let n: usize = de48[2..5].parse().unwrap();
    let block = &de48[5..5 + n];
    let kc = &de48[5 + n..];
    assert!(kc.starts_with("KC06"), "{de48}");
    let kcv = &kc[4..];
    // Opened independently (psec) under the zone key: a TDES MAC key, its check value as sent.
    let opened = python(vec!["unwrap".into(), ZMK.into(), block.into()], None).await;
    assert_eq!((opened["usage"].as_str(), opened["algorithm"].as_str()), (Some("M3"), Some("T")), "{opened}");
    assert_eq!((opened["version"].as_str(), opened["mode"].as_str()), (Some("D"), Some("C")), "{opened}");
    assert_eq!(opened["kcv"].as_str(), Some(kcv), "{opened}");
    let new_tak = opened["key"].as_str().unwrap().to_string();
    assert_ne!(new_tak, TAK_TDES);
    let new = Key::Retail(&new_tak);

    // During the overlap both keys pass; answers come back under the key of the request.
    a.stan = 900;
    let m = a.purchase(&tokens.pop().unwrap(), 100);
    let (ans, ok) = call(&mut a.stream, Dialect::Binary, &m, Some(new), new).await;
    assert_eq!((ans.response_code(), ok), (Some("00"), true), "new TAK");
    let m = a.purchase(&tokens.pop().unwrap(), 100);
    let (ans, ok) = call(&mut a.stream, Dialect::Binary, &m, Some(old), old).await;
    assert_eq!((ans.response_code(), ok), (Some("00"), true), "old TAK within the overlap");

    let b_codes = b.await.unwrap();
    assert!(b_codes.iter().all(|(c, ok)| c == "00" && *ok), "terminal B never failed: {b_codes:?}");
    let a_codes = a_old.await.unwrap();
    assert!(a_codes.iter().all(|c| c == "00"), "terminal A's old-key payments all approved: {a_codes:?}");

    // After the overlap the old TAK is refused (63, nothing stored) and the new one pays.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let m = a.purchase(&tokens.pop().unwrap(), 100);
    let (ans, ok) = call(&mut a.stream, Dialect::Binary, &m, Some(old), new).await;
    assert_eq!(
        (ans.response_code(), ok),
        (Some("63"), true),
        "old TAK after the overlap; the refusal MACed under the new"
    );
    let refused_stan = m.stan().unwrap().to_string();
    let m = a.purchase(&tokens.pop().unwrap(), 100);
    let (ans, ok) = call(&mut a.stream, Dialect::Binary, &m, Some(new), new).await;
    assert_eq!((ans.response_code(), ok), (Some("00"), true));
    let sql = "SELECT COUNT(*) FROM transactions WHERE stan = $1 AND terminal_id = 'KXA00001'";
    assert_eq!(count(&s, sql, &refused_stan).await, 0, "the refused payment left no row");
    let sql = "SELECT COUNT(*) FROM link_keys WHERE link = $1 AND kind = 'tak'";
    assert_eq!(count(&s, sql, "KXA00001").await, 2, "two TAK versions, both key blocks");
    let db = s.database().await;
    let blocks: Vec<String> =
        sqlx::query_scalar("SELECT key_block FROM link_keys WHERE link = 'KXA00001'").fetch_all(&db).await.unwrap();
    db.close().await;
    for b in &blocks {
        assert!(b.starts_with('D'), "stored as TR-31 version D blocks");
        assert!(!b.to_uppercase().contains(&new_tak) && !b.to_uppercase().contains(TAK_TDES), "never in clear");
    }

    // No zone key: 12. A key exchange on a listener without MACs: 12 (nobody proved who asks).
    let mut bt = terminal(&binary, "KXB00001", "KXMERCHANT00002").await;
    let b_key = Key::Retail(TAK_TDES_2);
    let (ans, _) = call(&mut bt.stream, Dialect::Binary, &key_request("KXB00001", "000950"), Some(b_key), b_key).await;
    assert_eq!(ans.response_code(), Some("12"));
    let mut plain = Terminal::connect(&s.iso).await;
    let ans = plain.call(&key_request("KXA00001", "000951")).await;
    assert_eq!(ans.response_code(), Some("12"));
    assert_eq!(count(&s, "SELECT COUNT(*) FROM link_keys WHERE link = $1", "KXB00001").await, 1);
}

/// A `tsp issuer-sim` process, killed when dropped (also when an assertion fails).
struct Sim(std::process::Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tsp issuer-sim --dialect binary --tak TAK`; its address.
fn issuer_sim(tak: &str) -> (Sim, String) {
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_tsp"))
        .args(["issuer-sim", "--listen", "127.0.0.1:0", "--dialect", "binary", "--tak", tak])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sim.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("tsp issuer-sim (binary) (MAC): listening on "), "{line}");
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    (Sim(sim), addr)
}

fn with_issuer(addr: &str, tak: &str) -> String {
    tsp::config::DEFAULT_TOML.replace(
        "[[issuers]]\n",
        &format!(
            "[[issuers]]\nhost = \"tcp://{addr}\"\ntimeout_ms = 1500\ndialect = \"binary\"\nmac = \"required\"\ntak = \"{tak}\"\n"
        ),
    )
}

#[tokio::test]
async fn an_issuer_link_macs_both_ways() {
    let (sim, addr) = issuer_sim(TAK_TDES);
    let (host, port) = addr.rsplit_once(':').unwrap();
    // An acquirer written with pyiso8583, its MAC computed in Python: approved with a MACed answer;
    // a wrong MAC is refused 63.
    let py = |stan: &str, how: &str| {
        let args = ["pay", host, port, "retail", TAK_TDES, "ACQ00001", "ACQUIRER0000001", PAN, stan, how];
        python(args.map(String::from).to_vec(), None)
    };
    let good = py("000301", "good").await;
    assert_eq!((good["39"].as_str(), good["mac_ok"].as_bool()), (Some("00"), Some(true)), "{good}");
    let bad = py("000302", "bad").await;
    assert_eq!((bad["39"].as_str(), bad["11"].as_str()), (Some("63"), Some("000302")), "{bad}");

    // tsp MACs its requests and checks the answers: a payment goes through.
    let s = start(with_issuer(&addr, TAK_TDES)).await;
    let card = a_card(&s).await;
    let mut t = s.terminal_as("ISSMAC01", "ISSMACMERCHANT1").await;
    let a = t.pay(&token(&s, &card).await, 1500).await;
    assert_eq!(a.response_code(), Some("00"));
    drop(s);

    // tsp holding another TAK than the issuer: the issuer refuses tsp's MAC, and tsp believes no
    // answer under a MAC it cannot verify: 91 (and a 0420 is owed), no approval.
    let s = start(with_issuer(&addr, TAK_TDES_2)).await;
    let card = a_card(&s).await;
    let mut t = s.terminal_as("ISSMAC02", "ISSMACMERCHANT2").await;
    let a = t.pay(&token(&s, &card).await, 1500).await;
    assert_eq!(a.response_code(), Some("91"));
    let sql = "SELECT COUNT(*) FROM transactions WHERE terminal_id = $1 AND status = 'approved'";
    assert_eq!(count(&s, sql, "ISSMAC02").await, 0);
    drop(sim);
}
