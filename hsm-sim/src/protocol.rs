//! The operations the HSM offers, as data. The same values travel in process and over the wire.
//!
//! Rule for outputs: key material, PINs and derived keys come back in clear only when the caller
//! supplied the key in clear (test keys, conformance vectors: the caller could compute the result
//! itself) or when the output exists to be exported (an ICC master key for personalisation, a key
//! generated exportable and exported as a TR-31 block). A stored key never leaves otherwise.

use serde::{Deserialize, Serialize};

use crate::keys::{Algorithm, KeyId, KeyInfo, KeyRef, KeyUsage};
use crate::secret::{Bytes, SecretBytes};

fn method_a() -> String {
    "A".into()
}

/// One request to the HSM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    // Key management.
    /// Every version of a stored key.
    KeyInfo {
        label: String,
    },
    /// The newest version of a stored key, generated (version 1, default attributes) if the label is new.
    EnsureKey {
        label: String,
        usage: KeyUsage,
    },
    /// A new version of a stored key (rotation); the label's usage must not change.
    GenerateKey {
        label: String,
        usage: KeyUsage,
        #[serde(default)]
        algorithm: Option<Algorithm>,
        /// TR-31 mode of use; the usage's default when absent.
        #[serde(default)]
        mode: Option<String>,
        #[serde(default)]
        exportable: bool,
    },
    /// Destroys one version of a stored key (a retired key no data depends on any more); the newest
    /// version cannot be destroyed. Destroying a version that is already gone is not an error.
    DestroyKey {
        label: String,
        version: u32,
    },
    /// Loads a clear key into the store for this run only (test and demo keys from configuration).
    /// Importing the same material again is a no-op; different material makes a new version.
    ImportClearKey {
        label: String,
        usage: KeyUsage,
        key: SecretBytes,
    },
    /// Imports a TR-31 key block protected by `kbpk`; its header sets the stored key's attributes.
    ImportKeyBlock {
        label: String,
        kbpk: KeyRef,
        block: String,
    },
    /// Exports a stored exportable key as a TR-31 version D key block under `kbpk`.
    ExportKeyBlock {
        key: KeyRef,
        kbpk: KeyRef,
    },
    /// Opens a TR-31 key block under a clear (test) KBPK and returns its key and header.
    Tr31Unwrap {
        kbpk: KeyRef,
        block: String,
    },

    // Data protection.
    /// A fresh AES-256 data key, returned only wrapped under the stored KEK `kek`.
    GenerateDataKey {
        kek: String,
    },
    /// AES-GCM encryption; the HSM draws the IV when none is given.
    AeadEncrypt {
        key: KeyRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iv: Option<Bytes>,
        aad: Bytes,
        plaintext: SecretBytes,
    },
    /// AES-GCM decryption; fails with `auth` when the tag does not match.
    AeadDecrypt {
        key: KeyRef,
        iv: Bytes,
        aad: Bytes,
        ciphertext: Bytes,
        tag: Bytes,
    },
    /// HMAC-SHA256.
    Hmac {
        key: KeyRef,
        data: SecretBytes,
    },
    /// HKDF-SHA256 over caller-supplied input keying material.
    Hkdf {
        ikm: SecretBytes,
        salt: Bytes,
        info: Bytes,
        len: usize,
    },
    /// RFC 3394 key wrap of a caller-supplied key.
    WrapKey {
        kek: KeyRef,
        key: SecretBytes,
    },
    /// RFC 3394 key unwrap; only a clear (test) KEK gives the key back.
    UnwrapKey {
        kek: KeyRef,
        wrapped: Bytes,
    },
    /// FF1 (NIST SP 800-38G) encryption of a digit string in `radix` (alphabet 0-9a-z).
    Ff1Encrypt {
        key: KeyRef,
        tweak: Bytes,
        radix: u32,
        text: SecretBytes,
    },
    /// FF1 decryption.
    Ff1Decrypt {
        key: KeyRef,
        tweak: Bytes,
        radix: u32,
        text: SecretBytes,
    },

    // EMV.
    /// ICC master key derivation, Option A or B, from an issuer master key. The derived key is made
    /// for export: it is what a card (or a token's limited-use key holder) is personalised with.
    DeriveIccMk {
        imk: KeyRef,
        pan: String,
        psn: String,
        #[serde(default = "method_a")]
        method: String,
    },
    /// EMV common session key from an ICC master key and a diversification value.
    EmvSessionKey {
        icc_mk: KeyRef,
        r: Bytes,
    },
    /// An application cryptogram: ISO 9797-1 MAC algorithm 3 with padding method 1 or 2.
    EmvAc {
        sk: KeyRef,
        data: Bytes,
        padding: u8,
    },
    /// ARPC method 1.
    EmvArpc1 {
        sk: KeyRef,
        arqc: Bytes,
        arc: Bytes,
    },
    /// ARPC method 2.
    EmvArpc2 {
        sk: KeyRef,
        arqc: Bytes,
        csu: Bytes,
        pad: Bytes,
    },
    /// Verifies an ARQC in the CVN 18 layout of the spec (IMK → ICC MK Option A → session key from
    /// the ATC → MAC algorithm 3, padding 2, over the transaction data).
    EmvVerifyArqc {
        imk: KeyRef,
        pan: String,
        psn: String,
        atc: Bytes,
        data: Bytes,
        arqc: Bytes,
    },
    /// The CVN 18 answer: ARPC method 2 over ARQC ‖ CSU ‖ pad under the same session key.
    EmvCvn18Arpc {
        imk: KeyRef,
        pan: String,
        psn: String,
        atc: Bytes,
        arqc: Bytes,
        csu: Bytes,
        pad: Bytes,
    },

    // Card verification values.
    CvvGenerate {
        cvk: KeyRef,
        pan: String,
        expiry: String,
        service_code: String,
    },
    CvvVerify {
        cvk: KeyRef,
        pan: String,
        expiry: String,
        service_code: String,
        cvv: SecretBytes,
    },

    // PIN blocks (ISO 9564-1).
    /// A clear format 0 block from a PIN and PAN.
    PinIso0Encode {
        pin: SecretBytes,
        pan: String,
    },
    /// The PIN in a clear format 0 block.
    PinIso0Decode {
        block: SecretBytes,
        pan: String,
    },
    /// The PIN in a clear format 3 block.
    PinIso3Decode {
        block: SecretBytes,
        pan: String,
    },
    /// Enciphers a PIN into a block of `format` (0, 3 or 4) under a PIN key.
    PinEncipher {
        key: KeyRef,
        format: u8,
        pin: SecretBytes,
        pan: String,
    },
    /// Deciphers a PIN block; only under a clear (test) key: a PIN never leaves the HSM in clear.
    PinDecipher {
        key: KeyRef,
        format: u8,
        block: Bytes,
        pan: String,
    },
    /// Re-enciphers a PIN block from one key and format to another without exposing the PIN.
    PinTranslate {
        block: Bytes,
        from_key: KeyRef,
        from_format: u8,
        to_key: KeyRef,
        to_format: u8,
        pan: String,
    },

    // ISO 8583 link keys: working keys kept outside the HSM as TR-31 version D key blocks under a
    // KBPK (`kbpk`, normally stored), as a payShield keeps them under its key-block LMK.
    /// A key block under `kbpk` holding a caller-supplied clear key, with the TR-31 `usage` (`M3`,
    /// `M6`, `K1`) and `algorithm` (`T`, `A`): development and test link keys from configuration.
    KeyBlockFromClear {
        kbpk: KeyRef,
        usage: String,
        algorithm: String,
        key: SecretBytes,
    },
    /// The 8-byte MAC of `data` under the MAC key in `block`: usage `M3` (TDES) is ISO/IEC 9797-1 MAC
    /// algorithm 3 with padding method 1 (ANSI X9.19), usage `M6` (AES) the leftmost 8 bytes of
    /// AES-CMAC.
    BlockMacGenerate {
        kbpk: KeyRef,
        block: String,
        data: SecretBytes,
    },
    /// Whether `mac` is the MAC [`Request::BlockMacGenerate`] gives (compared in constant time).
    BlockMacVerify {
        kbpk: KeyRef,
        block: String,
        data: SecretBytes,
        mac: Bytes,
    },
    /// A fresh working key of TR-31 `usage` and `algorithm`, returned only as key blocks: one under
    /// `kbpk` (to store) and one under the zone key in `zone_block` (a `K1` block under `kbpk`: the
    /// link's KBPK shared with the other side), to send; and its check value.
    NewWorkingKey {
        kbpk: KeyRef,
        zone_block: String,
        usage: String,
        algorithm: String,
    },

    // DUKPT.
    /// TDES DUKPT (ANSI X9.24-1) initial key from a BDK and KSN; clear only under a clear BDK.
    DukptTdesIpek {
        bdk: KeyRef,
        ksn: Bytes,
    },
    /// TDES DUKPT transaction key for the KSN's counter (before any variant).
    DukptTdesKey {
        bdk: KeyRef,
        ksn: Bytes,
    },
    /// AES DUKPT (ANSI X9.24-3) initial key from a BDK and an 8-byte initial key ID.
    DukptAesIk {
        bdk: KeyRef,
        ikid: Bytes,
    },
    /// AES DUKPT AES-128 working key for a 12-byte KSN and a usage (`pin`, `mac_gen`, `data_enc`, …).
    DukptAesKey {
        bdk: KeyRef,
        ksn: Bytes,
        usage: String,
    },
}

impl Request {
    /// The operation's name, as in the `op` field of the wire format (for metrics and logs).
    pub fn op(&self) -> &'static str {
        match self {
            Request::KeyInfo { .. } => "key_info",
            Request::EnsureKey { .. } => "ensure_key",
            Request::GenerateKey { .. } => "generate_key",
            Request::DestroyKey { .. } => "destroy_key",
            Request::ImportClearKey { .. } => "import_clear_key",
            Request::ImportKeyBlock { .. } => "import_key_block",
            Request::ExportKeyBlock { .. } => "export_key_block",
            Request::Tr31Unwrap { .. } => "tr31_unwrap",
            Request::GenerateDataKey { .. } => "generate_data_key",
            Request::AeadEncrypt { .. } => "aead_encrypt",
            Request::AeadDecrypt { .. } => "aead_decrypt",
            Request::Hmac { .. } => "hmac",
            Request::Hkdf { .. } => "hkdf",
            Request::WrapKey { .. } => "wrap_key",
            Request::UnwrapKey { .. } => "unwrap_key",
            Request::Ff1Encrypt { .. } => "ff1_encrypt",
            Request::Ff1Decrypt { .. } => "ff1_decrypt",
            Request::DeriveIccMk { .. } => "derive_icc_mk",
            Request::EmvSessionKey { .. } => "emv_session_key",
            Request::EmvAc { .. } => "emv_ac",
            Request::EmvArpc1 { .. } => "emv_arpc1",
            Request::EmvArpc2 { .. } => "emv_arpc2",
            Request::EmvVerifyArqc { .. } => "emv_verify_arqc",
            Request::EmvCvn18Arpc { .. } => "emv_cvn18_arpc",
            Request::CvvGenerate { .. } => "cvv_generate",
            Request::CvvVerify { .. } => "cvv_verify",
            Request::PinIso0Encode { .. } => "pin_iso0_encode",
            Request::PinIso0Decode { .. } => "pin_iso0_decode",
            Request::PinIso3Decode { .. } => "pin_iso3_decode",
            Request::PinEncipher { .. } => "pin_encipher",
            Request::PinDecipher { .. } => "pin_decipher",
            Request::PinTranslate { .. } => "pin_translate",
            Request::KeyBlockFromClear { .. } => "key_block_from_clear",
            Request::BlockMacGenerate { .. } => "block_mac_generate",
            Request::BlockMacVerify { .. } => "block_mac_verify",
            Request::NewWorkingKey { .. } => "new_working_key",
            Request::DukptTdesIpek { .. } => "dukpt_tdes_ipek",
            Request::DukptTdesKey { .. } => "dukpt_tdes_key",
            Request::DukptAesIk { .. } => "dukpt_aes_ik",
            Request::DukptAesKey { .. } => "dukpt_aes_key",
        }
    }
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Keys {
        keys: Vec<KeyInfo>,
    },
    Key {
        key: KeyInfo,
    },
    WrappedKey {
        kek: KeyId,
        blob: Bytes,
    },
    Sealed {
        iv: Bytes,
        ciphertext: Bytes,
        tag: Bytes,
    },
    Opened {
        plaintext: SecretBytes,
    },
    Mac {
        mac: Bytes,
    },
    /// Key material, returned under the rule in the module docs.
    Derived {
        key: SecretBytes,
    },
    Wrapped {
        wrapped: Bytes,
    },
    Valid {
        valid: bool,
    },
    /// An application cryptogram or ARPC.
    Cryptogram {
        value: Bytes,
    },
    /// Text that may be secret: a CVV, a PIN, an FF1 result.
    Text {
        text: SecretBytes,
    },
    PinBlock {
        block: Bytes,
    },
    KeyBlock {
        block: String,
    },
    /// A link key block and its key's check value (see [`Request::KeyBlockFromClear`]).
    LinkKey {
        block: String,
        kcv: String,
    },
    /// A new working key as key blocks (see [`Request::NewWorkingKey`]).
    WorkingKey {
        block: String,
        zone_block: String,
        kcv: String,
    },
    KeyBlockContents {
        key: SecretBytes,
        version: String,
        usage: String,
        algorithm: String,
        mode: String,
        key_version: String,
        exportability: String,
    },
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
            Response::Valid { .. } => "valid",
            Response::Cryptogram { .. } => "cryptogram",
            Response::Text { .. } => "text",
            Response::PinBlock { .. } => "pin_block",
            Response::KeyBlock { .. } => "key_block",
            Response::KeyBlockContents { .. } => "key_block_contents",
            Response::WorkingKey { .. } => "working_key",
            Response::LinkKey { .. } => "link_key",
        }
    }
}
