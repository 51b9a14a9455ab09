//! A request as the flows see it, read from the message once at entry (mini-redis's
//! `Command::from_frame` is the model): which flow it takes ([`Command`]) and the fields the flows
//! act on, typed. The flows do not read the message's fields again; they keep the message only to
//! echo it in the answer ([`Reply::to`](super::Reply::to)) and to forward it to an issuer.

use super::{Reply, ResponseCode};
use crate::config::Config;
use crate::iso8583::{Message, Mti, OriginalData};
use crate::money::Amount;
use crate::store::{TxnKind, TxnRow};

/// The flow a request takes, from its MTI and DE3's transaction type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// `0800`: network management (echo).
    Echo,
    /// `0800` DE70 `101`/`161`: a new TAK (key exchange, on a MAC link only).
    KeyExchange,
    /// `0100` DE3 `90`: verify a card a terminal read and give its merchant token.
    Verify,
    /// `0200`/`0201` DE3 `00`: a purchase (with a token, or with a card number a terminal read).
    Purchase,
    /// `0200`/`0201` DE3 `20`: a (partial) cancel of a purchase DE90 names.
    Cancel,
    /// `0400`/`0401`/`0420`/`0421`: a reversal (or reversal advice) of what DE90 names.
    Reversal,
    /// Anything else a terminal may send: `12`.
    Unsupported,
}

impl Command {
    fn of(mti: Mti, processing_code: Option<&str>) -> Command {
        match (mti.as_bytes(), processing_code.and_then(|p| p.get(..2))) {
            (b"0800", _) => Command::Echo,
            (b"0100", Some("90")) => Command::Verify,
            (b"0200" | b"0201", Some("00")) => Command::Purchase,
            (b"0200" | b"0201", Some("20")) => Command::Cancel,
            (b"0400" | b"0401" | b"0420" | b"0421", _) => Command::Reversal,
            _ => Command::Unsupported,
        }
    }

    /// The transaction kind recorded and the message class of the duplicate key (a `0201` repeat
    /// shares its `0200`'s key); None for what is not recorded.
    fn recorded_as(self) -> Option<(TxnKind, &'static str)> {
        match self {
            Command::Verify => Some((TxnKind::Verification, "01")),
            Command::Purchase => Some((TxnKind::Purchase, "02")),
            Command::Cancel => Some((TxnKind::Cancel, "02")),
            Command::Reversal => Some((TxnKind::Reversal, "04")),
            Command::Echo | Command::KeyExchange | Command::Unsupported => None,
        }
    }
}

/// One request, parsed.
pub(super) struct Request<'m> {
    /// The message as received: echoed by the answer, forwarded to the issuer.
    pub msg: &'m Message,
    pub command: Command,
    /// The answer's MTI; None for a message that is not answered (a response or a notification).
    pub resp_mti: Option<Mti>,
    /// DE4, when present and in range, in the DE49 currency (the platform's when absent; a currency
    /// not configured gives the bare count, see `crate::money`): the one place DE4 becomes an amount.
    pub amount: Option<Amount>,
    /// DE49, numeric.
    pub currency: Option<&'m str>,
    /// DE2: a token, or a card number a terminal read.
    pub number: Option<&'m str>,
    /// DE14, `YYMM`.
    pub expiry: Option<&'m str>,
    /// DE41 without the fixed-length field's trailing spaces.
    pub terminal: Option<&'m str>,
    /// DE42 without the fixed-length field's trailing spaces.
    pub merchant: Option<&'m str>,
    /// DE22.
    pub entry_mode: Option<&'m str>,
    /// DE90: the original a cancel or reversal names.
    pub original: Option<OriginalData>,
    /// DE55, the chip data.
    pub icc: Option<Vec<u8>>,
    /// DE23: the card sequence number.
    pub psn: Option<&'m str>,
}

impl<'m> Request<'m> {
    pub fn parse(msg: &'m Message, config: &Config) -> Request<'m> {
        let currency = msg.currency_code();
        let in_currency = |minor| Amount::from_de4(minor, config.currency_of_de49(currency));
        Request {
            msg,
            command: match Command::of(msg.mti(), msg.processing_code()) {
                Command::Echo if matches!(msg.network_management_code(), Some("101" | "161")) => Command::KeyExchange,
                c => c,
            },
            resp_mti: msg.mti().response(),
            amount: msg.amount().and_then(|a| i64::try_from(a).ok()).map(in_currency),
            currency,
            number: msg.pan(),
            expiry: msg.expiry(),
            terminal: msg.terminal_id().map(str::trim_end),
            merchant: msg.merchant_id().map(str::trim_end),
            entry_mode: msg.pos_entry_mode(),
            original: msg.original_data(),
            icc: msg.icc_data(),
            psn: msg.card_sequence_number(),
        }
    }

    /// The answer `code` to this request, which is not recorded.
    pub fn refuse(&self, code: ResponseCode) -> Reply {
        Reply::to(self.msg, self.resp_mti.unwrap_or(Mti::FINANCIAL_RESPONSE), code)
    }

    /// True when DE4 is absent or zero (an account verification moves no money).
    pub fn is_zero_amount(&self) -> bool {
        self.msg.amount().unwrap_or(0) == 0
    }

    /// The merchant, when DE42 names one.
    pub fn merchant_named(&self) -> Option<&'m str> {
        self.merchant.filter(|m| !m.is_empty())
    }

    /// DE22's first two digits: how the card was read.
    pub fn entry_method(&self) -> &'m str {
        self.entry_mode.and_then(|e| e.get(..2)).unwrap_or("")
    }

    /// Chip or contactless entry (DE22 `05x`/`07x`): the request carries an ARQC.
    pub fn is_chip(&self) -> bool {
        matches!(self.entry_method(), "05" | "07")
    }

    /// The new transaction row for this request under its duplicate key (message class, DE41, DE11,
    /// DE7, DE32); None when the request is not recorded or a key field is missing (then it is
    /// answered `30`).
    pub fn new_txn(&self, now: i64) -> Option<TxnRow> {
        let (kind, class) = self.command.recorded_as()?;
        let msg = self.msg;
        Some(TxnRow {
            id: format!("txn_{}", uuid::Uuid::now_v7().simple()),
            kind,
            mti: msg.mti().as_str().into(),
            msg_class: class.into(),
            terminal_id: msg.terminal_id()?.into(),
            stan: msg.stan()?.into(),
            transmitted: msg.transmission_date_time()?.into(),
            acquirer_id: format!("{:0>11}", msg.acquirer_id().unwrap_or("")),
            processing_code: msg.processing_code().map(Into::into),
            merchant_id: self.merchant.map(Into::into),
            amount: self.amount,
            currency: self.currency.map(Into::into),
            entry_mode: self.entry_mode.map(Into::into),
            rrn: msg.rrn().map(Into::into),
            created_at: now,
            updated_at: now,
            ..Default::default()
        })
    }
}

/// The request a transaction row was made from, as far as the row keeps it: the fields an answer
/// echoes and an issuer advice carries (not DE2: no row holds a card number).
pub(super) fn rebuilt(row: &TxnRow) -> Message {
    let mti = Mti::from_bytes(row.mti.as_bytes()).unwrap_or(Mti::FINANCIAL_REQUEST);
    let mut m = Message::new(mti);
    let acquirer = row.acquirer_id.trim_start_matches('0');
    let merchant = row.merchant_id.as_deref().map(|id| format!("{id:<15}"));
    // DE4 again from the amount: its count of minor units (DE4's 12 digits; one that no longer fits
    // is left out with the other invalid fields).
    let amount = row.amount.and_then(Amount::to_minor).map(|a| format!("{a:012}"));
    let fields = [
        (3u8, row.processing_code.as_deref()),
        (4, amount.as_deref()),
        (7, Some(row.transmitted.as_str())),
        (11, Some(row.stan.as_str())),
        (22, row.entry_mode.as_deref()),
        (32, Some(if acquirer.is_empty() { "0" } else { acquirer })),
        (37, row.rrn.as_deref()),
        (41, Some(row.terminal_id.as_str())),
        (42, merchant.as_deref()),
        (49, row.currency.as_deref()),
    ];
    for (de, value) in fields {
        if let Some(v) = value {
            // Each was a valid field of the request; one that is not any more is left out.
            let _ = m.set(de, v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::default_config().unwrap()
    }

    fn msg(mti: Mti, fields: &[(u8, &str)]) -> Message {
        let mut m = Message::new(mti);
        for (de, v) in fields {
            m.set(*de, v).unwrap();
        }
        m
    }

    #[test]
    fn the_flow_follows_the_mti_and_the_transaction_type() {
        let cases = [
            (Mti::FINANCIAL_REQUEST, Some("000000"), Command::Purchase),
            (Mti::FINANCIAL_REQUEST, Some("200000"), Command::Cancel),
            (Mti::FINANCIAL_REQUEST, Some("310000"), Command::Unsupported),
            (Mti::AUTHORIZATION_REQUEST, Some("900000"), Command::Verify),
            (Mti::AUTHORIZATION_REQUEST, Some("000000"), Command::Unsupported),
            (Mti::REVERSAL_ADVICE, None, Command::Reversal),
        ];
        for (mti, de3, want) in cases {
            let fields: Vec<(u8, &str)> = de3.map(|p| (3u8, p)).into_iter().collect();
            assert_eq!(Request::parse(&msg(mti, &fields), &config()).command, want, "{mti:?} {de3:?}");
        }
    }

    #[test]
    fn de4_becomes_an_amount_in_the_de49_currency() {
        let shown = |de49: Option<&str>| {
            let mut fields = vec![(4u8, "000000001250")];
            fields.extend(de49.map(|c| (49u8, c)));
            let m = msg(Mti::FINANCIAL_REQUEST, &fields);
            Request::parse(&m, &config()).amount.map(|a| (a.to_string(), a.to_minor()))
        };
        assert_eq!(shown(Some("840")), Some(("12.50".into(), Some(1_250))));
        assert_eq!(shown(Some("410")), Some(("1250".into(), Some(1_250))));
        // Absent: the platform's currency. Not configured: the bare count, still echoed as it came.
        assert_eq!(shown(None), Some(("1250".into(), Some(1_250))));
        assert_eq!(shown(Some("999")), Some(("1250".into(), Some(1_250))));
    }

    #[test]
    fn a_request_without_its_key_fields_is_not_recorded() {
        let full = [(3u8, "000000"), (7, "1123103000"), (11, "000042"), (32, "12345"), (41, "TERM0001")];
        assert!(Request::parse(&msg(Mti::FINANCIAL_REQUEST, &full), &config()).new_txn(1).is_some());
        for skip in [7u8, 11, 41] {
            let fields: Vec<_> = full.iter().copied().filter(|(de, _)| *de != skip).collect();
            assert!(
                Request::parse(&msg(Mti::FINANCIAL_REQUEST, &fields), &config()).new_txn(1).is_none(),
                "without DE{skip}"
            );
        }
        // An echo is answered, never recorded.
        assert!(Request::parse(&msg(Mti::NETWORK_REQUEST, &full[1..]), &config()).new_txn(1).is_none());
    }

    #[test]
    fn an_0800_asking_for_a_new_key_is_a_key_exchange() {
        for (code, command) in [("301", Command::Echo), ("101", Command::KeyExchange), ("161", Command::KeyExchange)] {
            let m = msg(Mti::NETWORK_REQUEST, &[(7, "1123103000"), (11, "000042"), (41, "TERM0001"), (70, code)]);
            let req = Request::parse(&m, &config());
            assert_eq!(req.command, command, "DE70 {code}");
            assert!(req.new_txn(1).is_none(), "never recorded");
        }
    }

    #[test]
    fn a_row_gives_back_the_fields_that_identify_its_request() {
        let row = TxnRow {
            mti: "0200".into(),
            terminal_id: "TERM0001".into(),
            stan: "000042".into(),
            transmitted: "1123103000".into(),
            acquirer_id: "00000012345".into(),
            processing_code: Some("000000".into()),
            amount: Some(Amount::from_minor(11_000, config().currency("410").unwrap())),
            merchant_id: Some("MERCHANT000001".into()),
            currency: Some("410".into()),
            ..Default::default()
        };
        let m = rebuilt(&row);
        assert_eq!((m.stan(), m.terminal_id(), m.acquirer_id()), (Some("000042"), Some("TERM0001"), Some("12345")));
        assert_eq!((m.amount(), m.merchant_id(), m.pan()), (Some(11_000), Some("MERCHANT000001 "), None));
    }
}
