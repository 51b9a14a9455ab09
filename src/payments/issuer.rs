//! Asking a card's issuer, the one way every flow does: the request as the issuer sees it, sent to
//! the issuer's host under its configured timeout, and what came of it.

use std::time::{Duration, Instant};

use super::{Payments, ResponseCode};
use crate::iso8583::{Message, Mti};
use crate::store::TxnRow;

/// What asking an issuer gave.
pub(super) enum IssuerAnswer {
    /// Its answer: the code it gave and, approved, its approval code (DE38).
    Answered { code: ResponseCode, auth_code: Option<String> },
    /// Nothing was sent (no host, or it could not be reached): the issuer knows nothing of it.
    Unavailable,
    /// Sent, but no answer (in time, or readable): the issuer may have acted on it.
    Unknown,
}

impl Payments {
    /// Asks issuer `issuer_id` with `msg`: through its host, under its configured timeout (and a
    /// second more as a guard should the host itself not keep it). Records in `txn` the time at the
    /// issuer and the code it answered.
    pub(super) async fn ask_issuer(&self, issuer_id: Option<&str>, msg: Message, txn: &mut TxnRow) -> IssuerAnswer {
        let Some(id) = issuer_id else { return IssuerAnswer::Unavailable };
        let Some(host) = self.hosts.get(id).cloned() else { return IssuerAnswer::Unavailable };
        let ms = self.config.issuers.iter().find(|i| i.id == id).map_or(3000, |i| i.timeout_ms);
        let asked = Instant::now();
        let answer = tokio::time::timeout(Duration::from_millis(ms + 1000), host.send(msg)).await;
        txn.issuer_ms = Some(asked.elapsed().as_millis() as i64);
        match answer {
            Ok(Ok(ans)) => {
                // An answer without a readable code is no approval.
                let code = ans.response_code().and_then(ResponseCode::parse).unwrap_or(ResponseCode::SYSTEM_ERROR);
                txn.issuer_response = Some(code.as_str().to_string());
                let auth_code = ans.authorization_code().map(Into::into);
                IssuerAnswer::Answered { code, auth_code }
            }
            Ok(Err(e)) if !e.outcome_unknown() => {
                tracing::warn!(issuer = id, error = %e, "issuer unavailable");
                IssuerAnswer::Unavailable
            }
            Ok(Err(e)) => {
                tracing::warn!(issuer = id, error = %e, "issuer did not answer");
                IssuerAnswer::Unknown
            }
            Err(_) => {
                tracing::warn!(issuer = id, "issuer did not answer in time");
                IssuerAnswer::Unknown
            }
        }
    }
}

/// The financial request to the issuer: the terminal's request (`req`: its identifying, amount and
/// entry fields) with the real PAN and the card's expiry.
pub(super) fn financial_request(req: &Message, pan: &str, expiry: Option<&str>) -> Message {
    let mut out = Message::new(Mti::FINANCIAL_REQUEST);
    for de in [3u8, 4, 7, 11, 12, 13, 22, 25, 32, 37, 41, 42, 49] {
        if let Some(v) = req.get(de) {
            let _ = out.set(de, v);
        }
    }
    let _ = out.set_pan(pan);
    if let Some(e) = expiry {
        let _ = out.set_expiry(e);
    }
    out
}
