//! The payShield host-command front: any message gets an answer that echoes the header and carries a
//! response and an error code, never a panic. The first byte steers half the inputs onto a known
//! command code so the fuzzer spends its time inside the field parsers, not on unknown codes.
#![no_main]

use hsm_sim::payshield::{COMMANDS, Front};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let front = Front::new(4);
    let answer = front.handle(data);
    assert!(answer.len() >= data.len().min(4) + 4);
    assert_eq!(&answer[..data.len().min(4)], &data[..data.len().min(4)]);

    if let Some((&first, rest)) = data.split_first() {
        if let Some(code) = COMMANDS.get(usize::from(first) % (2 * COMMANDS.len())) {
            let mut msg = b"HDR!".to_vec();
            msg.extend_from_slice(code.as_bytes());
            msg.extend_from_slice(rest);
            let answer = front.handle(&msg);
            let code = code.as_bytes();
            assert_eq!(&answer[..4], b"HDR!");
            assert_eq!(answer[4], code[0]);
            assert_eq!(answer[5], code[1] + 1);
        }
    }
});
