//! The chip cryptograms of a payment: the ARQC in the request's DE55 verified in the HSM (the CVN 18
//! layout of docs/iso8583.md "Chip cryptogram (CVN 18)"), and the ARPC (method 2) for the answer.
//! The card is the token: a token's chip keys derive from its issuer's IMK (the platform's for
//! stored value) with the token number as PAN.

use hsm_sim::{KeyRef, Request as HsmRequest, Response};

use super::ResponseCode;
use super::request::Request;
use crate::hsm::Hsm;
use crate::iso8583::tlv::{self, Tag};
use crate::store::{InstrumentRow, TokenRow};

/// The DE55 tags the CVN 18 ARQC covers, in order (docs/iso8583.md "Chip cryptogram (CVN 18)").
const ARQC_TAGS: [u32; 11] = [0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37, 0x82, 0x9F36, 0x9F10];

/// Card status update for tag 91 (Visa): byte 2 bit 8 "issuer approves".
const CSU_APPROVED: [u8; 4] = [0x00, 0x80, 0x00, 0x00];
const CSU_DECLINED: [u8; 4] = [0x00, 0x00, 0x00, 0x00];

/// A verified ARQC, kept to compute the ARPC once the outcome is known.
pub(super) struct Chip {
    atc: Vec<u8>,
    arqc: Vec<u8>,
    psn: String,
    token: String,
    imk: String,
}

/// The HSM label of the IMK a token's chip keys derive from: its card issuer's, or the platform's.
fn imk_label(i: &InstrumentRow) -> String {
    match i.issuer_id.as_deref() {
        Some(id) if i.kind.authorized_by_issuer() => crate::issuer::imk_label(id),
        _ => crate::issuer::PLATFORM_IMK_LABEL.to_string(),
    }
}

impl Chip {
    /// Verifies the ARQC in `req`'s DE55 for token `t` of instrument `i`: `Err(30)` when the chip
    /// data is incomplete, `Err(88)` when the cryptogram is wrong.
    pub async fn verify(
        hsm: &Hsm,
        req: &Request<'_>,
        t: &TokenRow,
        i: &InstrumentRow,
    ) -> crate::Result<Result<Chip, ResponseCode>> {
        let Some(de55) = req.icc.as_deref() else { return Ok(Err(ResponseCode::FORMAT_ERROR)) };
        let mut data = Vec::with_capacity(64);
        for tag in ARQC_TAGS {
            match tlv::find(de55, Tag(tag)) {
                Ok(Some(v)) => data.extend_from_slice(v),
                _ => return Ok(Err(ResponseCode::FORMAT_ERROR)),
            }
        }
        let (Ok(Some(arqc)), Ok(Some(atc))) = (tlv::find(de55, Tag::APPLICATION_CRYPTOGRAM), tlv::find(de55, Tag::ATC))
        else {
            return Ok(Err(ResponseCode::FORMAT_ERROR));
        };
        // DE23 carries the PSN as 3 digits; tokens are issued with PSN 00.
        let psn = req.psn.and_then(|s| s.get(s.len().saturating_sub(2)..)).unwrap_or("00").to_string();
        let imk = imk_label(i);
        let verify = HsmRequest::EmvVerifyArqc {
            imk: KeyRef::stored(imk.clone()),
            pan: t.token.clone(),
            psn: psn.clone(),
            atc: atc.to_vec().into(),
            data: data.into(),
            arqc: arqc.to_vec().into(),
        };
        match hsm.call(verify).await {
            Ok(Response::Valid { valid: true }) => {
                Ok(Ok(Chip { atc: atc.to_vec(), arqc: arqc.to_vec(), psn, token: t.token.clone(), imk }))
            }
            Ok(_) => Ok(Err(ResponseCode::CRYPTOGRAM_FAILED)),
            Err(e) if e.kind == hsm_sim::ErrorKind::Format => Ok(Err(ResponseCode::FORMAT_ERROR)),
            Err(e) => Err(e.into()),
        }
    }

    /// DE55 of the answer with `code`: tag 91 = ARPC (method 2) ‖ CSU.
    pub async fn arpc(&self, hsm: &Hsm, code: ResponseCode) -> crate::Result<Option<Vec<u8>>> {
        let csu = if code.is_approved() { CSU_APPROVED } else { CSU_DECLINED };
        let req = HsmRequest::EmvCvn18Arpc {
            imk: KeyRef::stored(self.imk.clone()),
            pan: self.token.clone(),
            psn: self.psn.clone(),
            atc: self.atc.clone().into(),
            arqc: self.arqc.clone().into(),
            csu: csu.to_vec().into(),
            pad: Vec::new().into(),
        };
        let Response::Cryptogram { value } = hsm.call(req).await? else { return Ok(None) };
        let mut iad = value.0;
        iad.extend_from_slice(&csu);
        let mut out = Vec::with_capacity(16);
        if tlv::write(&mut out, Tag::ISSUER_AUTHENTICATION_DATA, &iad).is_err() {
            return Ok(None);
        }
        Ok(Some(out))
    }
}
