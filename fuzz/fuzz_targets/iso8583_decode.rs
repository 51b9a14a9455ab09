//! ISO 8583 decoding: any bytes give a message or an error, never a panic; whatever decodes
//! re-encodes to a message that decodes to the same fields. (Not always the same bytes: an empty
//! secondary bitmap is accepted on input and never written.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsp::iso8583::Message;

fuzz_target!(|data: &[u8]| {
    match Message::decode(data) {
        Ok(msg) => {
            let again = msg.encode().expect("a decoded message encodes");
            let back = Message::decode(&again).expect("an encoded message decodes");
            assert!(back == msg, "decode, encode, decode must give the same message");
            let _ = msg.icc_data();
            let _ = msg.original_data();
        }
        Err(e) => {
            let _ = e.to_string();
            if let Some(p) = e.partial() {
                let _ = p.encode();
            }
        }
    }
});
