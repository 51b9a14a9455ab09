//! The HSM over TCP: requests to a running `hsm-sim serve` on a small pool of persistent connections,
//! over TLS with the service's client certificate for `tls://host:port` (`[tls.hsm]`).

use std::sync::Mutex;
use std::time::Duration;

use hsm_sim::wire::{Frame, Reply, read_frame, write_frame};
use hsm_sim::{HsmError, Request, Response};
use tokio::net::TcpStream;

use super::{HsmBackend, HsmFuture};
use crate::config::ClientTlsConfig;
use crate::tls::{BoxedIo, Connector};

/// How long one request may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for reuse.
const POOL_MAX: usize = 16;

pub struct TcpBackend {
    addr: String,
    tls: Option<Connector>,
    idle: Mutex<Vec<BoxedIo>>,
}

impl TcpBackend {
    /// `url` is `tcp://host:port`, or `tls://host:port` with `tls` (the CA the HSM's certificate
    /// must chain to, and the client certificate the HSM requires). A `tls` with a `tcp://` URL, or
    /// a `tls://` URL without one, is refused rather than silently ignored.
    pub fn new(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Self, HsmError> {
        let bad = || HsmError::format("the HSM URL must be tcp://host:port or tls://host:port");
        let (addr, secure) = match (url.strip_prefix("tcp://"), url.strip_prefix("tls://")) {
            (Some(a), _) => (a, false),
            (None, Some(a)) => (a, true),
            (None, None) => return Err(bad()),
        };
        let tls = match (secure, tls) {
            (false, None) => None,
            (true, Some(cfg)) => {
                Some(Connector::new(cfg, crate::tls::host_of(addr)).map_err(|e| HsmError::format(e.to_string()))?)
            }
            (true, None) => return Err(HsmError::format("a tls:// HSM URL needs the [tls.hsm] configuration")),
            (false, Some(_)) => return Err(HsmError::format("[tls.hsm] is configured: the HSM URL must be tls://")),
        };
        Ok(TcpBackend { addr: addr.to_string(), tls, idle: Mutex::new(Vec::new()) })
    }

    async fn open(&self) -> std::io::Result<BoxedIo> {
        let s = TcpStream::connect(&self.addr).await?;
        let _ = s.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(s)),
            Some(tls) => tls.connect(s).await,
        }
    }

    fn take(&self) -> Option<BoxedIo> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, s: BoxedIo) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(s);
        }
    }

    async fn round_trip(s: &mut BoxedIo, body: &[u8]) -> std::io::Result<Reply> {
        write_frame(s, body).await?;
        match read_frame(s).await? {
            Frame::Message(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Frame::Closed => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "HSM closed the connection")),
            Frame::TooLarge(n) => Err(std::io::Error::other(format!("HSM answer of {n} bytes is too large"))),
        }
    }

    async fn call_inner(&self, req: Request) -> Result<Response, HsmError> {
        let body = serde_json::to_vec(&req).map_err(|e| HsmError::internal(format!("encoding HSM request: {e}")))?;
        let unreachable = |e: std::io::Error| HsmError::internal(format!("HSM at {} unreachable: {e}", self.addr));
        // A pooled connection may have gone stale (the HSM restarted): then try once on a fresh one.
        if let Some(mut s) = self.take()
            && let Ok(reply) = Self::round_trip(&mut s, &body).await
        {
            self.give_back(s);
            return reply.into();
        }
        let mut s = self.open().await.map_err(unreachable)?;
        let reply = Self::round_trip(&mut s, &body).await.map_err(unreachable)?;
        self.give_back(s);
        reply.into()
    }
}

impl HsmBackend for TcpBackend {
    fn call(&self, req: Request) -> HsmFuture<'_> {
        Box::pin(async move {
            tokio::time::timeout(CALL_TIMEOUT, self.call_inner(req))
                .await
                .unwrap_or_else(|_| Err(HsmError::internal(format!("HSM at {} timed out", self.addr))))
        })
    }
}
