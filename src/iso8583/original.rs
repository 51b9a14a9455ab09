//! DE90, original data elements: which earlier message a reversal or cancellation refers to.
//!
//! 42 digits (docs/iso8583.md "Fields used", ISO 8583:1987 `n 42`):
//!
//! | chars | what |
//! | --- | --- |
//! | 1–4 | original MTI (`0200`) |
//! | 5–10 | original STAN (DE11) |
//! | 11–20 | original transmission date and time (DE7, `MMDDhhmmss`) |
//! | 21–31 | original acquiring institution id (DE32), right-justified, zero-filled to 11 digits |
//! | 32–42 | original forwarding institution id (DE33) the same way; zeros in this dialect |
//!
//! This dialect fills the last part with 11 zeros; [`OriginalData::new`] writes zeros and
//! [`OriginalData::parse`] keeps whatever digits arrived (ISO gives them a meaning, and refusing them
//! would help nobody).

use std::fmt;

use super::error::{CodecError, ErrorKind};
use super::mti::Mti;
use super::spec::Charset;

/// DE90 as its parts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OriginalData {
    digits: [u8; 42],
}

const DE: u8 = 90;

impl OriginalData {
    /// From the original message's MTI, STAN (6 digits), DE7 (10 digits) and DE32 (up to 11 digits,
    /// as it was sent — this right-justifies it).
    pub fn new(mti: Mti, stan: &str, transmission_date_time: &str, acquirer_id: &str) -> Result<Self, CodecError> {
        let mut digits = [b'0'; 42];
        put(&mut digits, 0, mti.as_bytes())?;
        put(&mut digits, 4, fixed_digits(stan, 6)?)?;
        put(&mut digits, 10, fixed_digits(transmission_date_time, 10)?)?;
        let acq = acquirer_id.as_bytes();
        if acq.len() > 11 {
            return Err(CodecError::for_field(DE, ErrorKind::TooLong { len: acq.len(), max: 11 }));
        }
        if !Charset::Numeric.accepts(acq) {
            return Err(bad_digits());
        }
        put(&mut digits, 20 + 11 - acq.len(), acq)?;
        Ok(OriginalData { digits })
    }

    /// Reads DE90 as it travels (42 digits).
    pub fn parse(value: &str) -> Result<Self, CodecError> {
        let bytes = value.as_bytes();
        let digits: [u8; 42] = bytes
            .try_into()
            .map_err(|_| CodecError::for_field(DE, ErrorKind::WrongLength { len: bytes.len(), expected: 42 }))?;
        if !Charset::Numeric.accepts(&digits) {
            return Err(bad_digits());
        }
        Ok(OriginalData { digits })
    }

    fn part(&self, from: usize, len: usize) -> &str {
        // All 42 bytes are ASCII digits, and the ranges below are within them.
        self.digits.get(from..from + len).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
    }

    /// The original MTI.
    pub fn mti(&self) -> Mti {
        Mti::from_bytes(self.part(0, 4).as_bytes()).unwrap_or(Mti::FINANCIAL_REQUEST)
    }

    /// The original STAN (6 digits).
    pub fn stan(&self) -> &str {
        self.part(4, 6)
    }

    /// The original DE7 (10 digits).
    pub fn transmission_date_time(&self) -> &str {
        self.part(10, 10)
    }

    /// The original DE32 right-justified to 11 digits.
    pub fn acquirer_id(&self) -> &str {
        self.part(20, 11)
    }

    /// The last 11 digits (original forwarding institution; zeros in this dialect).
    pub fn forwarder_id(&self) -> &str {
        self.part(31, 11)
    }

    /// True when `de32` (as sent in the original's DE32) is the acquirer named here: equal once
    /// right-justified and zero-filled to 11 digits.
    pub fn acquirer_matches(&self, de32: &str) -> bool {
        let d = de32.as_bytes();
        if d.len() > 11 || !Charset::Numeric.accepts(d) {
            return false;
        }
        let acq = self.acquirer_id().as_bytes();
        let (pad, tail) = acq.split_at(11 - d.len());
        pad.iter().all(|&b| b == b'0') && tail == d
    }

    /// The 42 digits as they travel.
    pub fn as_str(&self) -> &str {
        self.part(0, 42)
    }
}

impl fmt::Debug for OriginalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OriginalData({})", self.as_str())
    }
}

impl fmt::Display for OriginalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn bad_digits() -> CodecError {
    CodecError::for_field(DE, ErrorKind::BadCharacters { charset: Charset::Numeric })
}

fn fixed_digits(s: &str, len: usize) -> Result<&[u8], CodecError> {
    let b = s.as_bytes();
    if b.len() != len {
        return Err(CodecError::for_field(DE, ErrorKind::WrongLength { len: b.len(), expected: len }));
    }
    if !Charset::Numeric.accepts(b) {
        return Err(bad_digits());
    }
    Ok(b)
}

fn put(digits: &mut [u8; 42], at: usize, src: &[u8]) -> Result<(), CodecError> {
    let dst = at
        .checked_add(src.len())
        .and_then(|end| digits.get_mut(at..end))
        .ok_or_else(|| CodecError::for_field(DE, ErrorKind::WrongLength { len: src.len(), expected: 42 }))?;
    dst.copy_from_slice(src);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let o = OriginalData::new(Mti::FINANCIAL_REQUEST, "000123", "0612143015", "12345").expect("valid");
        assert_eq!(o.as_str(), "020000012306121430150000001234500000000000");
        assert_eq!(o.as_str().len(), 42);
        assert_eq!(o.mti(), Mti::FINANCIAL_REQUEST);
        assert_eq!(o.stan(), "000123");
        assert_eq!(o.transmission_date_time(), "0612143015");
        assert_eq!(o.acquirer_id(), "00000012345");
        assert_eq!(o.forwarder_id(), "00000000000");
        assert!(o.acquirer_matches("12345"));
        assert!(o.acquirer_matches("0012345"));
        assert!(!o.acquirer_matches("1234"));
        assert!(!o.acquirer_matches("123456789012"));
        assert_eq!(OriginalData::parse(o.as_str()), Ok(o));

        let full = OriginalData::new(Mti::FINANCIAL_REQUEST, "000001", "0101000000", "12345678901").expect("11 digits");
        assert_eq!(full.acquirer_id(), "12345678901");
        let empty = OriginalData::new(Mti::FINANCIAL_REQUEST, "000001", "0101000000", "").expect("empty DE32");
        assert_eq!(empty.acquirer_id(), "00000000000");
    }

    #[test]
    fn refuses() {
        let m = Mti::FINANCIAL_REQUEST;
        assert!(OriginalData::new(m, "12345", "0612143015", "1").is_err());
        assert!(OriginalData::new(m, "00012A", "0612143015", "1").is_err());
        assert!(OriginalData::new(m, "000123", "061214301", "1").is_err());
        assert!(OriginalData::new(m, "000123", "0612143015", "123456789012").is_err());
        assert!(OriginalData::new(m, "000123", "0612143015", "12a").is_err());
        assert!(OriginalData::parse("0200").is_err());
        assert!(OriginalData::parse("02000001230612143015000000123450000000000A").is_err());
        let e = OriginalData::parse("x").expect_err("short");
        assert_eq!(e.field(), Some(90));
    }
}
