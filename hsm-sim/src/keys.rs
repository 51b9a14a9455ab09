//! How keys are named, what they may be used for, and how a caller refers to one.
//!
//! A stored key carries the attributes of an ANSI X9.143 (TR-31) key block header: usage, algorithm,
//! mode of use and exportability. Every operation states what it does with a key ([`Use`]) and the
//! HSM refuses a key whose usage or mode does not allow it, so a PIN key never computes a MAC and a
//! verify-only key never generates.

use serde::{Deserialize, Serialize};

use crate::crypto::tr31;
use crate::error::HsmError;
use crate::secret::{Bytes, SecretBytes};

/// What a key is for, with its TR-31 usage code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsage {
    /// `K0` key-encryption key: wraps and unwraps other keys.
    Kek,
    /// `K1` key block protection key: protects TR-31 key blocks.
    Kbpk,
    /// `D0` symmetric data encryption (AES-GCM, FF1).
    DataEncryption,
    /// `M7` HMAC-SHA256.
    Hmac,
    /// `E0` EMV issuer master key for application cryptograms.
    EmvImkAc,
    /// `P0` PIN encryption.
    PinEncryption,
    /// `C0` card verification key (CVV, CVV2, iCVV).
    Cvk,
    /// `B0` DUKPT base derivation key.
    Bdk,
}

/// The algorithm a key belongs to, with its TR-31 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// `A`
    Aes,
    /// `T`
    Tdes,
    /// `H`
    Hmac,
}

/// What an operation does with a key; checked against the key's TR-31 mode of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Encrypt,
    Decrypt,
    Generate,
    Verify,
    Derive,
}

impl KeyUsage {
    pub const ALL: [KeyUsage; 8] = [
        KeyUsage::Kek,
        KeyUsage::Kbpk,
        KeyUsage::DataEncryption,
        KeyUsage::Hmac,
        KeyUsage::EmvImkAc,
        KeyUsage::PinEncryption,
        KeyUsage::Cvk,
        KeyUsage::Bdk,
    ];

    pub fn tr31(self) -> tr31::KeyUsage {
        match self {
            KeyUsage::Kek => tr31::KeyUsage::KEK,
            KeyUsage::Kbpk => tr31::KeyUsage::KBPK,
            KeyUsage::DataEncryption => tr31::KeyUsage::DATA_ENCRYPTION,
            KeyUsage::Hmac => tr31::KeyUsage::MAC_HMAC,
            KeyUsage::EmvImkAc => tr31::KeyUsage::EMV_MK_AC,
            KeyUsage::PinEncryption => tr31::KeyUsage::PIN_ENCRYPTION,
            KeyUsage::Cvk => tr31::KeyUsage::CVK,
            KeyUsage::Bdk => tr31::KeyUsage::BDK,
        }
    }

    pub fn from_tr31(u: tr31::KeyUsage) -> Option<KeyUsage> {
        KeyUsage::ALL.into_iter().find(|k| k.tr31() == u)
    }

    /// The algorithm a key of this usage gets when none is named.
    pub fn default_algorithm(self) -> Algorithm {
        match self {
            KeyUsage::Kek | KeyUsage::Kbpk | KeyUsage::DataEncryption => Algorithm::Aes,
            KeyUsage::Hmac => Algorithm::Hmac,
            KeyUsage::EmvImkAc | KeyUsage::PinEncryption | KeyUsage::Cvk | KeyUsage::Bdk => Algorithm::Tdes,
        }
    }

    /// The algorithms a key of this usage may have.
    pub fn allows(self, alg: Algorithm) -> bool {
        match self {
            KeyUsage::Kek | KeyUsage::Kbpk | KeyUsage::DataEncryption => alg == Algorithm::Aes,
            KeyUsage::Hmac => alg == Algorithm::Hmac,
            KeyUsage::EmvImkAc | KeyUsage::Cvk => alg == Algorithm::Tdes,
            KeyUsage::PinEncryption | KeyUsage::Bdk => matches!(alg, Algorithm::Tdes | Algorithm::Aes),
        }
    }

    /// The mode of use a generated key of this usage gets when none is named.
    pub fn default_mode(self) -> tr31::ModeOfUse {
        match self {
            KeyUsage::Kek | KeyUsage::Kbpk | KeyUsage::DataEncryption | KeyUsage::PinEncryption => {
                tr31::ModeOfUse::ENC_DEC
            }
            KeyUsage::Hmac | KeyUsage::Cvk => tr31::ModeOfUse::GEN_VER,
            KeyUsage::EmvImkAc | KeyUsage::Bdk => tr31::ModeOfUse::DERIVE,
        }
    }
}

impl Algorithm {
    pub fn tr31(self) -> tr31::Algorithm {
        match self {
            Algorithm::Aes => tr31::Algorithm::AES,
            Algorithm::Tdes => tr31::Algorithm::TDES,
            Algorithm::Hmac => tr31::Algorithm::HMAC,
        }
    }

    pub fn from_tr31(a: tr31::Algorithm) -> Option<Algorithm> {
        [Algorithm::Aes, Algorithm::Tdes, Algorithm::Hmac].into_iter().find(|x| x.tr31() == a)
    }

    pub fn allowed_lengths(self) -> &'static [usize] {
        match self {
            Algorithm::Aes => &[16, 24, 32],
            Algorithm::Tdes => &[16, 24],
            Algorithm::Hmac => &[32, 64],
        }
    }

    pub fn generated_length(self) -> usize {
        match self {
            Algorithm::Aes | Algorithm::Hmac => 32,
            Algorithm::Tdes => 16,
        }
    }
}

/// Whether a TR-31 mode of use permits `u`.
pub fn mode_allows(mode: tr31::ModeOfUse, u: Use) -> bool {
    use tr31::ModeOfUse as M;
    if mode == M::ANY {
        return true;
    }
    match u {
        Use::Encrypt => mode == M::ENC_DEC || mode == M::ENC_ONLY,
        Use::Decrypt => mode == M::ENC_DEC || mode == M::DEC_ONLY,
        Use::Generate => mode == M::GEN_VER || mode == M::GEN_ONLY,
        Use::Verify => mode == M::GEN_VER || mode == M::VER_ONLY,
        Use::Derive => mode == M::DERIVE,
    }
}

/// A stored key's full set of attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    pub usage: KeyUsage,
    pub algorithm: Algorithm,
    pub mode: tr31::ModeOfUse,
    pub exportable: bool,
}

impl Attributes {
    pub fn new(usage: KeyUsage) -> Self {
        Attributes { usage, algorithm: usage.default_algorithm(), mode: usage.default_mode(), exportable: false }
    }

    pub fn check_length(&self, len: usize) -> Result<(), HsmError> {
        if !self.usage.allows(self.algorithm) {
            return Err(HsmError::key(format!("a {:?} key cannot be {:?}", self.usage, self.algorithm)));
        }
        if !self.algorithm.allowed_lengths().contains(&len) {
            return Err(HsmError::key(format!("a {:?} key cannot be {len} bytes", self.algorithm)));
        }
        Ok(())
    }
}

/// A stored key: its label and version. Versions start at 1 and only grow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId {
    pub label: String,
    pub version: u32,
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/v{}", self.label, self.version)
    }
}

/// How a request names the key it wants used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyRef {
    /// A key in the HSM's store; the newest version when `version` is absent.
    Stored {
        label: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
    },
    /// A data-encryption key that lives outside the HSM wrapped (RFC 3394) under a stored KEK. Such a
    /// key can only ever be used for AES-GCM.
    Wrapped { kek: KeyId, blob: Bytes },
    /// A clear key supplied by the caller: conformance vectors and test keys only. The caller already
    /// knows it, so whatever is derived from it may be returned in clear too.
    Clear { key: SecretBytes },
}

impl KeyRef {
    pub fn stored(label: impl Into<String>) -> Self {
        KeyRef::Stored { label: label.into(), version: None }
    }
    pub fn stored_version(label: impl Into<String>, version: u32) -> Self {
        KeyRef::Stored { label: label.into(), version: Some(version) }
    }
    pub fn clear(key: &[u8]) -> Self {
        KeyRef::Clear { key: SecretBytes::from_slice(key) }
    }
    pub fn is_clear(&self) -> bool {
        matches!(self, KeyRef::Clear { .. })
    }
}

/// Public facts about a stored key; never its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: KeyId,
    pub usage: KeyUsage,
    pub algorithm: Algorithm,
    /// TR-31 mode of use (`B`, `C`, `X`, …).
    pub mode: String,
    pub exportable: bool,
    pub length: usize,
    /// Key check value: first 3 bytes of AES-CMAC (AES and HMAC keys) or TDES-ECB (TDES keys) over zeros.
    pub kcv: String,
    /// True for keys imported at run time that the key store file does not keep.
    pub volatile: bool,
}
