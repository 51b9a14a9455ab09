//! The HSM over TCP: requests to a running `hsm-sim serve` on a small pool of persistent connections.

use std::sync::Mutex;
use std::time::Duration;

use hsm_sim::wire::{Frame, Reply, read_frame, write_frame};
use hsm_sim::{HsmError, Request, Response};
use tokio::net::TcpStream;

use super::{HsmBackend, HsmFuture};

/// How long one request may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for reuse.
const POOL_MAX: usize = 16;

pub struct TcpBackend {
    addr: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl TcpBackend {
    /// `url` is `tcp://host:port`.
    pub fn new(url: &str) -> Result<Self, HsmError> {
        let addr = url.strip_prefix("tcp://").ok_or_else(|| HsmError::format("the HSM URL must be tcp://host:port"))?;
        Ok(TcpBackend { addr: addr.to_string(), idle: Mutex::new(Vec::new()) })
    }

    fn take(&self) -> Option<TcpStream> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, s: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(s);
        }
    }

    async fn round_trip(s: &mut TcpStream, body: &[u8]) -> std::io::Result<Reply> {
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
        let mut s = TcpStream::connect(&self.addr).await.map_err(unreachable)?;
        let _ = s.set_nodelay(true);
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
