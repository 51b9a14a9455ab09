//! The token vault: card instruments and their lifecycle.
//!
//! A card's PAN is sealed with AES-256-GCM under the current data key; the associated data binds
//! the ciphertext to its instrument id and key version, so a sealed PAN copied onto another row
//! does not open. The HMAC fingerprint (HSM key) finds duplicates; the PAR is a second keyed hash
//! of the PAN under its own key, stable across requestors. What is stored in clear is only what
//! PCI DSS allows: the first six and last four digits and the expiry.

pub mod keys;
pub mod pan;
pub mod rotation;

use std::sync::Arc;

use hsm_sim::KeyRef;

use crate::clock::Clock;
use crate::hsm::Hsm;
use crate::instruments::assurance::Assurance;
use crate::issuer::Issuers;
use crate::requestors::Requestor;
use crate::store::{InsertCard, InstrumentKind, InstrumentRow, InstrumentStatus, Store};
use crate::{Error, Result};
use keys::{DataKeys, KeySet};
pub use pan::{CardExpiry, Pan, PanError};

/// What [`Vault::check_card`] found.
pub enum Registration {
    /// The requestor has this card already.
    Existing(Box<InstrumentRow>),
    /// A card new to the requestor: ask its issuer, then [`Vault::add_card`] (or drop it).
    New(NewCard),
}

/// A checked card not yet stored. Holds the PAN (zeroized with it).
#[must_use = "a checked card is registered with Vault::add_card or dropped"]
pub struct NewCard {
    requestor_id: String,
    pan: Pan,
    expiry: CardExpiry,
    issuer_id: String,
}

impl NewCard {
    pub fn pan(&self) -> &Pan {
        &self.pan
    }
    pub fn expiry(&self) -> &CardExpiry {
        &self.expiry
    }
    pub fn issuer_id(&self) -> &str {
        &self.issuer_id
    }
    pub fn requestor_id(&self) -> &str {
        &self.requestor_id
    }
}

/// How a new card is admitted, as its issuer decided.
pub enum Admission {
    /// Active, verified this way.
    Active(Assurance),
    /// Pending step-up verification by one of these ways of reaching the cardholder.
    Pending(Vec<crate::instruments::verification::Offer>),
}

pub struct Vault {
    store: Store,
    hsm: Hsm,
    issuers: Arc<Issuers>,
    keys: DataKeys,
    par_prefix: String,
    clock: Clock,
}

/// The associated data that binds a sealed PAN to its record.
fn pan_aad(instrument_id: &str, dek_version: i64) -> Vec<u8> {
    format!("tsp/card-pan/{instrument_id}/dek{dek_version}").into_bytes()
}

/// 25 base-36 characters of a 128-bit value (36^25 > 2^128, so the mapping is one-to-one).
fn base36_25(bytes: &[u8]) -> String {
    let mut n = u128::from_be_bytes(bytes[..16].try_into().unwrap_or([0; 16]));
    let mut out = [b'0'; 25];
    for slot in out.iter_mut().rev() {
        let d = (n % 36) as u8;
        *slot = if d < 10 { b'0' + d } else { b'A' + d - 10 };
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Vault {
    pub async fn new(store: Store, hsm: Hsm, issuers: Arc<Issuers>, par_prefix: String, clock: Clock) -> Result<Vault> {
        let keys = DataKeys::load_or_create(&store, &hsm, clock.now_ms()).await?;
        Ok(Vault { store, hsm, issuers, keys, par_prefix, clock })
    }

    /// The keyed fingerprint of a card number (HMAC-SHA256 under fingerprint key `fp_version`), hex.
    pub async fn fingerprint(&self, fp_version: i64, digits: &str) -> Result<String> {
        let mac = self.hsm.hmac(keys::fingerprint_key(fp_version), digits.as_bytes()).await?;
        Ok(hex::encode(mac))
    }

    /// The card number's fingerprints under every fingerprint key in use (`keys.fp_versions`), the
    /// newest first. Outside a rotation there is one.
    pub async fn fingerprints(&self, keys: &KeySet, digits: &str) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(keys.fp_versions.len());
        for v in &keys.fp_versions {
            match self.fingerprint(*v, digits).await {
                Ok(f) => out.push(f),
                // An older version another process destroyed since this node last read the key table (a
                // shared HSM): a fingerprint key is destroyed only once no card is under it, so nothing
                // can match under it.
                Err(Error::Hsm(e)) if *v != keys.fp_version && e.kind == hsm_sim::ErrorKind::Key => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The configured issuer whose BIN range holds this card number.
    pub fn issuer_for(&self, digits: &str) -> Option<&crate::config::IssuerConfig> {
        self.issuers.for_pan(digits)
    }

    /// The vault's clock (the bulk fill stamps rows with it).
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The configured issuers.
    pub(crate) fn issuers(&self) -> &Issuers {
        &self.issuers
    }

    /// The keys new cards are sealed under now.
    pub fn keys(&self) -> KeySet {
        self.keys.current()
    }

    /// The Payment Account Reference: the configured 4-character prefix and 25 characters derived
    /// from the PAN under the PAR key. Stable for a PAN whoever registers it.
    pub async fn par(&self, pan: &Pan) -> Result<String> {
        let mac = self.hsm.hmac(KeyRef::stored(keys::PAR_LABEL), pan.expose().as_bytes()).await?;
        Ok(format!("{}{}", self.par_prefix, base36_25(&mac)))
    }

    /// Registers a card for a requestor without asking its issuer (assurance `stand_in`): for tools
    /// and tests. The REST API asks the issuer first (`Payments::register_card`). Returns the
    /// instrument and whether it is new: the same requestor registering the same PAN again gets its
    /// existing instrument back.
    pub async fn register_card(&self, requestor: &Requestor, pan: &str, expiry: &str) -> Result<(InstrumentRow, bool)> {
        match self.check_card(&requestor.id, pan, expiry).await? {
            Registration::Existing(row) => Ok((*row, false)),
            Registration::New(card) => self.add_card(card, Admission::Active(Assurance::StandIn)).await,
        }
    }

    /// A card read at a terminal, as an instrument of requestor `requestor_id` (terminal
    /// tokenization registers cards for the terminal requestor of the merchant, which is not the
    /// caller). Its assurance is `card_present`: the terminal read it and the issuer verified the
    /// account.
    pub async fn register_card_as(&self, requestor_id: &str, pan: &str, expiry: &str) -> Result<(InstrumentRow, bool)> {
        match self.check_card(requestor_id, pan, expiry).await? {
            Registration::Existing(row) => Ok((*row, false)),
            Registration::New(card) => self.add_card(card, Admission::Active(Assurance::CardPresent)).await,
        }
    }

    /// The first half of registering a card: the number and expiry checked, the issuer found, and
    /// the requestor's existing instrument for the card if there is one (its expiry brought up to
    /// date). Nothing new is written.
    pub async fn check_card(&self, requestor_id: &str, pan: &str, expiry: &str) -> Result<Registration> {
        let pan = Pan::parse(pan).map_err(|e| match e {
            PanError::Format => Error::invalid("pan_format", "pan must be 13 to 19 digits"),
            PanError::Luhn => Error::invalid("pan_luhn", "pan fails the Luhn check"),
        })?;
        let now = self.clock.now_ms();
        let expiry = CardExpiry::parse(expiry)
            .ok_or_else(|| Error::invalid("expiry_format", "expiry must be YYMM with month 01-12"))?;
        if expiry.is_past(now) {
            return Err(Error::invalid("expiry_past", "the card has expired"));
        }
        let issuer_id = self
            .issuers
            .for_pan(pan.expose())
            .ok_or_else(|| Error::invalid("pan_unknown_bin", "no issuer is configured for this card's BIN"))?
            .id
            .clone();
        if let Some(existing) = self.existing(requestor_id, &self.keys.current(), &pan).await? {
            return Ok(Registration::Existing(Box::new(self.refresh_expiry(existing, &expiry, now).await?)));
        }
        Ok(Registration::New(NewCard { requestor_id: requestor_id.to_string(), pan, expiry, issuer_id }))
    }

    /// The requestor's live instrument of this card, under any fingerprint key in use.
    async fn existing(&self, requestor_id: &str, keys: &KeySet, pan: &Pan) -> Result<Option<InstrumentRow>> {
        for fp in &self.fingerprints(keys, pan.expose()).await? {
            if let Some(existing) = self.store.instrument_by_fingerprint(requestor_id, fp).await? {
                return Ok(Some(existing));
            }
        }
        Ok(None)
    }

    /// The second half: seals and stores a card [`Vault::check_card`] found new, active with its
    /// assurance or pending step-up with the issuer's offers. Returns the instrument and whether it
    /// is new (the requestor may have registered the card meanwhile: then that one).
    pub async fn add_card(&self, card: NewCard, admission: Admission) -> Result<(InstrumentRow, bool)> {
        let NewCard { requestor_id, pan, expiry, issuer_id } = card;
        let now = self.clock.now_ms();
        // A rotation landing meanwhile makes the store refuse the row (`StaleKey`): then the card is
        // looked up and sealed again under the keys as they are now.
        for _ in 0..3 {
            let keys = self.keys.current();
            let fingerprints = self.fingerprints(&keys, pan.expose()).await?;
            for fp in &fingerprints {
                if let Some(existing) = self.store.instrument_by_fingerprint(&requestor_id, fp).await? {
                    return Ok((self.refresh_expiry(existing, &expiry, now).await?, false));
                }
            }
            // A card the issuer reissued keeps its PAR: its new number, registered again, gets it too.
            let par = self.store.par_by_fingerprints(&fingerprints).await?;
            let fingerprint = fingerprints.into_iter().next().unwrap_or_default();
            let mut row = self.seal_card(&keys, &requestor_id, &pan, fingerprint, &expiry, &issuer_id, now).await?;
            if par.is_some() {
                row.par = par;
            }
            let offered = match &admission {
                Admission::Active(assurance) => {
                    row.assurance = Some(*assurance);
                    None
                }
                Admission::Pending(offers) => {
                    row.status = InstrumentStatus::PendingVerification;
                    Some(serde_json::to_string(offers).map_err(|e| Error::Internal(e.to_string()))?)
                }
            };
            match self.store.insert_card(&row, offered.as_deref()).await? {
                InsertCard::Inserted => return Ok((row, true)),
                InsertCard::Duplicate(existing) => {
                    return Ok((self.refresh_expiry(*existing, &expiry, now).await?, false));
                }
                InsertCard::StaleKey => {
                    self.keys.reload(&self.store).await?;
                }
            }
        }
        Err(Error::KeysChanged)
    }

    /// A card's row as stored: a fresh id, the PAN sealed under `keys`' data key, its `fingerprint`
    /// under `keys`' fingerprint key ([`Vault::fingerprint`]) and PAR, and the facts PCI DSS lets us
    /// keep in clear.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn seal_card(
        &self,
        keys: &KeySet,
        requestor_id: &str,
        pan: &Pan,
        fingerprint: String,
        expiry: &CardExpiry,
        issuer_id: &str,
        now: i64,
    ) -> Result<InstrumentRow> {
        let id = format!("ins_{}", uuid::Uuid::now_v7().simple());
        let sealed = self.hsm.seal(keys.dek.clone(), &pan_aad(&id, keys.dek_version), pan.expose().as_bytes()).await?;
        Ok(InstrumentRow {
            id,
            requestor_id: requestor_id.to_string(),
            kind: InstrumentKind::Card,
            status: InstrumentStatus::Active,
            issuer_id: Some(issuer_id.to_string()),
            bin: Some(pan.bin().to_string()),
            last4: Some(pan.last4().to_string()),
            pan_len: Some(pan.expose().len() as i64),
            expiry: Some(expiry.yymm()),
            par: Some(self.par(pan).await?),
            fingerprint: Some(fingerprint),
            fp_version: Some(keys.fp_version),
            pan_sealed: Some(sealed),
            dek_version: Some(keys.dek_version),
            assurance: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// The issuer reissued the card with PAR `par`: a new number (`pan`) and/or a new `expiry`.
    /// Every live instrument of the card, of every requestor, keeps its id and PAR; its PAN is sealed
    /// again and its facts change, each with its `instrument.updated` event. Its tokens go on
    /// working: the next payment with any of them reaches the issuer with the new number. Returns
    /// the instruments as they now are (an instrument whose requestor registered the new number
    /// already is left as it was).
    pub async fn reissue(&self, par: &str, pan: Option<&str>, expiry: Option<&str>) -> Result<Vec<InstrumentRow>> {
        let pan = pan
            .map(|p| {
                Pan::parse(p).map_err(|e| match e {
                    PanError::Format => Error::invalid("pan_format", "pan must be 13 to 19 digits"),
                    PanError::Luhn => Error::invalid("pan_luhn", "pan fails the Luhn check"),
                })
            })
            .transpose()?;
        let expiry = expiry
            .map(|e| {
                CardExpiry::parse(e)
                    .ok_or_else(|| Error::invalid("expiry_format", "expiry must be YYMM with month 01-12"))
            })
            .transpose()?;
        if pan.is_none() && expiry.is_none() {
            return Err(Error::invalid("reissue_empty", "give the new pan, the new expiry, or both"));
        }
        let cards = self.store.cards_by_par(par).await?;
        let mut out = Vec::with_capacity(cards.len());
        for card in cards {
            if let Some(new) = &pan {
                let issuer = self.issuers.for_pan(new.expose()).map(|i| i.id.clone());
                if issuer.is_none() || issuer != card.issuer_id {
                    return Err(Error::invalid("pan_other_issuer", "the new number is not the card's issuer's"));
                }
            }
            let now = self.clock.now_ms();
            let mut done = false;
            for _ in 0..3 {
                let keys = self.keys.current();
                let current = match &pan {
                    Some(p) => p.clone(),
                    None => self.reveal_pan(&card).await?,
                };
                let fingerprint =
                    self.fingerprints(&keys, current.expose()).await?.into_iter().next().unwrap_or_default();
                let sealed = self
                    .hsm
                    .seal(keys.dek.clone(), &pan_aad(&card.id, keys.dek_version), current.expose().as_bytes())
                    .await?;
                let mut row = card.clone();
                row.bin = Some(current.bin().to_string());
                row.last4 = Some(current.last4().to_string());
                row.pan_len = Some(current.expose().len() as i64);
                row.expiry = expiry.as_ref().map(CardExpiry::yymm).or(card.expiry.clone());
                row.fingerprint = Some(fingerprint);
                row.fp_version = Some(keys.fp_version);
                row.pan_sealed = Some(sealed);
                row.dek_version = Some(keys.dek_version);
                row.updated_at = now;
                match self.store.reissue_card(&row, now).await? {
                    InsertCard::Inserted => {
                        out.push(row);
                        done = true;
                        break;
                    }
                    InsertCard::Duplicate(_) => {
                        out.push(card.clone());
                        done = true;
                        break;
                    }
                    InsertCard::StaleKey => {
                        self.keys.reload(&self.store).await?;
                    }
                }
            }
            if !done {
                return Err(Error::KeysChanged);
            }
        }
        Ok(out)
    }

    /// A re-registered card may carry a reissued card's new expiry.
    async fn refresh_expiry(&self, mut row: InstrumentRow, expiry: &CardExpiry, now: i64) -> Result<InstrumentRow> {
        let new = expiry.yymm();
        if row.expiry.as_deref() != Some(new.as_str()) {
            self.store.update_card_expiry(&row.id, &new, now).await?;
            row.expiry = Some(new);
            row.updated_at = now;
        }
        Ok(row)
    }

    /// The requestor's instrument `id`; another requestor's is reported as not found.
    pub async fn instrument(&self, requestor: &Requestor, id: &str) -> Result<InstrumentRow> {
        match self.store.instrument(id).await? {
            Some(row) if row.requestor_id == requestor.id => Ok(row),
            _ => Err(Error::InstrumentNotFound),
        }
    }

    pub async fn instruments(&self, requestor: &Requestor, include_deleted: bool) -> Result<Vec<InstrumentRow>> {
        Ok(self.store.instruments_of(&requestor.id, include_deleted).await?)
    }

    /// Suspends an active instrument and revokes its live tokens. Suspending a suspended one is a
    /// no-op.
    pub async fn suspend(&self, requestor: &Requestor, id: &str) -> Result<InstrumentRow> {
        self.transition(requestor, id, &[InstrumentStatus::Active], InstrumentStatus::Suspended).await
    }

    /// Makes a suspended instrument active again. Tokens revoked by the suspension stay revoked.
    pub async fn resume(&self, requestor: &Requestor, id: &str) -> Result<InstrumentRow> {
        self.transition(requestor, id, &[InstrumentStatus::Suspended], InstrumentStatus::Active).await
    }

    /// Deletes an instrument for good (a registration pending step-up too): its live tokens are
    /// revoked and its sealed PAN destroyed.
    pub async fn delete(&self, requestor: &Requestor, id: &str) -> Result<InstrumentRow> {
        self.transition(
            requestor,
            id,
            &[InstrumentStatus::Active, InstrumentStatus::PendingVerification, InstrumentStatus::Suspended],
            InstrumentStatus::Deleted,
        )
        .await
    }

    async fn transition(
        &self,
        requestor: &Requestor,
        id: &str,
        from: &[InstrumentStatus],
        to: InstrumentStatus,
    ) -> Result<InstrumentRow> {
        let current = self.instrument(requestor, id).await?;
        match Some(current.status) {
            Some(InstrumentStatus::Deleted) => return Err(Error::InstrumentDeleted),
            Some(s) if s == to => return Ok(current),
            _ => {}
        }
        if let Some(row) = self.store.set_instrument_status(id, from, to, self.clock.now_ms()).await? {
            return Ok(row);
        }
        // Another request changed it first: if it went where we wanted, that is success.
        let now = self.instrument(requestor, id).await?;
        match Some(now.status) {
            Some(s) if s == to && to != InstrumentStatus::Deleted => Ok(now),
            _ => Err(Error::InstrumentDeleted),
        }
    }

    /// Opens the sealed PAN of a card instrument.
    pub async fn reveal_pan(&self, row: &InstrumentRow) -> Result<Pan> {
        let (Some(sealed), Some(version)) = (row.pan_sealed.as_deref(), row.dek_version) else {
            return Err(Error::InstrumentDeleted);
        };
        self.open_pan(&row.id, version, sealed).await
    }

    /// Opens a PAN sealed under data key `version` for instrument `id`. A version this node has not
    /// seen yet (another node's rotation) is looked up once more in the store.
    async fn open_pan(&self, id: &str, version: i64, sealed: &[u8]) -> Result<Pan> {
        let dek = match self.keys.get(version) {
            Some(k) => k,
            None => {
                self.keys.reload(&self.store).await?;
                self.keys.get(version).ok_or_else(|| {
                    Error::Store(crate::store::StoreError::Corrupt(format!("unknown data key version {version}")))
                })?
            }
        };
        let clear = self.hsm.open(dek, &pan_aad(id, version), sealed).await?;
        let text = std::str::from_utf8(clear.expose())
            .map_err(|_| Error::Store(crate::store::StoreError::Corrupt("sealed PAN is not text".into())))?;
        Pan::parse(text)
            .map_err(|_| Error::Store(crate::store::StoreError::Corrupt("sealed PAN is not a valid PAN".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_alphabet_and_length() {
        let s = base36_25(&[0xFF; 32]);
        assert_eq!(s.len(), 25);
        assert!(s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert_eq!(base36_25(&[0; 32]), "0".repeat(25));
        assert_ne!(base36_25(&[1; 32]), base36_25(&[2; 32]));
    }
}
