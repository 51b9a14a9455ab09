//! A terminal: the service's own ISO 8583 client. It builds requests the way a Korean POS terminal
//! or VAN does and talks to a TSP's ISO 8583 front over TCP. `tsp demo` and the load tool use it.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::iso8583::frame::{FrameError, read_frame, write_frame};
use crate::iso8583::{Message, Mti, OriginalData};

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    #[error("message: {0}")]
    Codec(#[from] crate::iso8583::CodecError),
    #[error("no answer")]
    NoAnswer,
    #[error("the answer's MAC is missing or wrong")]
    BadMac,
    #[error("MAC: {0}")]
    Mac(#[from] hsm_sim::HsmError),
}

/// A terminal's own TAK (the terminal's side of docs/iso8583.md "MAC"; a real terminal keeps it in
/// its PIN pad's secure module): zeroized when dropped, never shown.
pub struct TerminalMac {
    algorithm: crate::config::MacAlgorithm,
    key: zeroize::Zeroizing<Vec<u8>>,
}

impl TerminalMac {
    pub fn new(algorithm: crate::config::MacAlgorithm, key: &[u8]) -> TerminalMac {
        TerminalMac { algorithm, key: zeroize::Zeroizing::new(key.to_vec()) }
    }

    /// The 8-byte MAC of `data`.
    pub fn mac(&self, data: &[u8]) -> Result<[u8; 8], hsm_sim::HsmError> {
        match self.algorithm {
            crate::config::MacAlgorithm::Retail => hsm_sim::crypto::mac::retail_mac(&self.key, data, 1),
            crate::config::MacAlgorithm::Cmac => {
                let tag = hsm_sim::crypto::mac::aes_cmac(&self.key, data)?;
                let mut out = [0u8; 8];
                out.copy_from_slice(&tag[..8]);
                Ok(out)
            }
        }
    }
}

/// Builds a terminal's requests (its STANs, DE7/DE12/DE13 from the clock, DE90 of cancels and
/// reversals) without a connection: [`Terminal`] sends them one at a time, the load tool pipelines
/// them on its own streams.
#[derive(Debug, Clone)]
pub struct Requests {
    pub terminal_id: String,
    /// DE42, 15 characters.
    pub merchant_id: String,
    pub acquirer_id: String,
    stan: u32,
}

impl Requests {
    pub fn new(terminal_id: &str, merchant_id: &str) -> Requests {
        Requests {
            terminal_id: format!("{terminal_id:<8.8}"),
            merchant_id: format!("{merchant_id:<15.15}"),
            acquirer_id: "12345".into(),
            stan: 0,
        }
    }

    fn next_stan(&mut self) -> String {
        self.stan = self.stan % 999_999 + 1;
        format!("{:06}", self.stan)
    }

    /// A `0200` purchase of `amount` minor units in KRW, keyed in by barcode (DE22 `031`).
    pub fn purchase(&mut self, pan_or_token: &str, amount: u64) -> Result<Message, TerminalError> {
        let now = time::OffsetDateTime::now_utc();
        let stan = self.next_stan();
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        m.set_pan(pan_or_token)?
            .set_processing_code("000000")?
            .set_transmission_date_time(&format!(
                "{:02}{:02}{:02}{:02}{:02}",
                now.month() as u8,
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            ))?
            .set_stan(&stan)?
            .set_local_time(&format!("{:02}{:02}{:02}", now.hour(), now.minute(), now.second()))?
            .set_local_date(&format!("{:02}{:02}", now.month() as u8, now.day()))?
            .set_pos_entry_mode("031")?
            .set_pos_condition_code("00")?
            .set_acquirer_id(&self.acquirer_id.clone())?
            .set_rrn(&format!("{:0>12}", stan))?
            .set_terminal_id(&self.terminal_id.clone())?
            .set_merchant_id(&self.merchant_id.clone())?
            .set_currency_code("410")?;
        m.set_amount(amount)?;
        Ok(m)
    }

    /// A `0200` cancellation (DE3 `200000`) of `amount` of `original`, named in DE90.
    pub fn cancellation(&mut self, original: &Message, amount: u64) -> Result<Message, TerminalError> {
        let pan = original.pan().unwrap_or_default().to_string();
        let mut m = self.purchase(&pan, amount)?;
        m.set_processing_code("200000")?;
        let orig = OriginalData::new(
            original.mti(),
            original.stan().unwrap_or("000000"),
            original.transmission_date_time().unwrap_or("0000000000"),
            original.acquirer_id().unwrap_or(""),
        )?;
        m.set_original_data(&orig)?;
        Ok(m)
    }

    /// A `0400` reversal of `original`.
    pub fn reversal(&mut self, original: &Message) -> Result<Message, TerminalError> {
        let mut m = Message::new(Mti::REVERSAL_REQUEST);
        for de in [2u8, 3, 4, 7, 12, 13, 22, 32, 41, 42, 49] {
            if let Some(v) = original.get(de) {
                m.set(de, v)?;
            }
        }
        m.set_stan(&self.next_stan())?;
        let orig = OriginalData::new(
            original.mti(),
            original.stan().unwrap_or("000000"),
            original.transmission_date_time().unwrap_or("0000000000"),
            original.acquirer_id().unwrap_or(""),
        )?;
        m.set_original_data(&orig)?;
        Ok(m)
    }
}

/// A terminal on one connection: [`Requests`] plus a call that waits for each answer.
pub struct Terminal {
    stream: TcpStream,
    requests: Requests,
    dialect: crate::iso8583::Dialect,
    mac: Option<TerminalMac>,
}

impl std::ops::Deref for Terminal {
    type Target = Requests;
    fn deref(&self) -> &Requests {
        &self.requests
    }
}

impl std::ops::DerefMut for Terminal {
    fn deref_mut(&mut self) -> &mut Requests {
        &mut self.requests
    }
}

impl Terminal {
    pub async fn connect(addr: &str, terminal_id: &str, merchant_id: &str) -> Result<Terminal, TerminalError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let requests = Requests::new(terminal_id, merchant_id);
        Ok(Terminal { stream, requests, dialect: crate::iso8583::Dialect::Ascii, mac: None })
    }

    /// The same terminal speaking `dialect`, with a MAC under `mac` on every request (and every
    /// answer's MAC checked).
    pub fn speaking(mut self, dialect: crate::iso8583::Dialect, mac: Option<TerminalMac>) -> Terminal {
        self.dialect = dialect;
        self.mac = mac;
        self
    }

    /// Continues the STANs after `last` (a terminal that keeps its counter across connections).
    pub fn continue_stan_after(&mut self, last: u32) {
        self.requests.stan = last % 999_999;
    }

    /// Sends a request and waits (10 s at most) for its answer.
    pub async fn call(&mut self, req: &Message) -> Result<Message, TerminalError> {
        use crate::iso8583::mac;
        let body = match &self.mac {
            None => self.dialect.encode(req)?,
            Some(k) => {
                let mut m = req.clone();
                let mut out = mac::prepare(self.dialect, &mut m)?;
                let tag = k.mac(mac::covered(self.dialect, &out))?;
                mac::seal(self.dialect, &mut out, &tag);
                out
            }
        };
        write_frame(&mut self.stream, &body).await?;
        let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut self.stream, 64 * 1024))
            .await
            .map_err(|_| TerminalError::NoAnswer)??;
        let frame = frame.ok_or(TerminalError::NoAnswer)?;
        let answer = self.dialect.decode(&frame)?;
        if let Some(k) = &self.mac {
            let (covered, tag) = mac::received(self.dialect, &frame, &answer).map_err(|_| TerminalError::BadMac)?;
            let expected = k.mac(covered)?;
            if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &tag[..])) {
                return Err(TerminalError::BadMac);
            }
        }
        Ok(answer)
    }

    /// Pays `amount` with a token or PAN (barcode entry) and returns the answer.
    pub async fn pay(&mut self, pan_or_token: &str, amount: u64) -> Result<Message, TerminalError> {
        let m = self.purchase(pan_or_token, amount)?;
        self.call(&m).await
    }

    /// Cancels `amount` of `original` and returns the answer.
    pub async fn cancel(&mut self, original: &Message, amount: u64) -> Result<Message, TerminalError> {
        let m = self.cancellation(original, amount)?;
        self.call(&m).await
    }

    /// Reverses `original` and returns the answer.
    pub async fn reverse(&mut self, original: &Message) -> Result<Message, TerminalError> {
        let m = self.reversal(original)?;
        self.call(&m).await
    }
}

/// DE55 for a chip (contactless) purchase: the CVN 18 data (docs/iso8583.md "Chip cryptogram (CVN 18)")
/// and an ARQC computed from a token's limited-use key (ICC master key), as a wallet would.
pub fn chip_data(icc_key: &[u8], amount: u64, atc: u16, unpredictable: [u8; 4]) -> Result<Vec<u8>, hsm_sim::HsmError> {
    use crate::iso8583::tlv::{Tag, write};
    let mut r = atc.to_be_bytes().to_vec();
    r.extend_from_slice(&[0; 6]);
    let sk = hsm_sim::crypto::emv::session_key(icc_key, &r)?;
    let amt = hex::decode(format!("{amount:012}")).map_err(|_| hsm_sim::HsmError::range("amount"))?;
    let today = time::OffsetDateTime::now_utc();
    let date = [(today.year() % 100) as u8, today.month() as u8, today.day()].map(|v| (v / 10) << 4 | (v % 10));
    let tags: [(u32, Vec<u8>); 11] = [
        (0x9F02, amt),
        (0x9F03, vec![0; 6]),
        (0x9F1A, vec![0x04, 0x10]),
        (0x95, vec![0; 5]),
        (0x5F2A, vec![0x04, 0x10]),
        (0x9A, date.to_vec()),
        (0x9C, vec![0x00]),
        (0x9F37, unpredictable.to_vec()),
        (0x82, vec![0x20, 0x00]),
        (0x9F36, atc.to_be_bytes().to_vec()),
        (0x9F10, vec![0x06, 0x01, 0x12, 0x03, 0xA0, 0x00, 0x00]),
    ];
    let data: Vec<u8> = tags.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let arqc = hsm_sim::crypto::emv::ac(&sk[..], &data, 2)?;
    let mut out = Vec::with_capacity(96);
    for (t, v) in tags.iter() {
        write(&mut out, Tag(*t), v).map_err(|_| hsm_sim::HsmError::format("TLV"))?;
    }
    write(&mut out, Tag::APPLICATION_CRYPTOGRAM, &arqc).map_err(|_| hsm_sim::HsmError::format("TLV"))?;
    Ok(out)
}
