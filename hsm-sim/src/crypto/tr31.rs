//! TR-31 / ANSI X9.143 key blocks: the only form in which keys leave the HSM (docs/hsm-and-vectors.md
//! "The HSM simulator").
//!
//! - Header: ANSI X9.143-2021 §6.2 table 1 — version, 4-digit block length, key usage, algorithm, mode of
//!   use, key version number, exportability, number of optional blocks, reserved, then the optional blocks
//!   (2-character ID, 2-hex-digit length or `00` + length-of-length + extended length, printable data).
//! - Version D (AES key block protection key): key derivation binding method, TR-31:2018 §5.3.2.3 (table 2).
//!   KBEK and KBAK are CMAC(KBPK, counter ‖ usage ‖ 00 ‖ algorithm ‖ bit length) blocks; the MAC is the
//!   16-byte CMAC under the KBAK of header ‖ clear key data, and the key data is AES-CBC-encrypted under
//!   the KBEK with that MAC as IV. Clear key data = 2-byte key length in bits ‖ key ‖ random padding.
//! - Version B (TDES key block protection key): the same construction with TDES-CMAC and TDES-CBC,
//!   TR-31:2018 §5.3.2.1 (table 1); 8-byte MAC.
//! - Versions A and C (variant binding) are deprecated by X9.143 and not supported: they are a format error.
//!
//! Checked against the published examples of TR-31:2018 Annex A.7 and X9.143-2021 §8 and against psec
//! (see `vectors/tr31_*.json`).

use std::fmt;

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{
    Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit,
};
use cmac::{Cmac, Mac};
use des::{TdesEde2, TdesEde3};
use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::HsmError;

/// Length of the fixed part of the header.
const FIXED_HEADER_LEN: usize = 16;
/// The 4-digit length field caps a key block at this many characters.
const MAX_BLOCK_LEN: usize = 9999;
/// The ID of the padding block, which wrap adds and parse drops.
const PAD_BLOCK_ID: [u8; 2] = *b"PB";

/// Key block version ID (header byte 0), which fixes how the block is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// TDES key variant binding (deprecated; parsed, never unwrapped).
    A,
    /// TDES key derivation binding.
    B,
    /// TDES key variant binding (deprecated; parsed, never unwrapped).
    C,
    /// AES key derivation binding.
    D,
}

impl Version {
    fn from_byte(b: u8) -> Result<Self, HsmError> {
        match b {
            b'A' => Ok(Version::A),
            b'B' => Ok(Version::B),
            b'C' => Ok(Version::C),
            b'D' => Ok(Version::D),
            _ => Err(HsmError::format("unknown key block version ID")),
        }
    }

    pub fn as_char(self) -> char {
        match self {
            Version::A => 'A',
            Version::B => 'B',
            Version::C => 'C',
            Version::D => 'D',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::A => "A",
            Version::B => "B",
            Version::C => "C",
            Version::D => "D",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Defines a header code: a fixed number of ASCII letters or digits. Codes outside the X9.143 tables
/// (numeric ones are reserved for proprietary use) are kept as they are, so a header always round-trips.
macro_rules! header_code {
    ($(#[$meta:meta])* $name:ident, $len:literal, $what:literal { $($(#[$cmeta:meta])* $konst:ident = $val:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            $($(#[$cmeta])* pub const $konst: Self = Self(*$val);)*

            /// Accepts exactly the code's length of ASCII letters or digits.
            pub fn new(code: &str) -> Result<Self, HsmError> {
                Self::from_bytes(code.as_bytes())
            }

            fn from_bytes(code: &[u8]) -> Result<Self, HsmError> {
                let code: [u8; $len] = code
                    .try_into()
                    .map_err(|_| HsmError::format(concat!($what, " must be ", stringify!($len), " characters")))?;
                if !code.iter().all(u8::is_ascii_alphanumeric) {
                    return Err(HsmError::format(concat!($what, " must be ASCII letters or digits")));
                }
                Ok(Self(code))
            }

            pub fn as_str(&self) -> &str {
                // Only ASCII alphanumerics get in, so this is always valid UTF-8.
                std::str::from_utf8(&self.0).unwrap_or_default()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }
    };
}

header_code! {
    /// Key usage (header bytes 5-6), from the X9.143 key usage table.
    KeyUsage, 2, "key usage" {
        /// `B0` DUKPT base derivation key.
        BDK = b"B0",
        /// `B1` initial DUKPT key.
        INITIAL_DUKPT_KEY = b"B1",
        /// `B2` base key variant key.
        BASE_KEY_VARIANT = b"B2",
        /// `C0` card verification key (CVV/CSC).
        CVK = b"C0",
        /// `D0` symmetric data encryption key.
        DATA_ENCRYPTION = b"D0",
        /// `D1` asymmetric data encryption key.
        ASYMMETRIC_DATA_ENCRYPTION = b"D1",
        /// `D2` data encryption key for decimalization tables.
        DECIMALIZATION_TABLE = b"D2",
        /// `E0` EMV issuer master key: application cryptograms.
        EMV_MK_AC = b"E0",
        /// `E1` EMV issuer master key: secure messaging for confidentiality.
        EMV_MK_SMC = b"E1",
        /// `E2` EMV issuer master key: secure messaging for integrity.
        EMV_MK_SMI = b"E2",
        /// `E3` EMV issuer master key: data authentication code.
        EMV_MK_DAC = b"E3",
        /// `E4` EMV issuer master key: dynamic numbers.
        EMV_MK_DN = b"E4",
        /// `E5` EMV issuer master key: card personalization.
        EMV_MK_PERSO = b"E5",
        /// `E6` EMV issuer master key: other.
        EMV_MK_OTHER = b"E6",
        /// `I0` initialization vector.
        IV = b"I0",
        /// `K0` key encryption or wrapping key.
        KEK = b"K0",
        /// `K1` TR-31 key block protection key.
        KBPK = b"K1",
        /// `M0` ISO 16609 MAC algorithm 1 (TDES).
        MAC_ISO16609 = b"M0",
        /// `M1` ISO 9797-1 MAC algorithm 1.
        MAC_ISO9797_1 = b"M1",
        /// `M3` ISO 9797-1 MAC algorithm 3 (retail MAC).
        MAC_ISO9797_3 = b"M3",
        /// `M6` ISO 9797-1:2011 MAC algorithm 5 (CMAC).
        MAC_CMAC = b"M6",
        /// `M7` HMAC.
        MAC_HMAC = b"M7",
        /// `P0` PIN encryption key.
        PIN_ENCRYPTION = b"P0",
        /// `V1` PIN verification, IBM 3624.
        PIN_VERIFICATION_IBM3624 = b"V1",
        /// `V2` PIN verification, Visa PVV.
        PIN_VERIFICATION_PVV = b"V2",
    }
}

header_code! {
    /// Algorithm the key may be used with (header byte 7).
    Algorithm, 1, "algorithm" {
        /// `A` AES.
        AES = b"A",
        /// `D` single DES (legacy).
        DES = b"D",
        /// `E` elliptic curve.
        EC = b"E",
        /// `H` HMAC (hash named in an `HM` optional block).
        HMAC = b"H",
        /// `R` RSA.
        RSA = b"R",
        /// `S` DSA.
        DSA = b"S",
        /// `T` triple DES.
        TDES = b"T",
    }
}

header_code! {
    /// Mode of use (header byte 8).
    ModeOfUse, 1, "mode of use" {
        /// `B` encrypt and decrypt / wrap and unwrap.
        ENC_DEC = b"B",
        /// `C` generate and verify (MAC, CVV…).
        GEN_VER = b"C",
        /// `D` decrypt / unwrap only.
        DEC_ONLY = b"D",
        /// `E` encrypt / wrap only.
        ENC_ONLY = b"E",
        /// `G` generate only.
        GEN_ONLY = b"G",
        /// `N` no restrictions beyond the key usage.
        ANY = b"N",
        /// `S` signature only.
        SIGN_ONLY = b"S",
        /// `T` sign and decrypt.
        SIGN_DEC = b"T",
        /// `V` verify only.
        VER_ONLY = b"V",
        /// `X` derive other keys.
        DERIVE = b"X",
        /// `Y` create key variants.
        VARIANT = b"Y",
    }
}

header_code! {
    /// Key version number (header bytes 9-10); `00` means unused, a leading `c` marks a key component.
    KeyVersion, 2, "key version number" {
        /// `00` key versioning not used.
        UNUSED = b"00",
    }
}

header_code! {
    /// Exportability (header byte 11).
    Exportability, 1, "exportability" {
        /// `E` exportable under a trusted key.
        TRUSTED = b"E",
        /// `N` not exportable.
        NONE = b"N",
        /// `S` sensitive: exportable under an untrusted key.
        SENSITIVE = b"S",
    }
}

/// One optional header block. Its data is clear text covered by the MAC, never key material.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OptionalBlock {
    id: [u8; 2],
    data: String,
}

impl OptionalBlock {
    /// `id` is two ASCII letters or digits (not `PB`, which wrap adds itself); `data` is printable ASCII.
    pub fn new(id: &str, data: &str) -> Result<Self, HsmError> {
        let id: [u8; 2] =
            id.as_bytes().try_into().map_err(|_| HsmError::format("optional block ID must be 2 characters"))?;
        if id == PAD_BLOCK_ID {
            return Err(HsmError::format("the PB padding block is added by wrap, not given"));
        }
        Self::checked(id, data.as_bytes())
    }

    fn checked(id: [u8; 2], data: &[u8]) -> Result<Self, HsmError> {
        if !id.iter().all(u8::is_ascii_alphanumeric) {
            return Err(HsmError::format("optional block ID must be ASCII letters or digits"));
        }
        if !data.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(HsmError::format("optional block data must be printable ASCII"));
        }
        let data =
            String::from_utf8(data.to_vec()).map_err(|_| HsmError::format("optional block data must be ASCII"))?;
        Ok(OptionalBlock { id, data })
    }

    pub fn id(&self) -> &str {
        std::str::from_utf8(&self.id).unwrap_or_default()
    }

    pub fn data(&self) -> &str {
        &self.data
    }
}

impl fmt::Debug for OptionalBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OptionalBlock({}: {:?})", self.id(), self.data)
    }
}

/// A key block header. The length, block count and reserved fields are derived, not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    pub usage: KeyUsage,
    pub algorithm: Algorithm,
    pub mode: ModeOfUse,
    pub key_version: KeyVersion,
    pub exportability: Exportability,
    /// Optional blocks in header order, without the `PB` padding block.
    pub blocks: Vec<OptionalBlock>,
}

impl Header {
    pub fn new(
        version: Version,
        usage: KeyUsage,
        algorithm: Algorithm,
        mode: ModeOfUse,
        key_version: KeyVersion,
        exportability: Exportability,
    ) -> Self {
        Header { version, usage, algorithm, mode, key_version, exportability, blocks: Vec::new() }
    }

    /// The data of the first optional block with this ID.
    pub fn block(&self, id: &str) -> Option<&str> {
        self.blocks.iter().find(|b| b.id() == id).map(OptionalBlock::data)
    }

    /// Parses the header at the start of `text` (a whole key block, or a header alone) and returns it with
    /// its length in characters. Total: any input gives a header or a `format` error, never a panic.
    /// The length field must be four digits but is not compared with anything here; [`unwrap`] does that.
    pub fn parse(text: &str) -> Result<(Header, usize), HsmError> {
        let b = text.as_bytes();
        let fixed = b
            .get(..FIXED_HEADER_LEN)
            .ok_or_else(|| HsmError::format("key block header is shorter than 16 characters"))?;
        if !fixed.iter().all(u8::is_ascii_alphanumeric) {
            return Err(HsmError::format("key block header must be ASCII letters or digits"));
        }
        let version = Version::from_byte(fixed[0])?;
        decimal(&fixed[1..5]).ok_or_else(|| HsmError::format("key block length must be 4 digits"))?;
        let count = decimal(&fixed[12..14]).ok_or_else(|| HsmError::format("optional block count must be 2 digits"))?;
        let mut header = Header {
            version,
            usage: KeyUsage::from_bytes(&fixed[5..7])?,
            algorithm: Algorithm::from_bytes(&fixed[7..8])?,
            mode: ModeOfUse::from_bytes(&fixed[8..9])?,
            key_version: KeyVersion::from_bytes(&fixed[9..11])?,
            exportability: Exportability::from_bytes(&fixed[11..12])?,
            blocks: Vec::new(),
        };
        let mut pos = FIXED_HEADER_LEN;
        for _ in 0..count {
            let (block, next) = parse_optional_block(b, pos)?;
            pos = next;
            if block.id != PAD_BLOCK_ID {
                header.blocks.push(block);
            }
        }
        Ok((header, pos))
    }

    /// Serializes the header for a key block whose key data and MAC take `body_len` characters, adding a
    /// `PB` block so the header is a whole number of cipher blocks (X9.143 §6.2).
    fn encode(&self, block_size: usize, body_len: usize) -> Result<String, HsmError> {
        let mut blocks = String::new();
        for block in &self.blocks {
            if block.id == PAD_BLOCK_ID {
                return Err(HsmError::format("the PB padding block is added by wrap, not given"));
            }
            blocks.push_str(block.id());
            let short = block.data.len() + 4;
            if short <= 0xff {
                blocks.push_str(&format!("{short:02X}"));
            } else {
                let extended = block.data.len() + 10;
                if extended > 0xffff {
                    return Err(HsmError::range("optional block is too long"));
                }
                blocks.push_str(&format!("0002{extended:04X}"));
            }
            blocks.push_str(&block.data);
        }
        let mut count = self.blocks.len();
        if !blocks.len().is_multiple_of(block_size) {
            let pad = (block_size - (blocks.len() + 4) % block_size) % block_size;
            blocks.push_str(&format!("PB{:02X}", pad + 4));
            blocks.extend(std::iter::repeat_n('0', pad));
            count += 1;
        }
        if count > 99 {
            return Err(HsmError::range("a key block holds at most 99 optional blocks"));
        }
        let total = FIXED_HEADER_LEN + blocks.len() + body_len;
        if total > MAX_BLOCK_LEN {
            return Err(HsmError::range("key block would exceed 9999 characters"));
        }
        Ok(format!(
            "{}{total:04}{}{}{}{}{}{count:02}00{blocks}",
            self.version, self.usage, self.algorithm, self.mode, self.key_version, self.exportability
        ))
    }
}

/// Parses one optional block at `pos`; returns it and the position after it.
fn parse_optional_block(b: &[u8], pos: usize) -> Result<(OptionalBlock, usize), HsmError> {
    let truncated = || HsmError::format("optional block is truncated");
    let id = b.get(pos..pos + 2).ok_or_else(truncated)?;
    let id = [id[0], id[1]];
    let short = hex_value(b.get(pos + 2..pos + 4).ok_or_else(truncated)?)
        .ok_or_else(|| HsmError::format("optional block length must be 2 hex digits"))?;
    let (data_start, total) = if short == 0 {
        // Extended length: 2 hex digits giving the length's size in bytes, then the length itself.
        let len_len = hex_value(b.get(pos + 4..pos + 6).ok_or_else(truncated)?)
            .ok_or_else(|| HsmError::format("optional block length-of-length must be 2 hex digits"))?;
        if len_len == 0 {
            return Err(HsmError::format("optional block length-of-length must not be 0"));
        }
        let digits = 2 * len_len;
        let total = hex_value(b.get(pos + 6..pos + 6 + digits).ok_or_else(truncated)?)
            .ok_or_else(|| HsmError::format("optional block extended length is malformed"))?;
        (pos + 6 + digits, total)
    } else {
        (pos + 4, short)
    };
    let end = pos.checked_add(total).ok_or_else(truncated)?;
    if end < data_start {
        return Err(HsmError::format("optional block length does not cover its ID and length"));
    }
    let data = b.get(data_start..end).ok_or_else(truncated)?;
    Ok((OptionalBlock::checked(id, data)?, end))
}

/// The value of ASCII decimal digits, or `None` if any is not a digit.
fn decimal(digits: &[u8]) -> Option<usize> {
    digits.iter().try_fold(0usize, |acc, &d| {
        let d = (d as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(d as usize)
    })
}

/// The value of ASCII hex digits (either case), or `None` if malformed or too large.
fn hex_value(digits: &[u8]) -> Option<usize> {
    digits.iter().try_fold(0usize, |acc, &d| {
        let d = (d as char).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(d as usize)
    })
}

/// The cipher family that protects a key block version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Tdes,
    Aes,
}

impl Scheme {
    fn of(version: Version) -> Result<Self, HsmError> {
        match version {
            Version::B => Ok(Scheme::Tdes),
            Version::D => Ok(Scheme::Aes),
            Version::A | Version::C => {
                Err(HsmError::format("key block versions A and C (variant binding) are not supported"))
            }
        }
    }

    /// Cipher block size, which is also the MAC length.
    fn block_size(self) -> usize {
        match self {
            Scheme::Tdes => 8,
            Scheme::Aes => 16,
        }
    }

    /// The derivation's algorithm indicator and key length in bits (TR-31:2018 tables 1 and 2).
    fn derivation_params(self, kbpk_len: usize) -> Result<(u16, u16), HsmError> {
        match (self, kbpk_len) {
            (Scheme::Tdes, 16) => Ok((0, 128)),
            (Scheme::Tdes, 24) => Ok((1, 192)),
            (Scheme::Aes, 16) => Ok((2, 128)),
            (Scheme::Aes, 24) => Ok((3, 192)),
            (Scheme::Aes, 32) => Ok((4, 256)),
            (Scheme::Tdes, _) => Err(HsmError::key("a version B KBPK must be a 16- or 24-byte TDES key")),
            (Scheme::Aes, _) => Err(HsmError::key("a version D KBPK must be a 16-, 24- or 32-byte AES key")),
        }
    }
}

/// CMAC of the concatenated `parts` under `key`.
fn cmac(scheme: Scheme, key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| HsmError::key("bad CMAC key length"))?;
        for part in parts {
            mac.update(part);
        }
        Ok(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
    }
    match (scheme, key.len()) {
        (Scheme::Tdes, 16) => run::<Cmac<TdesEde2>>(key, parts),
        (Scheme::Tdes, 24) => run::<Cmac<TdesEde3>>(key, parts),
        (Scheme::Aes, 16) => run::<Cmac<Aes128>>(key, parts),
        (Scheme::Aes, 24) => run::<Cmac<Aes192>>(key, parts),
        (Scheme::Aes, 32) => run::<Cmac<Aes256>>(key, parts),
        _ => Err(HsmError::key("bad CMAC key length")),
    }
}

/// CBC over whole blocks in place, encrypting or decrypting.
fn cbc(scheme: Scheme, key: &[u8], iv: &[u8], buf: &mut [u8], encrypt: bool) -> Result<(), HsmError> {
    fn run<C: BlockCipherEncrypt + BlockCipherDecrypt + KeyInit>(
        key: &[u8],
        iv: &[u8],
        buf: &mut [u8],
        encrypt: bool,
    ) -> Result<(), HsmError> {
        let (blocks, rest) = Array::<u8, C::BlockSize>::slice_as_chunks_mut(buf);
        if !rest.is_empty() {
            return Err(HsmError::format("key data is not a whole number of cipher blocks"));
        }
        let bad = |_| HsmError::key("bad key block cipher key or IV length");
        if encrypt {
            cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(bad)?.encrypt_blocks(blocks);
        } else {
            cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(bad)?.decrypt_blocks(blocks);
        }
        Ok(())
    }
    match (scheme, key.len()) {
        (Scheme::Tdes, 16) => run::<TdesEde2>(key, iv, buf, encrypt),
        (Scheme::Tdes, 24) => run::<TdesEde3>(key, iv, buf, encrypt),
        (Scheme::Aes, 16) => run::<Aes128>(key, iv, buf, encrypt),
        (Scheme::Aes, 24) => run::<Aes192>(key, iv, buf, encrypt),
        (Scheme::Aes, 32) => run::<Aes256>(key, iv, buf, encrypt),
        _ => Err(HsmError::key("bad key block cipher key length")),
    }
}

/// A derived key, wiped on drop.
type SecretKey = Zeroizing<Vec<u8>>;

/// Derives (KBEK, KBAK) from the KBPK: CMAC(KBPK, counter ‖ usage ‖ 00 ‖ algorithm ‖ length) for
/// counter = 1, 2, … until the KBPK's length is covered (AES-192 keeps the left 8 bytes of the second block).
fn derive(scheme: Scheme, kbpk: &[u8]) -> Result<(SecretKey, SecretKey), HsmError> {
    let (algorithm, bits) = scheme.derivation_params(kbpk.len())?;
    let derive_one = |usage: u16| -> Result<Zeroizing<Vec<u8>>, HsmError> {
        // Capacity for every block up front, so no reallocation leaves key bytes behind.
        let mut out = Zeroizing::new(Vec::with_capacity(kbpk.len() + scheme.block_size()));
        let mut counter = 1u8;
        while out.len() < kbpk.len() {
            let [u0, u1] = usage.to_be_bytes();
            let [a0, a1] = algorithm.to_be_bytes();
            let [l0, l1] = bits.to_be_bytes();
            out.extend_from_slice(&cmac(scheme, kbpk, &[&[counter, u0, u1, 0, a0, a1, l0, l1]])?);
            counter += 1;
        }
        out.truncate(kbpk.len());
        Ok(out)
    };
    Ok((derive_one(0x0000)?, derive_one(0x0001)?))
}

/// Wraps `key` under `kbpk` into a key block with `header` (versions B and D), padding the key data only
/// to the cipher block size. The padding comes from `rng`.
pub fn wrap(kbpk: &[u8], header: &Header, key: &[u8], rng: &dyn SecureRandom) -> Result<String, HsmError> {
    wrap_masked(kbpk, header, key, key.len(), rng)
}

/// As [`wrap`], but pads the key to at least `masked_len` bytes first, so that keys of different lengths
/// give key blocks of the same length (X9.143 key length obfuscation).
pub fn wrap_masked(
    kbpk: &[u8],
    header: &Header,
    key: &[u8],
    masked_len: usize,
    rng: &dyn SecureRandom,
) -> Result<String, HsmError> {
    let scheme = Scheme::of(header.version)?;
    scheme.derivation_params(kbpk.len())?;
    if key.is_empty() {
        return Err(HsmError::key("the key to wrap is empty"));
    }
    let bits = u16::try_from(key.len() * 8).map_err(|_| HsmError::range("the key to wrap is too long"))?;
    let bs = scheme.block_size();
    let unpadded = 2 + masked_len.max(key.len());
    let data_len = unpadded.div_ceil(bs) * bs;
    let header_text = header.encode(bs, 2 * data_len + 2 * bs)?;

    let mut data = Zeroizing::new(Vec::with_capacity(data_len));
    data.extend_from_slice(&bits.to_be_bytes());
    data.extend_from_slice(key);
    let pad_start = data.len();
    data.resize(data_len, 0);
    if data_len > pad_start {
        rng.fill(&mut data[pad_start..]).map_err(|_| HsmError::internal("random generator failed"))?;
    }

    let (kbek, kbak) = derive(scheme, kbpk)?;
    let mac = cmac(scheme, &kbak, &[header_text.as_bytes(), &data])?;
    cbc(scheme, &kbek, &mac, &mut data, true)?;

    let mut out = header_text;
    out.push_str(&hex::encode_upper(&*data));
    out.push_str(&hex::encode_upper(&*mac));
    Ok(out)
}

/// Checks and opens a key block (versions B and D); returns its header and the clear key.
///
/// Errors: `format` for a malformed header, a length field that is not the block's length, key data or
/// MAC that are not hex or not whole cipher blocks, an unsupported version (A, C), or authenticated key
/// data whose length field does not fit; `key` for a KBPK of the wrong length for the version; `auth`
/// when the MAC does not verify (tampered block or wrong KBPK). The MAC is checked before the clear key
/// data is looked at.
pub fn unwrap(kbpk: &[u8], block: &str) -> Result<(Header, Zeroizing<Vec<u8>>), HsmError> {
    let (header, header_len) = Header::parse(block)?;
    let scheme = Scheme::of(header.version)?;
    scheme.derivation_params(kbpk.len())?;

    let bytes = block.as_bytes();
    let declared =
        bytes.get(1..5).and_then(decimal).ok_or_else(|| HsmError::format("key block length must be 4 digits"))?;
    if declared != bytes.len() {
        return Err(HsmError::format("key block length field does not match the block's length"));
    }
    let bs = scheme.block_size();
    let body = bytes.get(header_len..).unwrap_or_default();
    if body.len() < 4 * bs || !(body.len() - 2 * bs).is_multiple_of(2 * bs) {
        return Err(HsmError::format("key data must be one or more whole cipher blocks followed by the MAC"));
    }
    let (data_hex, mac_hex) = body.split_at(body.len() - 2 * bs);
    let mut data = Zeroizing::new(hex::decode(data_hex).map_err(|_| HsmError::format("key data must be hex"))?);
    let mac = hex::decode(mac_hex).map_err(|_| HsmError::format("key block MAC must be hex"))?;

    let (kbek, kbak) = derive(scheme, kbpk)?;
    cbc(scheme, &kbek, &mac, &mut data, false)?;
    let expected = cmac(scheme, &kbak, &[&bytes[..header_len], &data])?;
    if !bool::from(expected.as_slice().ct_eq(&mac)) {
        return Err(HsmError::auth("key block MAC does not verify"));
    }

    let bits = match data.get(..2) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return Err(HsmError::format("key data is too short")),
    };
    if bits == 0 || !bits.is_multiple_of(8) {
        return Err(HsmError::format("key length in the key block is not a whole, non-zero number of bytes"));
    }
    let key = data
        .get(2..2 + bits / 8)
        .ok_or_else(|| HsmError::format("key length in the key block exceeds its key data"))?;
    Ok((header, Zeroizing::new(key.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[allow(deprecated)]
    use ring::test::rand::FixedSliceRandom;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// TR-31:2018 Annex A.7.4: AES-256 KBPK, AES PIN key, padding `1C2965473CE206BB855B01533782`.
    const A74_KBPK: &str = "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6";
    const A74_KEY: &str = "3F419E1CB7079442AA37474C2EFBF8B8";
    const A74_BLOCK: &str = "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34";

    #[test]
    fn tr31_2018_a74_unwrap() {
        let (hdr, key) = unwrap(&h(A74_KBPK), A74_BLOCK).unwrap();
        assert_eq!(hex::encode_upper(&*key), A74_KEY);
        assert_eq!(hdr.version, Version::D);
        assert_eq!(hdr.usage, KeyUsage::PIN_ENCRYPTION);
        assert_eq!(hdr.algorithm, Algorithm::AES);
        assert_eq!(hdr.mode, ModeOfUse::ENC_ONLY);
        assert_eq!(hdr.key_version, KeyVersion::UNUSED);
        assert_eq!(hdr.exportability, Exportability::TRUSTED);
        assert!(hdr.blocks.is_empty());
    }

    #[test]
    #[allow(deprecated)]
    fn tr31_2018_a74_wrap_reproduces_published_block() {
        let header = Header::new(
            Version::D,
            KeyUsage::PIN_ENCRYPTION,
            Algorithm::AES,
            ModeOfUse::ENC_ONLY,
            KeyVersion::UNUSED,
            Exportability::TRUSTED,
        );
        let pad = h("1C2965473CE206BB855B01533782");
        let rng = FixedSliceRandom { bytes: &pad };
        assert_eq!(wrap(&h(A74_KBPK), &header, &h(A74_KEY), &rng).unwrap(), A74_BLOCK);
    }

    /// ANSI X9.143-2021 §8.1: the same key and KBPK, key length masked to 32 bytes.
    #[test]
    fn x9143_8_1_unwrap() {
        let block = "D0144P0AE00E00002C77FA3F4A553BED6E88AE5C172A4166E3D4ACA8E2AC71C158A476FAC12C13C3829DE55D3AB54C48F4C4FEF7AC75E90FC47F1B77E7B19A73ED46E64410082557";
        let (_, key) = unwrap(&h(A74_KBPK), block).unwrap();
        assert_eq!(hex::encode_upper(&*key), A74_KEY);
    }

    /// TR-31:2018 A.7.2.2 and A.7.3.2 (version B, the second with a `KS` optional block).
    #[test]
    fn tr31_2018_version_b_unwrap() {
        let (_, key) = unwrap(
            &h("DD7515F2BFC17F85CE48F3CA25CB21F6"),
            "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E",
        )
        .unwrap();
        assert_eq!(hex::encode_upper(&*key), "3F419E1CB7079442AA37474C2EFBF8B8");
        let (hdr, key) = unwrap(
            &h("1D22BF32387C600AD97F9B97A51311AC"),
            "B0104B0TX12S0100KS1800604B120F9292800000BB68BE8680A400D9191AD4ECE45B6E6C0D21C4738A52190E248719E24B433627",
        )
        .unwrap();
        assert_eq!(hex::encode_upper(&*key), "E8BC63E5479455E26577F715D587FE68");
        assert_eq!(hdr.usage, KeyUsage::BDK);
        assert_eq!(hdr.key_version.as_str(), "12");
        assert_eq!(hdr.exportability, Exportability::SENSITIVE);
        assert_eq!(hdr.block("KS"), Some("00604B120F9292800000"));
    }

    #[test]
    fn round_trip_every_kbpk_length() {
        let rng = ring::rand::SystemRandom::new();
        for (version, kbpk_len) in
            [(Version::D, 16), (Version::D, 24), (Version::D, 32), (Version::B, 16), (Version::B, 24)]
        {
            for key_len in [8, 16, 24, 32, 64] {
                let kbpk: Vec<u8> = (0..kbpk_len as u8).collect();
                let key: Vec<u8> = (0..key_len as u8).map(|b| b ^ 0xa5).collect();
                let mut header = Header::new(
                    version,
                    KeyUsage::KEK,
                    Algorithm::AES,
                    ModeOfUse::ENC_DEC,
                    KeyVersion::UNUSED,
                    Exportability::NONE,
                );
                header.blocks.push(OptionalBlock::new("KS", "ABC").unwrap());
                header.blocks.push(OptionalBlock::new("LB", &"x".repeat(300)).unwrap());
                for masked in [0, 48] {
                    let block = wrap_masked(&kbpk, &header, &key, masked, &rng).unwrap();
                    assert_eq!(block.len() % scheme_bs(version), 0, "{block}");
                    let (parsed, out) = unwrap(&kbpk, &block).unwrap();
                    assert_eq!(parsed, header);
                    assert_eq!(&*out, &key[..]);
                }
            }
        }
    }

    fn scheme_bs(v: Version) -> usize {
        Scheme::of(v).unwrap().block_size()
    }

    /// Every bit of the key data and the MAC, and every header field but the length and block count,
    /// is covered: changing any of them is an `auth` failure.
    #[test]
    fn any_flipped_bit_is_auth() {
        let kbpk = h(A74_KBPK);
        let (hdr_len, body) = A74_BLOCK.split_at(16);
        let raw = h(body);
        for bit in 0..raw.len() * 8 {
            let mut flipped = raw.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let block = format!("{hdr_len}{}", hex::encode_upper(&flipped));
            assert_eq!(unwrap(&kbpk, &block).unwrap_err().kind, ErrorKind::Auth, "bit {bit}");
        }
        for pos in (5..12).chain(14..16) {
            let mut block = A74_BLOCK.as_bytes().to_vec();
            block[pos] = if block[pos] == b'Z' { b'Y' } else { b'Z' };
            let block = String::from_utf8(block).unwrap();
            assert_eq!(unwrap(&kbpk, &block).unwrap_err().kind, ErrorKind::Auth, "header position {pos}");
        }
    }

    #[test]
    fn wrong_kbpk_is_auth_and_wrong_length_is_key() {
        let mut kbpk = h(A74_KBPK);
        kbpk[31] ^= 1;
        assert_eq!(unwrap(&kbpk, A74_BLOCK).unwrap_err().kind, ErrorKind::Auth);
        assert_eq!(unwrap(&kbpk[..16], A74_BLOCK).unwrap_err().kind, ErrorKind::Auth);
        for len in [0, 8, 15, 20, 33] {
            assert_eq!(unwrap(&vec![0u8; len], A74_BLOCK).unwrap_err().kind, ErrorKind::Key, "len {len}");
        }
        let b = "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E";
        assert_eq!(unwrap(&[0u8; 32], b).unwrap_err().kind, ErrorKind::Key);
        assert_eq!(unwrap(&[0u8; 8], b).unwrap_err().kind, ErrorKind::Key);
    }

    #[test]
    fn malformed_blocks_are_format() {
        let kbpk = h(A74_KBPK);
        let bad = [
            "",
            "D0112P0AE00E000",
            &A74_BLOCK[..111],
            &A74_BLOCK[..96],
            &format!("{A74_BLOCK}0"),
            &A74_BLOCK.replacen("D0112", "D0113", 1),
            &A74_BLOCK.replacen("D0112", "D01 2", 1),
            &A74_BLOCK.replacen("D0112", "E0112", 1),
            &A74_BLOCK.replacen("D0112", "A0112", 1),
            &A74_BLOCK.replacen("B826", "G826", 1),
            &A74_BLOCK.replacen("DC34", "DC3X", 1),
            "D0048P0AE00E0000B82679114F470F540165EDFBF7E250FC",
            &A74_BLOCK.replacen("P0", "P\u{e9}", 1),
        ];
        for block in bad {
            assert_eq!(unwrap(&kbpk, block).unwrap_err().kind, ErrorKind::Format, "{block:?}");
        }
    }

    /// Header cases from psec's test suite (`tests/test_tr31.py`): optional block parsing.
    #[test]
    fn header_optional_blocks() {
        let (hdr, len) = Header::parse("B0000P0TE00N0100KS1800604B120F9292800000xxxxxxxx").unwrap();
        assert_eq!((len, hdr.block("KS")), (40, Some("00604B120F9292800000")));
        let (hdr, len) = Header::parse("B0000P0TE00N0200KS1200604B120F9292PB0600").unwrap();
        assert_eq!((len, hdr.blocks.len(), hdr.block("KS")), (40, 1, Some("00604B120F9292")));
        let (hdr, len) = Header::parse(&format!("B0000P0TE00N0200KS0002010A{}PB0600", "P".repeat(256))).unwrap();
        assert_eq!((len, hdr.block("KS").map(str::len)), (288, Some(256)));
        let (hdr, len) = Header::parse("B0000P0TE00N0200KS00011600604B120F9292PB0A000000").unwrap();
        assert_eq!((len, hdr.block("KS")), (48, Some("00604B120F9292")));
        let (hdr, len) = Header::parse("B0000P0TE00N0400KS1800604B120F9292800000T104T20600PB0600").unwrap();
        assert_eq!((len, hdr.blocks.len(), hdr.block("T1"), hdr.block("T2")), (56, 3, Some(""), Some("00")));
    }

    /// psec's `test_header_block_load_exceptions` and `test_header_load_exceptions`: all malformed.
    #[test]
    fn header_errors_are_format() {
        for header in [
            "B0000P0TE00N0100",
            "B0000P0TE00N0100K",
            "B0000P0TE00N0100KS",
            "B0000P0TE00N0100KS1",
            "B0000P0TE00N0100KS1Y",
            "B0000P0TE00N0100KS02",
            "B0000P0TE00N0100KS071",
            "B0000P0TE00N0100KS00",
            "B0000P0TE00N0100KS001",
            "B0000P0TE00N0100KS001S",
            "B0000P0TE00N0100KS0000",
            "B0000P0TE00N0100KS0001",
            "B0000P0TE00N0100KS00010",
            "B0000P0TE00N0100KS00010H",
            "B0000P0TE00N0100KS000101",
            "B0000P0TE00N0100KS0001FF",
            "B0000P0TE00N0200KS07000T",
            "B0000P0TE00N0200KS0600TT",
            "B0000P0TE00N0200KS04TT05",
            "B0000P0TE00N0200KS04TT000101",
            "B0000P0TE00N0100**04",
            "B0000P0TE00N0100KS05\u{3}",
            "B0000P0TE00N0200KS04TT05\u{ff}",
            "_0000P0TE00N0000",
            "B0000",
            "B0000P0TE00N0X00",
            "B0000P0TE00N0100KSFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            "B0000P0TE00N0100KS00FF",
        ] {
            assert_eq!(Header::parse(header).unwrap_err().kind, ErrorKind::Format, "{header:?}");
        }
    }

    /// A poor man's fuzz run: prefixes and byte substitutions of real blocks never panic.
    #[test]
    fn parser_is_total() {
        let kbpk = h(A74_KBPK);
        let seeds =
            [A74_BLOCK, "B0000P0TE00N0400KS1800604B120F9292800000T104T20600PB0600", "D0000P0AE00E0100KS0002FFFF"];
        let subst = ['0', 'F', 'z', ' ', '\u{e9}', '\u{0}', '9'];
        for seed in seeds {
            for end in 0..=seed.len() {
                let _ = unwrap(&kbpk, &seed[..end]);
                let _ = Header::parse(&seed[..end]);
            }
            for (i, _) in seed.char_indices() {
                for c in subst {
                    let mut s = String::from(&seed[..i]);
                    s.push(c);
                    s.push_str(&seed[i + 1..]);
                    let _ = unwrap(&kbpk, &s);
                    let _ = Header::parse(&s);
                }
            }
        }
    }

    #[test]
    fn wrap_rejects_bad_input() {
        let rng = ring::rand::SystemRandom::new();
        let header = Header::new(
            Version::D,
            KeyUsage::KEK,
            Algorithm::AES,
            ModeOfUse::ENC_DEC,
            KeyVersion::UNUSED,
            Exportability::NONE,
        );
        assert_eq!(wrap(&[0; 16], &header, &[], &rng).unwrap_err().kind, ErrorKind::Key);
        assert_eq!(wrap(&[0; 8], &header, &[1; 16], &rng).unwrap_err().kind, ErrorKind::Key);
        assert_eq!(wrap(&[0; 16], &header, &[1; 5000], &rng).unwrap_err().kind, ErrorKind::Range);
        let mut a = header.clone();
        a.version = Version::A;
        assert_eq!(wrap(&[0; 16], &a, &[1; 16], &rng).unwrap_err().kind, ErrorKind::Format);
        assert_eq!(OptionalBlock::new("PB", "00").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(OptionalBlock::new("K*", "00").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(OptionalBlock::new("KS", "\n").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(KeyUsage::new("P").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(KeyUsage::new("P0").unwrap(), KeyUsage::PIN_ENCRYPTION);
    }

    /// Runs every `tr31.unwrap` case of `vectors/tr31*.json` against [`unwrap`].
    #[test]
    fn vector_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("tr31") && name.ends_with(".json")
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no vectors/tr31*.json");
        let mut count = 0;
        for file in files {
            let suite: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            for case in suite["cases"].as_array().unwrap() {
                let id = format!("{}:{}", file.display(), case["id"]);
                assert_eq!(case["op"], "tr31.unwrap", "{id}");
                let kbpk = h(case["in"]["kbpk"].as_str().unwrap());
                let result = unwrap(&kbpk, case["in"]["block"].as_str().unwrap());
                let out = case["out"].as_object().unwrap();
                if let Some(kind) = out.get("error") {
                    let err = result.err().unwrap_or_else(|| panic!("{id}: expected an error"));
                    assert_eq!(err.kind.as_str(), kind.as_str().unwrap(), "{id}: {}", err.message);
                } else {
                    let (hdr, key) = result.unwrap_or_else(|e| panic!("{id}: {e}"));
                    for (name, want) in out {
                        let got = match name.as_str() {
                            "key" => hex::encode_upper(&*key),
                            "version" => hdr.version.to_string(),
                            "usage" => hdr.usage.to_string(),
                            "algorithm" => hdr.algorithm.to_string(),
                            "mode" => hdr.mode.to_string(),
                            "key_version" => hdr.key_version.to_string(),
                            "exportability" => hdr.exportability.to_string(),
                            other => panic!("{id}: unexpected out key {other}"),
                        };
                        assert!(got.eq_ignore_ascii_case(want.as_str().unwrap()), "{id}: {name} {got} != {want}");
                    }
                }
                count += 1;
            }
        }
        assert!(count >= 40, "only {count} tr31 cases");
    }
}
