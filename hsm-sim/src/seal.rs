//! Sealing the key store: the local master key (LMK) at rest only under a key-encryption key (KEK)
//! that no one holds whole. At a key ceremony the KEK is made, used once to seal the LMK
//! (AES-256-GCM), split into N shares of which any M rebuild it (Shamir's scheme over GF(256), by the
//! `blahaj` crate), and forgotten; each custodian takes one share. Opening the store takes M shares:
//! fewer rebuild nothing (the scheme reveals nothing below the threshold), and a wrong rebuild does
//! not open the seal (its tag fails).
//!
//! A share is text: `hsm-sim-share/1:<set>:<M>of<N>:<hex>`, where `set` names the ceremony (shares of
//! another ceremony are refused by name) and the hex is the share's x coordinate and its 32 y bytes.

use blahaj::{Share, Sharks};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use std::path::{Path, PathBuf};

use crate::crypto::aead::GcmKey;
use crate::error::HsmError;
use crate::secret::Bytes;

const SHARE_PREFIX: &str = "hsm-sim-share/1";
const LMK_AAD: &[u8] = b"hsm-sim/keystore/2/lmk";

/// The sealed LMK and how to open it, as the key store file keeps it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Seal {
    /// The ceremony's id.
    pub set: String,
    /// Shares needed (M) and made (N).
    pub threshold: u8,
    pub custodians: u8,
    /// The AES-256-GCM nonce, and the LMK sealed under the KEK (ciphertext ‖ 16-byte tag).
    pub nonce: Bytes,
    pub sealed_lmk: Bytes,
}

/// A ceremony's outcome: the seal for the file and one share per custodian.
pub struct Ceremony {
    pub seal: Seal,
    pub shares: Vec<Zeroizing<String>>,
}

/// Writes one custodian's share to a new file only its owner may read (0600), refusing to overwrite.
pub fn write_share(path: &Path, share: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(share.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// The custodian shares a starting process was given: one per file of `files` (trimmed), then those
/// in the environment variable `env` (separated by commas or white space). A file that cannot be read
/// is returned with its error.
pub fn given_shares(files: &[PathBuf], env: &str) -> Result<Vec<Zeroizing<String>>, (PathBuf, std::io::Error)> {
    let mut out = Vec::new();
    for f in files {
        let text = Zeroizing::new(std::fs::read_to_string(f).map_err(|e| (f.clone(), e))?);
        out.push(Zeroizing::new(text.trim().to_string()));
    }
    if let Ok(value) = std::env::var(env) {
        let value = Zeroizing::new(value);
        let parts = value.split(|c: char| c.is_whitespace() || c == ',').filter(|p| !p.is_empty());
        out.extend(parts.map(|p| Zeroizing::new(p.to_string())));
    }
    Ok(out)
}

/// Seals `lmk` under a fresh KEK split M-of-N. `threshold` must be 2..=`custodians`, `custodians`
/// at most 255.
pub fn ceremony(lmk: &[u8], threshold: u8, custodians: u8) -> Result<Ceremony, HsmError> {
    if threshold < 2 || threshold > custodians {
        return Err(HsmError::format("the threshold must be at least 2 and at most the number of custodians"));
    }
    if custodians == u8::MAX {
        return Err(HsmError::format("at most 254 custodians"));
    }
    let kek = random::<32>()?;
    let nonce = random::<12>()?;
    let set = hex::encode(random::<6>()?);
    let mut buf = Zeroizing::new(lmk.to_vec());
    let tag = GcmKey::new(kek.as_slice())?.seal(nonce.as_slice(), LMK_AAD, &mut buf)?;
    let mut sealed_lmk = buf.to_vec();
    sealed_lmk.extend_from_slice(&tag);
    let shares = Sharks(threshold)
        .dealer(kek.as_slice())
        .take(usize::from(custodians))
        .map(|s| {
            let bytes = Zeroizing::new(Vec::from(&s));
            Zeroizing::new(format!("{SHARE_PREFIX}:{set}:{threshold}of{custodians}:{}", hex::encode(&*bytes)))
        })
        .collect();
    let seal = Seal { set, threshold, custodians, nonce: Bytes(nonce.to_vec()), sealed_lmk: Bytes(sealed_lmk) };
    Ok(Ceremony { seal, shares })
}

/// What a set of shares opens.
pub enum Opened {
    /// The LMK.
    Lmk(Zeroizing<Vec<u8>>),
    /// Fewer distinct shares than the threshold: `have` of `need`.
    NeedMore { have: usize, need: usize },
}

/// Checks one share's text against `seal` and gives its bytes (x ‖ y).
pub fn parse_share(seal: &Seal, text: &str) -> Result<Zeroizing<Vec<u8>>, HsmError> {
    let bad = |m: &str| HsmError::format(format!("not a share of this key store: {m}"));
    let mut parts = text.trim().splitn(4, ':');
    let (Some(prefix), Some(set), Some(shape), Some(hex_part)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the form is hsm-sim-share/1:<set>:<M>of<N>:<hex>"));
    };
    if prefix != SHARE_PREFIX {
        return Err(bad("unknown share format"));
    }
    if set != seal.set || shape != format!("{}of{}", seal.threshold, seal.custodians) {
        return Err(bad("it belongs to another ceremony"));
    }
    let bytes = Zeroizing::new(hex::decode(hex_part).map_err(|_| bad("the share is not hex"))?);
    if bytes.len() != 33 || bytes[0] == 0 {
        return Err(bad("a share is 33 bytes with a non-zero index"));
    }
    Ok(bytes)
}

/// Opens `seal` with the shares given (each checked by [`parse_share`]; repeats count once).
pub fn open(seal: &Seal, shares: &[Zeroizing<Vec<u8>>]) -> Result<Opened, HsmError> {
    let mut parsed: Vec<Share> = Vec::with_capacity(shares.len());
    for s in shares {
        let share = Share::try_from(s.as_slice()).map_err(|e| HsmError::format(format!("share: {e}")))?;
        if !parsed.iter().any(|p| p.x == share.x) {
            parsed.push(share);
        }
    }
    let need = usize::from(seal.threshold);
    if parsed.len() < need {
        return Ok(Opened::NeedMore { have: parsed.len(), need });
    }
    let kek = Zeroizing::new(
        Sharks(seal.threshold).recover(parsed.iter()).map_err(|e| HsmError::format(format!("shares: {e}")))?,
    );
    let sealed = &seal.sealed_lmk.0;
    let split = sealed.len().checked_sub(16).ok_or_else(|| HsmError::format("the sealed master key is too short"))?;
    let (ciphertext, tag) = sealed.split_at(split);
    let mut lmk = Zeroizing::new(ciphertext.to_vec());
    GcmKey::new(kek.as_slice())?
        .open(&seal.nonce.0, LMK_AAD, &mut lmk, tag)
        .map_err(|_| HsmError::auth("the shares do not open this key store"))?;
    Ok(Opened::Lmk(lmk))
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, HsmError> {
    use ring::rand::SecureRandom;
    let mut b = Zeroizing::new([0u8; N]);
    ring::rand::SystemRandom::new().fill(b.as_mut_slice()).map_err(|_| HsmError::internal("random source failed"))?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares_of(c: &Ceremony, pick: &[usize]) -> Vec<Zeroizing<Vec<u8>>> {
        pick.iter().map(|i| parse_share(&c.seal, &c.shares[*i]).unwrap()).collect()
    }

    #[test]
    fn any_m_of_n_open_the_seal_and_m_minus_1_do_not() {
        let lmk = [0x5Au8; 32];
        let c = ceremony(&lmk, 3, 5).unwrap();
        assert_eq!(c.shares.len(), 5);
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            match open(&c.seal, &shares_of(&c, &pick)).unwrap() {
                Opened::Lmk(k) => assert_eq!(k.as_slice(), lmk),
                Opened::NeedMore { .. } => panic!("three shares suffice"),
            }
        }
        assert!(matches!(open(&c.seal, &shares_of(&c, &[0, 4])).unwrap(), Opened::NeedMore { have: 2, need: 3 }));
        // The same share twice is still one share.
        assert!(matches!(open(&c.seal, &shares_of(&c, &[1, 1, 2])).unwrap(), Opened::NeedMore { have: 2, need: 3 }));
    }

    #[test]
    fn shares_of_another_ceremony_or_altered_ones_do_not_open_it() {
        let lmk = [7u8; 32];
        let a = ceremony(&lmk, 2, 3).unwrap();
        let b = ceremony(&lmk, 2, 3).unwrap();
        assert!(parse_share(&a.seal, &b.shares[0]).is_err(), "another ceremony's share is refused by name");
        // A share altered in one byte rebuilds a wrong KEK, which the seal's tag refuses.
        let mut altered = parse_share(&a.seal, &a.shares[0]).unwrap();
        altered[5] ^= 1;
        let shares = vec![altered, parse_share(&a.seal, &a.shares[1]).unwrap()];
        assert!(open(&a.seal, &shares).is_err());
        assert!(ceremony(&lmk, 1, 3).is_err() && ceremony(&lmk, 4, 3).is_err());
    }
}
