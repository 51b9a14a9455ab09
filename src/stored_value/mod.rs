//! Stored value the platform holds itself, beside the card vault: gift certificates (`gift`) and
//! local-currency wallets (`wallet`) — issuance, registration, charging, balances, and the
//! read–apply–write loop a wallet change goes through. Their money rules are `instruments`'s, their
//! entries `ledger`'s; no card number ever reaches this module.

pub mod gift;
pub mod lane;
pub mod wallet;
