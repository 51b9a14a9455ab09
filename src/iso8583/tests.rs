//! Codec-wide tests: the conformance vector files, and property-style tests with a small
//! deterministic PRNG (random bytes and random mutations never panic; encode → decode round-trips).

use std::collections::BTreeMap;

use serde_json::Value;

use super::spec::{Charset, LengthKind};
use super::*;

// ----- conformance vectors

/// What the vector runner does for `iso8583.decode`: the `fields` object, or the error kind.
fn run_decode(message_hex: &str) -> Result<BTreeMap<String, String>, CodecError> {
    let bytes = hex::decode(message_hex).expect("vector hex");
    let m = Message::decode(&bytes)?;
    let mut out = BTreeMap::new();
    out.insert("t".to_string(), m.mti().to_string());
    for (de, v) in m.fields() {
        out.insert(de.to_string(), v.to_string());
    }
    Ok(out)
}

/// What the vector runner does for `iso8583.encode`.
fn run_encode(fields: &serde_json::Map<String, Value>) -> Result<String, CodecError> {
    let pairs: Vec<(&str, &str)> =
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str().expect("string value"))).collect();
    let m = Message::from_fields(pairs)?;
    Ok(hex::encode_upper(m.encode()?))
}

fn check_file(path: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let source = file["source"].as_str().expect("source");
    assert!(!source.is_empty());
    let cases = file["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let out = &case["out"];
        let want_error = out.get("error").and_then(Value::as_str);
        match case["op"].as_str().expect("op") {
            "iso8583.decode" => match (run_decode(case["in"]["message"].as_str().expect("message")), want_error) {
                (Err(_), Some("format")) => {}
                (Ok(got), None) => {
                    let want: BTreeMap<String, String> = out["fields"]
                        .as_object()
                        .expect("fields")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
                        .collect();
                    if got != want {
                        failures.push(format!("{id}: fields differ"));
                    }
                }
                (Ok(_), Some(k)) => failures.push(format!("{id}: decoded, expected error {k}")),
                (Err(e), _) => failures.push(format!("{id}: {e}")),
            },
            "iso8583.encode" => match (run_encode(case["in"]["fields"].as_object().expect("fields")), want_error) {
                (Err(_), Some("format")) => {}
                (Ok(got), None) => {
                    let want = out["message"].as_str().expect("message");
                    if !got.eq_ignore_ascii_case(want) {
                        failures.push(format!("{id}: message differs"));
                    }
                }
                (Ok(_), Some(k)) => failures.push(format!("{id}: encoded, expected error {k}")),
                (Err(e), _) => failures.push(format!("{id}: {e}")),
            },
            op => failures.push(format!("{id}: unknown op {op}")),
        }
    }
    assert!(failures.is_empty(), "{path}:\n{}", failures.join("\n"));
    cases.len()
}

#[test]
fn vectors_pyiso8583() {
    let n = check_file(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/iso8583.json"));
    assert!(n >= 30, "{n} cases");
}

#[test]
fn vectors_dialect() {
    let n = check_file(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/iso8583-dialect.json"));
    assert!(n >= 10, "{n} cases");
}

// ----- property-style tests

/// xorshift64*: small, deterministic, good enough to shake a parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn pick(&mut self, from: &[u8]) -> u8 {
        from.get(self.below(from.len())).copied().unwrap_or(b'0')
    }
}

const DIGITS: &[u8] = b"0123456789";
const HEXDIGITS: &[u8] = b"0123456789ABCDEFabcdef";
const TRACK: &[u8] = b"0123456789:;<=>?D";

/// A random valid value for `de`.
fn random_value(rng: &mut Rng, de: u8) -> Vec<u8> {
    let spec = field_spec(de).expect("spec");
    let len = match spec.kind {
        LengthKind::Fixed => spec.max_len(),
        _ => rng.below(spec.max_len() + 1),
    };
    if de == 55 {
        // Random primitive TLV objects, as hex, within the length.
        let mut bytes = Vec::new();
        while bytes.len() + 4 <= len / 2 {
            let room = len / 2 - bytes.len() - 3;
            let vlen = rng.below(room.min(40) + 1);
            let tag = [0x9F, (rng.next() as u8) & 0x1F | 0x01];
            let mut obj = Vec::from(tag);
            obj.push(vlen as u8);
            obj.extend((0..vlen).map(|_| rng.next() as u8));
            if bytes.len() + obj.len() > len / 2 {
                break;
            }
            bytes.extend(obj);
        }
        return hex::encode_upper(bytes).into_bytes();
    }
    match spec.charset {
        Charset::Numeric => (0..len).map(|_| rng.pick(DIGITS)).collect(),
        Charset::SignedNumeric => {
            let mut v = vec![if rng.next().is_multiple_of(2) { b'C' } else { b'D' }];
            v.extend((1..len).map(|_| rng.pick(DIGITS)));
            v
        }
        Charset::Track => (0..len).map(|_| rng.pick(TRACK)).collect(),
        Charset::Hex => (0..len).map(|_| rng.pick(HEXDIGITS)).collect(),
        Charset::Text => (0..len).map(|_| 0x20 + (rng.next() % 95) as u8).collect(),
    }
}

fn random_message(rng: &mut Rng) -> Message {
    let mtis = [Mti::FINANCIAL_REQUEST, Mti::FINANCIAL_RESPONSE, Mti::REVERSAL_ADVICE, Mti::NETWORK_REQUEST];
    let mut m = Message::new(mtis.get(rng.below(mtis.len())).copied().unwrap_or(Mti::FINANCIAL_REQUEST));
    let count = rng.below(20);
    for _ in 0..count {
        // Mostly primary fields, sometimes secondary ones.
        let de = if rng.next().is_multiple_of(4) { 66 + rng.below(63) } else { 2 + rng.below(63) } as u8;
        let value = random_value(rng, de);
        m.set_bytes(de, &value).unwrap_or_else(|e| panic!("DE{de}: {e}"));
    }
    m
}

#[test]
fn random_messages_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3_000 {
        let m = random_message(&mut rng);
        let bytes = m.encode().expect("encodes");
        assert_eq!(bytes.len(), m.encoded_len());
        let back = Message::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, m);
        assert_eq!(back.encode().expect("re-encodes"), bytes, "canonical bytes re-encode identically");
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let alphabet: &[u8] = b"0123456789ABCDEF0000000000008 =\xff";
    for i in 0..30_000 {
        let len = rng.below(120);
        let bytes: Vec<u8> = if i % 3 == 0 {
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            // Mostly plausible characters, so the parser gets past the MTI and bitmaps.
            let mut v = b"0200".to_vec();
            v.extend((0..len).map(|_| rng.pick(alphabet)));
            v
        };
        if let Err(e) = Message::decode(&bytes) {
            let _ = e.to_string();
            let _ = format!("{e:?}");
        }
    }
}

#[test]
fn mutated_messages_never_panic_and_stay_consistent() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    for _ in 0..1_500 {
        let original = random_message(&mut rng).encode().expect("encodes");
        for _ in 0..8 {
            let mut bytes = original.clone();
            match rng.below(4) {
                0 => {
                    let at = rng.below(bytes.len());
                    if let Some(b) = bytes.get_mut(at) {
                        *b = rng.next() as u8;
                    }
                }
                1 => {
                    let at = rng.below(bytes.len());
                    if let Some(b) = bytes.get_mut(at) {
                        *b = rng.pick(b"0123456789ABCDEF9 ");
                    }
                }
                2 => bytes.truncate(rng.below(bytes.len() + 1)),
                _ => {
                    let at = rng.below(bytes.len() + 1);
                    bytes.insert(at, rng.pick(b"0123456789"));
                }
            }
            match Message::decode(&bytes) {
                Ok(m) => {
                    // Whatever decodes re-encodes and decodes to the same message.
                    let again = m.encode().expect("encodes");
                    assert_eq!(Message::decode(&again).expect("decodes"), m);
                }
                Err(e) => {
                    if let Some(p) = e.partial() {
                        // A partial message holds only valid fields: it encodes and decodes back.
                        let again = p.encode().expect("partial encodes");
                        assert_eq!(&Message::decode(&again).expect("partial decodes"), p);
                        if let Some(de) = e.field() {
                            assert!(!p.contains(de), "the failing field is not in the partial message");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_prefix_is_an_error() {
    let mut rng = Rng(42);
    for _ in 0..50 {
        let mut m = random_message(&mut rng);
        m.set_stan("000777").expect("stan");
        let bytes = m.encode().expect("encodes");
        for cut in 0..bytes.len() {
            let prefix = bytes.get(..cut).expect("prefix");
            let e = Message::decode(prefix).expect_err("a strict prefix never decodes");
            assert_eq!(e.mti().is_some(), cut >= 4, "cut {cut}");
        }
    }
}

#[test]
fn partial_identifies_a_bad_request() {
    // A 0200 whose DE4 has a letter and whose DE55 is not BER-TLV: the error names DE4 (the first),
    // and the answer can still be addressed by DE11 + DE41.
    let mut m = Message::new(Mti::FINANCIAL_REQUEST);
    m.set_pan("9410001234567892")
        .and_then(|m| m.set_amount(100))
        .and_then(|m| m.set_stan("000321"))
        .and_then(|m| m.set_terminal_id("TERM0042"))
        .and_then(|m| m.set_icc_data(&[0x9F, 0x36, 0x02, 0x00, 0x42]))
        .expect("valid");
    let mut bytes = m.encode().expect("encodes");
    let de4 = 4 + 16 + 2 + 16;
    if let Some(b) = bytes.get_mut(de4 + 11) {
        *b = b'O';
    }
    let len = bytes.len();
    if let Some(b) = bytes.get_mut(len - 5) {
        *b = b'3'; // DE55 9F36 02 0042 → 9F36 03 0042: the value runs past the end
    }
    let e = Message::decode(&bytes).expect_err("bad");
    assert_eq!(e.field(), Some(4));
    assert_eq!(e.stan(), Some("000321"));
    assert_eq!(e.terminal_id(), Some("TERM0042"));
    let p = e.partial().expect("partial");
    assert!(p.contains(2) && !p.contains(4) && !p.contains(55));
    // The response MTI is known too.
    assert_eq!(e.mti().and_then(|m| m.response()), Some(Mti::FINANCIAL_RESPONSE));
}

#[test]
fn typical_0200_is_fast_enough() {
    // Not a benchmark (see benches/), only a tripwire against accidental quadratic behaviour.
    let bytes = hex::decode(
        serde_json::from_str::<Value>(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/iso8583.json")).expect("file"),
        )
        .expect("json")["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .find(|c| c["id"] == "0200-contactless-arqc-decode")
            .expect("case")["in"]["message"]
            .as_str()
            .expect("hex"),
    )
    .expect("hex");
    let start = std::time::Instant::now();
    let n = 2_000;
    for _ in 0..n {
        let m = Message::decode(std::hint::black_box(&bytes)).expect("decodes");
        let out = m.encode().expect("encodes");
        std::hint::black_box(out);
    }
    let per = start.elapsed() / n;
    println!("decode + encode of a 0200 with DE55 ({} bytes): {per:?}", bytes.len());
    // Generous for debug builds on a shared machine; release is far below.
    assert!(per < std::time::Duration::from_millis(1), "{per:?} per decode+encode");
}
