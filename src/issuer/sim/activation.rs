//! The simulated issuer's side of card registration (docs/iso8583.md "Token activation"): it
//! decides each token activation request (`0100`, DE3 `33xxxx`) by its configured rules — approve
//! (`00`), step-up (`85`, with the ways it can reach the cardholder in DE48) or decline (`05`) —
//! and "sends" each activation code it is given (`0100`, DE3 `34xxxx`) by recording it in its
//! outbox, which tests and the demo read in place of the cardholder's phone.

use sha2::{Digest, Sha256};

use super::{Simulator, State, approved_reply, reply};
use crate::config::{ActivationDecision, ActivationRule};
use crate::instruments::assurance::Method;
use crate::iso8583::{Message, private};

/// A one-time code the simulated issuer sent a cardholder.
#[derive(Clone, PartialEq, Eq)]
pub struct SentCode {
    /// The card it was about (the simulator is the issuer: it holds card numbers).
    pub pan: String,
    pub method: Method,
    /// Where it went, as masked in the step-up offer.
    pub destination: String,
    /// The message text, code included.
    pub text: String,
    /// The token requestor that asked (DE48 `TR`).
    pub requestor: String,
    pub at_ms: i64,
}

impl std::fmt::Debug for SentCode {
    /// Neither the card number nor the code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentCode").field("method", &self.method).field("destination", &self.destination).finish()
    }
}

/// The masked phone number the simulator "holds" for a card: derived from the number, so the same
/// card always shows the same.
pub fn phone_of(pan: &str) -> String {
    let h = Sha256::digest(pan.as_bytes());
    let n = u16::from_be_bytes([h[0], h[1]]) % 10_000;
    format!("010-****-{n:04}")
}

/// Where an app notification goes.
pub const APP_DESTINATION: &str = "card issuer's app";

fn rule_matches(rule: &ActivationRule, pan: &str, recent: usize) -> bool {
    let bin_ok = rule.bin_prefixes.is_empty() || rule.bin_prefixes.iter().any(|p| pan.starts_with(p.as_str()));
    let count_ok = rule.registrations_over.is_none_or(|n| recent > n as usize);
    bin_ok && count_ok
}

impl Simulator {
    /// `0100` `33xxxx`: a token activation request.
    pub(super) fn activation_request(&self, st: &mut State, req: &Message) -> Message {
        let Some(pan) = req.pan() else { return reply(req, "30") };
        if !crate::luhn::is_valid(pan) {
            return reply(req, "14");
        }
        if req.expiry().is_some_and(|e| self.expired(e)) {
            return reply(req, "54");
        }
        if st.blocked.contains(pan) {
            return reply(req, "05");
        }
        let now = self.clock.now_ms();
        let seen = st.registrations.entry(pan.to_string()).or_default();
        seen.push(now);
        // Only what the longest window can still count is kept.
        let longest = self.cfg.activation.iter().map(|r| r.window_seconds).max().unwrap_or(0);
        let keep_from = now.saturating_sub(i64::try_from(longest.saturating_mul(1000)).unwrap_or(i64::MAX));
        seen.retain(|t| *t >= keep_from);
        let seen = seen.clone();
        let decision = self
            .cfg
            .activation
            .iter()
            .find(|r| {
                let from = now.saturating_sub(i64::try_from(r.window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX));
                rule_matches(r, pan, seen.iter().filter(|t| **t >= from).count())
            })
            .map_or(ActivationDecision::Approve, |r| r.decision);
        match decision {
            ActivationDecision::Approve => {
                let code = st.approval_code();
                approved_reply(req, &code)
            }
            ActivationDecision::Decline => reply(req, "05"),
            ActivationDecision::StepUp => {
                let mut resp = reply(req, "85");
                let mut offers = String::new();
                let _ = private::push(&mut offers, "VS", &phone_of(pan));
                let _ = private::push(&mut offers, "VA", APP_DESTINATION);
                let _ = resp.set_additional_data(&offers);
                resp
            }
        }
    }

    /// `0100` `34xxxx`: deliver this activation code to the cardholder by the method in DE48.
    pub(super) fn activation_code(&self, st: &mut State, req: &Message) -> Message {
        let Some(pan) = req.pan() else { return reply(req, "30") };
        let data = req.get(48).unwrap_or("");
        let method = private::get(data, "VM").and_then(|m| m.chars().next()).and_then(Method::from_letter);
        let code = private::get(data, "AC").filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
        let (Some(method), Some(code)) = (method, code) else { return reply(req, "30") };
        let destination = match method {
            Method::Sms => phone_of(pan),
            Method::App => APP_DESTINATION.to_string(),
        };
        let last4 = pan.get(pan.len().saturating_sub(4)..).unwrap_or("");
        let text = format!("Your card ending {last4}: verification code {code}. Never share it.");
        let requestor = private::get(data, "TR").unwrap_or("").to_string();
        let sent = SentCode { pan: pan.to_string(), method, destination, text, requestor, at_ms: self.clock.now_ms() };
        if self.cfg.print_codes {
            println!("tsp issuer-sim: {} to {}: {}", method.as_str(), sent.destination, sent.text);
        }
        st.outbox.push(sent);
        // A simulator's outbox: the newest few hundred are plenty.
        if st.outbox.len() > 512 {
            st.outbox.remove(0);
        }
        let code = st.approval_code();
        approved_reply(req, &code)
    }

    /// The activation codes sent for card `pan`, oldest first.
    pub fn codes_sent(&self, pan: &str) -> Vec<SentCode> {
        self.lock().outbox.iter().filter(|s| s.pan == pan).cloned().collect()
    }

    /// The token assurance (DE48 `TA`) the last financial request with card `pan` carried.
    pub fn last_assurance(&self, pan: &str) -> Option<String> {
        self.lock().assurance.get(pan).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_need_every_condition() {
        let rule = ActivationRule {
            bin_prefixes: vec!["457000".into()],
            registrations_over: Some(2),
            window_seconds: 60,
            decision: ActivationDecision::StepUp,
        };
        assert!(!rule_matches(&rule, "4570000000000001", 2));
        assert!(rule_matches(&rule, "4570000000000001", 3));
        assert!(!rule_matches(&rule, "4111111111111111", 3));
        let any = ActivationRule { bin_prefixes: vec![], registrations_over: None, ..rule };
        assert!(rule_matches(&any, "4111111111111111", 1));
    }

    #[test]
    fn a_card_keeps_its_phone() {
        assert_eq!(phone_of("4111111111111111"), phone_of("4111111111111111"));
        assert!(phone_of("4111111111111111").starts_with("010-****-"));
        assert_eq!(phone_of("4111111111111111").len(), 13);
    }
}
