//! TDES DUKPT, ANSI X9.24-1:2009 Annex A (the same scheme as ANSI X9.24-3-2017 Annex C).
//!
//! - IPEK (A.6): `TDES(BDK, IKSN) ‖ TDES(BDK ⊕ C0C0C0C000000000C0C0C0C000000000, IKSN)`, IKSN being the
//!   leftmost 8 bytes of the 10-byte KSN with its 21-bit transaction counter cleared.
//! - Transaction ("current") key (A.2, A.3): starting from the IPEK and the KSN register with the counter
//!   cleared, for each counter bit set, most significant first, that bit is set in the register and the
//!   non-reversible key generation process derives the next key.
//! - Variants (A.4.1, table A-1): PIN, MAC request/response and data request/response masks XORed into
//!   the transaction key. The data keys are then made one-way by TDES-encrypting each half of the
//!   variant under the variant itself, as the data-encryption key is defined for X9.24-1:2009 hosts.
//!
//! Counter rules (A.3): an originating device never uses a counter with more than ten one-bits, nor
//! counter 0 (the KSN it was loaded with, whose key is the IPEK itself: accepting it would hand out the
//! IPEK as a transaction key). Both are `range` errors. The IPEK depends only on the initial KSN, so
//! [`ipek`] ignores the counter.

use des::cipher::{BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2};
use zeroize::Zeroizing;

use crate::error::HsmError;

pub const KSN_LEN: usize = 10;
pub const KEY_LEN: usize = 16;
const COUNTER_BITS: u32 = 21;
const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;
const MAX_COUNTER_ONES: u32 = 10;

const C0_MASK: [u8; 16] = [0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0];
const PIN_VARIANT: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF];
const MAC_REQUEST_VARIANT: [u8; 16] = [0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0];
const MAC_RESPONSE_VARIANT: [u8; 16] = [0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0];
const DATA_REQUEST_VARIANT: [u8; 16] = [0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0];
const DATA_RESPONSE_VARIANT: [u8; 16] = [0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0];

fn ksn_bytes(ksn: &[u8]) -> Result<[u8; KSN_LEN], HsmError> {
    <[u8; KSN_LEN]>::try_from(ksn).map_err(|_| HsmError::format("TDES DUKPT KSN must be 10 bytes"))
}

fn key16(key: &[u8], what: &'static str) -> Result<Zeroizing<[u8; KEY_LEN]>, HsmError> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    if key.len() != KEY_LEN {
        return Err(HsmError::key(what));
    }
    k.copy_from_slice(key);
    Ok(k)
}

/// The 21-bit transaction counter of `ksn`; `range` error for 0 or more than ten one-bits.
pub fn counter(ksn: &[u8]) -> Result<u32, HsmError> {
    let ksn = ksn_bytes(ksn)?;
    let c = u32::from_be_bytes([0, ksn[7], ksn[8], ksn[9]]) & COUNTER_MASK;
    if c == 0 {
        return Err(HsmError::range("TDES DUKPT counter 0 is the initial KSN, never a transaction"));
    }
    if c.count_ones() > MAX_COUNTER_ONES {
        return Err(HsmError::range("TDES DUKPT counter has more than ten one-bits"));
    }
    Ok(c)
}

/// The Initial PIN Encryption Key for the device whose KSN is `ksn` (A.6); `bdk` is a 16-byte TDES key.
pub fn ipek(bdk: &[u8], ksn: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, HsmError> {
    let ksn = ksn_bytes(ksn)?;
    let mut bdk = key16(bdk, "TDES DUKPT BDK must be a 16-byte TDES key")?;
    let mut iksn = [0u8; 8];
    iksn.copy_from_slice(&ksn[..8]);
    iksn[7] &= 0xE0;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    for (half, chunk) in out.as_chunks_mut::<8>().0.iter_mut().enumerate() {
        // Left half under the BDK, right half under the BDK XOR C0C0C0C000000000C0C0C0C000000000.
        if half == 1 {
            xor_in_place(&mut bdk, &C0_MASK);
        }
        *chunk = iksn;
        TdesEde2::new((&*bdk).into()).encrypt_block(chunk.into());
    }
    Ok(out)
}

/// The transaction key for `ksn`'s counter, before any variant, from the BDK.
pub fn transaction_key(bdk: &[u8], ksn: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, HsmError> {
    ksn_bytes(ksn)?;
    let ipek = ipek(bdk, ksn)?;
    transaction_key_from_ipek(&ipek[..], ksn)
}

/// The transaction key for `ksn`'s counter, before any variant, from the device's IPEK.
pub fn transaction_key_from_ipek(ipek: &[u8], ksn: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, HsmError> {
    let ksn_arr = ksn_bytes(ksn)?;
    let mut key = key16(ipek, "TDES DUKPT IPEK must be 16 bytes")?;
    let counter = counter(ksn)?;
    let mut reg = [0u8; 8];
    reg.copy_from_slice(&ksn_arr[2..]);
    let mut reg = u64::from_be_bytes(reg) & !u64::from(COUNTER_MASK);
    for bit in (0..COUNTER_BITS).rev() {
        if counter & (1 << bit) != 0 {
            reg |= 1 << bit;
            non_reversible_key_generation(&mut key, reg.to_be_bytes());
        }
    }
    Ok(key)
}

/// A.2 "Non-reversible Key Generation Process": the Key Register and Crypto Register-1 (`reg`, the
/// rightmost 64 bits of the KSN register) give the next key, in place.
fn non_reversible_key_generation(key: &mut [u8; KEY_LEN], reg: [u8; 8]) {
    let right = one_way(key, &reg);
    xor_in_place(key, &C0_MASK);
    let left = one_way(key, &reg);
    key[..8].copy_from_slice(&left[..]);
    key[8..].copy_from_slice(&right[..]);
}

/// `DES(key_left, reg ⊕ key_right) ⊕ key_right`.
fn one_way(key: &[u8; KEY_LEN], reg: &[u8; 8]) -> Zeroizing<[u8; 8]> {
    let mut left = Zeroizing::new([0u8; 8]);
    left.copy_from_slice(&key[..8]);
    let mut out = Zeroizing::new([0u8; 8]);
    for i in 0..8 {
        out[i] = reg[i] ^ key[8 + i];
    }
    Des::new((&*left).into()).encrypt_block((&mut *out).into());
    for i in 0..8 {
        out[i] ^= key[8 + i];
    }
    out
}

fn xor_in_place(a: &mut [u8; KEY_LEN], b: &[u8; KEY_LEN]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
}

fn variant(key: &[u8; KEY_LEN], mask: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new(*key);
    xor_in_place(&mut out, mask);
    out
}

/// The variant, then each half TDES-encrypted under the variant: a key that does not reveal the others.
fn one_way_variant(key: &[u8; KEY_LEN], mask: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let v = variant(key, mask);
    let cipher = TdesEde2::new((&*v).into());
    let mut out = Zeroizing::new(*v);
    for half in out.as_chunks_mut::<8>().0 {
        cipher.encrypt_block(half.into());
    }
    out
}

/// PIN encryption key (variant `…00FF…00FF`).
pub fn pin_key(txn_key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    variant(txn_key, &PIN_VARIANT)
}

/// MAC key, request or both ways (variant `…FF00…FF00`).
pub fn mac_request_key(txn_key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    variant(txn_key, &MAC_REQUEST_VARIANT)
}

/// MAC key, response (variant `…FF00 0000…FF00 0000`).
pub fn mac_response_key(txn_key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    variant(txn_key, &MAC_RESPONSE_VARIANT)
}

/// Data encryption key, request or both ways (variant `…00FF 0000…00FF 0000`, made one-way).
pub fn data_request_key(txn_key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    one_way_variant(txn_key, &DATA_REQUEST_VARIANT)
}

/// Data encryption key, response (variant `…FF 0000 0000…FF 0000 0000`, made one-way).
pub fn data_response_key(txn_key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    one_way_variant(txn_key, &DATA_RESPONSE_VARIANT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn hx(k: &[u8]) -> String {
        hex::encode_upper(k)
    }

    #[test]
    fn annex_a_ipek() {
        assert_eq!(hx(&ipek(&h(BDK), &h("FFFF9876543210E00000")).unwrap()[..]), "6AC292FAA1315B4D858AB3A3D7D5933A");
        // The counter does not enter the IPEK, even in byte 7.
        assert_eq!(hx(&ipek(&h(BDK), &h("FFFF9876543210FFF800")).unwrap()[..]), "6AC292FAA1315B4D858AB3A3D7D5933A");
    }

    /// ANSI X9.24-1:2009 Annex A sample: KSN counter, PIN variant key, MAC request variant key, and the
    /// PIN block 041274EDCBA9876F (PIN 1234, PAN 4012345678909) enciphered under the PIN key.
    const ANNEX_A: &[(&str, &str, &str, &str)] = &[
        ("E00001", "042666B49184CF5C68DE9628D0397B36", "042666B4918430A368DE9628D03984C9", "1B9C1845EB993A7A"),
        ("E00002", "C46551CEF9FD244FAA9AD834130D3B38", "C46551CEF9FDDBB0AA9AD834130DC4C7", "10A01C8D02C69107"),
        ("E00003", "0DF3D9422ACA561A47676D07AD6BAD05", "0DF3D9422ACAA9E547676D07AD6B52FA", "18DC07B94797B466"),
        ("E00008", "27F66D5244FF621EAA6F6120EDEB427F", "27F66D5244FF9DE1AA6F6120EDEBBD80", "50E55547A5027551"),
        ("E00015", "E161D1956A61F62DF37AFD7F9CC36965", "E161D1956A6109D2F37AFD7F9CC3969A", "72105C22EBC791E6"),
        ("E10000", "2F9A0C0B46ECCBA1F8287A7A071AF54B", "2F9A0C0B46EC345EF8287A7A071A0AB4", "19776D96D73AF1E2"),
        ("EFF800", "F9CDFEBF4F5B1D61B3EC12454527E189", "F9CDFEBF4F5BE29EB3EC124545271E76", "33365F5CC6F23C35"),
        ("EFFC00", "F9430DF97508246EC77BE4EF4FDB9111", "F9430DF97508DB91C77BE4EF4FDB6EEE", "DEFC6F09F8927B71"),
        ("F00000", "AA4D58DB653EC7B548C75F2F047DD24A", "AA4D58DB653E384A48C75F2F047D2DB5", "73EC88AD0AC5830E"),
    ];

    #[test]
    fn annex_a_transaction_keys_and_variants() {
        let clear = crate::crypto::pin::iso0_encode("1234", "4012345678909").unwrap();
        assert_eq!(hx(&clear[..]), "041274EDCBA9876F");
        for (ctr, pin, mac, epb) in ANNEX_A {
            let ksn = h(&format!("FFFF9876543210{ctr}"));
            let txn = transaction_key(&h(BDK), &ksn).unwrap();
            assert_eq!(hx(&pin_key(&txn)[..]), *pin, "{ctr}");
            assert_eq!(hx(&mac_request_key(&txn)[..]), *mac, "{ctr}");
            let from_ipek = transaction_key_from_ipek(&ipek(&h(BDK), &ksn).unwrap()[..], &ksn).unwrap();
            assert_eq!(from_ipek, txn);
            let block = crate::crypto::pin::tdes_encipher(&pin_key(&txn)[..], &clear).unwrap();
            assert_eq!(hx(&block), *epb, "{ctr}");
        }
    }

    #[test]
    fn other_variants_counter_1() {
        let txn = transaction_key(&h(BDK), &h("FFFF9876543210E00001")).unwrap();
        assert_eq!(hx(&txn[..]), "042666B49184CFA368DE9628D0397BC9");
        assert_eq!(hx(&mac_response_key(&txn)[..]), "042666B46E84CFA368DE96282F397BC9");
        // The data variant before the one-way step, and after it (as node-dukpt's tests publish it).
        assert_eq!(hx(&variant(&txn, &DATA_REQUEST_VARIANT)[..]), "042666B4917BCFA368DE9628D0C67BC9");
        assert_eq!(hx(&data_request_key(&txn)[..]), "448D3F076D8304036A55A3D7E0055A78");
        let txn2 = transaction_key(&h(BDK), &h("FFFF9876543210E00002")).unwrap();
        assert_eq!(hx(&data_request_key(&txn2)[..]), "F1BE73B36135C5C26CF937D50ABBE5AF");
        assert_ne!(data_response_key(&txn), data_request_key(&txn));
    }

    #[test]
    fn invalid_counters_and_lengths() {
        let kind = |r: Result<Zeroizing<[u8; 16]>, HsmError>| r.unwrap_err().kind.as_str();
        assert_eq!(kind(transaction_key(&h(BDK), &h("FFFF9876543210E00000"))), "range");
        assert_eq!(kind(transaction_key(&h(BDK), &h("FFFF9876543210E007FF"))), "range");
        assert_eq!(counter(&h("FFFF9876543210E003FF")).unwrap(), 0x3FF);
        assert_eq!(counter(&h("FFFF9876543210FFF800")).unwrap(), 0x1FF800);
        assert_eq!(kind(transaction_key(&h(BDK), &h("FFFF9876543210E001"))), "format");
        assert_eq!(kind(transaction_key(&h(&BDK[..16]), &h("FFFF9876543210E00001"))), "key");
        assert_eq!(kind(ipek(&h(BDK), &h("FFFF9876543210E0000000"))), "format");
    }

    /// Runs every case of vectors/dukpt-tdes.json against these functions.
    #[test]
    fn vector_file() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/dukpt-tdes.json");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let mut n = 0;
        for c in doc["cases"].as_array().unwrap() {
            let (id, inp, out) = (&c["id"], &c["in"], &c["out"]);
            let (bdk, ksn) = (h(inp["bdk"].as_str().unwrap()), h(inp["ksn"].as_str().unwrap()));
            let got = match c["op"].as_str().unwrap() {
                "dukpt.tdes.ipek" => ipek(&bdk, &ksn).map(|k| ("ipek", hx(&k[..]))),
                "dukpt.tdes.key" => transaction_key(&bdk, &ksn).map(|k| ("key", hx(&k[..]))),
                other => panic!("unknown op {other}"),
            };
            match (got, out.get("error")) {
                (Err(e), Some(kind)) => assert_eq!(e.kind.as_str(), kind.as_str().unwrap(), "{id}"),
                (Ok((k, v)), None) => assert!(v.eq_ignore_ascii_case(out[k].as_str().unwrap()), "{id}: {v}"),
                (got, want) => panic!("{id}: got {got:?}, want {want:?}"),
            }
            n += 1;
        }
        assert!(n >= 100, "only {n} TDES DUKPT cases");
    }
}
