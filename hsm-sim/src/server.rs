//! `hsm-sim serve`: the HSM's operations over TCP ([`crate::wire`]), one task per connection, many
//! connections at once. A malformed request gets an error answer and the connection lives on; only an
//! oversize length prefix (after which the stream cannot be trusted) closes it.
//!
//! [`serve_tls`] is the same over TLS with required client certificates ([`crate::tls`]).

use std::sync::Arc;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::error::HsmError;
use crate::hsm::Hsm;
use crate::protocol::Request;
use crate::wire::{Frame, MAX_FRAME, Reply, read_frame, write_frame};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// [`serve`] over TLS: each connection's handshake on its own task; a client without a certificate
/// the acceptor's client CA signed is refused there, before any request is read.
pub async fn serve_tls(listener: TcpListener, hsm: Arc<Hsm>, tls: crate::tls::TlsAcceptor) -> std::io::Result<()> {
    loop {
        let (sock, peer) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let (hsm, tls) = (hsm.clone(), tls.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(sock)).await {
                Ok(Ok(stream)) => {
                    let _ = connection(stream, hsm).await;
                }
                Ok(Err(e)) => eprintln!("hsm-sim: TLS handshake with {peer} failed: {e}"),
                Err(_) => eprintln!("hsm-sim: TLS handshake with {peer} timed out"),
            }
        });
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S, hsm: Arc<Hsm>) -> std::io::Result<()> {
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

/// The payShield host-command front ([`crate::payshield`]): each message is a 2-byte big-endian length
/// and that many bytes; each answer the same. A zero length is answered like a message too short for a
/// command; the connection lives on after any answer.
pub async fn serve_payshield(listener: TcpListener, front: Arc<crate::payshield::Front>) -> std::io::Result<()> {
    loop {
        let (sock, _peer) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let front = front.clone();
        tokio::spawn(async move {
            let _ = payshield_connection(sock, front).await;
        });
    }
}

/// [`serve_payshield`] over TLS with required client certificates (as payShield's TLS host port): a
/// client without a certificate of the acceptor's client CA is refused at the handshake.
pub async fn serve_payshield_tls(
    listener: TcpListener,
    front: Arc<crate::payshield::Front>,
    tls: crate::tls::TlsAcceptor,
) -> std::io::Result<()> {
    loop {
        let (sock, peer) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let (front, tls) = (front.clone(), tls.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(sock)).await {
                Ok(Ok(stream)) => {
                    let _ = payshield_connection(stream, front).await;
                }
                Ok(Err(e)) => eprintln!("hsm-sim: TLS handshake with {peer} failed: {e}"),
                Err(_) => eprintln!("hsm-sim: TLS handshake with {peer} timed out"),
            }
        });
    }
}

async fn payshield_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    front: Arc<crate::payshield::Front>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut len = [0u8; 2];
        match sock.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        sock.read_exact(&mut msg).await?;
        let answer = front.handle(&msg);
        // An answer longer than the prefix can say cannot be sent; none of the commands makes one.
        let n = u16::try_from(answer.len()).map_err(std::io::Error::other)?;
        let mut out = Vec::with_capacity(2 + answer.len());
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&answer);
        sock.write_all(&out).await?;
        sock.flush().await?;
    }
}
