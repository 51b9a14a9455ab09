//! MAC keys of ISO 8583 links (docs/iso8583.md "MAC", "Key exchange"): they live outside the HSM only
//! as TR-31 key blocks under the HSM's link KBPK ([`LINK_KBPK`]), and every MAC is computed and
//! checked inside the HSM.

use hsm_sim::{HsmError, KeyRef, KeyUsage, Request, Response, SecretBytes};

use super::{Hsm, unexpected};

/// The stored key block protection key every link key block is wrapped under.
pub const LINK_KBPK: &str = "tsp.iso.kbpk";

/// A working key made by [`Hsm::new_working_key`]: the block to store, the block to send, the KCV.
pub struct WorkingKey {
    pub block: String,
    pub zone_block: String,
    pub kcv: String,
}

fn kbpk() -> KeyRef {
    KeyRef::stored(LINK_KBPK)
}

impl Hsm {
    /// Makes sure the link KBPK exists.
    pub async fn ensure_link_kbpk(&self) -> Result<(), HsmError> {
        self.ensure_key(LINK_KBPK, KeyUsage::Kbpk).await.map(|_| ())
    }

    /// A clear key (configuration: development and tests) as a link key block of TR-31 `usage`
    /// (`M3`, `M6`, `K1`) and `algorithm` (`T`, `A`), with its check value.
    pub async fn link_key_from_clear(
        &self,
        usage: &str,
        algorithm: &str,
        key: &[u8],
    ) -> Result<(String, String), HsmError> {
        let req = Request::KeyBlockFromClear {
            kbpk: kbpk(),
            usage: usage.into(),
            algorithm: algorithm.into(),
            key: SecretBytes::from_slice(key),
        };
        match self.call(req).await? {
            Response::LinkKey { block, kcv } => Ok((block, kcv)),
            r => Err(unexpected(r)),
        }
    }

    /// The 8-byte MAC of `data` under the link MAC key `block`.
    pub async fn link_mac(&self, block: &str, data: &[u8]) -> Result<[u8; 8], HsmError> {
        let req = Request::BlockMacGenerate { kbpk: kbpk(), block: block.into(), data: SecretBytes::from_slice(data) };
        match self.call(req).await? {
            Response::Mac { mac } => mac.0.try_into().map_err(|_| HsmError::internal("a MAC of another length")),
            r => Err(unexpected(r)),
        }
    }

    /// Whether `mac` is the MAC of `data` under the link MAC key `block` (compared in the HSM, in
    /// constant time).
    pub async fn link_mac_verify(&self, block: &str, data: &[u8], mac: &[u8]) -> Result<bool, HsmError> {
        let req = Request::BlockMacVerify {
            kbpk: kbpk(),
            block: block.into(),
            data: SecretBytes::from_slice(data),
            mac: mac.into(),
        };
        match self.call(req).await? {
            Response::Valid { valid } => Ok(valid),
            r => Err(unexpected(r)),
        }
    }

    /// A fresh working key of TR-31 `usage`/`algorithm`, as a block to store and a block under the
    /// zone key `zone_block` to send.
    pub async fn new_working_key(
        &self,
        zone_block: &str,
        usage: &str,
        algorithm: &str,
    ) -> Result<WorkingKey, HsmError> {
        let req = Request::NewWorkingKey {
            kbpk: kbpk(),
            zone_block: zone_block.into(),
            usage: usage.into(),
            algorithm: algorithm.into(),
        };
        match self.call(req).await? {
            Response::WorkingKey { block, zone_block, kcv } => Ok(WorkingKey { block, zone_block, kcv }),
            r => Err(unexpected(r)),
        }
    }
}
