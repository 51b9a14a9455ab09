//! The one way an answer to a terminal is built.
//!
//! A [`Reply`] echoes the request's fields that let a terminal match and check its answer (DE11 and
//! DE41 above all) and never card data: DE2, DE34, DE35, DE36 and DE45 are not echoed and cannot be
//! set, so no answer — sent, or stored for a repeat — carries a card number. A terminal that sent a
//! token or a PAN already has it.

use crate::iso8583::{CodecError, Message, Mti};

use super::ResponseCode;

/// Request fields an answer carries back: the terminal matches on DE11 + DE41 and checks the rest.
const ECHOED: [u8; 13] = [3, 4, 7, 11, 12, 13, 22, 23, 32, 37, 41, 42, 49];

/// Card data that no answer holds, whatever it was read from.
const CARD_DATA: [u8; 5] = [2, 34, 35, 36, 45];

/// An answer under construction (or read back from storage): a message without card data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply(Message);

impl Reply {
    /// The answer `mti` to `req` with `code`, echoing the fields that identify the request.
    pub fn to(req: &Message, mti: Mti, code: ResponseCode) -> Reply {
        let mut resp = Message::new(mti);
        for de in ECHOED {
            if let Some(v) = req.get(de) {
                // Echoing a field that was valid in the request cannot fail; if it ever did, the
                // answer simply lacks it.
                let _ = resp.set(de, v);
            }
        }
        let _ = resp.set_response_code(code.as_str());
        Reply(resp)
    }

    /// A stored answer read back for a repeat; card data, should an older version have stored
    /// any, is dropped.
    pub fn stored(bytes: &[u8]) -> Option<Reply> {
        let mut m = Message::decode(bytes).ok()?;
        for de in CARD_DATA {
            m.remove(de);
        }
        Some(Reply(m))
    }

    /// The `0810` to an echo test: DE7, DE11, DE32, DE41 and DE70 back.
    pub fn network(req: &Message, code: ResponseCode) -> Reply {
        let mut resp = Message::new(Mti::NETWORK_RESPONSE);
        for de in [7u8, 11, 32, 41, 70] {
            if let Some(v) = req.get(de) {
                let _ = resp.set(de, v);
            }
        }
        let _ = resp.set_response_code(code.as_str());
        Reply(resp)
    }

    pub fn response_code(&self) -> Option<&str> {
        self.0.response_code()
    }

    pub fn authorization_code(&self) -> Option<&str> {
        self.0.authorization_code()
    }

    /// DE38: the approval code.
    pub fn set_authorization_code(&mut self, code: &str) {
        let _ = self.0.set_authorization_code(code);
    }

    /// DE55: the issuer's chip data (ARPC and card status update).
    pub fn set_icc_data(&mut self, de55: &[u8]) {
        let _ = self.0.set_icc_data(de55);
    }

    /// DE48 of a key exchange's `0810`: `KB` + 3-digit length + the new key as a TR-31 key block
    /// under the zone key, then `KC` + 2-digit length + its check value.
    pub fn set_key_block(&mut self, block: &str, kcv: &str) {
        let _ = self.0.set_additional_data(&format!("KB{:03}{block}KC{:02}{kcv}", block.len(), kcv.len()));
    }

    /// DE48: `TK` + 2-digit length + the merchant token.
    pub fn set_merchant_token(&mut self, token: &str) {
        let _ = self.0.set_additional_data(&format!("TK{:02}{token}", token.len()));
    }

    pub fn message(&self) -> &Message {
        &self.0
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        self.0.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Message {
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        for (de, v) in [
            (2u8, "4111111111111111"),
            (3, "000000"),
            (4, "000000001000"),
            (11, "000042"),
            (35, "4111111111111111=30121010000000000000"),
            (41, "TERM0001"),
        ] {
            m.set(de, v).expect("a valid field");
        }
        m
    }

    #[test]
    fn an_answer_echoes_the_key_fields_and_no_card_data() {
        let r = Reply::to(&request(), Mti::FINANCIAL_RESPONSE, ResponseCode::FORMAT_ERROR);
        let m = r.message();
        assert_eq!((m.stan(), m.terminal_id(), m.response_code()), (Some("000042"), Some("TERM0001"), Some("30")));
        assert_eq!((m.get(2), m.get(35)), (None, None));
        assert_eq!(m.amount(), Some(1000));
    }

    #[test]
    fn a_stored_answer_with_a_card_number_is_read_back_without_it() {
        let mut old = request();
        old.set_mti(Mti::FINANCIAL_RESPONSE);
        let r = Reply::stored(&old.encode().expect("encodes")).expect("decodes");
        assert_eq!((r.message().get(2), r.message().get(35), r.message().stan()), (None, None, Some("000042")));
    }

    #[test]
    fn a_merchant_token_travels_in_de48() {
        let mut r = Reply::to(&request(), Mti::FINANCIAL_RESPONSE, ResponseCode::APPROVED);
        r.set_merchant_token("9900011234567890");
        assert_eq!(r.message().get(48), Some("TK169900011234567890"));
    }
}
