//! TLS for every front and link (docs/operations.md "TLS"): rustls on the `ring` provider, TLS 1.2
//! and 1.3 only (rustls' safe defaults), certificates and keys read from PEM files the configuration
//! names ([`crate::config::TlsConfig`], an issuer's `tls`).
//!
//! - Servers (REST, ISO 8583): [`acceptor`]; with a `client_ca`, a client is refused at the handshake
//!   unless its certificate chains to that CA (mutual TLS), and the certificate's names become the
//!   connection's [`PeerIdentity`].
//! - Clients (the HSM link, issuer links): [`Connector`], which verifies the server's certificate
//!   against a configured CA (never the system roots) and presents a client certificate when one is
//!   configured.
//!
//! Errors name the file and what is wrong with it, never a key's contents.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::TlsConnector;

use crate::config::{ClientTlsConfig, ServerTlsConfig};

/// How long a TLS handshake may take before the connection is dropped (a stalled client must not
/// hold a connection slot).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream, clear or TLS, as the fronts and links use it.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
pub type BoxedIo = Box<dyn Io>;

/// A TLS file that cannot be used, or a setting that does not fit.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {0}: {1}")]
    File(PathBuf, String),
    #[error("TLS: {0}")]
    Setting(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file (a chain: leaf first), at least one.
/// Makes ring the process's default rustls provider (the one the project uses everywhere; no
/// aws-lc-rs). The HTTP clients (webhook deliveries, `tsp load`, the tests') need one installed before
/// they are built. Idempotent.
pub fn install_crypto_provider() {
    // An error only says one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |m: String| TlsError::File(path.to_path_buf(), m);
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_error(&e)))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1). An error says only what kind of
/// problem the file has: nothing of its contents.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File(path.to_path_buf(), pem_error(&e)))
}

/// A PEM error without the file's contents (only an I/O error's own text, or the kind of problem).
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in it".into(),
        _ => "not a well-formed PEM file".into(),
    }
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(path)? {
        store.add(cert).map_err(|e| TlsError::File(path.to_path_buf(), format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// The server side of a front: its certificate chain and key, and with `client_ca` mutual TLS
/// (a client certificate signed by that CA required).
pub fn server_config(cfg: &ServerTlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&cfg.cert)?;
    let key = load_key(&cfg.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setting(e.to_string()))?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                .build()
                .map_err(|e| TlsError::File(ca.clone(), format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::File(cfg.key.clone(), format!("does not fit the certificate {}: {e}", cfg.cert.display()))
    })?;
    Ok(Arc::new(config))
}

/// [`server_config`] as a tokio acceptor.
pub fn acceptor(cfg: &ServerTlsConfig) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(server_config(cfg)?))
}

/// The client side of a link: the server verified against `ca` under the name `server_name` (or the
/// host the link's address names), and a client certificate when `cert` and `key` are set.
pub struct Connector {
    inner: TlsConnector,
    name: ServerName<'static>,
}

impl Connector {
    /// `host` is the host part of the link's address, the name the server's certificate must carry
    /// unless `cfg.server_name` says otherwise.
    pub fn new(cfg: &ClientTlsConfig, host: &str) -> Result<Connector, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setting(e.to_string()))?
            .with_root_certificates(roots(&cfg.ca)?);
        let config = match (&cfg.cert, &cfg.key) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?).map_err(|e| {
                    TlsError::File(key.clone(), format!("does not fit the certificate {}: {e}", cert.display()))
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::Setting("a client certificate needs both `cert` and `key`".into())),
        };
        let host = cfg.server_name.as_deref().unwrap_or(host);
        // `[::1]` in an address is the name `::1`.
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| TlsError::Setting(format!("{host:?} is not a valid TLS server name")))?;
        Ok(Connector { inner: TlsConnector::from(Arc::new(config)), name })
    }

    /// The TLS session over a connected socket, within [`HANDSHAKE_TIMEOUT`].
    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<BoxedIo> {
        let handshake = self.inner.connect(self.name.clone(), tcp);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(std::io::Error::new(e.kind(), format!("TLS handshake: {e}"))),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")),
        }
    }
}

/// The host of `host:port` (IPv6 in brackets kept as written).
pub fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// Who a client certificate says the peer is: on the ISO 8583 front, the acquirer, merchant or VAN
/// its certificate was issued to (docs/security.md "Mutual TLS identities"). Only names from a
/// certificate that chained to the configured client CA ever become one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    /// The subject's common name (CN), when it has one.
    pub common_name: Option<String>,
    /// The subject alternative names of type DNS.
    pub dns_names: Vec<String>,
    /// The subject alternative names of type URI.
    pub uris: Vec<String>,
}

impl PeerIdentity {
    /// The names of a DER certificate; None when it cannot be parsed.
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        let mut id = PeerIdentity { common_name, ..PeerIdentity::default() };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => id.dns_names.push((*n).to_string()),
                    GeneralName::URI(u) => id.uris.push((*u).to_string()),
                    _ => {}
                }
            }
        }
        Some(id)
    }

    /// The identity of a server connection's verified client certificate, if it presented one.
    pub fn of(conn: &rustls::ServerConnection) -> Option<PeerIdentity> {
        conn.peer_certificates().and_then(|c| c.first()).and_then(|leaf| PeerIdentity::from_der(leaf))
    }

    /// The one name to log and match: the CN, else the first DNS name, else the first URI.
    pub fn name(&self) -> Option<&str> {
        self.common_name
            .as_deref()
            .or_else(|| self.dns_names.first().map(String::as_str))
            .or_else(|| self.uris.first().map(String::as_str))
    }
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name().unwrap_or("(certificate without a name)"))
    }
}

#[cfg(test)]
mod tests {
    use super::PeerIdentity;

    #[test]
    fn a_certificate_names_its_peer() {
        let mut params = rcgen::CertificateParams::new(vec!["van.example".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "VAN-0001");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = PeerIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.common_name.as_deref(), Some("VAN-0001"));
        assert_eq!(id.dns_names, vec!["van.example".to_string()]);
        assert_eq!(id.name(), Some("VAN-0001"));

        // Without a CN, the first DNS name.
        let mut params = rcgen::CertificateParams::new(vec!["acquirer.example".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).unwrap();
        let id = PeerIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.name(), Some("acquirer.example"), "{id:?}");
        assert!(PeerIdentity::from_der(b"not a certificate").is_none());
    }
}
