//! Rows of the terminal registry.

use super::*;

/// Whether a registered terminal may send requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalStatus {
    Active,
    /// Refused `58`, except for reversals of what it already did (docs/security.md "Terminal registry").
    Suspended,
}

text_enum!(TerminalStatus { Active => "active", Suspended => "suspended" });

/// A registered terminal (`/v1/admin/terminals`, config `[[terminals]]`): the merchant it sends in
/// DE42 and the VAN whose client certificate it comes through, if any.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TerminalRow {
    /// DE41 without the fixed-length field's trailing spaces.
    pub id: String,
    /// DE42 without trailing spaces.
    pub merchant_id: String,
    /// The name its VAN's client certificate carries (CN or a SAN); None: it connects without one.
    pub van: Option<String>,
    pub status: TerminalStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One version of a link's key (`link_keys`): a TR-31 key block under the HSM's link KBPK.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkKeyRow {
    /// The terminal (DE41) the key belongs to.
    pub link: String,
    /// `tak` or `zmk`.
    pub kind: String,
    pub version: i64,
    pub key_block: String,
    pub kcv: String,
    pub created_at: i64,
    /// None while current; a replaced key is accepted until then.
    pub retires_at: Option<i64>,
}

impl std::fmt::Debug for LinkKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkKeyRow")
            .field("link", &self.link)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("kcv", &self.kcv)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}
