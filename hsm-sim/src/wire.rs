//! The TCP protocol of `hsm-sim serve`: each message is a 4-byte big-endian length and that many
//! bytes of JSON. A request is a [`Request`]; the answer is a [`Reply`]: `{"ok": <Response>}` or
//! `{"error": {"kind": "…", "message": "…"}}`. Requests on one connection are answered in order.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::HsmError;
use crate::protocol::Response;

/// The largest message either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(Response),
    Error(HsmError),
}

impl From<Result<Response, HsmError>> for Reply {
    fn from(r: Result<Response, HsmError>) -> Self {
        match r {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(e),
        }
    }
}

impl From<Reply> for Result<Response, HsmError> {
    fn from(r: Reply) -> Self {
        match r {
            Reply::Ok(v) => Ok(v),
            Reply::Error(e) => Err(e),
        }
    }
}

/// What reading a frame found.
pub enum Frame {
    Message(Vec<u8>),
    /// The peer closed the connection between messages.
    Closed,
    /// The length prefix exceeds [`MAX_FRAME`]; the stream cannot be resynchronised.
    TooLarge(usize),
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Frame::Closed),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Ok(Frame::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Frame::Message(buf))
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    w.write_all(&out).await?;
    w.flush().await
}
