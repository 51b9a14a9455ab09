//! One terminal connection: a reader that frames requests, a task per request, and a writer that
//! sends answers in the order they complete. The connection's limits: at most `max_in_flight`
//! requests handled at once (further frames wait in the socket), a request rate past which requests
//! are answered `91` unprocessed, an idle timeout, and a frame timeout for senders that start a frame
//! and stall. Frames and messages are read and written as the listener's [`Wire`] says; an answer
//! to a request that came with a TPDU carries it back with source and destination swapped.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};

use super::{ConnectionPeer, Limits, PeerIdentity, Wire};
use crate::iso8583::frame::{LengthPrefix, TPDU_LEN};
use crate::iso8583::{Dialect, Message};
use crate::payments::{Answer, Payments};

/// Why a connection stopped reading.
#[derive(Debug)]
enum Stop {
    Closed,
    Idle,
    SlowFrame,
    TooLarge(usize),
    /// A 4-byte ASCII length that is not 4 digits: the stream is out of step.
    BadLength,
    Broken(std::io::Error),
}

/// The next frame: the first byte of its length within `idle`, then the rest within `frame`.
async fn next_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    length: LengthPrefix,
    max: usize,
    idle: Duration,
    frame: Duration,
) -> Result<Vec<u8>, Stop> {
    let mut buf = [0u8; 4];
    let hdr = buf.get_mut(..length.width()).unwrap_or_default();
    match tokio::time::timeout(idle, rd.read(hdr.get_mut(..1).unwrap_or_default())).await {
        Err(_) => return Err(Stop::Idle),
        Ok(Ok(0)) => return Err(Stop::Closed),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Stop::Broken(e)),
    }
    let rest = async {
        rd.read_exact(hdr.get_mut(1..).unwrap_or_default()).await?;
        let Some(len) = length.parse(hdr) else { return Ok(Err(Stop::BadLength)) };
        if len > max {
            return Ok(Err(Stop::TooLarge(len)));
        }
        let mut body = vec![0u8; len];
        rd.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(Ok(body))
    };
    match tokio::time::timeout(frame, rest).await {
        Err(_) => Err(Stop::SlowFrame),
        Ok(Err(e)) => Err(Stop::Broken(e)),
        Ok(Ok(Err(stop))) => Err(stop),
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
    wire: Wire,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let client: Option<Arc<str>> = peer.identity.as_ref().and_then(|id| id.name()).map(Arc::from);
    let identity: Option<Arc<PeerIdentity>> = peer.identity.map(Arc::new);
    let (mut rd, mut wr) = tokio::io::split(sock);
    let (tx, mut rx) = mpsc::channel::<(Option<[u8; TPDU_LEN]>, Vec<u8>)>(limits.max_in_flight);
    let framing = wire.framing;
    let writer = tokio::spawn(async move {
        while let Some((tpdu, msg)) = rx.recv().await {
            let frame = match framing.encode(tpdu, &msg) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "ISO 8583 answer does not fit the frame");
                    continue;
                }
            };
            if wr.write_all(&frame).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let rate = NonZeroU32::new(limits.requests_per_second)
        .map(|r| RateLimiter::direct(Quota::per_second(r).allow_burst(NonZeroU32::new(limits.burst).unwrap_or(r))));
    loop {
        let frame = tokio::select! {
            r = next_frame(&mut rd, framing.length, limits.max_frame, limits.idle_timeout, limits.frame_timeout) => r,
            _ = shutdown.changed() => break,
        };
        let bytes = match frame {
            Ok(bytes) => bytes,
            Err(Stop::Closed) => break,
            Err(Stop::TooLarge(n)) => {
                tracing::warn!(length = n, "ISO 8583 frame over the limit; closing the connection");
                break;
            }
            Err(Stop::BadLength) => {
                tracing::warn!("ISO 8583 frame length is not 4 digits; closing the connection");
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
        let (dialect, mac_required) = (wire.dialect, wire.mac);
        let task = async move {
            let Some(body) = framing.split(&bytes) else {
                // No TPDU to answer with: nothing can be routed back; the connection lives on.
                tracing::info!(length = bytes.len(), "ISO 8583 frame shorter than its TPDU");
                drop(permit);
                return;
            };
            // On a MAC link the MAC is checked before anything else; the TAK that verified it
            // MACs the answer.
            let (answer, key) = match dialect.decode(body.message) {
                Ok(m) if over_rate => (p.throttled(&m), None),
                Ok(m) if mac_required => match p.check_mac(dialect, body.message, &m).await {
                    Ok(key) => (p.handle_on(m, identity.as_deref(), true).await, Some(key)),
                    Err(refused) => (refused, None),
                },
                Ok(m) => (p.handle(m, identity.as_deref()).await, None),
                Err(e) => {
                    tracing::info!(error = %e, "malformed ISO 8583 message");
                    let answer = match e.partial() {
                        Some(partial) => p.format_error(partial),
                        // Not even an MTI: nothing to answer to; the connection lives on.
                        None => Answer::Nothing,
                    };
                    (answer, None)
                }
            };
            if let Answer::Send(b) = answer {
                let out = if mac_required { p.seal_answer(dialect, &b, key).await } else { in_dialect(dialect, b) };
                if let Some(out) = out {
                    let _ = tx.send((body.tpdu, out)).await;
                }
            }
            drop(permit);
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
    }
    // The writer ends once every request task has sent its answer and dropped its sender.
    drop(tx);
    let _ = writer.await;
}

/// An answer (encoded by the payment flows in the ASCII dialect, as they also store it for repeats)
/// in the listener's dialect.
fn in_dialect(dialect: Dialect, ascii: Vec<u8>) -> Option<Vec<u8>> {
    if dialect == Dialect::Ascii {
        return Some(ascii);
    }
    match Message::decode(&ascii).and_then(|m| dialect.encode(&m)) {
        Ok(out) => Some(out),
        Err(e) => {
            tracing::error!(%dialect, error = %e, "ISO 8583 answer cannot be written in the listener's dialect");
            None
        }
    }
}
