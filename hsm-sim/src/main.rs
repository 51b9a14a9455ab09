//! `hsm-sim serve --listen ADDR`: the HSM simulator as a TCP service; with `--tls-cert`, `--tls-key`
//! and `--client-ca`, over TLS accepting only clients with a certificate of that CA.

use std::path::PathBuf;
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
        #[arg(long, default_value = "127.0.0.1:1500")]
        listen: String,
        /// Development key store (created on first start); default ./hsm-data/keystore.json.
        #[arg(long, default_value = "./hsm-data/keystore.json")]
        keystore: PathBuf,
        /// Keep keys in memory only: nothing is written, everything is lost on exit.
        #[arg(long)]
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
}

async fn run(cli: Cli) -> Result<(), String> {
    let Command::Serve { listen, keystore, ephemeral, tls_cert, tls_key, client_ca } = cli.command;
    // Certificates first: a bad file stops the start before any key is touched.
    let tls = match (tls_cert, tls_key, client_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(hsm_sim::tls::acceptor(&cert, &key, &ca)?),
        _ => None,
    };
    eprintln!("{}", hsm_sim::BANNER);
    let hsm = if ephemeral {
        hsm_sim::Hsm::ephemeral().map_err(|e| e.to_string())?
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
