//! The vault's keys. Four live in the HSM: the key-encryption key (KEK) that wraps data keys, the
//! fingerprint key, the PAR key and the payments' duplicate-hash key. Data keys (DEKs) are drawn by the HSM, stored in the database only
//! wrapped under the KEK, and numbered by version; each version names the fingerprint-key version it
//! pairs with. The newest pair seals and fingerprints new cards; older pairs only open and match cards
//! not yet moved onto the newest (`rotation.rs`).
//!
//! The PAR key never rotates: a PAR must stay the same for the life of the card account whoever
//! registers it, and it is derived again at each registration.

use std::collections::BTreeMap;
use std::sync::RwLock;

use hsm_sim::{KeyRef, KeyUsage};

use crate::hsm::Hsm;
use crate::store::{DataKeyRow, Store};
use crate::{Error, Result};

pub const KEK_LABEL: &str = "tsp.vault.kek";
pub const FINGERPRINT_LABEL: &str = "tsp.vault.fingerprint";
pub const PAR_LABEL: &str = "tsp.vault.par";
/// Keys the payments' duplicate-detection hash (a request's digest may cover a card number). Like
/// the PAR key it never rotates: a repeat must match its first request's stored hash.
pub const DUPLICATE_LABEL: &str = "tsp.payments.duplicate";

/// One data-key version as this node holds it.
#[derive(Clone)]
struct DataKey {
    key: KeyRef,
    fp_version: i64,
}

/// The keys a card is sealed and fingerprinted under, taken once per operation so both come from the
/// same version pair even if a rotation lands meanwhile.
#[derive(Clone)]
pub struct KeySet {
    pub dek_version: i64,
    pub dek: KeyRef,
    pub fp_version: i64,
    /// Every fingerprint-key version some live data key pairs with, newest first: a lookup by
    /// fingerprint must try each while cards are being moved.
    pub fp_versions: Vec<i64>,
}

/// The fingerprint key of version `v`.
pub fn fingerprint_key(v: i64) -> KeyRef {
    KeyRef::stored_version(FINGERPRINT_LABEL, u32::try_from(v).unwrap_or(0))
}

/// The data keys by version.
pub struct DataKeys {
    keys: RwLock<BTreeMap<i64, DataKey>>,
}

fn data_key(row: &DataKeyRow) -> DataKey {
    DataKey {
        key: KeyRef::Wrapped {
            kek: hsm_sim::KeyId { label: row.kek_label.clone(), version: row.kek_version as u32 },
            blob: row.wrapped.clone().into(),
        },
        fp_version: row.fp_version,
    }
}

impl DataKeys {
    /// Makes sure the HSM keys exist, then loads the data keys, creating version 1 on first start.
    pub async fn load_or_create(store: &Store, hsm: &Hsm, now: i64) -> Result<DataKeys> {
        hsm.ensure_key(KEK_LABEL, KeyUsage::Kek).await?;
        let fp = hsm.ensure_key(FINGERPRINT_LABEL, KeyUsage::Hmac).await?;
        hsm.ensure_key(PAR_LABEL, KeyUsage::Hmac).await?;
        hsm.ensure_key(DUPLICATE_LABEL, KeyUsage::Hmac).await?;
        if store.data_keys().await?.is_empty() {
            // Another node may win the race to version 1; then its key is the one to use.
            Self::add_version(store, hsm, 1, i64::from(fp.id.version), "system", now).await?;
        }
        let keys = DataKeys { keys: RwLock::new(BTreeMap::new()) };
        keys.reload(store).await?;
        Ok(keys)
    }

    /// Draws a data key and stores it as `version`, paired with fingerprint key `fp_version`. False
    /// when that version exists already (another process made it first).
    async fn add_version(
        store: &Store,
        hsm: &Hsm,
        version: i64,
        fp_version: i64,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        let (kek, blob) = hsm.generate_data_key(KEK_LABEL).await?;
        let row = DataKeyRow {
            version,
            kek_label: kek.label,
            kek_version: i64::from(kek.version),
            wrapped: blob,
            created_at: now,
            fp_version,
        };
        let inserted = store.insert_data_key(&row).await?;
        if inserted {
            let action = if version == 1 { "key.create" } else { "key.rotate" };
            let event = crate::audit::Event::new(actor, action, Some(format!("dek v{version}"))).detail(
                serde_json::json!({ "kek": row.kek_label, "kek_version": row.kek_version, "fingerprint_key_version": fp_version }),
            );
            crate::audit::record(store, &event, now).await?;
        }
        Ok(inserted)
    }

    /// `tsp keys rotate`: a new data-key version paired with a new fingerprint-key version. From the
    /// moment it is stored no card can be written under an older version (the store refuses it), and
    /// serving nodes move existing cards onto it. Returns the new version.
    pub async fn rotate(store: &Store, hsm: &Hsm, actor: &str, now: i64) -> Result<i64> {
        let newest = store.data_keys().await?.last().map(|r| r.version).unwrap_or(0);
        let fp = hsm.generate_key(FINGERPRINT_LABEL, KeyUsage::Hmac).await?;
        if !Self::add_version(store, hsm, newest + 1, i64::from(fp.id.version), actor, now).await? {
            // Another rotation stored this version first.
            return Err(Error::KeysChanged);
        }
        Ok(newest + 1)
    }

    /// Reads the data-key table again: versions another process added or destroyed. True if the set
    /// changed.
    pub async fn reload(&self, store: &Store) -> Result<bool> {
        let rows = store.data_keys().await?;
        if rows.is_empty() {
            return Err(Error::Store(crate::store::StoreError::Corrupt("no data key".into())));
        }
        let fresh: BTreeMap<i64, DataKey> = rows.iter().map(|r| (r.version, data_key(r))).collect();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let changed = keys.len() != fresh.len() || keys.keys().ne(fresh.keys());
        *keys = fresh;
        Ok(changed)
    }

    /// The newest key pair, with every fingerprint version still in use.
    pub fn current(&self) -> KeySet {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut fp_versions: Vec<i64> = keys.values().rev().map(|k| k.fp_version).collect();
        fp_versions.dedup();
        // `reload` never leaves the map empty.
        let (dek_version, newest) = keys
            .iter()
            .next_back()
            .map(|(v, k)| (*v, k.clone()))
            .unwrap_or((0, DataKey { key: KeyRef::stored("none"), fp_version: 0 }));
        KeySet { dek_version, dek: newest.key, fp_version: newest.fp_version, fp_versions }
    }

    pub fn get(&self, version: i64) -> Option<KeyRef> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).get(&version).map(|k| k.key.clone())
    }

    /// The data-key versions this node holds, oldest first.
    pub fn versions(&self) -> Vec<i64> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }
}
