//! FF1 format-preserving encryption (NIST SP 800-38G §5.1, Algorithms 7 and 8) with AES-128/192/256,
//! over the `fpe` crate, for digit strings in radix 2..=36 written with the alphabet `0-9a-z`.
//!
//! Input digits are accepted in either case; output is lower case. Length limits are those of
//! SP 800-38G Rev. 1 as the `fpe` crate enforces them: at least 2 digits and radix^len ≥ 1,000,000
//! (so 6 decimal digits, 4 base-36 digits, 20 binary digits), at most 2^32 − 1 digits.
//! Checked against the nine NIST "FF1samples" examples and an independent reference (`vectors/ff1_*.json`).

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{BlockCipherEncrypt, KeyInit};
use fpe::ff1::{FF1, FlexibleNumeralString, NumeralStringError};
use zeroize::{Zeroize, Zeroizing};

use crate::error::HsmError;

/// The smallest radix FF1 allows.
pub const MIN_RADIX: u32 = 2;
/// The largest radix the `0-9a-z` alphabet can write.
pub const MAX_RADIX: u32 = 36;

/// Encrypts the digit string `pt` (radix `radix`) under the AES key `key` with `tweak`.
///
/// Errors: `range` for a radix outside 2..=36 or a length outside FF1's limits, `key` for a key that is
/// not 16, 24 or 32 bytes, `format` for a character that is not a digit of the radix.
pub fn encrypt(key: &[u8], tweak: &[u8], radix: u32, pt: &str) -> Result<String, HsmError> {
    run(key, tweak, radix, pt, true)
}

/// Decrypts the digit string `ct`; the inverse of [`encrypt`], with the same errors.
pub fn decrypt(key: &[u8], tweak: &[u8], radix: u32, ct: &str) -> Result<String, HsmError> {
    run(key, tweak, radix, ct, false)
}

fn run(key: &[u8], tweak: &[u8], radix: u32, input: &str, encrypt: bool) -> Result<String, HsmError> {
    if !(MIN_RADIX..=MAX_RADIX).contains(&radix) {
        return Err(HsmError::range("FF1 radix must be 2..=36"));
    }
    if u32::try_from(tweak.len()).is_err() {
        return Err(HsmError::range("FF1 tweak is too long"));
    }
    let apply = match key.len() {
        16 => apply::<Aes128>,
        24 => apply::<Aes192>,
        32 => apply::<Aes256>,
        _ => return Err(HsmError::key("FF1 key must be 16, 24 or 32 bytes")),
    };
    // The input may be a PAN: every copy we own is zeroized.
    let numerals = Zeroizing::new(
        input
            .chars()
            .map(|c| c.to_digit(radix).map(|d| d as u16))
            .collect::<Option<Vec<u16>>>()
            .ok_or_else(|| HsmError::format("FF1 input has a character that is not a digit of the radix"))?,
    );
    let out = apply(key, radix, tweak, &numerals, encrypt)?;
    Ok(out.iter().filter_map(|&d| char::from_digit(u32::from(d), radix)).collect())
}

fn apply<C: BlockCipherEncrypt + KeyInit + Clone>(
    key: &[u8],
    radix: u32,
    tweak: &[u8],
    numerals: &[u16],
    encrypt: bool,
) -> Result<Zeroizing<Vec<u16>>, HsmError> {
    // `key` has the cipher's length (checked by the caller), so `FF1::new` cannot panic.
    let ff1 = FF1::<C>::new(key, radix).map_err(|_| HsmError::range("FF1 radix out of range"))?;
    let ns = FlexibleNumeralString::from(numerals.to_vec());
    let result = if encrypt { ff1.encrypt(tweak, &ns) } else { ff1.decrypt(tweak, &ns) };
    let mut input: Vec<u16> = ns.into();
    input.zeroize();
    match result {
        Ok(out) => Ok(Zeroizing::new(out.into())),
        Err(NumeralStringError::InvalidForRadix(_)) => {
            Err(HsmError::format("FF1 input has a character that is not a digit of the radix"))
        }
        Err(NumeralStringError::TooShort { .. }) => {
            Err(HsmError::range("FF1 input is too short: radix^length must be at least 1,000,000"))
        }
        Err(NumeralStringError::TooLong { .. }) => Err(HsmError::range("FF1 input is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const K128: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
    const K192: &str = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F";
    const K256: &str = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94";
    const T10: &str = "39383736353433323130";
    const T36: &str = "3737373770717273373737";

    /// NIST SP 800-38G "FF1samples" (Examples of FF1, 2016), samples 1-9: key, tweak, radix, pt, ct.
    const NIST: [(&str, &str, u32, &str, &str); 9] = [
        (K128, "", 10, "0123456789", "2433477484"),
        (K128, T10, 10, "0123456789", "6124200773"),
        (K128, T36, 36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
        (K192, "", 10, "0123456789", "2830668132"),
        (K192, T10, 10, "0123456789", "2496655549"),
        (K192, T36, 36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
        (K256, "", 10, "0123456789", "6657667009"),
        (K256, T10, 10, "0123456789", "1001623463"),
        (K256, T36, 36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
    ];

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn nist_samples() {
        for (i, (key, tweak, radix, pt, ct)) in NIST.iter().enumerate() {
            assert_eq!(encrypt(&h(key), &h(tweak), *radix, pt).unwrap(), *ct, "sample {}", i + 1);
            assert_eq!(decrypt(&h(key), &h(tweak), *radix, ct).unwrap(), *pt, "sample {}", i + 1);
        }
    }

    #[test]
    fn input_case_is_ignored() {
        let (key, tweak, radix, pt, ct) = NIST[2];
        assert_eq!(encrypt(&h(key), &h(tweak), radix, &pt.to_uppercase()).unwrap(), ct);
        assert_eq!(decrypt(&h(key), &h(tweak), radix, &ct.to_uppercase()).unwrap(), pt);
    }

    #[test]
    fn errors() {
        let k = h(K128);
        let kind = |r: Result<String, HsmError>| r.unwrap_err().kind;
        assert_eq!(kind(encrypt(&k, &[], 10, "01234a6789")), ErrorKind::Format);
        assert_eq!(kind(encrypt(&k, &[], 16, "0123456789g")), ErrorKind::Format);
        assert_eq!(kind(encrypt(&k, &[], 10, "012345-789")), ErrorKind::Format);
        assert_eq!(kind(encrypt(&k, &[], 10, "01234\u{0665}6789")), ErrorKind::Format);
        assert_eq!(kind(encrypt(&k, &[], 10, "12345")), ErrorKind::Range);
        assert_eq!(kind(encrypt(&k, &[], 10, "")), ErrorKind::Range);
        assert_eq!(kind(encrypt(&k, &[], 36, "abc")), ErrorKind::Range);
        assert_eq!(kind(encrypt(&k, &[], 2, &"1".repeat(19))), ErrorKind::Range);
        assert_eq!(kind(encrypt(&k, &[], 1, "000000")), ErrorKind::Range);
        assert_eq!(kind(encrypt(&k, &[], 37, "000000")), ErrorKind::Range);
        assert_eq!(kind(encrypt(&k[..15], &[], 10, "0123456789")), ErrorKind::Key);
        assert_eq!(kind(decrypt(&[0; 33], &[], 10, "0123456789")), ErrorKind::Key);
        assert_eq!(kind(decrypt(&k, &[], 10, "12345")), ErrorKind::Range);
        assert!(encrypt(&k, &[], 10, "123456").is_ok());
        assert!(encrypt(&k, &[], 2, &"1".repeat(20)).is_ok());
        assert!(encrypt(&k, &[], 36, "abcd").is_ok());
    }

    #[test]
    fn round_trip() {
        let key = h(K256);
        for radix in MIN_RADIX..=MAX_RADIX {
            let pt: String = (0..40).filter_map(|i| char::from_digit((i * 7 + 3) % radix, radix)).collect();
            let ct = encrypt(&key, b"tweak", radix, &pt).unwrap();
            assert_eq!(ct.len(), pt.len());
            assert_ne!(ct, pt);
            assert_eq!(decrypt(&key, b"tweak", radix, &ct).unwrap(), pt, "radix {radix}");
        }
    }

    /// Runs every `ff1.encrypt` / `ff1.decrypt` case of `vectors/ff1*.json`.
    #[test]
    fn vector_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("ff1") && name.ends_with(".json")
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no vectors/ff1*.json");
        let mut count = 0;
        for file in files {
            let suite: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            for case in suite["cases"].as_array().unwrap() {
                let id = format!("{}:{}", file.display(), case["id"]);
                let input = &case["in"];
                let key = h(input["key"].as_str().unwrap());
                let tweak = h(input["tweak"].as_str().unwrap());
                let radix = u32::try_from(input["radix"].as_u64().unwrap()).unwrap();
                let (result, out_name) = match case["op"].as_str().unwrap() {
                    "ff1.encrypt" => (encrypt(&key, &tweak, radix, input["pt"].as_str().unwrap()), "ct"),
                    "ff1.decrypt" => (decrypt(&key, &tweak, radix, input["ct"].as_str().unwrap()), "pt"),
                    op => panic!("{id}: unknown op {op}"),
                };
                let out = case["out"].as_object().unwrap();
                if let Some(kind) = out.get("error") {
                    let err = result.err().unwrap_or_else(|| panic!("{id}: expected an error"));
                    assert_eq!(err.kind.as_str(), kind.as_str().unwrap(), "{id}: {}", err.message);
                } else {
                    assert_eq!(out.len(), 1, "{id}: unexpected out keys");
                    let want = out[out_name].as_str().unwrap();
                    let got = result.unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert!(got.eq_ignore_ascii_case(want), "{id}: {got} != {want}");
                }
                count += 1;
            }
        }
        assert!(count >= 40, "only {count} ff1 cases");
    }
}
