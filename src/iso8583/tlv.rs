//! BER-TLV, the encoding of EMV data in DE55 (ICC data).
//!
//! DE55 is a sequence of *data objects*, each `tag`, `length`, `value` (EMV Book 3 Annex B, a
//! subset of ISO/IEC 8825-1 BER):
//!
//! - **Tag**: one byte, or more when its low five bits are all ones (`0x1F`): then further bytes
//!   follow for as long as their top bit is set. `9F26` (application cryptogram) is a two-byte tag,
//!   `95` (TVR) a one-byte tag. Bit 6 (`0x20`) of the first byte marks a *constructed* object,
//!   whose value is itself a sequence of data objects (templates such as `71`/`72` issuer scripts
//!   or `77`); otherwise the object is *primitive*. This parser takes tags of up to 4 bytes.
//! - **Length**: the *short form* is one byte `0x00`–`0x7F`; the *long form* is `0x81`–`0x84`
//!   followed by that many bytes of big-endian length (`81 80` = 128). `0x80` (BER's indefinite
//!   length) and longer length fields are refused.
//! - **Value**: exactly `length` bytes.
//!
//! Between data objects, `00` bytes without meaning may occur (EMV Book 3 Annex B1); the parser
//! skips them. A tag may not start with `FF`.
//!
//! The parser borrows: a [`Tlv`] is a view into the input. It is total: every input either parses
//! or yields a [`TlvError`] with the byte offset and what was wrong — never a panic, and never a
//! byte of the data in the error (DE55 holds card data). Nesting is limited to [`MAX_DEPTH`].
//!
//! ```
//! use tsp::iso8583::tlv::{self, Tag};
//! let de55 = [0x9F, 0x36, 0x02, 0x0F, 0xFF, 0x95, 0x05, 0x80, 0x00, 0x04, 0x80, 0x00];
//! let atc = tlv::find(&de55, Tag::ATC).unwrap();
//! assert_eq!(atc, Some(&[0x0F, 0xFF][..]));
//! let mut out = Vec::new();
//! tlv::write(&mut out, Tag::ATC, &[0x0F, 0xFF]).unwrap();
//! assert_eq!(out, &de55[..5]);
//! ```

use std::fmt;

/// Deepest nesting of constructed objects the parser follows (EMV data nests two or three deep).
pub const MAX_DEPTH: usize = 8;

/// A BER-TLV tag: its bytes as a big-endian number (`Tag(0x9F26)` is the two bytes `9F 26`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    /// `9F26` Application Cryptogram (the ARQC in a request).
    pub const APPLICATION_CRYPTOGRAM: Tag = Tag(0x9F26);
    /// `9F27` Cryptogram Information Data.
    pub const CRYPTOGRAM_INFORMATION_DATA: Tag = Tag(0x9F27);
    /// `9F10` Issuer Application Data.
    pub const ISSUER_APPLICATION_DATA: Tag = Tag(0x9F10);
    /// `9F37` Unpredictable Number.
    pub const UNPREDICTABLE_NUMBER: Tag = Tag(0x9F37);
    /// `9F36` Application Transaction Counter.
    pub const ATC: Tag = Tag(0x9F36);
    /// `95` Terminal Verification Results.
    pub const TVR: Tag = Tag(0x95);
    /// `9A` Transaction Date (YYMMDD).
    pub const TRANSACTION_DATE: Tag = Tag(0x9A);
    /// `9C` Transaction Type.
    pub const TRANSACTION_TYPE: Tag = Tag(0x9C);
    /// `9F02` Amount, Authorised (numeric).
    pub const AMOUNT_AUTHORISED: Tag = Tag(0x9F02);
    /// `9F03` Amount, Other (numeric).
    pub const AMOUNT_OTHER: Tag = Tag(0x9F03);
    /// `5F2A` Transaction Currency Code.
    pub const TRANSACTION_CURRENCY_CODE: Tag = Tag(0x5F2A);
    /// `82` Application Interchange Profile.
    pub const AIP: Tag = Tag(0x82);
    /// `9F1A` Terminal Country Code.
    pub const TERMINAL_COUNTRY_CODE: Tag = Tag(0x9F1A);
    /// `5F34` Application PAN Sequence Number.
    pub const PAN_SEQUENCE_NUMBER: Tag = Tag(0x5F34);
    /// `9F34` CVM Results.
    pub const CVM_RESULTS: Tag = Tag(0x9F34);
    /// `84` Dedicated File (AID) Name.
    pub const DF_NAME: Tag = Tag(0x84);
    /// `91` Issuer Authentication Data (ARPC + CSU in a response).
    pub const ISSUER_AUTHENTICATION_DATA: Tag = Tag(0x91);
    /// `8A` Authorisation Response Code.
    pub const AUTHORISATION_RESPONSE_CODE: Tag = Tag(0x8A);
    /// `71` Issuer Script Template 1 (constructed).
    pub const ISSUER_SCRIPT_TEMPLATE_1: Tag = Tag(0x71);
    /// `72` Issuer Script Template 2 (constructed).
    pub const ISSUER_SCRIPT_TEMPLATE_2: Tag = Tag(0x72);

    /// The tag's bytes, most significant first, without leading zero bytes (`Tag(0)` is one `00` byte).
    fn bytes(self) -> ([u8; 4], usize) {
        let all = self.0.to_be_bytes();
        let len = (4 - (self.0.leading_zeros() / 8) as usize).max(1);
        let mut out = [0u8; 4];
        for (o, b) in out.iter_mut().zip(all.iter().skip(4 - len)) {
            *o = *b;
        }
        (out, len)
    }

    /// The first byte as it travels (class, constructed bit, tag number or `1F`).
    pub fn first_byte(self) -> u8 {
        self.bytes().0[0]
    }

    /// True when the first byte's bit 6 (`0x20`) is set: the value is a sequence of data objects.
    pub fn is_constructed(self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    /// Number of bytes the tag takes.
    pub fn encoded_len(self) -> usize {
        self.bytes().1
    }

    /// True when the bytes form one well-formed tag: a single byte whose low five bits are not all
    /// ones, or a `xx1F`-style first byte followed by continuation bytes (top bit set) and a final
    /// byte (top bit clear). `00` and `FF` are not valid first bytes.
    pub fn is_valid(self) -> bool {
        let (b, len) = self.bytes();
        let Some((&first, rest)) = b.get(..len).and_then(<[u8]>::split_first) else {
            return false;
        };
        if first == 0x00 || first == 0xFF {
            return false;
        }
        if first & 0x1F != 0x1F {
            return rest.is_empty();
        }
        match rest.split_last() {
            Some((&last, middle)) => last & 0x80 == 0 && middle.iter().all(|&m| m & 0x80 != 0),
            None => false,
        }
    }

    /// Appends the tag's bytes.
    pub fn write(self, out: &mut Vec<u8>) {
        let (b, len) = self.bytes();
        out.extend_from_slice(b.get(..len).unwrap_or(&[]));
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, len) = self.bytes();
        for byte in b.get(..len).unwrap_or(&[]) {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

/// What was wrong with BER-TLV data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvErrorKind {
    /// The data ends inside a tag.
    TruncatedTag,
    /// A tag longer than 4 bytes.
    TagTooLong,
    /// A tag starting with `FF`.
    InvalidTag,
    /// The data ends inside a length.
    TruncatedLength,
    /// Length byte `80`: BER's indefinite form, which EMV does not allow.
    IndefiniteLength,
    /// Length bytes `85`–`FF`: more than 4 bytes of length (or a value too long to encode).
    LengthTooLong,
    /// The value runs past the end of the data (or of the enclosing template).
    TruncatedValue,
    /// Constructed objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for TlvErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlvErrorKind::TruncatedTag => "data ends inside a tag",
            TlvErrorKind::TagTooLong => "tag longer than 4 bytes",
            TlvErrorKind::InvalidTag => "invalid tag byte FF",
            TlvErrorKind::TruncatedLength => "data ends inside a length",
            TlvErrorKind::IndefiniteLength => "indefinite length (80) is not allowed",
            TlvErrorKind::LengthTooLong => "length field longer than 4 bytes",
            TlvErrorKind::TruncatedValue => "value runs past the end of the data",
            TlvErrorKind::TooDeep => "templates nested too deep",
        })
    }
}

/// A BER-TLV error: what and where (byte offset from the start of the outermost data). Never
/// contains the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("BER-TLV: {kind} at byte {offset}")]
pub struct TlvError {
    /// Offset of the byte where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub kind: TlvErrorKind,
}

/// One data object: a view into the parsed data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    tag: Tag,
    value: &'a [u8],
    /// Offset of the value in the outermost data (for error offsets of children).
    value_offset: usize,
    depth: usize,
}

impl<'a> Tlv<'a> {
    /// The tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The value bytes.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// True for a template (its value is a sequence of data objects).
    pub fn is_constructed(&self) -> bool {
        self.tag.is_constructed()
    }

    /// The data objects inside a constructed object (for a primitive one, its value parsed as if it
    /// were a template — which is rarely what you want).
    pub fn children(&self) -> Tlvs<'a> {
        Tlvs { data: self.value, pos: 0, base: self.value_offset, depth: self.depth + 1, failed: false }
    }
}

impl fmt::Debug for Tlv<'_> {
    /// Shows the tag and the value's length, never the value (it may be card data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tlv").field("tag", &self.tag).field("len", &self.value.len()).finish()
    }
}

/// Iterator over the data objects of one level. Yields `Err` once, then stops, on malformed data.
#[derive(Clone, Debug)]
pub struct Tlvs<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    depth: usize,
    failed: bool,
}

impl<'a> Tlvs<'a> {
    fn err(&mut self, at: usize, kind: TlvErrorKind) -> Option<Result<Tlv<'a>, TlvError>> {
        self.failed = true;
        Some(Err(TlvError { offset: self.base.saturating_add(at), kind }))
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<Tlv<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.depth > MAX_DEPTH {
            return self.err(self.pos, TlvErrorKind::TooDeep);
        }
        // Skip padding between objects.
        while self.data.get(self.pos) == Some(&0x00) {
            self.pos += 1;
        }
        let start = self.pos;
        let first = *self.data.get(start)?;
        if first == 0xFF {
            return self.err(start, TlvErrorKind::InvalidTag);
        }

        // Tag.
        let mut tag = u32::from(first);
        let mut p = start + 1;
        if first & 0x1F == 0x1F {
            loop {
                let Some(&b) = self.data.get(p) else {
                    return self.err(p, TlvErrorKind::TruncatedTag);
                };
                if p - start >= 4 {
                    return self.err(start, TlvErrorKind::TagTooLong);
                }
                tag = (tag << 8) | u32::from(b);
                p += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
        }

        // Length.
        let Some(&l0) = self.data.get(p) else {
            return self.err(p, TlvErrorKind::TruncatedLength);
        };
        let len_at = p;
        p += 1;
        let len: usize = match l0 {
            0x00..=0x7F => usize::from(l0),
            0x80 => return self.err(len_at, TlvErrorKind::IndefiniteLength),
            0x81..=0x84 => {
                let n = usize::from(l0 & 0x7F);
                let Some(bytes) = p.checked_add(n).and_then(|end| self.data.get(p..end)) else {
                    return self.err(len_at, TlvErrorKind::TruncatedLength);
                };
                p += n;
                let v = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                match usize::try_from(v) {
                    Ok(v) => v,
                    Err(_) => return self.err(len_at, TlvErrorKind::TruncatedValue),
                }
            }
            _ => return self.err(len_at, TlvErrorKind::LengthTooLong),
        };

        // Value.
        let Some(value) = p.checked_add(len).and_then(|end| self.data.get(p..end)) else {
            return self.err(len_at, TlvErrorKind::TruncatedValue);
        };
        self.pos = p + len;
        Some(Ok(Tlv { tag: Tag(tag), value, value_offset: self.base.saturating_add(p), depth: self.depth }))
    }
}

impl std::iter::FusedIterator for Tlvs<'_> {}

/// The top-level data objects of `data`, lazily (each item is checked as it is reached; constructed
/// values are not looked into — see [`validate`]).
pub fn parse(data: &[u8]) -> Tlvs<'_> {
    Tlvs { data, pos: 0, base: 0, depth: 0, failed: false }
}

/// The top-level data objects of `data`, all of them, or the first error.
pub fn parse_all(data: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    parse(data).collect()
}

/// Checks that `data` is well-formed BER-TLV all the way down (every constructed value parses too).
pub fn validate(data: &[u8]) -> Result<(), TlvError> {
    validate_level(parse(data))
}

fn validate_level(level: Tlvs<'_>) -> Result<(), TlvError> {
    for item in level {
        let tlv = item?;
        if tlv.is_constructed() {
            validate_level(tlv.children())?;
        }
    }
    Ok(())
}

/// The value of the first object with `tag`, searching depth-first into templates, or `None`.
/// Errors if malformed data is met before the tag is found.
pub fn find(data: &[u8], tag: Tag) -> Result<Option<&[u8]>, TlvError> {
    find_in(parse(data), tag)
}

fn find_in<'a>(level: Tlvs<'a>, tag: Tag) -> Result<Option<&'a [u8]>, TlvError> {
    for item in level {
        let tlv = item?;
        if tlv.tag == tag {
            return Ok(Some(tlv.value));
        }
        if tlv.is_constructed()
            && let Some(v) = find_in(tlv.children(), tag)?
        {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Appends a BER-TLV length: short form below 128, else the shortest long form.
pub fn write_length(out: &mut Vec<u8>, len: usize) -> Result<(), TlvError> {
    if len < 0x80 {
        out.push(len as u8);
        return Ok(());
    }
    let len32 = u32::try_from(len).map_err(|_| TlvError { offset: out.len(), kind: TlvErrorKind::LengthTooLong })?;
    let bytes = len32.to_be_bytes();
    let skip = (len32.leading_zeros() / 8) as usize; // 0..=3, since len ≥ 128
    let n = 4 - skip;
    out.push(0x80 | n as u8);
    out.extend_from_slice(bytes.get(skip..).unwrap_or(&[]));
    Ok(())
}

/// Appends one data object. `value` of a constructed tag must already be its encoded children.
pub fn write(out: &mut Vec<u8>, tag: Tag, value: &[u8]) -> Result<(), TlvError> {
    tag.write(out);
    write_length(out, value.len())?;
    out.extend_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    /// DE55 of a Visa CVN 18 ARQC request, built from the data of pyemv 1.5.0's `VisaCVN18`
    /// docstring example (PAN 1234567890123456, PSN 00, ATC 0FFF; ARQC 769577B5ABE9FE62 as pyemv
    /// computes it), in the tag order terminals commonly send.
    const ARQC_DE55: &str = concat!(
        "9F2608769577B5ABE9FE62", // Application Cryptogram
        "9F270180",               // CID: ARQC
        "9F100706011203A0B800",   // IAD
        "9F370452BF4585",         // Unpredictable Number
        "9F36020FFF",             // ATC
        "95058000048000",         // TVR
        "9A03991231",             // Transaction Date
        "9C0101",                 // Transaction Type
        "9F0206000000009999",     // Amount, Authorised
        "5F2A020840",             // Transaction Currency Code
        "82021800",               // AIP
        "9F1A020840",             // Terminal Country Code
        "9F0306000000000000",     // Amount, Other
    );

    #[test]
    fn real_arqc_de55() {
        let data = h(ARQC_DE55);
        let all = parse_all(&data).expect("parses");
        // pyemv.tlv.decode gives the same 13 tags and values.
        let got: Vec<(String, String)> =
            all.iter().map(|t| (t.tag().to_string(), hex::encode_upper(t.value()))).collect();
        let want = [
            ("9F26", "769577B5ABE9FE62"),
            ("9F27", "80"),
            ("9F10", "06011203A0B800"),
            ("9F37", "52BF4585"),
            ("9F36", "0FFF"),
            ("95", "8000048000"),
            ("9A", "991231"),
            ("9C", "01"),
            ("9F02", "000000009999"),
            ("5F2A", "0840"),
            ("82", "1800"),
            ("9F1A", "0840"),
            ("9F03", "000000000000"),
        ];
        assert_eq!(got.len(), want.len());
        for ((gt, gv), (wt, wv)) in got.iter().zip(want) {
            assert_eq!((gt.as_str(), gv.as_str()), (wt, wv));
        }
        assert!(all.iter().all(|t| !t.is_constructed()));
        assert_eq!(find(&data, Tag::ATC), Ok(Some(&[0x0F, 0xFF][..])));
        assert_eq!(find(&data, Tag::APPLICATION_CRYPTOGRAM), Ok(Some(&h("769577B5ABE9FE62")[..])));
        assert_eq!(find(&data, Tag::ISSUER_AUTHENTICATION_DATA), Ok(None));
        validate(&data).expect("valid");

        // Re-encoding each object gives the input back.
        let mut out = Vec::new();
        for t in &all {
            write(&mut out, t.tag(), t.value()).expect("encodes");
        }
        assert_eq!(out, data);
    }

    #[test]
    fn arpc_response_de55() {
        // Tag 91: ARPC method 2 (76503F48, pyemv VisaCVN18 example) + CSU 00000000.
        let mut out = Vec::new();
        write(&mut out, Tag::ISSUER_AUTHENTICATION_DATA, &h("76503F4800000000")).expect("encodes");
        assert_eq!(hex::encode_upper(&out), "910876503F4800000000");
    }

    #[test]
    fn constructed_and_long_form() {
        // Issuer script template 1 (71) holding a script identifier (9F18) and one 130-byte command
        // (86): the command's length needs the long form 81 82, the template's 81 8C. Encoded by
        // pyemv 1.5.0 tlv.encode({"71": {"9F18": "00000001", "86": "84"+"00"*129}}).
        let command = {
            let mut c = vec![0x84];
            c.extend(std::iter::repeat_n(0u8, 129));
            c
        };
        let mut inner = Vec::new();
        write(&mut inner, Tag(0x9F18), &[0, 0, 0, 1]).expect("encodes");
        write(&mut inner, Tag(0x86), &command).expect("encodes");
        let mut data = Vec::new();
        write(&mut data, Tag::ISSUER_SCRIPT_TEMPLATE_1, &inner).expect("encodes");
        let want_prefix = h("71818C9F1804000000018681828400");
        assert_eq!(data.get(..want_prefix.len()), Some(&want_prefix[..]));
        assert_eq!(data.len(), 3 + 0x8C);

        let top = parse_all(&data).expect("parses");
        assert_eq!(top.len(), 1);
        let t = top.first().expect("one");
        assert!(t.is_constructed());
        assert_eq!(t.tag(), Tag(0x71));
        let kids: Vec<_> = t.children().collect::<Result<_, _>>().expect("children parse");
        assert_eq!(kids.len(), 2);
        assert_eq!(kids.get(1).map(|k| k.value().len()), Some(130));
        assert_eq!(find(&data, Tag(0x86)).expect("ok").map(<[u8]>::len), Some(130));
        assert_eq!(find(&data, Tag(0x9F18)), Ok(Some(&[0u8, 0, 0, 1][..])));

        // pyemv's own example: 9C0101 E0055F2A020208 9F0200 (constructed E0, empty 9F02).
        let data = h("9C0101E0055F2A0202089F0200");
        let top = parse_all(&data).expect("parses");
        assert_eq!(top.iter().map(|t| t.tag()).collect::<Vec<_>>(), vec![Tag(0x9C), Tag(0xE0), Tag(0x9F02)]);
        assert_eq!(find(&data, Tag(0x5F2A)), Ok(Some(&[0x02, 0x08][..])));
        assert_eq!(find(&data, Tag(0x9F02)), Ok(Some(&[][..])));
    }

    #[test]
    fn long_forms() {
        for (len, want) in [
            (0usize, "00"),
            (127, "7F"),
            (128, "8180"),
            (255, "81FF"),
            (256, "820100"),
            (65535, "82FFFF"),
            (65536, "83010000"),
            (0x0100_0000, "8401000000"),
        ] {
            let mut out = Vec::new();
            write_length(&mut out, len).expect("fits");
            assert_eq!(hex::encode_upper(&out), want, "length {len}");
        }
        // Non-minimal long forms are BER, and accepted.
        assert_eq!(find(&h("9F0281020102"), Tag(0x9F02)), Ok(Some(&[1u8, 2][..])));
        assert_eq!(find(&h("9F028400000001AA"), Tag(0x9F02)), Ok(Some(&[0xAAu8][..])));
        // Three-byte tag.
        assert_eq!(find(&h("DF81010101"), Tag(0xDF8101)), Ok(Some(&[1u8][..])));
        assert_eq!(Tag(0xDF8101).to_string(), "DF8101");
        assert!(Tag(0xDF8101).is_valid() && Tag(0x9F26).is_valid() && Tag(0x95).is_valid());
        assert!(!Tag(0x9F).is_valid() && !Tag(0x9F81).is_valid() && !Tag(0x951F).is_valid());
        assert!(!Tag(0xFF).is_valid() && !Tag(0).is_valid());
    }

    #[test]
    fn padding_is_skipped() {
        let data = h("00009C0101000082021800000000");
        let tags: Vec<_> = parse(&data).map(|t| t.map(|t| t.tag())).collect::<Result<_, _>>().expect("ok");
        assert_eq!(tags, vec![Tag(0x9C), Tag(0x82)]);
        assert_eq!(parse_all(&[]).expect("empty is fine").len(), 0);
        assert_eq!(parse_all(&[0, 0]).expect("only padding").len(), 0);
    }

    fn err(data: &str) -> TlvError {
        validate(&h(data)).expect_err("must fail")
    }

    #[test]
    fn malformed() {
        use TlvErrorKind::*;
        assert_eq!(err("9F"), TlvError { offset: 1, kind: TruncatedTag });
        assert_eq!(err("9F81"), TlvError { offset: 2, kind: TruncatedTag });
        assert_eq!(err("9F8181818101"), TlvError { offset: 0, kind: TagTooLong });
        assert_eq!(err("FF0100"), TlvError { offset: 0, kind: InvalidTag });
        assert_eq!(err("9F26"), TlvError { offset: 2, kind: TruncatedLength });
        assert_eq!(err("9F2681"), TlvError { offset: 2, kind: TruncatedLength });
        assert_eq!(err("9F268201"), TlvError { offset: 2, kind: TruncatedLength });
        assert_eq!(err("9F268000"), TlvError { offset: 2, kind: IndefiniteLength });
        assert_eq!(err("9F26850000000001AA"), TlvError { offset: 2, kind: LengthTooLong });
        assert_eq!(err("9F260801020304050607"), TlvError { offset: 2, kind: TruncatedValue });
        assert_eq!(err("9F2684FFFFFFFF00"), TlvError { offset: 2, kind: TruncatedValue });
        // A child running past its template's end (but not past the data's end).
        assert_eq!(
            err("7003 9F0205 0000000001".replace(' ', "").as_str()),
            TlvError { offset: 4, kind: TruncatedValue }
        );
        // Malformed child inside a well-formed template: found by validate, offset absolute.
        assert_eq!(err("9C0101 7002 9F26".replace(' ', "").as_str()), TlvError { offset: 7, kind: TruncatedLength });
        // The iterator yields the error once, then ends.
        let bad = h("9C01019F");
        let mut it = parse(&bad);
        assert!(matches!(it.next(), Some(Ok(_))));
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
        // Too deep: 10 nested templates.
        let mut data = h("9C0101");
        for _ in 0..10 {
            let mut outer = Vec::new();
            write(&mut outer, Tag(0xE0), &data).expect("encodes");
            data = outer;
        }
        assert_eq!(validate(&data).map_err(|e| e.kind), Err(TooDeep));
        // The error's text names no data.
        let e = err("9F260801020304050607");
        assert_eq!(e.to_string(), "BER-TLV: value runs past the end of the data at byte 2");
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let base = h(ARQC_DE55);
        for i in 0..20_000 {
            let data: Vec<u8> = if i % 2 == 0 {
                let len = (next() % 64) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut d = base.clone();
                for _ in 0..(1 + next() % 3) {
                    let at = (next() as usize) % d.len();
                    if let Some(b) = d.get_mut(at) {
                        *b = next() as u8;
                    }
                }
                d.truncate((next() as usize) % (base.len() + 1));
                d
            };
            let _ = validate(&data);
            let _ = find(&data, Tag::ATC);
            for t in parse(&data).flatten() {
                let _ = t.children().count();
            }
        }
    }
}
