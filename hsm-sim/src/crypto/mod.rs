//! The primitives, each a thin layer over a well-kept crate. Nothing here knows about key storage.

pub mod aead;
pub mod emv;
pub mod kcv;
pub mod mac;
pub mod wrap;
