//! The `tsp` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tsp::app::{self, ServeOptions};
use tsp::requestors::{self, Scope};

/// mimalloc instead of glibc's malloc: under load, glibc's arenas spent a sixth of the service's
/// time consolidating and unlinking chunks and kept growing (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tsp", version, about = "Card-payment Token Service Provider")]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "TSP_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Storage {
    /// Directory for the SQLite database, the development key store and the demo keys.
    #[arg(long, default_value = "./tsp-data", env = "TSP_DATA_DIR")]
    data_dir: PathBuf,
    /// Database URL (`postgres://user@host/db` or `sqlite://PATH`); default: DATA_DIR/tsp.db.
    #[arg(long, env = "TSP_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: the REST API and the ISO 8583 front.
    Serve {
        #[command(flatten)]
        storage: Storage,
        /// Configuration file (TOML); default: the embedded demo configuration.
        #[arg(long, env = "TSP_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080", env = "TSP_HTTP_ADDR")]
        http_addr: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8583", env = "TSP_ISO_ADDR")]
        iso_addr: SocketAddr,
        /// `tcp://host:port` (`tls://` with `[tls.hsm]`) of a running `hsm-sim serve`, or `payshield://host:port` (`payshield+tls://`) of a payShield; default: the simulator in process.
        #[arg(long, env = "TSP_HSM")]
        hsm: Option<String>,
        #[command(flatten)]
        seal: SealArgs,
    },
    /// Run the whole story once against a fresh temporary instance and print a transcript.
    Demo {
        /// The dialect the demo's terminals speak: ascii, binary or bcd (docs/iso8583.md "Dialects").
        #[arg(long, default_value = "ascii")]
        dialect: tsp::iso8583::Dialect,
        /// MAC every message under the terminals' TAKs (docs/iso8583.md "MAC").
        #[arg(long)]
        mac: bool,
    },
    /// Apply the database migrations and exit (idempotent; `serve` applies them too).
    Migrate {
        #[command(flatten)]
        storage: Storage,
    },
    /// Fill the vault with `--count` cards and one live token each, for growth measurements.
    Seed {
        #[command(flatten)]
        storage: Storage,
        #[arg(long, env = "TSP_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "TSP_HSM")]
        hsm: Option<String>,
        #[arg(long)]
        count: u64,
    },
    /// Close the current business day now: later card cancels of today's payments are refunds.
    Settle {
        #[command(flatten)]
        storage: Storage,
    },
    /// The card issuer simulator as a TCP authorization host (same ISO 8583 dialect, real PANs).
    IssuerSim {
        #[arg(long, default_value = "127.0.0.1:9583")]
        listen: String,
        /// Credit limit of every card, in minor units.
        #[arg(long, default_value_t = 5_000_000)]
        limit: i64,
        /// Delay before each answer.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Share of requests (0.0–1.0) never answered, to exercise timeouts.
        #[arg(long, default_value_t = 0.0)]
        failure_rate: f64,
        /// Serve TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by these CA certificates (PEM).
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
        /// The ISO 8583 dialect spoken: ascii, binary or bcd (docs/iso8583.md "Dialects").
        #[arg(long, default_value = "ascii")]
        dialect: tsp::iso8583::Dialect,
        /// A MAC link (docs/iso8583.md "MAC"): the TAK in hex (a simulator's test key). Requests
        /// must carry a valid MAC (else `63`); answers carry one.
        #[arg(long)]
        tak: Option<String>,
        /// The TAK's algorithm: retail (TDES, ISO 9797-1 MAC algorithm 3) or cmac (AES).
        #[arg(long, default_value = "retail", requires = "tak")]
        mac_algorithm: String,
        /// Take the card registration rules (`[[issuer_sim.activation]]`) from this configuration
        /// file instead of the demo configuration's.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Data-key and fingerprint-key rotation (docs/operations.md "Key rotation").
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Conformance vectors.
    Vectors {
        #[command(subcommand)]
        command: VectorsCommand,
    },
    /// Operator commands that work on the database directly.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Load a running `tsp serve`: report throughput, latency percentiles and response codes; fail
    /// (exit 1) when any answer is wrong.
    Load {
        /// echo (0800), tokenize (POST /v1/tokens), pay (0200 with pre-issued tokens), mixed (card,
        /// gift and local-currency payments, partial cancels, reversals), register (POST
        /// /v1/instruments, a new card each time) or detokenize (POST /v1/detokenize with pre-issued
        /// tokens; the server's `[limits] detokenize_per_second = 0` for a throughput run).
        #[arg(long)]
        mode: tsp::load::Mode,
        /// Stop after this long (`10s`, `500ms`, `2m`); 10s when --count is absent.
        #[arg(long, value_parser = tsp::load::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Stop after this many requests (pay and mixed need it: their tokens are issued beforehand).
        #[arg(long)]
        count: Option<u64>,
        /// ISO 8583 connections (or REST clients for tokenize, register and detokenize).
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Requests in flight per ISO 8583 connection.
        #[arg(long, default_value_t = 4)]
        pipeline: usize,
        /// host:port of the ISO 8583 front.
        #[arg(long, default_value = "127.0.0.1:8583")]
        iso: String,
        /// The dialect of that listener: ascii, binary or bcd (docs/iso8583.md "Dialects").
        #[arg(long, default_value = "ascii")]
        dialect: tsp::iso8583::Dialect,
        /// Base URL of the REST API.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        http: String,
        /// The demo keys file ({"app","van","admin"}).
        #[arg(long, default_value = "./tsp-data/demo-keys.json")]
        keys: PathBuf,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VectorsCommand {
    /// Run vector files (default: vectors/); prints failures, a line per suite, and `N passed, N failed`.
    Run {
        /// Files or folders of `*.json` vector files.
        paths: Vec<PathBuf>,
        /// `tcp://host:port` of a running `hsm-sim serve`; default: the simulator in process.
        #[arg(long, env = "TSP_HSM")]
        hsm: Option<String>,
    },
}

/// Production mode and the custodians' shares (docs/security.md "Sealed key store").
#[derive(clap::Args, Clone)]
struct SealArgs {
    /// Production mode: refuse the development key store, demo IMKs and demo keys.
    #[arg(long, env = "TSP_PRODUCTION")]
    production: bool,
    /// A file holding one custodian share of a sealed key store (repeat for each); shares may also
    /// come in TSP_UNSEAL_SHARES, or later from `tsp keys unlock`.
    #[arg(long = "unseal-share-file")]
    share_files: Vec<PathBuf>,
}

impl SealArgs {
    fn options(self) -> app::SealOptions {
        app::SealOptions { production: self.production, share_files: self.share_files }
    }
}

#[derive(clap::Args, Clone)]
struct KeysArgs {
    #[command(flatten)]
    storage: Storage,
    #[arg(long, env = "TSP_CONFIG")]
    config: Option<PathBuf>,
    /// `tcp://host:port` (`tls://` with `[tls.hsm]`) of a running `hsm-sim serve`, or `payshield://host:port` (`payshield+tls://`) of a payShield; default: the simulator in process.
    #[arg(long, env = "TSP_HSM")]
    hsm: Option<String>,
    #[command(flatten)]
    seal: SealArgs,
}

impl KeysArgs {
    fn options(self) -> ServeOptions {
        ServeOptions {
            data_dir: self.storage.data_dir,
            config: self.config,
            database_url: self.storage.database_url,
            http_addr: ([127, 0, 0, 1], 0).into(),
            iso_addr: ([127, 0, 0, 1], 0).into(),
            hsm: self.hsm,
            seal: self.seal.options(),
        }
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a data-key version and a fingerprint-key version: new cards use them at once, serving
    /// nodes move existing cards onto them and destroy the old versions.
    Rotate {
        #[command(flatten)]
        args: KeysArgs,
    },
    /// Cards per key version, and the fingerprint-key versions left in the HSM.
    Status {
        #[command(flatten)]
        args: KeysArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Put a token IMK-AC formed at the payShield (under its LMK: `U` + 32 hex digits, or an `S` key
    /// block) into the payShield key table as the newest version of LABEL
    /// (`tsp.issuer.<id>.token-imk-ac`, `tsp.platform.token-imk-ac`); prints its check value.
    PayshieldLoad {
        #[command(flatten)]
        args: KeysArgs,
        #[arg(long)]
        label: String,
        /// The key under the LMK.
        #[arg(long)]
        key: String,
    },
    /// Move cards onto the newest keys and destroy retired versions now, in the foreground (for when
    /// no node is serving; serving nodes do this by themselves).
    Migrate {
        #[command(flatten)]
        args: KeysArgs,
    },
    /// The key ceremony: create the data directory's sealed key store; its master key opens only with
    /// THRESHOLD of the CUSTODIANS shares printed (or written to --share-dir, one file each).
    Init {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        custodians: u8,
        #[arg(long)]
        threshold: u8,
        /// Write each share to DIR/custodian-N.share (mode 0600) instead of printing them.
        #[arg(long)]
        share_dir: Option<PathBuf>,
    },
    /// Hand custodian shares to a sealed node: one share per line on stdin (or --share-file), each
    /// sent to URL's `POST /v1/sys/unseal`.
    Unlock {
        /// The sealed node's REST address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A file holding one share (repeatable); without it, shares are read from stdin.
        #[arg(long = "share-file")]
        share_files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 and name the first broken row if any.
    Verify {
        #[command(flatten)]
        storage: Storage,
    },
    /// Write every row as JSON lines (stdout, or `--out FILE`).
    Export {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a token requestor and print its API key (shown this once) on stdout.
    CreateRequestor {
        #[command(flatten)]
        storage: Storage,
        #[arg(long)]
        name: String,
        /// Comma-separated: instruments, tokens, terminal, detokenize, admin.
        #[arg(long)]
        scopes: String,
        /// Comma-separated merchant ids (DE42) a `terminal` requestor acts for.
        #[arg(long, default_value = "")]
        merchants: String,
        /// Comma-separated requestor ids whose tokens a `detokenize` requestor (a VAN) may detokenize.
        #[arg(long, default_value = "")]
        serves: String,
        #[arg(long, env = "TSP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revoke an API key now (by its key id, the part between `tsp_` and the next `_`); revoking a
    /// revoked key changes nothing.
    RevokeKey {
        #[command(flatten)]
        storage: Storage,
        key_id: String,
    },
    /// Replace an API key with a new one of the same requestor, printed on stdout (shown this once);
    /// the old key keeps working for the overlap, then stops.
    RotateKey {
        #[command(flatten)]
        storage: Storage,
        key_id: String,
        /// How long the old key keeps working, in seconds (0 to 2592000).
        #[arg(long, default_value_t = requestors::DEFAULT_OVERLAP_SECONDS, allow_negative_numbers = true)]
        overlap_seconds: i64,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files and log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { storage, config, http_addr, iso_addr, hsm, seal } => {
            let opts = ServeOptions {
                data_dir: storage.data_dir,
                config,
                database_url: storage.database_url,
                http_addr,
                iso_addr,
                hsm,
                seal: seal.options(),
            };
            app::serve(opts).await.map_err(|e| e.to_string())
        }
        Command::Demo { dialect, mac } => {
            tsp::demo::run_with(&mut std::io::stdout(), tsp::demo::DemoOptions { dialect, mac }).await
        }
        Command::Migrate { storage } => {
            let store =
                app::open_store(&storage.data_dir, storage.database_url.as_deref()).await.map_err(|e| e.to_string())?;
            let (backend, applied) = (store.backend(), store.migrations().await.map_err(|e| e.to_string())?);
            store.close().await;
            println!("{backend} database is at migration {applied}");
            Ok(())
        }
        Command::Seed { storage, config, hsm, count } => {
            let opts = ServeOptions {
                data_dir: storage.data_dir,
                config,
                database_url: storage.database_url,
                http_addr: ([127, 0, 0, 1], 0).into(),
                iso_addr: ([127, 0, 0, 1], 0).into(),
                hsm,
                seal: app::SealOptions::default(),
            };
            let started = std::time::Instant::now();
            let done = app::seed(&opts, count).await.map_err(|e| e.to_string())?;
            println!(
                "seeded {} cards and {} tokens in {:.1} s",
                done.instruments,
                done.tokens,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Keys { command: KeysCommand::Init { storage, custodians, threshold, share_dir } } => {
            let shares = app::init_sealed_store(&storage.data_dir, threshold, custodians).map_err(|e| e.to_string())?;
            eprintln!(
                "tsp: sealed key store created in {}: {threshold} of these {custodians} shares open it; give one \
                 to each custodian and keep no copy together",
                storage.data_dir.display()
            );
            for (i, share) in shares.iter().enumerate() {
                match &share_dir {
                    Some(dir) => {
                        let path = dir.join(format!("custodian-{}.share", i + 1));
                        hsm_sim::seal::write_share(&path, share).map_err(|e| format!("{}: {e}", path.display()))?;
                        println!("custodian {}: {}", i + 1, path.display());
                    }
                    None => println!("custodian {}: {}", i + 1, share.as_str()),
                }
            }
            Ok(())
        }
        Command::Keys { command: KeysCommand::Unlock { url, share_files } } => unlock(&url, &share_files).await,
        Command::Keys { command: KeysCommand::Rotate { args } } => {
            let version = app::rotate_keys(&args.options()).await.map_err(|e| e.to_string())?;
            println!("data key version {version} is current; serving nodes move cards onto it");
            Ok(())
        }
        Command::Keys { command: KeysCommand::Status { args, json } } => {
            let status = app::key_status(&args.options()).await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&status).map_err(|e| e.to_string())?);
            } else {
                println!("{:<12} {:<16} {:>12}  state", "data key", "fingerprint key", "cards");
                for v in &status.data_keys {
                    let (dek, fp) = (format!("v{}", v.dek_version), format!("v{}", v.fingerprint_key_version));
                    println!("{dek:<12} {fp:<16} {:>12}  {}", v.cards, v.state);
                }
                let hsm: Vec<String> = status.fingerprint_keys_in_hsm.iter().map(|v| format!("v{v}")).collect();
                println!("fingerprint key versions in the HSM: {}", hsm.join(", "));
                if status.cards_on_unknown_versions > 0 {
                    println!("cards under a data key the table lacks: {}", status.cards_on_unknown_versions);
                }
            }
            Ok(())
        }
        Command::Keys { command: KeysCommand::PayshieldLoad { args, label, key } } => {
            let k = app::payshield_load(&args.options(), &label, &key).await.map_err(|e| e.to_string())?;
            println!("{} v{} loaded, check value {}", k.id.label, k.id.version, k.kcv);
            Ok(())
        }
        Command::Keys { command: KeysCommand::Migrate { args } } => {
            let pass = app::migrate_keys(&args.options()).await.map_err(|e| e.to_string())?;
            println!(
                "moved {} cards ({} could not be opened); destroyed data keys {:?}, fingerprint keys {:?}",
                pass.moved, pass.failed, pass.destroyed_data_keys, pass.destroyed_fingerprint_keys
            );
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { storage } } => {
            let store =
                app::open_store(&storage.data_dir, storage.database_url.as_deref()).await.map_err(|e| e.to_string())?;
            let verdict = tsp::audit::verify(&store).await.map_err(|e| e.to_string());
            store.close().await;
            match verdict? {
                tsp::audit::Verdict::Intact { rows, chains, head } => {
                    println!("audit trail intact: {rows} rows in {chains} chains, head {head}");
                    Ok(())
                }
                tsp::audit::Verdict::Broken { seq, reason } => {
                    println!("audit trail broken at row {seq}: {reason}");
                    std::process::exit(1);
                }
            }
        }
        Command::Audit { command: AuditCommand::Export { storage, out } } => {
            let store =
                app::open_store(&storage.data_dir, storage.database_url.as_deref()).await.map_err(|e| e.to_string())?;
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let n = tsp::audit::export(&store, &mut sink).await.map_err(|e| e.to_string());
            store.close().await;
            let n = n?;
            sink.flush().map_err(|e| e.to_string())?;
            eprintln!("exported {n} audit rows");
            Ok(())
        }
        Command::Settle { storage } => {
            let store =
                app::open_store(&storage.data_dir, storage.database_url.as_deref()).await.map_err(|e| e.to_string())?;
            let (id, at) =
                tsp::payments::settle(&store, &tsp::clock::Clock::system()).await.map_err(|e| e.to_string())?;
            let event = tsp::audit::Event::new("cli", "settlement.close", Some(id.clone()));
            tsp::audit::record(&store, &event, at).await.map_err(|e| e.to_string())?;
            store.close().await;
            println!("closed the business day: settlement {id} at {}", tsp::clock::rfc3339(at));
            Ok(())
        }
        Command::IssuerSim {
            listen,
            limit,
            latency_ms,
            failure_rate,
            tls_cert,
            tls_key,
            client_ca,
            dialect,
            tak,
            mac_algorithm,
            config,
        } => {
            let rules = match config {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    tsp::config::Config::parse(&text).map_err(|e| e.to_string())?
                }
                None => tsp::config::Config::default_config().map_err(|e| e.to_string())?,
            }
            .issuer_sim
            .activation;
            let link_mac = match tak {
                None => None,
                Some(hexkey) => {
                    let algorithm = match mac_algorithm.as_str() {
                        "retail" => tsp::config::MacAlgorithm::Retail,
                        "cmac" => tsp::config::MacAlgorithm::Cmac,
                        other => return Err(format!("--mac-algorithm {other:?}: retail or cmac")),
                    };
                    let key =
                        zeroize::Zeroizing::new(hex::decode(hexkey).map_err(|_| "--tak must be hex".to_string())?);
                    let hsm = tsp::hsm::Hsm::in_process(std::sync::Arc::new(
                        hsm_sim::Hsm::ephemeral().map_err(|e| e.to_string())?,
                    ));
                    Some(tsp::issuer::tcp::LinkMac::from_clear(hsm, algorithm, &key).await.map_err(|e| e.to_string())?)
                }
            };
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(
                    tsp::tls::acceptor(&tsp::config::ServerTlsConfig { cert, key, client_ca })
                        .map_err(|e| e.to_string())?,
                ),
                _ => None,
            };
            let cfg = tsp::issuer::sim::SimConfig {
                default_limit_minor: limit,
                latency_ms,
                failure_rate,
                activation: rules,
                // Its "phone": each activation code it is asked to deliver is printed.
                print_codes: true,
                ..Default::default()
            };
            let sim = std::sync::Arc::new(tsp::issuer::sim::Simulator::new(cfg));
            let listener =
                tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let mode = if tls.is_some() { " (TLS)" } else { "" };
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            // The address stays the line's last word (tests and scripts read it from there).
            let mut speaks =
                if dialect == tsp::iso8583::Dialect::Ascii { String::new() } else { format!(" ({dialect})") };
            if link_mac.is_some() {
                speaks.push_str(" (MAC)");
            }
            println!("tsp issuer-sim{speaks}: listening on {at}{mode}");
            tokio::select! {
                r = tsp::issuer::tcp::serve_mac(listener, sim, tls, dialect, link_mac) => r.map_err(|e| e.to_string()),
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Vectors { command: VectorsCommand::Run { paths, hsm } } => {
            let hsm = match hsm {
                Some(url) => tsp::hsm::Hsm::tcp(&url).map_err(|e| e.to_string())?,
                None => tsp::hsm::Hsm::in_process(std::sync::Arc::new(
                    hsm_sim::Hsm::ephemeral().map_err(|e| e.to_string())?,
                )),
            };
            let paths = if paths.is_empty() { vec![PathBuf::from("vectors")] } else { paths };
            let report = tsp::vectors::run(&hsm, &paths).await;
            report.print(&mut std::io::stdout()).map_err(|e| e.to_string())?;
            std::process::exit(report.exit_code());
        }
        Command::Admin {
            command: AdminCommand::CreateRequestor { storage, name, scopes, merchants, serves, config },
        } => {
            let scopes = Scope::parse_list(&scopes)
                .ok_or("--scopes must list instruments, tokens, terminal, detokenize or admin")?;
            let merchants: Vec<String> =
                merchants.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect();
            if scopes.contains(&Scope::Terminal) == merchants.is_empty()
                || !merchants.iter().all(|m| requestors::valid_merchant_id(m))
            {
                return Err("--merchants lists the merchant ids of a terminal requestor, and only of one".into());
            }
            let serves: Vec<String> =
                serves.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect();
            if !serves.is_empty() && !scopes.contains(&Scope::Detokenize) {
                return Err("--serves lists the requestors of a detokenize requestor".into());
            }
            let cfg = app::load_config(config.as_deref()).map_err(|e| e.to_string())?;
            let store =
                app::open_store(&storage.data_dir, storage.database_url.as_deref()).await.map_err(|e| e.to_string())?;
            for id in &serves {
                if store.requestor(id).await.map_err(|e| e.to_string())?.is_none() {
                    return Err(format!("--serves: no requestor {id}"));
                }
            }
            let now = tsp::clock::Clock::system().now_ms();
            let created = requestors::create(&store, &cfg.platform.trid_prefix, &name, &scopes, now)
                .await
                .map_err(|e| e.to_string())?;
            let taken =
                store.bind_merchants(&created.requestor.id, &merchants, now).await.map_err(|e| e.to_string())?;
            if !taken.is_empty() {
                return Err(format!("merchants already bound to another requestor: {}", taken.join(", ")));
            }
            store.serve_requestors(&created.requestor.id, &serves, now).await.map_err(|e| e.to_string())?;
            let event = tsp::audit::Event::new("cli", "requestor.create", Some(created.requestor.id.clone())).detail(
                serde_json::json!({ "scopes": created.requestor.scopes, "merchant_ids": merchants, "serves": serves }),
            );
            tsp::audit::record(&store, &event, now).await.map_err(|e| e.to_string())?;
            store.close().await;
            eprintln!("created requestor {} (TRID {})", created.requestor.id, created.requestor.trid);
            println!("{}", created.api_key);
            Ok(())
        }
        Command::Admin { command: AdminCommand::RevokeKey { storage, key_id } } => {
            let store =
                app::open_store(&storage.data_dir, storage.database_url.as_deref()).await.map_err(|e| e.to_string())?;
            let now = tsp::clock::Clock::system().now_ms();
            let revoked = match requestors::revoke_key(&store, &key_id, now).await {
                Ok(r) => r,
                Err(e) => {
                    store.close().await;
                    return Err(e.to_string());
                }
            };
            let at = tsp::clock::rfc3339(revoked.revoked_at);
            let event = tsp::audit::Event::new("cli", "api_key.revoke", Some(revoked.key_id.clone())).detail(
                serde_json::json!({ "requestor_id": revoked.requestor_id, "revoked_at": at, "already_revoked": revoked.already }),
            );
            let recorded = tsp::audit::record(&store, &event, now).await.map_err(|e| e.to_string());
            store.close().await;
            recorded?;
            if revoked.already {
                println!(
                    "API key {} of requestor {} was already revoked at {at}",
                    revoked.key_id, revoked.requestor_id
                );
            } else {
                println!("API key {} of requestor {} revoked at {at}", revoked.key_id, revoked.requestor_id);
            }
            Ok(())
        }
        Command::Admin { command: AdminCommand::RotateKey { storage, key_id, overlap_seconds } } => {
            let store =
                app::open_store(&storage.data_dir, storage.database_url.as_deref()).await.map_err(|e| e.to_string())?;
            let now = tsp::clock::Clock::system().now_ms();
            let rotated = match requestors::rotate_key(&store, &key_id, overlap_seconds, now).await {
                Ok(r) => r,
                Err(e) => {
                    store.close().await;
                    return Err(e.to_string());
                }
            };
            let until = tsp::clock::rfc3339(rotated.previous_revoked_at);
            let event = tsp::audit::Event::new("cli", "api_key.rotate", Some(rotated.previous_key_id.clone())).detail(
                serde_json::json!({
                    "requestor_id": rotated.requestor_id,
                    "new_key_id": rotated.key_id,
                    "overlap_seconds": overlap_seconds,
                    "previous_key_revoked_at": until,
                }),
            );
            let recorded = tsp::audit::record(&store, &event, now).await.map_err(|e| e.to_string());
            store.close().await;
            recorded?;
            eprintln!(
                "API key {} of requestor {} replaced by {}; the old key works until {until}",
                rotated.previous_key_id, rotated.requestor_id, rotated.key_id
            );
            println!("{}", rotated.api_key);
            Ok(())
        }
        Command::Load { mode, duration, count, connections, pipeline, iso, dialect, http, keys, json } => {
            let opts =
                tsp::load::LoadOptions { mode, duration, count, connections, pipeline, iso, dialect, http, keys, json };
            tsp::load::command(&opts, &mut std::io::stdout()).await.map_err(|e| format!("load: {e}"))
        }
    }
}

fn main() -> ExitCode {
    tsp::tls::install_crypto_provider();
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tsp: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tsp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `tsp keys unlock`: each share to the sealed node, printing its progress.
async fn unlock(url: &str, share_files: &[PathBuf]) -> Result<(), String> {
    let mut shares = Vec::new();
    for f in share_files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        shares.push(zeroize::Zeroizing::new(text.trim().to_string()));
    }
    if share_files.is_empty() {
        for line in std::io::stdin().lines() {
            let line = zeroize::Zeroizing::new(line.map_err(|e| e.to_string())?);
            if !line.trim().is_empty() {
                shares.push(zeroize::Zeroizing::new(line.trim().to_string()));
            }
        }
    }
    let client = reqwest::Client::new();
    let endpoint = format!("{}/v1/sys/unseal", url.trim_end_matches('/'));
    for share in &shares {
        let r = client
            .post(&endpoint)
            .json(&serde_json::json!({ "share": share.as_str() }))
            .send()
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("share refused ({status}): {}", body["error"]["message"].as_str().unwrap_or("")));
        }
        if body["sealed"] == false {
            println!("unsealed: the node starts");
            return Ok(());
        }
        println!("sealed: {} of {} shares", body["progress"], body["threshold"]);
    }
    Err("still sealed: more shares are needed".into())
}
