//! Gift certificates (금액형 상품권): operator issuance, registration by code to one
//! wallet, and the balance view. The code is a bearer secret shown once; only its SHA-256 is kept
//! (80 random bits: a plain hash is enough). The balance lives in the ledger (`gift:<id>`); the
//! refund terms are `instruments::gift`'s.

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::instruments::gift::{GiftCertificate, GiftRefundTerms};
use crate::ledger::{self, EntryId};
use crate::money::{Amount, Currency};
use crate::requestors::Requestor;
use crate::store::{GiftRow, InstrumentKind, InstrumentRow, Store};
use crate::{Error, Result};

/// Letters and digits a person cannot confuse (no 0/O, 1/I).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `XXXX-XXXX-XXXX-XXXX`: 16 symbols of 5 bits.
fn new_code() -> Result<String> {
    let mut buf = [0u8; 16];
    SystemRandom::new().fill(&mut buf).map_err(|_| Error::Hsm(hsm_sim::HsmError::internal("random source failed")))?;
    let symbols: Vec<char> = buf.iter().map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)])).collect();
    Ok(symbols.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-"))
}

/// The stored form of a code: SHA-256 of it upper-cased, without separators.
pub fn code_hash(code: &str) -> String {
    let normal: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

/// The ledger account of a certificate's balance.
pub fn balance_account(gift_id: &str) -> String {
    format!("gift:{gift_id}")
}

/// A gift certificate just issued, with its code (shown this once).
pub struct IssuedGift {
    pub row: GiftRow,
    pub code: String,
    pub currency: Currency,
}

/// Issues a certificate of `face_value` (major-unit decimal text) in `currency`, valid until
/// `expires_at` (Unix ms): the issuance posts cash → gift balance.
pub async fn issue(
    store: &Store,
    config: &Config,
    face_value: &str,
    currency: &str,
    expires_at: i64,
    now: i64,
) -> Result<IssuedGift> {
    let cur =
        config.currency(currency).cloned().ok_or_else(|| Error::invalid("currency_unknown", "unknown currency"))?;
    let face = Amount::parse(face_value, &cur).map_err(|_| {
        Error::invalid("face_value_invalid", "face_value must be a positive decimal at the currency's scale")
    })?;
    if expires_at <= now {
        return Err(Error::invalid("expires_at_past", "expires_at must be in the future"));
    }
    let code = new_code()?;
    let id = format!("gft_{}", uuid::Uuid::now_v7().simple());
    face.to_minor().ok_or_else(|| Error::invalid("face_value_invalid", "face_value too large"))?;
    let row = GiftRow {
        id: id.clone(),
        code_hash: code_hash(&code),
        currency: cur.code.clone(),
        face_value: face,
        expires_at,
        instrument_id: None,
        created_at: now,
    };
    let entry = ledger::gift_issuance(EntryId::fresh(), &cur, &id, face)?;
    store.insert_gift(&row, &entry, now).await?;
    Ok(IssuedGift { row, code, currency: cur })
}

/// Registers a certificate to the requestor's wallet by its code. The same requestor again gets its
/// instrument back (false = not new); another wallet is refused: a code registers to one wallet only.
pub async fn register(store: &Store, requestor: &Requestor, code: &str, now: i64) -> Result<(InstrumentRow, bool)> {
    let gift = store
        .gift_by_code_hash(&code_hash(code))
        .await?
        .ok_or_else(|| Error::invalid("code_unknown", "no gift certificate has this code"))?;
    if let Some(existing) = gift.instrument_id.as_deref() {
        return match store.instrument(existing).await? {
            Some(i) if i.requestor_id == requestor.id && i.status != crate::store::InstrumentStatus::Deleted => {
                Ok((i, false))
            }
            _ => Err(Error::GiftTaken),
        };
    }
    let id = format!("ins_{}", uuid::Uuid::now_v7().simple());
    let row = InstrumentRow::stored_value(id, requestor.id.clone(), InstrumentKind::Gift, now);
    if !store.register_gift(&gift.id, &row).await? {
        return Err(Error::GiftTaken);
    }
    Ok((row, true))
}

/// A certificate's state as the rules see it, with its balance from the ledger.
pub async fn certificate(store: &Store, config: &Config, gift: &GiftRow) -> Result<GiftCertificate> {
    let cur = config
        .currency(&gift.currency)
        .cloned()
        .ok_or_else(|| Error::Internal(format!("gift {}: a currency not configured", gift.id)))?;
    let balance = store.account_balance(&balance_account(&gift.id)).await?;
    Ok(GiftCertificate {
        face_value: gift.face_value,
        balance: balance.unwrap_or_else(|| Amount::zero(&cur)),
        currency: cur,
        expires_at_ms: gift.expires_at,
    })
}

/// `{principal, bonus, refundable}` of a certificate now.
pub async fn balance(store: &Store, config: &Config, gift: &GiftRow, now: i64) -> Result<(Currency, Amount, Amount)> {
    let c = certificate(store, config, gift).await?;
    let refundable =
        c.refundable(&GiftRefundTerms::default(), now).map_err(|e| Error::Internal(format!("gift terms: {e}")))?;
    Ok((c.currency.clone(), c.balance, refundable))
}
