//! The rules of each kind of instrument, on domain types only (no store, no transport): one file
//! per kind.

pub mod assurance;
pub mod card;
pub mod gift;
pub mod local;
pub mod verification;

/// The kind of an instrument: what pays, and so which rules and which flow a payment follows.
/// Stored and shown as `card`, `gift` or `local`; these conversions are the only place those
/// strings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstrumentKind {
    /// A card of a card company: its issuer authorizes.
    Card,
    /// A gift certificate: stored value on the platform's ledger.
    Gift,
    /// A local-currency (지역화폐) wallet: stored value with a region's bonus rules.
    Local,
}

impl InstrumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentKind::Card => "card",
            InstrumentKind::Gift => "gift",
            InstrumentKind::Local => "local",
        }
    }

    /// True when a card issuer authorizes payments with it (and so is owed a `0420` when their
    /// outcome is unknown); stored value is the platform's own ledger.
    pub fn authorized_by_issuer(self) -> bool {
        match self {
            InstrumentKind::Card => true,
            InstrumentKind::Gift | InstrumentKind::Local => false,
        }
    }
}

impl std::fmt::Display for InstrumentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored kind this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown instrument kind")]
pub struct UnknownKind;

impl std::str::FromStr for InstrumentKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        match s {
            "card" => Ok(InstrumentKind::Card),
            "gift" => Ok(InstrumentKind::Gift),
            "local" => Ok(InstrumentKind::Local),
            _ => Err(UnknownKind),
        }
    }
}

impl serde::Serialize for InstrumentKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where an instrument is in its lifecycle (docs/instruments.md). Stored and shown as its text;
/// these conversions are the only place those strings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentStatus {
    /// Pays and gets tokens.
    Active,
    /// Registered, but the issuer asked for step-up verification (ID&V) that has not succeeded yet:
    /// no tokens until `POST /v1/instruments/{id}/verify` does.
    PendingVerification,
    Suspended,
    Deleted,
}

impl InstrumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentStatus::Active => "active",
            InstrumentStatus::PendingVerification => "pending_verification",
            InstrumentStatus::Suspended => "suspended",
            InstrumentStatus::Deleted => "deleted",
        }
    }
    /// Why no token can be issued nor payment made with an instrument in this status (None: it can).
    pub fn refusal(self) -> Option<crate::Error> {
        match self {
            InstrumentStatus::Active => None,
            InstrumentStatus::PendingVerification => Some(crate::Error::InstrumentPendingVerification),
            InstrumentStatus::Suspended => Some(crate::Error::InstrumentSuspended),
            InstrumentStatus::Deleted => Some(crate::Error::InstrumentDeleted),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(InstrumentStatus::Active),
            "pending_verification" => Some(InstrumentStatus::PendingVerification),
            "suspended" => Some(InstrumentStatus::Suspended),
            "deleted" => Some(InstrumentStatus::Deleted),
            _ => None,
        }
    }
}

/// A stored status this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown instrument status")]
pub struct UnknownStatus;

impl std::str::FromStr for InstrumentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        InstrumentStatus::parse(s).ok_or(UnknownStatus)
    }
}

impl std::fmt::Display for InstrumentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for InstrumentStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::InstrumentKind;

    #[test]
    fn kinds_read_back_as_written() {
        for k in [InstrumentKind::Card, InstrumentKind::Gift, InstrumentKind::Local] {
            assert_eq!(k.as_str().parse::<InstrumentKind>().ok(), Some(k));
        }
        assert!("Card".parse::<InstrumentKind>().is_err());
    }
}
