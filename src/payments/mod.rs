//! The payment flows behind the ISO 8583 front: one file per message (purchase, cancel, reversal,
//! echo), the local-currency wallet flows they share (`local`), the response codes, and the reversal
//! advices owed to issuers.
//!
//! Every request is first recorded under its duplicate key (message class, DE41, DE11, DE7, DE32):
//! a repeat gets the first answer again with no second effect, the same key with other content gets
//! `94`. The answer is stored with the transaction before it is sent.

pub mod advice;
mod cancel;
pub mod codes;
mod echo;
mod local;
mod purchase;
pub mod recovery;
mod reply;
mod reversal;
pub mod tokenize;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::Config;
use crate::hsm::Hsm;
use crate::iso8583::{Message, Mti};
use crate::issuer::host::IssuerHost;
use crate::store::{Claim, LeaseEnd, Store, TxnKind, TxnRow, TxnStatus};
use crate::tokens::Tokens;
use crate::vault::Vault;
pub use codes::ResponseCode;
pub use reply::Reply;

/// Failed attempts (bad cryptogram, wrong domain) after which a token locks.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;

pub struct Payments {
    pub(crate) store: Store,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) vault: Arc<Vault>,
    pub(crate) hsm: Hsm,
    pub(crate) config: Arc<Config>,
    pub(crate) clock: Clock,
    /// Authorization hosts by issuer id.
    pub(crate) hosts: HashMap<String, Arc<dyn IssuerHost>>,
}

/// What asking an issuer gave.
enum IssuerAnswer {
    Answered(Box<Message>),
    /// Nothing was sent (no host, or it could not be reached): the issuer knows nothing of it.
    Unavailable,
    /// Sent, but no answer (in time, or readable): the issuer may have acted on it.
    Unknown,
}

/// What the front should do with a frame.
pub enum Answer {
    /// Send these bytes (one encoded message).
    Send(Vec<u8>),
    /// Nothing to answer (a response or notification arrived).
    Nothing,
}

impl Payments {
    pub fn new(
        store: Store,
        tokens: Arc<Tokens>,
        vault: Arc<Vault>,
        hsm: Hsm,
        config: Arc<Config>,
        clock: Clock,
        hosts: HashMap<String, Arc<dyn IssuerHost>>,
    ) -> Self {
        Payments { store, tokens, vault, hsm, config, clock, hosts }
    }

    /// Handles one decoded request.
    pub async fn handle(&self, req: Message) -> Answer {
        let started = Instant::now();
        let mti = req.mti();
        let Some(resp_mti) = mti.response() else { return Answer::Nothing };
        let answer = self.answer(&req, resp_mti, started).await;
        let code = answer.as_ref().and_then(|m| m.response_code().map(str::to_string));
        crate::metrics::get().iso(mti.as_str(), code.as_deref().unwrap_or("none"), started.elapsed());
        match answer {
            Some(m) => encode(m),
            None => Answer::Nothing,
        }
    }

    async fn answer(&self, req: &Message, resp_mti: Mti, started: Instant) -> Option<Reply> {
        let mti = req.mti();
        let result = match (mti.as_bytes(), req.processing_code().map(|p| p.get(..2).unwrap_or(""))) {
            (b"0800", _) => return Some(echo::echo(req)),
            (b"0100", Some("90")) => tokenize::tokenize(self, req, started).await,
            (b"0200" | b"0201", Some("00")) => purchase::purchase(self, req, started).await,
            (b"0200" | b"0201", Some("20")) => cancel::cancel(self, req, started).await,
            (b"0400" | b"0401" | b"0420" | b"0421", _) => reversal::reversal(self, req, started).await,
            _ => Ok(self.respond(req, resp_mti, ResponseCode::INVALID_TRANSACTION)),
        };
        match result {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %e, mti = mti.as_str(), "payment failed");
                Some(self.respond(req, resp_mti, ResponseCode::SYSTEM_ERROR))
            }
        }
    }

    /// The answer to a request over its connection's rate limit: `91` (the switch is not taking it
    /// now), without processing it — the same request sent again later is handled normally.
    pub fn throttled(&self, req: &Message) -> Answer {
        let Some(resp_mti) = req.mti().response() else { return Answer::Nothing };
        crate::metrics::get().iso(req.mti().as_str(), ResponseCode::ISSUER_UNAVAILABLE.as_str(), Duration::ZERO);
        encode(self.respond(req, resp_mti, ResponseCode::ISSUER_UNAVAILABLE))
    }

    /// The answer to a request that could not be decoded but whose MTI could be read: `30`.
    pub fn format_error(&self, partial: &Message) -> Answer {
        match partial.mti().response() {
            Some(m) => encode(self.respond(partial, m, ResponseCode::FORMAT_ERROR)),
            None => Answer::Nothing,
        }
    }

    /// A response to `req` with `code`, echoing the fields that identify the request (never card
    /// data: see [`Reply`]).
    pub fn respond(&self, req: &Message, mti: Mti, code: ResponseCode) -> Reply {
        Reply::to(req, mti, code)
    }

    /// A new transaction row for `req` under its duplicate key, or None when the key fields are
    /// missing (then the request is answered `30` and not recorded).
    fn new_txn(&self, req: &Message, kind: TxnKind, class: &str) -> Option<TxnRow> {
        let now = self.clock.now_ms();
        let acquirer = format!("{:0>11}", req.acquirer_id().unwrap_or(""));
        Some(TxnRow {
            id: format!("txn_{}", uuid::Uuid::now_v7().simple()),
            kind,
            status: TxnStatus::Pending,
            mti: req.mti().as_str().into(),
            msg_class: class.into(),
            terminal_id: req.terminal_id()?.into(),
            stan: req.stan()?.into(),
            transmitted: req.transmission_date_time()?.into(),
            acquirer_id: acquirer,
            // Set by the claim: the keyed hash of the request.
            content_hash: String::new(),
            processing_code: req.processing_code().map(Into::into),
            merchant_id: req.merchant_id().map(|m| m.trim_end().to_string()),
            amount: req.amount().and_then(|a| i64::try_from(a).ok()),
            currency: req.currency_code().map(Into::into),
            entry_mode: req.pos_entry_mode().map(Into::into),
            rrn: req.rrn().map(Into::into),
            created_at: now,
            updated_at: now,
            ..Default::default()
        })
    }

    /// Claims `txn`'s duplicate key, with the keyed hash of `req`'s content. `Err(answer)` when the key is
    /// taken: the first answer again, or `94` when the content differs. A first request still in
    /// flight is waited for; one cut off by a crash is resolved now (see `recovery`) — or, for a
    /// reversal, which took no effect, taken over: `txn` becomes that row and this request carries
    /// it out.
    async fn claim(&self, req: &Message, txn: &mut TxnRow, resp_mti: Mti) -> crate::Result<Result<(), Reply>> {
        txn.content_hash = keyed_hash(&self.hsm, &request_digest(req)).await?;
        let existing = match self.store.claim_transaction(txn).await? {
            Claim::New => return Ok(Ok(())),
            Claim::Existing(e) => e,
        };
        if existing.content_hash != txn.content_hash {
            return Ok(Err(self.respond(req, resp_mti, ResponseCode::DUPLICATE)));
        }
        let stale_ms = self.stale_after().as_millis() as i64;
        // A pending row turns stale within `stale_ms` of its creation; the deadline only bounds a
        // store that keeps failing to resolve it.
        let deadline = Instant::now() + self.stale_after() + self.duplicate_wait();
        let mut row = *existing;
        loop {
            if let Some(r) = row.response.as_deref().and_then(Reply::stored) {
                return Ok(Err(r));
            }
            if row.status == TxnStatus::Pending && row.created_at + stale_ms <= self.clock.now_ms() {
                if row.kind == TxnKind::Reversal {
                    tracing::warn!(transaction = %row.id, "a repeat takes over a reversal cut off by a crash");
                    txn.id = row.id;
                    txn.created_at = row.created_at;
                    return Ok(Ok(()));
                }
                if let Some(r) = recovery::resolve(self, &row).await? {
                    return Ok(Err(r));
                }
            }
            if Instant::now() > deadline {
                return Ok(Err(self.respond(req, resp_mti, ResponseCode::SYSTEM_ERROR)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            match self.store.transaction(&row.id).await? {
                Some(r) => row = r,
                None => return Ok(Err(self.respond(req, resp_mti, ResponseCode::SYSTEM_ERROR))),
            }
        }
    }

    /// Stores the outcome and answer of a transaction: the answer is durable before it is sent.
    async fn finish(&self, txn: &mut TxnRow, resp: &Reply, status: TxnStatus, started: Instant) -> crate::Result<()> {
        self.fill(txn, resp, status, started);
        self.store.update_transaction(txn).await?;
        Ok(())
    }

    /// Stores a declined outcome and its answer with what follows from it, in one database
    /// transaction: the token leased to the payment given back, a cancel's reservation
    /// (`release`: payment and amount) returned, and with `owe_advice` the issuer's `0420` owed.
    async fn decline(
        &self,
        txn: &mut TxnRow,
        resp: &Reply,
        started: Instant,
        release: Option<(&str, i64)>,
        owe_advice: bool,
    ) -> crate::Result<()> {
        self.fill(txn, resp, TxnStatus::Declined, started);
        let now = self.clock.now_ms();
        let advice = owe_advice.then(|| advice::owed(txn, now));
        self.store.finish_declined(txn, LeaseEnd::Release, release, advice.as_ref(), now).await?;
        Ok(())
    }

    fn fill(&self, txn: &mut TxnRow, resp: &Reply, status: TxnStatus, started: Instant) {
        txn.status = status;
        txn.response_code = resp.response_code().map(Into::into);
        txn.auth_code = resp.authorization_code().map(Into::into);
        txn.response = resp.encode().ok();
        txn.total_ms = Some(started.elapsed().as_millis() as i64);
        txn.updated_at = self.clock.now_ms();
    }

    /// Asks an issuer, the one way every flow does: the issuer's host, under its configured
    /// timeout (and a second more as a guard should the host itself not keep it). Records the
    /// time at the issuer in `txn`.
    async fn ask_issuer(&self, issuer_id: Option<&str>, msg: Message, txn: &mut TxnRow) -> IssuerAnswer {
        let Some(id) = issuer_id else { return IssuerAnswer::Unavailable };
        let Some(host) = self.hosts.get(id).cloned() else { return IssuerAnswer::Unavailable };
        let ms = self.config.issuers.iter().find(|i| i.id == id).map_or(3000, |i| i.timeout_ms);
        let asked = Instant::now();
        let answer = tokio::time::timeout(Duration::from_millis(ms + 1000), host.send(msg)).await;
        txn.issuer_ms = Some(asked.elapsed().as_millis() as i64);
        match answer {
            Ok(Ok(ans)) => IssuerAnswer::Answered(Box::new(ans)),
            Ok(Err(e)) if !e.outcome_unknown() => {
                tracing::warn!(issuer = id, error = %e, "issuer unavailable");
                IssuerAnswer::Unavailable
            }
            Ok(Err(e)) => {
                tracing::warn!(issuer = id, error = %e, "issuer did not answer");
                IssuerAnswer::Unknown
            }
            Err(_) => {
                tracing::warn!(issuer = id, "issuer did not answer in time");
                IssuerAnswer::Unknown
            }
        }
    }

    /// How long a duplicate waits for the first request's answer.
    fn duplicate_wait(&self) -> Duration {
        Duration::from_millis(self.longest_issuer_timeout_ms() + 2000)
    }

    /// After how long a pending transaction is taken as cut off by a crash: the longest issuer
    /// timeout and a margin for the steps around the issuer call.
    pub(crate) fn stale_after(&self) -> Duration {
        Duration::from_millis(self.longest_issuer_timeout_ms() + 5000)
    }

    fn longest_issuer_timeout_ms(&self) -> u64 {
        self.config.issuers.iter().map(|i| i.timeout_ms).max().unwrap_or(3000)
    }
}

/// Runs `pass` at once and then every `period` until `stop` changes; a failed pass is logged
/// (`what` names it) and the next one runs as usual. The payments' background tasks.
async fn every<F, Fut>(period: Duration, what: &str, mut stop: tokio::sync::watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<usize>>,
{
    loop {
        if let Err(e) = pass().await {
            tracing::warn!(error = %e, "{what}");
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
    }
}

fn encode(m: Reply) -> Answer {
    match m.encode() {
        Ok(b) => Answer::Send(b),
        Err(e) => {
            tracing::error!(error = %e, "could not encode a response");
            Answer::Nothing
        }
    }
}

/// The stored duplicate-detection hash of a request digest: HMAC-SHA256 under the HSM's duplicate
/// key, so that a digest over a card number cannot be tried against card numbers. `h1:` marks it;
/// earlier versions stored the bare digest, which the start-up scrub turns into this form, so
/// repeats across an upgrade still match.
pub(crate) async fn keyed_hash(hsm: &Hsm, digest: &[u8]) -> crate::Result<String> {
    let mac = hsm.hmac(hsm_sim::KeyRef::stored(crate::vault::keys::DUPLICATE_LABEL), digest).await?;
    Ok(format!("h1:{}", hex::encode(mac)))
}

/// Brings transactions stored by earlier versions up to this one: their bare duplicate digest
/// becomes its keyed form (so repeats across the upgrade still match) and card data is dropped from
/// their stored answers (earlier versions echoed DE2). Runs at start, in batches, until none is
/// left; returns how many rows changed.
pub async fn scrub_stored(store: &Store, hsm: &Hsm) -> crate::Result<u64> {
    let mut total = 0;
    loop {
        let batch = store.unscrubbed_transactions(500).await?;
        if batch.is_empty() {
            break;
        }
        let mut rows = Vec::with_capacity(batch.len());
        for (id, digest, response) in batch {
            let digest = hex::decode(&digest)
                .map_err(|_| crate::store::StoreError::Corrupt("a stored digest that is not hex".into()))?;
            let hash = keyed_hash(hsm, &digest).await?;
            let response = response.as_deref().and_then(Reply::stored).and_then(|r| r.encode().ok());
            rows.push((id, hash, response));
        }
        total += store.scrub_transactions(&rows).await?;
    }
    Ok(total)
}

/// SHA-256 over the request's data elements (not the MTI, so a `0201` repeat matches its `0200`).
/// It may cover a card number in DE2: only its keyed form ([`keyed_hash`]) is stored.
fn request_digest(req: &Message) -> [u8; 32] {
    let mut h = Sha256::new();
    for (de, v) in req.fields() {
        h.update([de]);
        h.update((v.len() as u32).to_be_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().into()
}

/// The transaction DE90 names: same terminal (DE41), the original's class, STAN, DE7 and acquirer.
/// An original still at its issuer is waited for, so what follows applies to its outcome.
pub(crate) async fn find_original(
    p: &Payments,
    terminal: &str,
    orig: &crate::iso8583::OriginalData,
) -> crate::Result<Option<TxnRow>> {
    let class = orig.mti().as_str().get(..2).unwrap_or("02").to_string();
    let deadline = Instant::now() + p.duplicate_wait();
    loop {
        let found = p
            .store
            .transaction_by_key(&class, terminal, orig.stan(), orig.transmission_date_time(), orig.acquirer_id())
            .await?;
        match found {
            Some(o) if o.status == TxnStatus::Pending && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => return Ok(other),
        }
    }
}

/// The duplicate key of the original DE90 names, as stored in `original_key`.
pub(crate) fn original_key(terminal: &str, orig: &crate::iso8583::OriginalData) -> String {
    let mti = orig.mti();
    let class = mti.as_str().get(..2).unwrap_or("02");
    format!("{class}|{terminal}|{}|{}|{}", orig.stan(), orig.transmission_date_time(), orig.acquirer_id())
}

/// Closes the current business day now; returns the settlement's id and instant.
pub async fn settle(store: &Store, clock: &Clock) -> crate::Result<(String, i64)> {
    let id = format!("stl_{}", uuid::Uuid::now_v7().simple());
    let now = clock.now_ms();
    store.insert_settlement(&id, now, "manual").await?;
    Ok((id, now))
}
