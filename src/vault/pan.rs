//! Card numbers and expiry dates.
//!
//! A [`Pan`] is zeroized on drop and has no `Display`: its `Debug` shows only the masked form, so a
//! PAN can't reach a log line by accident. [`Pan::expose`] is the one door to the digits.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A primary account number: 13–19 digits with a valid Luhn check digit.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Pan(String);

/// Why a PAN was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanError {
    /// Not 13–19 ASCII digits.
    Format,
    /// The Luhn check digit is wrong.
    Luhn,
}

impl Pan {
    pub fn parse(text: &str) -> Result<Pan, PanError> {
        if !(13..=19).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PanError::Format);
        }
        if !crate::luhn::is_valid(text) {
            return Err(PanError::Luhn);
        }
        Ok(Pan(text.to_string()))
    }

    /// The clear digits. Only the vault, the issuer message and the detokenize answer may call this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first six digits.
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// First 6 and last 4 digits, the middle as `*` (PCI DSS 3.4 truncation).
    pub fn masked(&self) -> String {
        mask(self.bin(), self.last4(), self.0.len())
    }
}

/// The masked form from its stored parts.
pub fn mask(bin: &str, last4: &str, len: usize) -> String {
    let stars = len.saturating_sub(bin.len() + last4.len());
    format!("{bin}{}{last4}", "*".repeat(stars))
}

impl std::fmt::Debug for Pan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

/// A card's expiry month, `YYMM` on the wire. The card is valid through the end of that month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CardExpiry {
    year: u16,
    month: u8,
}

impl CardExpiry {
    /// Parses `YYMM` (years 2000–2099).
    pub fn parse(text: &str) -> Option<CardExpiry> {
        if text.len() != 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let yy: u16 = text[..2].parse().ok()?;
        let mm: u8 = text[2..].parse().ok()?;
        (1..=12).contains(&mm).then_some(CardExpiry { year: 2000 + yy, month: mm })
    }

    pub fn from_year_month(year: i32, month: u8) -> CardExpiry {
        CardExpiry { year: year.clamp(2000, 2099) as u16, month: month.clamp(1, 12) }
    }

    /// True when the month has ended by the instant `now_ms` (UTC).
    pub fn is_past(&self, now_ms: i64) -> bool {
        let (y, m) = crate::clock::year_month(now_ms);
        (i32::from(self.year), self.month) < (y, m)
    }

    pub fn yymm(&self) -> String {
        format!("{:02}{:02}", self.year % 100, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_rules() {
        assert_eq!(Pan::parse("4111111111111111").unwrap().masked(), "411111******1111");
        assert_eq!(Pan::parse("4111111111111112"), Err(PanError::Luhn));
        assert_eq!(Pan::parse("41111111111"), Err(PanError::Format));
        assert_eq!(Pan::parse("4111 1111 1111 1111"), Err(PanError::Format));
        let p = Pan::parse("5555555555554444").unwrap();
        assert_eq!(format!("{p:?}"), "Pan(555555******4444)");
    }

    #[test]
    fn expiry_rules() {
        assert_eq!(CardExpiry::parse("2912").unwrap().yymm(), "2912");
        assert!(CardExpiry::parse("2913").is_none());
        assert!(CardExpiry::parse("2900").is_none());
        assert!(CardExpiry::parse("29-1").is_none());
        // 2026-11-23T00:00:00Z
        let now = 1_795_392_000_000;
        assert!(CardExpiry::parse("2610").unwrap().is_past(now));
        assert!(!CardExpiry::parse("2611").unwrap().is_past(now));
        assert!(!CardExpiry::parse("2612").unwrap().is_past(now));
    }
}
