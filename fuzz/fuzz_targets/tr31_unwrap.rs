//! TR-31 key block parsing and unwrapping: any text gives a key or an error, never a panic.
#![no_main]

use hsm_sim::crypto::tr31;
use libfuzzer_sys::fuzz_target;

const KBPK_AES: [u8; 32] = [0x42; 32];
const KBPK_TDES: [u8; 16] = [0x24; 16];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tr31::Header::parse(text);
        let _ = tr31::unwrap(&KBPK_AES, text);
        let _ = tr31::unwrap(&KBPK_TDES, text);
    }
});
