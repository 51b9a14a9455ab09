//! EMV key derivation (EMV 4.4 Book 2, Annex A1.4).

use des::TdesEde2;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use zeroize::Zeroizing;

use crate::error::HsmError;

/// Sets each byte's low bit so the byte has odd parity, as DES keys require.
pub fn adjust_odd_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        let ones = (*b & 0xFE).count_ones();
        *b = (*b & 0xFE) | u8::from(ones % 2 == 0);
    }
}

fn check_digits(s: &str, what: &str) -> Result<(), HsmError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HsmError::format(format!("{what} must be decimal digits")));
    }
    Ok(())
}

/// Option A: Y = the rightmost 16 digits of PAN ‖ PSN (left-padded with zeros), packed as BCD;
/// ICC MK = TDES(IMK, Y) ‖ TDES(IMK, Y ⊕ FF…FF), with odd parity.
pub fn icc_mk_option_a(imk: &[u8], pan: &str, psn: &str) -> Result<Zeroizing<[u8; 16]>, HsmError> {
    check_digits(pan, "PAN")?;
    check_digits(psn, "PSN")?;
    if psn.len() != 2 {
        return Err(HsmError::format("PSN must be 2 digits"));
    }
    let cipher = TdesEde2::new_from_slice(imk).map_err(|_| HsmError::key("IMK must be a 16-byte TDES key"))?;
    let digits: Vec<u8> = pan.bytes().chain(psn.bytes()).map(|b| b - b'0').collect();
    let tail = &digits[digits.len().saturating_sub(16)..];
    let mut y = [0u8; 8];
    // Right-align the digits in 16 nibbles.
    for (i, d) in tail.iter().rev().enumerate() {
        let nibble = 15 - i;
        y[nibble / 2] |= if nibble % 2 == 0 { d << 4 } else { *d };
    }
    let mut left = y.into();
    cipher.encrypt_block(&mut left);
    let mut right = y.map(|b| b ^ 0xFF).into();
    cipher.encrypt_block(&mut right);
    let mut out = Zeroizing::new([0u8; 16]);
    out[..8].copy_from_slice(&left);
    out[8..].copy_from_slice(&right);
    left.iter_mut().chain(right.iter_mut()).for_each(|b| *b = 0);
    adjust_odd_parity(&mut out[..]);
    Ok(out)
}
