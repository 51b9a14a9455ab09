//! The HSM: the key table, usage enforcement, and the dispatch of [`Request`]s to the primitives.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::crypto::{aead::GcmKey, aead::IV_LEN, emv, kcv, mac, wrap};
use crate::error::HsmError;
use crate::keys::{KeyId, KeyInfo, KeyRef, KeyUsage};
use crate::keystore::{KeyStoreFile, StoredKeyRecord};
use crate::protocol::{Request, Response};
use crate::secret::{Bytes, SecretBytes};

/// A stored key with its material in clear (inside the HSM only).
struct Entry {
    info: KeyInfo,
    material: SecretBytes,
    /// The ready AES-GCM key schedule, for data-encryption keys.
    gcm: Option<GcmKey>,
}

/// Unwrapped data keys by the KEK and blob they came from.
type WrappedCache = HashMap<(KeyId, Vec<u8>), Arc<GcmKey>>;

/// Most data keys the cache of unwrapped data keys holds before it is cleared.
const WRAPPED_CACHE_MAX: usize = 1024;

/// The simulated HSM. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Hsm {
    lmk: Zeroizing<Vec<u8>>,
    keys: RwLock<BTreeMap<String, Vec<Arc<Entry>>>>,
    /// Unwrapped data keys, by the KEK and blob they came from, so a hot data key is unwrapped once.
    wrapped: RwLock<WrappedCache>,
    path: Option<PathBuf>,
    rng: SystemRandom,
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

impl Hsm {
    /// An HSM with a random master key and no file: keys last as long as the value.
    pub fn ephemeral() -> Result<Self, HsmError> {
        let rng = SystemRandom::new();
        let lmk = random(&rng, 32)?;
        Ok(Self::with_lmk(lmk, None, rng))
    }

    /// Opens the key store at `path`, creating it (with a fresh master key) when absent.
    /// Returns the HSM and whether this call created the store.
    pub fn open(path: &Path) -> Result<(Self, bool), HsmError> {
        let rng = SystemRandom::new();
        let mut created = false;
        if !path.exists() {
            let lmk = random(&rng, 32)?;
            created = KeyStoreFile::new(SecretBytes::new(lmk.to_vec())).create(path)?;
        }
        let file = KeyStoreFile::read(path)?;
        let hsm = Self::with_lmk(Zeroizing::new(file.lmk.expose().to_vec()), Some(path.to_path_buf()), rng);
        hsm.load(&file)?;
        Ok((hsm, created))
    }

    fn with_lmk(lmk: Zeroizing<Vec<u8>>, path: Option<PathBuf>, rng: SystemRandom) -> Self {
        Hsm { lmk, keys: RwLock::new(BTreeMap::new()), wrapped: RwLock::new(HashMap::new()), path, rng }
    }

    /// Loads every record of `file` not already in memory.
    fn load(&self, file: &KeyStoreFile) -> Result<(), HsmError> {
        for rec in &file.keys {
            let known = self.entry(&rec.label, Some(rec.version)).is_ok();
            if known {
                continue;
            }
            let material = wrap::unwrap(&self.lmk, &rec.wrapped.0).map_err(|e| {
                HsmError::new(e.kind, format!("key store record {}/v{}: {}", rec.label, rec.version, e.message))
            })?;
            let entry = make_entry(&rec.label, rec.version, rec.usage, SecretBytes::new(material.to_vec()), false)?;
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

    /// Runs one request.
    pub fn execute(&self, req: Request) -> Result<Response, HsmError> {
        match req {
            Request::KeyInfo { label } => {
                let keys = self.keys.read().unwrap_or_else(poisoned);
                let list = keys.get(&label).ok_or_else(|| HsmError::key(format!("no key {label}")))?;
                Ok(Response::Keys { keys: list.iter().map(|e| e.info.clone()).collect() })
            }
            Request::EnsureKey { label, usage } => match self.entry(&label, None) {
                Ok(e) if e.info.usage == usage => Ok(Response::Key { key: e.info.clone() }),
                Ok(_) => Err(HsmError::key(format!("key {label} exists with another usage"))),
                Err(_) => self.generate(&label, usage).map(|key| Response::Key { key }),
            },
            Request::GenerateKey { label, usage } => self.generate(&label, usage).map(|key| Response::Key { key }),
            Request::ImportClearKey { label, usage, key } => {
                self.import(&label, usage, key).map(|key| Response::Key { key })
            }
            Request::GenerateDataKey { kek } => {
                let kek = self.entry_for(&KeyRef::stored(kek), KeyUsage::Kek)?;
                let dek = random(&self.rng, 32)?;
                let blob = wrap::wrap(kek.material.expose(), &dek)?;
                Ok(Response::WrappedKey { kek: kek.info.id.clone(), blob: Bytes(blob) })
            }
            Request::AeadEncrypt { key, iv, aad, plaintext } => {
                let iv = match iv {
                    Some(iv) => iv.0,
                    None => random(&self.rng, IV_LEN)?.to_vec(),
                };
                let mut buf = plaintext.expose().to_vec();
                let tag = self.with_gcm(&key, |k| k.seal(&iv, &aad.0, &mut buf))?;
                Ok(Response::Sealed { iv: Bytes(iv), ciphertext: Bytes(buf), tag: Bytes(tag.to_vec()) })
            }
            Request::AeadDecrypt { key, iv, aad, ciphertext, tag } => {
                let mut buf = SecretBytes::new(ciphertext.0);
                let mut clear = buf.expose().to_vec();
                self.with_gcm(&key, |k| k.open(&iv.0, &aad.0, &mut clear, &tag.0))?;
                buf = SecretBytes::new(clear);
                Ok(Response::Opened { plaintext: buf })
            }
            Request::Hmac { key, data } => {
                let mac = match &key {
                    KeyRef::Clear { key } => mac::hmac_sha256(key.expose(), data.expose()),
                    _ => mac::hmac_sha256(self.entry_for(&key, KeyUsage::Hmac)?.material.expose(), data.expose()),
                };
                Ok(Response::Mac { mac: Bytes(mac.to_vec()) })
            }
            Request::Hkdf { ikm, salt, info, len } => {
                let okm = mac::hkdf_sha256(ikm.expose(), &salt.0, &info.0, len)?;
                Ok(Response::Derived { key: SecretBytes::new(okm) })
            }
            Request::WrapKey { kek, key } => {
                let wrapped = match &kek {
                    KeyRef::Clear { key: kek } => wrap::wrap(kek.expose(), key.expose())?,
                    _ => wrap::wrap(self.entry_for(&kek, KeyUsage::Kek)?.material.expose(), key.expose())?,
                };
                Ok(Response::Wrapped { wrapped: Bytes(wrapped) })
            }
            Request::UnwrapKey { kek, wrapped } => match &kek {
                KeyRef::Clear { key: kek } => {
                    let key = wrap::unwrap(kek.expose(), &wrapped.0)?;
                    Ok(Response::Derived { key: SecretBytes::new(key.to_vec()) })
                }
                _ => Err(HsmError::key("a key wrapped under a stored KEK is never returned in clear")),
            },
            Request::DeriveIccMk { imk, pan, psn } => {
                let mk = match &imk {
                    KeyRef::Clear { key } => emv::icc_mk_option_a(key.expose(), &pan, &psn)?,
                    _ => emv::icc_mk_option_a(self.entry_for(&imk, KeyUsage::EmvImkAc)?.material.expose(), &pan, &psn)?,
                };
                Ok(Response::Derived { key: SecretBytes::from_slice(&mk[..]) })
            }
        }
    }

    /// The stored entry `label` (newest version when `version` is None).
    fn entry(&self, label: &str, version: Option<u32>) -> Result<Arc<Entry>, HsmError> {
        let keys = self.keys.read().unwrap_or_else(poisoned);
        let list = keys.get(label).ok_or_else(|| HsmError::key(format!("no key {label}")))?;
        let found = match version {
            None => list.last(),
            Some(v) => list.iter().find(|e| e.info.id.version == v),
        };
        found.cloned().ok_or_else(|| HsmError::key(format!("no key {label} version {version:?}")))
    }

    /// Resolves a stored key reference and checks its usage.
    fn entry_for(&self, key: &KeyRef, usage: KeyUsage) -> Result<Arc<Entry>, HsmError> {
        match key {
            KeyRef::Stored { label, version } => {
                let e = self.entry(label, *version)?;
                if e.info.usage != usage {
                    return Err(HsmError::key(format!("key {} is for {:?}, not {:?}", e.info.id, e.info.usage, usage)));
                }
                Ok(e)
            }
            KeyRef::Wrapped { .. } => Err(HsmError::key("a wrapped data key serves only AES-GCM")),
            KeyRef::Clear { .. } => Err(HsmError::key("a clear key is not a stored key")),
        }
    }

    /// Runs `f` with the AES-GCM key `key` names.
    fn with_gcm<T>(&self, key: &KeyRef, f: impl FnOnce(&GcmKey) -> Result<T, HsmError>) -> Result<T, HsmError> {
        match key {
            KeyRef::Clear { key } => f(&GcmKey::new(key.expose())?),
            KeyRef::Stored { .. } => {
                let e = self.entry_for(key, KeyUsage::DataEncryption)?;
                let gcm = e.gcm.as_ref().ok_or_else(|| HsmError::internal("data key without cipher"))?;
                f(gcm)
            }
            KeyRef::Wrapped { kek, blob } => {
                let cache_key = (kek.clone(), blob.0.clone());
                let cached = self.wrapped.read().unwrap_or_else(poisoned).get(&cache_key).cloned();
                let gcm = match cached {
                    Some(g) => g,
                    None => {
                        let kek_entry =
                            self.entry_for(&KeyRef::stored_version(&kek.label, kek.version), KeyUsage::Kek)?;
                        let dek = wrap::unwrap(kek_entry.material.expose(), &blob.0)?;
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

    fn generate(&self, label: &str, usage: KeyUsage) -> Result<KeyInfo, HsmError> {
        let material = SecretBytes::new(random(&self.rng, usage.generated_length())?.to_vec());
        self.add(label, usage, material, false)
    }

    fn import(&self, label: &str, usage: KeyUsage, key: SecretBytes) -> Result<KeyInfo, HsmError> {
        if let Ok(e) = self.entry(label, None)
            && e.info.usage == usage
            && bool::from(subtle::ConstantTimeEq::ct_eq(e.material.expose(), key.expose()))
        {
            return Ok(e.info.clone());
        }
        self.add(label, usage, key, true)
    }

    /// Adds a new version of `label`; persists it unless `volatile`.
    fn add(&self, label: &str, usage: KeyUsage, material: SecretBytes, volatile: bool) -> Result<KeyInfo, HsmError> {
        if label.is_empty() || label.len() > 64 {
            return Err(HsmError::format("key label must be 1 to 64 characters"));
        }
        if let Ok(last) = self.entry(label, None)
            && last.info.usage != usage
        {
            return Err(HsmError::key(format!("key {label} exists with another usage")));
        }
        match (&self.path, volatile) {
            (Some(path), false) => {
                // Re-read the file so keys another process added are kept, then append.
                let mut file = KeyStoreFile::read(path)?;
                self.load(&file)?;
                let version = file.keys.iter().filter(|r| r.label == label).map(|r| r.version).max().unwrap_or(0) + 1;
                let entry = make_entry(label, version, usage, material, false)?;
                file.keys.push(StoredKeyRecord {
                    label: label.to_string(),
                    version,
                    usage,
                    kcv: entry.info.kcv.clone(),
                    wrapped: Bytes(wrap::wrap(&self.lmk, entry.material.expose())?),
                });
                file.replace(path)?;
                Ok(self.insert(entry))
            }
            _ => {
                let version = self.entry(label, None).map(|e| e.info.id.version).unwrap_or(0) + 1;
                Ok(self.insert(make_entry(label, version, usage, material, volatile)?))
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
}

fn make_entry(
    label: &str,
    version: u32,
    usage: KeyUsage,
    material: SecretBytes,
    volatile: bool,
) -> Result<Entry, HsmError> {
    if !usage.allowed_lengths().contains(&material.len()) {
        return Err(HsmError::key(format!("a {usage:?} key cannot be {} bytes", material.len())));
    }
    let kcv = match usage {
        KeyUsage::EmvImkAc => kcv::tdes(material.expose())?,
        _ => kcv::aes(material.expose())?,
    };
    let gcm = match usage {
        KeyUsage::DataEncryption => Some(GcmKey::new(material.expose())?),
        _ => None,
    };
    let info =
        KeyInfo { id: KeyId { label: label.to_string(), version }, usage, length: material.len(), kcv, volatile };
    Ok(Entry { info, material, gcm })
}

fn random(rng: &SystemRandom, len: usize) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    let mut buf = Zeroizing::new(vec![0u8; len]);
    rng.fill(&mut buf).map_err(|_| HsmError::internal("random source failed"))?;
    Ok(buf)
}
