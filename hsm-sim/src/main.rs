//! `hsm-sim serve --listen ADDR`: the HSM simulator as a TCP service; with `--tls-cert`, `--tls-key`
//! and `--client-ca`, over TLS accepting only clients with a certificate of that CA. With
//! `--protocol payshield` it speaks payShield host commands instead (`hsm_sim::payshield`), and
//! `hsm-sim form-key` forms a key under the payShield test LMK from clear components. `hsm-sim init`
//! makes a sealed key store in a key ceremony (M-of-N custodian shares); `serve` opens it with the
//! shares given as files or in `HSM_SIM_UNSEAL_SHARES`, and refuses to start without enough of them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hsm-sim", version, about = "A payment HSM simulator (development and tests only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HSM's operations over TCP (length-prefixed JSON).
    Serve {
        /// Address to listen on (both protocols: 127.0.0.1:1500 when not given).
        #[arg(long)]
        listen: Option<String>,
        /// `json` (length-prefixed JSON, the default) or `payshield` (payShield host commands: 2-byte
        /// length, header, command code; keys under the variant test LMK).
        #[arg(long, default_value = "json", value_parser = ["json", "payshield"])]
        protocol: String,
        /// payShield only: characters of message header echoed back (0 to 64).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(0..=64))]
        header_length: u8,
        /// Key store: a development one (created on first start) or a sealed one (`hsm-sim init`),
        /// opened with --unseal-share-file; default ./hsm-data/keystore.json.
        #[arg(long, default_value = "./hsm-data/keystore.json")]
        keystore: PathBuf,
        /// A custodian's share of a sealed key store (repeat for M shares); more shares may come in
        /// HSM_SIM_UNSEAL_SHARES (separated by commas or spaces).
        #[arg(long = "unseal-share-file")]
        share_files: Vec<PathBuf>,
        /// Keep keys in memory only: nothing is written, everything is lost on exit.
        #[arg(long, conflicts_with = "share_files")]
        ephemeral: bool,
        /// Serve TLS with this certificate chain (PEM); needs --tls-key and --client-ca.
        #[arg(long, requires_all = ["tls_key", "client_ca"])]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// CA certificates (PEM) of the clients: one without a certificate they signed is refused.
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
    },
    /// Key ceremony: a sealed key store whose master key never rests in clear, opened by THRESHOLD of
    /// the CUSTODIANS shares printed (or written to --share-dir, one file each, mode 0600).
    Init {
        /// Where the sealed key store is written (refused when a key store is there).
        #[arg(long)]
        keystore: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
        custodians: u8,
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
        threshold: u8,
        /// Write each share to DIR/custodian-N.share instead of printing it.
        #[arg(long)]
        share_dir: Option<PathBuf>,
    },
    /// Form a key from clear components (XORed), as payShield's console command FK does, and print it
    /// enciphered under the variant test LMK with its check value: `<key under LMK> <KCV>`.
    FormKey {
        /// Key type code: 000 ZMK, 001 ZPK, 002 TPK/PVK, 402 CVK, 003 TAK, 008 ZAK, 00A ZEK, 00B DEK…
        #[arg(long)]
        key_type: String,
        /// Key scheme under the LMK: Z (single), U (double), T (triple) variant forms, or S (a key block
        /// holding a double-length key, usage by key type).
        #[arg(long, default_value = "U")]
        scheme: char,
        /// Clear components, hex; each of the key's length, odd parity after XOR.
        #[arg(required = true)]
        components: Vec<String>,
    },
}

fn form_key(key_type: &str, scheme: char, components: &[String]) -> Result<(), String> {
    let scheme = u8::try_from(scheme).map_err(|_| "key scheme must be Z, U or T".to_string())?;
    let parts: Vec<&str> = components.iter().map(String::as_str).collect();
    let (key, kcv) = hsm_sim::payshield::commands::form_key(key_type, scheme, &parts).map_err(|e| e.to_string())?;
    println!("{key} {kcv}");
    Ok(())
}

/// `hsm-sim init`: the ceremony; prints the shares or writes one file per custodian.
fn init(keystore: &Path, custodians: u8, threshold: u8, share_dir: Option<&Path>) -> Result<(), String> {
    if threshold > custodians {
        return Err("--threshold must be at most --custodians".into());
    }
    if let Some(dir) = keystore.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let shares = hsm_sim::Hsm::create_sealed(keystore, threshold, custodians).map_err(|e| e.to_string())?;
    eprintln!(
        "hsm-sim: sealed key store created at {}: {threshold} of these {custodians} shares open it; give one to \
         each custodian and keep no copy together",
        keystore.display()
    );
    for (i, share) in shares.iter().enumerate() {
        match share_dir {
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

async fn run(cli: Cli) -> Result<(), String> {
    let (listen, protocol, header_length, keystore, share_files, ephemeral, tls_cert, tls_key, client_ca) =
        match cli.command {
            Command::Serve {
                listen,
                protocol,
                header_length,
                keystore,
                share_files,
                ephemeral,
                tls_cert,
                tls_key,
                client_ca,
            } => (listen, protocol, header_length, keystore, share_files, ephemeral, tls_cert, tls_key, client_ca),
            Command::Init { keystore, custodians, threshold, share_dir } => {
                return init(&keystore, custodians, threshold, share_dir.as_deref());
            }
            Command::FormKey { key_type, scheme, components } => return form_key(&key_type, scheme, &components),
        };
    let listen = listen.unwrap_or_else(|| "127.0.0.1:1500".to_string());
    if protocol == "payshield" {
        // Certificates first: a bad file stops the start.
        let tls = match (&tls_cert, &tls_key, &client_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(hsm_sim::tls::acceptor(cert, key, ca)?),
            _ => None,
        };
        eprintln!("{}", hsm_sim::BANNER);
        let listener =
            tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let front = Arc::new(hsm_sim::payshield::Front::new(usize::from(header_length)));
        let served = async {
            match tls {
                Some(tls) => {
                    println!(
                        "hsm-sim: listening on {addr} (payShield host commands, header {header_length}, TLS, client certificates required)"
                    );
                    hsm_sim::server::serve_payshield_tls(listener, front, tls).await
                }
                None => {
                    println!("hsm-sim: listening on {addr} (payShield host commands, header {header_length})");
                    hsm_sim::server::serve_payshield(listener, front).await
                }
            }
        };
        return tokio::select! {
            r = served => r.map_err(|e| e.to_string()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
    }
    // Certificates first: a bad file stops the start before any key is touched.
    let tls = match (tls_cert, tls_key, client_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(hsm_sim::tls::acceptor(&cert, &key, &ca)?),
        _ => None,
    };
    eprintln!("{}", hsm_sim::BANNER);
    let shares = hsm_sim::seal::given_shares(&share_files, "HSM_SIM_UNSEAL_SHARES")
        .map_err(|(f, e)| format!("{}: {e}", f.display()))?;
    let hsm = if ephemeral {
        hsm_sim::Hsm::ephemeral().map_err(|e| e.to_string())?
    } else if !shares.is_empty() {
        let given: Vec<&str> = shares.iter().map(|s| s.as_str()).collect();
        match hsm_sim::Hsm::open_sealed(&keystore, &given).map_err(|e| e.to_string())? {
            Some(hsm) => {
                eprintln!("hsm-sim: sealed key store {} opened", keystore.display());
                hsm
            }
            None => {
                return Err(format!(
                    "key store {} stays sealed: {} share(s) given, fewer than its threshold",
                    keystore.display(),
                    given.len()
                ));
            }
        }
    } else {
        if let Some(dir) = keystore.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let (hsm, created) = hsm_sim::Hsm::open(&keystore).map_err(|e| e.to_string())?;
        if created {
            eprintln!("hsm-sim: created the development key store {}", keystore.display());
        }
        hsm
    };
    let listener =
        tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let hsm = Arc::new(hsm);
    let served = async {
        match tls {
            Some(tls) => {
                println!("hsm-sim: listening on {addr} (TLS, client certificates required)");
                hsm_sim::server::serve_tls(listener, hsm, tls).await
            }
            None => {
                println!("hsm-sim: listening on {addr}");
                hsm_sim::server::serve(listener, hsm).await
            }
        }
    };
    tokio::select! {
        r = served => r.map_err(|e| e.to_string()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hsm-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hsm-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
