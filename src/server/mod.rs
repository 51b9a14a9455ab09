//! The ISO 8583 front (docs/iso8583.md "Connecting"): a TCP listener for terminals and VANs. Frames
//! are a 2-byte big-endian length and a message; requests on one connection are handled concurrently
//! and answered as they complete (terminals match answers by DE11 + DE41).

mod connection;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::payments::Payments;

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

/// Accepts connections until `shutdown` turns true; each connection then stops reading, finishes
/// what it has in flight, and closes.
pub async fn serve(
    listener: TcpListener,
    payments: Arc<Payments>,
    limits: Limits,
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
                    conns.spawn(connection::run(sock, payments.clone(), limits, shutdown.clone()));
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
