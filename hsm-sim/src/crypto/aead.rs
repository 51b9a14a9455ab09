//! AES-GCM (NIST SP 800-38D) with 96-bit IVs and 128-bit tags, over the `aes-gcm` crate.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce, Tag};

use crate::error::HsmError;

pub const IV_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// A ready AES-GCM key (its key schedule computed once). Zeroized on drop by the crate.
pub enum GcmKey {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl GcmKey {
    pub fn new(key: &[u8]) -> Result<Self, HsmError> {
        match key.len() {
            16 => Aes128Gcm::new_from_slice(key).map(|k| GcmKey::Aes128(Box::new(k))),
            32 => Aes256Gcm::new_from_slice(key).map(|k| GcmKey::Aes256(Box::new(k))),
            _ => return Err(HsmError::key("AES-GCM key must be 16 or 32 bytes")),
        }
        .map_err(|_| HsmError::key("bad AES-GCM key"))
    }

    /// Encrypts in place; returns the tag.
    pub fn seal(&self, iv: &[u8], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], HsmError> {
        let nonce = Nonce::try_from(iv).map_err(|_| HsmError::format("AES-GCM IV must be 12 bytes"))?;
        let tag = match self {
            GcmKey::Aes128(k) => k.encrypt_inout_detached(&nonce, aad, buf.into()),
            GcmKey::Aes256(k) => k.encrypt_inout_detached(&nonce, aad, buf.into()),
        }
        .map_err(|_| HsmError::range("AES-GCM input too long"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts in place after checking the tag; on a bad tag the buffer is zeroed.
    pub fn open(&self, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), HsmError> {
        let nonce = Nonce::try_from(iv).map_err(|_| HsmError::format("AES-GCM IV must be 12 bytes"))?;
        let tag = Tag::try_from(tag).map_err(|_| HsmError::format("AES-GCM tag must be 16 bytes"))?;
        let r = match self {
            GcmKey::Aes128(k) => k.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            GcmKey::Aes256(k) => k.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        };
        r.map_err(|_| {
            buf.iter_mut().for_each(|b| *b = 0);
            HsmError::auth("AES-GCM tag mismatch")
        })
    }
}
