//! payShield host-command framing and field reading: the message after the TCP length prefix is
//! `header (N characters) ‖ command code (2) ‖ fields`; the answer is `header ‖ response code (2) ‖
//! error code (2) ‖ fields`. This module owns splitting a message, the field cursor every command
//! parser uses, and the error codes; it never panics, whatever the bytes.

/// A 2-digit payShield error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payShield error code {}{}", char::from(self.0[0]), char::from(self.0[1]))]
pub struct Code(pub [u8; 2]);

impl Code {
    pub const OK: Code = Code(*b"00");
    /// Verification failure (PIN, CVV, MAC, cryptogram).
    pub const VERIFICATION_FAILED: Code = Code(*b"01");
    /// Key inappropriate length for the algorithm.
    pub const KEY_LENGTH: Code = Code(*b"02");
    pub const INVALID_KEY_TYPE: Code = Code(*b"04");
    /// The first key of the command fails its parity check.
    pub const SOURCE_PARITY: Code = Code(*b"10");
    /// The second key of the command fails its parity check.
    pub const DESTINATION_PARITY: Code = Code(*b"11");
    pub const INVALID_INPUT: Code = Code(*b"15");
    /// The deciphered PIN block is not a valid block of its format.
    pub const INVALID_PIN_BLOCK: Code = Code(*b"20");
    pub const INVALID_PIN_BLOCK_FORMAT: Code = Code(*b"23");
    /// PIN shorter than 4 or longer than 12 digits (or than the stated maximum).
    pub const PIN_LENGTH: Code = Code(*b"24");
    pub const INVALID_KEY_SCHEME: Code = Code(*b"26");
    /// A key scheme or mode this HSM does not offer.
    pub const NOT_SUPPORTED: Code = Code(*b"68");
    /// An internal failure (random generator).
    pub const INTERNAL: Code = Code(*b"99");
}

/// The response code of a command code: the second character plus one (`NC`→`ND`, `A0`→`A1`).
pub fn response_code(command: [u8; 2]) -> [u8; 2] {
    [command[0], command[1].wrapping_add(1)]
}

/// The answer to a command this HSM does not know (and to a message too short to hold one): response
/// code `ZZ`, error code `00`, as payShield answers an unrecognised command.
pub const UNKNOWN_COMMAND: [u8; 2] = *b"ZZ";

/// A cursor over a command's fields. Every read checks bounds and returns [`Code::INVALID_INPUT`] on a
/// short or malformed field.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub fn peek(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Code> {
        if self.data.len() < n {
            return Err(Code::INVALID_INPUT);
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8, Code> {
        Ok(self.take(1)?[0])
    }

    /// Consumes `c` if it is next; tells whether it was.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.data = &self.data[1..];
            true
        } else {
            false
        }
    }

    /// Requires `c` next.
    pub fn expect(&mut self, c: u8) -> Result<(), Code> {
        if self.eat(c) { Ok(()) } else { Err(Code::INVALID_INPUT) }
    }

    /// `n` decimal digits, as text.
    pub fn digits(&mut self, n: usize) -> Result<&'a str, Code> {
        let d = self.take(n)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return Err(Code::INVALID_INPUT);
        }
        std::str::from_utf8(d).map_err(|_| Code::INVALID_INPUT)
    }

    /// `n` decimal digits as a number (n ≤ 9).
    pub fn number(&mut self, n: usize) -> Result<usize, Code> {
        self.digits(n)?.parse().map_err(|_| Code::INVALID_INPUT)
    }

    /// `n` hexadecimal characters as a number (n ≤ 8).
    pub fn hex_number(&mut self, n: usize) -> Result<usize, Code> {
        let t = self.take(n)?;
        let s = std::str::from_utf8(t).map_err(|_| Code::INVALID_INPUT)?;
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Code::INVALID_INPUT);
        }
        usize::from_str_radix(s, 16).map_err(|_| Code::INVALID_INPUT)
    }

    /// `2n` hexadecimal characters, decoded to `n` bytes.
    pub fn hex(&mut self, n_bytes: usize) -> Result<Vec<u8>, Code> {
        let chars = n_bytes.checked_mul(2).ok_or(Code::INVALID_INPUT)?;
        hex::decode(self.take(chars)?).map_err(|_| Code::INVALID_INPUT)
    }

    /// Decimal digits up to (not including) `delim`, which is consumed; at most `max` digits.
    pub fn digits_until(&mut self, delim: u8, max: usize) -> Result<&'a str, Code> {
        let end = self.data.iter().position(|&b| b == delim).ok_or(Code::INVALID_INPUT)?;
        if end == 0 || end > max {
            return Err(Code::INVALID_INPUT);
        }
        let d = self.digits(end)?;
        self.expect(delim)?;
        Ok(d)
    }
}

/// A parsed message: the header as received, the command code and the fields.
pub struct Message<'a> {
    pub header: &'a [u8],
    pub command: Option<[u8; 2]>,
    pub fields: &'a [u8],
}

/// Splits a message (the bytes after the 2-byte length) with a header of `header_len` characters. A
/// message too short for header and command keeps what header it has and no command.
pub fn split(msg: &[u8], header_len: usize) -> Message<'_> {
    let header = &msg[..header_len.min(msg.len())];
    let rest = &msg[header.len()..];
    match rest {
        [a, b, fields @ ..] => Message { header, command: Some([*a, *b]), fields },
        _ => Message { header, command: None, fields: &[] },
    }
}

/// The answer: header ‖ response code ‖ error code ‖ fields.
pub fn answer(header: &[u8], response: [u8; 2], code: Code, fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 4 + fields.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&response);
    out.extend_from_slice(&code.0);
    out.extend_from_slice(fields);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn response_codes() {
        assert_eq!(&response_code(*b"NC"), b"ND");
        assert_eq!(&response_code(*b"A0"), b"A1");
        assert_eq!(&response_code(*b"M8"), b"M9");
    }

    #[test]
    fn split_short_messages() {
        let m = split(b"HDR", 4);
        assert_eq!(m.header, b"HDR");
        assert!(m.command.is_none());
        let m = split(b"HEADNC", 4);
        assert_eq!(m.command, Some(*b"NC"));
        assert!(m.fields.is_empty());
    }

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(b"12;");
        assert_eq!(r.digits_until(b';', 19).unwrap(), "12");
        assert!(r.is_empty());
        assert_eq!(r.take(1), Err(Code::INVALID_INPUT));
        let mut r = Reader::new(b"12");
        assert_eq!(r.digits_until(b';', 19), Err(Code::INVALID_INPUT));
    }
}
