//! ISO 8583 in the `bcd` dialect (docs/iso8583.md "Dialects"): any bytes give a message or an
//! error, never a panic; whatever decodes re-encodes, in `bcd` and in `ascii`, to a message that
//! decodes to the same fields; a decode error's partial message (what a `30` answer is built from)
//! encodes in this dialect. The first byte also picks a framing, so the TPDU split sees any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsp::iso8583::frame::{Framing, LengthPrefix};
use tsp::iso8583::{Dialect, Message};

const DIALECT: Dialect = Dialect::Bcd;

fuzz_target!(|data: &[u8]| {
    let framing = Framing { length: LengthPrefix::Binary2, tpdu: data.first().is_some_and(|b| b & 1 == 1) };
    let Some(body) = framing.split(data) else { return };
    if let Some(tpdu) = body.tpdu {
        let frame = framing.encode(Some(tpdu), b"0810").expect("a small frame");
        assert_eq!(frame.get(3..5), tpdu.get(3..5), "the source comes back as the destination");
    }
    match DIALECT.decode(body.message) {
        Ok(msg) => {
            let again = DIALECT.encode(&msg).expect("a decoded message encodes");
            let back = DIALECT.decode(&again).expect("an encoded message decodes");
            assert!(back == msg, "decode, encode, decode must give the same message");
            let ascii = msg.encode().expect("and encodes in ascii");
            assert!(Message::decode(&ascii).expect("ascii decodes") == msg, "the same message in ascii");
        }
        Err(e) => {
            let _ = e.to_string();
            if let Some(p) = e.partial() {
                let _ = DIALECT.encode(p);
            }
        }
    }
});
