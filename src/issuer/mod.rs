//! Card issuers: which issuer a BIN belongs to, and which token BIN range its tokens come from.
//! (Routing authorizations to the issuer's host joins this module with the ISO 8583 path.)

pub mod host;
pub mod products;
pub mod sim;
pub mod tcp;

use crate::config::{Config, IssuerConfig};

/// The HSM label of an issuer's token IMK-AC.
pub fn imk_label(issuer_id: &str) -> String {
    format!("tsp.issuer.{issuer_id}.token-imk-ac")
}

/// The HSM label of the platform range's token IMK-AC.
pub const PLATFORM_IMK_LABEL: &str = "tsp.platform.token-imk-ac";

/// Issuers by BIN, longest prefix first.
#[derive(Debug, Clone)]
pub struct Issuers {
    issuers: Vec<IssuerConfig>,
    /// (prefix, index into `issuers`), longest prefix first.
    bins: Vec<(String, usize)>,
}

impl Issuers {
    pub fn from_config(cfg: &Config) -> Self {
        let issuers = cfg.issuers.clone();
        let mut bins: Vec<(String, usize)> = issuers
            .iter()
            .enumerate()
            .flat_map(|(i, iss)| iss.bin_prefixes.iter().map(move |p| (p.clone(), i)))
            .collect();
        bins.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Issuers { issuers, bins }
    }

    /// The issuer whose BIN range holds this card number.
    pub fn for_pan(&self, digits: &str) -> Option<&IssuerConfig> {
        self.bins.iter().find(|(p, _)| digits.starts_with(p.as_str())).map(|(_, i)| &self.issuers[*i])
    }

    pub fn get(&self, id: &str) -> Option<&IssuerConfig> {
        self.issuers.iter().find(|i| i.id == id)
    }

    pub fn all(&self) -> &[IssuerConfig] {
        &self.issuers
    }

    /// What a wallet shows of a card of issuer `issuer_id` with BIN `bin`.
    pub fn metadata(&self, issuer_id: &str, bin: &str) -> Option<products::CardMetadata> {
        self.get(issuer_id).map(|i| products::metadata(i, bin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_lookup() {
        let cfg = Config::default_config().unwrap();
        let iss = Issuers::from_config(&cfg);
        assert_eq!(iss.for_pan("4111111111111111").unwrap().id, "hanbit");
        assert_eq!(iss.for_pan("5555555555554444").unwrap().id, "nuri");
        assert!(iss.for_pan("6011111111111117").is_none());
    }
}
