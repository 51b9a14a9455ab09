//! One terminal connection: a reader that frames requests, a task per request, and a writer that
//! sends answers in the order they complete. The connection's limits: at most `max_in_flight`
//! requests handled at once (further frames wait in the socket), a request rate past which requests
//! are answered `91` unprocessed, an idle timeout, and a frame timeout for senders that start a frame
//! and stall.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, watch};

use super::{ConnectionPeer, Limits, PeerIdentity};
use crate::iso8583::Message;
use crate::iso8583::frame::write_frame;
use crate::payments::{Answer, Payments};

/// Why a connection stopped reading.
#[derive(Debug)]
enum Stop {
    Closed,
    Idle,
    SlowFrame,
    TooLarge(usize),
    Broken(std::io::Error),
}

/// The next frame: its length within `idle`, then the rest within `frame`.
async fn next_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max: usize,
    idle: Duration,
    frame: Duration,
) -> Result<Vec<u8>, Stop> {
    let mut hdr = [0u8; 2];
    match tokio::time::timeout(idle, rd.read(&mut hdr[..1])).await {
        Err(_) => return Err(Stop::Idle),
        Ok(Ok(0)) => return Err(Stop::Closed),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Stop::Broken(e)),
    }
    let rest = async {
        rd.read_exact(&mut hdr[1..]).await?;
        let len = usize::from(u16::from_be_bytes(hdr));
        if len > max {
            return Ok(Err(len));
        }
        let mut body = vec![0u8; len];
        rd.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(Ok(body))
    };
    match tokio::time::timeout(frame, rest).await {
        Err(_) => Err(Stop::SlowFrame),
        Ok(Err(e)) => Err(Stop::Broken(e)),
        Ok(Ok(Err(len))) => Err(Stop::TooLarge(len)),
        Ok(Ok(Ok(body))) => Ok(body),
    }
}

/// Serves one connection, clear or TLS, until it closes, idles out or `shutdown`; `peer` is who is on
/// the other end (its certificate's names over mutual TLS), carried on every request's span.
pub async fn run<S>(
    sock: S,
    peer: ConnectionPeer,
    payments: Arc<Payments>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let client: Option<Arc<str>> = peer.identity.as_ref().and_then(|id| id.name()).map(Arc::from);
    let identity: Option<Arc<PeerIdentity>> = peer.identity.map(Arc::new);
    let (mut rd, mut wr) = tokio::io::split(sock);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(limits.max_in_flight);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if write_frame(&mut wr, &msg).await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let rate = NonZeroU32::new(limits.requests_per_second)
        .map(|r| RateLimiter::direct(Quota::per_second(r).allow_burst(NonZeroU32::new(limits.burst).unwrap_or(r))));
    loop {
        let frame = tokio::select! {
            r = next_frame(&mut rd, limits.max_frame, limits.idle_timeout, limits.frame_timeout) => r,
            _ = shutdown.changed() => break,
        };
        let bytes = match frame {
            Ok(bytes) => bytes,
            Err(Stop::Closed) => break,
            Err(Stop::TooLarge(n)) => {
                tracing::warn!(length = n, "ISO 8583 frame over the limit; closing the connection");
                break;
            }
            Err(Stop::SlowFrame) => {
                tracing::warn!("ISO 8583 frame not completed in time; closing the connection");
                break;
            }
            Err(Stop::Idle) => {
                tracing::debug!("ISO 8583 connection idle; closing");
                break;
            }
            Err(Stop::Broken(e)) => {
                tracing::debug!(error = %e, "ISO 8583 connection read failed");
                break;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let over_rate = rate.as_ref().is_some_and(|r| r.check().is_err());
        let (p, tx, identity) = (payments.clone(), tx.clone(), identity.clone());
        // Every line this request causes, down to the issuer call, carries its id.
        let span = tracing::info_span!("iso", id = %uuid::Uuid::now_v7().simple(), client = client.as_deref());
        let task = async move {
            let answer = match Message::decode(&bytes) {
                Ok(m) if over_rate => p.throttled(&m),
                Ok(m) => p.handle(m, identity.as_deref()).await,
                Err(e) => {
                    tracing::info!(error = %e, "malformed ISO 8583 message");
                    match e.partial() {
                        Some(partial) => p.format_error(partial),
                        // Not even an MTI: nothing to answer to; the connection lives on.
                        None => Answer::Nothing,
                    }
                }
            };
            if let Answer::Send(b) = answer {
                let _ = tx.send(b).await;
            }
            drop(permit);
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
    }
    // The writer ends once every request task has sent its answer and dropped its sender.
    drop(tx);
    let _ = writer.await;
}
