//! The REST front's listener: at most a configured number of connections at once, and each
//! connection's peer address for the handlers (the abuse limits count refused keys by source).
//!
//! A connection past the cap is answered `503 connections_exhausted` with `Retry-After` once its
//! request's head has arrived (at most a second), and closed, without being served: the service
//! keeps its file descriptors for the connections it serves, its health check and its ISO 8583
//! front.
//!
//! With a TLS acceptor (`[tls.rest]`) each connection's handshake runs on its own task, within
//! [`HANDSHAKE_TIMEOUT`], and finished connections come back to `accept` through a channel: a slow or
//! failed handshake never stalls accepting others. A connection holds its slot from accept on, so
//! handshakes in progress count against the cap. Over TLS a connection past the cap is closed at once,
//! without a handshake (a clear-text 503 would be noise to a TLS client, and a handshake is the work a
//! flood should not get).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::tls::{BoxedIo, HANDSHAKE_TIMEOUT, TlsAcceptor};

/// The answer to a connection past the cap.
const EXHAUSTED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\
Cache-Control: no-store\r\nConnection: close\r\nContent-Length: 86\r\n\r\n\
{\"error\":{\"code\":\"connections_exhausted\",\"message\":\"too many connections; try again\"}}";

/// A TCP listener that serves at most `max` connections at once, over TLS when it has an acceptor.
pub struct CappedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
    /// Connections whose TLS handshake has completed, sent by their handshake tasks.
    ready_tx: mpsc::Sender<(Counted, SocketAddr)>,
    ready_rx: mpsc::Receiver<(Counted, SocketAddr)>,
}

impl CappedListener {
    pub fn new(inner: TcpListener, max: usize) -> CappedListener {
        CappedListener::with_tls(inner, max, None)
    }

    /// [`CappedListener::new`], serving TLS when `tls` is set.
    pub fn with_tls(inner: TcpListener, max: usize, tls: Option<TlsAcceptor>) -> CappedListener {
        let (ready_tx, ready_rx) = mpsc::channel(64);
        CappedListener { inner, slots: Arc::new(Semaphore::new(max.max(1))), tls, ready_tx, ready_rx }
    }
}

/// The peer of a connection, as the handlers see it (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A served connection; its slot is given back when it closes.
pub struct Counted {
    io: BoxedIo,
    _slot: OwnedSemaphorePermit,
}

impl Listener for CappedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let accepted = tokio::select! {
                // Never None: the listener holds a sender.
                Some(ready) = self.ready_rx.recv() => return ready,
                accepted = self.inner.accept() => accepted,
            };
            let (io, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let _ = io.set_nodelay(true);
                    let Some(tls) = &self.tls else {
                        return (Counted { io: Box::new(io), _slot: slot }, peer);
                    };
                    let (tls, ready) = (tls.clone(), self.ready_tx.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(io)).await {
                            Ok(Ok(s)) => {
                                let _ = ready.send((Counted { io: Box::new(s), _slot: slot }, peer)).await;
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                        }
                    });
                }
                Err(_) => {
                    crate::metrics::get().connection_refused("http");
                    if self.tls.is_some() {
                        drop(io);
                        continue;
                    }
                    // Answered and closed off the accept loop, so a flood cannot stall accepting.
                    tokio::spawn(refuse(io));
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, CappedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, CappedListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Answers a connection past the cap `503` and closes it, each step bounded in time. The request's
/// head is read first: an answer that arrives before the client has sent its request is one HTTP
/// clients take for a broken connection (hyper: "unexpected message"), and closing a socket with
/// unread bytes resets it under the answer. So: read up to the blank line (at most 16 KiB, 1 s),
/// answer, shut the write side, and drain what else comes for a moment before closing.
async fn refuse(mut io: tokio::net::TcpStream) {
    let mut buf = [0u8; 2048];
    let mut head: Vec<u8> = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > 16 * 1024 {
                        break;
                    }
                }
            }
        }
    })
    .await;
    drop(head);
    let _ = tokio::time::timeout(Duration::from_secs(1), io.write_all(EXHAUSTED)).await;
    let _ = io.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::EXHAUSTED;

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = std::str::from_utf8(EXHAUSTED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let declared: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        assert_eq!(declared, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "connections_exhausted");
    }
}
