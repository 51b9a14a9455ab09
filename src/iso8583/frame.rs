//! TCP framing of ISO 8583 messages (docs/iso8583.md "Connecting"): a 2-byte big-endian length, then
//! the message.
//!
//! Owns only the frame boundary: what is inside a frame is [`super::Message`]'s business. Used by
//! both ends of every ISO 8583 link (terminals → TSP, TSP → issuer host).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::message::MAX_MESSAGE_LEN;

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length is over the limit. On read the body has not been consumed, so the stream is
    /// out of step: the caller answers what it can and closes the connection.
    #[error("frame of {0} bytes is larger than allowed")]
    TooLarge(usize),
    /// The connection failed, or ended inside a frame.
    #[error("frame I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame of at most `max` bytes. `Ok(None)` is a clean end of stream between frames;
/// an end inside a frame is an `Io` error (`UnexpectedEof`). A zero-length frame is `Some(empty)`.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut hdr = [0u8; 2];
    let mut filled = 0;
    while filled < hdr.len() {
        let rest = hdr.get_mut(filled..).unwrap_or_default();
        let n = r.read(rest).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "stream ended inside a frame length").into())
            };
        }
        filled += n;
    }
    let len = usize::from(u16::from_be_bytes(hdr));
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// The frame for `msg`: its length prefix and the message, in one buffer (so that one write sends
/// it whole).
pub fn encode_frame(msg: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u16::try_from(msg.len()).map_err(|_| FrameError::TooLarge(msg.len()))?;
    debug_assert!(usize::from(len) <= MAX_MESSAGE_LEN);
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Ok(out)
}

/// Writes `msg` as one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> Result<(), FrameError> {
    let frame = encode_frame(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_boundaries() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"0800abc").await.unwrap();
        write_frame(&mut buf, b"").await.unwrap();
        assert_eq!(&buf[..2], &[0, 7]);
        let mut r = buf.as_slice();
        assert_eq!(read_frame(&mut r, 100).await.unwrap(), Some(b"0800abc".to_vec()));
        assert_eq!(read_frame(&mut r, 100).await.unwrap(), Some(Vec::new()));
        assert_eq!(read_frame(&mut r, 100).await.unwrap(), None);
    }

    #[tokio::test]
    async fn truncated_and_too_large() {
        let mut r: &[u8] = &[0];
        assert!(
            matches!(read_frame(&mut r, 100).await, Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        );
        let mut r: &[u8] = &[0, 5, b'a'];
        assert!(matches!(read_frame(&mut r, 100).await, Err(FrameError::Io(_))));
        let mut r: &[u8] = &[0x20, 0x01, b'a'];
        assert!(matches!(read_frame(&mut r, 8192).await, Err(FrameError::TooLarge(8193))));
        let mut r: &[u8] = &[0, 5, b'a', b'b', b'c', b'd', b'e'];
        assert_eq!(read_frame(&mut r, 5).await.unwrap(), Some(b"abcde".to_vec()));
    }

    #[test]
    fn encode_limits() {
        assert_eq!(encode_frame(&vec![b'0'; 65_535]).unwrap().len(), 65_537);
        assert!(matches!(encode_frame(&vec![b'0'; 65_536]), Err(FrameError::TooLarge(65_536))));
        assert_eq!(&encode_frame(&vec![b'0'; 258]).unwrap()[..2], &[1, 2]);
    }

    #[tokio::test]
    async fn split_reads() {
        // The length may arrive one byte at a time.
        let (mut a, mut b) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move { read_frame(&mut b, 100).await });
        a.write_all(&[0]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        a.write_all(&[2, b'h']).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        a.write_all(b"i").await.unwrap();
        assert_eq!(reader.await.unwrap().unwrap(), Some(b"hi".to_vec()));
    }
}
