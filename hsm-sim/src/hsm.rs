//! The HSM: the key table and its persistence, and how a request's [`KeyRef`] becomes key material
//! once its usage and mode of use are checked. The operations themselves are in `ops.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::crypto::{aead::GcmKey, kcv, tr31, wrap};
use crate::error::HsmError;
use crate::keys::{Algorithm, Attributes, KeyId, KeyInfo, KeyRef, KeyUsage, Use, mode_allows};
use crate::keystore::{KeyStoreFile, StoredKeyRecord};
use crate::secret::{Bytes, SecretBytes};

/// A stored key with its material in clear (inside the HSM only).
pub(crate) struct Entry {
    pub info: KeyInfo,
    pub attrs: Attributes,
    pub material: SecretBytes,
    /// The ready AES-GCM key schedule, for AES data-encryption keys.
    pub gcm: Option<GcmKey>,
}

/// Unwrapped data keys by the KEK and blob they came from.
type WrappedCache = HashMap<(KeyId, Vec<u8>), Arc<GcmKey>>;

/// Most data keys the cache of unwrapped data keys holds before it is cleared.
const WRAPPED_CACHE_MAX: usize = 1024;

/// The simulated HSM. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Hsm {
    lmk: Zeroizing<Vec<u8>>,
    keys: RwLock<BTreeMap<String, Vec<Arc<Entry>>>>,
    /// Unwrapped data keys, so a hot data key is unwrapped once.
    wrapped: RwLock<WrappedCache>,
    path: Option<PathBuf>,
    pub(crate) rng: SystemRandom,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm").field("path", &self.path).finish_non_exhaustive()
    }
}

fn poisoned<T>(e: std::sync::PoisonError<T>) -> T {
    // The tables are only ever updated by whole-value inserts, so a panic elsewhere cannot leave
    // them half-written: the data behind a poisoned lock is still consistent.
    e.into_inner()
}

/// Key material for one operation: borrowed from the request (clear test key) or from the store.
pub(crate) enum Material<'a> {
    Clear(&'a [u8]),
    Stored(Arc<Entry>),
}

impl Material<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Material::Clear(k) => k,
            Material::Stored(e) => e.material.expose(),
        }
    }
    pub fn is_clear(&self) -> bool {
        matches!(self, Material::Clear(_))
    }
}

impl Hsm {
    /// An HSM with a random master key and no file: keys last as long as the value.
    pub fn ephemeral() -> Result<Self, HsmError> {
        let rng = SystemRandom::new();
        let lmk = random(&rng, 32)?;
        Ok(Self::with_lmk(lmk, None, rng))
    }

    /// Opens the development key store at `path`, creating it (with a fresh master key in clear)
    /// when absent. Returns the HSM and whether this call created the store. A sealed key store is
    /// refused: it opens with [`Hsm::open_sealed`].
    pub fn open(path: &Path) -> Result<(Self, bool), HsmError> {
        let rng = SystemRandom::new();
        let mut created = false;
        if !path.exists() {
            let lmk = random(&rng, 32)?;
            created = KeyStoreFile::new(SecretBytes::new(lmk.to_vec())).create(path)?;
        }
        let file = KeyStoreFile::read(path)?;
        let Some(lmk) = &file.lmk else {
            return Err(HsmError::auth(format!(
                "key store {} is sealed: it opens with its custodians' shares",
                path.display()
            )));
        };
        let hsm = Self::with_lmk(Zeroizing::new(lmk.expose().to_vec()), Some(path.to_path_buf()), rng);
        hsm.load(&file)?;
        Ok((hsm, created))
    }

    /// Creates a sealed key store at `path` (refusing when one is there): a fresh master key, sealed
    /// under a key-encryption key split into `custodians` shares of which `threshold` open it. Returns
    /// the shares, one per custodian; they are not kept anywhere.
    pub fn create_sealed(path: &Path, threshold: u8, custodians: u8) -> Result<Vec<Zeroizing<String>>, HsmError> {
        let lmk = random(&SystemRandom::new(), 32)?;
        let ceremony = crate::seal::ceremony(&lmk, threshold, custodians)?;
        if !KeyStoreFile::sealed(ceremony.seal).create(path)? {
            return Err(HsmError::key(format!("key store {} already exists", path.display())));
        }
        Ok(ceremony.shares)
    }

    /// Opens the sealed key store at `path` with custodian shares (text, as the ceremony gave them).
    /// `Ok(None)` when fewer distinct shares than the threshold were given.
    pub fn open_sealed(path: &Path, shares: &[&str]) -> Result<Option<Self>, HsmError> {
        let file = KeyStoreFile::read(path)?;
        let Some(seal) = &file.seal else {
            return Err(HsmError::format(format!("key store {} is not sealed", path.display())));
        };
        let parsed = shares.iter().map(|s| crate::seal::parse_share(seal, s)).collect::<Result<Vec<_>, _>>()?;
        match crate::seal::open(seal, &parsed)? {
            crate::seal::Opened::NeedMore { .. } => Ok(None),
            crate::seal::Opened::Lmk(lmk) => {
                let hsm = Self::with_lmk(lmk, Some(path.to_path_buf()), SystemRandom::new());
                hsm.load(&file)?;
                Ok(Some(hsm))
            }
        }
    }

    fn with_lmk(lmk: Zeroizing<Vec<u8>>, path: Option<PathBuf>, rng: SystemRandom) -> Self {
        Hsm { lmk, keys: RwLock::new(BTreeMap::new()), wrapped: RwLock::new(HashMap::new()), path, rng }
    }

    /// Brings memory in step with the key store file, which other processes sharing it may have
    /// changed: versions added there are loaded, stored versions destroyed there are dropped.
    fn refresh(&self) -> Result<(), HsmError> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = KeyStoreFile::read(path)?;
        self.load(&file)?;
        let mut keys = self.keys.write().unwrap_or_else(poisoned);
        for (label, list) in keys.iter_mut() {
            list.retain(|e| {
                e.info.volatile || file.keys.iter().any(|r| &r.label == label && r.version == e.info.id.version)
            });
        }
        keys.retain(|_, list| !list.is_empty());
        Ok(())
    }

    /// Loads every record of `file` not already in memory.
    fn load(&self, file: &KeyStoreFile) -> Result<(), HsmError> {
        for rec in &file.keys {
            if self.entry_in_memory(&rec.label, Some(rec.version)).is_ok() {
                continue;
            }
            let material = wrap::unwrap(&self.lmk, &rec.wrapped.0).map_err(|e| {
                HsmError::new(e.kind, format!("key store record {}/v{}: {}", rec.label, rec.version, e.message))
            })?;
            let mode = tr31::ModeOfUse::new(&rec.mode)?;
            let attrs = Attributes { usage: rec.usage, algorithm: rec.algorithm, mode, exportable: rec.exportable };
            let entry = make_entry(&rec.label, rec.version, attrs, SecretBytes::new(material.to_vec()), false)?;
            if entry.info.kcv != rec.kcv {
                return Err(HsmError::auth(format!(
                    "key store record {}/v{}: check value mismatch",
                    rec.label, rec.version
                )));
            }
            self.insert(entry);
        }
        Ok(())
    }

    /// The stored entry `label` (newest version when `version` is None). A version this process has
    /// not seen may have been added to the key store file by another process sharing it (a rotation
    /// run from the command line): the file is read again once before the answer is "no such key".
    pub(crate) fn entry(&self, label: &str, version: Option<u32>) -> Result<Arc<Entry>, HsmError> {
        match self.entry_in_memory(label, version) {
            Err(e) if version.is_some() && self.path.is_some() => {
                self.refresh()?;
                self.entry_in_memory(label, version).map_err(|_| e)
            }
            r => r,
        }
    }

    fn entry_in_memory(&self, label: &str, version: Option<u32>) -> Result<Arc<Entry>, HsmError> {
        let keys = self.keys.read().unwrap_or_else(poisoned);
        let list = keys.get(label).ok_or_else(|| HsmError::key(format!("no key {label}")))?;
        let found = match version {
            None => list.last(),
            Some(v) => list.iter().find(|e| e.info.id.version == v),
        };
        found.cloned().ok_or_else(|| HsmError::key(format!("no key {label} version {version:?}")))
    }

    /// Destroys version `version` of `label` in memory and in the key store file; returns the versions
    /// left. The newest version stays: it is the one in use.
    pub(crate) fn destroy(&self, label: &str, version: u32) -> Result<Vec<KeyInfo>, HsmError> {
        self.refresh()?;
        let newest = self.entry(label, None)?.info.id.version;
        if version >= newest {
            return Err(HsmError::key(format!("key {label} version {version} is the newest: it cannot be destroyed")));
        }
        if let Some(path) = &self.path {
            let mut file = KeyStoreFile::read(path)?;
            let before = file.keys.len();
            file.keys.retain(|r| !(r.label == label && r.version == version));
            if file.keys.len() != before {
                file.replace(path)?;
            }
        }
        {
            let mut keys = self.keys.write().unwrap_or_else(poisoned);
            if let Some(list) = keys.get_mut(label) {
                // The entry's material is zeroized when its last user drops the Arc.
                list.retain(|e| e.info.id.version != version);
            }
        }
        self.key_versions(label)
    }

    /// Every version of `label`, as the key store file has them now.
    pub(crate) fn key_versions(&self, label: &str) -> Result<Vec<KeyInfo>, HsmError> {
        self.refresh()?;
        let keys = self.keys.read().unwrap_or_else(poisoned);
        let list = keys.get(label).ok_or_else(|| HsmError::key(format!("no key {label}")))?;
        Ok(list.iter().map(|e| e.info.clone()).collect())
    }

    /// The material `key` names, after checking that a stored key's usage and mode allow `u`.
    /// A clear key is the caller's own test key: nothing to check.
    pub(crate) fn material<'a>(&self, key: &'a KeyRef, usage: KeyUsage, u: Use) -> Result<Material<'a>, HsmError> {
        match key {
            KeyRef::Clear { key } => Ok(Material::Clear(key.expose())),
            KeyRef::Stored { label, version } => {
                let e = self.entry(label, *version)?;
                if e.attrs.usage != usage {
                    return Err(HsmError::key(format!(
                        "key {} is for {:?}, not {:?}",
                        e.info.id, e.attrs.usage, usage
                    )));
                }
                if !mode_allows(e.attrs.mode, u) {
                    return Err(HsmError::key(format!(
                        "key {} (mode {}) may not be used to {u:?}",
                        e.info.id, e.attrs.mode
                    )));
                }
                Ok(Material::Stored(e))
            }
            KeyRef::Wrapped { .. } => Err(HsmError::key("a wrapped data key serves only AES-GCM")),
        }
    }

    /// Runs `f` with the AES-GCM key `key` names.
    pub(crate) fn with_gcm<T>(
        &self,
        key: &KeyRef,
        u: Use,
        f: impl FnOnce(&GcmKey) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        match key {
            KeyRef::Clear { key } => f(&GcmKey::new(key.expose())?),
            KeyRef::Stored { .. } => match self.material(key, KeyUsage::DataEncryption, u)? {
                Material::Stored(e) => f(e.gcm.as_ref().ok_or_else(|| HsmError::key("not an AES data key"))?),
                Material::Clear(k) => f(&GcmKey::new(k)?),
            },
            KeyRef::Wrapped { kek, blob } => {
                let cache_key = (kek.clone(), blob.0.clone());
                let cached = self.wrapped.read().unwrap_or_else(poisoned).get(&cache_key).cloned();
                let gcm = match cached {
                    Some(g) => g,
                    None => {
                        let kek_ref = KeyRef::stored_version(&kek.label, kek.version);
                        let kek_key = self.material(&kek_ref, KeyUsage::Kek, Use::Decrypt)?;
                        let dek = wrap::unwrap(kek_key.bytes(), &blob.0)?;
                        let g = Arc::new(GcmKey::new(&dek)?);
                        let mut cache = self.wrapped.write().unwrap_or_else(poisoned);
                        if cache.len() >= WRAPPED_CACHE_MAX {
                            cache.clear();
                        }
                        cache.insert(cache_key, g.clone());
                        g
                    }
                };
                f(&gcm)
            }
        }
    }

    pub(crate) fn generate(&self, label: &str, attrs: Attributes) -> Result<KeyInfo, HsmError> {
        let material = SecretBytes::new(random(&self.rng, attrs.algorithm.generated_length())?.to_vec());
        self.add(label, attrs, material, false)
    }

    pub(crate) fn import_clear(&self, label: &str, usage: KeyUsage, key: SecretBytes) -> Result<KeyInfo, HsmError> {
        if let Ok(e) = self.entry(label, None)
            && e.attrs.usage == usage
            && bool::from(subtle::ConstantTimeEq::ct_eq(e.material.expose(), key.expose()))
        {
            return Ok(e.info.clone());
        }
        self.add(label, Attributes::new(usage), key, true)
    }

    /// Adds a new version of `label`; persists it unless `volatile`.
    pub(crate) fn add(
        &self,
        label: &str,
        attrs: Attributes,
        material: SecretBytes,
        volatile: bool,
    ) -> Result<KeyInfo, HsmError> {
        if label.is_empty() || label.len() > 64 {
            return Err(HsmError::format("key label must be 1 to 64 characters"));
        }
        if let Ok(last) = self.entry(label, None)
            && last.attrs.usage != attrs.usage
        {
            return Err(HsmError::key(format!("key {label} exists with another usage")));
        }
        match (&self.path, volatile) {
            (Some(path), false) => {
                // Re-read the file so keys another process added are kept, then append.
                let mut file = KeyStoreFile::read(path)?;
                self.load(&file)?;
                let version = file.keys.iter().filter(|r| r.label == label).map(|r| r.version).max().unwrap_or(0) + 1;
                let entry = make_entry(label, version, attrs, material, false)?;
                file.keys.push(StoredKeyRecord {
                    label: label.to_string(),
                    version,
                    usage: attrs.usage,
                    algorithm: attrs.algorithm,
                    mode: attrs.mode.as_str().to_string(),
                    exportable: attrs.exportable,
                    kcv: entry.info.kcv.clone(),
                    wrapped: Bytes(wrap::wrap(&self.lmk, entry.material.expose())?),
                });
                file.replace(path)?;
                Ok(self.insert(entry))
            }
            _ => {
                let version = self.entry(label, None).map(|e| e.info.id.version).unwrap_or(0) + 1;
                Ok(self.insert(make_entry(label, version, attrs, material, volatile)?))
            }
        }
    }

    fn insert(&self, entry: Entry) -> KeyInfo {
        let info = entry.info.clone();
        let mut keys = self.keys.write().unwrap_or_else(poisoned);
        let list = keys.entry(info.id.label.clone()).or_default();
        list.push(Arc::new(entry));
        list.sort_by_key(|e| e.info.id.version);
        info
    }

    pub(crate) fn random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        random(&self.rng, len)
    }
}

fn make_entry(
    label: &str,
    version: u32,
    attrs: Attributes,
    material: SecretBytes,
    volatile: bool,
) -> Result<Entry, HsmError> {
    attrs.check_length(material.len())?;
    let kcv = match attrs.algorithm {
        Algorithm::Tdes => kcv::tdes(material.expose())?,
        Algorithm::Aes => kcv::aes(material.expose())?,
        // An HMAC key has no cipher of its own: check it with AES-CMAC under its first 32 bytes.
        Algorithm::Hmac => kcv::aes(&material.expose()[..32])?,
    };
    let gcm = match (attrs.usage, attrs.algorithm) {
        (KeyUsage::DataEncryption, Algorithm::Aes) => GcmKey::new(material.expose()).ok(),
        _ => None,
    };
    let info = KeyInfo {
        id: KeyId { label: label.to_string(), version },
        usage: attrs.usage,
        algorithm: attrs.algorithm,
        mode: attrs.mode.as_str().to_string(),
        exportable: attrs.exportable,
        length: material.len(),
        kcv,
        volatile,
    };
    Ok(Entry { info, attrs, material, gcm })
}

fn random(rng: &SystemRandom, len: usize) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    let mut buf = Zeroizing::new(vec![0u8; len]);
    rng.fill(&mut buf).map_err(|_| HsmError::internal("random source failed"))?;
    Ok(buf)
}
