//! An ISO 8583 terminal for tests: frames messages with the 2-byte length and reads answers.

#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tsp::iso8583::{Message, Mti};

pub struct Terminal {
    pub stream: TcpStream,
    pub terminal_id: String,
    pub merchant_id: String,
    pub stan: u32,
}

impl Terminal {
    pub async fn connect(addr: &str) -> Terminal {
        let stream = TcpStream::connect(addr).await.expect("connect to the ISO 8583 front");
        stream.set_nodelay(true).unwrap();
        Terminal { stream, terminal_id: "TERM0001".into(), merchant_id: "MERCHANT000001 ".into(), stan: 0 }
    }

    pub fn next_stan(&mut self) -> String {
        self.stan += 1;
        format!("{:06}", self.stan)
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next answer, or None when the server closed the connection or said nothing in time.
    pub async fn recv(&mut self) -> Option<Message> {
        let mut len = [0u8; 2];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return None,
        }
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Message::decode(&buf).expect("the server's answer decodes"))
    }

    /// Sends `m` and waits for its answer; None when the connection broke or nothing came back (a
    /// node that died).
    pub async fn try_call(&mut self, m: &Message) -> Option<Message> {
        let body = m.encode().ok()?;
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        self.stream.write_all(&out).await.ok()?;
        self.recv().await
    }

    pub async fn call(&mut self, m: &Message) -> Message {
        self.send_raw(&m.encode().unwrap()).await;
        self.recv().await.expect("an answer")
    }

    /// Pays `amount` with `token` and returns the answer.
    pub async fn pay(&mut self, token: &str, amount: u64) -> Message {
        let m = self.purchase(token, amount);
        self.call(&m).await
    }

    /// Cancels `amount` of `original` (0200, DE3 200000, DE90 naming it) and returns the answer.
    pub async fn cancel(&mut self, original: &Message, amount: u64) -> Message {
        let m = self.cancellation(original, amount);
        self.call(&m).await
    }

    /// A cancel of `amount` of `original` (0200, DE3 200000, DE90 naming it), not sent.
    pub fn cancellation(&mut self, original: &Message, amount: u64) -> Message {
        let mut m = self.purchase(original.pan().unwrap(), amount);
        m.set_processing_code("200000").unwrap();
        m.set_transmission_date_time("1123110000").unwrap();
        let orig = tsp::iso8583::OriginalData::new(
            original.mti(),
            original.stan().unwrap(),
            original.transmission_date_time().unwrap(),
            original.acquirer_id().unwrap_or(""),
        )
        .unwrap();
        m.set_original_data(&orig).unwrap();
        m
    }

    /// Reverses `original` and returns the answer.
    pub async fn reverse(&mut self, original: &Message) -> Message {
        let m = self.reversal_of(original);
        self.call(&m).await
    }

    /// A purchase request: 0200, DE3 000000, amount in minor units, KRW.
    pub fn purchase(&mut self, token: &str, amount: u64) -> Message {
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        let stan = self.next_stan();
        m.set_pan(token).unwrap();
        m.set_processing_code("000000").unwrap();
        m.set_amount(amount).unwrap();
        m.set_transmission_date_time("1123103000").unwrap();
        m.set_stan(&stan).unwrap();
        m.set_local_time("193000").unwrap();
        m.set_local_date("1123").unwrap();
        m.set_pos_entry_mode("031").unwrap();
        m.set_pos_condition_code("00").unwrap();
        m.set_acquirer_id("12345").unwrap();
        m.set_rrn(&format!("RRN{stan:0>9}")).unwrap();
        m.set_terminal_id(&self.terminal_id.clone()).unwrap();
        m.set_merchant_id(&self.merchant_id.clone()).unwrap();
        m.set_currency_code("410").unwrap();
        m
    }

    /// A reversal (0400) of `original`, with its own STAN.
    pub fn reversal_of(&mut self, original: &Message) -> Message {
        let mut m = Message::new(Mti::REVERSAL_REQUEST);
        for de in [2u8, 3, 4, 12, 13, 22, 32, 41, 42, 49] {
            if let Some(v) = original.get(de) {
                m.set(de, v).unwrap();
            }
        }
        m.set_stan(&self.next_stan()).unwrap();
        m.set_transmission_date_time("1123103500").unwrap();
        let orig = tsp::iso8583::OriginalData::new(
            original.mti(),
            original.stan().unwrap(),
            original.transmission_date_time().unwrap(),
            original.acquirer_id().unwrap_or(""),
        )
        .unwrap();
        m.set_original_data(&orig).unwrap();
        m
    }
}

/// DE55 of a contactless purchase with a CVN 18 ARQC computed from the token's limited-use key, the
/// way a wallet does: session key from the ATC, MAC algorithm 3 (padding 2) over the tags of docs/iso8583.md "Chip cryptogram (CVN 18)".
pub fn de55(icc_key_hex: &str, amount: u64, atc: u16, un: [u8; 4]) -> Vec<u8> {
    use hsm_sim::crypto::emv;
    let mk = hex::decode(icc_key_hex).unwrap();
    let atc_b = atc.to_be_bytes();
    let mut r = atc_b.to_vec();
    r.extend_from_slice(&[0; 6]);
    let sk = emv::session_key(&mk, &r).unwrap();
    let amt = hex::decode(format!("{amount:012}")).unwrap();
    let tags: Vec<(u32, Vec<u8>)> = vec![
        (0x9F02, amt),
        (0x9F03, vec![0; 6]),
        (0x9F1A, vec![0x04, 0x10]),
        (0x95, vec![0; 5]),
        (0x5F2A, vec![0x04, 0x10]),
        (0x9A, vec![0x26, 0x11, 0x23]),
        (0x9C, vec![0x00]),
        (0x9F37, un.to_vec()),
        (0x82, vec![0x20, 0x00]),
        (0x9F36, atc_b.to_vec()),
        (0x9F10, hex::decode("06011203A00000").unwrap()),
    ];
    let data: Vec<u8> = tags.iter().flat_map(|(_, v)| v.clone()).collect();
    let arqc = emv::ac(&sk[..], &data, 2).unwrap();
    let mut out = Vec::new();
    for (t, v) in &tags {
        tsp::iso8583::tlv::write(&mut out, tsp::iso8583::tlv::Tag(*t), v).unwrap();
    }
    tsp::iso8583::tlv::write(&mut out, tsp::iso8583::tlv::Tag(0x9F26), &arqc).unwrap();
    out
}
