//! # hsm-sim — a payment HSM in software
//!
//! **A simulator for tests and development. Never load production keys into it.**
//!
//! Every key lives inside the [`Hsm`]: stored keys are kept under a local master key (LMK) and persisted
//! only wrapped (RFC 3394) under it; data keys travel outside only wrapped under a stored key-encryption
//! key. Callers name keys with a [`KeyRef`] and ask for operations with a [`Request`]; the answer is a
//! [`Response`] or an [`HsmError`] whose [`ErrorKind`] is one of the conformance-vector error kinds.
//!
//! The request/response types are plain serde data so the same operations can be offered in process
//! (call [`Hsm::execute`]) or over a socket, with identical results.
//!
//! This crate knows nothing of the payment service that uses it.

pub mod crypto;
mod error;
mod hsm;
pub mod keys;
mod keystore;
mod ops;
pub mod payshield;
mod protocol;
pub mod seal;
mod secret;
pub mod server;
pub mod tls;
pub mod wire;

pub use error::{ErrorKind, HsmError};
pub use hsm::Hsm;
pub use keys::{Algorithm, KeyId, KeyInfo, KeyRef, KeyUsage};
pub use keystore::KeyStoreFile;
pub use protocol::{Request, Response};
pub use secret::{Bytes, SecretBytes};

/// Printed by every binary that starts the simulator.
pub const BANNER: &str = "hsm-sim: SOFTWARE HSM SIMULATOR — for development and tests only, NOT for production keys";
