//! Where a message's MAC sits and which bytes it covers (docs/iso8583.md "MAC").
//!
//! The MAC is DE64, or DE128 when the message has a secondary bitmap (then DE64 must be absent). Being
//! the highest field present, it is always the last thing in the message, so the MAC covers the
//! whole message as its dialect encodes it — MTI, bitmaps and every field — up to, not including,
//! the MAC field: the bytes of the frame without the length prefix, the TPDU and the MAC's last 16
//! characters (`ascii`) or 8 bytes (`binary`, `bcd`). Computing the MAC itself is the HSM's job.

use super::{CodecError, Dialect, Message};

/// The MAC's length in bytes (DE64 and DE128 are `b 64`).
pub const MAC_LEN: usize = 8;

/// Why a received message's MAC cannot be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("the message carries no MAC (DE{0})")]
    Missing(u8),
    #[error("a MAC in DE{0} where it belongs in DE{1}")]
    WrongField(u8, u8),
    #[error("the encoded message does not end with its MAC")]
    Layout,
}

/// The field a MAC of `msg` goes in: DE128 with a secondary bitmap, else DE64.
pub fn mac_field(msg: &Message) -> u8 {
    if msg.fields().any(|(de, _)| de > 64 && de != 128) { 128 } else { 64 }
}

/// How many bytes the MAC field takes at the end of a message in `dialect`.
pub fn width(dialect: Dialect) -> usize {
    if dialect == Dialect::Ascii { 2 * MAC_LEN } else { MAC_LEN }
}

/// Of a message as received (`raw`, the bytes `dialect` decoded into `msg`): the bytes the MAC
/// covers and the MAC it carries.
pub fn received<'a>(dialect: Dialect, raw: &'a [u8], msg: &Message) -> Result<(&'a [u8], [u8; MAC_LEN]), MacError> {
    let de = mac_field(msg);
    let other = if de == 64 { 128 } else { 64 };
    if msg.contains(other) {
        return Err(MacError::WrongField(other, de));
    }
    let value = msg.get(de).ok_or(MacError::Missing(de))?;
    let mut mac = [0u8; MAC_LEN];
    hex::decode_to_slice(value, &mut mac).map_err(|_| MacError::Layout)?;
    let n = width(dialect);
    let cut = raw.len().checked_sub(n).ok_or(MacError::Layout)?;
    let (covered, tail) = raw.split_at(cut);
    let same = if dialect == Dialect::Ascii { tail.eq_ignore_ascii_case(value.as_bytes()) } else { tail == mac };
    if !same {
        return Err(MacError::Layout);
    }
    Ok((covered, mac))
}

/// `msg` encoded in `dialect` with a MAC field of zeros in the right place (any MAC it had is
/// replaced): the MAC is computed over [`covered`] of it and written in with [`seal`].
pub fn prepare(dialect: Dialect, msg: &mut Message) -> Result<Vec<u8>, CodecError> {
    msg.remove(64);
    msg.remove(128);
    let de = mac_field(msg);
    msg.set(de, "0000000000000000")?;
    dialect.encode(msg)
}

/// The bytes of an encoded message the MAC covers: all but the MAC field.
pub fn covered(dialect: Dialect, encoded: &[u8]) -> &[u8] {
    encoded.get(..encoded.len().saturating_sub(width(dialect))).unwrap_or_default()
}

/// Writes `mac` into the MAC field at the end of a message [`prepare`] encoded.
pub fn seal(dialect: Dialect, encoded: &mut [u8], mac: &[u8; MAC_LEN]) {
    let at = encoded.len().saturating_sub(width(dialect));
    let tail = encoded.get_mut(at..).unwrap_or_default();
    if dialect == Dialect::Ascii {
        let text = hex::encode_upper(mac);
        tail.copy_from_slice(text.as_bytes().get(..tail.len()).unwrap_or_default());
    } else if tail.len() == MAC_LEN {
        tail.copy_from_slice(mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso8583::Mti;

    fn echo() -> Message {
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        m.set_transmission_date_time("0612143015").unwrap().set_stan("000001").unwrap();
        m
    }

    #[test]
    fn the_mac_goes_last_in_de64_or_de128() {
        let mut m = echo();
        assert_eq!(mac_field(&m), 64);
        m.set_network_management_code("301").unwrap();
        assert_eq!(mac_field(&m), 128);
        for dialect in Dialect::ALL {
            let mut m = m.clone();
            let mut enc = prepare(dialect, &mut m).unwrap();
            assert!(m.contains(128) && !m.contains(64));
            let mac = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
            let cover = covered(dialect, &enc).to_vec();
            seal(dialect, &mut enc, &mac);
            let back = dialect.decode(&enc).unwrap();
            assert_eq!(back.get(128), Some("A1B2C3D4E5F60718"));
            let (c, got) = received(dialect, &enc, &back).unwrap();
            assert_eq!((c, got), (&cover[..], mac));
        }
    }

    proptest::proptest! {
        /// Whatever bytes arrive, finding the MAC is total: a layout error, never a panic; and
        /// what it finds in a message it sealed is what it sealed.
        #[test]
        fn finding_a_mac_is_total(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160)) {
            for dialect in Dialect::ALL {
                if let Ok(m) = dialect.decode(&bytes) {
                    let _ = received(dialect, &bytes, &m);
                    let mut m2 = m.clone();
                    if let Ok(mut enc) = prepare(dialect, &mut m2) {
                        seal(dialect, &mut enc, &[7; MAC_LEN]);
                        let back = dialect.decode(&enc).unwrap();
                        let (covered, tag) = received(dialect, &enc, &back).unwrap();
                        proptest::prop_assert_eq!(tag, [7; MAC_LEN]);
                        proptest::prop_assert_eq!(covered.len() + width(dialect), enc.len());
                    }
                }
            }
        }
    }

    #[test]
    fn missing_and_misplaced_macs_are_told_apart() {
        let m = echo();
        let enc = m.encode().unwrap();
        assert_eq!(received(Dialect::Ascii, &enc, &m), Err(MacError::Missing(64)));
        let mut m = echo();
        m.set_network_management_code("301").unwrap();
        m.set(64, "0000000000000000").unwrap();
        let enc = m.encode().unwrap();
        assert_eq!(received(Dialect::Ascii, &enc, &m), Err(MacError::WrongField(64, 128)));
    }
}
