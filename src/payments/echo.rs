//! `0800` network management → `0810` (echo test, DE70 `301`).

use crate::iso8583::Message;

use super::{Reply, ResponseCode};

pub fn echo(req: &Message) -> Reply {
    let code =
        if req.network_management_code().is_some() { ResponseCode::APPROVED } else { ResponseCode::FORMAT_ERROR };
    Reply::network(req, code)
}
