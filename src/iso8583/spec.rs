//! The field table: how each data element (DE) 2–128 travels in this dialect.
//!
//! Every DE has a *length kind* and a *character set*:
//!
//! - **Length kind.** [`LengthKind::Fixed`] fields are always exactly `max_len` characters; the
//!   sender pads them (numbers with leading zeros, text with trailing spaces — the codec never pads
//!   on its own). [`LengthKind::LlVar`] and [`LengthKind::LllVar`] fields are preceded by their
//!   length as 2 or 3 ASCII decimal digits, counting the characters that follow, from 0 up to
//!   `max_len`.
//! - **Character set.** What the characters may be, from the ISO 8583:1987 attribute of the field
//!   (see [`Charset`]). The codec checks it on decode and on every setter, so a `Message` never
//!   holds a value that could not travel.
//!
//! The types and maximum lengths are those of pyiso8583 4.0.1 `iso8583.specs.default_ascii`
//! (every field ASCII, no binary field), so the two codecs agree byte for byte; the conformance
//! vectors in `vectors/iso8583.json` pin that. That spec already does what this dialect asks of the
//! binary (`b`) fields (docs/iso8583.md "Wire format"): they travel as **hex text**, two characters
//! per byte, and their length counts hex characters:
//!
//! | DE | ISO 8583:1987 | here |
//! | --- | --- | --- |
//! | 52 PIN data | b 64 | fixed 16 hex characters (an 8-byte PIN block) |
//! | 55 ICC data | (reserved ISO) | LLLVAR up to 510 hex characters (255 bytes of BER-TLV); must be an even number of characters and well-formed BER-TLV |
//! | 64, 128 MAC, 96 message security code | b 64 | fixed 16 hex characters |
//!
//! Hex fields accept upper- and lower-case digits (what arrives is kept as it arrived); the codec
//! writes upper case when it converts bytes itself ([`crate::iso8583::Message::set_icc_data`]).
//!
//! Three numbers are not data elements you can set: 0 (none), 1 (the secondary bitmap, written
//! when any DE 65–128 is present) and 65 (the tertiary bitmap, which this dialect does not use: a
//! message with bit 65 set is a format error).

/// What characters a field may hold (ISO 8583:1987 attributes, ASCII only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    /// `n`: decimal digits `0`–`9`.
    Numeric,
    /// `x+n`: `C` (credit) or `D` (debit) followed by digits (fee and net amounts, DE28–31, DE97).
    SignedNumeric,
    /// `z`: track 2/3 data: the ISO 7811 4-bit character set written in ASCII (`0`–`9`, `:` `;`
    /// `<` `=` `>` `?`), plus `D`, which EMV uses as the field separator in track 2 equivalent data.
    Track,
    /// `b` sent as hex text: `0`–`9`, `A`–`F`, `a`–`f`.
    Hex,
    /// `a`, `an`, `ans`, `ns`: printable ASCII, space (0x20) to tilde (0x7E). Real dialects put
    /// punctuation in `an` fields (names, track 1, private data), so the codec does not tell them apart;
    /// control characters and bytes above 0x7E are always refused.
    Text,
}

impl Charset {
    /// Short ISO-style name, for error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Charset::Numeric => "n (digits)",
            Charset::SignedNumeric => "x+n (C or D, then digits)",
            Charset::Track => "z (track data)",
            Charset::Hex => "b as hex text",
            Charset::Text => "ans (printable ASCII)",
        }
    }

    /// True when every byte of `value` belongs to this character set.
    pub fn accepts(self, value: &[u8]) -> bool {
        match self {
            Charset::SignedNumeric => match value.split_first() {
                Some((&(b'C' | b'D'), digits)) => all_in(digits, F_DIGIT),
                // An empty value has no sign to check; only a variable-length field could be empty.
                None => true,
                Some(_) => false,
            },
            Charset::Numeric => all_in(value, F_DIGIT),
            Charset::Track => all_in(value, F_TRACK),
            Charset::Hex => all_in(value, F_HEX),
            Charset::Text => all_in(value, F_TEXT),
        }
    }
}

const F_DIGIT: u8 = 1;
const F_HEX: u8 = 2;
const F_TRACK: u8 = 4;
const F_TEXT: u8 = 8;

/// One byte of flags per byte value: which character sets it belongs to.
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let mut f = 0u8;
        if c.is_ascii_digit() {
            f |= F_DIGIT | F_HEX | F_TRACK;
        }
        if matches!(c, b'A'..=b'F' | b'a'..=b'f') {
            f |= F_HEX;
        }
        if matches!(c, b':'..=b'?' | b'D') {
            f |= F_TRACK;
        }
        if matches!(c, 0x20..=0x7E) {
            f |= F_TEXT;
        }
        t[b] = f;
        b += 1;
    }
    t
};

#[inline]
fn all_in(value: &[u8], class: u8) -> bool {
    // Indexing a 256-entry table with a byte cannot go out of bounds.
    value.iter().all(|&b| CLASSES[usize::from(b)] & class != 0)
}

/// How a field's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthKind {
    /// Always exactly `max_len` characters, no prefix.
    Fixed,
    /// 2 ASCII digits of length, then up to `max_len` (≤ 99) characters.
    LlVar,
    /// 3 ASCII digits of length, then up to `max_len` (≤ 999) characters.
    LllVar,
}

impl LengthKind {
    /// Number of length digits in front of the value.
    pub const fn prefix_len(self) -> usize {
        match self {
            LengthKind::Fixed => 0,
            LengthKind::LlVar => 2,
            LengthKind::LllVar => 3,
        }
    }
}

/// How one data element travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    /// Fixed, LLVAR or LLLVAR.
    pub kind: LengthKind,
    /// The length of a fixed field; the maximum length of a variable one (in characters).
    pub max_len: u16,
    /// What its characters may be.
    pub charset: Charset,
    /// The ISO name (as in pyiso8583's table).
    pub name: &'static str,
}

impl FieldSpec {
    /// The length as a `usize`.
    pub const fn max_len(&self) -> usize {
        self.max_len as usize
    }
}

/// The spec of data element `de`, or `None` for 0, 1, 65 and numbers above 128.
pub fn field_spec(de: u8) -> Option<&'static FieldSpec> {
    FIELDS.get(usize::from(de)).and_then(Option::as_ref)
}

/// Data elements that carry cardholder or key-derived secrets: their values are never shown by
/// `Debug`, never put in an error, and the message buffer holding them is wiped when dropped.
/// (DE2 PAN, DE34 extended PAN, DE35/36/45 track data, DE52 PIN block, DE55 ICC data.)
pub const fn is_sensitive(de: u8) -> bool {
    matches!(de, 2 | 34 | 35 | 36 | 45 | 52 | 55)
}

const N: Charset = Charset::Numeric;
const XN: Charset = Charset::SignedNumeric;
const Z: Charset = Charset::Track;
const HEX: Charset = Charset::Hex;
const TEXT: Charset = Charset::Text;

const fn fixed(len: u16, charset: Charset, name: &'static str) -> FieldSpec {
    FieldSpec { kind: LengthKind::Fixed, max_len: len, charset, name }
}
const fn llvar(max: u16, charset: Charset, name: &'static str) -> FieldSpec {
    FieldSpec { kind: LengthKind::LlVar, max_len: max, charset, name }
}
const fn lllvar(max: u16, charset: Charset, name: &'static str) -> FieldSpec {
    FieldSpec { kind: LengthKind::LllVar, max_len: max, charset, name }
}

/// The table, indexed by DE number (generated from pyiso8583 4.0.1 `default_ascii`; character sets
/// from ISO 8583:1987).
static FIELDS: [Option<FieldSpec>; 129] = [
    None,                                                       // 0: not a data element
    None,                                                // 1: Bitmap, Secondary (derived from the fields present)
    Some(llvar(19, N, "Primary Account Number (PAN)")),  // 2
    Some(fixed(6, N, "Processing Code")),                // 3
    Some(fixed(12, N, "Amount, Transaction")),           // 4
    Some(fixed(12, N, "Amount, Settlement")),            // 5
    Some(fixed(12, N, "Amount, Cardholder Billing")),    // 6
    Some(fixed(10, N, "Transmission Date and Time")),    // 7
    Some(fixed(8, N, "Amount, Cardholder Billing Fee")), // 8
    Some(fixed(8, N, "Conversion Rate, Settlement")),    // 9
    Some(fixed(8, N, "Conversion Rate, Cardholder Billing")), // 10
    Some(fixed(6, N, "System Trace Audit Number")),      // 11
    Some(fixed(6, N, "Time, Local Transaction")),        // 12
    Some(fixed(4, N, "Date, Local Transaction")),        // 13
    Some(fixed(4, N, "Date, Expiration")),               // 14
    Some(fixed(4, N, "Date, Settlement")),               // 15
    Some(fixed(4, N, "Date, Conversion")),               // 16
    Some(fixed(4, N, "Date, Capture")),                  // 17
    Some(fixed(4, N, "Merchant Type")),                  // 18
    Some(fixed(3, N, "Acquiring Institution Country Code")), // 19
    Some(fixed(3, N, "PAN Country Code")),               // 20
    Some(fixed(3, N, "Forwarding Institution Country Code")), // 21
    Some(fixed(3, N, "Point-of-Service Entry Mode")),    // 22
    Some(fixed(3, N, "PAN Sequence Number")),            // 23
    Some(fixed(3, N, "Network International ID (NII)")), // 24
    Some(fixed(2, N, "Point-of-Service Condition Code")), // 25
    Some(fixed(2, N, "Point-of-Service Capture Code")),  // 26
    Some(fixed(1, N, "Authorizing ID Response Length")), // 27
    Some(fixed(9, XN, "Amount, Transaction Fee")),       // 28
    Some(fixed(9, XN, "Amount, Settlement Fee")),        // 29
    Some(fixed(9, XN, "Amount, Transaction Processing Fee")), // 30
    Some(fixed(9, XN, "Amount, Settlement Processing Fee")), // 31
    Some(llvar(11, N, "Acquiring Institution ID Code")), // 32
    Some(llvar(11, N, "Forwarding Institution ID Code")), // 33
    Some(llvar(28, TEXT, "Primary Account Number, Extended")), // 34
    Some(llvar(37, Z, "Track 2 Data")),                  // 35
    Some(lllvar(104, Z, "Track 3 Data")),                // 36
    Some(fixed(12, TEXT, "Retrieval Reference Number")), // 37
    Some(fixed(6, TEXT, "Authorization ID Response")),   // 38
    Some(fixed(2, TEXT, "Response Code")),               // 39
    Some(fixed(3, TEXT, "Service Restriction Code")),    // 40
    Some(fixed(8, TEXT, "Card Acceptor Terminal ID")),   // 41
    Some(fixed(15, TEXT, "Card Acceptor ID Code")),      // 42
    Some(fixed(40, TEXT, "Card Acceptor Name/Location")), // 43
    Some(llvar(25, TEXT, "Additional Response Data")),   // 44
    Some(llvar(76, TEXT, "Track 1 Data")),               // 45
    Some(lllvar(999, TEXT, "Additional Data - ISO")),    // 46
    Some(lllvar(999, TEXT, "Additional Data - National")), // 47
    Some(lllvar(999, TEXT, "Additional Data - Private")), // 48
    Some(fixed(3, TEXT, "Currency Code, Transaction")),  // 49
    Some(fixed(3, TEXT, "Currency Code, Settlement")),   // 50
    Some(fixed(3, TEXT, "Currency Code, Cardholder Billing")), // 51
    Some(fixed(16, HEX, "PIN")),                         // 52
    Some(fixed(16, N, "Security-Related Control Information")), // 53
    Some(lllvar(240, TEXT, "Additional Amounts")),       // 54
    Some(lllvar(510, HEX, "ICC data")),                  // 55
    Some(lllvar(999, TEXT, "Reserved ISO")),             // 56
    Some(lllvar(999, TEXT, "Reserved National")),        // 57
    Some(lllvar(999, TEXT, "Reserved National")),        // 58
    Some(lllvar(999, TEXT, "Reserved National")),        // 59
    Some(lllvar(999, TEXT, "Reserved National")),        // 60
    Some(lllvar(999, TEXT, "Reserved Private")),         // 61
    Some(lllvar(999, TEXT, "Reserved Private")),         // 62
    Some(lllvar(999, TEXT, "Reserved Private")),         // 63
    Some(fixed(16, HEX, "MAC")),                         // 64
    None,                                                // 65: Bitmap, Extended (tertiary bitmap: not in this dialect)
    Some(fixed(1, N, "Settlement Code")),                // 66
    Some(fixed(2, N, "Extended Payment Code")),          // 67
    Some(fixed(3, N, "Receiving Institution Country Code")), // 68
    Some(fixed(3, N, "Settlement Institution Country Code")), // 69
    Some(fixed(3, N, "Network Management Information Code")), // 70
    Some(fixed(4, N, "Message Number")),                 // 71
    Some(fixed(4, N, "Message Number, Last")),           // 72
    Some(fixed(6, N, "Date, Action")),                   // 73
    Some(fixed(10, N, "Credits, Number")),               // 74
    Some(fixed(10, N, "Credits, Reversal Number")),      // 75
    Some(fixed(10, N, "Debits, Number")),                // 76
    Some(fixed(10, N, "Debits, Reversal Number")),       // 77
    Some(fixed(10, N, "Transfer, Number")),              // 78
    Some(fixed(10, N, "Transfer, Reversal Number")),     // 79
    Some(fixed(10, N, "Inquiries, Number")),             // 80
    Some(fixed(10, N, "Authorizations, Number")),        // 81
    Some(fixed(12, N, "Credits, Processing Fee Amount")), // 82
    Some(fixed(12, N, "Credits, Transaction Fee Amount")), // 83
    Some(fixed(12, N, "Debits, Processing Fee Amount")), // 84
    Some(fixed(12, N, "Debits, Transaction Fee Amount")), // 85
    Some(fixed(16, N, "Credits, Amount")),               // 86
    Some(fixed(16, N, "Credits, Reversal Amount")),      // 87
    Some(fixed(16, N, "Debits, Amount")),                // 88
    Some(fixed(16, N, "Debits, Reversal Amount")),       // 89
    Some(fixed(42, N, "Original Data Elements")),        // 90
    Some(fixed(1, TEXT, "File Update Code")),            // 91
    Some(fixed(2, TEXT, "File Security Code")),          // 92
    Some(fixed(5, TEXT, "Response Indicator")),          // 93
    Some(fixed(7, TEXT, "Service Indicator")),           // 94
    Some(fixed(42, TEXT, "Replacement Amounts")),        // 95
    Some(fixed(16, HEX, "Message Security Code")),       // 96
    Some(fixed(17, XN, "Amount, Net Settlement")),       // 97
    Some(fixed(25, TEXT, "Payee")),                      // 98
    Some(llvar(11, N, "Settlement Institution ID Code")), // 99
    Some(llvar(11, N, "Receiving Institution ID Code")), // 100
    Some(llvar(17, TEXT, "File Name")),                  // 101
    Some(llvar(28, TEXT, "Account ID 1")),               // 102
    Some(llvar(28, TEXT, "Account ID 2")),               // 103
    Some(lllvar(100, TEXT, "Transaction Description")),  // 104
    Some(lllvar(999, TEXT, "Reserved for ISO Use")),     // 105
    Some(lllvar(999, TEXT, "Reserved for ISO Use")),     // 106
    Some(lllvar(999, TEXT, "Reserved for ISO Use")),     // 107
    Some(lllvar(999, TEXT, "Reserved for ISO Use")),     // 108
    Some(lllvar(999, TEXT, "Reserved for ISO Use")),     // 109
    Some(lllvar(999, TEXT, "Reserved for ISO Use")),     // 110
    Some(lllvar(999, TEXT, "Reserved for ISO Use")),     // 111
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 112
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 113
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 114
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 115
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 116
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 117
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 118
    Some(lllvar(999, TEXT, "Reserved for National Use")), // 119
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 120
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 121
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 122
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 123
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 124
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 125
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 126
    Some(lllvar(999, TEXT, "Reserved for Private Use")), // 127
    Some(fixed(16, HEX, "MAC")),                         // 128
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shape() {
        assert!(field_spec(0).is_none());
        assert!(field_spec(1).is_none());
        assert!(field_spec(65).is_none());
        assert!(field_spec(129).is_none());
        assert!(field_spec(255).is_none());
        for de in (2u8..=128).filter(|&d| d != 65) {
            let spec = field_spec(de).expect("every DE 2..=128 but 65 has a spec");
            match spec.kind {
                LengthKind::Fixed => assert!(spec.max_len > 0),
                LengthKind::LlVar => assert!(spec.max_len <= 99),
                LengthKind::LllVar => assert!(spec.max_len <= 999),
            }
        }
        let pan = field_spec(2).expect("DE2");
        assert_eq!((pan.kind, pan.max_len, pan.charset), (LengthKind::LlVar, 19, Charset::Numeric));
        let icc = field_spec(55).expect("DE55");
        assert_eq!((icc.kind, icc.max_len, icc.charset), (LengthKind::LllVar, 510, Charset::Hex));
        let pin = field_spec(52).expect("DE52");
        assert_eq!((pin.kind, pin.max_len, pin.charset), (LengthKind::Fixed, 16, Charset::Hex));
        let ode = field_spec(90).expect("DE90");
        assert_eq!((ode.kind, ode.max_len, ode.charset), (LengthKind::Fixed, 42, Charset::Numeric));
    }

    #[test]
    fn charsets() {
        assert!(Charset::Numeric.accepts(b"0123456789"));
        assert!(!Charset::Numeric.accepts(b"12a"));
        assert!(!Charset::Numeric.accepts(b" 1"));
        assert!(Charset::SignedNumeric.accepts(b"C00001000"));
        assert!(Charset::SignedNumeric.accepts(b"D00001000"));
        assert!(!Charset::SignedNumeric.accepts(b"X00001000"));
        assert!(!Charset::SignedNumeric.accepts(b"C0000100A"));
        assert!(Charset::Track.accepts(b";4761739001010010=22122011143804400000?"));
        assert!(Charset::Track.accepts(b"4761739001010010D22122011143804400000"));
        assert!(!Charset::Track.accepts(b"4761^"));
        assert!(Charset::Hex.accepts(b"0123456789ABCDEFabcdef"));
        assert!(!Charset::Hex.accepts(b"0G"));
        assert!(Charset::Text.accepts(b"Hello, World ~!"));
        assert!(!Charset::Text.accepts(b"tab\there"));
        assert!(!Charset::Text.accepts("caf\u{e9}".as_bytes()));
        assert!(!Charset::Text.accepts(b"\x7f"));
    }
}
