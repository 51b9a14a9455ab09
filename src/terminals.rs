//! The terminal registry: which terminals may send requests over ISO 8583, for which merchant, and
//! through which VAN. It owns the rule ([`admit`]) the ISO 8583 front applies to every request that
//! names a terminal, the registry's cache, and the registration the admin API and the config's
//! `[[terminals]]` share. The rule and its codes are in docs/security.md "Terminal registry".
//!
//! Registrations change rarely and are read on every request, so lookups go through a small cache
//! (known and unknown ids alike) that lives [`CACHE_TTL`]: a change made on this node applies at
//! once, one made on another node of the same database within that time.

use std::sync::Arc;
use std::time::Duration;

use crate::config::TerminalSpec;
use crate::error::{Error, Result};
use crate::store::{Store, StoreResult, TerminalRow, TerminalStatus};
use crate::tls::PeerIdentity;

/// How long a looked-up registration (or its absence) is trusted before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// At most this many terminal ids cached: a flood of made-up ids cannot grow memory past it.
const CACHE_CAPACITY: u64 = 100_000;

/// Why a request naming a terminal is refused, before anything is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No terminal is registered with this DE41.
    Unknown,
    /// The terminal is suspended (its reversals still pass).
    Suspended,
    /// The connection's client certificate is not the terminal's VAN's, or the terminal comes
    /// through a VAN and the connection has no certificate, or the reverse.
    WrongVan,
    /// DE42 names another merchant than the terminal's.
    ForeignMerchant,
}

/// The registry's rule: may a request from terminal `t` (None: not registered), naming `merchant`
/// in DE42, arriving over a connection whose client certificate says `peer`, be processed?
/// `reversal` marks a `0400`/`0420`: a suspended terminal may still undo what it did.
pub fn admit(
    t: Option<&TerminalRow>,
    merchant: Option<&str>,
    peer: Option<&PeerIdentity>,
    reversal: bool,
) -> Result<(), Refusal> {
    let t = t.ok_or(Refusal::Unknown)?;
    if t.status == TerminalStatus::Suspended && !reversal {
        return Err(Refusal::Suspended);
    }
    let through_its_van = match (&t.van, peer) {
        (None, None) => true,
        (Some(van), Some(peer)) => names(peer).any(|n| n == van),
        _ => false,
    };
    if !through_its_van {
        return Err(Refusal::WrongVan);
    }
    match merchant {
        Some(m) if !m.is_empty() && m != t.merchant_id => Err(Refusal::ForeignMerchant),
        _ => Ok(()),
    }
}

/// Every name a certificate carries that may match a VAN.
fn names(peer: &PeerIdentity) -> impl Iterator<Item = &str> {
    peer.common_name.iter().chain(&peer.dns_names).chain(&peer.uris).map(String::as_str)
}

/// The registry: the store's terminals behind a cache.
pub struct Registry {
    store: Store,
    cache: moka::sync::Cache<String, Option<Arc<TerminalRow>>>,
}

impl Registry {
    pub fn new(store: Store) -> Registry {
        let cache = moka::sync::Cache::builder().max_capacity(CACHE_CAPACITY).time_to_live(CACHE_TTL).build();
        Registry { store, cache }
    }

    /// The registration of terminal `id` (DE41 without trailing spaces), if any.
    pub async fn lookup(&self, id: &str) -> StoreResult<Option<Arc<TerminalRow>>> {
        if let Some(hit) = self.cache.get(id) {
            return Ok(hit);
        }
        let row = self.store.terminal(id).await?.map(Arc::new);
        self.cache.insert(id.to_string(), row.clone());
        Ok(row)
    }

    /// Registers a terminal or changes its merchant and VAN; true when it is new.
    pub async fn register(&self, spec: &TerminalSpec, now: i64) -> Result<(TerminalRow, bool)> {
        let row = spec.row(now)?;
        let created = self.store.upsert_terminal(&row).await?;
        self.cache.invalidate(&row.id);
        let stored = self.store.terminal(&row.id).await?.ok_or_else(|| Error::Internal("terminal vanished".into()))?;
        Ok((stored, created))
    }

    /// Suspends or resumes terminal `id`; None when there is none.
    pub async fn set_status(&self, id: &str, status: TerminalStatus, now: i64) -> Result<Option<TerminalRow>> {
        let found = self.store.set_terminal_status(id, status, now).await?;
        self.cache.invalidate(id);
        if !found {
            return Ok(None);
        }
        Ok(self.store.terminal(id).await?)
    }

    /// Removes terminal `id`; false when there was none.
    pub async fn remove(&self, id: &str) -> Result<bool> {
        let found = self.store.delete_terminal(id).await?;
        self.cache.invalidate(id);
        Ok(found)
    }

    /// Registers the config's terminals the database does not have yet (an operator's later changes
    /// through the admin API are kept).
    pub async fn seed(&self, specs: &[TerminalSpec], now: i64) -> Result<()> {
        for spec in specs {
            if self.store.terminal(&spec.id).await?.is_none() {
                self.register(spec, now).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminal(van: Option<&str>, status: TerminalStatus) -> TerminalRow {
        TerminalRow {
            id: "TERM0001".into(),
            merchant_id: "MERCHANT000001".into(),
            van: van.map(str::to_string),
            status,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn cert(cn: &str, dns: &[&str]) -> PeerIdentity {
        PeerIdentity {
            common_name: Some(cn.into()),
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            uris: vec![],
        }
    }

    #[test]
    fn unknown_terminals_and_foreign_merchants_are_refused() {
        let t = terminal(None, TerminalStatus::Active);
        assert_eq!(admit(None, Some("MERCHANT000001"), None, false), Err(Refusal::Unknown));
        assert_eq!(admit(None, None, None, true), Err(Refusal::Unknown));
        assert_eq!(admit(Some(&t), Some("MERCHANT000001"), None, false), Ok(()));
        assert_eq!(admit(Some(&t), Some("MERCHANT000002"), None, false), Err(Refusal::ForeignMerchant));
        // No DE42: the terminal's own merchant is the only one it can mean.
        assert_eq!(admit(Some(&t), None, None, false), Ok(()));
    }

    #[test]
    fn a_suspended_terminal_may_only_reverse() {
        let t = terminal(None, TerminalStatus::Suspended);
        assert_eq!(admit(Some(&t), Some("MERCHANT000001"), None, false), Err(Refusal::Suspended));
        assert_eq!(admit(Some(&t), Some("MERCHANT000001"), None, true), Ok(()));
        // …and only as its own merchant.
        assert_eq!(admit(Some(&t), Some("OTHER"), None, true), Err(Refusal::ForeignMerchant));
    }

    #[test]
    fn the_certificate_must_be_the_terminals_van() {
        let via_a = terminal(Some("van-a.example"), TerminalStatus::Active);
        let direct = terminal(None, TerminalStatus::Active);
        let a = cert("VAN A", &["van-a.example"]);
        let b = cert("van-b.example", &[]);
        assert_eq!(admit(Some(&via_a), None, Some(&a), false), Ok(()));
        assert_eq!(admit(Some(&via_a), None, Some(&b), false), Err(Refusal::WrongVan));
        assert_eq!(admit(Some(&via_a), None, None, false), Err(Refusal::WrongVan));
        // A VAN's certificate cannot speak for a terminal registered without one.
        assert_eq!(admit(Some(&direct), None, Some(&a), false), Err(Refusal::WrongVan));
    }
}
