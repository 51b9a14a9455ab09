//! `hsm-sim serve`: the HSM's operations over TCP ([`crate::wire`]), one task per connection, many
//! connections at once. A malformed request gets an error answer and the connection lives on; only an
//! oversize length prefix (after which the stream cannot be trusted) closes it.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use crate::error::HsmError;
use crate::hsm::Hsm;
use crate::protocol::Request;
use crate::wire::{Frame, MAX_FRAME, Reply, read_frame, write_frame};

/// Accepts connections until the listener fails.
pub async fn serve(listener: TcpListener, hsm: Arc<Hsm>) -> std::io::Result<()> {
    loop {
        let (sock, _peer) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let hsm = hsm.clone();
        tokio::spawn(async move {
            let _ = connection(sock, hsm).await;
        });
    }
}

async fn connection(mut sock: TcpStream, hsm: Arc<Hsm>) -> std::io::Result<()> {
    loop {
        let reply: Reply = match read_frame(&mut sock).await? {
            Frame::Closed => return Ok(()),
            Frame::TooLarge(n) => {
                let e = HsmError::format(format!("frame of {n} bytes exceeds {MAX_FRAME}"));
                let body = serde_json::to_vec(&Reply::Error(e)).map_err(std::io::Error::other)?;
                write_frame(&mut sock, &body).await?;
                return Ok(());
            }
            Frame::Message(bytes) => match serde_json::from_slice::<Request>(&bytes) {
                Ok(req) => hsm.execute(req).into(),
                // Position only: serde's text could quote a field's value, and values may be secret.
                Err(e) => Reply::Error(HsmError::format(format!(
                    "malformed request ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))),
            },
        };
        let body = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
        write_frame(&mut sock, &body).await?;
    }
}
