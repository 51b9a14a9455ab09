//! The primitives, each a thin layer over a well-kept crate. Nothing here knows about key storage.

pub mod aead;
pub mod cvv;
pub mod dukpt_aes;
pub mod dukpt_tdes;
pub mod emv;
pub mod ff1;
pub mod kcv;
pub mod mac;
pub mod pin;
pub mod pvv;
pub mod tr31;
pub mod wrap;
