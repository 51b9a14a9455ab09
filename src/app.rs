//! Building and running the service: data directory, configuration, HSM, database, demo keys,
//! and the HTTP listener, with graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::config::{ClientTlsConfig, Config};
use crate::hsm::Hsm;
use crate::issuer::Issuers;
use crate::issuer::sim::{SimConfig, Simulator};
use crate::payments::Payments;
use crate::requestors::{self, Scope};
use crate::store::Store;
use crate::tokens::Tokens;
use crate::vault::Vault;

/// Where and how `tsp serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
    pub database_url: Option<String>,
    pub http_addr: SocketAddr,
    pub iso_addr: SocketAddr,
    /// `tcp://host:port` of a running `hsm-sim serve` (`tls://host:port` with `[tls.hsm]`); None for
    /// the in-process simulator.
    pub hsm: Option<String>,
    /// Production mode and the custodians' shares given at start.
    pub seal: SealOptions,
}

/// How a node treats its keys (docs/security.md "Sealed key store").
#[derive(Debug, Clone, Default)]
pub struct SealOptions {
    /// Production mode: the in-process HSM's key store must be sealed, and nothing of the demo (demo
    /// keys, demo IMKs, the development key store) is accepted.
    pub production: bool,
    /// Files each holding one custodian share; `TSP_UNSEAL_SHARES` may hold more (whitespace- or
    /// comma-separated).
    pub share_files: Vec<PathBuf>,
}

/// The token IMKs of the demo configuration: published, so never a production key.
const DEMO_IMKS: [&str; 3] =
    ["8A4A7C3E1F2D5B6C9E0A1B2C3D4E5F60", "0123456789ABCDEFFEDCBA9876543210", "89ABCDEF0123456776543210FEDCBA98"];

/// Failures while starting; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("HSM: {0}")]
    Hsm(#[from] hsm_sim::HsmError),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Domain(#[from] crate::Error),
    #[error("issuer {0}: {1}")]
    Issuer(String, String),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the key store is sealed: {have} of the {need} custodian shares it needs were given")]
    Sealed { have: usize, need: u8 },
    #[error("production mode: {0}")]
    Production(String),
}

pub fn load_config(path: Option<&Path>) -> Result<Config, StartError> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| StartError::DataDir(p.to_path_buf(), e))?;
            Ok(Config::parse(&text)?)
        }
        None => Ok(Config::default_config()?),
    }
}

fn ensure_dir(dir: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(dir).map_err(|e| StartError::DataDir(dir.to_path_buf(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StartError::DataDir(dir.to_path_buf(), e))?;
    }
    Ok(())
}

/// The database a data directory and an optional URL select.
pub async fn open_store(data_dir: &Path, database_url: Option<&str>) -> Result<Store, StartError> {
    match database_url {
        Some(url) => Ok(Store::open_url(url).await?),
        None => {
            ensure_dir(data_dir)?;
            Ok(Store::open_sqlite(&data_dir.join("tsp.db")).await?)
        }
    }
}

/// The HSM: a TCP client of `hsm-sim serve` (over TLS for `tls://`, with `tls`: `[tls.hsm]`), or the
/// simulator in process with its key store in the data directory (opened with the shares `seal`
/// gives when it is sealed).
pub fn open_hsm(
    data_dir: &Path,
    url: Option<&str>,
    tls: Option<&ClientTlsConfig>,
    seal: &SealOptions,
) -> Result<Hsm, StartError> {
    open_hsm_quietly(data_dir, url, tls, seal, false)
}

/// The HSM URL: `--hsm` (`TSP_HSM`), else the configuration's `[hsm] url`; None for the simulator in
/// process.
pub fn hsm_url<'a>(opts: &'a ServeOptions, config: &'a Config) -> Option<&'a str> {
    opts.hsm.as_deref().or(config.hsm.url.as_deref())
}

/// The in-process key store of a data directory.
pub fn keystore_path(data_dir: &Path) -> PathBuf {
    data_dir.join("hsm-keystore.json")
}

/// The custodian shares given to this process: one per file of `seal.share_files`, and those in
/// `TSP_UNSEAL_SHARES`.
pub fn given_shares(seal: &SealOptions) -> Result<Vec<zeroize::Zeroizing<String>>, StartError> {
    hsm_sim::seal::given_shares(&seal.share_files, "TSP_UNSEAL_SHARES").map_err(|(f, e)| StartError::DataDir(f, e))
}

/// What the in-process key store of a data directory is.
enum LocalStore {
    Absent,
    Development,
    Sealed(hsm_sim::seal::Seal),
}

fn local_store(path: &Path) -> Result<LocalStore, StartError> {
    if !path.exists() {
        return Ok(LocalStore::Absent);
    }
    Ok(match hsm_sim::KeyStoreFile::seal_of(path)? {
        Some(seal) => LocalStore::Sealed(seal),
        None => LocalStore::Development,
    })
}

/// [`open_hsm`], announcing what it opened on stdout unless `quiet` (commands whose stdout is data).
fn open_hsm_quietly(
    data_dir: &Path,
    url: Option<&str>,
    tls: Option<&ClientTlsConfig>,
    seal: &SealOptions,
    quiet: bool,
) -> Result<Hsm, StartError> {
    if let Some(url) = url {
        if !quiet {
            println!("tsp: HSM at {url}");
        }
        if Hsm::is_payshield_url(url) {
            return Ok(Hsm::payshield(url, tls)?);
        }
        return Ok(Hsm::tcp_with_tls(url, tls)?);
    }
    if tls.is_some() {
        return Err(hsm_sim::HsmError::format("[tls.hsm] is configured but no --hsm tls://host:port is given").into());
    }
    ensure_dir(data_dir)?;
    let keystore = keystore_path(data_dir);
    match local_store(&keystore)? {
        LocalStore::Sealed(s) => {
            let given = given_shares(seal)?;
            let shares: Vec<&str> = given.iter().map(|s| s.as_str()).collect();
            let sim = hsm_sim::Hsm::open_sealed(&keystore, &shares)?
                .ok_or(StartError::Sealed { have: shares.len(), need: s.threshold })?;
            if !quiet {
                println!("tsp: sealed key store {} opened with its custodians' shares", keystore.display());
            }
            return Ok(Hsm::in_process(Arc::new(sim)));
        }
        LocalStore::Development if seal.production => return Err(development_store(&keystore)),
        LocalStore::Absent if seal.production => return Err(no_store(&keystore)),
        LocalStore::Development | LocalStore::Absent => {}
    }
    let (sim, created) = hsm_sim::Hsm::open(&keystore)?;
    // The simulator writes its key store 0600; one an older version or a copy left wider is narrowed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keystore, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StartError::DataDir(keystore.clone(), e))?;
    }
    if !quiet {
        println!("tsp: {}", hsm_sim::BANNER);
        if created {
            println!("tsp: created the development key store {}", keystore.display());
        }
    }
    Ok(Hsm::in_process(Arc::new(sim)))
}

fn development_store(path: &Path) -> StartError {
    StartError::Production(format!(
        "{} is a development key store (its master key is in clear); production needs a sealed one \
         (`tsp keys init --custodians N --threshold M` in a fresh data directory)",
        path.display()
    ))
}

fn no_store(path: &Path) -> StartError {
    StartError::Production(format!(
        "no key store at {}: make a sealed one in a key ceremony (`tsp keys init --custodians N --threshold M`)",
        path.display()
    ))
}

/// Production mode refuses what only the demo may use: the published demo IMKs and the demo API keys.
fn check_production(config: &Config, data_dir: &Path) -> Result<(), StartError> {
    let imks = std::iter::once(&config.platform.token_imk_ac).chain(config.issuers.iter().map(|i| &i.token_imk_ac));
    for imk in imks {
        if DEMO_IMKS.iter().any(|d| d.eq_ignore_ascii_case(imk)) {
            return Err(StartError::Production(
                "the configuration holds a published demo token IMK; configure your own keys".into(),
            ));
        }
    }
    if config.webhooks.allow_private_addresses {
        return Err(StartError::Production(
            "[webhooks] allow_private_addresses = true would let a requestor make this service call into its own network"
                .into(),
        ));
    }
    let demo_keys = data_dir.join("demo-keys.json");
    if demo_keys.exists() {
        return Err(StartError::Production(format!(
            "{} holds demo API keys; production data directories have none (create requestors with `tsp admin create-requestor`)",
            demo_keys.display()
        )));
    }
    Ok(())
}

/// `tsp keys init`: the key ceremony. Creates the sealed key store of the data directory (refusing
/// when a key store is there) and returns the shares, one per custodian.
pub fn init_sealed_store(
    data_dir: &Path,
    threshold: u8,
    custodians: u8,
) -> Result<Vec<zeroize::Zeroizing<String>>, StartError> {
    ensure_dir(data_dir)?;
    let path = keystore_path(data_dir);
    if path.exists() {
        return Err(StartError::Production(format!("{} exists: a ceremony makes a new key store", path.display())));
    }
    Ok(hsm_sim::Hsm::create_sealed(&path, threshold, custodians)?)
}

/// The store, HSM and vault of the options, for the `tsp keys` commands (which run beside serving
/// nodes or without them).
async fn open_vault(opts: &ServeOptions) -> Result<(Store, Hsm, Vault), StartError> {
    let config = load_config(opts.config.as_deref())?;
    let hsm = open_hsm_quietly(&opts.data_dir, hsm_url(opts, &config), config.tls.hsm.as_ref(), &opts.seal, true)?;
    let store = open_store(&opts.data_dir, opts.database_url.as_deref()).await?;
    hsm.attach_store(&store);
    let issuers = Arc::new(Issuers::from_config(&config));
    let vault =
        Vault::new(store.clone(), hsm.clone(), issuers, config.platform.par_prefix.clone(), Clock::system()).await?;
    Ok((store, hsm, vault))
}

/// `tsp keys rotate`: stores a new data-key version paired with a new fingerprint-key version.
/// Returns it.
pub async fn rotate_keys(opts: &ServeOptions) -> Result<i64, StartError> {
    let (store, hsm, _vault) = open_vault(opts).await?;
    let version = crate::vault::keys::DataKeys::rotate(&store, &hsm, "cli", Clock::system().now_ms()).await;
    store.close().await;
    Ok(version?)
}

/// `tsp keys payshield-load`: puts an EMV IMK-AC formed at the payShield (under its LMK) into the key
/// table as the newest version of `label`; returns it with the check value the HSM computed.
pub async fn payshield_load(opts: &ServeOptions, label: &str, key_lmk: &str) -> Result<hsm_sim::KeyInfo, StartError> {
    let config = load_config(opts.config.as_deref())?;
    let url =
        opts.hsm.as_deref().filter(|u| Hsm::is_payshield_url(u)).ok_or_else(|| {
            StartError::Hsm(hsm_sim::HsmError::format("--hsm payshield://host:port names the payShield"))
        })?;
    let hsm = Hsm::payshield(url, config.tls.hsm.as_ref())?;
    let store = open_store(&opts.data_dir, opts.database_url.as_deref()).await?;
    hsm.attach_store(&store);
    let loaded = hsm.load_key(label, hsm_sim::KeyUsage::EmvImkAc, key_lmk).await;
    store.close().await;
    Ok(loaded?)
}

/// `tsp keys status`.
pub async fn key_status(opts: &ServeOptions) -> Result<crate::vault::rotation::Status, StartError> {
    let (store, hsm, _vault) = open_vault(opts).await?;
    let status = crate::vault::rotation::status(&store, &hsm).await;
    store.close().await;
    Ok(status?)
}

/// `tsp keys migrate`: one rotation pass in the foreground, for when no node is serving.
pub async fn migrate_keys(opts: &ServeOptions) -> Result<crate::vault::rotation::Pass, StartError> {
    let config = load_config(opts.config.as_deref())?;
    let (store, _hsm, vault) = open_vault(opts).await?;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let pause = Duration::from_millis(config.keys.rotation_pause_ms);
    let pass = vault.rotation_pass(config.keys.rotation_batch, pause, &stop).await;
    store.close().await;
    Ok(pass?)
}

/// Builds the whole service state.
pub async fn build(opts: &ServeOptions) -> Result<AppState, StartError> {
    let config = load_config(opts.config.as_deref())?;
    let hsm = open_hsm(&opts.data_dir, hsm_url(opts, &config), config.tls.hsm.as_ref(), &opts.seal)?;
    build_with(opts, hsm).await
}

/// Builds the whole service state around an opened HSM.
pub async fn build_with(opts: &ServeOptions, hsm: Hsm) -> Result<AppState, StartError> {
    let config = Arc::new(load_config(opts.config.as_deref())?);
    ensure_dir(&opts.data_dir)?;
    let store =
        open_store(&opts.data_dir, opts.database_url.as_deref()).await?.with_currencies(config.currency_table());
    hsm.attach_store(&store);
    println!("tsp: {} database at migration {}", store.backend(), store.migrations().await?);
    let clock = Clock::system();
    let issuers = Arc::new(Issuers::from_config(&config));
    crate::stored_value::wallet::seed(&store, &config, clock.now_ms()).await?;
    Tokens::load_keys(&hsm, &config).await?;
    let vault = Arc::new(
        Vault::new(store.clone(), hsm.clone(), issuers.clone(), config.platform.par_prefix.clone(), clock.clone())
            .await?,
    );
    let tokens = Arc::new(Tokens::new(
        store.clone(),
        hsm.clone(),
        vault.clone(),
        config.clone(),
        issuers.clone(),
        clock.clone(),
    ));
    // One in-process simulator serves every issuer configured with `host = "sim"`.
    let simulator = Arc::new(Simulator::new(SimConfig {
        activation: config.issuer_sim.activation.clone(),
        ..SimConfig::default()
    }));
    let mut hosts = HashMap::new();
    for i in &config.issuers {
        let mac = match (i.mac, &i.tak) {
            (crate::config::MacMode::Off, _) => None,
            (crate::config::MacMode::Required, None) => {
                return Err(StartError::Issuer(i.id.clone(), "`mac = \"required\"` needs the link's `tak`".into()));
            }
            (crate::config::MacMode::Required, Some(tak)) => {
                let bytes = tak.bytes().ok_or_else(|| StartError::Issuer(i.id.clone(), "`tak` must be hex".into()))?;
                let mac = crate::issuer::tcp::LinkMac::from_clear(hsm.clone(), i.mac_algorithm, &bytes)
                    .await
                    .map_err(|e| StartError::Issuer(i.id.clone(), format!("tak: {e}")))?;
                Some(mac)
            }
        };
        let host = crate::issuer::host::connect_mac(
            &i.host,
            Duration::from_millis(i.timeout_ms),
            i.tls.as_ref(),
            i.dialect,
            simulator.clone(),
            mac,
        )
        .map_err(|e| StartError::Issuer(i.id.clone(), e.to_string()))?;
        hosts.insert(i.id.clone(), host);
    }
    crate::webhooks::Webhooks::load_keys(&hsm).await?;
    Payments::load_verification_key(&hsm).await?;
    let webhooks =
        Arc::new(crate::webhooks::Webhooks::new(store.clone(), hsm.clone(), clock.clone(), config.webhooks.clone())?);
    let scrubbed = crate::payments::scrub_stored(&store, &hsm).await?;
    if scrubbed > 0 {
        println!("tsp: {scrubbed} stored transactions rekeyed and scrubbed of card data");
    }
    let payments = Arc::new(Payments::new(
        store.clone(),
        tokens.clone(),
        vault.clone(),
        hsm,
        config.clone(),
        clock.clone(),
        hosts,
    ));
    let terminals = payments.terminals();
    terminals.seed(&config.terminals, clock.now_ms()).await?;
    payments.link_keys().seed(&config.iso.link_keys).await?;
    let limits = Arc::new(crate::api::limits::RestLimits::new(&config.limits));
    let iso_addr = Arc::new(std::sync::OnceLock::new());
    let api_keys = Arc::new(crate::requestors::KeyCache::new(
        std::time::Duration::from_millis(config.limits.api_key_cache_ms),
        config.limits.api_key_cache_entries,
    ));
    let state = AppState {
        store,
        vault,
        tokens,
        config,
        issuers,
        clock,
        payments,
        terminals,
        simulator,
        limits,
        api_keys,
        iso_addr,
        webhooks,
        production: opts.seal.production,
    };
    if opts.seal.production {
        println!("tsp: PRODUCTION mode");
    } else {
        println!(
            "tsp: DEVELOPMENT mode — demo keys, demo IMKs and a key store whose master key is in clear; \
             never hold real cards here (`tsp serve --production`: docs/security.md)"
        );
        ensure_demo_keys(&state, &opts.data_dir).await?;
    }
    Ok(state)
}

/// `tsp seed`: adds `count` cards with one live token each to the vault the options name (see
/// [`crate::seed`]), printing progress to stderr.
pub async fn seed(opts: &ServeOptions, count: u64) -> Result<crate::seed::Seeded, StartError> {
    let config = load_config(opts.config.as_deref())?;
    ensure_dir(&opts.data_dir)?;
    let hsm = open_hsm(&opts.data_dir, hsm_url(opts, &config), config.tls.hsm.as_ref(), &opts.seal)?;
    let store = open_store(&opts.data_dir, opts.database_url.as_deref()).await?;
    hsm.attach_store(&store);
    let clock = Clock::system();
    let issuers = Arc::new(Issuers::from_config(&config));
    let vault = Vault::new(store.clone(), hsm, issuers, config.platform.par_prefix.clone(), clock).await?;
    let started = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    let done = crate::seed::seed(&vault, &store, &config.platform.trid_prefix, count, &mut |sealed| {
        if last.elapsed().as_secs() >= 5 {
            last = std::time::Instant::now();
            let rate = sealed as f64 / started.elapsed().as_secs_f64();
            eprintln!("tsp seed: {sealed} cards sealed ({rate:.0}/s); indexes are built at the end");
        }
    })
    .await;
    store.close().await;
    Ok(done?)
}

/// The merchant the demo terminal key acts for (a Gangnam local-currency merchant of the demo
/// configuration, so the terminal page takes every kind of payment).
pub const DEMO_TERMINAL_MERCHANT: &str = "GN-CAFE-0001";

/// On first start, four demo requestors and `demo-keys.json` (mode 0600): `app` (instruments,
/// tokens), `van` (detokenize), `admin` (admin), `terminal` (terminal, bound to
/// [`DEMO_TERMINAL_MERCHANT`]). Kept when the keys in it still work; a file from before the terminal
/// key gets one added.
async fn ensure_demo_keys(state: &AppState, data_dir: &Path) -> Result<(), StartError> {
    let path = data_dir.join("demo-keys.json");
    let now = state.clock.now_ms();
    let prefix = &state.config.platform.trid_prefix;
    let terminal_key = || async {
        if state.store.merchant_owner(DEMO_TERMINAL_MERCHANT).await?.is_some() {
            return Ok::<_, StartError>(None);
        }
        let t = requestors::create(&state.store, prefix, "demo terminal", &[Scope::Terminal], now).await?;
        let taken = state.store.bind_merchants(&t.requestor.id, &[DEMO_TERMINAL_MERCHANT.to_string()], now).await?;
        Ok(taken.is_empty().then_some(t.api_key))
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        // Its secrets are its owner's alone, also in a file a copy or an older version left wider.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StartError::DataDir(path.clone(), e))?;
        }
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(app) = file["app"].as_str()
            && let Some(app) = requestors::authenticate(&state.store, app, now).await?
        {
            // The demo VAN detokenizes the demo app's tokens (a data directory from before VANs were
            // scoped gets that now).
            if let Some(van) = file["van"].as_str()
                && let Some(van) = requestors::authenticate(&state.store, van, now).await?
            {
                state.store.serve_requestors(&van.id, std::slice::from_ref(&app.id), now).await?;
            }
            if file["terminal"].is_null()
                && let Some(key) = terminal_key().await?
            {
                file["terminal"] = serde_json::Value::String(key);
                let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
                write_private(&path, text.as_bytes())?;
            }
            println!("tsp: demo API keys are in {}", path.display());
            return Ok(());
        }
    }
    let app =
        requestors::create(&state.store, prefix, "demo pay app", &[Scope::Instruments, Scope::Tokens], now).await?;
    let van = requestors::create(&state.store, prefix, "demo VAN", &[Scope::Detokenize], now).await?;
    state.store.serve_requestors(&van.requestor.id, std::slice::from_ref(&app.requestor.id), now).await?;
    let admin = requestors::create(&state.store, prefix, "demo operator", &[Scope::Admin], now).await?;
    let terminal = terminal_key().await?;
    let body =
        serde_json::json!({ "app": app.api_key, "van": van.api_key, "admin": admin.api_key, "terminal": terminal });
    let text = serde_json::to_string_pretty(&body).map_err(std::io::Error::other)?;
    write_private(&path, text.as_bytes())?;
    println!("tsp: demo API keys written to {}", path.display());
    Ok(())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// Runs the service until SIGINT or SIGTERM, then stops accepting, finishes in-flight requests
/// and exits.
pub async fn serve(opts: ServeOptions) -> Result<(), StartError> {
    // Certificates and keys are read first: a bad file stops the start before anything is opened.
    let config = load_config(opts.config.as_deref())?;
    if opts.seal.production {
        check_production(&config, &opts.data_dir)?;
    }
    let hsm_url = hsm_url(&opts, &config).map(str::to_owned);
    let tls = config.tls;
    let rest_tls = tls.rest.as_ref().map(crate::tls::acceptor).transpose()?;
    let iso_tls = tls.iso.as_ref().map(crate::tls::acceptor).transpose()?;
    // Bound once: a sealed node answers on these sockets until its custodians open it, then the node
    // proper serves on them.
    let http_std = std::net::TcpListener::bind(opts.http_addr).map_err(|e| StartError::Bind(opts.http_addr, e))?;
    let iso_std = std::net::TcpListener::bind(opts.iso_addr).map_err(|e| StartError::Bind(opts.iso_addr, e))?;
    let scheme = if rest_tls.is_some() { "https" } else { "http" };
    let hsm = match open_hsm(&opts.data_dir, hsm_url.as_deref(), tls.hsm.as_ref(), &opts.seal) {
        Err(StartError::Sealed { .. }) => {
            let keystore = keystore_path(&opts.data_dir);
            let LocalStore::Sealed(seal) = local_store(&keystore)? else { return Err(no_store(&keystore)) };
            println!("tsp: REST API (sealed) on {scheme}://{}", http_std.local_addr()?);
            println!("tsp: ISO 8583 (sealed: every request 91) on {}", iso_std.local_addr()?);
            let fronts = crate::sealed::Fronts {
                http: http_std.try_clone()?,
                iso: iso_std.try_clone()?,
                rest_tls: rest_tls.clone(),
                iso_tls: iso_tls.clone(),
            };
            crate::sealed::until_unsealed(fronts, keystore, seal, given_shares(&opts.seal)?).await?
        }
        other => other?,
    };
    let state = build_with(&opts, hsm).await?;
    let store = state.store.clone();
    http_std.set_nonblocking(true)?;
    iso_std.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(http_std)?;
    let iso = tokio::net::TcpListener::from_std(iso_std)?;
    println!("tsp: REST API listening on {scheme}://{}", listener.local_addr()?);
    let iso_mode = match tls.iso.as_ref() {
        None => "",
        Some(t) if t.client_ca.is_some() => " (TLS, client certificates required)",
        Some(_) => " (TLS)",
    };
    println!("tsp: ISO 8583 listening on {}{iso_mode}", iso.local_addr()?);
    // The terminal page pays through this front as a clear-text terminal: not over TLS (it holds no
    // client certificate), so it answers `iso_unavailable` then.
    if iso_tls.is_none() {
        let _ = state.iso_addr.set(iso.local_addr()?);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let l = &state.config.limits;
    let limits = crate::server::Limits {
        max_in_flight: l.iso_max_in_flight.max(1),
        idle_timeout: std::time::Duration::from_secs(l.iso_idle_timeout_seconds),
        frame_timeout: std::time::Duration::from_millis(l.iso_frame_timeout_ms),
        requests_per_second: l.iso_requests_per_second,
        burst: l.iso_burst,
        max_connections: l.iso_max_connections.max(1),
        ..crate::server::Limits::default()
    };
    let wire = crate::server::Wire::default();
    let mut iso_tasks = vec![tokio::spawn(crate::server::serve(
        iso,
        state.payments.clone(),
        limits,
        wire,
        iso_tls.clone(),
        stop_rx.clone(),
    ))];
    // `[[iso.listeners]]`: the same front in other dialects and framings. Bound once the node is
    // open (a sealed node answers on `--iso-addr` only).
    for l in &state.config.iso.listeners {
        let sock = tokio::net::TcpListener::bind(l.addr).await.map_err(|e| StartError::Bind(l.addr, e))?;
        let tpdu = if l.tpdu { ", TPDU" } else { "" };
        let tpdu =
            if l.mac == crate::config::MacMode::Required { format!("{tpdu}, MAC required") } else { tpdu.to_string() };
        println!(
            "tsp: ISO 8583 ({}, {} length{tpdu}) listening on {}{iso_mode}",
            l.dialect,
            l.length.name(),
            sock.local_addr()?
        );
        let p = state.payments.clone();
        iso_tasks.push(tokio::spawn(crate::server::serve(sock, p, limits, l.wire(), iso_tls.clone(), stop_rx.clone())));
    }
    let keys_task =
        tokio::spawn(crate::vault::rotation::run(state.vault.clone(), state.config.keys.clone(), stop_rx.clone()));
    let recovery_task = tokio::spawn(crate::payments::recovery::run(state.payments.clone(), stop_rx.clone()));
    let webhooks_task = tokio::spawn(state.webhooks.clone().run(stop_rx.clone()));
    let advice_task = tokio::spawn(crate::payments::advice::run(state.payments.clone(), stop_rx));
    let stop = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    let listener =
        api::listener::CappedListener::with_tls(listener, state.config.limits.http_max_connections, rest_tls);
    let app = api::router(state).merge(crate::web::router());
    axum::serve(listener, app.into_make_service_with_connect_info::<api::listener::Peer>())
        .with_graceful_shutdown(stop)
        .await?;
    // In-flight ISO 8583 requests finish before the database closes.
    for t in iso_tasks {
        let _ = t.await;
    }
    let _ = advice_task.await;
    let _ = webhooks_task.await;
    let _ = recovery_task.await;
    let _ = keys_task.await;
    store.close().await;
    println!("tsp: stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
