//! BER-TLV (DE55) parsing: any bytes give objects or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsp::iso8583::tlv;

fuzz_target!(|data: &[u8]| {
    for item in tlv::parse(data) {
        match item {
            Ok(t) => {
                let _ = (t.tag(), t.value().len(), t.is_constructed());
                let _ = t.children().count();
            }
            Err(_) => break,
        }
    }
    let _ = tlv::validate(data);
    let _ = tlv::find(data, tlv::Tag::ATC);
});
