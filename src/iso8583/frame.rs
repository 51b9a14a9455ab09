//! TCP framing of ISO 8583 messages (docs/iso8583.md "Framing"): a length, an optional TPDU, then
//! the message.
//!
//! Owns only the frame boundary: what is inside a frame is [`super::Message`]'s business. Used by
//! both ends of every ISO 8583 link (terminals → TSP, TSP → issuer host). [`read_frame`] and
//! [`encode_frame`] are the default framing (a 2-byte big-endian length); [`Framing`] describes the
//! others a listener may be configured with: a 4-byte ASCII decimal length, and a 5-byte TPDU before
//! the message that the answer echoes with its source and destination swapped.

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

/// How a message's length travels before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LengthPrefix {
    /// 2 bytes, big-endian binary (up to 65,535).
    #[default]
    Binary2,
    /// 4 ASCII decimal digits (up to 9,999).
    Ascii4,
}

impl LengthPrefix {
    /// The name used in the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            LengthPrefix::Binary2 => "binary2",
            LengthPrefix::Ascii4 => "ascii4",
        }
    }

    /// Bytes of the prefix.
    pub const fn width(self) -> usize {
        match self {
            LengthPrefix::Binary2 => 2,
            LengthPrefix::Ascii4 => 4,
        }
    }

    /// The largest length the prefix can carry.
    pub const fn max(self) -> usize {
        match self {
            LengthPrefix::Binary2 => 65_535,
            LengthPrefix::Ascii4 => 9_999,
        }
    }

    /// The length a complete prefix holds; `None` for an ASCII prefix that is not 4 digits.
    pub fn parse(self, prefix: &[u8]) -> Option<usize> {
        match (self, prefix) {
            (LengthPrefix::Binary2, &[hi, lo]) => Some(usize::from(u16::from_be_bytes([hi, lo]))),
            (LengthPrefix::Ascii4, digits) if digits.len() == 4 => {
                digits.iter().try_fold(0usize, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + usize::from(d - b'0')))
            }
            _ => None,
        }
    }

    /// Appends the prefix of `len` (which the caller has checked against [`LengthPrefix::max`]).
    fn write(self, len: usize, out: &mut Vec<u8>) {
        match self {
            LengthPrefix::Binary2 => out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes()),
            LengthPrefix::Ascii4 => out.extend_from_slice(format!("{:04}", len.min(9_999)).as_bytes()),
        }
    }
}

/// The bytes of a TPDU: an ID byte (`60` on terminal networks), a 2-byte destination and a 2-byte
/// source address.
pub const TPDU_LEN: usize = 5;

/// How messages are framed on one link: the length prefix (which counts the TPDU and the message),
/// and whether a TPDU comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Framing {
    pub length: LengthPrefix,
    pub tpdu: bool,
}

/// A frame's body split into its TPDU (when the framing has one) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body<'a> {
    pub tpdu: Option<[u8; TPDU_LEN]>,
    pub message: &'a [u8],
}

impl Framing {
    /// Splits a frame's body; `None` when the framing has a TPDU and the body is shorter than one.
    pub fn split(self, body: &[u8]) -> Option<Body<'_>> {
        if !self.tpdu {
            return Some(Body { tpdu: None, message: body });
        }
        let (head, message) = body.split_at_checked(TPDU_LEN)?;
        let mut tpdu = [0u8; TPDU_LEN];
        tpdu.copy_from_slice(head);
        Some(Body { tpdu: Some(tpdu), message })
    }

    /// The frame of an answer to a request that came with `tpdu`: the same TPDU with its
    /// destination and source swapped (so it goes back where it came from), then `msg`.
    pub fn encode(self, tpdu: Option<[u8; TPDU_LEN]>, msg: &[u8]) -> Result<Vec<u8>, FrameError> {
        let head = match (self.tpdu, tpdu) {
            (true, Some(t)) => Some(swap_tpdu(t)),
            // A TPDU the request did not bring: an answer has none to echo; a request of ours
            // (never on a TPDU link today) would need one.
            (true, None) | (false, _) => None,
        };
        let len = msg.len() + head.map_or(0, |_| TPDU_LEN);
        if len > self.length.max() {
            return Err(FrameError::TooLarge(len));
        }
        let mut out = Vec::with_capacity(len + self.length.width());
        self.length.write(len, &mut out);
        if let Some(h) = head {
            out.extend_from_slice(&h);
        }
        out.extend_from_slice(msg);
        Ok(out)
    }
}

/// `tpdu` with its destination (bytes 2–3) and source (bytes 4–5) exchanged.
pub const fn swap_tpdu(tpdu: [u8; TPDU_LEN]) -> [u8; TPDU_LEN] {
    let [id, d1, d2, s1, s2] = tpdu;
    [id, s1, s2, d1, d2]
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
    fn framings() {
        // A 4-byte ASCII length counts the TPDU and the message.
        let f = Framing { length: LengthPrefix::Ascii4, tpdu: true };
        let out = f.encode(Some([0x60, 0x00, 0x01, 0x80, 0x02]), b"0810").unwrap();
        assert_eq!(out, b"0009\x60\x80\x02\x00\x010810");
        let body = f.split(b"\x60\x00\x01\x80\x020800").unwrap();
        assert_eq!(body, Body { tpdu: Some([0x60, 0x00, 0x01, 0x80, 0x02]), message: b"0800" });
        assert_eq!(f.split(b"\x60\x00"), None);
        assert_eq!(LengthPrefix::Ascii4.parse(b"0123"), Some(123));
        assert_eq!(LengthPrefix::Ascii4.parse(b"01 3"), None);
        assert_eq!(LengthPrefix::Binary2.parse(&[1, 2]), Some(258));
        assert!(matches!(f.encode(None, &[b'0'; 10_000]), Err(FrameError::TooLarge(10_000))));
        let plain = Framing::default();
        assert_eq!(plain.encode(Some([0x60, 0, 1, 0, 2]), b"08").unwrap(), b"\x00\x0208");
        assert_eq!(plain.split(b"0800").unwrap().message, b"0800");
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
