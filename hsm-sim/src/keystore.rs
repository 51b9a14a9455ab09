//! The key store: the local master key (LMK) and every stored key, wrapped under the LMK, in one JSON
//! file (mode 0600), in one of two forms:
//!
//! - **development** (`hsm-sim-keystore/1`): the LMK sits in the file in clear — whoever copies the
//!   file has every key;
//! - **sealed** (`hsm-sim-keystore/2`): the LMK is in the file only sealed under a key-encryption key
//!   held as M-of-N custodian shares (`seal`); opening it takes M shares.
//!
//! Several processes may open the same file (nodes sharing a data directory); creation is atomic, so
//! they all end up with the same keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HsmError;
use crate::keys::{Algorithm, KeyUsage};
use crate::seal::Seal;
use crate::secret::{Bytes, SecretBytes};

const FORMAT: &str = "hsm-sim-keystore/1";
const SEALED_FORMAT: &str = "hsm-sim-keystore/2";
const WARNING: &str =
    "development key store of hsm-sim: the master key below is in clear; never use for production keys";
const SEALED_NOTE: &str = "sealed key store of hsm-sim: the master key opens only with the custodians' shares";

#[derive(Serialize, Deserialize)]
pub struct KeyStoreFile {
    format: String,
    warning: String,
    /// The LMK in clear (development form only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lmk: Option<SecretBytes>,
    /// The sealed LMK (sealed form only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seal: Option<Seal>,
    pub(crate) keys: Vec<StoredKeyRecord>,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredKeyRecord {
    pub label: String,
    pub version: u32,
    pub usage: KeyUsage,
    pub algorithm: Algorithm,
    /// TR-31 mode of use.
    pub mode: String,
    pub exportable: bool,
    pub kcv: String,
    /// The key wrapped (RFC 3394) under the LMK.
    pub wrapped: Bytes,
}

impl KeyStoreFile {
    pub(crate) fn new(lmk: SecretBytes) -> Self {
        KeyStoreFile { format: FORMAT.into(), warning: WARNING.into(), lmk: Some(lmk), seal: None, keys: Vec::new() }
    }

    pub(crate) fn sealed(seal: Seal) -> Self {
        KeyStoreFile {
            format: SEALED_FORMAT.into(),
            warning: SEALED_NOTE.into(),
            lmk: None,
            seal: Some(seal),
            keys: Vec::new(),
        }
    }

    /// The seal of the key store at `path`: None for a development key store.
    pub fn seal_of(path: &Path) -> Result<Option<Seal>, HsmError> {
        Ok(Self::read(path)?.seal)
    }

    pub(crate) fn read(path: &Path) -> Result<Self, HsmError> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| HsmError::internal(format!("reading key store {}: {e}", path.display())))?,
        );
        let file: KeyStoreFile = serde_json::from_str(&text)
            .map_err(|e| HsmError::format(format!("key store {} is not valid: {e}", path.display())))?;
        let form_ok = match (file.format.as_str(), &file.lmk, &file.seal) {
            (FORMAT, Some(lmk), None) => lmk.len() == 32,
            (SEALED_FORMAT, None, Some(_)) => true,
            _ => false,
        };
        if !form_ok {
            return Err(HsmError::format(format!(
                "key store {}: not a valid {FORMAT} or {SEALED_FORMAT} file",
                path.display()
            )));
        }
        Ok(file)
    }

    /// Writes `self` to `path` only if no file is there yet. Returns false when another process won.
    pub(crate) fn create(&self, path: &Path) -> Result<bool, HsmError> {
        let tmp = self.write_temp(path)?;
        let won = match std::fs::hard_link(&tmp, path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(HsmError::internal(format!("creating key store {}: {e}", path.display())));
            }
        };
        let _ = std::fs::remove_file(&tmp);
        Ok(won)
    }

    /// Replaces the file at `path` atomically.
    pub(crate) fn replace(&self, path: &Path) -> Result<(), HsmError> {
        let tmp = self.write_temp(path)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| HsmError::internal(format!("writing key store {}: {e}", path.display())))
    }

    fn write_temp(&self, path: &Path) -> Result<PathBuf, HsmError> {
        let io = |e: std::io::Error| HsmError::internal(format!("writing key store {}: {e}", path.display()));
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(io)?;
        let text =
            zeroize::Zeroizing::new(serde_json::to_vec_pretty(self).map_err(|e| HsmError::internal(e.to_string()))?);
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(tmp)
    }
}
