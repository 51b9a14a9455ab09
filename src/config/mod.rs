//! The service configuration: issuers and their BIN ranges, the platform's token range, currencies,
//! token defaults. `config/default.toml` is embedded, so `tsp serve` runs without a file.

mod region;
mod terminal;

use serde::Deserialize;

use crate::money::Currency;
pub use region::RegionSpec;
pub(crate) use region::check_id;
pub use region::region_row;
pub use terminal::TerminalSpec;

/// The configuration every `tsp serve` without `--config` uses.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub platform: Platform,
    #[serde(default)]
    pub tokens: TokenDefaults,
    pub currencies: Vec<Currency>,
    pub issuers: Vec<IssuerConfig>,
    #[serde(default)]
    pub settlement: Settlement,
    /// Local-currency regions seeded into the database on start (an operator may add more or change
    /// them through `/v1/admin/regions`; the database then wins).
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    /// Terminals registered on start when the database does not have them yet (`/v1/admin/terminals`
    /// registers more; the database then wins). Only registered terminals may send requests.
    #[serde(default)]
    pub terminals: Vec<TerminalSpec>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub keys: KeysConfig,
    /// TLS on the fronts and the HSM link; absent, everything is clear text as in the demo.
    #[serde(default)]
    pub tls: TlsConfig,
    /// `[iso]`: ISO 8583 listeners besides `--iso-addr`.
    #[serde(default)]
    pub iso: IsoConfig,
    /// `[hsm]`: the HSM when `--hsm` (`TSP_HSM`) is not given.
    #[serde(default)]
    pub hsm: HsmConfig,
    /// `[webhooks]`: delivery of events to requestors' endpoints (docs/webhooks.md).
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// `[verification]`: the one-time codes of step-up verification at card registration.
    #[serde(default)]
    pub verification: VerificationConfig,
    /// `[issuer_sim]`: how the issuer simulator (in process, and `tsp issuer-sim`) decides.
    #[serde(default)]
    pub issuer_sim: IssuerSimConfig,
}

/// `[verification]`: the limits of a step-up (docs/instruments.md "Step-up verification").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationConfig {
    /// How long a one-time code can be entered after it was sent.
    pub code_ttl_seconds: u64,
    /// Wrong codes a registration may take over all its codes; the last one deletes it.
    pub max_attempts: u32,
    /// Codes a registration may be sent (the first and every resend).
    pub max_codes: u32,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig { code_ttl_seconds: 300, max_attempts: 5, max_codes: 3 }
    }
}

impl VerificationConfig {
    pub fn policy(&self) -> crate::instruments::verification::Policy {
        crate::instruments::verification::Policy {
            code_ttl_ms: i64::try_from(self.code_ttl_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_attempts: i64::from(self.max_attempts.max(1)),
            max_codes: i64::from(self.max_codes.max(1)),
        }
    }
}

/// `[issuer_sim]`: the simulated issuer's own decisions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerSimConfig {
    /// `[[issuer_sim.activation]]`: how it answers a token activation request (a card
    /// registration), the first matching rule deciding; no rule matching approves.
    pub activation: Vec<ActivationRule>,
}

/// One rule of the simulated issuer for card registrations. Every condition given must hold.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationRule {
    /// The card number starts with one of these (empty: any card).
    #[serde(default)]
    pub bin_prefixes: Vec<String>,
    /// The card was asked to be registered more than this many times (this one included) within
    /// `window_seconds`, by any requestor.
    #[serde(default)]
    pub registrations_over: Option<u32>,
    #[serde(default = "default_activation_window")]
    pub window_seconds: u64,
    pub decision: ActivationDecision,
}

fn default_activation_window() -> u64 {
    86_400
}

/// What a simulated issuer rule answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationDecision {
    Approve,
    StepUp,
    Decline,
}

/// What the TSP decides for an issuer it cannot ask about a card registration (no answer, or an
/// issuer that takes no token activation requests): `approve` (assurance `stand_in`) or `decline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StandIn {
    #[default]
    Approve,
    Decline,
}

/// `[webhooks]`: how events reach requestors' endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// How often a node looks for due deliveries when it found none (milliseconds).
    pub poll_ms: u64,
    /// How long an endpoint may take to answer (milliseconds).
    pub timeout_ms: u64,
    /// The first retry's delay; each next one doubles it, up to `max_backoff_ms` (milliseconds).
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How long a delivery is retried before it is dead (seconds; at least a day by default).
    pub retry_for_seconds: u64,
    /// Endpoints on loopback, private, link-local and other non-public addresses: refused unless
    /// this is true (the demo configuration allows them; never in production: a requestor could
    /// make the service call into its own network).
    pub allow_private_addresses: bool,
    /// A PEM bundle of extra CAs trusted for `https` endpoints, besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            poll_ms: 500,
            timeout_ms: 5_000,
            backoff_ms: 5_000,
            max_backoff_ms: 3_600_000,
            retry_for_seconds: 90_000,
            allow_private_addresses: false,
            ca_file: None,
        }
    }
}

/// `[hsm]`: `url` names the HSM as `--hsm` does (`tcp://`, `tls://`, `payshield://`,
/// `payshield+tls://`); `--hsm` wins; neither: the simulator in process.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    pub url: Option<String>,
}

/// `[iso]`: the ISO 8583 front's listeners besides `--iso-addr` (which is always the `ascii`
/// dialect in 2-byte length frames). Every listener shares the ISO limits, `[tls.iso]`, the terminal
/// registry and the payment flows; only how messages are written differs (docs/iso8583.md "Dialects").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoConfig {
    /// `[[iso.listeners]]`.
    #[serde(default)]
    pub listeners: Vec<IsoListenerConfig>,
    /// After a key exchange (`0800` DE70 `101`/`161`) the replaced TAK is still accepted this long,
    /// so messages in flight under it pass (default 300 s).
    #[serde(default = "default_key_overlap_seconds")]
    pub key_overlap_seconds: u64,
    /// `[[iso.link_keys]]`: clear link keys per terminal, loaded once (development and tests only;
    /// a real deployment loads them as key blocks).
    #[serde(default)]
    pub link_keys: Vec<LinkKeyConfig>,
}

impl Default for IsoConfig {
    fn default() -> Self {
        IsoConfig { listeners: Vec::new(), key_overlap_seconds: default_key_overlap_seconds(), link_keys: Vec::new() }
    }
}

fn default_key_overlap_seconds() -> u64 {
    300
}

/// Whether a link's messages carry a MAC (docs/iso8583.md "MAC").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MacMode {
    /// No MAC is checked or written.
    #[default]
    Off,
    /// Every request must carry a valid MAC (else `63`); every answer carries one.
    Required,
}

/// The algorithm of a MAC key: `retail` (ISO/IEC 9797-1 MAC algorithm 3, TDES, TR-31 `M3`) or
/// `cmac` (AES-CMAC, TR-31 `M6`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MacAlgorithm {
    #[default]
    Retail,
    Cmac,
}

impl MacAlgorithm {
    /// The TR-31 key usage and algorithm of a key block of this MAC.
    pub fn tr31(self) -> (&'static str, &'static str) {
        match self {
            MacAlgorithm::Retail => ("M3", "T"),
            MacAlgorithm::Cmac => ("M6", "A"),
        }
    }
}

/// `[[iso.link_keys]]`: a terminal's keys in clear (hex), for development and tests. Loaded into the
/// key store as TR-31 blocks when the terminal has none of that kind yet (the database wins after).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkKeyConfig {
    /// DE41.
    pub terminal: String,
    /// The TAK: 32 hex digits (TDES for `retail`, AES-128 for `cmac`), or 48/64 for AES.
    #[serde(default)]
    pub tak: Option<SecretHex>,
    #[serde(default)]
    pub mac_algorithm: MacAlgorithm,
    /// The zone key (an AES key block protection key, 32 or 64 hex digits) a new TAK is sent under.
    #[serde(default)]
    pub zmk: Option<SecretHex>,
}

/// One more ISO 8583 listener: its address, dialect and framing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsoListenerConfig {
    /// `host:port` to listen on.
    pub addr: std::net::SocketAddr,
    /// `ascii` (default), `binary` or `bcd`.
    #[serde(default)]
    pub dialect: crate::iso8583::Dialect,
    /// The length before each frame: `binary2` (default, 2 bytes big-endian) or `ascii4` (4 decimal
    /// digits).
    #[serde(default)]
    pub length: crate::iso8583::frame::LengthPrefix,
    /// True when a 5-byte TPDU precedes each message (answers echo it, source and destination
    /// swapped).
    #[serde(default)]
    pub tpdu: bool,
    /// `off` (default) or `required`: every request must carry a MAC under its terminal's TAK.
    #[serde(default)]
    pub mac: MacMode,
}

impl IsoListenerConfig {
    /// How messages travel on this listener.
    pub fn wire(&self) -> crate::server::Wire {
        crate::server::Wire {
            dialect: self.dialect,
            framing: crate::iso8583::frame::Framing { length: self.length, tpdu: self.tpdu },
            mac: self.mac == MacMode::Required,
        }
    }
}

/// `[tls]`: TLS on the REST and ISO 8583 fronts and on the HSM link (docs/operations.md "TLS"). Each
/// part absent is clear text. Paths are read at start, relative to the working directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `[tls.rest]`: HTTPS on the REST address.
    pub rest: Option<ServerTlsConfig>,
    /// `[tls.iso]`: TLS on the ISO 8583 address; with `client_ca`, mutual TLS.
    pub iso: Option<ServerTlsConfig>,
    /// `[tls.hsm]`: the client side of `--hsm tls://host:port`.
    pub hsm: Option<ClientTlsConfig>,
}

/// A front served over TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The certificate chain (PEM, leaf first).
    pub cert: std::path::PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
    /// CA certificates (PEM) for client certificates: when set, a client without a certificate
    /// signed by one of them is refused at the handshake (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
}

/// A link the service opens over TLS (the HSM, an issuer host).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// CA certificates (PEM) the server's certificate must chain to (the system roots are not used).
    pub ca: std::path::PathBuf,
    /// The service's client certificate chain (PEM) and key, for servers that require one; both or
    /// neither.
    #[serde(default)]
    pub cert: Option<std::path::PathBuf>,
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry; default: the host of the link's address.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Key rotation: how a serving node notices a new key version and moves cards onto it
/// (`src/vault/rotation.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// How often a node reads the data-key table for versions another process added, and looks for
    /// cards left on older versions.
    pub watch_interval_ms: u64,
    /// Cards re-encrypted per write.
    pub rotation_batch: u32,
    /// Pause between two batches, so re-encryption leaves the write path to payments.
    pub rotation_pause_ms: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig { watch_interval_ms: 1_000, rotation_batch: 200, rotation_pause_ms: 20 }
    }
}

/// Abuse limits. Rates are per second with a burst allowance; each node counts its own (behind a
/// balancer of N nodes the platform allows up to N times these). A rate of 0 switches a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `POST /v1/tokens`, per requestor.
    pub tokens_per_second: u32,
    pub tokens_burst: u32,
    /// `POST /v1/detokenize`, per requestor.
    pub detokenize_per_second: u32,
    pub detokenize_burst: u32,
    /// Refused API keys, per source address (not per key id, which anyone may know: a flood of
    /// wrong secrets for a key must not lock its owner out): each refusal spends one; a refusal
    /// that finds the allowance spent blocks the source — until a try is allowed again its keys are
    /// answered 429 without being looked up.
    pub auth_failures_per_second: u32,
    pub auth_failures_burst: u32,
    /// REST connections served at once; one more is answered 503 `connections_exhausted`.
    pub http_max_connections: usize,
    /// ISO 8583 connections served at once; one more is closed unread.
    pub iso_max_connections: usize,
    /// ISO 8583 requests per connection; past it a request is answered `91` unprocessed.
    pub iso_requests_per_second: u32,
    pub iso_burst: u32,
    /// ISO 8583 requests of one connection being handled at once; further frames wait to be read.
    pub iso_max_in_flight: usize,
    /// A connection that sends nothing for this long is closed.
    pub iso_idle_timeout_seconds: u64,
    /// A frame whose length has arrived must be complete within this, or the connection is closed.
    pub iso_frame_timeout_ms: u64,
    /// How long a node authenticates an API key from memory after reading it from the database
    /// (`requestors::KeyCache`): a key revoked on another node, or from the command line, stops
    /// working here within this. The node that revokes a key stops it at once. 0: no cache.
    pub api_key_cache_ms: u64,
    /// API keys held in that cache at most.
    pub api_key_cache_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tokens_per_second: 10_000,
            tokens_burst: 20_000,
            detokenize_per_second: 1_000,
            detokenize_burst: 2_000,
            auth_failures_per_second: 2,
            auth_failures_burst: 20,
            http_max_connections: 4096,
            iso_max_connections: 4096,
            iso_requests_per_second: 5_000,
            iso_burst: 10_000,
            iso_max_in_flight: 64,
            iso_idle_timeout_seconds: 300,
            iso_frame_timeout_ms: 5_000,
            api_key_cache_ms: 5_000,
            api_key_cache_entries: 10_000,
        }
    }
}

/// A merchant listed under a region (config or `POST /v1/admin/regions`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    pub id: String,
    pub name: String,
}

/// When a business day ends: at the daily cut-off, or earlier when an operator closes it
/// (`tsp settle`). A card cancel in the same business day as its payment is a void, later a refund.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// The cut-off time of day, `HH:MM`, in `utc_offset`.
    pub cutoff: String,
    /// The offset of the cut-off's clock, `+HH:MM` (Korea: `+09:00`).
    pub utc_offset: String,
}

impl Default for Settlement {
    fn default() -> Self {
        Settlement { cutoff: "23:00".into(), utc_offset: "+09:00".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    pub name: String,
    pub par_prefix: String,
    pub trid_prefix: String,
    pub token_bin_prefixes: Vec<String>,
    pub token_imk_ac: String,
    pub default_currency: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDefaults {
    pub ttl_seconds: u32,
    pub min_ttl_seconds: u32,
    pub max_ttl_seconds: u32,
    /// How long a merchant token (terminal tokenization) lives; the same card at the same merchant
    /// then gets a new one.
    #[serde(default = "default_merchant_ttl_days")]
    pub merchant_ttl_days: u32,
}

fn default_merchant_ttl_days() -> u32 {
    1095
}

impl Default for TokenDefaults {
    fn default() -> Self {
        TokenDefaults {
            ttl_seconds: 600,
            min_ttl_seconds: 30,
            max_ttl_seconds: 86_400,
            merchant_ttl_days: default_merchant_ttl_days(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    pub id: String,
    pub name: String,
    pub bin_prefixes: Vec<String>,
    pub token_bin_prefixes: Vec<String>,
    /// The issuer's token IMK-AC (2-key TDES, hex). A test key: a real deployment keeps it in the HSM.
    pub token_imk_ac: String,
    /// The authorization host: `sim` (the in-process issuer simulator), `tcp://host:port` of a
    /// running `tsp issuer-sim`, or `tls://host:port` for the same over TLS (settings in `tls`).
    #[serde(default = "default_host")]
    pub host: String,
    /// How long to wait for the issuer's answer before answering `91`.
    #[serde(default = "default_issuer_timeout_ms")]
    pub timeout_ms: u64,
    /// `[issuers.tls]`: the TLS settings of a `tls://` host (its CA, an optional client certificate).
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
    /// The ISO 8583 dialect of a `tcp://` or `tls://` host: `ascii` (default), `binary` or `bcd`.
    #[serde(default)]
    pub dialect: crate::iso8583::Dialect,
    /// `[[issuers.products]]`: how a wallet shows the issuer's cards (docs/instruments.md "Card
    /// metadata").
    #[serde(default)]
    pub products: Vec<ProductConfig>,
    /// `required`: every request to this issuer carries a MAC under `tak` and every answer must
    /// carry a valid one (docs/iso8583.md "MAC").
    #[serde(default)]
    pub mac: MacMode,
    /// The link's TAK in clear (hex), for development and tests: loaded into the HSM as a key block.
    #[serde(default)]
    pub tak: Option<SecretHex>,
    #[serde(default)]
    pub mac_algorithm: MacAlgorithm,
    /// A card registration the issuer cannot be asked about is approved (assurance `stand_in`) or
    /// declined (docs/instruments.md "Step-up verification").
    #[serde(default)]
    pub activation_stand_in: StandIn,
}

/// A card product of an issuer: its name, colours, card art and terms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    /// Letters, digits, `-` and `_` (it names the product's card art: `/v1/card-art/{issuer}/{id}`).
    pub id: String,
    pub name: String,
    /// The BIN prefixes (within the issuer's) of its cards; none: the issuer's cards no other
    /// product claims.
    #[serde(default)]
    pub bin_prefixes: Vec<String>,
    /// `#RRGGBB`.
    pub background_color: String,
    pub foreground_color: String,
    pub terms_url: Option<String>,
    /// A PNG, JPEG or SVG file of the card art; absent, it is drawn from the colours and names.
    pub art: Option<std::path::PathBuf>,
}

/// A clear key from the configuration, as hex: zeroized when dropped, never shown by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretHex(String);

impl SecretHex {
    /// The key's bytes; None when the text is not hex.
    pub fn bytes(&self) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        hex::decode(&self.0).ok().map(zeroize::Zeroizing::new)
    }
}

impl Drop for SecretHex {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for SecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHex(…)")
    }
}

fn default_host() -> String {
    "sim".into()
}

fn default_issuer_timeout_ms() -> u64 {
    3000
}

/// The longest issuer `timeout_ms` a config may set.
pub const MAX_ISSUER_TIMEOUT_MS: u64 = 60_000;

/// The largest `limits.iso_max_in_flight` a config may set.
pub const MAX_ISO_IN_FLIGHT: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Parse(String),
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_TOML)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn currency(&self, code: &str) -> Option<&Currency> {
        crate::money::find(&self.currencies, code)
    }

    /// The currencies as the store needs them to read amounts back (`Store::with_currencies`).
    pub fn currency_table(&self) -> crate::money::Currencies {
        crate::money::Currencies::new(self.currencies.clone(), &self.platform.default_currency)
    }

    pub fn default_currency(&self) -> Option<&Currency> {
        self.currency(&self.platform.default_currency)
    }

    /// The currency of a message's DE49: that one when present (None when unknown), the platform's
    /// when absent (a domestic terminal may leave it out).
    pub fn currency_of_de49(&self, de49: Option<&str>) -> Option<&Currency> {
        match de49 {
            Some(c) => self.currency(c),
            None => self.default_currency(),
        }
    }

    /// The business-day rule of `[settlement]`.
    pub fn business_day(&self) -> Result<crate::instruments::card::BusinessDayRule, ConfigError> {
        crate::instruments::card::BusinessDayRule::parse(&self.settlement.utc_offset, &self.settlement.cutoff)
            .map_err(|e| ConfigError::Invalid(format!("settlement: {e}")))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        // Currencies first: the regions' rules below build amounts at their currency's scale, and a
        // decimal's scale above 28 panics.
        for c in &self.currencies {
            if c.code.len() != 3 || c.numeric.len() != 3 || !digits(&c.numeric) || c.scale > 4 {
                return bad(format!("currency {}: code and numeric must be 3 characters, scale ≤ 4", c.code));
            }
        }
        self.business_day()?;
        for (i, rule) in self.issuer_sim.activation.iter().enumerate() {
            if rule.bin_prefixes.iter().any(|p| !digits(p)) || rule.window_seconds == 0 {
                return bad(format!(
                    "issuer_sim.activation rule {}: bin_prefixes must be digits, window_seconds positive",
                    i + 1
                ));
            }
        }
        if self.verification.code_ttl_seconds == 0 || self.verification.code_ttl_seconds > 86_400 {
            return bad("verification.code_ttl_seconds must be 1 to 86400".into());
        }
        for r in &self.regions {
            region::region_row(r, self, 0).map_err(|e| ConfigError::Invalid(format!("region {}: {e}", r.id)))?;
        }
        let mut terminal_ids = std::collections::HashSet::new();
        for t in &self.terminals {
            t.row(0).map_err(|e| ConfigError::Invalid(format!("terminal {}: {e}", t.id)))?;
            if !terminal_ids.insert(t.id.as_str()) {
                return bad(format!("terminal {} is registered twice", t.id));
            }
        }
        if self.platform.par_prefix.len() != 4 || !self.platform.par_prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return bad("platform.par_prefix must be 4 letters or digits".into());
        }
        if self.platform.trid_prefix.len() > 5 || !digits(&self.platform.trid_prefix) {
            return bad("platform.trid_prefix must be 1 to 5 digits".into());
        }
        if self.default_currency().is_none() {
            return bad(format!(
                "platform.default_currency {} is not among currencies",
                self.platform.default_currency
            ));
        }
        let t = &self.tokens;
        if !(t.min_ttl_seconds <= t.ttl_seconds && t.ttl_seconds <= t.max_ttl_seconds && t.min_ttl_seconds > 0) {
            return bad("tokens: need 0 < min_ttl_seconds ≤ ttl_seconds ≤ max_ttl_seconds".into());
        }
        if !(1..=3650).contains(&t.merchant_ttl_days) {
            return bad("tokens: merchant_ttl_days must be 1 to 3650".into());
        }
        let mut iso_addrs = std::collections::HashSet::new();
        for l in &self.iso.listeners {
            if !iso_addrs.insert(l.addr) {
                return bad(format!("iso.listeners: {} is listed twice", l.addr));
            }
        }
        // Each ISO 8583 connection makes a channel and a semaphore of this many permits (tokio panics
        // past `usize::MAX >> 3`).
        if self.limits.iso_max_in_flight > MAX_ISO_IN_FLIGHT {
            return bad(format!("limits.iso_max_in_flight must be at most {MAX_ISO_IN_FLIGHT}"));
        }
        // Every prefix, card or token, with its owner, to check that no two ranges overlap: a token
        // must never be mistaken for a card number of another range, nor routed to the wrong issuer.
        let mut ranges: Vec<(&str, String)> = Vec::new();
        let check_imk = |owner: &str, imk: &str| {
            if imk.len() != 32 || hex::decode(imk).is_err() {
                return Err(ConfigError::Invalid(format!("{owner}: token_imk_ac must be 32 hex digits")));
            }
            Ok(())
        };
        check_imk("platform", &self.platform.token_imk_ac)?;
        if self.platform.token_bin_prefixes.is_empty() {
            return bad("platform.token_bin_prefixes must not be empty".into());
        }
        for p in &self.platform.token_bin_prefixes {
            ranges.push((p, "platform token range".into()));
        }
        let mut ids = std::collections::HashSet::new();
        for i in &self.issuers {
            if !ids.insert(&i.id)
                || i.id.is_empty()
                || !i.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return bad(format!("issuer id {:?} must be unique, letters, digits, - or _", i.id));
            }
            check_imk(&i.id, &i.token_imk_ac)?;
            // The payment path adds the timeout to the clock (the token's lease, the wait for a
            // duplicate's answer): it must be a sane duration, not one that overflows.
            if !(1..=MAX_ISSUER_TIMEOUT_MS).contains(&i.timeout_ms) {
                return bad(format!("issuer {}: timeout_ms must be 1 to {MAX_ISSUER_TIMEOUT_MS}", i.id));
            }
            if i.bin_prefixes.is_empty() || i.token_bin_prefixes.is_empty() {
                return bad(format!("issuer {}: needs bin_prefixes and token_bin_prefixes", i.id));
            }
            for p in &i.bin_prefixes {
                ranges.push((p, format!("issuer {} BIN", i.id)));
            }
            let mut products = std::collections::HashSet::new();
            for p in &i.products {
                if !products.insert(&p.id)
                    || p.id.is_empty()
                    || !p.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return bad(format!(
                        "issuer {}: product id {:?} must be unique, letters, digits, - or _",
                        i.id, p.id
                    ));
                }
                if !crate::issuer::products::is_colour(&p.background_color)
                    || !crate::issuer::products::is_colour(&p.foreground_color)
                {
                    return bad(format!("issuer {} product {}: colours are #RRGGBB", i.id, p.id));
                }
                let within = |b: &String| {
                    i.bin_prefixes.iter().any(|ib| b.starts_with(ib.as_str()) || ib.starts_with(b.as_str()))
                };
                if !p.bin_prefixes.iter().all(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) && within(b)) {
                    return bad(format!(
                        "issuer {} product {}: bin_prefixes must be digits within the issuer's BINs",
                        i.id, p.id
                    ));
                }
            }
            for p in &i.token_bin_prefixes {
                ranges.push((p, format!("issuer {} token BIN", i.id)));
            }
        }
        for (p, owner) in &ranges {
            if !digits(p) || p.len() < 4 || p.len() > 11 {
                return bad(format!("{owner} prefix {p:?} must be 4 to 11 digits"));
            }
        }
        for (i, (a, oa)) in ranges.iter().enumerate() {
            for (b, ob) in &ranges[i + 1..] {
                if a.starts_with(b) || b.starts_with(a) {
                    return bad(format!("{oa} prefix {a} overlaps {ob} prefix {b}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        let c = Config::default_config().unwrap();
        assert_eq!(c.issuers.len(), 2);
        assert_eq!(c.default_currency().unwrap().numeric, "410");
        assert_eq!(c.regions.len(), 2);
        assert!(c.regions.iter().all(|r| r.merchants.len() == 2));
    }

    #[test]
    fn regions_are_validated() {
        let text = DEFAULT_TOML.replacen(r#"incentive_rate = "0.10""#, r#"incentive_rate = "1.5""#, 1);
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("seoul-gangnam") && err.contains("incentive_rate"), "{err}");
        let text = DEFAULT_TOML.replacen("cancel_restore = \"reverse\"", "cancel_restore = \"reverse\"\nextra = 1", 1);
        assert!(Config::parse(&text).is_err(), "an unknown key in a region is refused");
    }

    #[test]
    fn iso_listeners_and_issuer_dialects() {
        use crate::iso8583::Dialect;
        use crate::iso8583::frame::LengthPrefix;
        let c = Config::default_config().unwrap();
        assert!(c.iso.listeners.is_empty());
        assert!(c.issuers.iter().all(|i| i.dialect == Dialect::Ascii));
        let listeners = "\n[[iso.listeners]]\naddr = \"127.0.0.1:8584\"\ndialect = \"bcd\"\nlength = \"ascii4\"\ntpdu = true\n\
                         \n[[iso.listeners]]\naddr = \"127.0.0.1:8585\"\n";
        let text = DEFAULT_TOML.replacen("[[issuers]]\n", "[[issuers]]\ndialect = \"binary\"\n", 1) + listeners;
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.issuers[0].dialect, Dialect::Binary);
        let (a, b) = (c.iso.listeners[0].wire(), c.iso.listeners[1].wire());
        assert_eq!((a.dialect, a.framing.length, a.framing.tpdu), (Dialect::Bcd, LengthPrefix::Ascii4, true));
        assert_eq!(b, crate::server::Wire::default());
        for bad in ["dialect = \"ebcdic\"", "length = \"ascii2\"", "tpdu = 5", "header = 5"] {
            let text = format!("{DEFAULT_TOML}\n[[iso.listeners]]\naddr = \"127.0.0.1:8584\"\n{bad}\n");
            assert!(Config::parse(&text).is_err(), "{bad}");
        }
        let twice = format!("{DEFAULT_TOML}{listeners}\n[[iso.listeners]]\naddr = \"127.0.0.1:8584\"\n");
        assert!(Config::parse(&twice).unwrap_err().to_string().contains("listed twice"));
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let text = DEFAULT_TOML.replace(r#"token_bin_prefixes = ["461000"]"#, r#"token_bin_prefixes = ["4111"]"#);
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("overlaps"), "{err}");
    }

    /// A `config_parse` fuzz input: a region in a currency of scale 29 panicked in `Decimal::new`
    /// before the currency's scale was checked.
    #[test]
    fn currency_scale_is_checked_before_regions() {
        let text = DEFAULT_TOML.replacen("scale = 0", "scale = 29", 1).replacen(
            r#"monthly_bonus_cap = "500000""#,
            r#"monthly_bonus_cap = "0""#,
            1,
        );
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("scale"), "{err}");
    }

    /// `config_parse` fuzz inputs: an issuer timeout that overflows the payment path's deadline
    /// arithmetic, an in-flight limit past what tokio's semaphore takes (it panics per connection).
    #[test]
    fn durations_and_in_flight_are_bounded() {
        let with = |from: &str, to: &str| Config::parse(&DEFAULT_TOML.replacen(from, to, 1));
        for timeout in ["0", "60001", "9223372036854775807"] {
            let text = format!("[[issuers]]\ntimeout_ms = {timeout}\n");
            let err = with("[[issuers]]\n", &text).unwrap_err().to_string();
            assert!(err.contains("timeout_ms"), "{err}");
        }
        assert!(with("[[issuers]]\n", "[[issuers]]\ntimeout_ms = 60000\n").is_ok());
        let err = with("iso_max_in_flight = 64", "iso_max_in_flight = 9223372036854775807").unwrap_err().to_string();
        assert!(err.contains("iso_max_in_flight"), "{err}");
        assert!(with("iso_max_in_flight = 64", "iso_max_in_flight = 65536").is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = format!("{DEFAULT_TOML}\n[extra]\nx = 1\n");
        assert!(Config::parse(&text).is_err());
    }
}
