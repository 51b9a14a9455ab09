//! The message type indicator: four digits saying what a message is.
//!
//! ISO 8583:1987 reads them as *version* (`0` = 1987), *class* (`1` authorization, `2` financial,
//! `4` reversal, `8` network management), *function* (`0` request, `1` request response, `2`
//! advice, `3` advice response) and *origin* (`0` acquirer). `0200` is a financial request from the
//! acquirer, `0210` its response, `0420` a reversal advice.
//!
//! The codec checks only that an MTI is four ASCII digits (docs/iso8583.md "Wire format"); which types
//! the server accepts is the server's business (it answers unknown ones itself).

use std::fmt;
use std::str::FromStr;

use super::error::{CodecError, ErrorKind, Location};
use super::spec::Charset;

/// A message type indicator: always four ASCII digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

impl Mti {
    /// `0100` authorization request (docs/iso8583.md "Terminal tokenization").
    pub const AUTHORIZATION_REQUEST: Mti = Mti(*b"0100");
    /// `0110` authorization request response.
    pub const AUTHORIZATION_RESPONSE: Mti = Mti(*b"0110");
    /// `0200` financial request (purchase, refund).
    pub const FINANCIAL_REQUEST: Mti = Mti(*b"0200");
    /// `0210` financial request response.
    pub const FINANCIAL_RESPONSE: Mti = Mti(*b"0210");
    /// `0400` reversal request.
    pub const REVERSAL_REQUEST: Mti = Mti(*b"0400");
    /// `0410` reversal request response.
    pub const REVERSAL_RESPONSE: Mti = Mti(*b"0410");
    /// `0420` reversal advice.
    pub const REVERSAL_ADVICE: Mti = Mti(*b"0420");
    /// `0430` reversal advice response.
    pub const REVERSAL_ADVICE_RESPONSE: Mti = Mti(*b"0430");
    /// `0800` network management request (echo: DE70 `301`).
    pub const NETWORK_REQUEST: Mti = Mti(*b"0800");
    /// `0810` network management request response.
    pub const NETWORK_RESPONSE: Mti = Mti(*b"0810");

    /// Reads an MTI from its four characters.
    pub fn from_bytes(bytes: &[u8]) -> Result<Mti, CodecError> {
        match bytes {
            &[a, b, c, d] if bytes.iter().all(u8::is_ascii_digit) => Ok(Mti([a, b, c, d])),
            [_, _, _, _] => Err(CodecError::new(Location::Mti, ErrorKind::BadCharacters { charset: Charset::Numeric })),
            _ => Err(CodecError::new(Location::Mti, ErrorKind::WrongLength { len: bytes.len(), expected: 4 })),
        }
    }

    /// The four digits as text.
    pub fn as_str(&self) -> &str {
        // Always four ASCII digits, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The four digits as bytes.
    pub const fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }

    /// The third digit: 0 request, 1 request response, 2 advice, 3 advice response, …
    pub const fn function(&self) -> u8 {
        self.0[2].wrapping_sub(b'0')
    }

    /// The MTI of the answer to this message: function 0 → 1, 2 → 3 (`0200` → `0210`,
    /// `0420` → `0430`). `None` for messages that get no answer (responses, notifications).
    pub const fn response(&self) -> Option<Mti> {
        let [v, c, f, o] = self.0;
        match f {
            b'0' | b'2' => Some(Mti([v, c, f + 1, o])),
            _ => None,
        }
    }
}

impl FromStr for Mti {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mti::from_bytes(s.as_bytes())
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_respond() {
        let m: Mti = "0200".parse().expect("digits");
        assert_eq!(m, Mti::FINANCIAL_REQUEST);
        assert_eq!(m.response(), Some(Mti::FINANCIAL_RESPONSE));
        assert_eq!(Mti::REVERSAL_ADVICE.response(), Some(Mti::REVERSAL_ADVICE_RESPONSE));
        assert_eq!(Mti::NETWORK_REQUEST.response(), Some(Mti::NETWORK_RESPONSE));
        assert_eq!(Mti::AUTHORIZATION_REQUEST.response(), Some(Mti::AUTHORIZATION_RESPONSE));
        assert_eq!(Mti::FINANCIAL_RESPONSE.response(), None);
        assert_eq!(m.function(), 0);
        assert_eq!(m.to_string(), "0200");
        for bad in ["02A0", "020", "02000", "", " 200", "0２00"] {
            let e = bad.parse::<Mti>().expect_err(bad);
            assert_eq!(e.location(), Location::Mti);
        }
    }
}
