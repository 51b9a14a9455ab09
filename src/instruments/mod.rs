//! The rules of each kind of instrument, on domain types only (no store, no transport): one file
//! per kind.

pub mod card;
pub mod gift;
pub mod local;
