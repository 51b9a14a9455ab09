//! Token assurance: how the cardholder was identified and verified (ID&V) when a card was
//! registered, in the sense of the EMVCo Payment Tokenisation framework. Recorded on the instrument
//! and sent to the issuer with every payment (docs/instruments.md "Step-up verification").

/// How a card's registration was verified. Stored and shown as its text; [`Assurance::code`] is
/// what the issuer link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assurance {
    /// The issuer could not be asked (no answer, or it takes no activation requests): the TSP
    /// approved on its behalf under the issuer's stand-in rule. The weakest assurance.
    StandIn,
    /// The issuer approved the registration without step-up (its account checks: the green path).
    IssuerApproved,
    /// The card was read at a terminal and the issuer verified the account (terminal tokenization).
    CardPresent,
    /// Step-up: the cardholder entered a one-time code the issuer sent by SMS.
    OtpSms,
    /// Step-up: the cardholder entered a one-time code the issuer sent to its app.
    OtpApp,
}

impl Assurance {
    pub fn as_str(self) -> &'static str {
        match self {
            Assurance::StandIn => "stand_in",
            Assurance::IssuerApproved => "issuer_approved",
            Assurance::CardPresent => "card_present",
            Assurance::OtpSms => "otp_sms",
            Assurance::OtpApp => "otp_app",
        }
    }

    /// The two digits the issuer link carries in DE48 tag `TA` (docs/iso8583.md "Token data"):
    /// the first digit says who verified (0 nobody, 1 the issuer's account check, 2 the issuer with
    /// the cardholder), the second how.
    pub fn code(self) -> &'static str {
        match self {
            Assurance::StandIn => "00",
            Assurance::IssuerApproved => "10",
            Assurance::CardPresent => "11",
            Assurance::OtpSms => "21",
            Assurance::OtpApp => "22",
        }
    }

    /// The assurance a passed one-time code of `method` gives.
    pub fn of_method(method: Method) -> Assurance {
        match method {
            Method::Sms => Assurance::OtpSms,
            Method::App => Assurance::OtpApp,
        }
    }
}

impl std::fmt::Display for Assurance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored assurance this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown assurance")]
pub struct UnknownAssurance;

impl std::str::FromStr for Assurance {
    type Err = UnknownAssurance;
    fn from_str(s: &str) -> Result<Self, UnknownAssurance> {
        [Assurance::StandIn, Assurance::IssuerApproved, Assurance::CardPresent, Assurance::OtpSms, Assurance::OtpApp]
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(UnknownAssurance)
    }
}

impl serde::Serialize for Assurance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How the issuer sends a one-time code to the cardholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// A text message to the phone number the issuer holds for the card.
    Sms,
    /// A notification in the issuer's own app.
    App,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::App => "app",
        }
    }

    /// The one letter of the method on the issuer link (`S`, `A`).
    pub fn letter(self) -> char {
        match self {
            Method::Sms => 'S',
            Method::App => 'A',
        }
    }

    pub fn from_letter(c: char) -> Option<Method> {
        match c {
            'S' => Some(Method::Sms),
            'A' => Some(Method::App),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "sms" => Some(Method::Sms),
            "app" => Some(Method::App),
            _ => None,
        }
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assurance_reads_back_and_codes_are_distinct() {
        let all = [
            Assurance::StandIn,
            Assurance::IssuerApproved,
            Assurance::CardPresent,
            Assurance::OtpSms,
            Assurance::OtpApp,
        ];
        for a in all {
            assert_eq!(a.as_str().parse::<Assurance>().ok(), Some(a));
        }
        let mut codes: Vec<_> = all.iter().map(|a| a.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!("OTP_SMS".parse::<Assurance>().is_err());
    }

    #[test]
    fn methods_read_back() {
        for m in [Method::Sms, Method::App] {
            assert_eq!(Method::parse(m.as_str()), Some(m));
            assert_eq!(Method::from_letter(m.letter()), Some(m));
        }
        assert_eq!(Method::parse("email"), None);
    }
}
