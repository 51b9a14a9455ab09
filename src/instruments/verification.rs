//! Step-up verification of a card registration (docs/instruments.md "Step-up verification"): the
//! one-time code and the rules around it — how many codes a registration may be sent, how long
//! one lives, how many wrong tries end the registration. Pure: the flow (`payments::activation`)
//! runs these rules; the store only records their outcome under conditions that repeat them.

use std::fmt;

use zeroize::Zeroizing;

use super::assurance::Method;

/// Digits in a one-time code.
pub const CODE_DIGITS: usize = 6;

/// The limits of a step-up (`[verification]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a code can be entered after it was sent.
    pub code_ttl_ms: i64,
    /// Wrong codes a registration may take, over all its codes; the last one deletes it.
    pub max_attempts: i64,
    /// Codes a registration may be sent (the first and every resend).
    pub max_codes: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { code_ttl_ms: 300_000, max_attempts: 5, max_codes: 3 }
    }
}

/// A one-time code: [`CODE_DIGITS`] decimal digits. Zeroized on drop; never printed.
pub struct Code(Zeroizing<String>);

impl Code {
    /// A fresh code, uniform over all [`CODE_DIGITS`]-digit values.
    pub fn generate(rng: &dyn ring::rand::SecureRandom) -> Result<Code, ring::error::Unspecified> {
        let bound = 10u32.pow(CODE_DIGITS as u32);
        // Rejection sampling: values at or above the largest multiple of `bound` would bias.
        let limit = u32::MAX - u32::MAX % bound;
        loop {
            let mut b = Zeroizing::new([0u8; 4]);
            rng.fill(b.as_mut())?;
            let v = u32::from_be_bytes(*b);
            if v < limit {
                return Ok(Code(Zeroizing::new(format!("{:0width$}", v % bound, width = CODE_DIGITS))));
            }
        }
    }

    /// A code as the cardholder typed it: exactly [`CODE_DIGITS`] digits, else None.
    pub fn parse(s: &str) -> Option<Code> {
        (s.len() == CODE_DIGITS && s.bytes().all(|b| b.is_ascii_digit())).then(|| Code(Zeroizing::new(s.to_string())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(******)")
    }
}

/// A way the issuer offered to reach the cardholder: the method and where it goes, as the issuer
/// masked it (`010-****-1234`, `Hanbit Card app`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offer {
    pub method: String,
    pub destination: String,
}

/// Where a pending registration's verification stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub offered: Vec<Offer>,
    /// The method of the current code; None before the first code is sent.
    pub method: Option<Method>,
    pub code_expires_at: Option<i64>,
    pub codes_sent: i64,
    pub failed_attempts: i64,
}

/// Why a step-up cannot go on as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the issuer did not offer this method for this card")]
    MethodNotOffered,
    #[error("no more codes can be sent for this registration")]
    CodesExhausted,
    #[error("no code has been sent yet: request one first")]
    NoCode,
    #[error("the code has expired: request a new one")]
    Expired,
    #[error("the code is incorrect; {attempts_left} attempts left")]
    Incorrect { attempts_left: i64 },
    #[error("too many incorrect codes: the registration is cancelled")]
    Exhausted,
}

impl State {
    /// May a code be sent by `method`?
    pub fn may_send(&self, method: Method, policy: &Policy) -> Result<(), Refusal> {
        if !self.offered.iter().any(|o| o.method == method.as_str()) {
            return Err(Refusal::MethodNotOffered);
        }
        if self.codes_sent >= policy.max_codes {
            return Err(Refusal::CodesExhausted);
        }
        Ok(())
    }

    /// May a code be checked at `now`? (An expired code is refused without costing an attempt: it
    /// cannot be right.)
    pub fn may_check(&self, now: i64, policy: &Policy) -> Result<Method, Refusal> {
        if self.failed_attempts >= policy.max_attempts {
            return Err(Refusal::Exhausted);
        }
        let (Some(method), Some(expires)) = (self.method, self.code_expires_at) else {
            return Err(Refusal::NoCode);
        };
        if now >= expires {
            return Err(Refusal::Expired);
        }
        Ok(method)
    }

    pub fn attempts_left(&self, policy: &Policy) -> i64 {
        (policy.max_attempts - self.failed_attempts).max(0)
    }

    pub fn codes_left(&self, policy: &Policy) -> i64 {
        (policy.max_codes - self.codes_sent).max(0)
    }
}

/// The refusal of a wrong code, given the failed attempts counted with it.
pub fn after_wrong_code(failed_attempts: i64, policy: &Policy) -> Refusal {
    if failed_attempts >= policy.max_attempts {
        Refusal::Exhausted
    } else {
        Refusal::Incorrect { attempts_left: policy.max_attempts - failed_attempts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            offered: vec![Offer { method: "sms".into(), destination: "010-****-1234".into() }],
            method: None,
            code_expires_at: None,
            codes_sent: 0,
            failed_attempts: 0,
        }
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let rng = ring::rand::SystemRandom::new();
        let codes: Vec<String> = (0..50).map(|_| Code::generate(&rng).unwrap().expose().to_string()).collect();
        assert!(codes.iter().all(|c| c.len() == CODE_DIGITS && c.bytes().all(|b| b.is_ascii_digit())));
        let mut distinct = codes.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 40, "{distinct:?}");
        assert_eq!(format!("{:?}", Code::parse("123456").unwrap()), "Code(******)");
        for bad in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"] {
            assert!(Code::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sending_needs_an_offered_method_and_codes_left() {
        let p = Policy::default();
        let mut s = state();
        assert_eq!(s.may_send(Method::App, &p), Err(Refusal::MethodNotOffered));
        assert_eq!(s.may_send(Method::Sms, &p), Ok(()));
        s.codes_sent = p.max_codes;
        assert_eq!(s.may_send(Method::Sms, &p), Err(Refusal::CodesExhausted));
        assert_eq!(s.codes_left(&p), 0);
    }

    #[test]
    fn checking_needs_a_live_code_and_attempts_left() {
        let p = Policy::default();
        let mut s = state();
        assert_eq!(s.may_check(1_000, &p), Err(Refusal::NoCode));
        s.method = Some(Method::Sms);
        s.code_expires_at = Some(1_000 + p.code_ttl_ms);
        assert_eq!(s.may_check(1_000, &p), Ok(Method::Sms));
        assert_eq!(s.may_check(1_000 + p.code_ttl_ms, &p), Err(Refusal::Expired));
        s.failed_attempts = p.max_attempts;
        assert_eq!(s.may_check(1_000, &p), Err(Refusal::Exhausted));
    }

    #[test]
    fn the_last_wrong_code_ends_the_registration() {
        let p = Policy::default();
        assert_eq!(after_wrong_code(1, &p), Refusal::Incorrect { attempts_left: p.max_attempts - 1 });
        assert_eq!(after_wrong_code(p.max_attempts - 1, &p), Refusal::Incorrect { attempts_left: 1 });
        assert_eq!(after_wrong_code(p.max_attempts, &p), Refusal::Exhausted);
    }
}
