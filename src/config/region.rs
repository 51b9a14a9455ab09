//! A local-currency region as the admin API and the config describe it, and its validation into the
//! row the store keeps. Both the config (at load) and the admin API (at definition) run it, so a region
//! is checked by one rule wherever it comes from.

use rust_decimal::Decimal;

use super::Config;
use crate::instruments::card::RuleError;
use crate::instruments::local::{CancelRestore, RegionPolicy};
use crate::money::{Amount, Currency};
use crate::store::RegionRow;
use crate::{Error, Result};

/// A region as the admin API and the config describe it (amounts as major-unit decimal text).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub incentive_rate: String,
    pub monthly_bonus_cap: String,
    pub bonus_lifetime_seconds: i64,
    #[serde(default)]
    pub cancel_restore: Option<String>,
    /// Merchants to register in the region with it.
    #[serde(default)]
    pub merchants: Vec<crate::config::MerchantConfig>,
}

/// Ids of regions and merchants become parts of ledger account ids and travel in DE42 (15
/// characters): letters, digits, `-`, `_`, `.`.
pub(crate) fn check_id(id: &str, code: &'static str, max: usize) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= max
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(Error::invalid(code, format!("must be 1-{max} letters, digits, '-', '_' or '.'"))) }
}

/// A decimal at the currency's scale that may be zero.
fn parse_non_negative(text: &str, cur: &Currency, code: &'static str) -> Result<Amount> {
    let bad = || Error::invalid(code, "must be a non-negative decimal at the currency's scale");
    if text == "0" {
        return Ok(Amount::zero(cur));
    }
    let a = Amount::parse(text, cur).map_err(|_| bad())?;
    a.to_minor().map(|_| a).ok_or_else(bad)
}

/// Validates a region and gives the row to store.
pub fn region_row(spec: &RegionSpec, config: &Config, now: i64) -> Result<RegionRow> {
    check_id(&spec.id, "id_invalid", 32)?;
    if spec.name.trim().is_empty() || spec.name.len() > 100 {
        return Err(Error::invalid("name_invalid", "name must be 1-100 characters"));
    }
    let cur = config
        .currency(&spec.currency)
        .cloned()
        .ok_or_else(|| Error::invalid("currency_unknown", "unknown currency"))?;
    let rate: Decimal = spec
        .incentive_rate
        .parse()
        .map_err(|_| Error::invalid("incentive_rate_invalid", "incentive_rate must be a decimal such as 0.10"))?;
    let cap = parse_non_negative(&spec.monthly_bonus_cap, &cur, "monthly_bonus_cap_invalid")?;
    let restore = match spec.cancel_restore.as_deref().unwrap_or("reverse") {
        "reverse" => CancelRestore::Reverse,
        "pro_rata" => CancelRestore::ProRata,
        _ => return Err(Error::invalid("cancel_restore_invalid", "cancel_restore must be reverse or pro_rata")),
    };
    RegionPolicy::new(cur.clone(), rate, cap, spec.bonus_lifetime_seconds, restore).map_err(|e| match e {
        RuleError::InvalidConfig(m) if m.starts_with("incentive_rate") => Error::invalid("incentive_rate_invalid", m),
        RuleError::InvalidConfig(m) if m.starts_with("bonus_lifetime") => {
            Error::invalid("bonus_lifetime_seconds_invalid", m)
        }
        other => Error::invalid("region_invalid", other.to_string()),
    })?;
    Ok(RegionRow {
        id: spec.id.clone(),
        name: spec.name.trim().to_string(),
        currency: cur.code.clone(),
        incentive_rate: rate.normalize().to_string(),
        monthly_bonus_cap: cap,
        bonus_lifetime_seconds: spec.bonus_lifetime_seconds,
        cancel_restore: restore.as_str().to_string(),
        created_at: now,
        updated_at: now,
    })
}
