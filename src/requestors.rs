//! Token requestors (pay apps, VANs, operators), their scopes, and their API keys.
//!
//! An API key reads `tsp_<key id>_<secret>`. The key id finds the stored row; only SHA-256 of the
//! secret is stored (the secret is 160 random bits, so a plain hash is enough: there is nothing to
//! brute-force), and the comparison is constant-time.

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ApiKeyRow, KeyChange, RequestorRow, Store};
use crate::{Error, Result};

/// What a requestor may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Register and manage its own instruments.
    Instruments,
    /// Issue tokens for its own instruments.
    Tokens,
    /// Request merchant tokens for cards a terminal reads.
    Terminal,
    /// Turn tokens back into PANs.
    Detokenize,
    /// Operate the platform.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Instruments, Scope::Tokens, Scope::Terminal, Scope::Detokenize, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Instruments => "instruments",
            Scope::Tokens => "tokens",
            Scope::Terminal => "terminal",
            Scope::Detokenize => "detokenize",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Parses `a,b,c`; None if any name is unknown or the list is empty.
    pub fn parse_list(s: &str) -> Option<Vec<Scope>> {
        let v: Option<Vec<Scope>> = s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(Scope::parse).collect();
        v.filter(|v| !v.is_empty())
    }
}

/// A requestor as the API sees the caller.
#[derive(Debug, Clone)]
pub struct Requestor {
    pub id: String,
    pub trid: String,
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Requestor {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    fn from_row(r: RequestorRow) -> Result<Requestor> {
        let scopes = Scope::parse_list(&r.scopes).ok_or_else(|| {
            Error::Store(crate::store::StoreError::Corrupt(format!("requestor {} has bad scopes", r.id)))
        })?;
        Ok(Requestor { id: r.id, trid: r.trid, name: r.name, scopes })
    }
}

/// A merchant id as DE42 carries it once its padding is dropped: 1 to 15 printable ASCII characters,
/// not ending in a space.
pub fn valid_merchant_id(m: &str) -> bool {
    !m.is_empty() && m.len() <= 15 && m.bytes().all(|b| (0x20..0x7f).contains(&b)) && !m.ends_with(' ')
}

/// A requestor just created, with its API key in clear (shown this once).
#[derive(Debug)]
pub struct NewRequestor {
    pub requestor: Requestor,
    pub api_key: String,
}

const KEY_ID_LEN: usize = 12;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

fn random_text(rng: &SystemRandom, n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf).map_err(|_| Error::Hsm(hsm_sim::HsmError::internal("random source failed")))?;
    Ok(buf.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect())
}

fn random_digits(rng: &SystemRandom, n: usize) -> Result<String> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 16];
    while out.len() < n {
        rng.fill(&mut buf).map_err(|_| Error::Hsm(hsm_sim::HsmError::internal("random source failed")))?;
        out.extend(buf.iter().filter(|b| **b < 250).map(|b| char::from(b'0' + b % 10)).take(n - out.len()));
    }
    Ok(out)
}

/// Creates a requestor with one API key.
pub async fn create(store: &Store, trid_prefix: &str, name: &str, scopes: &[Scope], now: i64) -> Result<NewRequestor> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::invalid("name_invalid", "name must be 1 to 100 characters"));
    }
    if scopes.is_empty() {
        return Err(Error::invalid("scopes_invalid", "at least one scope is needed"));
    }
    let rng = SystemRandom::new();
    let id = format!("req_{}", uuid::Uuid::now_v7().simple());
    let trid = format!("{trid_prefix}{}", random_digits(&rng, 11 - trid_prefix.len())?);
    let key_id = random_text(&rng, KEY_ID_LEN)?;
    // 32 characters of a 32-letter alphabet: 160 bits.
    let secret = zeroize::Zeroizing::new(random_text(&rng, 32)?);
    let mut scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    scope_names.dedup();
    let row = RequestorRow {
        id: id.clone(),
        trid: trid.clone(),
        name: name.to_string(),
        scopes: scope_names.join(","),
        created_at: now,
    };
    let key = ApiKeyRow {
        key_id: key_id.clone(),
        requestor_id: id.clone(),
        secret_hash: Sha256::digest(secret.as_bytes()).to_vec(),
        created_at: now,
        revoked_at: None,
    };
    store.insert_requestor(&row, &key).await?;
    Ok(NewRequestor {
        requestor: Requestor { id, trid, name: name.to_string(), scopes: scopes.to_vec() },
        api_key: format!("tsp_{key_id}_{}", secret.as_str()),
    })
}

/// The key id of a well-formed API key (`tsp_<key id>_<secret>`): public, unlike the secret.
pub fn key_id_of(api_key: &str) -> Option<&str> {
    let (key_id, _) = api_key.strip_prefix("tsp_")?.split_once('_')?;
    well_formed_key_id(key_id).then_some(key_id)
}

/// Whether `key_id` has the shape of a key id this module makes.
pub fn well_formed_key_id(key_id: &str) -> bool {
    key_id.len() == KEY_ID_LEN && key_id.bytes().all(|b| ALPHABET.contains(&b))
}

/// The requestor an API key belongs to at `now` (Unix ms), or None for a malformed, unknown or
/// revoked key, looked up in the database. A rotated key works until its `revoked_at`, and not from
/// then on.
pub async fn authenticate(store: &Store, api_key: &str, now: i64) -> Result<Option<Requestor>> {
    authenticate_cached(None, store, api_key, now).await
}

/// [`authenticate`], with the key's stored row taken from `cache` when it holds it (see [`KeyCache`]).
pub async fn authenticate_cached(
    cache: Option<&KeyCache>,
    store: &Store,
    api_key: &str,
    now: i64,
) -> Result<Option<Requestor>> {
    let Some((key_id, secret)) = api_key.strip_prefix("tsp_").and_then(|k| k.split_once('_')) else {
        return Ok(None);
    };
    if !well_formed_key_id(key_id) {
        return Ok(None);
    }
    let cached = cache.and_then(|c| c.get(key_id));
    let entry = match cached {
        Some(e) => e,
        None => {
            let Some((key, requestor)) = store.find_api_key(key_id).await? else {
                return Ok(None);
            };
            let entry = std::sync::Arc::new(KnownKey {
                secret_hash: key.secret_hash,
                revoked_at: key.revoked_at,
                requestor: Requestor::from_row(requestor)?,
            });
            if let Some(c) = cache {
                c.put(key_id, entry.clone());
            }
            entry
        }
    };
    let presented = Sha256::digest(secret.as_bytes());
    let matches: bool = presented.as_slice().ct_eq(&entry.secret_hash).into();
    // A `revoked_at` still to come is a rotated key in its overlap: it works until then.
    if !matches || entry.revoked_at.is_some_and(|at| at <= now) {
        return Ok(None);
    }
    Ok(Some(entry.requestor.clone()))
}

/// What is known of a stored API key: the hash of its secret, when it ends, and its requestor.
struct KnownKey {
    secret_hash: Vec<u8>,
    revoked_at: Option<i64>,
    requestor: Requestor,
}

/// API keys as the database held them a moment ago, so that a request is authenticated without a
/// database round trip. Entries are keyed by the key id (public; never the key or its secret) and
/// hold the SHA-256 of the secret, which each request's secret is compared with in constant time, as
/// without the cache. An entry is used for at most `ttl` after it was read: a key revoked on another
/// node (or by `tsp admin revoke-key`) stops working here within that bound; on the node that revokes
/// or rotates it, at once ([`KeyCache::forget`]). A rotated key's scheduled end is kept in the entry
/// and holds to the millisecond. Unknown keys are not cached. At most `capacity` entries: when full,
/// the expired ones go, and if none had, all of them. A `ttl` of zero switches the cache off.
pub struct KeyCache {
    ttl: std::time::Duration,
    capacity: usize,
    entries: std::sync::RwLock<std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<KnownKey>)>>,
}

impl KeyCache {
    pub fn new(ttl: std::time::Duration, capacity: usize) -> KeyCache {
        KeyCache { ttl, capacity: capacity.max(1), entries: Default::default() }
    }

    fn get(&self, key_id: &str) -> Option<std::sync::Arc<KnownKey>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(key_id).filter(|(read, _)| read.elapsed() < self.ttl).map(|(_, k)| k.clone())
    }

    fn put(&self, key_id: &str, key: std::sync::Arc<KnownKey>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(key_id) {
            entries.retain(|_, (read, _)| read.elapsed() < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key_id.to_string(), (std::time::Instant::now(), key));
    }

    /// Drops what is known of `key_id`: its next use reads the database.
    pub fn forget(&self, key_id: &str) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(key_id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// How long a rotated key keeps working by default: a day.
pub const DEFAULT_OVERLAP_SECONDS: i64 = 86_400;
/// The longest overlap a rotation may give the old key: 30 days.
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 86_400;

/// An API key revoked (or found revoked already).
#[derive(Debug, Clone)]
pub struct RevokedKey {
    pub key_id: String,
    pub requestor_id: String,
    /// When it stopped working (Unix ms).
    pub revoked_at: i64,
    /// It was revoked before this call, which changed nothing.
    pub already: bool,
}

/// Ends the API key `key_id` now: on this node at once once the caller drops it from its
/// [`KeyCache`], on the others within their cache's time to live. A rotated key still in its overlap ends now too. Revoking a revoked key changes
/// nothing and says so ([`RevokedKey::already`]). [`Error::ApiKeyNotFound`] for an unknown key id.
pub async fn revoke_key(store: &Store, key_id: &str, now: i64) -> Result<RevokedKey> {
    if !well_formed_key_id(key_id) {
        return Err(Error::ApiKeyNotFound);
    }
    let (requestor_id, revoked_at, already) = match store.revoke_api_key(key_id, now).await? {
        KeyChange::Unknown => return Err(Error::ApiKeyNotFound),
        KeyChange::Changed { requestor_id, revoked_at } => (requestor_id, revoked_at, false),
        KeyChange::AlreadyEnding { requestor_id, revoked_at } => (requestor_id, revoked_at, true),
    };
    Ok(RevokedKey { key_id: key_id.to_string(), requestor_id, revoked_at, already })
}

/// A rotation's outcome: the new key in clear (shown this once) and when the old one stops.
#[derive(Debug)]
pub struct RotatedKey {
    pub key_id: String,
    pub api_key: String,
    pub requestor_id: String,
    pub previous_key_id: String,
    /// When the previous key stops working (Unix ms): now + the overlap.
    pub previous_revoked_at: i64,
}

/// Replaces the live API key `key_id` with a new key of the same requestor (so the same scopes and
/// merchants); the old key keeps working for `overlap_seconds` (0 to [`MAX_OVERLAP_SECONDS`]), then
/// gets 401. [`Error::ApiKeyNotFound`] for an unknown key id, [`Error::ApiKeyEnded`] for a key that is
/// revoked or was already rotated.
pub async fn rotate_key(store: &Store, key_id: &str, overlap_seconds: i64, now: i64) -> Result<RotatedKey> {
    if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap_seconds) {
        return Err(Error::invalid(
            "overlap_seconds_invalid",
            format!("overlap_seconds must be 0 to {MAX_OVERLAP_SECONDS}"),
        ));
    }
    if !well_formed_key_id(key_id) {
        return Err(Error::ApiKeyNotFound);
    }
    let rng = SystemRandom::new();
    let new_key_id = random_text(&rng, KEY_ID_LEN)?;
    let secret = zeroize::Zeroizing::new(random_text(&rng, 32)?);
    let hash = Sha256::digest(secret.as_bytes());
    let ends_at = now + overlap_seconds * 1000;
    match store.rotate_api_key(key_id, &new_key_id, hash.as_slice(), ends_at, now).await? {
        KeyChange::Unknown => Err(Error::ApiKeyNotFound),
        KeyChange::AlreadyEnding { .. } => Err(Error::ApiKeyEnded),
        KeyChange::Changed { requestor_id, revoked_at } => Ok(RotatedKey {
            api_key: format!("tsp_{new_key_id}_{}", secret.as_str()),
            key_id: new_key_id,
            requestor_id,
            previous_key_id: key_id.to_string(),
            previous_revoked_at: revoked_at,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn known() -> Arc<KnownKey> {
        let requestor = Requestor { id: "req_1".into(), trid: "40000000001".into(), name: "r".into(), scopes: vec![] };
        Arc::new(KnownKey { secret_hash: vec![0; 32], revoked_at: None, requestor })
    }

    #[test]
    fn the_key_cache_is_bounded_forgets_and_expires() {
        let c = KeyCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            c.put(&format!("key{i}"), known());
            assert!(c.len() <= 3, "{} entries", c.len());
        }
        assert!(c.get("key9").is_some());
        c.forget("key9");
        assert!(c.get("key9").is_none(), "a forgotten key is read from the database again");

        let off = KeyCache::new(Duration::ZERO, 3);
        off.put("key1", known());
        assert!(off.get("key1").is_none(), "a ttl of 0 caches nothing");

        let short = KeyCache::new(Duration::from_millis(1), 3);
        short.put("key1", known());
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get("key1").is_none(), "an entry past its ttl is not used");
    }
}
