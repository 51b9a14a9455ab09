//! The service's door to the HSM: one trait, [`HsmBackend`], with an in-process implementation over
//! `hsm_sim::Hsm` and a TCP one that talks to `hsm-sim serve`, and [`Hsm`], the typed calls the service
//! makes. Nothing outside this module builds a `Request` by hand.

pub mod mac;
pub mod payshield;
mod tcp;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hsm_sim::{HsmError, KeyInfo, KeyRef, KeyUsage, Request, Response, SecretBytes};

pub type HsmFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, HsmError>> + Send + 'a>>;

/// Something that runs HSM requests.
pub trait HsmBackend: Send + Sync + 'static {
    fn call(&self, req: Request) -> HsmFuture<'_>;

    /// Gives the backend the service's database, for a backend that keeps a key table there (the
    /// payShield one). Others ignore it.
    fn attach_store(&self, _store: &crate::store::Store) {}

    /// Puts a key enciphered under the HSM's LMK into the backend's key table as the newest version of
    /// `label` (`tsp keys payshield-load`). Only the payShield backend keeps such a table.
    fn load_key<'a>(&'a self, _label: &'a str, _usage: KeyUsage, _key_lmk: &'a str) -> KeyFuture<'a> {
        Box::pin(std::future::ready(Err(HsmError::format(
            "only a payShield HSM (--hsm payshield://…) keeps a key table",
        ))))
    }
}

pub type KeyFuture<'a> = Pin<Box<dyn Future<Output = Result<KeyInfo, HsmError>> + Send + 'a>>;

/// The simulator linked into this process.
pub struct InProcess(pub Arc<hsm_sim::Hsm>);

impl HsmBackend for InProcess {
    fn call(&self, req: Request) -> HsmFuture<'_> {
        let r = self.0.execute(req);
        Box::pin(std::future::ready(r))
    }
}

/// Typed HSM calls. Cheap to clone.
#[derive(Clone)]
pub struct Hsm(Arc<dyn HsmBackend>);

fn unexpected(r: Response) -> HsmError {
    HsmError::internal(format!("unexpected HSM response {}", r.kind()))
}

impl Hsm {
    pub fn new(backend: impl HsmBackend) -> Self {
        Hsm(Arc::new(backend))
    }

    pub fn in_process(hsm: Arc<hsm_sim::Hsm>) -> Self {
        Self::new(InProcess(hsm))
    }

    /// A client of `hsm-sim serve` at `tcp://host:port`.
    pub fn tcp(url: &str) -> Result<Self, HsmError> {
        Self::tcp_with_tls(url, None)
    }

    /// A client of `hsm-sim serve` at `tcp://host:port`, or at `tls://host:port` with `tls`
    /// (`[tls.hsm]`: the HSM's CA and this service's client certificate).
    pub fn tcp_with_tls(url: &str, tls: Option<&crate::config::ClientTlsConfig>) -> Result<Self, HsmError> {
        Ok(Self::new(tcp::TcpBackend::new(url, tls)?))
    }

    /// A payShield (or `hsm-sim serve --protocol payshield`) at `payshield://host:port`, or over TLS at
    /// `payshield+tls://host:port` with `tls` (`[tls.hsm]`). Its key table lives in the database, given
    /// with [`Hsm::attach_store`] before the first call.
    pub fn payshield(url: &str, tls: Option<&crate::config::ClientTlsConfig>) -> Result<Self, HsmError> {
        Ok(Self::new(payshield::PayShieldBackend::new(url, tls)?))
    }

    /// True for a URL [`Hsm::payshield`] takes.
    pub fn is_payshield_url(url: &str) -> bool {
        url.starts_with("payshield://") || url.starts_with("payshield+tls://")
    }

    /// See [`HsmBackend::load_key`].
    pub async fn load_key(&self, label: &str, usage: KeyUsage, key_lmk: &str) -> Result<KeyInfo, HsmError> {
        self.0.load_key(label, usage, key_lmk).await
    }

    /// See [`HsmBackend::attach_store`].
    pub fn attach_store(&self, store: &crate::store::Store) {
        self.0.attach_store(store);
    }

    pub async fn call(&self, req: Request) -> Result<Response, HsmError> {
        let (op, started) = (req.op(), std::time::Instant::now());
        let r = self.0.call(req).await;
        crate::metrics::get().hsm(op, r.is_ok(), started.elapsed());
        r
    }

    pub async fn ensure_key(&self, label: &str, usage: KeyUsage) -> Result<KeyInfo, HsmError> {
        match self.call(Request::EnsureKey { label: label.into(), usage }).await? {
            Response::Key { key } => Ok(key),
            r => Err(unexpected(r)),
        }
    }

    /// Every version of the stored key `label`.
    pub async fn key_versions(&self, label: &str) -> Result<Vec<KeyInfo>, HsmError> {
        match self.call(Request::KeyInfo { label: label.into() }).await? {
            Response::Keys { keys } => Ok(keys),
            r => Err(unexpected(r)),
        }
    }

    /// A new version of the stored key `label` (rotation).
    pub async fn generate_key(&self, label: &str, usage: KeyUsage) -> Result<KeyInfo, HsmError> {
        let req = Request::GenerateKey { label: label.into(), usage, algorithm: None, mode: None, exportable: false };
        match self.call(req).await? {
            Response::Key { key } => Ok(key),
            r => Err(unexpected(r)),
        }
    }

    /// Destroys an old version of the stored key `label`.
    pub async fn destroy_key(&self, label: &str, version: u32) -> Result<(), HsmError> {
        match self.call(Request::DestroyKey { label: label.into(), version }).await? {
            Response::Keys { .. } => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    pub async fn import_clear_key(&self, label: &str, usage: KeyUsage, key: &[u8]) -> Result<KeyInfo, HsmError> {
        let req = Request::ImportClearKey { label: label.into(), usage, key: SecretBytes::from_slice(key) };
        match self.call(req).await? {
            Response::Key { key } => Ok(key),
            r => Err(unexpected(r)),
        }
    }

    /// A new data key, wrapped under the stored KEK `kek`.
    pub async fn generate_data_key(&self, kek: &str) -> Result<(hsm_sim::KeyId, Vec<u8>), HsmError> {
        match self.call(Request::GenerateDataKey { kek: kek.into() }).await? {
            Response::WrappedKey { kek, blob } => Ok((kek, blob.0)),
            r => Err(unexpected(r)),
        }
    }

    /// AES-GCM seal; returns IV ‖ ciphertext ‖ tag.
    pub async fn seal(&self, key: KeyRef, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        let req =
            Request::AeadEncrypt { key, iv: None, aad: aad.into(), plaintext: SecretBytes::from_slice(plaintext) };
        match self.call(req).await? {
            Response::Sealed { iv, ciphertext, tag } => {
                let mut out = iv.0;
                out.extend_from_slice(&ciphertext.0);
                out.extend_from_slice(&tag.0);
                Ok(out)
            }
            r => Err(unexpected(r)),
        }
    }

    /// Opens what [`Hsm::seal`] produced.
    pub async fn open(&self, key: KeyRef, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, HsmError> {
        if sealed.len() < 12 + 16 {
            return Err(HsmError::format("sealed value too short"));
        }
        let (iv, rest) = sealed.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        let req = Request::AeadDecrypt { key, iv: iv.into(), aad: aad.into(), ciphertext: ct.into(), tag: tag.into() };
        match self.call(req).await? {
            Response::Opened { plaintext } => Ok(plaintext),
            r => Err(unexpected(r)),
        }
    }

    pub async fn hmac(&self, key: KeyRef, data: &[u8]) -> Result<Vec<u8>, HsmError> {
        match self.call(Request::Hmac { key, data: SecretBytes::from_slice(data) }).await? {
            Response::Mac { mac } => Ok(mac.0),
            r => Err(unexpected(r)),
        }
    }

    /// The EMV ICC master key (Option A) for `pan` and `psn` under the IMK `imk`.
    pub async fn derive_icc_mk(&self, imk: KeyRef, pan: &str, psn: &str) -> Result<SecretBytes, HsmError> {
        match self.call(Request::DeriveIccMk { imk, pan: pan.into(), psn: psn.into(), method: "A".into() }).await? {
            Response::Derived { key } => Ok(key),
            r => Err(unexpected(r)),
        }
    }
}
