//! [`CodecError`]: what went wrong, where, and what could still be read.
//!
//! A terminal that sends a malformed request still expects an answer: a message whose MTI can be
//! read gets that MTI's answer with `30` (format error), echoing the DE11 (STAN) and DE41 (terminal
//! id) that could be read (docs/iso8583.md "Decisions", "Malformed messages"). So a decode error
//! carries, besides *which element* failed and *how*, the **partial message**: the MTI and every
//! field that was read and valid before decoding stopped.
//!
//! Decoding stops at the first *framing* problem (truncation, a bad length prefix, a length over the
//! maximum, a bad bitmap) because after that the position of the following fields is unknown. A
//! *content* problem (a letter in a numeric field, malformed BER-TLV in DE55) does not move
//! anything, so decoding carries on to collect the remaining fields — STAN and terminal id usually
//! come after DE2–DE4 — and then reports the first problem. The field that failed is never in the
//! partial message.
//!
//! An error never contains a field's value (DE2 is a PAN, DE35/45 track data, DE52 a PIN block, DE55
//! card cryptograms): only its number, the kind of problem, lengths and byte offsets. `Debug` shows
//! no more than `Display` plus the MTI, STAN and terminal id.

use std::fmt;

use super::message::Message;
use super::mti::Mti;
use super::spec::Charset;
use super::tlv::TlvError;

/// Which element of the message a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// The message type indicator (the first 4 characters).
    Mti,
    /// The primary bitmap (characters 5–20).
    PrimaryBitmap,
    /// The secondary bitmap (characters 21–36, present when bit 1 is set).
    SecondaryBitmap,
    /// A data element, by number (its length prefix or its value).
    Field(u8),
    /// The message as a whole (trailing bytes, total size, an unknown key in a field list).
    Message,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Mti => f.write_str("MTI"),
            Location::PrimaryBitmap => f.write_str("primary bitmap"),
            Location::SecondaryBitmap => f.write_str("secondary bitmap"),
            Location::Field(de) => write!(f, "DE{de}"),
            Location::Message => f.write_str("message"),
        }
    }
}

/// What the problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input ends inside this element.
    Truncated,
    /// A required element is absent (the MTI in a field list).
    Missing,
    /// A variable-length field's length prefix is not all ASCII decimal digits.
    BadLengthPrefix,
    /// A variable-length field longer than its maximum.
    TooLong { len: usize, max: usize },
    /// A fixed-length field of the wrong length (or a number that does not fit its width).
    WrongLength { len: usize, expected: usize },
    /// A character outside the field's character set (for the MTI: not 4 digits).
    BadCharacters { charset: Charset },
    /// A hex field (DE55) with an odd number of hex characters.
    OddHexLength,
    /// A bitmap that is not 16 upper-case hex characters.
    BadBitmap,
    /// A data element this dialect does not have: 1 and 65 (bitmaps), 0 and above 128.
    Unsupported,
    /// A field-list key that is neither `"t"` nor a DE number `"2"`–`"128"`.
    UnknownKey,
    /// Bytes left over after the last field the bitmaps announce.
    TrailingData { extra: usize },
    /// DE55 is not well-formed BER-TLV.
    Tlv(TlvError),
    /// The encoded message would be longer than [`super::MAX_MESSAGE_LEN`] (the 2-byte frame limit).
    MessageTooLarge { len: usize },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated => f.write_str("message ends inside this element"),
            ErrorKind::Missing => f.write_str("missing"),
            ErrorKind::BadLengthPrefix => f.write_str("length prefix is not decimal digits"),
            ErrorKind::TooLong { len, max } => write!(f, "length {len} exceeds the maximum {max}"),
            ErrorKind::WrongLength { len, expected } => write!(f, "length {len}, must be exactly {expected}"),
            ErrorKind::BadCharacters { charset } => write!(f, "characters outside {}", charset.name()),
            ErrorKind::OddHexLength => f.write_str("odd number of hex characters"),
            ErrorKind::BadBitmap => f.write_str("not 16 upper-case hex characters"),
            ErrorKind::Unsupported => f.write_str("not a data element of this dialect"),
            ErrorKind::UnknownKey => f.write_str("unknown field key"),
            ErrorKind::TrailingData { extra } => write!(f, "{extra} bytes after the last field"),
            ErrorKind::Tlv(e) => write!(f, "ICC data is not BER-TLV: {} at byte {}", e.kind, e.offset),
            ErrorKind::MessageTooLarge { len } => write!(f, "{len} bytes, more than a frame can carry"),
        }
    }
}

/// Adds " at byte N" to the message when the offset is known.
struct At(Option<usize>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(o) => write!(f, " at byte {o}"),
            None => Ok(()),
        }
    }
}

/// An ISO 8583 codec error. Every one is a *format* error (response code `30`, vector kind
/// `format`); [`CodecError::field`] names the DE to report.
#[derive(Clone, thiserror::Error)]
#[error("ISO 8583 {location}: {kind}{}", At(*.offset))]
pub struct CodecError {
    location: Location,
    kind: ErrorKind,
    offset: Option<usize>,
    partial: Option<Box<Message>>,
}

impl CodecError {
    pub(crate) fn new(location: Location, kind: ErrorKind) -> Self {
        CodecError { location, kind, offset: None, partial: None }
    }

    pub(crate) fn for_field(de: u8, kind: ErrorKind) -> Self {
        Self::new(Location::Field(de), kind)
    }

    pub(crate) fn at(mut self, offset: usize) -> Self {
        self.offset = Some(offset);
        self
    }

    pub(crate) fn with_partial(mut self, partial: Option<Message>) -> Self {
        self.partial = partial.map(Box::new);
        self
    }

    /// Which element failed.
    pub fn location(&self) -> Location {
        self.location
    }

    /// What was wrong with it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The DE number that failed, when the problem is in a data element (for a `30` naming it).
    pub fn field(&self) -> Option<u8> {
        match self.location {
            Location::Field(de) => Some(de),
            _ => None,
        }
    }

    /// Byte offset in the decoded input where the failing element starts (decode errors only).
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }

    /// What decoding could read before (or besides) the problem: the MTI and every valid field read.
    /// `None` when the MTI itself could not be read, and for errors that do not come from decoding.
    pub fn partial(&self) -> Option<&Message> {
        self.partial.as_deref()
    }

    /// Takes the partial message out.
    pub fn into_partial(self) -> Option<Message> {
        self.partial.map(|b| *b)
    }

    /// The request's MTI, if it could be read.
    pub fn mti(&self) -> Option<Mti> {
        self.partial().map(Message::mti)
    }

    /// The request's DE11 (STAN), if it was read and valid.
    pub fn stan(&self) -> Option<&str> {
        self.partial().and_then(Message::stan)
    }

    /// The request's DE41 (terminal id), if it was read and valid.
    pub fn terminal_id(&self) -> Option<&str> {
        self.partial().and_then(Message::terminal_id)
    }
}

impl fmt::Debug for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecError")
            .field("location", &self.location)
            .field("kind", &self.kind)
            .field("offset", &self.offset)
            .field("mti", &self.mti())
            .field("stan", &self.stan())
            .field("terminal_id", &self.terminal_id())
            .finish()
    }
}

/// Two errors are equal when they say the same thing (location, kind, offset) about the same
/// partial message.
impl PartialEq for CodecError {
    fn eq(&self, other: &Self) -> bool {
        self.location == other.location
            && self.kind == other.kind
            && self.offset == other.offset
            && self.partial == other.partial
    }
}

impl Eq for CodecError {}
