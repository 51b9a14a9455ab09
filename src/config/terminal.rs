//! A terminal registration as the config's `[[terminals]]` and `POST /v1/admin/terminals` give it
//! (the registry itself is `crate::terminals`).

use serde::Deserialize;

use super::check_id;
use crate::error::{Error, Result};
use crate::store::{TerminalRow, TerminalStatus};

/// A terminal as the config's `[[terminals]]` or `POST /v1/admin/terminals` gives it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalSpec {
    /// DE41: 1–8 letters, digits, `-`, `_` or `.`.
    pub id: String,
    /// DE42: the merchant it pays for, 1–15 of the same characters.
    pub merchant_id: String,
    /// The VAN it comes through: the CN or a subject alternative name of that VAN's client
    /// certificate on the ISO 8583 front's mutual TLS. Absent: it connects without a certificate.
    #[serde(default)]
    pub van: Option<String>,
}

impl TerminalSpec {
    /// Validates the spec and gives the row of a new, active registration.
    pub fn row(&self, now: i64) -> Result<TerminalRow> {
        check_id(&self.id, "terminal_id_invalid", 8)?;
        check_id(&self.merchant_id, "merchant_id_invalid", 15)?;
        if let Some(van) = &self.van
            && (van.is_empty() || van.len() > 255 || !van.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(Error::invalid("van_invalid", "van must be 1-255 printable characters without spaces"));
        }
        Ok(TerminalRow {
            id: self.id.clone(),
            merchant_id: self.merchant_id.clone(),
            van: self.van.clone(),
            status: TerminalStatus::Active,
            created_at: now,
            updated_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_validated() {
        let spec = |id: &str, m: &str, van: Option<&str>| TerminalSpec {
            id: id.into(),
            merchant_id: m.into(),
            van: van.map(str::to_string),
        };
        assert!(spec("TERM0001", "MERCHANT000001", None).row(0).is_ok());
        assert!(spec("TERM00001", "M", None).row(0).is_err());
        assert!(spec("", "M", None).row(0).is_err());
        assert!(spec("T1", "MERCHANT0000001X", None).row(0).is_err());
        assert!(spec("T1", "M", Some("has space")).row(0).is_err());
        assert!(spec("T1", "M", Some("van.example")).row(0).is_ok());
    }
}
