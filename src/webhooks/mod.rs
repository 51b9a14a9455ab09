//! Notifications to token requestors (docs/webhooks.md). A requestor registers endpoints and gets a
//! signing secret for each; every change to its instruments and tokens and every payment outcome is
//! an event the store appends in the change's own database transaction (`crate::events`, the
//! outbox). This module owns the endpoints, the signature, and the worker that delivers: it claims
//! due deliveries under a lease (one node sends each), posts them signed, and retries with backoff
//! until the retry window ends, when a delivery is dead. An endpoint gets its events in order: its
//! next one waits while an earlier one is being retried.

pub mod address;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_sim::{KeyRef, KeyUsage};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::clock::{Clock, rfc3339};
use crate::config::WebhooksConfig;
use crate::hsm::Hsm;
use crate::store::{DeliveryOutcome, EndpointRow, EndpointStatus, EventRow, Store};
use crate::{Error, Result};

/// The HSM key the endpoints' signing secrets are sealed under.
pub const SECRET_KEY_LABEL: &str = "webhook-secrets";
/// The header that carries the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Tsp-Signature";
/// The header that carries the event id (receivers drop a repeated one).
pub const EVENT_ID_HEADER: &str = "Tsp-Event-Id";
/// Deliveries one pass claims at most.
const BATCH: i64 = 32;
/// How long a claimed delivery stays this node's: past the endpoint timeout, so a node that dies
/// mid-delivery lets another take it over.
const LEASE_MS: i64 = 60_000;
/// Live tokens past their TTL one sweep ends at most (each with its `token.expired` event).
const EXPIRY_SWEEP: i64 = 500;

/// The signature of one delivery: HMAC-SHA256 under the endpoint's secret (its text's bytes, as
/// shown once) over `"{timestamp}.{body}"`, as the header's value.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={timestamp},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// What is delivered for an event: its envelope.
pub fn envelope(e: &EventRow) -> Value {
    let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    json!({
        "id": e.id,
        "type": e.kind,
        "created_at": rfc3339(e.created_at),
        "instrument_id": e.instrument_id,
        "sequence": e.sequence,
        "data": data,
    })
}

/// The wait after a delivery's `attempts`-th failed try: `backoff_ms` doubled each time, at most
/// `max_backoff_ms`.
pub fn backoff(c: &WebhooksConfig, attempts: i64) -> i64 {
    let base = i64::try_from(c.backoff_ms).unwrap_or(i64::MAX);
    let max = i64::try_from(c.max_backoff_ms).unwrap_or(i64::MAX);
    let shift = u32::try_from((attempts - 1).clamp(0, 40)).unwrap_or(40);
    base.saturating_mul(1i64 << shift).min(max).max(1)
}

/// Checks an endpoint URL: `http` or `https`, a host, no user name or password in it, at most 2,048
/// characters; an address written in it must pass the address rule.
pub fn check_url(text: &str, allow_private: bool) -> Result<reqwest::Url> {
    let bad = |m: &str| Error::invalid("url_invalid", m.to_string());
    if text.len() > 2048 {
        return Err(bad("url must be at most 2048 characters"));
    }
    let url = reqwest::Url::parse(text).map_err(|_| bad("url must be an absolute http or https URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("url must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("url must not hold a user name or password"));
    }
    let refused = |ip: std::net::IpAddr| !allow_private && !address::is_public(ip);
    match url.host() {
        None => return Err(bad("url must name a host")),
        Some(url::Host::Ipv4(ip)) if refused(ip.into()) => {
            return Err(Error::invalid("url_not_public", "url must reach a public address"));
        }
        Some(url::Host::Ipv6(ip)) if refused(ip.into()) => {
            return Err(Error::invalid("url_not_public", "url must reach a public address"));
        }
        Some(url::Host::Domain(d)) if !allow_private && (d == "localhost" || d.ends_with(".localhost")) => {
            return Err(Error::invalid("url_not_public", "url must reach a public address"));
        }
        Some(_) => {}
    }
    Ok(url)
}

pub struct Webhooks {
    store: Store,
    hsm: Hsm,
    clock: Clock,
    config: WebhooksConfig,
    client: reqwest::Client,
    /// This node's name on the leases it takes.
    node: String,
    rng: SystemRandom,
    /// Opened signing secrets by endpoint id (an endpoint's secret never changes).
    secrets: Mutex<HashMap<String, Arc<Zeroizing<Vec<u8>>>>>,
}

impl Webhooks {
    pub fn new(store: Store, hsm: Hsm, clock: Clock, config: WebhooksConfig) -> Result<Self> {
        let client = client(&config)?;
        let node = format!("node_{}", uuid::Uuid::now_v7().simple());
        Ok(Webhooks { store, hsm, clock, config, client, node, rng: SystemRandom::new(), secrets: Mutex::default() })
    }

    /// Makes the key the signing secrets are sealed under, if it is not there yet.
    pub async fn load_keys(hsm: &Hsm) -> Result<()> {
        hsm.ensure_key(SECRET_KEY_LABEL, KeyUsage::DataEncryption).await?;
        Ok(())
    }

    /// Registers an endpoint for `requestor_id`. Returns it with its signing secret, which is shown
    /// this once (stored only sealed).
    pub async fn register(&self, requestor_id: &str, url: &str) -> Result<(EndpointRow, Zeroizing<String>)> {
        let url = check_url(url, self.config.allow_private_addresses)?;
        let mut raw = Zeroizing::new([0u8; 32]);
        self.rng.fill(raw.as_mut()).map_err(|_| Error::Internal("no randomness".into()))?;
        let secret = Zeroizing::new(format!("whsec_{}", hex::encode(raw.as_ref())));
        let id = format!("whe_{}", uuid::Uuid::now_v7().simple());
        let sealed = self.hsm.seal(KeyRef::stored(SECRET_KEY_LABEL), id.as_bytes(), secret.as_bytes()).await?;
        let now = self.clock.now_ms();
        let row = EndpointRow {
            id,
            requestor_id: requestor_id.to_string(),
            url: url.to_string(),
            secret_sealed: sealed,
            status: EndpointStatus::Active,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_endpoint(&row).await?;
        Ok((row, secret))
    }

    async fn secret(&self, endpoint: &EndpointRow) -> Result<Arc<Zeroizing<Vec<u8>>>> {
        if let Some(s) = self.secrets.lock().map_err(|_| Error::Internal("poisoned".into()))?.get(&endpoint.id) {
            return Ok(s.clone());
        }
        let opened =
            self.hsm.open(KeyRef::stored(SECRET_KEY_LABEL), endpoint.id.as_bytes(), &endpoint.secret_sealed).await?;
        let secret = Arc::new(Zeroizing::new(opened.expose().to_vec()));
        self.secrets
            .lock()
            .map_err(|_| Error::Internal("poisoned".into()))?
            .insert(endpoint.id.clone(), secret.clone());
        Ok(secret)
    }

    /// One pass: claims the due deliveries and sends each. Returns how many were tried.
    pub async fn deliver_due(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let claimed = self.store.claim_deliveries(&self.node, now, now + LEASE_MS, BATCH).await?;
        let n = claimed.len();
        // Each endpoint's head delivery at once: a slow endpoint does not hold up the others.
        let sends = claimed.into_iter().map(|(d, e, ep)| async move {
            let outcome = self.try_once(&e, &ep, d.attempts + 1, d.created_at).await;
            let at = self.clock.now_ms();
            if let Err(err) = self.store.delivery_tried(&self.node, &e.id, &ep.id, &outcome, at).await {
                tracing::warn!(error = %err, event = %e.id, "recording a webhook delivery");
            }
        });
        futures_util::future::join_all(sends).await;
        Ok(n)
    }

    /// Posts the event to the endpoint once; what happened, and when to try again.
    async fn try_once(&self, e: &EventRow, ep: &EndpointRow, attempt: i64, since: i64) -> DeliveryOutcome {
        let result = self.post(e, ep).await;
        let now = self.clock.now_ms();
        let (delivered, status, error) = match result {
            Ok(s) if (200..300).contains(&s) => (true, Some(s), None),
            Ok(s) => (false, Some(s), Some(format!("HTTP {s}"))),
            Err(msg) => (false, None, Some(msg)),
        };
        let window = i64::try_from(self.config.retry_for_seconds).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
        let next = now + backoff(&self.config, attempt);
        let next_at = (!delivered && next <= since.saturating_add(window)).then_some(next);
        tracing::info!(event = %e.id, endpoint = %ep.id, attempt, delivered, status, "webhook delivery");
        DeliveryOutcome { delivered, next_at, status, error }
    }

    async fn post(&self, e: &EventRow, ep: &EndpointRow) -> std::result::Result<i64, String> {
        // The address rule again: a URL's literal address is not resolved, so the resolver does not see it.
        check_url(&ep.url, self.config.allow_private_addresses).map_err(|err| err.to_string())?;
        let secret = self.secret(ep).await.map_err(|err| format!("secret: {err}"))?;
        let body = envelope(e).to_string();
        let signature = sign(secret.as_slice(), self.clock.now_ms() / 1000, body.as_bytes());
        let r = self
            .client
            .post(&ep.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, &e.id)
            .body(body)
            .send()
            .await
            .map_err(|err| if err.is_timeout() { "timed out".to_string() } else { "could not connect".to_string() })?;
        Ok(i64::from(r.status().as_u16()))
    }

    /// Ends live tokens past their TTL, each with its `token.expired` event.
    pub async fn expire_tokens(&self) -> Result<u64> {
        Ok(self.store.expire_due_tokens(self.clock.now_ms(), EXPIRY_SWEEP).await?)
    }

    /// Delivers until `stop` changes: again at once after a pass that found work, else after
    /// `poll_ms`; tokens past their TTL are swept about once a second.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_ms.max(10));
        let mut last_sweep = 0i64;
        loop {
            let now = self.clock.now_ms();
            if now - last_sweep >= 1000 {
                last_sweep = now;
                if let Err(e) = self.expire_tokens().await {
                    tracing::warn!(error = %e, "sweeping expired tokens");
                }
            }
            let worked = match self.deliver_due().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "delivering webhooks");
                    false
                }
            };
            if *stop.borrow() {
                return;
            }
            if !worked {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// The HTTP client deliveries go out on: the endpoint timeout, no redirects (a redirect could lead
/// anywhere), no proxy from the environment, names resolved under the address rule, and `https`
/// verified against the system's roots and `ca_file`, on ring.
fn client(c: &WebhooksConfig) -> Result<reqwest::Client> {
    crate::tls::install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut extra = Vec::new();
    if let Some(path) = &c.ca_file {
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::invalid("config", format!("webhooks.ca_file: {e}")))?
        {
            extra.push(cert.map_err(|e| Error::invalid("config", format!("webhooks.ca_file: {e}")))?);
        }
    }
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
        .map_err(|e| Error::Internal(format!("webhook TLS roots: {e}")))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("webhook TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .timeout(Duration::from_millis(c.timeout_ms.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(address::Guarded { allow_private: c.allow_private_addresses }))
        .tls_backend_preconfigured(tls)
        .user_agent("tsp-webhooks/1")
        .build()
        .map_err(|e| Error::Internal(format!("webhook client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let c = WebhooksConfig { backoff_ms: 1000, max_backoff_ms: 5000, ..WebhooksConfig::default() };
        let waits: Vec<i64> = (1..=5).map(|n| backoff(&c, n)).collect();
        assert_eq!(waits, [1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff(&c, 1_000_000), 5000, "no overflow");
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example.com/tsp", false).is_ok());
        for (bad, code) in [
            ("ftp://example.com/", "url_invalid"),
            ("not a url", "url_invalid"),
            ("https://user:pw@example.com/", "url_invalid"),
            ("http://127.0.0.1:9/", "url_not_public"),
            ("http://[::1]/", "url_not_public"),
            ("http://169.254.169.254/latest/meta-data", "url_not_public"),
            ("http://localhost:8080/", "url_not_public"),
        ] {
            match check_url(bad, false) {
                Err(Error::Invalid { code: c, .. }) => assert_eq!(c, code, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(check_url("http://127.0.0.1:9/", true).is_ok(), "allowed by configuration");
    }
}
