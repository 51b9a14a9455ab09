//! The host commands: each parses its fields from a [`Reader`], does its work with the primitives of
//! [`crate::crypto`] and the LMK arithmetic of [`super::lmk`], and returns the answer's fields or an
//! error code. Field layouts follow the payShield host command reference as open clients (jPOS,
//! ut-codec-payshield, pythales) send them; fields after the mandatory ones (LMK identifier `%nn`,
//! optional `;` blocks this HSM does not use) are ignored.

use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use super::keyblock;
use super::lmk::{self, KeyType, Scheme};
use super::wire::{Code, Reader};
use crate::crypto::pin::{self, PinFormat};
use crate::crypto::{cvv, pvv};
use crate::error::{ErrorKind, HsmError};

/// The firmware number `NC` reports (9 characters, payShield's `nnnn-nnnn` shape).
pub const FIRMWARE: &str = "0001-HSIM";

fn map_err(e: HsmError) -> Code {
    match e.kind {
        ErrorKind::Key => Code::KEY_LENGTH,
        ErrorKind::Auth => Code::VERIFICATION_FAILED,
        ErrorKind::Internal => Code::INTERNAL,
        ErrorKind::Format | ErrorKind::Range => Code::INVALID_INPUT,
    }
}

/// An enciphered key as read from a field.
struct KeyField {
    scheme: Scheme,
    bytes: Vec<u8>,
}

/// Reads a key field: `U`+32H, `T`+48H, (under a ZMK also `X`+32H, `Y`+48H), or untagged hex — 16H
/// for a single-length key, 32H for a key pair where `pair` allows it.
fn read_key(r: &mut Reader, under_zmk: bool, pair: bool) -> Result<KeyField, Code> {
    let scheme = match r.peek() {
        Some(b'U') => Scheme::U,
        Some(b'T') => Scheme::T,
        Some(b'X') if under_zmk => Scheme::X,
        Some(b'Y') if under_zmk => Scheme::Y,
        Some(c) if c.is_ascii_hexdigit() => {
            if pair {
                Scheme::Pair
            } else {
                Scheme::Single
            }
        }
        _ => return Err(Code::INVALID_INPUT),
    };
    if scheme.tag().is_some() {
        r.byte()?;
    }
    Ok(KeyField { scheme, bytes: r.hex(scheme.key_len())? })
}

/// Widens a single-length DES key to its TDES equivalent K ‖ K, so TDES code serves both.
fn widen(key: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    if key.len() == 8 {
        let mut k = Zeroizing::new(Vec::with_capacity(16));
        k.extend_from_slice(&key);
        k.extend_from_slice(&key);
        k
    } else {
        key
    }
}

/// Reads a key under the LMK of `kt` and deciphers it; `parity` is the error code for a parity fault.
fn lmk_key(r: &mut Reader, kt: KeyType, pair: bool, parity: Code) -> Result<Zeroizing<Vec<u8>>, Code> {
    let clear = if r.peek() == Some(b'S') {
        keyblock::read(r, Some(kt))?
    } else {
        let f = read_key(r, false, pair)?;
        lmk::decrypt_under_lmk(kt, f.scheme, &f.bytes)?
    };
    if !lmk::odd_parity(&clear) {
        return Err(parity);
    }
    Ok(clear)
}

/// How a key is to be written under the LMK: a variant scheme, or a key block (`S`).
enum LmkScheme {
    Variant(Scheme),
    KeyBlock,
}

impl LmkScheme {
    fn from_flag(flag: u8) -> Result<Self, Code> {
        match flag {
            b'S' => Ok(LmkScheme::KeyBlock),
            _ => Ok(LmkScheme::Variant(Scheme::from_flag(flag, false)?)),
        }
    }

    /// Clear key length: key blocks made here hold double-length TDES keys.
    fn key_len(&self) -> usize {
        match self {
            LmkScheme::Variant(s) => s.key_len(),
            LmkScheme::KeyBlock => 16,
        }
    }

    fn encode(
        &self,
        kt: KeyType,
        attrs: Option<&keyblock::Attributes>,
        key: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, Code> {
        match self {
            LmkScheme::Variant(s) => Ok(out_key(*s, &lmk::encrypt_under_lmk(kt, *s, key)?)),
            LmkScheme::KeyBlock => keyblock::wrap(kt, attrs, key, rng),
        }
    }
}

/// The optional trailer of `A0`/`A6`: an LMK identifier `%nn` (only `00`), then key block attributes.
fn trailer(r: &mut Reader) -> Result<Option<keyblock::Attributes>, Code> {
    if r.eat(b'%') && r.take(2)? != b"00" {
        return Err(Code(*b"13"));
    }
    keyblock::read_attributes(r)
}

fn out_key(scheme: Scheme, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 2 * bytes.len());
    out.extend(scheme.tag());
    out.extend_from_slice(hex::encode_upper(bytes).as_bytes());
    out
}

fn kcv6(key: &[u8]) -> Result<Vec<u8>, Code> {
    Ok(hex::encode_upper(&lmk::check_value(key)?[..3]).into_bytes())
}

fn random_key(rng: &dyn SecureRandom, len: usize) -> Result<Zeroizing<Vec<u8>>, Code> {
    let mut k = Zeroizing::new(vec![0u8; len]);
    rng.fill(&mut k).map_err(|_| Code::INTERNAL)?;
    lmk::fix_parity(&mut k);
    Ok(k)
}

fn random_bytes(rng: &dyn SecureRandom, len: usize) -> Result<Zeroizing<Vec<u8>>, Code> {
    let mut k = Zeroizing::new(vec![0u8; len]);
    rng.fill(&mut k).map_err(|_| Code::INTERNAL)?;
    Ok(k)
}

/// `NC`: diagnostics — LMK check value (16H) and firmware number.
pub fn nc(_r: &mut Reader) -> Result<Vec<u8>, Code> {
    let mut out = hex::encode_upper(lmk::lmk_check_value()).into_bytes();
    out.extend_from_slice(FIRMWARE.as_bytes());
    Ok(out)
}

/// `BU`: key check value. Key type code (2; `FF` = a 3-character key type after the key, behind `;`),
/// key length flag (1: 0 single, 1 double, 2 triple), key. Answer: check value (16H).
pub fn bu(r: &mut Reader) -> Result<Vec<u8>, Code> {
    let code = r.take(2)?;
    let len_flag = r.byte()?;
    if r.peek() == Some(b'S') {
        // A key block names its own usage; a key type after it is read and not needed.
        let clear = keyblock::read(r, None)?;
        if code == b"FF" && r.eat(b';') {
            r.take(3)?;
        }
        return Ok(hex::encode_upper(lmk::check_value(&clear)?).into_bytes());
    }
    let f = read_key(r, false, false)?;
    let kt = if code == b"FF" {
        r.expect(b';')?;
        KeyType::parse(r.take(3)?)?
    } else {
        KeyType::from_pair_code(code)?
    };
    let expected = match len_flag {
        b'0' => 8,
        b'1' => 16,
        b'2' => 24,
        _ => return Err(Code(*b"05")),
    };
    if f.scheme.key_len() != expected {
        return Err(Code(*b"05"));
    }
    let clear = lmk::decrypt_under_lmk(kt, f.scheme, &f.bytes)?;
    Ok(hex::encode_upper(lmk::check_value(&clear)?).into_bytes())
}

/// `A0`: generate a key. Mode (0 generate; 1 also export under a ZMK/TMK), key type (3), key scheme
/// LMK (1); in mode 1: [`;` ZMK/TMK flag (0 ZMK, 1 TMK)], ZMK/TMK under the LMK, key scheme ZMK (1).
/// Answer: key under LMK, [key under ZMK], check value (6H).
pub fn a0(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let mode = r.byte()?;
    let code = r.take(3)?;
    // `FFF`: the key block attributes alone name the key (its usage and, with `&`, its algorithm).
    let kt = if code == b"FFF" { None } else { Some(KeyType::parse(code)?) };
    let scheme = LmkScheme::from_flag(r.byte()?)?;
    let export = match mode {
        b'0' => None,
        b'1' => {
            let kek_type = if r.eat(b';') && r.byte()? == b'1' { KeyType::TPK } else { KeyType::ZMK };
            let zmk = lmk_key(r, kek_type, false, Code::SOURCE_PARITY)?;
            let zmk_scheme = Scheme::from_flag(r.byte()?, true)?;
            if zmk_scheme.key_len() != scheme.key_len() {
                return Err(Code::INVALID_KEY_SCHEME);
            }
            Some((zmk, zmk_scheme))
        }
        _ => return Err(Code::NOT_SUPPORTED),
    };
    let attrs = trailer(r)?;
    let algorithm = attrs.as_ref().map(|a| a.algorithm()).unwrap_or(keyblock::KeyAlgorithm::Tdes2);
    let tdes = algorithm == keyblock::KeyAlgorithm::Tdes2;
    // Keys other than TDES exist only as key blocks, and are never exported under a TDES ZMK here.
    if !tdes && (!matches!(scheme, LmkScheme::KeyBlock) || export.is_some()) {
        return Err(Code::INVALID_KEY_SCHEME);
    }
    let key = if tdes { random_key(rng, scheme.key_len())? } else { random_bytes(rng, algorithm.key_len())? };
    let mut out = match (kt, &attrs) {
        (Some(kt), _) => scheme.encode(kt, attrs.as_ref(), &key, rng)?,
        (None, Some(a)) if matches!(scheme, LmkScheme::KeyBlock) => keyblock::wrap_any(a, &key, rng)?,
        (None, _) => return Err(Code::INVALID_KEY_TYPE),
    };
    if let Some((zmk, zmk_scheme)) = export {
        out.extend(out_key(zmk_scheme, &lmk::encrypt_under_zmk(&widen(zmk), zmk_scheme, &key)?));
    }
    if tdes {
        out.extend(kcv6(&key)?);
    } else {
        out.extend(crate::crypto::kcv::aes(&key).map_err(map_err)?.into_bytes());
    }
    Ok(out)
}

/// `A6`: import a key from ZMK to LMK. Key type (3), ZMK under the LMK, key under the ZMK, key scheme
/// LMK (1). Answer: key under LMK, check value (6H). An imported key with even-parity bytes fails `01`.
pub fn a6(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let kt = KeyType::parse(r.take(3)?)?;
    let zmk = widen(lmk_key(r, KeyType::ZMK, false, Code::SOURCE_PARITY)?);
    let f = read_key(r, true, false)?;
    let scheme = LmkScheme::from_flag(r.byte()?)?;
    let attrs = trailer(r)?;
    let key = lmk::decrypt_under_zmk(&zmk, f.scheme, &f.bytes)?;
    if scheme.key_len() != key.len() {
        return Err(Code::INVALID_KEY_SCHEME);
    }
    if !lmk::odd_parity(&key) {
        return Err(Code::VERIFICATION_FAILED);
    }
    let mut out = scheme.encode(kt, attrs.as_ref(), &key, rng)?;
    out.extend(kcv6(&key)?);
    Ok(out)
}

/// `A8`: export a key from LMK to ZMK. Key type (3), [`;` ZMK/TMK flag], ZMK under the LMK, key under
/// the LMK, key scheme ZMK (1). Answer: key under ZMK, check value (6H).
pub fn a8(r: &mut Reader) -> Result<Vec<u8>, Code> {
    let kt = KeyType::parse(r.take(3)?)?;
    let kek_type = if r.eat(b';') && r.byte()? == b'1' { KeyType::TPK } else { KeyType::ZMK };
    let zmk = widen(lmk_key(r, kek_type, false, Code::SOURCE_PARITY)?);
    let key = lmk_key(r, kt, false, Code::DESTINATION_PARITY)?;
    let scheme = Scheme::from_flag(r.byte()?, true)?;
    if scheme.key_len() != key.len() {
        return Err(Code::INVALID_KEY_SCHEME);
    }
    let mut out = out_key(scheme, &lmk::encrypt_under_zmk(&zmk, scheme, &key)?);
    out.extend(kcv6(&key)?);
    Ok(out)
}

/// Forms a key from clear components (XORed), as payShield's console command `FK` does: returns the key
/// under the LMK for `key_type` in `scheme` and its check value (6H). Offered as `hsm-sim form-key`.
pub fn form_key(key_type: &str, scheme: u8, components: &[&str]) -> Result<(String, String), Code> {
    let kt = KeyType::parse(key_type.as_bytes())?;
    let scheme = LmkScheme::from_flag(scheme)?;
    if components.is_empty() {
        return Err(Code::INVALID_INPUT);
    }
    let mut key = Zeroizing::new(vec![0u8; scheme.key_len()]);
    for c in components {
        let part = Zeroizing::new(hex::decode(c).map_err(|_| Code::INVALID_INPUT)?);
        if part.len() != key.len() {
            return Err(Code::KEY_LENGTH);
        }
        key.iter_mut().zip(part.iter()).for_each(|(k, p)| *k ^= p);
    }
    if !lmk::odd_parity(&key) {
        return Err(Code::SOURCE_PARITY);
    }
    let enc = scheme.encode(kt, None, &key, &ring::rand::SystemRandom::new())?;
    let enc = String::from_utf8(enc).map_err(|_| Code::INTERNAL)?;
    let kcv = String::from_utf8(kcv6(&key)?).map_err(|_| Code::INTERNAL)?;
    Ok((enc, kcv))
}

/// PAN, `;`, expiry (4N), service code (3N) of `CW`/`CY`.
fn card_fields<'a>(r: &mut Reader<'a>) -> Result<(&'a str, &'a str, &'a str), Code> {
    let pan = r.digits_until(b';', 19)?;
    Ok((pan, r.digits(4)?, r.digits(3)?))
}

/// `CW`: generate a CVV. CVK pair (`U`+32H or 32H) under LMK key type 402, PAN, `;`, expiry (YYMM),
/// service code. Answer: CVV (3N).
pub fn cw(r: &mut Reader) -> Result<Vec<u8>, Code> {
    let cvk = lmk_key(r, KeyType::CVK, true, Code::SOURCE_PARITY)?;
    let (pan, expiry, service) = card_fields(r)?;
    let v = cvv::generate(&cvk, pan, expiry, service).map_err(map_err)?;
    Ok(v.as_bytes().to_vec())
}

/// `CY`: verify a CVV. CVK pair, CVV (3N), PAN, `;`, expiry, service code. `01` when it does not match.
pub fn cy(r: &mut Reader) -> Result<Vec<u8>, Code> {
    let cvk = lmk_key(r, KeyType::CVK, true, Code::SOURCE_PARITY)?;
    let given = r.digits(3)?;
    let (pan, expiry, service) = card_fields(r)?;
    match cvv::verify(&cvk, pan, expiry, service, given).map_err(map_err)? {
        true => Ok(Vec::new()),
        false => Err(Code::VERIFICATION_FAILED),
    }
}

/// A TDES PIN block format code: `01` ISO format 0, `47` ISO format 3.
fn pin_format(r: &mut Reader) -> Result<PinFormat, Code> {
    match any_pin_format(r)? {
        PinFormat::Iso4 => Err(Code::INVALID_PIN_BLOCK_FORMAT),
        f => Ok(f),
    }
}

/// A PIN block format code where AES PIN keys are accepted too: `01`, `47`, or `48` ISO format 4.
fn any_pin_format(r: &mut Reader) -> Result<PinFormat, Code> {
    match r.take(2)? {
        b"01" => Ok(PinFormat::Iso0),
        b"47" => Ok(PinFormat::Iso3),
        b"48" => Ok(PinFormat::Iso4),
        _ => Err(Code::INVALID_PIN_BLOCK_FORMAT),
    }
}

fn format_code(f: PinFormat) -> &'static [u8] {
    match f {
        PinFormat::Iso0 => b"01",
        PinFormat::Iso3 => b"47",
        PinFormat::Iso4 => b"48",
    }
}

/// A PIN key as a command uses it: TDES (variant or `S` key block; single length widened) or AES (an
/// `S` key block of algorithm `A` only: 16, 24 or 32 bytes).
struct PinKey {
    key: Zeroizing<Vec<u8>>,
    aes: bool,
}

impl PinKey {
    /// Reads a PIN key of type `kt`: a variant key, or a key block of one of `kt`'s usages of
    /// algorithm TDES (odd parity, else `parity`) or AES.
    fn read(r: &mut Reader, kt: KeyType, parity: Code) -> Result<Self, Code> {
        if r.peek() != Some(b'S') {
            return Ok(PinKey { key: widen(lmk_key(r, kt, false, parity)?), aes: false });
        }
        let (key, algorithm) = keyblock::read_any(r, keyblock::usages_of(kt), false)?;
        match algorithm {
            crate::crypto::tr31::Algorithm::AES => Ok(PinKey { key, aes: true }),
            crate::crypto::tr31::Algorithm::TDES if lmk::odd_parity(&key) => Ok(PinKey { key: widen(key), aes: false }),
            crate::crypto::tr31::Algorithm::TDES => Err(parity),
            _ => Err(Code::KEY_LENGTH),
        }
    }

    /// Length in bytes of the PIN blocks under this key: 16 (format 4) for AES, 8 for TDES.
    fn block_len(&self) -> usize {
        if self.aes { 16 } else { 8 }
    }

    /// `23` unless `format` fits the key: format 4 under an AES key, formats 0 and 3 under TDES.
    fn check(&self, format: PinFormat) -> Result<(), Code> {
        match (format == PinFormat::Iso4) == self.aes {
            true => Ok(()),
            false => Err(Code::INVALID_PIN_BLOCK_FORMAT),
        }
    }
}

/// The 12-digit account number field as a PAN the PIN block code accepts: the field is the 12 rightmost
/// PAN digits before the check digit, so any check digit after it gives the same PAN field.
fn account_pan(account: &str) -> String {
    format!("{account}0")
}

fn decipher_pin(format: PinFormat, key: &[u8], block: &[u8], account: &str) -> Result<Zeroizing<String>, Code> {
    decipher_pan(format, key, block, &account_pan(account))
}

fn decipher_pan(format: PinFormat, key: &[u8], block: &[u8], pan: &str) -> Result<Zeroizing<String>, Code> {
    pin::decipher(format, key, block, pan).map_err(|e| match e.kind {
        ErrorKind::Format => Code::INVALID_PIN_BLOCK,
        _ => map_err(e),
    })
}

/// The account field of `CA`/`CC`/`G0`: 12N (the 12 rightmost PAN digits before the check digit) when
/// both formats are TDES ones; when either is format 4, which binds the whole PAN, the PAN's length
/// (2N, 08–19) and the PAN (hsm-sim's own layout). Returned as a PAN the PIN block code accepts.
fn account_field(r: &mut Reader, iso4: bool) -> Result<String, Code> {
    if !iso4 {
        return Ok(account_pan(r.digits(12)?));
    }
    let n = r.number(2)?;
    if !(pin::PAN_MIN_LEN..=pin::PAN_MAX_LEN).contains(&n) {
        return Err(Code::INVALID_INPUT);
    }
    Ok(r.digits(n)?.to_owned())
}

/// `DC`/`EC` after the PIN key: PVK pair, PIN block (16H), format code, account (12N), PVKI (1N),
/// PVV (4N).
fn verify_pvv(r: &mut Reader, pin_key: &[u8]) -> Result<Vec<u8>, Code> {
    let pvk = lmk_key(r, KeyType::PVK, true, Code::DESTINATION_PARITY)?;
    let block = r.hex(8)?;
    let format = pin_format(r)?;
    let account = r.digits(12)?;
    let pvki = r.digits(1)?.bytes().next().map(|b| b - b'0').ok_or(Code::INVALID_INPUT)?;
    let given = r.digits(4)?;
    let pin = decipher_pin(format, pin_key, &block, account)?;
    match pvv::verify(&pvk, account, pvki, &pin, given).map_err(map_err)? {
        true => Ok(Vec::new()),
        false => Err(Code::VERIFICATION_FAILED),
    }
}

/// `DC`: verify a terminal PIN by the Visa PVV method. TPK, PVK pair, PIN block, format, account, PVKI,
/// PVV. `01` when the PIN does not verify.
pub fn dc(r: &mut Reader) -> Result<Vec<u8>, Code> {
    let tpk = widen(lmk_key(r, KeyType::TPK, false, Code::SOURCE_PARITY)?);
    verify_pvv(r, &tpk)
}

/// `EC`: verify an interchange PIN by the Visa PVV method; as `DC` with a ZPK.
pub fn ec(r: &mut Reader) -> Result<Vec<u8>, Code> {
    let zpk = widen(lmk_key(r, KeyType::ZPK, false, Code::SOURCE_PARITY)?);
    verify_pvv(r, &zpk)
}

/// `CA`/`CC`/`G0` after the keys (and `CA`/`CC`'s maximum PIN length): source PIN block (16H under a
/// TDES key, 32H under an AES key), source format, destination format, account ([`account_field`]).
/// Each format must fit its key ([`PinKey::check`]). Answer: PIN length (2N), destination PIN block
/// (16H or 32H), destination format code.
fn translate_fields(
    r: &mut Reader,
    from: &PinKey,
    to: &PinKey,
    max: Option<usize>,
    rng: &dyn SecureRandom,
) -> Result<Vec<u8>, Code> {
    let block = r.hex(from.block_len())?;
    let src = any_pin_format(r)?;
    let dst = any_pin_format(r)?;
    from.check(src)?;
    to.check(dst)?;
    let pan = account_field(r, src == PinFormat::Iso4 || dst == PinFormat::Iso4)?;
    let pin = decipher_pan(src, &from.key, &block, &pan)?;
    if max.is_some_and(|max| pin.len() > max) {
        return Err(Code::PIN_LENGTH);
    }
    let out = pin::encipher(dst, &to.key, &pin, &pan, rng).map_err(map_err)?;
    let mut fields = format!("{:02}", pin.len()).into_bytes();
    fields.extend_from_slice(hex::encode_upper(out).as_bytes());
    fields.extend_from_slice(format_code(dst));
    Ok(fields)
}

/// `CA`/`CC` after the two keys: maximum PIN length (2N), then [`translate_fields`].
fn translate(r: &mut Reader, from: &PinKey, to: &PinKey, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let max = r.number(2)?;
    translate_fields(r, from, to, Some(max), rng)
}

/// A PIN under the LMK as this simulator encodes it (its own encoding: payShield's is unpublished):
/// the ISO 9564-1 format 0 block of the PIN and the account, TDES-ECB under LMK pair 02-03, 16H.
fn pin_under_lmk(pin: &str, account: &str) -> Result<Vec<u8>, Code> {
    let clear = pin::iso0_encode(pin, &account_pan(account)).map_err(map_err)?;
    let enc = pin::tdes_encipher(&lmk::pin_lmk(), &clear).map_err(map_err)?;
    Ok(hex::encode_upper(enc).into_bytes())
}

/// `JE`: a PIN block under a TPK to the PIN under the LMK. TPK, PIN block (16H), format (2N), account
/// (12N). Answer: the PIN under the LMK (16H, [`pin_under_lmk`]).
pub fn je(r: &mut Reader) -> Result<Vec<u8>, Code> {
    let tpk = widen(lmk_key(r, KeyType::TPK, false, Code::SOURCE_PARITY)?);
    let block = r.hex(8)?;
    let format = pin_format(r)?;
    let account = r.digits(12)?;
    let pin = decipher_pin(format, &tpk, &block, account)?;
    pin_under_lmk(&pin, account)
}

/// `JG`: the PIN under the LMK to a PIN block under a ZPK. ZPK, destination format (2N), account
/// (12N), PIN under the LMK (16H). Answer: PIN block (16H). A PIN under the LMK for another account
/// fails `20`.
pub fn jg(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let zpk = widen(lmk_key(r, KeyType::ZPK, false, Code::SOURCE_PARITY)?);
    let format = pin_format(r)?;
    let account = r.digits(12)?;
    let under_lmk = r.hex(8)?;
    let pin = decipher_pin(PinFormat::Iso0, &lmk::pin_lmk(), &under_lmk, account)?;
    let out = pin::encipher(format, &zpk, &pin, &account_pan(account), rng).map_err(map_err)?;
    Ok(hex::encode_upper(out).into_bytes())
}

/// `CA`: translate a PIN block from a TPK to a ZPK.
pub fn ca(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let tpk = PinKey::read(r, KeyType::TPK, Code::SOURCE_PARITY)?;
    let zpk = PinKey::read(r, KeyType::ZPK, Code::DESTINATION_PARITY)?;
    translate(r, &tpk, &zpk, rng)
}

/// `CC`: translate a PIN block from one ZPK to another.
pub fn cc(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let src = PinKey::read(r, KeyType::ZPK, Code::SOURCE_PARITY)?;
    let dst = PinKey::read(r, KeyType::ZPK, Code::DESTINATION_PARITY)?;
    translate(r, &src, &dst, rng)
}

/// Message data in an input format: 0 binary, 1 hex, 2 text (bytes as sent).
fn message(r: &mut Reader, format: u8) -> Result<Zeroizing<Vec<u8>>, Code> {
    let len = r.hex_number(4)?;
    let raw = r.take(len)?;
    match format {
        b'0' | b'2' => Ok(Zeroizing::new(raw.to_vec())),
        b'1' => Ok(Zeroizing::new(hex::decode(raw).map_err(|_| Code::INVALID_INPUT)?)),
        _ => Err(Code::INVALID_INPUT),
    }
}

/// ISO/IEC 9797-1 MAC of `data`: algorithm 1 (CBC-MAC under the whole TDES key) or 3 (single-DES CBC
/// under the left key, last block through DES⁻¹ right, DES left), padding method 0 (none: whole blocks
/// only), 1 (zeros) or 2 (`80` then zeros).
fn mac(key: &[u8], alg: u8, padding: u8, data: &[u8]) -> Result<[u8; 8], Code> {
    if alg == b'3' && matches!(padding, b'1' | b'2') {
        let key = key.get(..16).ok_or(Code::KEY_LENGTH)?;
        return crate::crypto::mac::retail_mac(key, data, padding - b'0').map_err(|_| Code::KEY_LENGTH);
    }
    let mut buf = Zeroizing::new(data.to_vec());
    match padding {
        b'0' if !buf.is_empty() && buf.len().is_multiple_of(8) => {}
        b'1' => {
            while buf.is_empty() || !buf.len().is_multiple_of(8) {
                buf.push(0);
            }
        }
        b'2' => {
            buf.push(0x80);
            while !buf.len().is_multiple_of(8) {
                buf.push(0);
            }
        }
        _ => return Err(Code::INVALID_INPUT),
    }
    match alg {
        b'1' => lmk::cbc(key, &[0; 8], &mut buf, true),
        b'3' => {
            let (left, right) = key.split_at_checked(8).ok_or(Code::KEY_LENGTH)?;
            let right = right.get(..8).ok_or(Code::KEY_LENGTH)?;
            let mut h = lmk::cbc(left, &[0; 8], &mut buf, true)?;
            lmk::ecb(right, &mut h, false)?;
            lmk::ecb(left, &mut h, true)?;
            Ok(h)
        }
        _ => Err(Code::INVALID_INPUT),
    }
}

/// `M6` (and `M8` with `verify`): mode flag (1N, only 0: the whole message), input format (1N), MAC size
/// (1N: 0 → 8H, 1 → 16H), MAC algorithm (1N: 1 or 3), padding method (1N: 0, 1, 2), key type (3H: 003
/// TAK, 008 ZAK), key, message length (4H, characters as sent), message, [`M8`: MAC]. Answer: the MAC,
/// or for `M8` nothing (`01` when it does not match).
pub fn mac_command(r: &mut Reader, verify: bool) -> Result<Vec<u8>, Code> {
    if r.byte()? != b'0' {
        return Err(Code::NOT_SUPPORTED);
    }
    let format = r.byte()?;
    let size = match r.byte()? {
        b'0' => 4,
        b'1' => 8,
        _ => return Err(Code::INVALID_INPUT),
    };
    let alg = r.byte()?;
    let padding = r.byte()?;
    let kt = KeyType::parse(r.take(3)?)?;
    if !matches!(kt.code(), b"003" | b"008") {
        return Err(Code::INVALID_KEY_TYPE);
    }
    let key = widen(lmk_key(r, kt, false, Code::SOURCE_PARITY)?);
    let data = message(r, format)?;
    let full = mac(&key, alg, padding, &data)?;
    let computed = hex::encode_upper(&full[..size]).into_bytes();
    if !verify {
        return Ok(computed);
    }
    let given = r.take(size * 2)?.to_ascii_uppercase();
    if lmk::ct_eq(&computed, &given) { Ok(Vec::new()) } else { Err(Code::VERIFICATION_FAILED) }
}

/// `M0` (encrypt) / `M2` (decrypt): mode flag (2N: 00 ECB, 01 CBC), input format (1N: 0 binary, 1 hex),
/// output format (1N), key type (3H: 00A ZEK, 00B DEK…), key, [IV 16H in CBC], message length (4H,
/// characters as sent), message (whole 8-byte blocks). Answer: [next IV 16H in CBC], length (4H), result.
pub fn data_command(r: &mut Reader, encrypt: bool) -> Result<Vec<u8>, Code> {
    let mode = r.take(2)?;
    let cbc = match mode {
        b"00" => false,
        b"01" => true,
        _ => return Err(Code::NOT_SUPPORTED),
    };
    let in_format = r.byte()?;
    let out_format = r.byte()?;
    if !matches!(out_format, b'0' | b'1') || !matches!(in_format, b'0' | b'1') {
        return Err(Code::INVALID_INPUT);
    }
    let kt = KeyType::parse(r.take(3)?)?;
    // An `S` key block may hold an AES key: then the block (and the IV) is 16 bytes.
    let (key, aes) = if r.peek() == Some(b'S') {
        let (key, alg) = keyblock::read_any(r, keyblock::usages_of(kt), false)?;
        match alg {
            crate::crypto::tr31::Algorithm::AES => (key, true),
            crate::crypto::tr31::Algorithm::TDES if lmk::odd_parity(&key) => (widen(key), false),
            crate::crypto::tr31::Algorithm::TDES => return Err(Code::SOURCE_PARITY),
            _ => return Err(Code::INVALID_KEY_TYPE),
        }
    } else {
        (widen(lmk_key(r, kt, false, Code::SOURCE_PARITY)?), false)
    };
    let block = if aes { 16 } else { 8 };
    let iv = match cbc {
        true => Some(r.hex(block)?),
        false => None,
    };
    let mut data = message(r, in_format)?;
    if data.is_empty() || !data.len().is_multiple_of(block) {
        return Err(Code::INVALID_INPUT);
    }
    let mut out = Vec::new();
    match (iv, aes) {
        (Some(iv), true) => {
            let next = aes_cbc(&key, &iv, &mut data, encrypt)?;
            out.extend_from_slice(hex::encode_upper(next).as_bytes());
        }
        (None, true) => return Err(Code::NOT_SUPPORTED),
        (Some(iv), false) => {
            let iv: [u8; 8] = iv.try_into().map_err(|_| Code::INVALID_INPUT)?;
            let next = lmk::cbc(&key, &iv, &mut data, encrypt)?;
            out.extend_from_slice(hex::encode_upper(next).as_bytes());
        }
        (None, false) => lmk::ecb(&key, &mut data, encrypt)?,
    }
    let body = match out_format {
        b'1' => Zeroizing::new(hex::encode_upper(&*data).into_bytes()),
        _ => data,
    };
    out.extend_from_slice(format!("{:04X}", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// AES-CBC (128, 192 or 256-bit key) over whole 16-byte blocks in place; returns the next IV (the last
/// ciphertext block).
fn aes_cbc(key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> Result<[u8; 16], Code> {
    use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
    fn run<C: BlockCipherEncrypt + BlockCipherDecrypt>(
        c: &C,
        iv: &[u8],
        data: &mut [u8],
        encrypt: bool,
    ) -> Result<[u8; 16], Code> {
        let mut chain: [u8; 16] = iv.try_into().map_err(|_| Code::INVALID_INPUT)?;
        for block in data.chunks_exact_mut(16) {
            if encrypt {
                for (b, c) in block.iter_mut().zip(chain) {
                    *b ^= c;
                }
                c.encrypt_block(block.try_into().map_err(|_| Code::INVALID_INPUT)?);
                chain.copy_from_slice(block);
            } else {
                let mut next = [0u8; 16];
                next.copy_from_slice(block);
                c.decrypt_block(block.try_into().map_err(|_| Code::INVALID_INPUT)?);
                for (b, c) in block.iter_mut().zip(chain) {
                    *b ^= c;
                }
                chain = next;
            }
        }
        Ok(chain)
    }
    match key.len() {
        16 => run(&aes::Aes128::new_from_slice(key).map_err(|_| Code::KEY_LENGTH)?, iv, data, encrypt),
        24 => run(&aes::Aes192::new_from_slice(key).map_err(|_| Code::KEY_LENGTH)?, iv, data, encrypt),
        32 => run(&aes::Aes256::new_from_slice(key).map_err(|_| Code::KEY_LENGTH)?, iv, data, encrypt),
        _ => Err(Code::KEY_LENGTH),
    }
}

/// `LQ`: generate an HMAC. Hash identifier (2N: `06` SHA-256), HMAC length (4N: bytes, 16 to 32), HMAC
/// key format (2N: `00`), HMAC key length (4N: characters of the next field), HMAC key (an `S` key
/// block of usage `M7`), `;`, data length (5N: bytes), data. Answer: HMAC length (4N), HMAC (binary).
/// `LS` (with `verify`) takes the HMAC (binary, of the stated length) after the data and answers
/// nothing, or `01` when it does not match.
pub fn hmac_command(r: &mut Reader, verify: bool) -> Result<Vec<u8>, Code> {
    use hmac::{Hmac, KeyInit, Mac};
    if r.take(2)? != b"06" {
        return Err(Code(*b"05"));
    }
    let len = r.number(4)?;
    if !(16..=32).contains(&len) {
        return Err(Code(*b"04"));
    }
    if r.take(2)? != b"00" {
        return Err(Code(*b"07"));
    }
    let key_len = r.number(4)?;
    let mut field = Reader::new(r.take(key_len)?);
    let (key, alg) = keyblock::read_any(&mut field, &[crate::crypto::tr31::KeyUsage::MAC_HMAC], false)?;
    if alg != crate::crypto::tr31::Algorithm::HMAC || !field.is_empty() {
        return Err(Code(*b"08"));
    }
    r.expect(b';')?;
    let data_len = r.number(5)?;
    let data = r.take(data_len)?;
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| Code(*b"80"))?;
    m.update(data);
    let full = m.finalize().into_bytes();
    let mac = full.get(..len).ok_or(Code::INTERNAL)?;
    if verify {
        let given = r.take(len)?;
        return if lmk::ct_eq(mac, given) { Ok(Vec::new()) } else { Err(Code::VERIFICATION_FAILED) };
    }
    let mut out = format!("{len:04}").into_bytes();
    out.extend_from_slice(mac);
    Ok(out)
}

/// `GM`: hash a block of data. Hash identifier (2N: 01 SHA-1, 05 SHA-224, 06 SHA-256, 07 SHA-384,
/// 08 SHA-512), data length (5N, bytes), data. Answer: the hash, binary.
pub fn gm(r: &mut Reader) -> Result<Vec<u8>, Code> {
    use ring::digest;
    use sha2::Digest;
    let id = r.take(2)?;
    let len = r.number(5)?;
    let data = r.take(len)?;
    let alg = match id {
        b"01" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        b"05" => return Ok(sha2::Sha224::digest(data).to_vec()),
        b"06" => &digest::SHA256,
        b"07" => &digest::SHA384,
        b"08" => &digest::SHA512,
        _ => return Err(Code::INVALID_INPUT),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}

/// `KQ`: ARQC verification and/or ARPC generation (EMV 3.1.1 style). Mode (1N: 0 verify the ARQC, 1
/// verify and generate the ARPC, 2 generate the ARPC only), scheme (1N: 0 Visa — the ICC master key is
/// the AC key, padding method 1, as Visa CVN 10; 1 Europay/Mastercard — session key of ATC ‖ 00 00 ‖
/// UN, padding method 2, as Mastercard's proprietary SKD), MK-AC (key type 109), PAN/PSN (8B: the
/// rightmost 16 digits of PAN ‖ PSN as BCD), ATC (2B), UN (4B), transaction data length (2H),
/// transaction data (binary), `;`, ARQC (8B), [modes 1 and 2: ARC (2B)]. ICC master keys by EMV
/// Option A; ARPC method 1 under the ICC master key, as pyemv's CVN 10 and CVN 16 do. Answer: [ARPC
/// (8B)]; `01` when the ARQC does not verify.
pub fn kq(r: &mut Reader) -> Result<Vec<u8>, Code> {
    use crate::crypto::emv;
    let mode = r.byte()?;
    let scheme = r.byte()?;
    if !matches!(mode, b'0' | b'1' | b'2') || !matches!(scheme, b'0' | b'1') {
        return Err(Code::NOT_SUPPORTED);
    }
    let imk = lmk_key(r, KeyType::parse(b"109")?, false, Code::SOURCE_PARITY)?;
    let pan_psn = hex::encode_upper(r.take(8)?);
    let atc = r.take(2)?;
    let un = r.take(4)?;
    let len = r.hex_number(2)?;
    let data = Zeroizing::new(r.take(len)?.to_vec());
    r.expect(b';')?;
    let arqc = r.take(8)?;
    let arc = if mode == b'0' { None } else { Some(r.take(2)?) };
    if !pan_psn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Code::INVALID_INPUT);
    }
    let (pan, psn) = pan_psn.split_at(14);
    let icc_mk = emv::icc_mk_option_a(&imk, pan, psn).map_err(map_err)?;
    let (sk, padding) = match scheme {
        b'0' => (icc_mk.clone(), 1),
        _ => {
            let mut rr = [0u8; 8];
            rr[..2].copy_from_slice(atc);
            rr[4..].copy_from_slice(un);
            (emv::session_key(&icc_mk[..], &rr).map_err(map_err)?, 2)
        }
    };
    if mode != b'2' {
        let expected = emv::ac(&sk[..], &data, padding).map_err(map_err)?;
        if !lmk::ct_eq(&expected, arqc) {
            return Err(Code::VERIFICATION_FAILED);
        }
    }
    match arc {
        Some(arc) => Ok(emv::arpc1(&icc_mk[..], arqc, arc).map_err(map_err)?.to_vec()),
        None => Ok(Vec::new()),
    }
}

/// `KW`: ARQC verification and/or ARPC generation with EMV session keys. Mode (1H: 0 verify the ARQC, 3
/// verify and generate an ARPC by method 2, 4 generate an ARPC by method 2 only), scheme ID (1N: only
/// `2` here — ICC master key by EMV Option A, AC session key by the EMV common session key derivation of
/// R = ATC ‖ 00×6, Book 2 A1.3, as Visa CVN 18 — an assignment of this simulator), MK-AC (key type
/// 109), PAN/PSN (8B: the rightmost 16 digits of PAN ‖ PSN as BCD), ATC (2B), [modes 0 and 3:
/// transaction data length (2H), transaction data (binary; the host pads it, zeros are added only to a
/// partial last block), `;`], ARQC (8B), [modes 3 and 4: CSU (4B), proprietary authentication data
/// length (1H: 0 to 8), proprietary authentication data]. Answer: [ARPC (4B)]; `01` when the ARQC fails.
pub fn kw(r: &mut Reader) -> Result<Vec<u8>, Code> {
    use crate::crypto::emv;
    let mode = r.byte()?;
    let scheme = r.byte()?;
    if !matches!(mode, b'0' | b'3' | b'4') || scheme != b'2' {
        return Err(Code::NOT_SUPPORTED);
    }
    let imk = lmk_key(r, KeyType::parse(b"109")?, false, Code::SOURCE_PARITY)?;
    let pan_psn = hex::encode_upper(r.take(8)?);
    let atc = r.take(2)?;
    let data = if mode == b'4' {
        None
    } else {
        let len = r.hex_number(2)?;
        let data = Zeroizing::new(r.take(len)?.to_vec());
        r.expect(b';')?;
        Some(data)
    };
    let arqc = r.take(8)?;
    let arpc_input = if mode == b'0' {
        None
    } else {
        let csu = r.take(4)?;
        let n = r.hex_number(1)?;
        Some((csu, r.take(n)?))
    };
    if !pan_psn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Code::INVALID_INPUT);
    }
    let (pan, psn) = pan_psn.split_at(14);
    let sk = emv::cvn18_session_key(&imk, pan, psn, atc).map_err(map_err)?;
    if let Some(data) = data {
        // Padding method 1 adds zeros only to a partial last block: the host's own padding stands.
        let expected = emv::ac(&sk[..], &data, 1).map_err(map_err)?;
        if !lmk::ct_eq(&expected, arqc) {
            return Err(Code::VERIFICATION_FAILED);
        }
    }
    match arpc_input {
        Some((csu, pad)) => Ok(emv::arpc2(&sk[..], arqc, csu, pad).map_err(map_err)?.to_vec()),
        None => Ok(Vec::new()),
    }
}

/// `9A` (this simulator's own command, not a Thales one): the EMV Option A ICC master key of a PAN and
/// PSN under an MK-AC, returned in clear for personalisation (a token's limited-use key). MK-AC (key
/// type 109), PAN (12 to 19N), `;`, PSN (2N). Answer: ICC master key (32H), check value (6H).
pub fn derive_icc_mk(r: &mut Reader) -> Result<Vec<u8>, Code> {
    use crate::crypto::emv;
    let imk = lmk_key(r, KeyType::parse(b"109")?, false, Code::SOURCE_PARITY)?;
    let pan = r.digits_until(b';', 19)?;
    let psn = r.digits(2)?;
    if pan.len() < 12 {
        return Err(Code::INVALID_INPUT);
    }
    let mk = emv::icc_mk_option_a(&imk, pan, psn).map_err(map_err)?;
    let mut out = Zeroizing::new(hex::encode_upper(&mk[..]).into_bytes());
    out.extend(kcv6(&mk[..])?);
    Ok(out.to_vec())
}

/// `G0`: translate a PIN block from a DUKPT device to a ZPK. BDK (key type 009, or an `S` key block of
/// usage `B0`), ZPK (TDES or AES, as in `CC`), KSN descriptor (3H, not interpreted), KSN, then as
/// [`translate_fields`] (no maximum PIN length). A TDES BDK is ANSI X9.24-1 TDES DUKPT: KSN 20H, PIN key
/// the transaction key's PIN variant, source format `01`/`47`. An AES BDK (a key block of algorithm
/// `A`) is ANSI X9.24-3-2017 AES DUKPT: KSN 24H (IKID 16H ‖ counter 8H), PIN key the AES-128 working
/// key of usage PIN (`1000`), source format `48`. Answer: PIN length (2N), PIN block, destination format.
pub fn g0(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    use crate::crypto::{dukpt_aes, dukpt_tdes, tr31::Algorithm};
    let bdk_type = KeyType::parse(b"009")?;
    let (bdk, aes) = if r.peek() == Some(b'S') {
        match keyblock::read_any(r, keyblock::usages_of(bdk_type), false)? {
            (k, Algorithm::AES) => (k, true),
            (k, Algorithm::TDES) if lmk::odd_parity(&k) => (k, false),
            (_, Algorithm::TDES) => return Err(Code::SOURCE_PARITY),
            _ => return Err(Code::KEY_LENGTH),
        }
    } else {
        (lmk_key(r, bdk_type, false, Code::SOURCE_PARITY)?, false)
    };
    let zpk = PinKey::read(r, KeyType::ZPK, Code::DESTINATION_PARITY)?;
    let descriptor = r.take(3)?;
    if !descriptor.iter().all(u8::is_ascii_hexdigit) {
        return Err(Code::INVALID_INPUT);
    }
    let pin_key = if aes {
        let ksn = r.hex(dukpt_aes::KSN_LEN)?;
        let key = dukpt_aes::working_key(&bdk, &ksn, dukpt_aes::Usage::Pin).map_err(map_err)?;
        PinKey { key: Zeroizing::new(key.to_vec()), aes: true }
    } else {
        let ksn = r.hex(10)?;
        let txn = dukpt_tdes::transaction_key(&bdk, &ksn).map_err(map_err)?;
        PinKey { key: Zeroizing::new(dukpt_tdes::pin_key(&txn).to_vec()), aes: false }
    };
    translate_fields(r, &pin_key, &zpk, None, rng)
}

/// `FA`: translate a ZPK from ZMK to LMK encryption. ZMK under the LMK, ZPK under the ZMK, [`;` key
/// scheme ZMK (1A), key scheme LMK (1A), check value type (1N: 0 → 16H, 1 → 6H)]. Answer: ZPK under
/// the LMK (scheme `U` unless named), check value (16H unless type 1). An even-parity ZPK fails `01`.
pub fn fa(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let zmk = widen(lmk_key(r, KeyType::ZMK, false, Code::SOURCE_PARITY)?);
    let f = read_key(r, true, false)?;
    let (scheme, short_kcv) = if r.eat(b';') {
        r.byte()?; // the ZMK-side scheme is the tag of the ZPK field already read
        let scheme = LmkScheme::from_flag(r.byte()?)?;
        let short = match r.byte()? {
            b'0' => false,
            b'1' => true,
            _ => return Err(Code::INVALID_INPUT),
        };
        (scheme, short)
    } else {
        (LmkScheme::Variant(if f.scheme == Scheme::Single { Scheme::Single } else { Scheme::U }), false)
    };
    let key = lmk::decrypt_under_zmk(&zmk, f.scheme, &f.bytes)?;
    if scheme.key_len() != key.len() {
        return Err(Code::INVALID_KEY_SCHEME);
    }
    if !lmk::odd_parity(&key) {
        return Err(Code::VERIFICATION_FAILED);
    }
    let mut out = scheme.encode(KeyType::ZPK, None, &key, rng)?;
    let kcv = lmk::check_value(&key)?;
    out.extend_from_slice(hex::encode_upper(if short_kcv { &kcv[..3] } else { &kcv[..] }).as_bytes());
    Ok(out)
}

/// `HC`: generate a TMK, TPK or PVK. Current key (key type 002) under the LMK, [`;` key scheme under the
/// current key (1A), key scheme LMK (1A)]. Answer: the new key under the current key, the new key under
/// the LMK (both `U` unless named).
pub fn hc(r: &mut Reader, rng: &dyn SecureRandom) -> Result<Vec<u8>, Code> {
    let current = widen(lmk_key(r, KeyType::TPK, false, Code::SOURCE_PARITY)?);
    let (under_current, under_lmk) = if r.eat(b';') {
        (Scheme::from_flag(r.byte()?, true)?, LmkScheme::from_flag(r.byte()?)?)
    } else {
        (Scheme::U, LmkScheme::Variant(Scheme::U))
    };
    if under_current.key_len() != under_lmk.key_len() {
        return Err(Code::INVALID_KEY_SCHEME);
    }
    let key = random_key(rng, under_lmk.key_len())?;
    let mut out = out_key(under_current, &lmk::encrypt_under_zmk(&current, under_current, &key)?);
    out.extend(under_lmk.encode(KeyType::TPK, None, &key, rng)?);
    Ok(out)
}
