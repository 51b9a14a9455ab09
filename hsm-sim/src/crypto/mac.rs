//! MACs: HMAC-SHA256 (RFC 2104), HKDF-SHA256 (RFC 5869), the ISO/IEC 9797-1 MAC algorithm 3 "retail
//! MAC" of ANSI X9.19 (EMV cryptograms, payShield `M6`/`M8`, ISO 8583 DE64/DE128 under a TDES TAK)
//! and AES-CMAC (NIST SP 800-38B; ISO 8583 MACs under an AES TAK).

use aes::{Aes128, Aes192, Aes256};
use cmac::Cmac;
use des::Des;
use des::cipher::{BlockCipherDecrypt, BlockCipherEncrypt};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::HsmError;

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HKDF extract-and-expand; an empty salt means the RFC's default (zeros).
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], len: usize) -> Result<Vec<u8>, HsmError> {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    let mut okm = vec![0u8; len];
    hk.expand(info, &mut okm).map_err(|_| HsmError::range("HKDF output length must be 1..=8160 bytes"))?;
    Ok(okm)
}

/// ISO/IEC 9797-1 MAC algorithm 3 with an 8-byte output under a double-length TDES key K ‖ K':
/// single-DES CBC under K over the padded data, then the last block DES-decrypted under K' and
/// DES-encrypted under K again. Padding method 1 appends zeros only when needed (empty data becomes
/// one zero block); method 2 always appends `80` then zeros.
pub fn retail_mac(key: &[u8], data: &[u8], padding: u8) -> Result<[u8; 8], HsmError> {
    if padding != 1 && padding != 2 {
        return Err(HsmError::range("ISO/IEC 9797-1 padding method must be 1 or 2"));
    }
    let bad = || HsmError::key("a retail MAC key must be a 16-byte TDES key");
    if key.len() != 16 {
        return Err(bad());
    }
    let (k1, k2) = key.split_at(8);
    let k1 = Des::new_from_slice(k1).map_err(|_| bad())?;
    let k2 = Des::new_from_slice(k2).map_err(|_| bad())?;
    let mut h = Zeroizing::new([0u8; 8]);
    let chained = |block: &[u8; 8], h: &mut [u8; 8]| {
        for (a, b) in h.iter_mut().zip(block) {
            *a ^= b;
        }
        k1.encrypt_block(h.into());
    };
    let (blocks, rest) = data.as_chunks::<8>();
    for block in blocks {
        chained(block, &mut h);
    }
    if padding == 2 || !rest.is_empty() || data.is_empty() {
        let mut last = Zeroizing::new([0u8; 8]);
        last[..rest.len()].copy_from_slice(rest);
        if padding == 2 {
            last[rest.len()] = 0x80;
        }
        chained(&last, &mut h);
    }
    k2.decrypt_block((&mut *h).into());
    k1.encrypt_block((&mut *h).into());
    Ok(*h)
}

/// AES-CMAC (NIST SP 800-38B) under a 16-, 24- or 32-byte key: the full 16-byte tag.
pub fn aes_cmac(key: &[u8], data: &[u8]) -> Result<[u8; 16], HsmError> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Result<[u8; 16], HsmError> {
        let mut m = <M as KeyInit>::new_from_slice(key).map_err(|_| HsmError::key("bad AES key"))?;
        m.update(data);
        let tag = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.get(..16).ok_or_else(|| HsmError::internal("short CMAC"))?);
        Ok(out)
    }
    match key.len() {
        16 => run::<Cmac<Aes128>>(key, data),
        24 => run::<Cmac<Aes192>>(key, data),
        32 => run::<Cmac<Aes256>>(key, data),
        _ => Err(HsmError::key("AES key must be 16, 24 or 32 bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn aes_cmac_rfc4493_examples() {
        // RFC 4493 section 4, AES-128, examples 1, 2 and 4.
        let key = h("2b7e151628aed2a6abf7158809cf4f3c");
        let m = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                   30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
        assert_eq!(aes_cmac(&key, &[]).unwrap().to_vec(), h("bb1d6929e95937287fa37d129b756746"));
        assert_eq!(aes_cmac(&key, &m[..16]).unwrap().to_vec(), h("070a16b46b4d4144f79bdd9dd04a287c"));
        assert_eq!(aes_cmac(&key, &m).unwrap().to_vec(), h("51f0bebf7e3b9d92fc49741779363cfe"));
    }

    #[test]
    fn retail_mac_refuses_what_it_cannot_compute() {
        assert!(retail_mac(&[0u8; 8], b"x", 1).is_err());
        assert!(retail_mac(&[1u8; 16], b"x", 3).is_err());
        // Padding method 1 adds nothing to whole blocks; method 2 always adds a block here.
        let k = h("0123456789ABCDEFFEDCBA9876543210");
        assert_ne!(retail_mac(&k, &[0u8; 8], 1).unwrap(), retail_mac(&k, &[0u8; 8], 2).unwrap());
    }
}
