//! The operations the HSM offers, as data. The same values travel in process and over the wire.

use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, KeyInfo, KeyRef, KeyUsage};
use crate::secret::{Bytes, SecretBytes};

/// One request to the HSM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Every version of a stored key.
    KeyInfo { label: String },
    /// The newest version of a stored key, generated (version 1) if the label is new.
    EnsureKey { label: String, usage: KeyUsage },
    /// A new version of a stored key (rotation); the label's usage must not change.
    GenerateKey { label: String, usage: KeyUsage },
    /// Loads a clear key into the store for this run only (test and demo keys from configuration).
    /// Importing the same material again is a no-op; different material makes a new version.
    ImportClearKey { label: String, usage: KeyUsage, key: SecretBytes },
    /// A fresh AES-256 data key, returned only wrapped under the stored KEK `kek`.
    GenerateDataKey { kek: String },
    /// AES-GCM encryption; the HSM draws the IV when none is given.
    AeadEncrypt {
        key: KeyRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iv: Option<Bytes>,
        aad: Bytes,
        plaintext: SecretBytes,
    },
    /// AES-GCM decryption; fails with `auth` when the tag does not match.
    AeadDecrypt { key: KeyRef, iv: Bytes, aad: Bytes, ciphertext: Bytes, tag: Bytes },
    /// HMAC-SHA256.
    Hmac { key: KeyRef, data: SecretBytes },
    /// HKDF-SHA256 over caller-supplied input keying material.
    Hkdf { ikm: SecretBytes, salt: Bytes, info: Bytes, len: usize },
    /// RFC 3394 key wrap of a caller-supplied key.
    WrapKey { kek: KeyRef, key: SecretBytes },
    /// RFC 3394 key unwrap. Only a clear (test) KEK gives the key back: a key wrapped under a stored
    /// KEK never leaves in clear.
    UnwrapKey { kek: KeyRef, wrapped: Bytes },
    /// EMV ICC master key derivation (Option A) from an issuer master key. The derived key is made
    /// for export: it is what a card (or a token's limited-use key holder) is personalised with.
    DeriveIccMk { imk: KeyRef, pan: String, psn: String },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Keys { keys: Vec<KeyInfo> },
    Key { key: KeyInfo },
    WrappedKey { kek: KeyId, blob: Bytes },
    Sealed { iv: Bytes, ciphertext: Bytes, tag: Bytes },
    Opened { plaintext: SecretBytes },
    Mac { mac: Bytes },
    Derived { key: SecretBytes },
    Wrapped { wrapped: Bytes },
}

impl Response {
    /// The name of the variant, for "unexpected response" errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Keys { .. } => "keys",
            Response::Key { .. } => "key",
            Response::WrappedKey { .. } => "wrapped_key",
            Response::Sealed { .. } => "sealed",
            Response::Opened { .. } => "opened",
            Response::Mac { .. } => "mac",
            Response::Derived { .. } => "derived",
            Response::Wrapped { .. } => "wrapped",
        }
    }
}
