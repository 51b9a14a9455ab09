//! AES DUKPT, ANSI X9.24-3-2017 section 6.
//!
//! Every key is derived one way (6.3.1–6.3.3): AES-ECB under the parent key of the 16-byte derivation
//! data `01 ‖ block counter ‖ key usage (2) ‖ algorithm (2) ‖ length in bits (2) ‖ 8 bytes`, one block
//! per 128 bits of output (block counter 1, 2, …), truncated to the key's length.
//! - Initial key: under the BDK, usage `8001`, the BDK's own algorithm and length, the 8-byte initial
//!   key ID (IKID).
//! - Intermediate derivation keys (6.1): from the initial key, for each set counter bit, most significant
//!   first, usage `8000`, the BDK's algorithm and length, IKID[4..8] ‖ the counter bits taken so far.
//! - Working key: under the derivation key of the whole counter, the usage (PIN `1000`, MAC `2000`–`2002`,
//!   data `3000`–`3002`), AES-128 (`0002`, 128 bits), and the rightmost 8 bytes of the KSN.
//!
//! A KSN is 12 bytes: IKID (8) ‖ transaction counter (4, big-endian). A device never uses a counter with
//! more than 16 one-bits (6.1), nor counter 0 (the initial KSN, before any transaction); both are `range`
//! errors. BDKs may be AES-128, -192 or -256; working keys here are always AES-128.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use zeroize::Zeroizing;

use crate::error::HsmError;

pub const IKID_LEN: usize = 8;
pub const KSN_LEN: usize = 12;
pub const WORKING_KEY_LEN: usize = 16;
const MAX_COUNTER_ONES: u32 = 16;
const USAGE_KEY_DERIVATION: u16 = 0x8000;
const USAGE_INITIAL_KEY: u16 = 0x8001;

/// Working-key usages of X9.24-3 6.3.2, table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Pin,
    MacGen,
    MacVerify,
    MacBoth,
    DataEnc,
    DataDec,
    DataBoth,
}

impl Usage {
    /// From the names the vectors use (`pin`, `mac_gen`, `data_enc`, …); anything else is a `format` error.
    pub fn parse(s: &str) -> Result<Self, HsmError> {
        Ok(match s {
            "pin" => Usage::Pin,
            "mac_gen" => Usage::MacGen,
            "mac_verify" => Usage::MacVerify,
            "mac_both" => Usage::MacBoth,
            "data_enc" => Usage::DataEnc,
            "data_dec" => Usage::DataDec,
            "data_both" => Usage::DataBoth,
            _ => return Err(HsmError::format("unknown AES DUKPT key usage")),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Pin => "pin",
            Usage::MacGen => "mac_gen",
            Usage::MacVerify => "mac_verify",
            Usage::MacBoth => "mac_both",
            Usage::DataEnc => "data_enc",
            Usage::DataDec => "data_dec",
            Usage::DataBoth => "data_both",
        }
    }

    /// The key usage indicator of the derivation data.
    fn indicator(self) -> u16 {
        match self {
            Usage::Pin => 0x1000,
            Usage::MacGen => 0x2000,
            Usage::MacVerify => 0x2001,
            Usage::MacBoth => 0x2002,
            Usage::DataEnc => 0x3000,
            Usage::DataDec => 0x3001,
            Usage::DataBoth => 0x3002,
        }
    }
}

enum Cipher {
    A128(Box<Aes128>),
    A192(Box<Aes192>),
    A256(Box<Aes256>),
}

impl Cipher {
    fn new(key: &[u8]) -> Result<Self, HsmError> {
        let bad = |_| HsmError::key("AES DUKPT key must be 16, 24 or 32 bytes");
        match key.len() {
            16 => Ok(Cipher::A128(Box::new(Aes128::new_from_slice(key).map_err(bad)?))),
            24 => Ok(Cipher::A192(Box::new(Aes192::new_from_slice(key).map_err(bad)?))),
            32 => Ok(Cipher::A256(Box::new(Aes256::new_from_slice(key).map_err(bad)?))),
            _ => Err(HsmError::key("AES DUKPT key must be 16, 24 or 32 bytes")),
        }
    }

    fn encrypt(&self, block: &mut [u8; 16]) {
        match self {
            Cipher::A128(c) => c.encrypt_block(block.into()),
            Cipher::A192(c) => c.encrypt_block(block.into()),
            Cipher::A256(c) => c.encrypt_block(block.into()),
        }
    }
}

/// Algorithm indicator and bit length of an AES key of `len` bytes (6.3.2, table 2).
fn algorithm(len: usize) -> Result<(u16, u16), HsmError> {
    match len {
        16 => Ok((0x0002, 128)),
        24 => Ok((0x0003, 192)),
        32 => Ok((0x0004, 256)),
        _ => Err(HsmError::key("AES DUKPT BDK must be an AES key of 16, 24 or 32 bytes")),
    }
}

/// 6.3.1: a key of `out_len` bytes for `usage` from `parent`, with `data` as the last 8 bytes.
fn derive(parent: &[u8], usage: u16, out_len: usize, data: &[u8; 8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    let cipher = Cipher::new(parent)?;
    let (alg, bits) = algorithm(out_len)?;
    let mut out = Zeroizing::new(vec![0u8; out_len.div_ceil(16) * 16]);
    for (i, block) in out.as_chunks_mut::<16>().0.iter_mut().enumerate() {
        block[0] = 0x01;
        block[1] = (i + 1) as u8;
        block[2..4].copy_from_slice(&usage.to_be_bytes());
        block[4..6].copy_from_slice(&alg.to_be_bytes());
        block[6..8].copy_from_slice(&bits.to_be_bytes());
        block[8..].copy_from_slice(data);
        cipher.encrypt(block);
    }
    out.truncate(out_len);
    Ok(out)
}

fn ksn_bytes(ksn: &[u8]) -> Result<[u8; KSN_LEN], HsmError> {
    <[u8; KSN_LEN]>::try_from(ksn).map_err(|_| HsmError::format("AES DUKPT KSN must be 12 bytes"))
}

/// The initial key (same length as the BDK) for the 8-byte initial key ID.
pub fn initial_key(bdk: &[u8], ikid: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    let ikid =
        <[u8; IKID_LEN]>::try_from(ikid).map_err(|_| HsmError::format("AES DUKPT initial key ID must be 8 bytes"))?;
    algorithm(bdk.len())?;
    derive(bdk, USAGE_INITIAL_KEY, bdk.len(), &ikid)
}

/// The transaction counter of a KSN; `range` error for 0 or more than 16 one-bits.
pub fn counter(ksn: &[u8]) -> Result<u32, HsmError> {
    let ksn = ksn_bytes(ksn)?;
    let c = u32::from_be_bytes([ksn[8], ksn[9], ksn[10], ksn[11]]);
    if c == 0 {
        return Err(HsmError::range("AES DUKPT counter 0 is the initial KSN, never a transaction"));
    }
    if c.count_ones() > MAX_COUNTER_ONES {
        return Err(HsmError::range("AES DUKPT counter has more than 16 one-bits"));
    }
    Ok(c)
}

/// The intermediate derivation key of the KSN's counter (same length as the BDK).
pub fn derivation_key(bdk: &[u8], ksn: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    let ksn_arr = ksn_bytes(ksn)?;
    algorithm(bdk.len())?;
    counter(ksn)?;
    let ik = initial_key(bdk, &ksn_arr[..IKID_LEN])?;
    derivation_key_from_ik(&ik, ksn)
}

/// The intermediate derivation key of the KSN's counter, from the device's initial key.
pub fn derivation_key_from_ik(ik: &[u8], ksn: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    let ksn_arr = ksn_bytes(ksn)?;
    algorithm(ik.len()).map_err(|_| HsmError::key("AES DUKPT initial key must be 16, 24 or 32 bytes"))?;
    let counter = counter(ksn)?;
    let mut data = [0u8; 8];
    data[..4].copy_from_slice(&ksn_arr[4..8]);
    let mut key = Zeroizing::new(ik.to_vec());
    let mut taken = 0u32;
    for bit in (0..32).rev() {
        let mask = 1u32 << bit;
        if counter & mask != 0 {
            taken |= mask;
            data[4..].copy_from_slice(&taken.to_be_bytes());
            key = derive(&key, USAGE_KEY_DERIVATION, ik.len(), &data)?;
        }
    }
    Ok(key)
}

/// The AES-128 working key for `usage` and the KSN, from the BDK.
pub fn working_key(bdk: &[u8], ksn: &[u8], usage: Usage) -> Result<Zeroizing<[u8; WORKING_KEY_LEN]>, HsmError> {
    let ksn_arr = ksn_bytes(ksn)?;
    algorithm(bdk.len())?;
    counter(ksn)?;
    let ik = initial_key(bdk, &ksn_arr[..IKID_LEN])?;
    working_key_from_ik(&ik, ksn, usage)
}

/// The AES-128 working key for `usage` and the KSN, from the device's initial key.
pub fn working_key_from_ik(ik: &[u8], ksn: &[u8], usage: Usage) -> Result<Zeroizing<[u8; WORKING_KEY_LEN]>, HsmError> {
    let ksn_arr = ksn_bytes(ksn)?;
    let dk = derivation_key_from_ik(ik, ksn)?;
    let mut data = [0u8; 8];
    data.copy_from_slice(&ksn_arr[4..]);
    let wk = derive(&dk, usage.indicator(), WORKING_KEY_LEN, &data)?;
    let mut out = Zeroizing::new([0u8; WORKING_KEY_LEN]);
    out.copy_from_slice(&wk);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const BDK128: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
    const BDK256: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1";
    const IKID: &str = "1234567890123456";

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn ksn(counter: u32) -> Vec<u8> {
        h(&format!("{IKID}{counter:08X}"))
    }

    #[test]
    fn initial_keys() {
        // X9.24-3-2017 Annex B (AES-128) and its supplementary test vectors (AES-256).
        assert_eq!(
            hex::encode_upper(&initial_key(&h(BDK128), &h(IKID)).unwrap()[..]),
            "1273671EA26AC29AFA4D1084127652A1"
        );
        assert_eq!(
            hex::encode_upper(&initial_key(&h(BDK256), &h(IKID)).unwrap()[..]),
            "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F"
        );
    }

    #[test]
    fn intermediate_derivation_keys() {
        // Supplementary test vectors: intermediate derivation keys.
        for (bdk, c, want) in [
            (BDK128, 0x0000_0001, "4F21B565BAD9835E112B6465635EAE44"),
            (BDK128, 0x0000_0008, "718EE6CF0B27E53D5F7AF99C4D8146A2"),
            (BDK128, 0x0001_FFFE, "E21E8C8D347F8561A2BE752DAA85A111"),
            (BDK128, 0x0002_0000, "F7AE9025468A25D37B7249CFFED224C8"),
            (BDK128, 0xFFFF_0000, "F6BA59389BD14A9855BE9727E7C52E3C"),
            (BDK256, 0x0000_0001, "54AC2B32B145EA4A554CB8BC44B17467063A799856B1CCC2A138D36E8DBF78B3"),
            (BDK256, 0x0002_0001, "44110A1102748D4A3AC326F53D8CAC650212590CA7126D54546DDE0F20E89CEE"),
            (BDK256, 0xFFFE_8000, "630535C9C53E1EC6524016930B56F6728909C45403536B419AEBCB25B7351C07"),
        ] {
            assert_eq!(hex::encode_upper(&derivation_key(&h(bdk), &ksn(c)).unwrap()[..]), want, "{c:08X}");
        }
    }

    #[test]
    fn working_keys() {
        // Supplementary test vectors: AES-128 working keys.
        for (bdk, c, usage, want) in [
            (BDK128, 1, "pin", "AF8CB133A78F8DC2D1359F18527593FB"),
            (BDK128, 1, "mac_gen", "A2DC23DE6FDE0824A2BC321E08E4B8B7"),
            (BDK128, 1, "mac_verify", "DBB463945B286C07CD3AD82EE96FD9C9"),
            (BDK128, 1, "mac_both", "85675439D18D7F1158BD8E3EAA3D502B"),
            (BDK128, 1, "data_enc", "A35C412EFD41FDB98B69797C02DCD08F"),
            (BDK128, 1, "data_dec", "16292C6EA8F64C5420A0584BFBC577BE"),
            (BDK128, 1, "data_both", "A308E080DD15A1B741F1721BF67DE11C"),
            (BDK128, 8, "pin", "4D9DF3FBEE3448FC3E676D04320A90F5"),
            (BDK128, 0x20000, "data_enc", "13361208975755318FE7AE28C9616014"),
            (BDK256, 1, "pin", "09C9C432966811D6B2C3336BAC1B1202"),
            (BDK256, 1, "mac_gen", "F04A1FABD4176E15490CEC82E217A96D"),
        ] {
            let u = Usage::parse(usage).unwrap();
            assert_eq!(u.as_str(), usage);
            assert_eq!(hex::encode_upper(&working_key(&h(bdk), &ksn(c), u).unwrap()[..]), want, "{c:08X} {usage}");
        }
        let ik = initial_key(&h(BDK128), &h(IKID)).unwrap();
        assert_eq!(
            hex::encode_upper(&working_key_from_ik(&ik, &ksn(5), Usage::Pin).unwrap()[..]),
            "35A43BC9EFEB09C756204B57E3FB7D4D"
        );
    }

    #[test]
    fn invalid_inputs() {
        let kind = |r: Result<Zeroizing<[u8; 16]>, HsmError>| r.unwrap_err().kind.as_str();
        // 0x1FFFF has 17 one-bits: the supplement lists keys for it, but no device may use it.
        assert_eq!(kind(working_key(&h(BDK128), &ksn(0x1FFFF), Usage::Pin)), "range");
        assert_eq!(kind(working_key(&h(BDK128), &ksn(0), Usage::Pin)), "range");
        assert_eq!(kind(working_key(&h(&BDK128[..30]), &ksn(1), Usage::Pin)), "key");
        assert_eq!(kind(working_key(&h(BDK128), &ksn(1)[..10], Usage::Pin)), "format");
        assert_eq!(initial_key(&h(BDK128), &h("12345678901234")).unwrap_err().kind.as_str(), "format");
        assert_eq!(Usage::parse("kek").unwrap_err().kind.as_str(), "format");
    }

    /// Runs every case of vectors/dukpt-aes.json against these functions.
    #[test]
    fn vector_file() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/dukpt-aes.json");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let mut n = 0;
        for c in doc["cases"].as_array().unwrap() {
            let (id, inp, out) = (&c["id"], &c["in"], &c["out"]);
            let s = |k: &str| inp[k].as_str().unwrap().to_string();
            let got = match c["op"].as_str().unwrap() {
                "dukpt.aes.ik" => initial_key(&h(&s("bdk")), &h(&s("ikid"))).map(|k| ("ik", hex::encode_upper(&k[..]))),
                "dukpt.aes.key" => Usage::parse(&s("usage"))
                    .and_then(|u| working_key(&h(&s("bdk")), &h(&s("ksn")), u))
                    .map(|k| ("key", hex::encode_upper(&k[..]))),
                other => panic!("unknown op {other}"),
            };
            match (got, out.get("error")) {
                (Err(e), Some(kind)) => assert_eq!(e.kind.as_str(), kind.as_str().unwrap(), "{id}"),
                (Ok((k, v)), None) => assert!(v.eq_ignore_ascii_case(out[k].as_str().unwrap()), "{id}: {v}"),
                (got, want) => panic!("{id}: got {got:?}, want {want:?}"),
            }
            n += 1;
        }
        assert!(n >= 60, "only {n} AES DUKPT cases");
    }
}
