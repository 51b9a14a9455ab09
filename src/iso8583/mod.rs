//! ISO 8583:1987 as in docs/iso8583.md: the messages terminals and VANs send the TSP, and the TSP
//! sends issuers — in the ASCII dialect, and in the `binary` and `bcd` dialects through [`Dialect`].
//!
//! A pure codec: bytes in, [`Message`] out and back, nothing else in the crate involved. Read in
//! this order:
//!
//! - [`mti`]: the message type indicator (`0200`, `0210`, …).
//! - [`bitmap`]: which data elements are present, as 16 hex characters per 64 fields (upper case written, either case read).
//! - [`spec`]: the field table — for each DE 2–128 its length kind (fixed, LLVAR, LLLVAR), maximum
//!   and character set; the same table as pyiso8583's `default_ascii`.
//! - [`message`]: [`Message`], `decode` and `encode`, typed getters and setters.
//! - [`original`]: DE90, the original data elements of a reversal or cancellation.
//! - [`dialect`]: [`Dialect`], the same messages in the `binary` and `bcd` layouts (binary bitmaps,
//!   binary `b` fields, BCD numerics) for links that do not speak ASCII.
//! - [`frame`]: the length prefix and optional TPDU around a message on TCP.
//! - [`tlv`]: BER-TLV, the format of DE55 (ICC data); [`private`]: the tagged elements of DE48.
//! - [`error`]: [`CodecError`], which names the failing element and keeps what could be read, so
//!   that even a malformed request gets its `30` answer.
//!
//! ```
//! use tsp::iso8583::{Message, Mti};
//!
//! let mut req = Message::new(Mti::NETWORK_REQUEST);
//! req.set_transmission_date_time("0612143015")?.set_stan("000001")?.set_network_management_code("301")?;
//! let bytes = req.encode()?;
//! assert_eq!(bytes, b"0800822000000000000004000000000000000612143015000001301");
//! assert_eq!(Message::decode(&bytes)?, req);
//! # Ok::<(), tsp::iso8583::CodecError>(())
//! ```
//!
//! Everything is total: no input makes the codec panic; every failure is a [`CodecError`] (kind
//! `format` in the conformance vectors). Field values never appear in errors or `Debug` output for
//! card data (DE2, 34, 35, 36, 45, 52, 55).

pub mod bitmap;
pub mod dialect;
pub mod error;
pub mod frame;
pub mod mac;
pub mod message;
pub mod mti;
pub mod original;
pub mod private;
pub mod spec;
pub mod tlv;

pub use bitmap::Bitmap;
pub use dialect::Dialect;
pub use error::{CodecError, ErrorKind, Location};
pub use message::{MAX_MESSAGE_LEN, Message};
pub use mti::Mti;
pub use original::OriginalData;
pub use spec::{Charset, FieldSpec, LengthKind, field_spec};

#[cfg(test)]
mod tests;
