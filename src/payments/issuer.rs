//! Asking a card's issuer, the one way every flow does: the request as the issuer sees it, sent to
//! the issuer's host under its configured timeout, and what came of it.

use std::time::{Duration, Instant};

use super::{Payments, ResponseCode};
use crate::instruments::assurance::Assurance;
use crate::iso8583::{Message, Mti, private};
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

/// What one exchange with an issuer's host gave.
pub(super) enum Exchange {
    Answer(Box<Message>),
    /// Nothing was sent: the issuer knows nothing of it.
    Unavailable,
    /// Sent, but no answer: the issuer may have acted on it.
    Unknown,
}

impl Payments {
    /// Sends `msg` to issuer `issuer_id` through its host, under its configured timeout (and a
    /// second more as a guard should the host itself not keep it).
    pub(super) async fn exchange(&self, issuer_id: Option<&str>, msg: Message) -> Exchange {
        let Some(id) = issuer_id else { return Exchange::Unavailable };
        let Some(host) = self.hosts.get(id).cloned() else { return Exchange::Unavailable };
        let ms = self.config.issuers.iter().find(|i| i.id == id).map_or(3000, |i| i.timeout_ms);
        match tokio::time::timeout(Duration::from_millis(ms + 1000), host.send(msg)).await {
            Ok(Ok(ans)) => Exchange::Answer(Box::new(ans)),
            Ok(Err(e)) if !e.outcome_unknown() => {
                tracing::warn!(issuer = id, error = %e, "issuer unavailable");
                Exchange::Unavailable
            }
            Ok(Err(e)) => {
                tracing::warn!(issuer = id, error = %e, "issuer did not answer");
                Exchange::Unknown
            }
            Err(_) => {
                tracing::warn!(issuer = id, "issuer did not answer in time");
                Exchange::Unknown
            }
        }
    }

    /// Asks issuer `issuer_id` with `msg` ([`Payments::exchange`]). Records in `txn` the time at the
    /// issuer and the code it answered.
    pub(super) async fn ask_issuer(&self, issuer_id: Option<&str>, msg: Message, txn: &mut TxnRow) -> IssuerAnswer {
        let asked = Instant::now();
        let answer = self.exchange(issuer_id, msg).await;
        txn.issuer_ms = Some(asked.elapsed().as_millis() as i64);
        match answer {
            Exchange::Answer(ans) => {
                // An answer without a readable code is no approval.
                let code = ans.response_code().and_then(ResponseCode::parse).unwrap_or(ResponseCode::SYSTEM_ERROR);
                txn.issuer_response = Some(code.as_str().to_string());
                let auth_code = ans.authorization_code().map(Into::into);
                IssuerAnswer::Answered { code, auth_code }
            }
            Exchange::Unavailable => IssuerAnswer::Unavailable,
            Exchange::Unknown => IssuerAnswer::Unknown,
        }
    }
}

/// The financial request to the issuer: the terminal's request (`req`: its identifying, amount and
/// entry fields) with the real PAN, the card's expiry and, in DE48 tag `TA`, how the cardholder was
/// verified when the card was registered (its token assurance; docs/iso8583.md "Token data").
pub(super) fn financial_request(
    req: &Message,
    pan: &str,
    expiry: Option<&str>,
    assurance: Option<Assurance>,
) -> Message {
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
    if let Some(a) = assurance {
        let mut data = String::new();
        if private::push(&mut data, "TA", a.code()).is_some() {
            let _ = out.set_additional_data(&data);
        }
    }
    out
}
