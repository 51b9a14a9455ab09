//! `hsm-sim serve --tls-cert … --tls-key … --client-ca …`: the HSM's TCP service over TLS (rustls,
//! `ring` provider, TLS 1.2 and 1.3), accepting only its clients: a client whose certificate does not
//! chain to the client CA is refused at the handshake.
//!
//! Errors name the file and the kind of problem, never a key's contents.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::TlsAcceptor;

fn file_error(path: &Path, what: &str) -> String {
    format!("TLS file {}: {what}", path.display())
}

fn pem_error(path: &Path, e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(io) => file_error(path, &io.to_string()),
        Error::NoItemsFound => file_error(path, "no PEM item of the expected kind in it"),
        _ => file_error(path, "not a well-formed PEM file"),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The acceptor of a TLS HSM service: its certificate chain and key, and the CA its clients'
/// certificates must chain to (required: the HSM serves only its clients).
pub fn acceptor(cert: &Path, key: &Path, client_ca: &Path) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certs(client_ca)? {
        roots.add(ca).map_err(|e| file_error(client_ca, &format!("not a usable CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| file_error(client_ca, &format!("client CA: {e}")))?;
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, &e))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS: the key does not fit the certificate {}: {e}", cert.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
