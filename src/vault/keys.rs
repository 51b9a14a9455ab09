//! The vault's keys. Three live in the HSM for good: the key-encryption key that wraps data keys,
//! the fingerprint key and the PAR key. Data keys (DEKs) are drawn by the HSM, stored in the
//! database only wrapped under the KEK, and numbered by version; the newest seals new PANs.

use std::collections::BTreeMap;
use std::sync::RwLock;

use hsm_sim::{KeyRef, KeyUsage};

use crate::hsm::Hsm;
use crate::store::{DataKeyRow, Store};
use crate::{Error, Result};

pub const KEK_LABEL: &str = "tsp.vault.kek";
pub const FINGERPRINT_LABEL: &str = "tsp.vault.fingerprint";
pub const PAR_LABEL: &str = "tsp.vault.par";

/// The wrapped data keys by version.
pub struct DataKeys {
    keys: RwLock<BTreeMap<i64, KeyRef>>,
}

fn key_ref(row: &DataKeyRow) -> KeyRef {
    KeyRef::Wrapped {
        kek: hsm_sim::KeyId { label: row.kek_label.clone(), version: row.kek_version as u32 },
        blob: row.wrapped.clone().into(),
    }
}

impl DataKeys {
    /// Makes sure the HSM keys exist, then loads the data keys, creating version 1 on first start.
    pub async fn load_or_create(store: &Store, hsm: &Hsm, now: i64) -> Result<DataKeys> {
        hsm.ensure_key(KEK_LABEL, KeyUsage::Kek).await?;
        hsm.ensure_key(FINGERPRINT_LABEL, KeyUsage::Hmac).await?;
        hsm.ensure_key(PAR_LABEL, KeyUsage::Hmac).await?;
        let mut rows = store.data_keys().await?;
        if rows.is_empty() {
            let (kek, blob) = hsm.generate_data_key(KEK_LABEL).await?;
            let row = DataKeyRow {
                version: 1,
                kek_label: kek.label,
                kek_version: i64::from(kek.version),
                wrapped: blob,
                created_at: now,
            };
            // Another node may have won the race to version 1; then its key is the one to use.
            if store.insert_data_key(&row).await? {
                let event = crate::audit::Event::new("system", "key.create", Some("dek v1".into()))
                    .detail(serde_json::json!({ "kek": row.kek_label, "kek_version": row.kek_version }));
                crate::audit::record(store, &event, now).await?;
            }
            rows = store.data_keys().await?;
        }
        let keys = rows.iter().map(|r| (r.version, key_ref(r))).collect::<BTreeMap<_, _>>();
        if keys.is_empty() {
            return Err(Error::Store(crate::store::StoreError::Corrupt("no data key after creating one".into())));
        }
        Ok(DataKeys { keys: RwLock::new(keys) })
    }

    /// The newest data key: every new PAN is sealed under it.
    pub fn current(&self) -> (i64, KeyRef) {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        // `load_or_create` never leaves the map empty.
        keys.iter().next_back().map(|(v, k)| (*v, k.clone())).unwrap_or((0, KeyRef::stored("none")))
    }

    pub fn get(&self, version: i64) -> Option<KeyRef> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).get(&version).cloned()
    }
}
