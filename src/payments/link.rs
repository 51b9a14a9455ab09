//! MACs and key exchange on terminal links (docs/iso8583.md "MAC", "Key exchange").
//!
//! A terminal's keys are rows of `link_keys`: each version a TR-31 key block under the HSM's link
//! KBPK, so no key is ever in clear outside the HSM. `tak` versions MAC its messages; the `zmk` is
//! the zone key a new TAK is sent under. A TAK replaced by a key exchange is still accepted until its
//! `retires_at` (`[iso] key_overlap_seconds` later).
//!
//! On a listener with `mac = "required"` every request is checked before anything else: no DE41, no
//! MAC, a MAC in the wrong field, a terminal without a TAK, or a MAC no accepted TAK gives are all
//! answered `63` (security violation), with DE11 and DE41 echoed, and nothing is processed or
//! stored. Every answer on such a listener carries a MAC: under the TAK that verified the request,
//! else under the terminal's current TAK (when it has one).

use crate::clock::Clock;
use crate::config::LinkKeyConfig;
use crate::error::Error;
use crate::hsm::Hsm;
use crate::iso8583::{Dialect, Message, mac};
use crate::store::{LinkKeyRow, Store};

use super::{Answer, Payments, Reply, ResponseCode, encode};

/// The kinds of link keys.
pub const TAK: &str = "tak";
pub const ZMK: &str = "zmk";

/// A terminal's link keys, through the store and the HSM.
pub struct LinkKeys {
    store: Store,
    hsm: Hsm,
    clock: Clock,
    overlap_ms: i64,
}

impl LinkKeys {
    pub fn new(store: Store, hsm: Hsm, clock: Clock, overlap_seconds: u64) -> Self {
        let overlap_ms = i64::try_from(overlap_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        LinkKeys { store, hsm, clock, overlap_ms }
    }

    /// Loads `[[iso.link_keys]]`: each clear key becomes a key block, stored for its terminal when
    /// the terminal has no key of that kind yet.
    pub async fn seed(&self, specs: &[LinkKeyConfig]) -> crate::Result<()> {
        if specs.is_empty() {
            return Ok(());
        }
        self.hsm.ensure_link_kbpk().await?;
        let now = self.clock.now_ms();
        for s in specs {
            let keys = [(TAK, s.tak.as_ref(), s.mac_algorithm.tr31()), (ZMK, s.zmk.as_ref(), ("K1", "A"))];
            for (kind, key, (usage, algorithm)) in keys {
                let Some(key) = key else { continue };
                let bytes = key.bytes().ok_or_else(|| Error::invalid("link_key_invalid", "a link key must be hex"))?;
                let (block, kcv) = self.hsm.link_key_from_clear(usage, algorithm, &bytes).await?;
                self.store.add_link_key(s.terminal.trim_end(), kind, &block, &kcv, now, now, true).await?;
            }
        }
        Ok(())
    }

    /// The versions of a link's key of `kind` still accepted now, newest first.
    async fn accepted(&self, link: &str, kind: &str) -> crate::Result<Vec<LinkKeyRow>> {
        let now = self.clock.now_ms();
        let mut keys = self.store.link_keys(link, kind).await?;
        keys.retain(|k| k.retires_at.is_none_or(|r| r > now));
        Ok(keys)
    }

    /// The current TAK of a link.
    pub async fn current_tak(&self, link: &str) -> crate::Result<Option<LinkKeyRow>> {
        Ok(self.store.link_keys(link, TAK).await?.into_iter().find(|k| k.retires_at.is_none()))
    }

    /// The accepted TAK under which `mac` is the MAC of `data`, if any.
    pub async fn verify(&self, link: &str, data: &[u8], mac: &[u8]) -> crate::Result<Option<LinkKeyRow>> {
        for key in self.accepted(link, TAK).await? {
            if self.hsm.link_mac_verify(&key.key_block, data, mac).await? {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// The MAC of `data` under `key`.
    pub async fn sign(&self, key: &LinkKeyRow, data: &[u8]) -> crate::Result<[u8; mac::MAC_LEN]> {
        Ok(self.hsm.link_mac(&key.key_block, data).await?)
    }

    /// A key exchange: a new TAK (of the current one's algorithm) made in the HSM, stored as the
    /// current version (the one it replaces accepted for the overlap), and returned under the
    /// link's zone key with its check value. None when the link has no zone key.
    pub async fn exchange(&self, link: &str) -> crate::Result<Option<(String, String)>> {
        let Some(zmk) = self.accepted(link, ZMK).await?.into_iter().next() else { return Ok(None) };
        let current = self.current_tak(link).await?;
        // The usage and algorithm bytes of the current block's TR-31 header; retail MAC by default.
        let (usage, algorithm) = match current.as_ref().map(|k| k.key_block.as_bytes()) {
            Some([_, _, _, _, _, b'M', b'6', b'A', ..]) => ("M6", "A"),
            _ => ("M3", "T"),
        };
        let new = self.hsm.new_working_key(&zmk.key_block, usage, algorithm).await?;
        let now = self.clock.now_ms();
        let retire_at = now.saturating_add(self.overlap_ms);
        self.store.add_link_key(link, TAK, &new.block, &new.kcv, now, retire_at, false).await?;
        tracing::info!(terminal = link, kcv = %new.kcv, "new TAK by key exchange");
        Ok(Some((new.zone_block, new.kcv)))
    }
}

/// The answer `code` to `msg` (an `0810` for an `0800`).
fn refusal(msg: &Message, code: ResponseCode) -> Answer {
    let Some(resp_mti) = msg.mti().response() else { return Answer::Nothing };
    if msg.mti().as_str() == "0800" {
        return encode(Reply::network(msg, code));
    }
    encode(Reply::to(msg, resp_mti, code))
}

impl Payments {
    /// The MAC check of a request received as `raw` in `dialect` on a MAC link: the TAK that
    /// verified it, or the answer to send instead (`63`; `96` when the store or HSM fails).
    pub async fn check_mac(&self, dialect: Dialect, raw: &[u8], msg: &Message) -> Result<LinkKeyRow, Answer> {
        let terminal = msg.terminal_id().map(str::trim_end).filter(|t| !t.is_empty());
        let Some(terminal) = terminal else {
            tracing::info!("request without DE41 on a MAC link");
            return Err(refusal(msg, ResponseCode::SECURITY_VIOLATION));
        };
        let (covered, given) = match mac::received(dialect, raw, msg) {
            Ok(x) => x,
            Err(e) => {
                tracing::info!(terminal, error = %e, "request refused: no usable MAC");
                crate::metrics::get().iso(msg.mti().as_str(), "63", std::time::Duration::ZERO);
                return Err(refusal(msg, ResponseCode::SECURITY_VIOLATION));
            }
        };
        match self.link_keys.verify(terminal, covered, &given).await {
            Ok(Some(key)) => Ok(key),
            Ok(None) => {
                tracing::info!(terminal, "request refused: the MAC does not verify");
                crate::metrics::get().iso(msg.mti().as_str(), "63", std::time::Duration::ZERO);
                Err(refusal(msg, ResponseCode::SECURITY_VIOLATION))
            }
            Err(e) => {
                tracing::error!(error = %e, "MAC check failed");
                Err(refusal(msg, ResponseCode::SYSTEM_ERROR))
            }
        }
    }

    /// An answer (ASCII, as the flows encode it) in `dialect` with its MAC: under `key` (the TAK that
    /// verified the request), else under the current TAK of the answer's DE41; without a MAC when
    /// there is neither. None when it cannot be written.
    pub async fn seal_answer(&self, dialect: Dialect, ascii: &[u8], key: Option<LinkKeyRow>) -> Option<Vec<u8>> {
        let mut msg = Message::decode(ascii).ok()?;
        let key = match key {
            Some(k) => Some(k),
            None => match msg.terminal_id().map(str::trim_end).filter(|t| !t.is_empty()) {
                Some(t) => self.link_keys.current_tak(t).await.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "TAK lookup failed");
                    None
                }),
                None => None,
            },
        };
        let Some(key) = key else { return dialect.encode(&msg).ok() };
        let mut out = match mac::prepare(dialect, &mut msg) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "answer cannot carry a MAC");
                return None;
            }
        };
        match self.link_keys.sign(&key, mac::covered(dialect, &out)).await {
            Ok(m) => {
                mac::seal(dialect, &mut out, &m);
                Some(out)
            }
            Err(e) => {
                tracing::error!(error = %e, "answer MAC failed");
                None
            }
        }
    }

    /// A key exchange request (`0800` DE70 `101`/`161`) that passed its MAC check: the registry's
    /// verdict, then a new TAK in DE48 of the `0810` (`12` when the terminal has no zone key).
    pub(super) async fn key_exchange(&self, msg: &Message) -> Reply {
        let Some(terminal) = msg.terminal_id().map(str::trim_end).filter(|t| !t.is_empty()) else {
            return Reply::network(msg, ResponseCode::FORMAT_ERROR);
        };
        match self.link_keys.exchange(terminal).await {
            Ok(Some((block, kcv))) => {
                let mut r = Reply::network(msg, ResponseCode::APPROVED);
                r.set_key_block(&block, &kcv);
                r
            }
            Ok(None) => Reply::network(msg, ResponseCode::INVALID_TRANSACTION),
            Err(e) => {
                tracing::error!(error = %e, "key exchange failed");
                Reply::network(msg, ResponseCode::SYSTEM_ERROR)
            }
        }
    }
}
