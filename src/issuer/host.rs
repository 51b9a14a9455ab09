//! Routing card authorizations to an issuer's host: one trait, [`IssuerHost`], with the in-process
//! simulator ([`InProcessHost`]) and a TCP client of `tsp issuer-sim` ([`TcpHost`]) behind it, and
//! [`connect`], which picks one from an issuer's configured `host` URL.
//!
//! A host answers one ISO 8583 request with one response, or fails with an [`IssuerError`] that
//! never carries field values.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ClientTlsConfig;
use crate::iso8583::{Dialect, Message};
use crate::tls::Connector;

use super::sim::Simulator;

pub use super::tcp::{TcpHost, serve};

pub type IssuerFuture<'a> = Pin<Box<dyn Future<Output = Result<Message, IssuerError>> + Send + 'a>>;

/// Why an issuer gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// No answer in time. The request may have reached the issuer and taken effect: the TSP answers
    /// `91` and sends the issuer a `0420`.
    #[error("issuer did not answer in time")]
    Timeout,
    /// The request never left (no connection, bad host URL): the issuer cannot have acted on it.
    #[error("issuer unavailable: {0}")]
    Unavailable(String),
    /// A request that cannot be sent, or an answer that cannot be read.
    #[error("issuer protocol error: {0}")]
    Protocol(String),
}

impl IssuerError {
    /// True when the issuer may have acted on the request although no usable answer came back, so
    /// that a reversal is owed.
    pub fn outcome_unknown(&self) -> bool {
        !matches!(self, IssuerError::Unavailable(_))
    }
}

/// An issuer's authorization host.
pub trait IssuerHost: Send + Sync {
    /// Sends one request and waits for its response (within the host's timeout).
    fn send(&self, req: Message) -> IssuerFuture<'_>;
}

/// The simulator in this process.
pub struct InProcessHost {
    sim: Arc<Simulator>,
    timeout: Duration,
}

impl InProcessHost {
    pub fn new(sim: Arc<Simulator>, timeout: Duration) -> Self {
        InProcessHost { sim, timeout }
    }
}

impl IssuerHost for InProcessHost {
    fn send(&self, req: Message) -> IssuerFuture<'_> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + self.timeout;
            match tokio::time::timeout_at(deadline, self.sim.handle(req)).await {
                Ok(Some(resp)) => Ok(resp),
                Ok(None) => {
                    // An issuer that does not answer is only noticed when the wait runs out: keep the
                    // timing of the TCP path, so that callers behave the same with either.
                    tokio::time::sleep_until(deadline).await;
                    Err(IssuerError::Timeout)
                }
                Err(_) => Err(IssuerError::Timeout),
            }
        })
    }
}

/// The host an issuer's `host` setting names: `sim` (the shared in-process `sim`),
/// `tcp://host:port` of a running `tsp issuer-sim`, or `tls://host:port` for the same over TLS with
/// the issuer's `tls` settings (required then, and refused with any other host: a `tls` table never
/// silently goes unused). Connects lazily, on the first request.
pub fn connect(
    url: &str,
    timeout: Duration,
    tls: Option<&ClientTlsConfig>,
    sim: Arc<Simulator>,
) -> Result<Arc<dyn IssuerHost>, IssuerError> {
    connect_in(url, timeout, tls, Dialect::Ascii, sim)
}

/// [`connect`], speaking `dialect` to a `tcp://` or `tls://` host (the in-process simulator takes
/// messages, not bytes: its dialect does not matter).
pub fn connect_in(
    url: &str,
    timeout: Duration,
    tls: Option<&ClientTlsConfig>,
    dialect: Dialect,
    sim: Arc<Simulator>,
) -> Result<Arc<dyn IssuerHost>, IssuerError> {
    connect_mac(url, timeout, tls, dialect, sim, None)
}

/// [`connect_in`] over a MAC link (a `tcp://` or `tls://` host only).
pub fn connect_mac(
    url: &str,
    timeout: Duration,
    tls: Option<&ClientTlsConfig>,
    dialect: Dialect,
    sim: Arc<Simulator>,
    mac: Option<super::tcp::LinkMac>,
) -> Result<Arc<dyn IssuerHost>, IssuerError> {
    if url == "sim" && mac.is_some() {
        return Err(IssuerError::Unavailable("a MAC needs a `tcp://` or `tls://` host".into()));
    }
    let unavailable = IssuerError::Unavailable;
    if url == "sim" {
        if tls.is_some() {
            return Err(unavailable("a `tls` table needs a `tls://host:port` host".into()));
        }
        return Ok(Arc::new(InProcessHost::new(sim, timeout)));
    }
    let bad = || {
        IssuerError::Unavailable(format!(
            "issuer host {url:?} is neither `sim`, `tcp://host:port` nor `tls://host:port`"
        ))
    };
    let (addr, secure) = match (url.strip_prefix("tcp://"), url.strip_prefix("tls://")) {
        (Some(a), _) => (a, false),
        (None, Some(a)) => (a, true),
        (None, None) => return Err(bad()),
    };
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            let connector = match (secure, tls) {
                (false, None) => None,
                (true, Some(cfg)) => Some(Connector::new(cfg, host).map_err(|e| unavailable(e.to_string()))?),
                (true, None) => {
                    return Err(unavailable(format!("{url}: a `tls://` host needs the issuer's `tls` table")));
                }
                (false, Some(_)) => return Err(unavailable(format!("{url}: a `tls` table needs a `tls://` host"))),
            };
            Ok(Arc::new(TcpHost::with_tls(addr, connector, timeout).in_dialect(dialect).with_mac(mac)))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::sim::SimConfig;
    use crate::issuer::sim::tests::purchase;

    #[tokio::test]
    async fn in_process_and_timeouts() {
        let sim = Arc::new(Simulator::new(SimConfig::default()));
        let host = connect("sim", Duration::from_millis(100), None, sim.clone()).unwrap();
        let resp = host.send(purchase("000001", 500)).await.unwrap();
        assert_eq!(resp.response_code(), Some("00"));

        sim.set_offline(true);
        let t = std::time::Instant::now();
        assert_eq!(host.send(purchase("000002", 500)).await, Err(IssuerError::Timeout));
        assert!(t.elapsed() >= Duration::from_millis(100));
        sim.set_offline(false);
        sim.set_latency_ms(300);
        assert_eq!(host.send(purchase("000003", 500)).await, Err(IssuerError::Timeout));
        sim.set_latency_ms(0);
        assert_eq!(host.send(purchase("000004", 500)).await.unwrap().response_code(), Some("00"));
        assert!(IssuerError::Timeout.outcome_unknown());
    }

    #[test]
    fn urls() {
        let sim = Arc::new(Simulator::new(SimConfig::default()));
        let t = Duration::from_secs(1);
        assert!(connect("tcp://127.0.0.1:9000", t, None, sim.clone()).is_ok());
        assert!(connect("tcp://issuer.example:9000", t, None, sim.clone()).is_ok());
        for bad in [
            "",
            "simulator",
            "tcp://",
            "tcp://host",
            "tcp://:80",
            "tcp://h:0",
            "tcp://h:99999",
            "http://h:1",
            "tls://h:1",
        ] {
            assert!(matches!(connect(bad, t, None, sim.clone()), Err(IssuerError::Unavailable(_))), "{bad}");
        }
    }
}
