//! Bulk fill of the vault, for measuring how lookups and payments grow with its size (`tsp seed`).
//!
//! Seeded cards are real rows: Luhn-valid PANs of a configured issuer's BIN (consecutive serials from
//! a random start, so no two collide), sealed, fingerprinted and given a PAR exactly as a registration
//! would, owned by a new requestor named `seed`; each gets one live token of its issuer's token BIN
//! with a long TTL. They go straight into the store in one bulk transaction (the store drops the two
//! tables' secondary indexes, inserts, and builds them again: random keys such as fingerprints and
//! token numbers otherwise cost a page write per row and index, which at ten million rows is the whole
//! run); the REST path would spend its time on per-request work the measurement is not about. While one
//! task seals cards, the store inserts the previous batch. (Token numbers are drawn from the token BIN,
//! which no card BIN overlaps, so the per-token check that a number is not some card's PAN is not
//! needed here; a live number drawn twice is drawn again.) Run it with the service stopped: the
//! indexes are gone until it commits.

use ring::rand::SecureRandom;

use crate::requestors::{self, Scope};
use crate::store::{Store, TokenRow};
use crate::tokens::TokenValue;
use crate::vault::{CardExpiry, Pan, Vault};
use crate::{Error, Result};

/// Cards sealed per batch handed to the store.
const BATCH: usize = 5_000;

/// What a seeding run wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub instruments: u64,
    pub tokens: u64,
}

/// Adds `count` cards, each with one live token, under a new requestor. `progress` hears how many
/// cards are sealed so far after each batch.
pub async fn seed(
    vault: &Vault,
    store: &Store,
    trid_prefix: &str,
    count: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Seeded> {
    let now = vault.clock().now_ms();
    let owner = requestors::create(store, trid_prefix, "seed", &[Scope::Instruments, Scope::Tokens], now).await?;
    let issuer =
        vault.issuers().all().first().ok_or_else(|| Error::invalid("issuer_missing", "no issuer configured"))?;
    let (bin, token_prefix) = match (issuer.bin_prefixes.first(), issuer.token_bin_prefixes.first()) {
        (Some(b), Some(t)) => (b.clone(), t.clone()),
        _ => return Err(Error::invalid("issuer_ranges", "the first issuer needs a BIN and a token BIN")),
    };
    let rng = ring::rand::SystemRandom::new();
    let serial_digits = 15 - bin.len();
    let span = 10u64.pow(serial_digits as u32);
    if count >= span {
        return Err(Error::invalid("count_range", "more cards than the BIN has numbers"));
    }
    let mut start = [0u8; 8];
    rng.fill(&mut start).map_err(|_| Error::TokenRangeExhausted)?;
    let start = u64::from_be_bytes(start) % (span - count);
    let expiry = CardExpiry::from_year_month(2099, 12);
    let token_ttl_ms = 365 * 24 * 3600 * 1000;
    // Seeding runs with the servers stopped: one key set serves the whole run.
    let keys = vault.keys();
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let (owner_id, issuer_id, prefix) = (&owner.requestor.id, &issuer.id, &token_prefix);
    let produce = async move {
        let mut serial = start;
        let mut made = 0u64;
        while made < count {
            let n = (count - made).min(BATCH as u64);
            let mut cards = Vec::with_capacity(n as usize);
            let mut tokens = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let body = format!("{bin}{serial:0serial_digits$}");
                serial += 1;
                let pan = crate::luhn::complete(&body)
                    .and_then(|digits| Pan::parse(&digits).ok())
                    .ok_or_else(|| Error::invalid("bin_invalid", "the issuer's BIN does not make card numbers"))?;
                let fingerprint = vault.fingerprint(keys.fp_version, pan.expose()).await?;
                let row = vault.seal_card(&keys, owner_id, &pan, fingerprint, &expiry, issuer_id, now).await?;
                tokens.push(TokenRow {
                    id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
                    token: draw(prefix, &rng)?,
                    instrument_id: row.id.clone(),
                    requestor_id: owner_id.clone(),
                    state: "active".into(),
                    token_expiry: crate::tokens::token_expiry(now + token_ttl_ms),
                    psn: crate::tokens::TOKEN_PSN.into(),
                    merchant_id: None,
                    max_amount: None,
                    currency: None,
                    entry_modes: None,
                    failed_attempts: 0,
                    created_at: now,
                    multi_use: false,
                    suspended_at: None,
                    expires_at: now + token_ttl_ms,
                    consumed_at: None,
                });
                cards.push(row);
            }
            made += n;
            if tx.send((cards, tokens)).await.is_err() {
                // The store stopped taking batches: its error is the one to report.
                break;
            }
            progress(made);
        }
        Ok::<(), Error>(())
    };
    let redraw_rng = ring::rand::SystemRandom::new();
    let redraw = || draw(&token_prefix, &redraw_rng).ok();
    let (produced, stored) = tokio::join!(produce, store.bulk_seed(rx, &redraw));
    let (instruments, tokens) = stored?;
    produced?;
    Ok(Seeded { instruments, tokens })
}

fn draw(prefix: &str, rng: &ring::rand::SystemRandom) -> Result<String> {
    Ok(TokenValue::generate_system(prefix, crate::tokens::TOKEN_LEN, rng)
        .map_err(|_| Error::TokenRangeExhausted)?
        .as_str()
        .to_string())
}
