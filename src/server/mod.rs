//! The ISO 8583 front (docs/iso8583.md "Connecting"): TCP listeners for terminals and VANs. Each
//! listener has its [`Wire`]: a dialect ([`Dialect`]) and a framing ([`Framing`], by default a 2-byte
//! big-endian length). Messages are decoded with the listener's dialect at the edge and answered in
//! it, so every listener shares the same payment flows, limits, TLS settings and terminal registry.
//! Requests on one connection are handled concurrently and answered as they complete (terminals
//! match answers by DE11 + DE41).
//!
//! Over TLS when `[tls.iso]` is configured; with its `client_ca`, mutual TLS: a client is refused at
//! the handshake unless its certificate chains to that CA, and the certificate's names become the
//! connection's [`PeerIdentity`] (its [`ConnectionPeer`]), logged on every request's span. Handshakes
//! run on the connection's own task, never on the accept loop, and count against the connection cap.

mod connection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use crate::iso8583::Dialect;
pub use crate::iso8583::frame::{Framing, LengthPrefix};
use crate::payments::Payments;
pub use crate::tls::PeerIdentity;
use crate::tls::{BoxedIo, HANDSHAKE_TIMEOUT, TlsAcceptor};

/// Who is on the other end of an ISO 8583 connection: its address and, over mutual TLS, the names of
/// its verified client certificate (the acquirer, merchant or VAN it was issued to). Not yet matched
/// against a terminal registry: for now it is recorded and logged.
#[derive(Debug, Clone)]
pub struct ConnectionPeer {
    pub addr: SocketAddr,
    /// None in clear text, over TLS without client certificates, or for a certificate without names.
    pub identity: Option<PeerIdentity>,
}

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message accepted; a longer length prefix closes the connection (the stream
    /// can no longer be trusted).
    pub max_frame: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Requests of one connection handled at once; further frames wait to be read.
    pub max_in_flight: usize,
    /// A frame whose length prefix has arrived must be complete within this (a slow sender is closed).
    pub frame_timeout: Duration,
    /// Requests per second one connection may send (0: no limit), with `burst` allowed at once; past
    /// it a request is answered `91` without being processed.
    pub requests_per_second: u32,
    pub burst: u32,
    /// Connections served at once; one past it is closed at once, unread (and counted in
    /// `tsp_connections_refused_total{front="iso"}`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 8 * 1024,
            idle_timeout: Duration::from_secs(300),
            max_in_flight: 64,
            frame_timeout: Duration::from_secs(5),
            requests_per_second: 0,
            burst: 0,
            max_connections: 4096,
        }
    }
}

/// How messages travel on one listener: their dialect and their framing. The default is the ASCII
/// dialect in 2-byte binary length frames (`--iso-addr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wire {
    pub dialect: Dialect,
    pub framing: Framing,
    /// True (`mac = "required"`): every request must carry a valid MAC under its terminal's TAK and
    /// every answer carries one (docs/iso8583.md "MAC").
    pub mac: bool,
}

/// Accepts connections until `shutdown` turns true; each connection then stops reading, finishes
/// what it has in flight, and closes. With `tls`, each connection first completes a TLS handshake
/// (within [`HANDSHAKE_TIMEOUT`]) on its own task.
pub async fn serve(
    listener: TcpListener,
    payments: Arc<Payments>,
    limits: Limits,
    wire: Wire,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    if conns.len() >= limits.max_connections {
                        // Refused before anything is read: a flood of idle connections cannot take
                        // the descriptors the served ones, the REST front and the database need.
                        crate::metrics::get().connection_refused("iso");
                        tracing::debug!(%peer, "ISO 8583 connection refused: at the connection cap");
                        drop(sock);
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    conns.spawn(open(sock, peer, tls.clone(), payments.clone(), limits, wire, shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ISO 8583 accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// One accepted connection: its TLS handshake, if any, then [`connection::run`].
async fn open(
    sock: TcpStream,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    payments: Arc<Payments>,
    limits: Limits,
    wire: Wire,
    shutdown: watch::Receiver<bool>,
) {
    let Some(tls) = tls else {
        let peer = ConnectionPeer { addr, identity: None };
        return connection::run(sock, peer, payments, limits, wire, shutdown).await;
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(sock)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // A client without a certificate of the client CA ends here, before any message is read.
            tracing::info!(peer = %addr, error = %e, "ISO 8583 TLS handshake failed; connection refused");
            return;
        }
        Err(_) => {
            tracing::info!(peer = %addr, "ISO 8583 TLS handshake timed out; connection refused");
            return;
        }
    };
    let identity = PeerIdentity::of(stream.get_ref().1);
    let peer = ConnectionPeer { addr, identity };
    match &peer.identity {
        Some(id) => tracing::info!(peer = %addr, client = %id, "ISO 8583 TLS connection from a certified client"),
        None => tracing::debug!(peer = %addr, "ISO 8583 TLS connection"),
    }
    let stream: BoxedIo = Box::new(stream);
    connection::run(stream, peer, payments, limits, wire, shutdown).await;
}
