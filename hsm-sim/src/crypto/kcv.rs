//! Key check values: the first 3 bytes of the key's cipher applied to zeros (TDES-ECB for TDES keys,
//! AES-CMAC for AES keys, as ANSI X9.24 and TR-31 use them), shown as 6 hex digits.

use aes::{Aes128, Aes192, Aes256};
use cmac::{Cmac, KeyInit, Mac};
use des::TdesEde2;
use des::cipher::BlockCipherEncrypt;

use crate::error::HsmError;

pub fn tdes(key: &[u8]) -> Result<String, HsmError> {
    let c = TdesEde2::new_from_slice(key).map_err(|_| HsmError::key("TDES key must be 16 bytes"))?;
    let mut block = [0u8; 8].into();
    c.encrypt_block(&mut block);
    Ok(hex::encode_upper(&block[..3]))
}

pub fn aes(key: &[u8]) -> Result<String, HsmError> {
    fn cmac<M: Mac + KeyInit>(key: &[u8]) -> Result<Vec<u8>, HsmError> {
        let mut m = <M as KeyInit>::new_from_slice(key).map_err(|_| HsmError::key("bad AES key"))?;
        m.update(&[0u8; 16]);
        Ok(m.finalize().into_bytes().to_vec())
    }
    let mac = match key.len() {
        16 => cmac::<Cmac<Aes128>>(key)?,
        24 => cmac::<Cmac<Aes192>>(key)?,
        32 => cmac::<Cmac<Aes256>>(key)?,
        _ => return Err(HsmError::key("AES key must be 16, 24 or 32 bytes")),
    };
    Ok(hex::encode_upper(&mac[..3]))
}
