//! The Luhn check digit (ISO/IEC 7812-1 Annex B), used by PANs and tokens alike.

/// The check digit to append to `partial` (all ASCII digits), or None if it is not all digits.
pub fn check_digit(partial: &str) -> Option<u8> {
    let mut sum = 0u32;
    // The digit next to the check digit is doubled, then every second one to the left.
    for (i, b) in partial.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// True when `number` is non-empty, all digits, and ends in its Luhn check digit.
pub fn is_valid(number: &str) -> bool {
    match number.as_bytes().split_last() {
        Some((&last, rest)) if last.is_ascii_digit() => {
            // `rest` is ASCII digits or check_digit returns None; slicing at a byte boundary is safe
            // because the last byte is ASCII.
            let partial = &number[..rest.len()];
            check_digit(partial) == Some(last - b'0')
        }
        _ => false,
    }
}

/// `partial` with its check digit appended; None unless `partial` is one or more digits.
pub fn complete(partial: &str) -> Option<String> {
    if partial.is_empty() {
        return None;
    }
    check_digit(partial).map(|d| format!("{partial}{d}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        // ISO/IEC 7812-1 worked example and well-known test card numbers.
        assert!(is_valid("79927398713"));
        assert!(!is_valid("79927398710"));
        assert!(is_valid("4111111111111111"));
        assert!(is_valid("5555555555554444"));
        assert!(!is_valid("4111111111111112"));
        assert!(!is_valid(""));
        assert!(!is_valid("4111-1111"));
        assert_eq!(complete("7992739871").as_deref(), Some("79927398713"));
    }
}
