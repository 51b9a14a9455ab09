//! DE48 (additional data, private) as tsp's issuer links fill it (docs/iso8583.md "Token data"):
//! elements of a 2-character tag, a 2-digit length and the value, one after another — `TA0221`
//! is tag `TA`, value `21`. Pure.

/// Appends one element; None when the tag is not 2 characters or the value is longer than 99.
pub fn push(out: &mut String, tag: &str, value: &str) -> Option<()> {
    if tag.len() != 2 || !tag.is_ascii() || !value.is_ascii() || value.len() > 99 {
        return None;
    }
    out.push_str(tag);
    out.push_str(&format!("{:02}", value.len()));
    out.push_str(value);
    Some(())
}

/// The elements of `data` in order; None when it is not a sequence of whole elements.
pub fn parse(data: &str) -> Option<Vec<(&str, &str)>> {
    // DE48 is ASCII (`ans`): lengths count characters, which are then bytes.
    if !data.is_ascii() {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let tag = rest.get(..2)?;
        let len: usize = rest.get(2..4).filter(|l| l.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()?;
        let value = rest.get(4..4 + len)?;
        out.push((tag, value));
        rest = &rest[4 + len..];
    }
    Some(out)
}

/// The value of the first element with `tag`.
pub fn get<'a>(data: &'a str, tag: &str) -> Option<&'a str> {
    parse(data)?.into_iter().find(|(t, _)| *t == tag).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_round_trip() {
        let mut s = String::new();
        push(&mut s, "TA", "21").unwrap();
        push(&mut s, "VS", "010-****-1234").unwrap();
        push(&mut s, "TR", "").unwrap();
        assert_eq!(s, "TA0221VS13010-****-1234TR00");
        assert_eq!(parse(&s).unwrap(), vec![("TA", "21"), ("VS", "010-****-1234"), ("TR", "")]);
        assert_eq!(get(&s, "VS"), Some("010-****-1234"));
        assert_eq!(get(&s, "AC"), None);
    }

    #[test]
    fn malformed_data_is_refused_not_misread() {
        for bad in ["T", "TA0", "TA2x21", "TA0521", "TA02210", "TA02é"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(push(&mut String::new(), "TAG", "x").is_none());
        assert!(push(&mut String::new(), "TA", &"x".repeat(100)).is_none());
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
