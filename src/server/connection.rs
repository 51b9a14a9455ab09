//! One terminal connection: a reader that frames requests, a task per request, and a writer that
//! sends answers in the order they complete.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use super::Limits;
use crate::iso8583::Message;
use crate::iso8583::frame::{FrameError, read_frame, write_frame};
use crate::payments::{Answer, Payments};

pub async fn run(sock: TcpStream, payments: Arc<Payments>, limits: Limits, mut shutdown: watch::Receiver<bool>) {
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(limits.max_in_flight);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if write_frame(&mut wr, &msg).await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    loop {
        let frame = tokio::select! {
            r = tokio::time::timeout(limits.idle_timeout, read_frame(&mut rd, limits.max_frame)) => r,
            _ = shutdown.changed() => break,
        };
        let bytes = match frame {
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Ok(None)) => break,
            Ok(Err(FrameError::TooLarge(n))) => {
                tracing::warn!(length = n, "ISO 8583 frame over the limit; closing the connection");
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "ISO 8583 connection read failed");
                break;
            }
            Err(_) => {
                tracing::debug!("ISO 8583 connection idle; closing");
                break;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let (p, tx) = (payments.clone(), tx.clone());
        // Every line this request causes, down to the issuer call, carries its id.
        let span = tracing::info_span!("iso", id = %uuid::Uuid::now_v7().simple());
        let task = async move {
            let answer = match Message::decode(&bytes) {
                Ok(m) => p.handle(m).await,
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
