//! Card verification values by the Visa CVV method (the same algorithm as MasterCard CVC1/CVC2; described
//! in the Visa Payment Technology Standards Manual and payment-HSM manuals). Pure functions, no key storage.
//!
//! CVK = key A ‖ key B (16 bytes). The digits PAN ‖ expiry (YYMM) ‖ service code are right-padded with `0`
//! to 32 digits and packed into blocks B1 ‖ B2; then `X = TDES(A‖B)[DES(A)[B1] ⊕ B2]`. The CVV is the
//! first three decimal nibbles of X, or, if X has fewer than three, continued with its A–F nibbles
//! minus 10 (Visa's decimalisation). CVV2 uses service code `000`, iCVV (chip track 2 equivalent) `999`.
//!
//! Conventions match psec 1.3.0 and are pinned by `vectors/cvv.json`. PANs are 12 to 19 digits. A CVV is
//! sensitive authentication data (PCI DSS 3.3): it is returned zeroize-on-drop and compared in constant time.

use des::cipher::consts::U8;
use des::cipher::{BlockCipherEncrypt, BlockSizeUser, KeyInit};
use des::{Des, TdesEde2};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::emv::{PAN_MAX_DIGITS, PAN_MIN_DIGITS};
use crate::error::HsmError;

/// Service code that turns the CVV method into CVV2 (the value printed on the card).
pub const SERVICE_CODE_CVV2: &str = "000";
/// Service code that turns the CVV method into iCVV (the value in the chip's track 2 equivalent data).
pub const SERVICE_CODE_ICVV: &str = "999";

fn digits_of_len(s: &str, len: std::ops::RangeInclusive<usize>, what: &str) -> Result<(), HsmError> {
    if !len.contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        let (lo, hi) = len.into_inner();
        let count = if lo == hi { format!("{lo}") } else { format!("{lo} to {hi}") };
        return Err(HsmError::format(format!("{what} must be {count} decimal digits")));
    }
    Ok(())
}

fn encrypt<C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U8>>(cipher: &C, block: &mut [u8; 8]) {
    cipher.encrypt_block(block.into());
}

/// The 3-digit CVV of `pan`, `expiry` (YYMM, 4 digits, not checked as a date: some issuers use MMYY)
/// and `service_code` (3 digits). Fails `key` unless `cvk` is 16 bytes, `format` for malformed digits.
pub fn generate(cvk: &[u8], pan: &str, expiry: &str, service_code: &str) -> Result<Zeroizing<String>, HsmError> {
    if cvk.len() != 16 {
        return Err(HsmError::key("CVK must be a 16-byte TDES key"));
    }
    let (key_a, _) = cvk.split_at(8);
    let tdes = TdesEde2::new_from_slice(cvk).map_err(|_| HsmError::key("CVK must be a 16-byte TDES key"))?;
    let des_a = Des::new_from_slice(key_a).map_err(|_| HsmError::key("CVK must be a 16-byte TDES key"))?;
    digits_of_len(pan, PAN_MIN_DIGITS..=PAN_MAX_DIGITS, "PAN")?;
    digits_of_len(expiry, 4..=4, "expiry")?;
    digits_of_len(service_code, 3..=3, "service code")?;

    // At most 19 + 4 + 3 = 26 digits, so the 32-nibble field always has room.
    let mut field = Zeroizing::new([0u8; 16]);
    for (i, d) in pan.bytes().chain(expiry.bytes()).chain(service_code.bytes()).map(|b| b - b'0').enumerate() {
        field[i / 2] |= if i % 2 == 0 { d << 4 } else { d };
    }
    let mut x = Zeroizing::new([0u8; 8]);
    x.copy_from_slice(&field[..8]);
    encrypt(&des_a, &mut x);
    for (a, b) in x.iter_mut().zip(&field[8..]) {
        *a ^= b;
    }
    encrypt(&tdes, &mut x);

    let nibbles: Zeroizing<Vec<u8>> = Zeroizing::new(x.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect());
    let mut cvv = Zeroizing::new(String::with_capacity(3));
    let decimal = nibbles.iter().copied().filter(|n| *n < 10);
    let letters = nibbles.iter().copied().filter(|n| *n >= 10).map(|n| n - 10);
    for n in decimal.chain(letters).take(3) {
        cvv.push(char::from(b'0' + n));
    }
    Ok(cvv)
}

/// Checks `cvv` (3 digits) against the value [`generate`] computes, in constant time.
pub fn verify(cvk: &[u8], pan: &str, expiry: &str, service_code: &str, cvv: &str) -> Result<bool, HsmError> {
    let expected = generate(cvk, pan, expiry, service_code)?;
    digits_of_len(cvv, 3..=3, "CVV")?;
    Ok(expected.as_bytes().ct_eq(cvv.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::emv::tests::{arg_hex, arg_str, check_vector_file};
    use crate::error::ErrorKind;
    use serde_json::{Map, Value, json};

    const CVK: &str = "0123456789ABCDEFFEDCBA9876543210";

    #[test]
    fn published_values() {
        let cvk = hex::decode(CVK).unwrap();
        // The widely published Visa example; psec 1.3.0 gives the same.
        assert_eq!(*generate(&cvk, "4123456789012345", "8701", "101").unwrap(), "561");
        // psec 1.3.0 generate_cvv docstring.
        assert_eq!(*generate(&cvk, "1234567890123456", "9912", "220").unwrap(), "170");
    }

    #[test]
    fn verify_is_exact() {
        let cvk = hex::decode(CVK).unwrap();
        assert!(verify(&cvk, "4123456789012345", "8701", "101", "561").unwrap());
        assert!(!verify(&cvk, "4123456789012345", "8701", "101", "562").unwrap());
        assert!(!verify(&cvk, "4123456789012345", "8701", SERVICE_CODE_CVV2, "561").unwrap());
        assert_eq!(verify(&cvk, "4123456789012345", "8701", "101", "56").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(verify(&cvk, "4123456789012345", "8701", "101", "5610").unwrap_err().kind, ErrorKind::Format);
    }

    #[test]
    fn rejects_bad_input() {
        let cvk = hex::decode(CVK).unwrap();
        assert_eq!(generate(&cvk[..8], "4123456789012345", "8701", "101").unwrap_err().kind, ErrorKind::Key);
        let err = generate(&cvk, "412345678901234X", "8701", "101").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Format);
        assert!(!err.message.contains("41234567890"));
        assert_eq!(generate(&cvk, "4123456789012345", "871", "101").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(generate(&cvk, "4123456789012345", "8701", "1010").unwrap_err().kind, ErrorKind::Format);
    }

    fn run_cvv(op: &str, i: &Map<String, Value>) -> Result<Value, HsmError> {
        assert_eq!(op, "cvv.generate");
        let cvv = generate(&arg_hex(i, "cvk")?, arg_str(i, "pan"), arg_str(i, "expiry"), arg_str(i, "service_code"))?;
        Ok(json!({ "cvv": cvv.as_str() }))
    }

    #[test]
    fn vectors_cvv() {
        check_vector_file("cvv.json", run_cvv);
    }
}
