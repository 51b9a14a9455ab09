//! # tsp — a card-payment Token Service Provider
//!
//! Read top to bottom:
//! - [`config`]: issuers, BIN and token ranges, currencies (the demo config is embedded).
//! - [`vault`]: card instruments, PANs sealed under HSM-wrapped data keys, fingerprints and PARs.
//! - [`stored_value`]: gift certificates and local-currency wallets, on the [`ledger`].
//! - [`tokens`]: one-time tokens: issuance, lookup, atomic consumption.
//! - [`requestors`]: token requestors, their scopes and API keys.
//! - [`store`]: the database (SQLite embedded; the only module that speaks SQL).
//! - [`hsm`]: the door to the HSM (`hsm-sim` in process).
//! - [`audit`]: the hash-chained audit trail.
//! - [`terminals`]: the terminal registry: which terminals may pay, for which merchant, via which VAN.
//! - [`payments`]: the ISO 8583 flows, one module per instrument kind in `payments/funding`.
//! - [`api`]: the REST API (axum).
//! - [`web`]: the demo pages (wallet, console, terminal), embedded.
//! - [`app`]: wiring it all together for `tsp serve`.

pub mod api;
pub mod app;
pub mod audit;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod events;
pub mod hsm;
pub mod instruments;
pub mod iso8583;
pub mod issuer;
pub mod ledger;
pub mod load;
pub mod luhn;
pub mod metrics;
pub mod money;
pub mod payments;
pub mod requestors;
pub mod sealed;
pub mod seed;
pub mod server;
pub mod store;
pub mod stored_value;
pub mod terminal;
pub mod terminals;
pub mod tls;
pub mod tokens;
pub mod vault;
pub mod vectors;
pub mod web;
pub mod webhooks;

pub use error::{Error, Result};
