//! `0800` network management → `0810` (echo test, DE70 `301`).

use crate::iso8583::{Message, Mti};

use super::ResponseCode;

pub fn echo(req: &Message) -> Message {
    let mut resp = Message::new(Mti::NETWORK_RESPONSE);
    for de in [7u8, 11, 32, 41, 70] {
        if let Some(v) = req.get(de) {
            let _ = resp.set(de, v);
        }
    }
    let code =
        if req.network_management_code().is_some() { ResponseCode::APPROVED } else { ResponseCode::FORMAT_ERROR };
    let _ = resp.set_response_code(code.as_str());
    resp
}
