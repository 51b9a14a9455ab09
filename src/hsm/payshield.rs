//! The HSM as a Thales payShield: tsp's HSM requests mapped onto payShield host commands over TCP
//! (`payshield://host:port`) or TLS (`payshield+tls://host:port` with `[tls.hsm]`), so a payShield — or
//! `hsm-sim serve --protocol payshield` — can be the service's HSM.
//!
//! A payShield keeps no keys by name: the host keeps every key enciphered under the HSM's LMK and
//! sends it with each command. This backend keeps that **key table** in tsp's database (`hsm_keys`,
//! migration 13): label, version, usage, the key under the LMK and its check value. Nodes sharing the
//! database share it. The mapping (docs/hsm-and-vectors.md "tsp over payShield"):
//!
//! - stored keys: `A0` generates them as key blocks (`S`): HMAC keys (`M7`, 32 bytes) for the
//!   fingerprint, PAR and duplicate keys; the KEK is the LMK itself (no row: payShield wraps every key
//!   under its LMK), its check value from `NC`.
//! - clear keys from the configuration (the token IMKs): kept when the table holds a key of the same
//!   check value; otherwise enciphered here under the LMK only when `NC` shows the published *test*
//!   LMK (hsm-sim, a lab payShield) — under any other LMK they must be loaded at the HSM's console and
//!   put in the table (`tsp keys payshield-load`).
//! - data keys: two `A0` key blocks, an AES-256 data key (`D0`) and an HMAC key (`M7`); the "wrapped"
//!   blob the vault stores is both, under the LMK.
//! - seal: AES-256-CBC (`M0`, IV = the 12-byte random nonce ‖ 4 zero bytes), ISO 9797-1 padding method
//!   2, then HMAC-SHA-256 (`LQ`, 16 bytes) over a domain label, the AAD's length and the AAD, the nonce
//!   and the ciphertext: encrypt-then-MAC. open: `LS` verifies the tag in the HSM first, then `M2`.
//! - HMAC: `LQ`, SHA-256, 32 bytes.
//! - chip: ARQC verification and the method 2 ARPC in one command, `KW` (EMV common session key, the
//!   CVN 18 layout); the ICC master key never leaves the HSM for a payment.
//! - a token's limited-use key (the ICC master key the token's holder is personalised with): `9A`,
//!   hsm-sim's own command — no payShield command returns a derived key in clear.
//!
//! Nothing else is offered: other requests fail `format` naming the operation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hsm_sim::payshield::lmk::{self, KeyType, Scheme};
use hsm_sim::{Algorithm, HsmError, KeyId, KeyInfo, KeyRef, KeyUsage, Request, Response, SecretBytes};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::{HsmBackend, HsmFuture, KeyFuture};
use crate::config::ClientTlsConfig;
use crate::store::{HsmKeyRow, Store};
use crate::tls::{BoxedIo, Connector};

/// How long one command may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for reuse.
const POOL_MAX: usize = 16;
/// The message header this client sends (a sequence number), echoed by the HSM.
pub const HEADER_LEN: usize = 4;
/// The domain label the seal's MAC starts with.
const SEAL_LABEL: &[u8] = b"tsp/payshield/seal/v1";
/// Seal tag length (HMAC-SHA-256 cut to 128 bits).
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 12;
/// What a data-key blob starts with.
const BLOB_TAG: &str = "tsp-ps1:";

/// Key-block attributes of the keys `A0` makes (usage, mode, version, exportability, `&` algorithm).
const HMAC_KEY: &[u8] = b"0FFFS#M7C00N&H2";
const DATA_KEY: &[u8] = b"000BS#D0B00N&A3";

pub struct PayShieldBackend {
    addr: String,
    tls: Option<Connector>,
    idle: Mutex<Vec<BoxedIo>>,
    store: OnceLock<Store>,
    rng: SystemRandom,
    seq: AtomicU32,
}

/// A payShield error code other than `00`.
fn refused(command: &[u8; 2], code: [u8; 2]) -> HsmError {
    let (c, e) = (String::from_utf8_lossy(command), String::from_utf8_lossy(&code));
    match &code {
        b"01" => HsmError::auth(format!("payShield {c}: verification failed (01)")),
        b"04" | b"05" | b"10" | b"11" | b"26" => HsmError::key(format!("payShield {c}: key refused ({e})")),
        b"15" => HsmError::format(format!("payShield {c}: invalid input (15)")),
        _ => HsmError::internal(format!("payShield {c}: error code {e}")),
    }
}

fn usage_name(u: KeyUsage) -> String {
    serde_json::to_value(u).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn usage_of(name: &str) -> Result<KeyUsage, HsmError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| HsmError::internal("payShield key table: unknown usage"))
}

fn info(row: &HsmKeyRow) -> Result<KeyInfo, HsmError> {
    let usage = usage_of(&row.usage)?;
    let (algorithm, mode, length) = match usage {
        KeyUsage::Hmac => (Algorithm::Hmac, "C", 32),
        KeyUsage::DataEncryption => (Algorithm::Aes, "B", 32),
        _ => (Algorithm::Tdes, "X", 16),
    };
    Ok(KeyInfo {
        id: KeyId { label: row.label.clone(), version: u32::try_from(row.version).unwrap_or(0) },
        usage,
        algorithm,
        mode: mode.into(),
        exportable: false,
        length,
        kcv: row.kcv.clone(),
        volatile: false,
    })
}

/// A key field as the answer of `A0` carries it: `S` and a key block (its length in the block's
/// header), or `U` and 32 hex digits.
fn split_key_field(answer: &[u8]) -> Result<(&[u8], &[u8]), HsmError> {
    let bad = || HsmError::internal("payShield answer: malformed key field");
    let len = match answer.first() {
        Some(b'S') => {
            let digits = answer.get(2..6).ok_or_else(bad)?;
            1 + std::str::from_utf8(digits).ok().and_then(|d| d.parse::<usize>().ok()).ok_or_else(bad)?
        }
        Some(b'U') => 33,
        _ => return Err(bad()),
    };
    if answer.len() < len {
        return Err(bad());
    }
    Ok(answer.split_at(len))
}

/// PAN/PSN as `KW` takes it: the rightmost 16 digits of PAN ‖ PSN (zeros on the left), as 8 BCD bytes.
fn pan_psn(pan: &str, psn: &str) -> Result<Vec<u8>, HsmError> {
    let digits: String = format!("{pan}{psn}");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || pan.len() < 12 || psn.len() != 2 {
        return Err(HsmError::format("PAN and PSN must be digits"));
    }
    let tail = &digits[digits.len().saturating_sub(16)..];
    let padded = format!("{tail:0>16}");
    hex::decode(padded).map_err(|_| HsmError::format("PAN and PSN must be digits"))
}

/// ISO/IEC 9797-1 padding method 2 to a multiple of `block`.
fn pad2(data: &[u8], block: usize) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(data.len() + block));
    v.extend_from_slice(data);
    v.push(0x80);
    while !v.len().is_multiple_of(block) {
        v.push(0);
    }
    v
}

fn unpad2(mut v: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    while v.last() == Some(&0) {
        v.pop();
    }
    if v.pop() != Some(0x80) {
        return Err(HsmError::auth("sealed value: bad padding"));
    }
    Ok(v)
}

/// A length field of `n` decimal digits.
fn dec(len: usize, n: usize) -> Result<Vec<u8>, HsmError> {
    let s = format!("{len:0n$}");
    if s.len() != n {
        return Err(HsmError::range("payShield field too long"));
    }
    Ok(s.into_bytes())
}

/// A length field of `n` hex digits.
fn hexlen(len: usize, n: usize) -> Result<Vec<u8>, HsmError> {
    let s = format!("{len:0n$X}");
    if s.len() != n {
        return Err(HsmError::range("payShield field too long"));
    }
    Ok(s.into_bytes())
}

/// The two keys of a data-key blob.
struct DataKey {
    enc: String,
    mac: String,
}

fn data_key(blob: &[u8]) -> Result<DataKey, HsmError> {
    let bad = || HsmError::key("not a payShield data key");
    let text = std::str::from_utf8(blob).map_err(|_| bad())?;
    let (enc, mac) = text.strip_prefix(BLOB_TAG).and_then(|t| t.split_once('|')).ok_or_else(bad)?;
    Ok(DataKey { enc: enc.to_string(), mac: mac.to_string() })
}

impl PayShieldBackend {
    /// `url` is `payshield://host:port`, or `payshield+tls://host:port` with `tls` (`[tls.hsm]`).
    pub fn new(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Self, HsmError> {
        let (addr, secure) = match (url.strip_prefix("payshield://"), url.strip_prefix("payshield+tls://")) {
            (Some(a), _) => (a, false),
            (None, Some(a)) => (a, true),
            (None, None) => return Err(HsmError::format("a payShield URL is payshield://host:port")),
        };
        let tls = match (secure, tls) {
            (false, None) => None,
            (true, Some(cfg)) => {
                Some(Connector::new(cfg, crate::tls::host_of(addr)).map_err(|e| HsmError::format(e.to_string()))?)
            }
            (true, None) => return Err(HsmError::format("a payshield+tls:// URL needs the [tls.hsm] configuration")),
            (false, Some(_)) => {
                return Err(HsmError::format("[tls.hsm] is configured: the HSM URL must be payshield+tls://"));
            }
        };
        Ok(PayShieldBackend {
            addr: addr.to_string(),
            tls,
            idle: Mutex::new(Vec::new()),
            store: OnceLock::new(),
            rng: SystemRandom::new(),
            seq: AtomicU32::new(0),
        })
    }

    async fn open_conn(&self) -> std::io::Result<BoxedIo> {
        let s = TcpStream::connect(&self.addr).await?;
        let _ = s.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(s)),
            Some(tls) => tls.connect(s).await,
        }
    }

    fn take(&self) -> Option<BoxedIo> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, s: BoxedIo) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(s);
        }
    }

    async fn round_trip(s: &mut BoxedIo, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        let n = u16::try_from(msg.len()).map_err(std::io::Error::other)?;
        // The message may hold a PAN (M0, LQ): the copy is wiped when dropped.
        let mut out = Zeroizing::new(Vec::with_capacity(2 + msg.len()));
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(msg);
        s.write_all(&out).await?;
        s.flush().await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut answer).await?;
        Ok(answer)
    }

    /// Sends one command and returns the answer's fields after error code `00`.
    async fn command(&self, code: &[u8; 2], fields: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        let fut = self.command_inner(code, fields);
        tokio::time::timeout(CALL_TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| Err(HsmError::internal(format!("payShield at {} timed out", self.addr))))
    }

    async fn command_inner(&self, code: &[u8; 2], fields: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        let header = format!("{:04}", self.seq.fetch_add(1, Ordering::Relaxed) % 10_000);
        let mut msg = Zeroizing::new(Vec::with_capacity(HEADER_LEN + 2 + fields.len()));
        msg.extend_from_slice(header.as_bytes());
        msg.extend_from_slice(code);
        msg.extend_from_slice(fields);
        let unreachable =
            |e: std::io::Error| HsmError::internal(format!("payShield at {} unreachable: {e}", self.addr));
        let answer = match self.take() {
            Some(mut s) => match Self::round_trip(&mut s, &msg).await {
                Ok(a) => {
                    self.give_back(s);
                    a
                }
                // A pooled connection may have gone stale (the HSM restarted): once more on a fresh one.
                Err(_) => self.fresh_round_trip(&msg).await.map_err(unreachable)?,
            },
            None => self.fresh_round_trip(&msg).await.map_err(unreachable)?,
        };
        let answer = Zeroizing::new(answer);
        let response = [code[0], code[1].wrapping_add(1)];
        let (head, rest) = answer.split_at_checked(HEADER_LEN).ok_or_else(|| bad_answer(code))?;
        let (resp, rest) = rest.split_at_checked(2).ok_or_else(|| bad_answer(code))?;
        let (err, rest) = rest.split_at_checked(2).ok_or_else(|| bad_answer(code))?;
        if head != header.as_bytes() {
            return Err(bad_answer(code));
        }
        if resp == b"ZZ" && resp != response {
            return Err(HsmError::internal(format!(
                "payShield {}: command not offered by this HSM (ZZ)",
                String::from_utf8_lossy(code)
            )));
        }
        if resp != response {
            return Err(bad_answer(code));
        }
        if err != b"00" {
            return Err(refused(code, [err[0], err[1]]));
        }
        Ok(Zeroizing::new(rest.to_vec()))
    }

    async fn fresh_round_trip(&self, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut s = self.open_conn().await?;
        let a = Self::round_trip(&mut s, msg).await?;
        self.give_back(s);
        Ok(a)
    }

    fn store(&self) -> Result<&Store, HsmError> {
        self.store.get().ok_or_else(|| HsmError::internal("the payShield key table is not open yet"))
    }

    async fn rows(&self, label: &str) -> Result<Vec<HsmKeyRow>, HsmError> {
        self.store()?.hsm_keys(label).await.map_err(|e| HsmError::internal(format!("payShield key table: {e}")))
    }

    async fn insert(&self, row: &HsmKeyRow) -> Result<bool, HsmError> {
        self.store()?.insert_hsm_key(row).await.map_err(|e| HsmError::internal(format!("payShield key table: {e}")))
    }

    /// The key under the LMK that `key` names (the newest version when it names none).
    async fn lmk_form(&self, key: &KeyRef, usage: KeyUsage) -> Result<String, HsmError> {
        let KeyRef::Stored { label, version } = key else {
            return Err(HsmError::key("the payShield backend takes stored keys only"));
        };
        let rows = self.rows(label).await?;
        let row = match version {
            Some(v) => rows.iter().find(|r| r.version == i64::from(*v)),
            None => rows.last(),
        }
        .ok_or_else(|| HsmError::key(format!("no key {label} in the payShield key table")))?;
        if usage_of(&row.usage)? != usage {
            return Err(HsmError::key(format!("key {label} is not for this use")));
        }
        Ok(row.key_lmk.clone())
    }

    /// The LMK's check value (`NC`).
    async fn lmk_check_value(&self) -> Result<String, HsmError> {
        let a = self.command(b"NC", b"").await?;
        let kcv = a.get(..16).ok_or_else(|| bad_answer(b"NC"))?;
        Ok(String::from_utf8_lossy(kcv).into_owned())
    }

    /// A new key of `usage` under the LMK (`A0`): the key field and its check value.
    async fn generate(&self, usage: KeyUsage) -> Result<(String, String), HsmError> {
        let fields = match usage {
            KeyUsage::Hmac => HMAC_KEY,
            KeyUsage::DataEncryption => DATA_KEY,
            u => return Err(HsmError::key(format!("the payShield backend does not generate {} keys", usage_name(u)))),
        };
        let a = self.command(b"A0", fields).await?;
        let (key, kcv) = split_key_field(&a)?;
        Ok((String::from_utf8_lossy(key).into_owned(), String::from_utf8_lossy(kcv).into_owned()))
    }

    /// Stores a new version of `label` (the next after the newest); retries when another node took it.
    async fn add_version(
        &self,
        label: &str,
        usage: KeyUsage,
        key_lmk: String,
        kcv: String,
    ) -> Result<HsmKeyRow, HsmError> {
        for _ in 0..5 {
            let next = self.rows(label).await?.last().map(|r| r.version).unwrap_or(0) + 1;
            let row = HsmKeyRow {
                label: label.to_string(),
                version: next,
                usage: usage_name(usage),
                key_lmk: key_lmk.clone(),
                kcv: kcv.clone(),
                created_at: crate::clock::Clock::system().now_ms(),
            };
            if self.insert(&row).await? {
                return Ok(row);
            }
        }
        Err(HsmError::internal("payShield key table: could not store a new version"))
    }

    /// The KEK: over payShield the LMK wraps every key, so the KEK is the LMK (version 1, no row).
    async fn kek_info(&self, label: &str) -> Result<KeyInfo, HsmError> {
        let kcv = self.lmk_check_value().await?;
        Ok(KeyInfo {
            id: KeyId { label: label.to_string(), version: 1 },
            usage: KeyUsage::Kek,
            algorithm: Algorithm::Tdes,
            mode: "B".into(),
            exportable: false,
            length: 16,
            kcv: kcv.get(..6).unwrap_or_default().to_string(),
            volatile: false,
        })
    }

    async fn ensure_key(&self, label: &str, usage: KeyUsage) -> Result<Response, HsmError> {
        if usage == KeyUsage::Kek {
            return Ok(Response::Key { key: self.kek_info(label).await? });
        }
        if let Some(newest) = self.rows(label).await?.last() {
            return Ok(Response::Key { key: info(newest)? });
        }
        let (key, kcv) = self.generate(usage).await?;
        let row = HsmKeyRow {
            label: label.to_string(),
            version: 1,
            usage: usage_name(usage),
            key_lmk: key,
            kcv,
            created_at: crate::clock::Clock::system().now_ms(),
        };
        // Another node may store version 1 first: then its key is the one.
        self.insert(&row).await?;
        let rows = self.rows(label).await?;
        let newest = rows.last().ok_or_else(|| HsmError::internal("payShield key table: key vanished"))?;
        Ok(Response::Key { key: info(newest)? })
    }

    async fn import_clear(&self, label: &str, usage: KeyUsage, key: &[u8]) -> Result<Response, HsmError> {
        if usage != KeyUsage::EmvImkAc || key.len() != 16 {
            return Err(HsmError::key("the payShield backend imports only double-length EMV IMKs"));
        }
        let mut clear = Zeroizing::new(key.to_vec());
        hsm_sim::crypto::emv::adjust_odd_parity(&mut clear);
        let kcv = hex::encode_upper(
            lmk::check_value(&clear).map_err(|_| HsmError::key("bad IMK"))?.get(..3).unwrap_or_default(),
        );
        let rows = self.rows(label).await?;
        if let Some(row) = rows.iter().rev().find(|r| r.kcv == kcv) {
            return Ok(Response::Key { key: info(row)? });
        }
        // Only under the published test LMK may the host encipher a key itself: that LMK protects nothing.
        if self.lmk_check_value().await? != hex::encode_upper(lmk::lmk_check_value()) {
            return Err(HsmError::key(format!(
                "key {label} is not in the payShield key table: form it at the HSM and load it (tsp keys payshield-load)"
            )));
        }
        let kt = KeyType::parse(b"109").map_err(|_| HsmError::internal("key type"))?;
        let under = lmk::encrypt_under_lmk(kt, Scheme::U, &clear).map_err(|_| HsmError::key("bad IMK"))?;
        let key_lmk = format!("U{}", hex::encode_upper(under));
        let row = self.add_version(label, usage, key_lmk, kcv).await?;
        Ok(Response::Key { key: info(&row)? })
    }

    /// `tsp keys payshield-load`: an EMV IMK-AC formed at the HSM (under the LMK, `U…` or an `S` key
    /// block) becomes the newest version of `label`, with the check value the HSM computes (`BU`).
    async fn load(&self, label: &str, usage: KeyUsage, key_lmk: &str) -> Result<KeyInfo, HsmError> {
        if usage != KeyUsage::EmvImkAc {
            return Err(HsmError::key("only EMV IMK-AC keys are loaded into the payShield key table"));
        }
        let well_formed = match key_lmk.as_bytes().first() {
            Some(b'U') => key_lmk.len() == 33 && key_lmk[1..].bytes().all(|b| b.is_ascii_hexdigit()),
            Some(b'S') => key_lmk.len() > 17 && key_lmk.bytes().all(|b| b.is_ascii_alphanumeric()),
            _ => false,
        };
        if !well_formed {
            return Err(HsmError::format("a key under the LMK is U and 32 hex digits, or S and a key block"));
        }
        let a = self.command(b"BU", format!("FF1{key_lmk};109").as_bytes()).await?;
        let kcv = a.get(..6).ok_or_else(|| bad_answer(b"BU"))?;
        let kcv = String::from_utf8_lossy(kcv).to_uppercase();
        info(&self.add_version(label, usage, key_lmk.to_string(), kcv).await?)
    }

    async fn hmac(&self, key_lmk: &str, len: usize, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        let mut f = Zeroizing::new(Vec::with_capacity(64 + key_lmk.len() + data.len()));
        f.extend_from_slice(b"06");
        f.extend(dec(len, 4)?);
        f.extend_from_slice(b"00");
        f.extend(dec(key_lmk.len(), 4)?);
        f.extend_from_slice(key_lmk.as_bytes());
        f.push(b';');
        f.extend(dec(data.len(), 5)?);
        f.extend_from_slice(data);
        let a = self.command(b"LQ", &f).await?;
        let mac = a.get(4..4 + len).ok_or_else(|| bad_answer(b"LQ"))?;
        Ok(Zeroizing::new(mac.to_vec()))
    }

    async fn hmac_verify(&self, key_lmk: &str, data: &[u8], tag: &[u8]) -> Result<bool, HsmError> {
        let mut f = Zeroizing::new(Vec::with_capacity(64 + key_lmk.len() + data.len()));
        f.extend_from_slice(b"06");
        f.extend(dec(tag.len(), 4)?);
        f.extend_from_slice(b"00");
        f.extend(dec(key_lmk.len(), 4)?);
        f.extend_from_slice(key_lmk.as_bytes());
        f.push(b';');
        f.extend(dec(data.len(), 5)?);
        f.extend_from_slice(data);
        f.extend_from_slice(tag);
        match self.command(b"LS", &f).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == hsm_sim::ErrorKind::Auth => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `M0`/`M2` in CBC mode with an AES key block: binary in, hex out.
    async fn cbc(
        &self,
        encrypt: bool,
        key_lmk: &str,
        iv: &[u8; 16],
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        let mut f = Zeroizing::new(Vec::with_capacity(64 + key_lmk.len() + data.len()));
        f.extend_from_slice(b"0101");
        f.extend_from_slice(b"00B");
        f.extend_from_slice(key_lmk.as_bytes());
        f.extend_from_slice(hex::encode_upper(iv).as_bytes());
        f.extend(hexlen(data.len(), 4)?);
        f.extend_from_slice(data);
        let code = if encrypt { b"M0" } else { b"M2" };
        let a = self.command(code, &f).await?;
        let len =
            a.get(32..36).and_then(|l| std::str::from_utf8(l).ok()).and_then(|l| usize::from_str_radix(l, 16).ok());
        let body = len.and_then(|n| a.get(36..36 + n)).ok_or_else(|| bad_answer(code))?;
        Ok(Zeroizing::new(hex::decode(body).map_err(|_| bad_answer(code))?))
    }

    fn seal_mac_input(aad: &[u8], nonce: &[u8], ct: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(SEAL_LABEL.len() + 4 + aad.len() + nonce.len() + ct.len());
        m.extend_from_slice(SEAL_LABEL);
        m.extend_from_slice(&u32::try_from(aad.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.extend_from_slice(aad);
        m.extend_from_slice(nonce);
        m.extend_from_slice(ct);
        m
    }

    fn cbc_iv(nonce: &[u8]) -> Result<[u8; 16], HsmError> {
        let mut iv = [0u8; 16];
        iv.get_mut(..NONCE_LEN)
            .ok_or_else(|| HsmError::internal("IV"))?
            .copy_from_slice(nonce.get(..NONCE_LEN).ok_or_else(|| HsmError::format("IV must be 12 bytes"))?);
        Ok(iv)
    }

    async fn seal(&self, key: &KeyRef, iv: Option<&[u8]>, aad: &[u8], plaintext: &[u8]) -> Result<Response, HsmError> {
        let KeyRef::Wrapped { blob, .. } = key else {
            return Err(HsmError::key("the payShield backend seals under data keys only"));
        };
        let dk = data_key(&blob.0)?;
        let nonce = match iv {
            Some(iv) if iv.len() == NONCE_LEN => iv.to_vec(),
            Some(_) => return Err(HsmError::format("IV must be 12 bytes")),
            None => {
                let mut n = vec![0u8; NONCE_LEN];
                self.rng.fill(&mut n).map_err(|_| HsmError::internal("random generator failed"))?;
                n
            }
        };
        let ct = self.cbc(true, &dk.enc, &Self::cbc_iv(&nonce)?, &pad2(plaintext, 16)).await?;
        let tag = self.hmac(&dk.mac, TAG_LEN, &Self::seal_mac_input(aad, &nonce, &ct)).await?;
        Ok(Response::Sealed { iv: nonce.into(), ciphertext: ct.to_vec().into(), tag: tag.to_vec().into() })
    }

    async fn open(&self, key: &KeyRef, iv: &[u8], aad: &[u8], ct: &[u8], tag: &[u8]) -> Result<Response, HsmError> {
        let KeyRef::Wrapped { blob, .. } = key else {
            return Err(HsmError::key("the payShield backend opens under data keys only"));
        };
        let dk = data_key(&blob.0)?;
        if iv.len() != NONCE_LEN || tag.len() != TAG_LEN || ct.is_empty() || !ct.len().is_multiple_of(16) {
            return Err(HsmError::auth("sealed value does not verify"));
        }
        if !self.hmac_verify(&dk.mac, &Self::seal_mac_input(aad, iv, ct), tag).await? {
            return Err(HsmError::auth("sealed value does not verify"));
        }
        let clear = unpad2(self.cbc(false, &dk.enc, &Self::cbc_iv(iv)?, ct).await?)?;
        Ok(Response::Opened { plaintext: SecretBytes::from_slice(&clear) })
    }

    async fn generate_data_key(&self, kek: &str) -> Result<Response, HsmError> {
        let (enc, _) = self.generate(KeyUsage::DataEncryption).await?;
        let (mac, _) = self.generate(KeyUsage::Hmac).await?;
        let blob = format!("{BLOB_TAG}{enc}|{mac}").into_bytes();
        Ok(Response::WrappedKey { kek: KeyId { label: kek.to_string(), version: 1 }, blob: blob.into() })
    }

    /// `KW` for the CVN 18 layout: verify (mode 0) or the method 2 ARPC (mode 4).
    #[allow(clippy::too_many_arguments)]
    async fn kw(
        &self,
        imk: &KeyRef,
        pan: &str,
        psn: &str,
        atc: &[u8],
        data: Option<&[u8]>,
        arqc: &[u8],
        arpc: Option<(&[u8], &[u8])>,
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        if atc.len() != 2 || arqc.len() != 8 {
            return Err(HsmError::format("ATC must be 2 bytes and the ARQC 8"));
        }
        let key = self.lmk_form(imk, KeyUsage::EmvImkAc).await?;
        let mut f = Zeroizing::new(Vec::with_capacity(128));
        f.push(if data.is_some() { b'0' } else { b'4' });
        f.push(b'2');
        f.extend_from_slice(key.as_bytes());
        f.extend(pan_psn(pan, psn)?);
        f.extend_from_slice(atc);
        if let Some(data) = data {
            // The host pads (EMV padding method 2, as CVN 18); the HSM adds nothing to whole blocks.
            let padded = pad2(data, 8);
            f.extend(hexlen(padded.len(), 2)?);
            f.extend_from_slice(&padded);
            f.push(b';');
        }
        f.extend_from_slice(arqc);
        if let Some((csu, pad)) = arpc {
            if csu.len() != 4 || pad.len() > 8 {
                return Err(HsmError::format("CSU must be 4 bytes, proprietary data at most 8"));
            }
            f.extend_from_slice(csu);
            f.extend(hexlen(pad.len(), 1)?);
            f.extend_from_slice(pad);
        }
        self.command(b"KW", &f).await
    }

    async fn derive_icc_mk(&self, imk: &KeyRef, pan: &str, psn: &str) -> Result<Response, HsmError> {
        if !(12..=19).contains(&pan.len()) || psn.len() != 2 {
            return Err(HsmError::format("PAN of 12 to 19 digits, PSN of 2"));
        }
        let key = self.lmk_form(imk, KeyUsage::EmvImkAc).await?;
        let mut f = Zeroizing::new(Vec::with_capacity(64));
        f.extend_from_slice(key.as_bytes());
        f.extend_from_slice(pan.as_bytes());
        f.push(b';');
        f.extend_from_slice(psn.as_bytes());
        let a = self.command(b"9A", &f).await?;
        let mk = a.get(..32).ok_or_else(|| bad_answer(b"9A"))?;
        let mk = Zeroizing::new(hex::decode(mk).map_err(|_| bad_answer(b"9A"))?);
        Ok(Response::Derived { key: SecretBytes::from_slice(&mk) })
    }

    async fn execute(&self, req: Request) -> Result<Response, HsmError> {
        match req {
            Request::EnsureKey { label, usage } => self.ensure_key(&label, usage).await,
            Request::KeyInfo { label } => {
                let keys = self.rows(&label).await?.iter().map(info).collect::<Result<Vec<_>, _>>()?;
                Ok(Response::Keys { keys })
            }
            Request::GenerateKey { label, usage, .. } => {
                let (key, kcv) = self.generate(usage).await?;
                Ok(Response::Key { key: info(&self.add_version(&label, usage, key, kcv).await?)? })
            }
            Request::DestroyKey { label, version } => {
                let rows = self.rows(&label).await?;
                if rows.last().map(|r| r.version) == Some(i64::from(version)) {
                    return Err(HsmError::range("the newest version of a key cannot be destroyed"));
                }
                self.store()?
                    .delete_hsm_key(&label, i64::from(version))
                    .await
                    .map_err(|e| HsmError::internal(format!("payShield key table: {e}")))?;
                let keys = self.rows(&label).await?.iter().map(info).collect::<Result<Vec<_>, _>>()?;
                Ok(Response::Keys { keys })
            }
            Request::ImportClearKey { label, usage, key } => self.import_clear(&label, usage, key.expose()).await,
            Request::GenerateDataKey { kek } => self.generate_data_key(&kek).await,
            Request::AeadEncrypt { key, iv, aad, plaintext } => {
                self.seal(&key, iv.as_ref().map(|b| b.0.as_slice()), &aad.0, plaintext.expose()).await
            }
            Request::AeadDecrypt { key, iv, aad, ciphertext, tag } => {
                self.open(&key, &iv.0, &aad.0, &ciphertext.0, &tag.0).await
            }
            Request::Hmac { key, data } => {
                let k = self.lmk_form(&key, KeyUsage::Hmac).await?;
                Ok(Response::Mac { mac: self.hmac(&k, 32, data.expose()).await?.to_vec().into() })
            }
            Request::DeriveIccMk { imk, pan, psn, method } if method == "A" => {
                self.derive_icc_mk(&imk, &pan, &psn).await
            }
            Request::EmvVerifyArqc { imk, pan, psn, atc, data, arqc } => {
                match self.kw(&imk, &pan, &psn, &atc.0, Some(&data.0), &arqc.0, None).await {
                    Ok(_) => Ok(Response::Valid { valid: true }),
                    Err(e) if e.kind == hsm_sim::ErrorKind::Auth => Ok(Response::Valid { valid: false }),
                    Err(e) => Err(e),
                }
            }
            Request::EmvCvn18Arpc { imk, pan, psn, atc, arqc, csu, pad } => {
                let a = self.kw(&imk, &pan, &psn, &atc.0, None, &arqc.0, Some((&csu.0, &pad.0))).await?;
                let arpc = a.get(..4).ok_or_else(|| bad_answer(b"KW"))?;
                Ok(Response::Cryptogram { value: arpc.to_vec().into() })
            }
            other => Err(HsmError::format(format!("{} is not offered by the payShield backend", other.op()))),
        }
    }
}

fn bad_answer(code: &[u8; 2]) -> HsmError {
    HsmError::internal(format!("payShield {}: malformed answer", String::from_utf8_lossy(code)))
}

impl HsmBackend for PayShieldBackend {
    fn call(&self, req: Request) -> HsmFuture<'_> {
        Box::pin(self.execute(req))
    }

    fn attach_store(&self, store: &Store) {
        let _ = self.store.set(store.clone());
    }

    fn load_key<'a>(&'a self, label: &'a str, usage: KeyUsage, key_lmk: &'a str) -> KeyFuture<'a> {
        Box::pin(self.load(label, usage, key_lmk))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn pan_and_psn_as_kw_takes_them() {
        // EMV Book 2 A1.4.1 (Option A): the rightmost 16 digits of PAN ‖ PSN, zeros on the left.
        assert_eq!(hex::encode(pan_psn("4761739001010010", "00").unwrap()), "6173900101001000");
        assert_eq!(hex::encode(pan_psn("476173900101", "01").unwrap()), "0047617390010101");
        assert!(pan_psn("47617390010100x0", "00").is_err());
        assert!(pan_psn("4761739001010010", "0").is_err());
    }

    #[test]
    fn padding_method_2_round_trips_and_refuses_garbage() {
        // ISO/IEC 9797-1 padding method 2: 80 then zeros, always at least one byte.
        assert_eq!(pad2(b"", 16).as_slice(), &[[0x80].as_slice(), &[0; 15]].concat()[..]);
        assert_eq!(pad2(&[1; 16], 16).len(), 32);
        assert_eq!(unpad2(pad2(b"5555555555554444", 16)).unwrap().as_slice(), b"5555555555554444");
        assert!(unpad2(Zeroizing::new(vec![0; 16])).is_err());
        assert!(unpad2(Zeroizing::new(vec![1; 16])).is_err());
    }

    #[test]
    fn key_fields_of_an_a0_answer() {
        let (k, kcv) = split_key_field(b"U0123456789ABCDEF0123456789ABCDEFABC123").unwrap();
        assert_eq!((k, kcv), (&b"U0123456789ABCDEF0123456789ABCDEF"[..], &b"ABC123"[..]));
        let block = format!("SD0024M7HC00N0000{}", "0".repeat(8));
        let answer = format!("{block}1A2B3C");
        let (k, kcv) = split_key_field(answer.as_bytes()).unwrap();
        assert_eq!((k, kcv), (block.as_bytes(), &b"1A2B3C"[..]));
        assert!(split_key_field(b"SD99").is_err());
        assert!(split_key_field(b"X123").is_err());
    }

    #[test]
    fn urls() {
        assert!(PayShieldBackend::new("payshield://127.0.0.1:1500", None).is_ok());
        assert!(PayShieldBackend::new("tcp://127.0.0.1:1500", None).is_err());
        assert!(PayShieldBackend::new("payshield+tls://127.0.0.1:1500", None).is_err(), "TLS needs [tls.hsm]");
    }

    #[test]
    fn data_key_blobs() {
        let dk = data_key(b"tsp-ps1:SD0144D0AB|SD0144M7HC").unwrap();
        assert_eq!((dk.enc.as_str(), dk.mac.as_str()), ("SD0144D0AB", "SD0144M7HC"));
        assert!(data_key(b"not a blob").is_err());
        assert!(data_key(&[0xff, 0xfe]).is_err());
    }
}
