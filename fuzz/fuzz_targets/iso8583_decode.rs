//! ISO 8583 decoding: any bytes give a message or an error, never a panic; whatever decodes
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsp::iso8583::Message;

fuzz_target!(|data: &[u8]| {
    match Message::decode(data) {
        Ok(msg) => {
            let again = msg.encode().expect("a decoded message encodes");
            assert_eq!(again, data, "decode then encode must round-trip");
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
