//! Bulk fill of the vault, for measuring how lookups and payments grow with its size (`tsp seed`).
//!
//! Seeded cards are real rows: Luhn-valid PANs of a configured issuer's BIN (consecutive serials from
//! a random start, so no two collide), sealed, fingerprinted and given a PAR exactly as a registration
//! would, owned by a new requestor named `seed`; each gets one live token of its issuer's token BIN
//! with a long TTL. They are written in large batches, one transaction each, straight into the
//! store: the REST path would spend its time on per-request work the measurement is not about. (Token
//! numbers are drawn from the token BIN, which no card BIN overlaps, so the per-token check that a
//! number is not some card's PAN is not needed here; a number that is already taken is drawn again.)

use ring::rand::SecureRandom;

use super::{CardExpiry, Pan, Vault};
use crate::requestors::{self, Scope};
use crate::store::{Store, TokenRow};
use crate::tokens::TokenValue;
use crate::{Error, Result};

/// Rows per database transaction.
const BATCH: usize = 2_000;

/// What a seeding run wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub instruments: u64,
    pub tokens: u64,
}

/// Adds `count` cards, each with one live token, under a new requestor. `progress` hears the running
/// totals after each batch.
pub async fn seed(
    vault: &Vault,
    store: &Store,
    trid_prefix: &str,
    count: u64,
    progress: &mut dyn FnMut(Seeded),
) -> Result<Seeded> {
    let now = vault.clock.now_ms();
    let owner = requestors::create(store, trid_prefix, "seed", &[Scope::Instruments, Scope::Tokens], now).await?;
    let issuer = vault.issuers.all().first().ok_or_else(|| Error::invalid("issuer_missing", "no issuer configured"))?;
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
    let mut done = Seeded { instruments: 0, tokens: 0 };
    let mut serial = start;
    while done.instruments < count {
        let n = (count - done.instruments).min(BATCH as u64);
        let mut cards = Vec::with_capacity(n as usize);
        let mut tokens = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let body = format!("{bin}{serial:0serial_digits$}");
            serial += 1;
            let pan = crate::luhn::complete(&body)
                .and_then(|digits| Pan::parse(&digits).ok())
                .ok_or_else(|| Error::invalid("bin_invalid", "the issuer's BIN does not make card numbers"))?;
            let fingerprint = vault.fingerprint(pan.expose()).await?;
            let row = vault.seal_card(&owner.requestor.id, &pan, fingerprint, &expiry, &issuer.id, now).await?;
            tokens.push(TokenRow {
                id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
                token: draw(&token_prefix, &rng)?,
                instrument_id: row.id.clone(),
                requestor_id: owner.requestor.id.clone(),
                state: "active".into(),
                token_expiry: crate::tokens::token_expiry(now + token_ttl_ms),
                psn: crate::tokens::TOKEN_PSN.into(),
                merchant_id: None,
                max_amount: None,
                currency: None,
                entry_modes: None,
                failed_attempts: 0,
                created_at: now,
                expires_at: now + token_ttl_ms,
                consumed_at: None,
            });
            cards.push(row);
        }
        let (written, mut ids) = store.insert_seed(&cards, &tokens).await?;
        done.instruments += written;
        // Numbers already taken: draw those tokens again until every card has one.
        for round in 0.. {
            if round == 100 {
                return Err(Error::TokenRangeExhausted);
            }
            done.tokens += ids.len() as u64;
            let kept: std::collections::HashSet<String> = ids.into_iter().collect();
            tokens.retain(|t| !kept.contains(&t.id));
            if tokens.is_empty() {
                break;
            }
            for t in &mut tokens {
                t.token = draw(&token_prefix, &rng)?;
            }
            ids = store.insert_seed(&[], &tokens).await?.1;
        }
        progress(done);
    }
    Ok(done)
}

fn draw(prefix: &str, rng: &ring::rand::SystemRandom) -> Result<String> {
    Ok(TokenValue::generate_system(prefix, crate::tokens::TOKEN_LEN, rng)
        .map_err(|_| Error::TokenRangeExhausted)?
        .as_str()
        .to_string())
}
