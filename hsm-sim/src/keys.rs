//! How keys are named, what they may be used for, and how a caller refers to one.

use serde::{Deserialize, Serialize};

use crate::secret::{Bytes, SecretBytes};

/// What a key may be used for. Every operation checks the usage of the key it is handed, so a key
/// generated for one purpose can never serve another (a PIN key never computes a MAC).
///
/// The comments give the nearest ANSI X9.143 / TR-31 key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsage {
    /// Key-encryption key: wraps and unwraps other keys (K0).
    Kek,
    /// Symmetric data encryption with AES-GCM (D0).
    DataEncryption,
    /// HMAC-SHA256 generation and verification (M7).
    Hmac,
    /// EMV issuer master key for application cryptograms (E0).
    EmvImkAc,
}

impl KeyUsage {
    /// The lengths in bytes a key of this usage may have.
    pub fn allowed_lengths(self) -> &'static [usize] {
        match self {
            KeyUsage::Kek | KeyUsage::DataEncryption => &[16, 24, 32],
            KeyUsage::Hmac => &[32],
            KeyUsage::EmvImkAc => &[16],
        }
    }

    /// The length a freshly generated key of this usage gets.
    pub fn generated_length(self) -> usize {
        match self {
            KeyUsage::Kek | KeyUsage::DataEncryption | KeyUsage::Hmac => 32,
            KeyUsage::EmvImkAc => 16,
        }
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
    /// A clear key supplied by the caller: conformance vectors and test keys only.
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
}

/// Public facts about a stored key; never its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: KeyId,
    pub usage: KeyUsage,
    pub length: usize,
    /// Key check value: first 3 bytes of AES-CMAC (AES keys) or TDES-ECB (TDES keys) over zeros.
    pub kcv: String,
    /// True for keys imported at run time that the key store file does not keep.
    pub volatile: bool,
}
