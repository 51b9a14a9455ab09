//! The token number itself and how a fresh one is drawn.

use ring::rand::SecureRandom;

/// A token number: 16 digits, Luhn-valid, from a token BIN range. Not a PAN, but still a payment
/// credential while live, so `Debug` masks it like one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenValue(String);

pub const TOKEN_LEN: usize = 16;

impl TokenValue {
    /// Accepts any Luhn-valid 13–19 digit string: a terminal may present a token of any issuer's
    /// length; our own are always 16.
    pub fn parse(text: &str) -> Option<TokenValue> {
        ((13..=19).contains(&text.len()) && crate::luhn::is_valid(text)).then(|| TokenValue(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Draws a token of `len` digits: `prefix`, uniformly random digits, then the Luhn digit.
    /// `fill` supplies random bytes (the OS CSPRNG in the service, a seeded generator in vectors).
    pub fn generate(
        prefix: &str,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> bool,
    ) -> Result<TokenValue, GenerateError> {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GenerateError::Format);
        }
        if prefix.len() + 2 > len || len > 19 {
            return Err(GenerateError::Range);
        }
        let mut s = String::with_capacity(len);
        s.push_str(prefix);
        let mut buf = [0u8; 32];
        while s.len() < len - 1 {
            if !fill(&mut buf) {
                return Err(GenerateError::Random);
            }
            for b in buf {
                // Rejection sampling: 250 = 25 × 10, so bytes below it give uniform digits.
                if b < 250 && s.len() < len - 1 {
                    s.push(char::from(b'0' + b % 10));
                }
            }
        }
        let check = crate::luhn::check_digit(&s).ok_or(GenerateError::Format)?;
        s.push(char::from(b'0' + check));
        Ok(TokenValue(s))
    }

    /// [`TokenValue::generate`] from the operating system's CSPRNG.
    pub fn generate_system(
        prefix: &str,
        len: usize,
        rng: &ring::rand::SystemRandom,
    ) -> Result<TokenValue, GenerateError> {
        Self::generate(prefix, len, &mut |buf| rng.fill(buf).is_ok())
    }
}

/// Why no token number could be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerateError {
    /// The prefix is not digits.
    Format,
    /// The length does not leave room for a random digit and the check digit, or exceeds 19.
    Range,
    /// The random source failed.
    Random,
}

impl TokenValue {
    /// First 6 and last 4 digits, the middle as `*`, as a PAN is shown.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        crate::vault::pan::mask(&self.0[..6.min(n)], &self.0[n.saturating_sub(4)..], n)
    }
}

impl std::fmt::Debug for TokenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        write!(f, "Token({}…{})", &self.0[..6.min(n)], &self.0[n.saturating_sub(4)..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_shape() {
        let rng = ring::rand::SystemRandom::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let t = TokenValue::generate_system("461000", 16, &rng).unwrap();
            assert_eq!(t.as_str().len(), 16);
            assert!(t.as_str().starts_with("461000"));
            assert!(crate::luhn::is_valid(t.as_str()));
            seen.insert(t);
        }
        assert_eq!(seen.len(), 2000);
    }

    #[test]
    fn digits_are_roughly_uniform() {
        let rng = ring::rand::SystemRandom::new();
        let mut counts = [0u32; 10];
        for _ in 0..5000 {
            let t = TokenValue::generate_system("4", 16, &rng).unwrap();
            for b in t.as_str()[1..15].bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 70,000 digits, 7,000 expected each; ±10 % is over 12 standard deviations.
        for c in counts {
            assert!((6300..7700).contains(&c), "{counts:?}");
        }
    }
}
