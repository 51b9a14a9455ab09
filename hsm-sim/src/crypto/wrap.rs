//! AES key wrap (RFC 3394 / NIST SP 800-38F KW), over the `aes-kw` crate.

use aes_kw::{KeyInit, KwAes128, KwAes192, KwAes256};
use zeroize::Zeroizing;

use crate::error::HsmError;

/// Runs `$body` with `$kw` bound to the AES-KW instance for the KEK's length.
macro_rules! with_kw {
    ($kek:expr, |$kw:ident| $body:expr) => {
        match $kek.len() {
            16 => {
                let $kw = KwAes128::new_from_slice($kek).map_err(|_| HsmError::key("bad KEK"))?;
                $body
            }
            24 => {
                let $kw = KwAes192::new_from_slice($kek).map_err(|_| HsmError::key("bad KEK"))?;
                $body
            }
            32 => {
                let $kw = KwAes256::new_from_slice($kek).map_err(|_| HsmError::key("bad KEK"))?;
                $body
            }
            _ => return Err(HsmError::key("KEK must be 16, 24 or 32 bytes")),
        }
    };
}

pub fn wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, HsmError> {
    if key.len() < 16 || !key.len().is_multiple_of(8) {
        return Err(HsmError::format("key to wrap must be a multiple of 8 bytes, at least 16"));
    }
    let mut out = vec![0u8; key.len() + 8];
    with_kw!(kek, |kw| kw.wrap_key(key, &mut out).map_err(|_| HsmError::format("key wrap failed"))?);
    Ok(out)
}

pub fn unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(HsmError::format("wrapped key must be a multiple of 8 bytes, at least 24"));
    }
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() - 8]);
    with_kw!(kek, |kw| kw
        .unwrap_key(wrapped, &mut out)
        .map_err(|_| HsmError::auth("key unwrap integrity check failed"))?);
    Ok(out)
}
