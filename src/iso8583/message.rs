//! [`Message`]: an MTI and its data elements, and the codec between it and bytes.
//!
//! # Wire format (docs/iso8583.md "Wire format")
//!
//! ```text
//! 0200 7234054128C28805 16 4761739001010010 000000 000000012500 …
//! MTI  primary bitmap   LL DE2              DE3    DE4
//! ```
//!
//! 1. **MTI**: 4 ASCII digits ([`Mti`]).
//! 2. **Primary bitmap**: 16 hex characters (written upper case, read in either case); bit 1 set means a **secondary bitmap** (16
//!    more) follows for DE65–128 ([`super::bitmap`]).
//! 3. **Fields**, in DE order, each as the table in [`super::spec`] says: fixed fields as they are,
//!    LLVAR/LLLVAR fields after 2/3 ASCII digits of length. Nothing may follow the last field.
//!
//! The 2-byte length that frames a message on TCP is not part of it: `decode` takes, and `encode`
//! gives, the bytes after that prefix.
//!
//! # Representation
//!
//! A message is the MTI, a [`Bitmap`] of the fields present, and one byte buffer holding every
//! value, indexed by a fixed array of `(start, len)` spans by DE number — no map and no allocation
//! per field. `decode` copies the input once and points the spans into it; setting a field writes
//! into the buffer (in place when the new value is not longer). Every value in a `Message` has passed
//! the field's length and character-set checks, so getters hand out `&str` and `encode` cannot meet
//! an invalid field.
//!
//! Values are the characters as they travel: numbers keep their leading zeros (`"000000012500"`), hex
//! fields (DE52, DE55) are hex text. Typed helpers convert ([`Message::amount`],
//! [`Message::icc_data`], [`Message::original_data`]).
//!
//! # Card data
//!
//! `Debug` never prints DE2, 34, 35, 36, 45, 52 or 55 (only their length), errors never contain
//! values, and a message that ever held one of those fields wipes its buffer when dropped.

use std::fmt;

use zeroize::Zeroize;

use super::bitmap::{self, Bitmap, HEX_UPPER};
use super::error::{CodecError, ErrorKind, Location};
use super::mti::Mti;
use super::original::OriginalData;
use super::spec::{self, Charset, FieldSpec, LengthKind};
use super::tlv;

/// The longest message a 2-byte big-endian length frame can carry.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// DE55 holds at most 510 hex characters: 255 bytes.
const MAX_ICC_BYTES: usize = 255;

/// Where one field's value is in the buffer.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        let start = self.start as usize;
        start..start + self.len as usize
    }
}

/// An ISO 8583:1987 message: MTI and data elements 2–128.
#[derive(Clone)]
pub struct Message {
    mti: Mti,
    present: Bitmap,
    spans: [Span; 129],
    buf: Vec<u8>,
    /// Set once a sensitive field has been in the buffer: wipe it on drop.
    wipe: bool,
}

impl Drop for Message {
    fn drop(&mut self) {
        if self.wipe {
            self.buf.zeroize();
        }
    }
}

/// Checks one value against its field's spec (length and characters; DE55 also hex pairs and
/// BER-TLV). Returns what is wrong, never the value.
fn check_value(de: u8, spec: &FieldSpec, value: &[u8]) -> Result<(), ErrorKind> {
    let len = value.len();
    let max = spec.max_len();
    match spec.kind {
        LengthKind::Fixed if len != max => return Err(ErrorKind::WrongLength { len, expected: max }),
        LengthKind::LlVar | LengthKind::LllVar if len > max => return Err(ErrorKind::TooLong { len, max }),
        _ => {}
    }
    if !spec.charset.accepts(value) {
        return Err(ErrorKind::BadCharacters { charset: spec.charset });
    }
    if de == 55 {
        check_icc_hex(value)?;
    }
    Ok(())
}

/// DE55: an even number of hex characters (already checked to be hex) that decode to BER-TLV.
fn check_icc_hex(value: &[u8]) -> Result<(), ErrorKind> {
    if !value.len().is_multiple_of(2) {
        return Err(ErrorKind::OddHexLength);
    }
    let mut bytes = [0u8; MAX_ICC_BYTES];
    let n = value.len() / 2;
    let out = bytes.get_mut(..n).ok_or(ErrorKind::TooLong { len: value.len(), max: 2 * MAX_ICC_BYTES })?;
    for (o, pair) in out.iter_mut().zip(value.chunks_exact(2)) {
        *o = match pair {
            &[hi, lo] => (hex_val(hi) << 4) | hex_val(lo),
            _ => 0,
        };
    }
    tlv::validate(out).map_err(ErrorKind::Tlv)
}

/// A hex digit's value (callers have checked it is one).
#[inline]
pub(super) fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        b'a'..=b'f' => c - b'a' + 10,
        _ => 0,
    }
}

/// Parses a length prefix of 2 or 3 ASCII digits.
#[inline]
fn parse_len(digits: &[u8]) -> Option<usize> {
    digits.iter().try_fold(0usize, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + usize::from(d - b'0')))
}

impl Message {
    /// An empty message of type `mti`.
    pub fn new(mti: Mti) -> Message {
        Message {
            mti,
            present: Bitmap::new(),
            spans: [Span::default(); 129],
            buf: Vec::with_capacity(256),
            wipe: false,
        }
    }

    /// The message type.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// Changes the message type.
    pub fn set_mti(&mut self, mti: Mti) -> &mut Self {
        self.mti = mti;
        self
    }

    /// The set of data elements present (bit 1 is never set: the secondary bitmap is derived).
    pub fn bitmap(&self) -> Bitmap {
        self.present
    }

    /// True when DE `de` is present.
    pub fn contains(&self, de: u8) -> bool {
        self.present.contains(de)
    }

    /// Number of data elements present.
    pub fn len(&self) -> usize {
        self.present.len()
    }

    /// True when no data element is present.
    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// The value of DE `de` as it travels, without its length prefix.
    #[inline]
    pub fn get(&self, de: u8) -> Option<&str> {
        // Every stored value is ASCII (checked on the way in), so this conversion never fails.
        self.get_bytes(de).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The value of DE `de` as bytes.
    #[inline]
    pub fn get_bytes(&self, de: u8) -> Option<&[u8]> {
        if !self.present.contains(de) {
            return None;
        }
        let span = self.spans.get(usize::from(de))?;
        self.buf.get(span.range())
    }

    /// Sets DE `de` to `value` (the characters as they travel: `"000000012500"`, not `125`). Checks
    /// the field's length and character set (DE55: also hex pairs and BER-TLV); on error the message
    /// is unchanged.
    pub fn set(&mut self, de: u8, value: &str) -> Result<&mut Self, CodecError> {
        self.set_bytes(de, value.as_bytes())
    }

    /// Like [`Message::set`], from bytes (which must be ASCII of the field's character set).
    pub fn set_bytes(&mut self, de: u8, value: &[u8]) -> Result<&mut Self, CodecError> {
        let spec = spec::field_spec(de).ok_or_else(|| CodecError::for_field(de, ErrorKind::Unsupported))?;
        check_value(de, spec, value).map_err(|k| CodecError::for_field(de, k))?;
        self.store(de, value)?;
        Ok(self)
    }

    /// Writes a checked value into the buffer.
    fn store(&mut self, de: u8, value: &[u8]) -> Result<(), CodecError> {
        let too_large = || CodecError::new(Location::Message, ErrorKind::MessageTooLarge { len: usize::MAX });
        let len = u32::try_from(value.len()).map_err(|_| too_large())?;
        if spec::is_sensitive(de) {
            self.wipe = true;
        }
        let present = self.present.contains(de);
        let slot =
            self.spans.get_mut(usize::from(de)).ok_or_else(|| CodecError::for_field(de, ErrorKind::Unsupported))?;
        if present && value.len() <= slot.len as usize {
            // Overwrite in place, and clear what the old value left behind.
            let old = slot.range();
            if let Some(dst) = self.buf.get_mut(old) {
                let (head, tail) = dst.split_at_mut(value.len());
                head.copy_from_slice(value);
                tail.fill(0);
            }
            slot.len = len;
        } else {
            let start = u32::try_from(self.buf.len()).map_err(|_| too_large())?;
            start.checked_add(len).ok_or_else(too_large)?;
            self.buf.extend_from_slice(value);
            *slot = Span { start, len };
        }
        self.present.insert(de);
        Ok(())
    }

    /// Removes DE `de`; true if it was present.
    pub fn remove(&mut self, de: u8) -> bool {
        let was = self.present.contains(de);
        self.present.remove(de);
        was
    }

    /// The data elements present, in ascending DE order, with their values.
    pub fn fields(&self) -> impl Iterator<Item = (u8, &str)> + '_ {
        self.present.iter().filter_map(move |de| self.get(de).map(|v| (de, v)))
    }

    /// Builds a message from `(key, value)` pairs as in the conformance vectors: key `"t"` is the
    /// MTI, `"2"`–`"128"` are data elements. Bitmaps are derived, so `"p"`, `"1"` and `"65"` are
    /// refused, like any other key.
    pub fn from_fields<'a, I>(fields: I) -> Result<Message, CodecError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut mti = None;
        let mut msg = Message::new(Mti::FINANCIAL_REQUEST);
        for (key, value) in fields {
            if key == "t" {
                mti = Some(value.parse::<Mti>()?);
                continue;
            }
            let de = key
                .parse::<u8>()
                .ok()
                .filter(|de| *de <= 128 && de.to_string() == key)
                .ok_or_else(|| CodecError::new(Location::Message, ErrorKind::UnknownKey))?;
            msg.set(de, value)?;
        }
        msg.mti = mti.ok_or_else(|| CodecError::new(Location::Mti, ErrorKind::Missing))?;
        Ok(msg)
    }

    // ----- decoding -----

    /// Decodes one message (the bytes after the TCP length prefix).
    ///
    /// On error, [`CodecError::partial`] holds the MTI and the valid fields read (see
    /// [`super::error`]).
    pub fn decode(input: &[u8]) -> Result<Message, CodecError> {
        // MTI.
        let Some(mti_bytes) = input.get(..4) else {
            return Err(CodecError::new(Location::Mti, ErrorKind::Truncated).at(0));
        };
        let mti = Mti::from_bytes(mti_bytes).map_err(|e| e.at(0))?;

        // Bitmaps.
        let mut d = Decoder {
            input,
            mti,
            announced: Bitmap::new(),
            good: Bitmap::new(),
            spans: [Span::default(); 129],
            first_error: None,
        };
        let primary = match input.get(4..20) {
            None => return Err(d.fail(Location::PrimaryBitmap, ErrorKind::Truncated, 4)),
            Some(text) => match bitmap::parse_hex(text) {
                Some(w) => w,
                None => return Err(d.fail(Location::PrimaryBitmap, ErrorKind::BadBitmap, 4)),
            },
        };
        let mut pos = 20;
        let secondary = if primary & (1 << 63) != 0 {
            let word = match input.get(20..36) {
                None => return Err(d.fail(Location::SecondaryBitmap, ErrorKind::Truncated, 20)),
                Some(text) => match bitmap::parse_hex(text) {
                    Some(w) => w,
                    None => return Err(d.fail(Location::SecondaryBitmap, ErrorKind::BadBitmap, 20)),
                },
            };
            pos = 36;
            word
        } else {
            0
        };
        let announced = Bitmap::from_words(primary & !(1 << 63), secondary);
        d.announced = announced;
        if announced.contains(65) {
            return Err(d.fail(Location::Field(65), ErrorKind::Unsupported, 20));
        }

        // Fields.
        for de in announced.iter() {
            let Some(spec) = spec::field_spec(de) else {
                return Err(d.fail(Location::Field(de), ErrorKind::Unsupported, pos));
            };
            let field_start = pos;
            let len = match spec.kind {
                LengthKind::Fixed => spec.max_len(),
                kind => {
                    let n = kind.prefix_len();
                    let Some(digits) = input.get(pos..pos + n) else {
                        return Err(d.fail(Location::Field(de), ErrorKind::Truncated, field_start));
                    };
                    let Some(len) = parse_len(digits) else {
                        return Err(d.fail(Location::Field(de), ErrorKind::BadLengthPrefix, field_start));
                    };
                    if len > spec.max_len() {
                        let kind = ErrorKind::TooLong { len, max: spec.max_len() };
                        return Err(d.fail(Location::Field(de), kind, field_start));
                    }
                    pos += n;
                    len
                }
            };
            let Some(value) = input.get(pos..pos + len) else {
                return Err(d.fail(Location::Field(de), ErrorKind::Truncated, field_start));
            };
            match check_value(de, spec, value) {
                Ok(()) => {
                    // pos + len ≤ input.len(); offsets past u32 are refused by `span`.
                    match Decoder::span(pos, len) {
                        Some(span) => {
                            if let Some(slot) = d.spans.get_mut(usize::from(de)) {
                                *slot = span;
                            }
                            d.good.insert(de);
                        }
                        None => {
                            let kind = ErrorKind::MessageTooLarge { len: input.len() };
                            return Err(d.fail(Location::Message, kind, field_start));
                        }
                    }
                }
                Err(kind) => d.note(Location::Field(de), kind, field_start),
            }
            pos += len;
        }
        if pos != input.len() {
            let kind = ErrorKind::TrailingData { extra: input.len() - pos };
            return Err(d.fail(Location::Message, kind, pos));
        }
        if let Some(e) = d.first_error.take() {
            return Err(e.with_partial(Some(d.message(true))));
        }
        Ok(d.message(false))
    }

    // ----- encoding -----

    /// The length of the encoded message.
    pub fn encoded_len(&self) -> usize {
        let bitmaps = if self.present.needs_secondary() { 32 } else { 16 };
        self.present.iter().fold(4 + bitmaps, |acc, de| {
            let prefix = spec::field_spec(de).map_or(0, |s| s.kind.prefix_len());
            let len = self.spans.get(usize::from(de)).map_or(0, |s| s.len as usize);
            acc + prefix + len
        })
    }

    /// Encodes the message (without the TCP length prefix).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded message to `out` (e.g. after a reserved 2-byte frame length). Fails only
    /// when the message would exceed [`MAX_MESSAGE_LEN`]; `out` is then unchanged.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let total = self.encoded_len();
        if total > MAX_MESSAGE_LEN {
            return Err(CodecError::new(Location::Message, ErrorKind::MessageTooLarge { len: total }));
        }
        out.reserve(total);
        out.extend_from_slice(self.mti.as_bytes());
        let (primary, secondary) = self.present.words();
        if secondary != 0 {
            bitmap::write_hex(primary | (1 << 63), out);
            bitmap::write_hex(secondary, out);
        } else {
            bitmap::write_hex(primary, out);
        }
        for de in self.present.iter() {
            let (Some(spec), Some(value)) = (spec::field_spec(de), self.get_bytes(de)) else {
                continue; // cannot happen: only fields with a spec are ever stored
            };
            let len = value.len();
            match spec.kind {
                LengthKind::Fixed => {}
                LengthKind::LlVar => out.extend_from_slice(&[digit(len / 10), digit(len)]),
                LengthKind::LllVar => out.extend_from_slice(&[digit(len / 100), digit(len / 10), digit(len)]),
            }
            out.extend_from_slice(value);
        }
        Ok(())
    }

    // ----- typed access -----

    /// DE `de` as a number, for numeric fields of up to 19 digits (`None` if absent, not numeric,
    /// or too long for `u64`).
    pub fn numeric(&self, de: u8) -> Option<u64> {
        let v = self.get_bytes(de)?;
        if v.is_empty() || v.len() > 19 || !Charset::Numeric.accepts(v) {
            return None;
        }
        v.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
    }

    /// Sets a fixed-length numeric field from a number, zero-filled on the left to its length
    /// (`set_numeric(11, 42)` → `"000042"`). Fails if the number has more digits than the field.
    pub fn set_numeric(&mut self, de: u8, value: u64) -> Result<&mut Self, CodecError> {
        let spec = spec::field_spec(de).ok_or_else(|| CodecError::for_field(de, ErrorKind::Unsupported))?;
        if spec.kind != LengthKind::Fixed || spec.charset != Charset::Numeric {
            return Err(CodecError::for_field(de, ErrorKind::BadCharacters { charset: spec.charset }));
        }
        let width = spec.max_len();
        let text = format!("{value:0width$}");
        if text.len() > width {
            return Err(CodecError::for_field(de, ErrorKind::WrongLength { len: text.len(), expected: width }));
        }
        self.set(de, &text)
    }

    /// DE4, amount, transaction, in minor units (KRW has none: `"000000012500"` is 12 500 won).
    pub fn amount(&self) -> Option<u64> {
        self.numeric(4)
    }

    /// Sets DE4 from minor units (at most 12 digits).
    pub fn set_amount(&mut self, minor_units: u64) -> Result<&mut Self, CodecError> {
        self.set_numeric(4, minor_units)
    }

    /// DE55 ICC data as bytes (BER-TLV; parse it with [`super::tlv`]). Present DE55 is always
    /// valid hex, so this is `None` only when DE55 is absent.
    pub fn icc_data(&self) -> Option<Vec<u8>> {
        let hex = self.get_bytes(55)?;
        Some(hex.chunks_exact(2).map(|p| p.iter().fold(0u8, |acc, &c| (acc << 4) | hex_val(c))).collect())
    }

    /// Sets DE55 from BER-TLV bytes (at most 255), written as upper-case hex.
    pub fn set_icc_data(&mut self, tlv_bytes: &[u8]) -> Result<&mut Self, CodecError> {
        if tlv_bytes.len() > MAX_ICC_BYTES {
            let kind = ErrorKind::TooLong { len: tlv_bytes.len() * 2, max: 2 * MAX_ICC_BYTES };
            return Err(CodecError::for_field(55, kind));
        }
        let mut text = [0u8; 2 * MAX_ICC_BYTES];
        for (pair, &b) in text.chunks_exact_mut(2).zip(tlv_bytes) {
            if let [hi, lo] = pair {
                *hi = HEX_UPPER[usize::from(b >> 4)];
                *lo = HEX_UPPER[usize::from(b & 0xF)];
            }
        }
        let text = text.get(..tlv_bytes.len() * 2).unwrap_or(&[]);
        self.set_bytes(55, text)
    }

    /// DE90 original data elements, parsed. `None` when absent.
    pub fn original_data(&self) -> Option<OriginalData> {
        OriginalData::parse(self.get(90)?).ok()
    }

    /// Sets DE90.
    pub fn set_original_data(&mut self, original: &OriginalData) -> Result<&mut Self, CodecError> {
        self.set(90, original.as_str())
    }
}

#[inline]
fn digit(n: usize) -> u8 {
    b'0' + (n % 10) as u8
}

macro_rules! text_fields {
    ($( $de:literal $get:ident $set:ident $doc:literal; )*) => {
        impl Message {
            $(
                #[doc = concat!("DE", stringify!($de), ", ", $doc, ", as it travels.")]
                #[inline]
                pub fn $get(&self) -> Option<&str> {
                    self.get($de)
                }

                #[doc = concat!("Sets DE", stringify!($de), ", ", $doc, ".")]
                pub fn $set(&mut self, value: &str) -> Result<&mut Self, CodecError> {
                    self.set($de, value)
                }
            )*
        }
    };
}

text_fields! {
    2 pan set_pan "primary account number (a token or a PAN), up to 19 digits";
    3 processing_code set_processing_code "processing code (`00xxxx` purchase, `20xxxx` refund, `900000` tokenize)";
    7 transmission_date_time set_transmission_date_time "transmission date and time `MMDDhhmmss`";
    11 stan set_stan "systems trace audit number, 6 digits";
    12 local_time set_local_time "local transaction time `hhmmss`";
    13 local_date set_local_date "local transaction date `MMDD`";
    14 expiry set_expiry "expiration date `YYMM`";
    22 pos_entry_mode set_pos_entry_mode "point-of-service entry mode (3 digits; `05x` chip, `07x` contactless)";
    23 card_sequence_number set_card_sequence_number "card (PAN) sequence number, 3 digits";
    25 pos_condition_code set_pos_condition_code "point-of-service condition code, 2 digits";
    32 acquirer_id set_acquirer_id "acquiring institution id, up to 11 digits";
    35 track2 set_track2 "track 2 data";
    37 rrn set_rrn "retrieval reference number, 12 characters";
    38 authorization_code set_authorization_code "authorization id response, 6 characters";
    39 response_code set_response_code "response code, 2 characters";
    41 terminal_id set_terminal_id "card acceptor terminal id, 8 characters";
    42 merchant_id set_merchant_id "card acceptor id (merchant), 15 characters";
    48 additional_data set_additional_data "additional data, private (LLLVAR)";
    49 currency_code set_currency_code "transaction currency code (`410` = KRW)";
    52 pin_block set_pin_block "PIN block as 16 hex characters";
    70 network_management_code set_network_management_code "network management information code (`301` echo)";
}

impl PartialEq for Message {
    /// Equal MTI and equal fields (however the buffers happen to be laid out).
    fn eq(&self, other: &Self) -> bool {
        self.mti == other.mti
            && self.present == other.present
            && self.present.iter().all(|de| self.get_bytes(de) == other.get_bytes(de))
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    /// Fields in DE order; card data (DE2, 34, 35, 36, 45, 52, 55) as its length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted(usize);
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "<redacted, {} chars>", self.0)
            }
        }
        let mut m = f.debug_map();
        m.entry(&"t", &self.mti.as_str());
        for (de, value) in self.fields() {
            if spec::is_sensitive(de) {
                m.entry(&de, &Redacted(value.len()));
            } else {
                m.entry(&de, &value);
            }
        }
        m.finish()
    }
}

/// Decoding state: the spans read so far and the first content error.
struct Decoder<'a> {
    input: &'a [u8],
    mti: Mti,
    /// Fields the bitmaps announce.
    announced: Bitmap,
    /// Fields read and valid.
    good: Bitmap,
    spans: [Span; 129],
    first_error: Option<CodecError>,
}

impl Decoder<'_> {
    fn span(start: usize, len: usize) -> Option<Span> {
        Some(Span { start: u32::try_from(start).ok()?, len: u32::try_from(len).ok()? })
    }

    /// Remembers a content error (the first one wins) and carries on.
    fn note(&mut self, location: Location, kind: ErrorKind, offset: usize) {
        if self.first_error.is_none() {
            self.first_error = Some(CodecError::new(location, kind).at(offset));
        }
    }

    /// A framing error: decoding stops. Reports the earliest problem, with the partial message.
    fn fail(&mut self, location: Location, kind: ErrorKind, offset: usize) -> CodecError {
        let e = self.first_error.take().unwrap_or_else(|| CodecError::new(location, kind).at(offset));
        e.with_partial(Some(self.message(true)))
    }

    /// The message read so far. Its buffer is a copy of the whole input: a partial message (which may
    /// hold unchecked bytes) is always wiped on drop, a complete one when it has card data.
    fn message(&self, partial: bool) -> Message {
        let wipe = partial || self.announced.iter().any(spec::is_sensitive);
        Message { mti: self.mti, present: self.good, spans: self.spans, buf: self.input.to_vec(), wipe }
    }
}

#[cfg(test)]
mod tests;
