//! Unit tests of `message.rs`.

use super::*;

fn purchase() -> Message {
    let mut m = Message::new(Mti::FINANCIAL_REQUEST);
    m.set_pan("9410123456789012")
        .and_then(|m| m.set_processing_code("000000"))
        .and_then(|m| m.set_amount(12_500))
        .and_then(|m| m.set_transmission_date_time("0612143015"))
        .and_then(|m| m.set_stan("000123"))
        .and_then(|m| m.set_pos_entry_mode("071"))
        .and_then(|m| m.set_acquirer_id("12345"))
        .and_then(|m| m.set_terminal_id("TERM0001"))
        .and_then(|m| m.set_merchant_id("MERCHANT0000001"))
        .and_then(|m| m.set_currency_code("410"))
        .and_then(|m| m.set(55, "9F36020FFF"))
        .expect("valid fields");
    m
}

#[test]
fn round_trip_and_layout() {
    let m = purchase();
    assert_eq!(m.amount(), Some(12_500));
    assert_eq!(m.get(4), Some("000000012500"));
    let bytes = m.encode().expect("encodes");
    assert_eq!(bytes.len(), m.encoded_len());
    assert!(bytes.starts_with(b"02007220040100C08200169410123456789012000000000000012500"));
    let back = Message::decode(&bytes).expect("decodes");
    assert_eq!(back, m);
    assert_eq!(back.fields().map(|(de, _)| de).collect::<Vec<_>>(), vec![2, 3, 4, 7, 11, 22, 32, 41, 42, 49, 55]);
    assert_eq!(back.icc_data(), Some(vec![0x9F, 0x36, 0x02, 0x0F, 0xFF]));
    let mut out = vec![0, 0];
    back.encode_into(&mut out).expect("encodes");
    assert_eq!(out.get(2..), Some(&bytes[..]));
}

#[test]
fn setters_check_and_overwrite() {
    let mut m = purchase();
    let e = m.set_stan("12345").expect_err("short");
    assert_eq!((e.field(), e.kind()), (Some(11), ErrorKind::WrongLength { len: 5, expected: 6 }));
    let e = m.set_stan("00012A").expect_err("letter");
    assert_eq!(e.kind(), ErrorKind::BadCharacters { charset: Charset::Numeric });
    let e = m.set_pan("94101234567890123456").expect_err("20 digits");
    assert_eq!(e.kind(), ErrorKind::TooLong { len: 20, max: 19 });
    assert_eq!(m.pan(), Some("9410123456789012"), "unchanged after a failed set");
    let e = Message::set(&mut m, 55, "9F3602").expect_err("TLV value runs short");
    assert!(matches!(e.kind(), ErrorKind::Tlv(_)));
    let e = Message::set(&mut m, 55, "9F36020FF").expect_err("odd");
    assert_eq!(e.kind(), ErrorKind::OddHexLength);
    for de in [0u8, 1, 65, 129, 255] {
        let e = Message::set(&mut m, de, "0").expect_err("not a DE");
        assert_eq!((e.field(), e.kind()), (Some(de), ErrorKind::Unsupported));
    }
    assert!(m.set_amount(1_000_000_000_000).is_err());
    assert!(m.set_amount(999_999_999_999).is_ok());
    assert!(m.set_numeric(2, 1).is_err(), "DE2 is not fixed");

    // Shorter values overwrite in place; longer ones are appended; both read back.
    let before = m.buf.len();
    m.set_pan("9410123456789").expect("13 digits");
    assert_eq!(m.buf.len(), before);
    m.set_pan("9410123456789012345").expect("19 digits");
    assert_eq!(m.pan(), Some("9410123456789012345"));
    assert!(m.remove(2));
    assert!(!m.remove(2));
    assert_eq!(m.pan(), None);
    let back = Message::decode(&m.encode().expect("encodes")).expect("decodes");
    assert_eq!(back, m);

    // Empty variable fields are allowed and travel as a zero length.
    let mut r = Message::new(Mti::AUTHORIZATION_RESPONSE);
    r.set_additional_data("").expect("empty LLLVAR");
    let bytes = r.encode().expect("encodes");
    assert_eq!(bytes, b"01100000000000010000000");
    assert_eq!(Message::decode(&bytes).expect("decodes").additional_data(), Some(""));
}

#[test]
fn numeric_and_icc_helpers() {
    let mut m = Message::new(Mti::FINANCIAL_RESPONSE);
    m.set_numeric(11, 42).expect("fits");
    assert_eq!(m.stan(), Some("000042"));
    assert_eq!(m.numeric(11), Some(42));
    m.set_numeric(90, 7).expect("42 wide");
    assert_eq!(m.get(90).map(str::len), Some(42));
    assert_eq!(m.numeric(90), None, "too wide for u64");
    m.set_icc_data(&[0x91, 0x08, 0x76, 0x50, 0x3F, 0x48, 0, 0, 0, 0]).expect("tag 91");
    assert_eq!(m.get(55), Some("910876503F4800000000"));
    assert!(m.set_icc_data(&[0x91, 0x08]).is_err(), "not BER-TLV");
    assert!(m.set_icc_data(&[0u8; 256]).is_err(), "too long");
    let mut long = vec![0xDF, 0x81, 0x01, 0x81, 0xFB];
    long.extend(std::iter::repeat_n(0xAB, 0xFB));
    assert_eq!(long.len(), 256);
    assert!(m.set_icc_data(&long).is_err());
    long.truncate(255);
    long[4] = 0xFA;
    m.set_icc_data(&long).expect("255 bytes");
    assert_eq!(m.get(55).map(str::len), Some(510));
    assert_eq!(m.icc_data(), Some(long));

    let o = OriginalData::new(Mti::FINANCIAL_REQUEST, "000123", "0612143015", "12345").expect("valid");
    m.set_original_data(&o).expect("sets");
    assert_eq!(m.original_data(), Some(o));
}

#[test]
fn debug_redacts_card_data() {
    let mut m = purchase();
    m.set_track2("9410123456789012=2812").expect("z");
    m.set_pin_block("0412AC89ABCDEF67").expect("hex");
    let dbg = format!("{m:?}");
    for secret in ["9410123456789012", "9F36020FFF", "0412AC89ABCDEF67", "=2812"] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    assert!(dbg.contains("TERM0001") && dbg.contains("<redacted, 16 chars>"), "{dbg}");
    assert!(m.wipe);
}

#[test]
fn from_fields_keys() {
    let m = Message::from_fields([("2", "4761739001010010"), ("t", "0100"), ("3", "900000")]).expect("valid");
    assert_eq!(m.mti(), Mti::AUTHORIZATION_REQUEST);
    assert_eq!(m.pan(), Some("4761739001010010"));
    for (key, loc) in [
        ("p", Location::Message),
        ("02", Location::Message),
        ("+2", Location::Message),
        ("129", Location::Message),
        ("1", Location::Field(1)),
        ("65", Location::Field(65)),
    ] {
        let e = Message::from_fields([("t", "0200"), (key, "0")]).expect_err(key);
        assert_eq!(e.location(), loc, "{key}");
    }
    let e = Message::from_fields([("3", "000000")]).expect_err("no MTI");
    assert_eq!((e.location(), e.kind()), (Location::Mti, ErrorKind::Missing));
    let e = Message::from_fields([("t", "02x0")]).expect_err("bad MTI");
    assert_eq!(e.location(), Location::Mti);
}

#[test]
fn errors_keep_what_was_read() {
    // DE3 has a letter: decoding carries on, so STAN and terminal id are still known.
    let mut bytes = purchase().encode().expect("encodes");
    let de3_at = 4 + 16 + 2 + 16;
    bytes[de3_at] = b'X';
    let e = Message::decode(&bytes).expect_err("letter in DE3");
    assert_eq!(e.field(), Some(3));
    assert_eq!(e.offset(), Some(de3_at));
    assert_eq!(e.kind(), ErrorKind::BadCharacters { charset: Charset::Numeric });
    assert_eq!(e.mti(), Some(Mti::FINANCIAL_REQUEST));
    assert_eq!(e.stan(), Some("000123"));
    assert_eq!(e.terminal_id(), Some("TERM0001"));
    let partial = e.partial().expect("partial");
    assert!(!partial.contains(3) && partial.contains(4));
    // Nothing of the PAN in what an error prints.
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("9410123456789012"), "{shown}");

    // Truncated inside DE41: DE11 is known, DE41 is not.
    let good = purchase().encode().expect("encodes");
    let cut = good.windows(8).position(|w| w == b"TERM0001").expect("DE41") + 3;
    let e = Message::decode(&good[..cut]).expect_err("truncated");
    assert_eq!((e.field(), e.kind()), (Some(41), ErrorKind::Truncated));
    assert_eq!(e.stan(), Some("000123"));
    assert_eq!(e.terminal_id(), None);

    // Bad MTI: nothing to answer with.
    let e = Message::decode(b"02X07000000000000000").expect_err("bad MTI");
    assert_eq!(e.location(), Location::Mti);
    assert!(e.partial().is_none());

    // Trailing bytes.
    let mut long = good.clone();
    long.push(b'0');
    let e = Message::decode(&long).expect_err("trailing");
    assert_eq!((e.location(), e.kind()), (Location::Message, ErrorKind::TrailingData { extra: 1 }));
    assert_eq!(e.offset(), Some(good.len()));
}
