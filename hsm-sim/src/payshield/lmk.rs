//! The variant LMK of a payShield-style HSM: twenty double-length TDES keys ("LMK pairs" 00-01 … 38-39),
//! a key type code that picks a pair and a variant, and the key schemes that say how a key is laid out
//! when enciphered under the LMK or under a zone master key (ZMK).
//!
//! This module owns the key arithmetic of that form and nothing else: which pair a key type uses, the
//! variants, encipherment of a clear key under a key-encrypting key, parity and check values.
//!
//! The LMK values are the well-known *test* LMK set of payShield development HSMs — public, printed in
//! Thales' own test documentation and reproduced by every open simulator (e.g. the Thales simulator by
//! Nick Bitounis et al., `ThalesSimulatorLibrary/Core/Cryptography/LMK/Storage.cs`, and the variant-LMK
//! tables of several Go and Python payShield emulators). They protect nothing, by design.
//!
//! Encipherment under a key-encrypting key `K` (an LMK pair after its key type variant, or a ZMK):
//! - the key type variant (`0`–`9`, first digit of the key type code) XORs one byte into byte 0 of the
//!   LMK pair: `00, A6, 5A, 6A, DE, 2B, 50, 74, 9C, FA`;
//! - scheme `U` (double length) enciphers the left half under `K` with `A6` XORed into byte 8, the right
//!   half with `5A`; scheme `T` (triple length) the thirds with `6A`, `DE`, `2B`;
//! - scheme `X`/`Y` (ANSI X9.17, only under a ZMK) and single-length keys use `K` unchanged, each 8-byte
//!   block in ECB.
//!
//! Pinned by vectors captured from an external tool (tests below) and by `tests/pythales_diff.py`.

use des::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2, TdesEde3};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::wire::Code;

/// The published test LMK set, pairs 00-01 to 38-39, each 16 bytes (left ‖ right).
const TEST_LMK: [[u8; 16]; 20] = [
    hex16(b"01010101010101017902CD1FD36EF8BA"),
    hex16(b"20202020202020203131313131313131"),
    hex16(b"40404040404040405151515151515151"),
    hex16(b"61616161616161617070707070707070"),
    hex16(b"80808080808080809191919191919191"),
    hex16(b"A1A1A1A1A1A1A1A1B0B0B0B0B0B0B0B0"),
    hex16(b"C1C1010101010101D0D0010101010101"),
    hex16(b"E0E0010101010101F1F1010101010101"),
    hex16(b"1C587F1C13924FEF0101010101010101"),
    hex16(b"01010101010101010101010101010101"),
    hex16(b"02020202020202020404040404040404"),
    hex16(b"07070707070707071010101010101010"),
    hex16(b"13131313131313131515151515151515"),
    hex16(b"16161616161616161919191919191919"),
    hex16(b"1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C"),
    hex16(b"23232323232323232525252525252525"),
    hex16(b"26262626262626262929292929292929"),
    hex16(b"2A2A2A2A2A2A2A2A2C2C2C2C2C2C2C2C"),
    hex16(b"2F2F2F2F2F2F2F2F3131313131313131"),
    hex16(b"01010101010101010101010101010101"),
];

/// Compile-time hex decoding of the LMK table (a bad digit fails the build, not a request).
const fn hex16(s: &[u8; 32]) -> [u8; 16] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => [0u8][c as usize], // out of bounds in a const context: a compile error
        }
    }
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (nib(s[2 * i]) << 4) | nib(s[2 * i + 1]);
        i += 1;
    }
    out
}

/// Key type variants, by the first digit of the key type code.
const VARIANTS: [u8; 10] = [0x00, 0xA6, 0x5A, 0x6A, 0xDE, 0x2B, 0x50, 0x74, 0x9C, 0xFA];
const DOUBLE_VARIANTS: [u8; 2] = [0xA6, 0x5A];
const TRIPLE_VARIANTS: [u8; 3] = [0x6A, 0xDE, 0x2B];

/// The LMK pair index (0 = 00-01 … 19 = 38-39) of a key type's last two characters.
fn pair_of(code: &[u8]) -> Option<usize> {
    Some(match code {
        b"00" => 2,  // ZMK: 04-05
        b"01" => 3,  // ZPK: 06-07
        b"02" => 7,  // TPK, TMK, PVK, CVK: 14-15
        b"03" => 8,  // TAK: 16-17
        b"04" => 9,  // 18-19
        b"05" => 10, // 20-21
        b"06" => 11, // 22-23
        b"07" => 12, // 24-25
        b"08" => 13, // ZAK: 26-27
        b"09" => 14, // BDK, MK-AC: 28-29
        b"0A" => 15, // ZEK: 30-31
        b"0B" => 16, // DEK, TEK: 32-33
        b"0C" => 17, // 34-35
        b"0D" => 18, // 36-37
        b"0E" => 19, // 38-39
        _ => return None,
    })
}

/// A 3-character key type code (`000` ZMK, `001` ZPK, `002` TPK/PVK, `402` CVK, `003` TAK, `008` ZAK,
/// `009` BDK, `109` MK-AC, `00A` ZEK, `00B` DEK…): an LMK pair and a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyType {
    pair: usize,
    variant: u8,
    code: [u8; 3],
}

impl KeyType {
    pub const ZMK: KeyType = KeyType { pair: 2, variant: 0, code: *b"000" };
    pub const ZPK: KeyType = KeyType { pair: 3, variant: 0, code: *b"001" };
    pub const TPK: KeyType = KeyType { pair: 7, variant: 0, code: *b"002" };
    pub const PVK: KeyType = KeyType::TPK;
    pub const CVK: KeyType = KeyType { pair: 7, variant: 4, code: *b"402" };

    /// Parses a key type code; `04` (invalid key type code) otherwise.
    pub fn parse(code: &[u8]) -> Result<Self, Code> {
        let [v, a, b] = <[u8; 3]>::try_from(code).map_err(|_| Code::INVALID_KEY_TYPE)?;
        let variant = match v {
            b'0'..=b'9' => v - b'0',
            _ => return Err(Code::INVALID_KEY_TYPE),
        };
        let pair = pair_of(&[a, b]).ok_or(Code::INVALID_KEY_TYPE)?;
        Ok(KeyType { pair, variant, code: [v, a, b] })
    }

    /// The key type of a 2-character `BU` key type code (variant 0).
    pub fn from_pair_code(code: &[u8]) -> Result<Self, Code> {
        let pair = pair_of(code).ok_or(Code::INVALID_KEY_TYPE)?;
        let [a, b] = <[u8; 2]>::try_from(code).map_err(|_| Code::INVALID_KEY_TYPE)?;
        Ok(KeyType { pair, variant: 0, code: [b'0', a, b] })
    }

    pub fn code(&self) -> &[u8; 3] {
        &self.code
    }

    /// The LMK pair after this key type's variant.
    fn kek(&self) -> Zeroizing<Vec<u8>> {
        let mut k = Zeroizing::new(TEST_LMK.get(self.pair).copied().unwrap_or([0; 16]).to_vec());
        k[0] ^= VARIANTS.get(usize::from(self.variant)).copied().unwrap_or(0);
        k
    }
}

/// How a key is laid out when enciphered: the scheme tag that precedes its hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// No tag, 16 hex digits: a single-length DES key (`Z` when named as a scheme).
    Single,
    /// 16 hex digits twice, no tag: a pair of single-length keys each enciphered on its own (PVK and CVK
    /// pairs in the older layouts); arithmetic of [`Scheme::X`].
    Pair,
    /// `U`: double length, variant method.
    U,
    /// `T`: triple length, variant method.
    T,
    /// `X`: double length, ANSI X9.17 (under a ZMK only).
    X,
    /// `Y`: triple length, ANSI X9.17 (under a ZMK only).
    Y,
}

impl Scheme {
    /// The scheme a requester names in a key scheme field (`Z`, `U`, `T`, `X`, `Y`).
    pub fn from_flag(flag: u8, under_zmk: bool) -> Result<Self, Code> {
        match flag {
            b'Z' | b'0' => Ok(Scheme::Single),
            b'U' => Ok(Scheme::U),
            b'T' => Ok(Scheme::T),
            b'X' if under_zmk => Ok(Scheme::X),
            b'Y' if under_zmk => Ok(Scheme::Y),
            _ => Err(Code::INVALID_KEY_SCHEME),
        }
    }

    /// The tag before the hex digits (none for single-length keys and pairs).
    pub fn tag(self) -> Option<u8> {
        match self {
            Scheme::Single | Scheme::Pair => None,
            Scheme::U => Some(b'U'),
            Scheme::T => Some(b'T'),
            Scheme::X => Some(b'X'),
            Scheme::Y => Some(b'Y'),
        }
    }

    /// Clear key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Scheme::Single => 8,
            Scheme::Pair | Scheme::U | Scheme::X => 16,
            Scheme::T | Scheme::Y => 24,
        }
    }

    /// The scheme variant XORed into byte 8 of the KEK for each 8-byte block.
    fn block_variant(self, block: usize) -> u8 {
        match self {
            Scheme::U => DOUBLE_VARIANTS.get(block).copied().unwrap_or(0),
            Scheme::T => TRIPLE_VARIANTS.get(block).copied().unwrap_or(0),
            _ => 0,
        }
    }
}

/// A DES/TDES block cipher of any of the three key lengths.
enum Cipher {
    Single(Box<Des>),
    Double(Box<TdesEde2>),
    Triple(Box<TdesEde3>),
}

impl Cipher {
    fn new(key: &[u8]) -> Result<Self, Code> {
        let bad = |_| Code::KEY_LENGTH;
        match key.len() {
            8 => Ok(Cipher::Single(Box::new(Des::new_from_slice(key).map_err(bad)?))),
            16 => Ok(Cipher::Double(Box::new(TdesEde2::new_from_slice(key).map_err(bad)?))),
            24 => Ok(Cipher::Triple(Box::new(TdesEde3::new_from_slice(key).map_err(bad)?))),
            _ => Err(Code::KEY_LENGTH),
        }
    }

    fn encrypt(&self, block: &mut [u8; 8]) {
        match self {
            Cipher::Single(c) => c.encrypt_block(block.into()),
            Cipher::Double(c) => c.encrypt_block(block.into()),
            Cipher::Triple(c) => c.encrypt_block(block.into()),
        }
    }

    fn decrypt(&self, block: &mut [u8; 8]) {
        match self {
            Cipher::Single(c) => c.decrypt_block(block.into()),
            Cipher::Double(c) => c.decrypt_block(block.into()),
            Cipher::Triple(c) => c.decrypt_block(block.into()),
        }
    }
}

/// TDES-ECB (or DES for an 8-byte key) of `data` (a multiple of 8 bytes) in place.
pub fn ecb(key: &[u8], data: &mut [u8], encrypt: bool) -> Result<(), Code> {
    let c = Cipher::new(key)?;
    let (blocks, rest) = data.as_chunks_mut::<8>();
    if !rest.is_empty() {
        return Err(Code::INVALID_INPUT);
    }
    for b in blocks {
        if encrypt { c.encrypt(b) } else { c.decrypt(b) }
    }
    Ok(())
}

/// TDES-CBC of `data` (a multiple of 8 bytes) in place; returns the last ciphertext block (the next IV).
pub fn cbc(key: &[u8], iv: &[u8; 8], data: &mut [u8], encrypt: bool) -> Result<[u8; 8], Code> {
    let c = Cipher::new(key)?;
    let (blocks, rest) = data.as_chunks_mut::<8>();
    if !rest.is_empty() {
        return Err(Code::INVALID_INPUT);
    }
    let mut chain = *iv;
    for b in blocks {
        if encrypt {
            b.iter_mut().zip(&chain).for_each(|(x, y)| *x ^= y);
            c.encrypt(b);
            chain = *b;
        } else {
            let ct = *b;
            c.decrypt(b);
            b.iter_mut().zip(&chain).for_each(|(x, y)| *x ^= y);
            chain = ct;
        }
    }
    Ok(chain)
}

/// Enciphers (`encrypt`) or deciphers `key` under `kek` in `scheme`, block by block.
fn transform(kek: &[u8], scheme: Scheme, key: &[u8], encrypt: bool) -> Result<Zeroizing<Vec<u8>>, Code> {
    if key.len() != scheme.key_len() {
        return Err(Code::KEY_LENGTH);
    }
    let mut out = Zeroizing::new(key.to_vec());
    let (blocks, _) = out.as_chunks_mut::<8>();
    for (i, block) in blocks.iter_mut().enumerate() {
        let mut k = Zeroizing::new(kek.to_vec());
        if let Some(b) = k.get_mut(8) {
            *b ^= scheme.block_variant(i);
        }
        let c = Cipher::new(&k)?;
        if encrypt { c.encrypt(block) } else { c.decrypt(block) }
    }
    Ok(out)
}

/// `clear` enciphered under the LMK for `key_type` in `scheme`.
pub fn encrypt_under_lmk(key_type: KeyType, scheme: Scheme, clear: &[u8]) -> Result<Vec<u8>, Code> {
    Ok(transform(&key_type.kek(), scheme, clear, true)?.to_vec())
}

/// The clear key of `enciphered` under the LMK for `key_type`.
pub fn decrypt_under_lmk(key_type: KeyType, scheme: Scheme, enciphered: &[u8]) -> Result<Zeroizing<Vec<u8>>, Code> {
    transform(&key_type.kek(), scheme, enciphered, false)
}

/// `clear` enciphered under a clear `zmk` (16 or 24 bytes) in `scheme`.
pub fn encrypt_under_zmk(zmk: &[u8], scheme: Scheme, clear: &[u8]) -> Result<Vec<u8>, Code> {
    Ok(transform(zmk, scheme, clear, true)?.to_vec())
}

/// The clear key of `enciphered` under a clear `zmk`.
pub fn decrypt_under_zmk(zmk: &[u8], scheme: Scheme, enciphered: &[u8]) -> Result<Zeroizing<Vec<u8>>, Code> {
    transform(zmk, scheme, enciphered, false)
}

/// Every byte of `key` has odd parity (DES keys as payShield requires them).
pub fn odd_parity(key: &[u8]) -> bool {
    key.iter().all(|b| b.count_ones() % 2 == 1)
}

/// Sets the low bit of each byte so every byte has odd parity.
pub fn fix_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        if b.count_ones() % 2 == 0 {
            *b ^= 1;
        }
    }
}

/// Key check value: the key's cipher applied to a zero block, first 8 bytes (callers cut to 3 or 8).
pub fn check_value(key: &[u8]) -> Result<[u8; 8], Code> {
    let mut block = [0u8; 8];
    Cipher::new(key)?.encrypt(&mut block);
    Ok(block)
}

/// The LMK check value `NC` reports: the check value of LMK pair 00-01.
pub fn lmk_check_value() -> [u8; 8] {
    check_value(&TEST_LMK[0]).unwrap_or([0; 8])
}

/// LMK pair 02-03, under which payShield keeps PINs (`JE`/`JG`).
pub fn pin_lmk() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(TEST_LMK.get(1).copied().unwrap_or([0; 16]).to_vec())
}

/// Constant-time equality of two secret byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// LMK pair 00-01 with variants 1 and 2 in scheme `U`, key 0123…3210: values and check value from
    /// an external "Thales keys encryption/decoding" tool, quoted in the cryptocarver project's
    /// `ThalesLmkExternalVectorTest` (the two halves differ in scheme variant, A6 then 5A).
    #[test]
    fn external_tool_vectors_on_pair_00_01() {
        let key = h("0123456789ABCDEFFEDCBA9876543210");
        let t1 = KeyType { pair: 0, variant: 1, code: *b"1??" };
        let t2 = KeyType { pair: 0, variant: 2, code: *b"2??" };
        assert_eq!(
            hex::encode_upper(encrypt_under_lmk(t1, Scheme::U, &key).unwrap()),
            "A12049CC30D20BE0DC6E5E2A98FADE9E"
        );
        assert_eq!(
            hex::encode_upper(encrypt_under_lmk(t2, Scheme::U, &key).unwrap()),
            "BD7F64B9F9875B731BAED72101DEA65B"
        );
        assert_eq!(hex::encode_upper(&check_value(&key).unwrap()[..3]), "08D7B4");
        let back = decrypt_under_lmk(t1, Scheme::U, &h("A12049CC30D20BE0DC6E5E2A98FADE9E")).unwrap();
        assert_eq!(back.as_slice(), key.as_slice());
    }

    #[test]
    fn key_types() {
        assert_eq!(KeyType::parse(b"000").unwrap(), KeyType::ZMK);
        assert_eq!(KeyType::parse(b"402").unwrap(), KeyType::CVK);
        assert_eq!(KeyType::parse(b"0F0"), Err(Code::INVALID_KEY_TYPE));
        assert_eq!(KeyType::parse(b"A00"), Err(Code::INVALID_KEY_TYPE));
        assert_eq!(KeyType::parse(b"00"), Err(Code::INVALID_KEY_TYPE));
    }
}
