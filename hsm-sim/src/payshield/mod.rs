//! A payShield-style host-command front: the message layer Thales payShield HSMs speak, so payment
//! software written for them (jPOS's Thales adapter, ut-codec-payshield, pythales clients, in-house
//! switches) can run against this simulator.
//!
//! This module owns the pure part — one message in, one answer out, no I/O — and never panics on any
//! input: an unknown command is answered `ZZ` `00`, a malformed one `15`, and the connection lives on.
//! Keys travel enciphered under the variant LMK ([`lmk`]) or as key blocks ([`keyblock`]); the TCP front with its 2-byte length prefix
//! is [`crate::server::serve_payshield`].
//!
//! - [`wire`]: splitting a message, the field cursor, error codes;
//! - [`lmk`]: the test LMK set, key types, variants and key schemes;
//! - [`keyblock`]: the key-block LMK form (`S` key fields);
//! - [`commands`]: the commands' field layouts and work.

pub mod commands;
pub mod keyblock;
pub mod lmk;
pub mod wire;

use ring::rand::SystemRandom;

use wire::{Code, Reader};

/// The default length of the message header (characters echoed back unchanged).
pub const DEFAULT_HEADER_LEN: usize = 4;

/// The longest header `--header-length` accepts.
pub const MAX_HEADER_LEN: usize = 64;

/// The longest answer the 2-byte length prefix can carry.
pub const MAX_ANSWER: usize = u16::MAX as usize;

/// The commands answered, in the order of the documentation table.
pub const COMMANDS: &[&str] = &[
    "NC", "BU", "A0", "A6", "A8", "CW", "CY", "DC", "EC", "CA", "CC", "M6", "M8", "M0", "M2", "GM", "KQ", "G0", "FA",
    "HC", "LQ", "LS", "KW", "9A", "JE", "JG",
];

/// The host-command processor: stateless apart from its header length and random generator.
pub struct Front {
    header_len: usize,
    rng: SystemRandom,
}

impl Front {
    /// A front with a header of `header_len` characters (at most [`MAX_HEADER_LEN`]; longer is cut).
    pub fn new(header_len: usize) -> Self {
        Front { header_len: header_len.min(MAX_HEADER_LEN), rng: SystemRandom::new() }
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Answers one message (the bytes after the length prefix).
    pub fn handle(&self, msg: &[u8]) -> Vec<u8> {
        let m = wire::split(msg, self.header_len);
        let Some(command) = m.command else {
            return wire::answer(m.header, wire::UNKNOWN_COMMAND, Code::INVALID_INPUT, &[]);
        };
        let mut r = Reader::new(m.fields);
        let result = match &command {
            b"NC" => commands::nc(&mut r),
            b"BU" => commands::bu(&mut r),
            b"A0" => commands::a0(&mut r, &self.rng),
            b"A6" => commands::a6(&mut r, &self.rng),
            b"A8" => commands::a8(&mut r),
            b"CW" => commands::cw(&mut r),
            b"CY" => commands::cy(&mut r),
            b"DC" => commands::dc(&mut r),
            b"EC" => commands::ec(&mut r),
            b"CA" => commands::ca(&mut r, &self.rng),
            b"CC" => commands::cc(&mut r, &self.rng),
            b"M6" => commands::mac_command(&mut r, false),
            b"M8" => commands::mac_command(&mut r, true),
            b"M0" => commands::data_command(&mut r, true),
            b"M2" => commands::data_command(&mut r, false),
            b"GM" => commands::gm(&mut r),
            b"KQ" => commands::kq(&mut r),
            b"G0" => commands::g0(&mut r, &self.rng),
            b"FA" => commands::fa(&mut r, &self.rng),
            b"HC" => commands::hc(&mut r, &self.rng),
            b"LQ" => commands::hmac_command(&mut r, false),
            b"LS" => commands::hmac_command(&mut r, true),
            b"KW" => commands::kw(&mut r),
            b"9A" => commands::derive_icc_mk(&mut r),
            b"JE" => commands::je(&mut r),
            b"JG" => commands::jg(&mut r, &self.rng),
            _ => return wire::answer(m.header, wire::UNKNOWN_COMMAND, Code::OK, &[]),
        };
        let response = wire::response_code(command);
        match result {
            // The answer must fit the 2-byte length prefix (hex output of a long binary input would not).
            Ok(fields) if m.header.len() + 4 + fields.len() > MAX_ANSWER => {
                wire::answer(m.header, response, Code::INVALID_INPUT, &[])
            }
            Ok(fields) => wire::answer(m.header, response, Code::OK, &fields),
            Err(code) => wire::answer(m.header, response, code, &[]),
        }
    }
}
