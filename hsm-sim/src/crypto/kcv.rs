//! Key check values: the first 3 bytes of the key's cipher applied to zeros (TDES-ECB for TDES keys,
//! AES-CMAC for AES keys, as ANSI X9.24 and TR-31 use them), shown as 6 hex digits.

use des::TdesEde2;
use des::cipher::{BlockCipherEncrypt, KeyInit};

use crate::error::HsmError;

pub fn tdes(key: &[u8]) -> Result<String, HsmError> {
    let c = TdesEde2::new_from_slice(key).map_err(|_| HsmError::key("TDES key must be 16 bytes"))?;
    let mut block = [0u8; 8].into();
    c.encrypt_block(&mut block);
    Ok(hex::encode_upper(&block[..3]))
}

pub fn aes(key: &[u8]) -> Result<String, HsmError> {
    let mac = super::mac::aes_cmac(key, &[0u8; 16])?;
    Ok(hex::encode_upper(&mac[..3]))
}
