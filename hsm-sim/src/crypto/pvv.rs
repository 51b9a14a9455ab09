//! Visa PIN verification value (PVV): the transformed security parameter (TSP) — the 11 rightmost PAN
//! digits before the check digit, the PVK index (1 digit) and the PIN's 4 leftmost digits — enciphered
//! under the PVK pair (TDES, 16 bytes), then decimalised: the first four decimal nibbles, continued with
//! the A–F nibbles minus 10 when there are fewer than four. As described in the Visa PIN verification
//! documentation and implemented by payment HSMs; pinned against pynblock (pythales' library).

use des::TdesEde2;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::HsmError;

/// The PVV of `pin` for an `account` of 12 digits (the 12 rightmost PAN digits excluding the check
/// digit, as payShield commands carry it) and PVK index `pvki`.
pub fn generate(pvk: &[u8], account: &str, pvki: u8, pin: &str) -> Result<Zeroizing<String>, HsmError> {
    let c = TdesEde2::new_from_slice(pvk).map_err(|_| HsmError::key("PVK must be a 16-byte TDES key"))?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HsmError::format("account number must be 12 digits"));
    }
    if pvki > 9 {
        return Err(HsmError::range("PVK index must be 0 to 9"));
    }
    if pin.len() < 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HsmError::format("PIN must be at least 4 digits"));
    }
    let tsp: Zeroizing<Vec<u8>> = Zeroizing::new(
        account.bytes().skip(1).map(|b| b - b'0').chain([pvki]).chain(pin.bytes().take(4).map(|b| b - b'0')).collect(),
    );
    let mut block = Zeroizing::new([0u8; 8]);
    for (i, d) in tsp.iter().enumerate() {
        if let Some(b) = block.get_mut(i / 2) {
            *b |= if i % 2 == 0 { d << 4 } else { *d };
        }
    }
    c.encrypt_block((&mut *block).into());
    let nibbles: Zeroizing<Vec<u8>> = Zeroizing::new(block.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect());
    let decimal = nibbles.iter().copied().filter(|n| *n < 10);
    let letters = nibbles.iter().copied().filter(|n| *n >= 10).map(|n| n - 10);
    let mut pvv = Zeroizing::new(String::with_capacity(4));
    for n in decimal.chain(letters).take(4) {
        pvv.push(char::from(b'0' + n));
    }
    Ok(pvv)
}

/// Checks `pvv` against [`generate`] in constant time.
pub fn verify(pvk: &[u8], account: &str, pvki: u8, pin: &str, pvv: &str) -> Result<bool, HsmError> {
    let expected = generate(pvk, account, pvki, pin)?;
    Ok(expected.as_bytes().ct_eq(pvv.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn psec_example() {
        // psec 1.3.0 docstring: generate_visa_pvv(0123…3210, pvki "3", pin "4524", pan 1122334455667788)
        // = 4021; the account field of that PAN is 233445566778.
        let pvk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(generate(&pvk, "233445566778", 3, "4524").unwrap().as_str(), "4021");
        assert!(verify(&pvk, "233445566778", 3, "452499", "4021").unwrap());
        assert!(!verify(&pvk, "233445566778", 3, "4525", "4021").unwrap());
        assert!(generate(&pvk[..8], "233445566778", 3, "4524").is_err());
        assert!(generate(&pvk, "23344556677", 3, "4524").is_err());
    }
}
