//! The key-block LMK form: a key field `S` followed by a key block, for hosts that keep their keys as key
//! blocks rather than variant cryptograms. This module owns the key-block LMK, the usage each key type
//! accepts, and wrapping and unwrapping such fields.
//!
//! payShield's own `S` blocks are Thales key blocks under an AES key-block LMK; here the block after the
//! `S` is an ANSI X9.143 / TR-31 version `D` key block (AES-256 key-block LMK, CMAC-derived keys,
//! [`crate::crypto::tr31`]) — the same ideas (header of usage, algorithm, mode of use, version and
//! exportability, authenticated key data), not Thales' byte layout. The key-block LMK is this
//! simulator's own public test value: it protects nothing.

use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use super::lmk::KeyType;
use super::wire::{Code, Reader};
use crate::crypto::tr31::{self, Algorithm, Exportability, Header, KeyUsage, KeyVersion, ModeOfUse, Version};

/// The simulator's AES-256 key-block LMK (a public test value, SHA-256 of "hsm-sim payShield test key
/// block LMK"; see the unit test).
const KEYBLOCK_LMK: [u8; 32] = [
    0xc8, 0x0a, 0x88, 0x7c, 0x05, 0xd4, 0x5f, 0xb7, 0x6e, 0x0e, 0x33, 0x50, 0x97, 0x94, 0x99, 0x17, 0xf3, 0x51, 0x1b,
    0x8f, 0xa7, 0xe4, 0x9d, 0xef, 0x4d, 0x63, 0x57, 0x9e, 0x23, 0xaf, 0x16, 0xee,
];

/// The key usages a key block may carry where a command expects `kt`, the first being the one a key
/// generated or imported as `kt` gets.
fn usages(kt: KeyType) -> &'static [KeyUsage] {
    match kt.code() {
        b"000" => &[KeyUsage::KEK],
        b"001" => &[KeyUsage::PIN_ENCRYPTION],
        b"002" => &[KeyUsage::PIN_ENCRYPTION, KeyUsage::PIN_VERIFICATION_PVV, KeyUsage::KEK],
        b"402" => &[KeyUsage::CVK],
        b"003" | b"008" => &[KeyUsage::MAC_ISO9797_1, KeyUsage::MAC_ISO9797_3, KeyUsage::MAC_ISO16609],
        b"009" => &[KeyUsage::BDK],
        b"109" => &[KeyUsage::EMV_MK_AC],
        b"00A" | b"00B" => &[KeyUsage::DATA_ENCRYPTION],
        _ => &[],
    }
}

fn mode_for(usage: KeyUsage) -> ModeOfUse {
    match usage {
        KeyUsage::CVK
        | KeyUsage::PIN_VERIFICATION_PVV
        | KeyUsage::MAC_ISO9797_1
        | KeyUsage::MAC_ISO9797_3
        | KeyUsage::MAC_ISO16609 => ModeOfUse::GEN_VER,
        KeyUsage::BDK | KeyUsage::EMV_MK_AC => ModeOfUse::DERIVE,
        _ => ModeOfUse::ENC_DEC,
    }
}

/// Reads an `S` key field (the `S` included) and returns the clear key after checking the block's MAC,
/// that its usage fits `kt` (`04` otherwise; any usage when `kt` is `None`), and that it is a TDES key.
pub fn read(r: &mut Reader, kt: Option<KeyType>) -> Result<Zeroizing<Vec<u8>>, Code> {
    let (key, algorithm) = read_any(r, kt.map(usages).unwrap_or(&[]), kt.is_none())?;
    if algorithm != Algorithm::TDES {
        return Err(Code::KEY_LENGTH);
    }
    Ok(key)
}

/// Reads an `S` key field of any algorithm whose usage is one of `allowed` (any when `any`), returning
/// the clear key and its algorithm.
pub fn read_any(r: &mut Reader, allowed: &[KeyUsage], any: bool) -> Result<(Zeroizing<Vec<u8>>, Algorithm), Code> {
    r.expect(b'S')?;
    let len = r.rest().get(1..5).ok_or(Code::INVALID_INPUT)?;
    let len: usize = std::str::from_utf8(len).ok().and_then(|s| s.parse().ok()).ok_or(Code::INVALID_INPUT)?;
    let block = std::str::from_utf8(r.take(len)?).map_err(|_| Code::INVALID_INPUT)?;
    let (header, key) = tr31::unwrap(&KEYBLOCK_LMK, block).map_err(|_| Code::INVALID_INPUT)?;
    if !any && !allowed.contains(&header.usage) {
        return Err(Code::INVALID_KEY_TYPE);
    }
    Ok((key, header.algorithm))
}

/// The usages an `S` key field may carry where `kt` is expected (for callers outside this module).
pub fn usages_of(kt: KeyType) -> &'static [KeyUsage] {
    usages(kt)
}

/// Key block attributes a host may name after `#` in `A0`/`A6`: key usage (2), mode of use (1), key
/// version number (2), exportability (1). `None` when the request names none.
pub struct Attributes {
    usage: KeyUsage,
    mode: ModeOfUse,
    version: KeyVersion,
    exportability: Exportability,
    /// hsm-sim's own extension: `&` and an algorithm code after the attributes (`T2` double-length
    /// TDES, the default; `A1` AES-128, `A2` AES-192, `A3` AES-256; `H2` a 32-byte HMAC-SHA-256 key).
    algorithm: KeyAlgorithm,
}

/// The algorithm and length of a key a command generates as a key block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Double-length TDES (16 bytes, odd parity).
    Tdes2,
    /// AES-128 (16 bytes).
    Aes128,
    /// AES-192 (24 bytes).
    Aes192,
    /// AES-256 (32 bytes).
    Aes256,
    /// An HMAC-SHA-256 key (32 bytes).
    HmacSha256,
}

impl KeyAlgorithm {
    pub fn key_len(self) -> usize {
        match self {
            KeyAlgorithm::Tdes2 | KeyAlgorithm::Aes128 => 16,
            KeyAlgorithm::Aes192 => 24,
            KeyAlgorithm::Aes256 | KeyAlgorithm::HmacSha256 => 32,
        }
    }

    fn header(self) -> Algorithm {
        match self {
            KeyAlgorithm::Tdes2 => Algorithm::TDES,
            KeyAlgorithm::Aes128 | KeyAlgorithm::Aes192 | KeyAlgorithm::Aes256 => Algorithm::AES,
            KeyAlgorithm::HmacSha256 => Algorithm::HMAC,
        }
    }
}

impl Attributes {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

/// Reads `#` and the attributes, if present.
pub fn read_attributes(r: &mut Reader) -> Result<Option<Attributes>, Code> {
    if !r.eat(b'#') {
        return Ok(None);
    }
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_owned).map_err(|_| Code::INVALID_INPUT);
    let usage = KeyUsage::new(&text(r.take(2)?)?).map_err(|_| Code::INVALID_INPUT)?;
    let mode = ModeOfUse::new(&text(r.take(1)?)?).map_err(|_| Code::INVALID_INPUT)?;
    let version = KeyVersion::new(&text(r.take(2)?)?).map_err(|_| Code::INVALID_INPUT)?;
    let exportability = Exportability::new(&text(r.take(1)?)?).map_err(|_| Code::INVALID_INPUT)?;
    let algorithm = if r.eat(b'&') {
        match r.take(2)? {
            b"T2" => KeyAlgorithm::Tdes2,
            b"A1" => KeyAlgorithm::Aes128,
            b"A2" => KeyAlgorithm::Aes192,
            b"A3" => KeyAlgorithm::Aes256,
            b"H2" => KeyAlgorithm::HmacSha256,
            _ => return Err(Code::INVALID_INPUT),
        }
    } else {
        KeyAlgorithm::Tdes2
    };
    Ok(Some(Attributes { usage, mode, version, exportability, algorithm }))
}

/// `S` and the key block of a `key` of type `kt` (or of the named attributes, whose usage must fit
/// `kt`), exportable under a trusted key unless the attributes say otherwise. TDES unless the attributes
/// name another algorithm; the key's length must be the algorithm's.
pub fn wrap(kt: KeyType, attrs: Option<&Attributes>, key: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    wrap_allowed(usages(kt), attrs, key, rng)
}

/// [`wrap`] for a key whose type is named by its attributes alone (key type `FFF`): any usage.
pub fn wrap_any(attrs: &Attributes, key: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    wrap_allowed(&[attrs.usage], Some(attrs), key, rng)
}

fn wrap_allowed(
    allowed: &[KeyUsage],
    attrs: Option<&Attributes>,
    key: &[u8],
    rng: &dyn SecureRandom,
) -> Result<Vec<u8>, Code> {
    let algorithm = attrs.map(|a| a.algorithm).unwrap_or(KeyAlgorithm::Tdes2);
    if key.len() != algorithm.key_len() && !(algorithm == KeyAlgorithm::Tdes2 && key.len() == 24) {
        return Err(Code::KEY_LENGTH);
    }
    let header = match attrs {
        Some(a) if allowed.contains(&a.usage) => {
            Header::new(Version::D, a.usage, algorithm.header(), a.mode, a.version, a.exportability)
        }
        Some(_) => return Err(Code::INVALID_KEY_TYPE),
        None => {
            let usage = *allowed.first().ok_or(Code::INVALID_KEY_TYPE)?;
            Header::new(Version::D, usage, Algorithm::TDES, mode_for(usage), KeyVersion::UNUSED, Exportability::TRUSTED)
        }
    };
    let block = tr31::wrap(&KEYBLOCK_LMK, &header, key, rng).map_err(|_| Code::INTERNAL)?;
    let mut out = Vec::with_capacity(1 + block.len());
    out.push(b'S');
    out.extend_from_slice(block.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn the_lmk_is_the_documented_test_value() {
        let d = ring::digest::digest(&ring::digest::SHA256, b"hsm-sim payShield test key block LMK");
        assert_eq!(d.as_ref(), KEYBLOCK_LMK);
    }

    #[test]
    fn round_trip_and_usage_check() {
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let field = wrap(KeyType::ZPK, None, &key, &SystemRandom::new()).unwrap();
        assert_eq!(&field[..2], b"SD");
        let back = read(&mut Reader::new(&field), Some(KeyType::ZPK)).unwrap();
        assert_eq!(back.as_slice(), key.as_slice());
        assert_eq!(read(&mut Reader::new(&field), Some(KeyType::CVK)), Err(Code::INVALID_KEY_TYPE));
        let mut tampered = field.clone();
        let n = tampered.len() - 1;
        tampered[n] = if tampered[n] == b'0' { b'1' } else { b'0' };
        assert_eq!(read(&mut Reader::new(&tampered), None), Err(Code::INVALID_INPUT));
    }
}
