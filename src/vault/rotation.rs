//! Key rotation after `tsp keys rotate` ([`DataKeys::rotate`](super::keys::DataKeys::rotate)) has
//! stored a new key pair: moving every card onto it and destroying what no card needs any more.
//!
//! Every serving node runs [`run`]: it reads the data-key table every `watch_interval_ms`, and while
//! an older version is left it re-encrypts cards under the newest data key and fingerprints them
//! under the newest fingerprint key, `rotation_batch` cards per write with a pause between writes so
//! payments keep the write path. Each write moves a card only if it is still under the version it
//! was read under, so nodes working at once, a card deleted meanwhile or a crash halfway lose
//! nothing: the progress is the data itself, and the next pass (after a restart too) carries on with
//! what is left. A retired data key is destroyed (its row deleted; the foreign key from
//! `instruments.dek_version` refuses while any card still names it), then every fingerprint-key
//! version no live data key pairs with and no card is fingerprinted under is destroyed in the HSM.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::Vault;
use super::keys::{self, KeySet};
use crate::Result;
use crate::config::KeysConfig;
use crate::hsm::Hsm;
use crate::store::{Rekeyed, SealedCard, Store};

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Pass {
    /// Cards moved onto the newest keys.
    pub moved: u64,
    /// Cards that could not be opened (logged by instrument id); their key version stays.
    pub failed: u64,
    pub destroyed_data_keys: Vec<i64>,
    pub destroyed_fingerprint_keys: Vec<i64>,
}

impl Vault {
    /// Moves every card sealed under an older data key onto the newest pair, `batch` cards per write
    /// and `pause` between writes, then destroys the retired keys no card uses. Stops between two
    /// batches once `stop` turns true.
    pub async fn rotation_pass(&self, batch: u32, pause: Duration, stop: &watch::Receiver<bool>) -> Result<Pass> {
        self.keys.reload(&self.store).await?;
        let keys = self.keys.current();
        let mut pass = Pass::default();
        let mut after = String::new();
        loop {
            if *stop.borrow() {
                return Ok(pass);
            }
            let cards = self.store.cards_sealed_before(keys.dek_version, &after, i64::from(batch.max(1))).await?;
            let Some(last) = cards.last() else { break };
            after = last.id.clone();
            let (rekeyed, failed) = self.rekey(&keys, cards).await?;
            pass.failed += failed;
            pass.moved += self.store.rekey_cards(&rekeyed).await?;
            tokio::time::sleep(pause).await;
        }
        let (deks, fps) = self.destroy_retired().await?;
        pass.destroyed_data_keys = deks;
        pass.destroyed_fingerprint_keys = fps;
        Ok(pass)
    }

    /// Opens each card under its key and seals and fingerprints it under `keys`.
    async fn rekey(&self, keys: &KeySet, cards: Vec<SealedCard>) -> Result<(Vec<Rekeyed>, u64)> {
        let mut out = Vec::with_capacity(cards.len());
        let mut failed = 0;
        for card in cards {
            let pan = match self.open_pan(&card.id, card.dek_version, &card.pan_sealed).await {
                Ok(pan) => pan,
                Err(e) => {
                    // Left on its version (which is then never destroyed) for an operator to look at.
                    tracing::error!(instrument = %card.id, dek_version = card.dek_version, error = %e, "cannot open a sealed PAN to re-encrypt it");
                    failed += 1;
                    continue;
                }
            };
            let sealed = self
                .hsm
                .seal(keys.dek.clone(), &super::pan_aad(&card.id, keys.dek_version), pan.expose().as_bytes())
                .await?;
            out.push(Rekeyed {
                fingerprint: self.fingerprint(keys.fp_version, pan.expose()).await?,
                id: card.id,
                from_dek: card.dek_version,
                dek_version: keys.dek_version,
                pan_sealed: sealed,
                fp_version: keys.fp_version,
            });
        }
        Ok((out, failed))
    }

    /// Destroys data keys older than the newest that seal no card, then fingerprint-key versions older
    /// than the newest pair's that no live data key pairs with and no card is fingerprinted under (a
    /// deleted card's fingerprint under such a key can then never be matched again). Each destruction
    /// is an audit row. Returns the versions destroyed.
    pub async fn destroy_retired(&self) -> Result<(Vec<i64>, Vec<i64>)> {
        let now = self.clock.now_ms();
        self.keys.reload(&self.store).await?;
        let newest = self.keys.current().dek_version;
        let usage = self.store.key_usage().await?;
        let mut deks = Vec::new();
        for v in self.keys.versions().into_iter().filter(|v| *v < newest) {
            if !usage.iter().any(|u| u.dek_version == v) && self.store.destroy_data_key(v).await? {
                let event = crate::audit::Event::new("system", "key.destroy", Some(format!("dek v{v}")));
                crate::audit::record(&self.store, &event, now).await?;
                tracing::info!(dek_version = v, "retired data key destroyed");
                deks.push(v);
            }
        }
        self.keys.reload(&self.store).await?;
        let keys = self.keys.current();
        let used: BTreeSet<i64> = usage.iter().filter_map(|u| u.fp_version).collect();
        let mut fps = Vec::new();
        for info in self.hsm.key_versions(keys::FINGERPRINT_LABEL).await? {
            let v = i64::from(info.id.version);
            if v < keys.fp_version && !keys.fp_versions.contains(&v) && !used.contains(&v) {
                self.hsm.destroy_key(keys::FINGERPRINT_LABEL, info.id.version).await?;
                let event = crate::audit::Event::new("system", "key.destroy", Some(format!("fingerprint v{v}")));
                crate::audit::record(&self.store, &event, now).await?;
                tracing::info!(fingerprint_key_version = v, "retired fingerprint key destroyed");
                fps.push(v);
            }
        }
        Ok((deks, fps))
    }
}

/// One data-key version in `tsp keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    pub dek_version: i64,
    pub fingerprint_key_version: i64,
    /// Cards sealed under it.
    pub cards: i64,
    /// `current` (new cards are sealed under it) or `retiring` (cards are being moved off it).
    pub state: &'static str,
    pub created_at: i64,
}

/// `tsp keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub data_keys: Vec<VersionStatus>,
    /// Versions of the HSM fingerprint key still in the HSM.
    pub fingerprint_keys_in_hsm: Vec<u32>,
    /// Cards under a data-key version the table no longer has (should be 0).
    pub cards_on_unknown_versions: i64,
}

pub async fn status(store: &Store, hsm: &Hsm) -> Result<Status> {
    let rows = store.data_keys().await?;
    let usage = store.key_usage().await?;
    let newest = rows.last().map(|r| r.version).unwrap_or(0);
    let data_keys = rows
        .iter()
        .map(|r| VersionStatus {
            dek_version: r.version,
            fingerprint_key_version: r.fp_version,
            cards: usage.iter().filter(|u| u.dek_version == r.version).map(|u| u.cards).sum(),
            state: if r.version == newest { "current" } else { "retiring" },
            created_at: r.created_at,
        })
        .collect();
    let cards_on_unknown_versions =
        usage.iter().filter(|u| !rows.iter().any(|r| r.version == u.dek_version)).map(|u| u.cards).sum();
    let fingerprint_keys_in_hsm =
        hsm.key_versions(keys::FINGERPRINT_LABEL).await?.into_iter().map(|k| k.id.version).collect();
    Ok(Status { data_keys, fingerprint_keys_in_hsm, cards_on_unknown_versions })
}

/// The serving node's key watch: picks up versions other processes add, and while an older one is
/// left, runs [`Vault::rotation_pass`]. Ends when `stop` turns true.
pub async fn run(vault: Arc<Vault>, cfg: KeysConfig, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(cfg.watch_interval_ms.max(10));
    let pause = Duration::from_millis(cfg.rotation_pause_ms);
    // The versions as the last pass that changed nothing left them: no pass is needed until they
    // change. (Once a pass has moved what it could, what is left under an older key is cards that
    // failed to open.) None at start, so the first pass finishes whatever a crash interrupted.
    let mut settled: Option<Vec<i64>> = None;
    let mut logged = Vec::new();
    loop {
        if *stop.borrow() {
            return;
        }
        // A request may have reloaded the keys already (a card refused as sealed under an old key),
        // so what counts is the versions themselves, not whether this reload changed them.
        if let Err(e) = vault.keys.reload(&vault.store).await {
            tracing::warn!(error = %e, "cannot read the data keys");
        }
        let versions = vault.keys.versions();
        if versions != logged {
            tracing::info!(?versions, "data key versions in use");
            logged = versions.clone();
        }
        if settled.as_ref() != Some(&versions) {
            match vault.rotation_pass(cfg.rotation_batch, pause, &stop).await {
                Ok(pass) => {
                    if pass.moved > 0 || !pass.destroyed_data_keys.is_empty() {
                        tracing::info!(moved = pass.moved, failed = pass.failed, destroyed = ?pass.destroyed_data_keys, "key rotation pass");
                    } else {
                        settled = Some(versions);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "key rotation pass failed; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}
