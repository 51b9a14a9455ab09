//! The payment flows behind the ISO 8583 front. A message is parsed once into a [`Request`]
//! (`request`), whose [`Command`] picks the flow: one file per message (`purchase`, `cancel`,
//! `reversal`, `tokenize` for `0100` and card-number payments, `echo`). A flow makes the checks that
//! hold for every instrument, then one `match` on the instrument's kind hands it to that kind's
//! module in `funding/` (card, gift certificate, local-currency wallet), which owns its pay, cancel
//! and reverse. Steps more than one flow takes live once: `issuer` (asking an issuer, one timeout
//! policy), `chip` (ARQC in, ARPC out), `reply` (the one answer builder), `advice` (the `0420`s
//! owed to issuers), `recovery` (transactions cut off by a crash).
//!
//! A request that names a terminal passes the terminal registry first (`crate::terminals::admit`):
//! an unknown or suspended terminal gets `58`, a foreign merchant `03`, nothing recorded.
//!
//! Every recorded request is first claimed under its duplicate key (message class, DE41, DE11, DE7,
//! DE32): a repeat gets the first answer again with no second effect, the same key with other
//! content gets `94`. The answer is stored with the transaction before it is sent.

pub mod activation;
pub mod advice;
mod cancel;
mod chip;
pub mod codes;
mod echo;
mod funding;
mod issuer;
mod link;
mod purchase;
pub mod recovery;
mod reply;
mod request;
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
use crate::money::Amount;
use crate::store::{Claim, LeaseEnd, Store, TxnKind, TxnRow, TxnStatus};
use crate::terminals::Registry;
use crate::tls::PeerIdentity;
use crate::tokens::Tokens;
use crate::vault::Vault;
use chip::Chip;
pub use codes::ResponseCode;
pub use link::LinkKeys;
pub use reply::Reply;
use request::{Command, Request};

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
    /// Which terminals may send requests.
    pub(crate) terminals: Arc<Registry>,
    /// The terminals' MAC and zone keys (`link`).
    pub(crate) link_keys: Arc<LinkKeys>,
    /// This node's writers of each local-currency wallet (`stored_value::lane`).
    pub(crate) wallets: Arc<crate::stored_value::lane::Lanes>,
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
        let terminals = Arc::new(Registry::new(store.clone()));
        let link_keys =
            Arc::new(LinkKeys::new(store.clone(), hsm.clone(), clock.clone(), config.iso.key_overlap_seconds));
        let wallets = Arc::new(crate::stored_value::lane::Lanes::new());
        Payments { store, tokens, vault, hsm, config, clock, hosts, terminals, link_keys, wallets }
    }

    /// This node's wallet lanes: every change to a local-currency wallet on this node goes through
    /// them (the REST charge as well as payments).
    pub fn wallets(&self) -> &crate::stored_value::lane::Lanes {
        &self.wallets
    }

    /// The terminal registry this front checks requests against (the admin API changes it through
    /// the same value, so its cache sees each change at once).
    pub fn terminals(&self) -> Arc<Registry> {
        self.terminals.clone()
    }

    /// The terminals' link keys.
    pub fn link_keys(&self) -> Arc<LinkKeys> {
        self.link_keys.clone()
    }

    /// Handles one decoded request that came over a connection whose client certificate says `peer`
    /// (None: clear text, or TLS without a client certificate).
    pub async fn handle(&self, msg: Message, peer: Option<&PeerIdentity>) -> Answer {
        self.handle_on(msg, peer, false).await
    }

    /// [`Payments::handle`] for a request whose MAC was verified (`authenticated`): only such a
    /// request may change its terminal's keys (a key exchange elsewhere is answered `12`).
    pub async fn handle_on(&self, msg: Message, peer: Option<&PeerIdentity>, authenticated: bool) -> Answer {
        let started = Instant::now();
        let req = Request::parse(&msg, &self.config);
        let Some(resp_mti) = req.resp_mti else { return Answer::Nothing };
        let answer = match self.admit(&req, peer).await {
            Ok(()) if matches!(req.command, Command::KeyExchange) => match authenticated {
                true => self.key_exchange(req.msg).await,
                false => Reply::network(req.msg, ResponseCode::INVALID_TRANSACTION),
            },
            Ok(()) => self.answer(&req, resp_mti, started).await,
            Err(code) if matches!(req.command, Command::KeyExchange) => Reply::network(req.msg, code),
            Err(code) => Reply::to(req.msg, resp_mti, code),
        };
        let code = answer.response_code().unwrap_or("none");
        crate::metrics::get().iso(msg.mti().as_str(), code, started.elapsed());
        encode(answer)
    }

    /// The terminal registry's verdict on a request that names a terminal (DE41). Echoes and
    /// messages without DE41 pass: the flows answer those (`30` where DE41 is needed).
    async fn admit(&self, req: &Request<'_>, peer: Option<&PeerIdentity>) -> Result<(), ResponseCode> {
        if matches!(req.command, Command::Echo) {
            return Ok(());
        }
        let Some(id) = req.terminal.filter(|t| !t.is_empty()) else { return Ok(()) };
        let t = self.terminals.lookup(id).await.map_err(|e| {
            tracing::error!(error = %e, "terminal registry unavailable");
            ResponseCode::SYSTEM_ERROR
        })?;
        let reversal = matches!(req.command, Command::Reversal);
        crate::terminals::admit(t.as_deref(), req.merchant, peer, reversal).map_err(|refusal| {
            tracing::info!(terminal = id, ?refusal, "request refused by the terminal registry");
            ResponseCode::from(refusal)
        })
    }

    async fn answer(&self, req: &Request<'_>, resp_mti: Mti, started: Instant) -> Reply {
        let result = match req.command {
            Command::Echo => return echo::echo(req.msg),
            Command::KeyExchange => return Reply::network(req.msg, ResponseCode::INVALID_TRANSACTION),
            Command::Verify => tokenize::tokenize(self, req, started).await,
            Command::Purchase => purchase::purchase(self, req, started).await,
            Command::Cancel => cancel::cancel(self, req, started).await,
            Command::Reversal => reversal::reversal(self, req, started).await,
            Command::Unsupported => return Reply::to(req.msg, resp_mti, ResponseCode::INVALID_TRANSACTION),
        };
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, mti = req.msg.mti().as_str(), "payment failed");
            Reply::to(req.msg, resp_mti, ResponseCode::SYSTEM_ERROR)
        })
    }

    /// The answer to a request over its connection's rate limit: `91` (the switch is not taking it
    /// now), without processing it — the same request sent again later is handled normally.
    pub fn throttled(&self, req: &Message) -> Answer {
        let Some(resp_mti) = req.mti().response() else { return Answer::Nothing };
        crate::metrics::get().iso(req.mti().as_str(), ResponseCode::ISSUER_UNAVAILABLE.as_str(), Duration::ZERO);
        encode(Reply::to(req, resp_mti, ResponseCode::ISSUER_UNAVAILABLE))
    }

    /// The answer to a request that could not be decoded but whose MTI could be read: `30`.
    pub fn format_error(&self, partial: &Message) -> Answer {
        match partial.mti().response() {
            Some(m) => encode(Reply::to(partial, m, ResponseCode::FORMAT_ERROR)),
            None => Answer::Nothing,
        }
    }

    /// Opens the transaction of a recorded request, not yet claimed; None when its duplicate key is
    /// incomplete (it is answered `30`, see [`Request::refuse`], and not recorded).
    fn open<'a>(&'a self, req: &'a Request<'a>, started: Instant) -> Option<InFlight<'a>> {
        let resp_mti = req.resp_mti.unwrap_or(Mti::FINANCIAL_RESPONSE);
        let txn = req.new_txn(self.clock.now_ms())?;
        Some(InFlight { p: self, req, txn, resp_mti, started, chip: None })
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

/// One recorded request being handled: the platform, the parsed request, its transaction row,
/// the answer's MTI, when it arrived, and its verified chip cryptogram once there is one. The flows
/// decide; this answers and stores.
pub(crate) struct InFlight<'a> {
    p: &'a Payments,
    req: &'a Request<'a>,
    txn: TxnRow,
    resp_mti: Mti,
    started: Instant,
    chip: Option<Chip>,
}

impl InFlight<'_> {
    /// Claims the transaction's duplicate key, with the keyed hash of the request's content.
    /// `Err(answer)` when the key is taken: the first answer again, or `94` when the content
    /// differs. A first request still in flight is waited for; one cut off by a crash is resolved
    /// now (see `recovery`) — or, for a reversal, which took no effect, taken over: this
    /// transaction becomes that row and this request carries it out.
    async fn claim(&mut self) -> crate::Result<Result<(), Reply>> {
        self.hash_content().await?;
        match self.p.store.claim_transaction(&self.txn).await? {
            Claim::New => Ok(Ok(())),
            Claim::Existing(e) => self.repeat(*e).await,
        }
    }

    /// Records on the transaction the keyed hash of the request's content, which tells a repeat
    /// from a different request under the same key.
    async fn hash_content(&mut self) -> crate::Result<()> {
        self.txn.content_hash = keyed_hash(&self.p.hsm, &request_digest(self.req.msg)).await?;
        Ok(())
    }

    /// This request's key is taken by `existing`: see [`InFlight::claim`].
    async fn repeat(&mut self, existing: TxnRow) -> crate::Result<Result<(), Reply>> {
        let p = self.p;
        if existing.content_hash != self.txn.content_hash {
            return Ok(Err(self.respond(ResponseCode::DUPLICATE)));
        }
        let stale_ms = p.stale_after().as_millis() as i64;
        // A pending row turns stale within `stale_ms` of its creation; the deadline only bounds a
        // store that keeps failing to resolve it.
        let deadline = Instant::now() + p.stale_after() + p.duplicate_wait();
        let mut row = existing;
        loop {
            if let Some(r) = row.response.as_deref().and_then(Reply::stored) {
                return Ok(Err(r));
            }
            if row.status == TxnStatus::Pending && row.created_at + stale_ms <= p.clock.now_ms() {
                if row.kind == TxnKind::Reversal {
                    tracing::warn!(transaction = %row.id, "a repeat takes over a reversal cut off by a crash");
                    self.txn.id = row.id;
                    self.txn.created_at = row.created_at;
                    return Ok(Ok(()));
                }
                if let Some(r) = recovery::resolve(p, &row).await? {
                    return Ok(Err(r));
                }
            }
            if Instant::now() > deadline {
                return Ok(Err(self.respond(ResponseCode::SYSTEM_ERROR)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            match p.store.transaction(&row.id).await? {
                Some(r) => row = r,
                None => return Ok(Err(self.respond(ResponseCode::SYSTEM_ERROR))),
            }
        }
    }

    /// The bare answer with `code`, echoing the fields that identify the request (never card
    /// data: see [`Reply`]).
    fn respond(&self, code: ResponseCode) -> Reply {
        Reply::to(self.req.msg, self.resp_mti, code)
    }

    /// The answer with `code`, the approval code the transaction holds (DE38) and, for a chip
    /// payment, the ARPC (DE55).
    async fn reply(&self, code: ResponseCode) -> crate::Result<Reply> {
        let mut resp = self.respond(code);
        if let Some(auth) = self.txn.auth_code.as_deref() {
            resp.set_authorization_code(auth);
        }
        if let Some(c) = &self.chip
            && let Some(de55) = c.arpc(&self.p.hsm, code).await?
        {
            resp.set_icc_data(&de55);
        }
        Ok(resp)
    }

    /// Answers `code` (approved or declined by it) and stores the outcome with the answer, for an
    /// outcome that moves nothing and holds nothing.
    async fn conclude(&mut self, code: ResponseCode) -> crate::Result<Reply> {
        let resp = self.reply(code).await?;
        let status = if code.is_approved() { TxnStatus::Approved } else { TxnStatus::Declined };
        self.finish(&resp, status).await?;
        Ok(resp)
    }

    /// Stores the outcome and answer of a transaction: the answer is durable before it is sent.
    async fn finish(&mut self, resp: &Reply, status: TxnStatus) -> crate::Result<()> {
        self.fill(resp, status);
        self.p.store.update_transaction(&self.txn).await?;
        Ok(())
    }

    /// Declines with `code` and stores it with what follows from it, in one database transaction:
    /// the token leased to the payment given back, a cancel's reservation (`release`: payment and
    /// amount) returned, and with `owe_advice` the issuer's `0420` owed.
    async fn decline(
        &mut self,
        code: ResponseCode,
        release: Option<(&str, Amount)>,
        owe_advice: bool,
    ) -> crate::Result<Reply> {
        let resp = self.reply(code).await?;
        self.fill(&resp, TxnStatus::Declined);
        let now = self.p.clock.now_ms();
        let advice = owe_advice.then(|| advice::owed(&self.txn, now));
        self.p.store.finish_declined(&self.txn, LeaseEnd::Release, release, advice.as_ref(), now).await?;
        Ok(resp)
    }

    fn fill(&mut self, resp: &Reply, status: TxnStatus) {
        let t = &mut self.txn;
        t.status = status;
        t.response_code = resp.response_code().map(Into::into);
        t.auth_code = resp.authorization_code().map(Into::into);
        t.response = resp.encode().ok();
        t.total_ms = Some(self.started.elapsed().as_millis() as i64);
        t.updated_at = self.p.clock.now_ms();
    }

    /// Records on this transaction the instrument of `original` (a cancel's or reversal's).
    fn follow(&mut self, original: &TxnRow) {
        let t = &mut self.txn;
        t.original_id = Some(original.id.clone());
        t.token_id = original.token_id.clone();
        t.instrument_id = original.instrument_id.clone();
        t.instrument_kind = original.instrument_kind;
        t.masked_pan = original.masked_pan.clone();
        t.issuer_id = original.issuer_id.clone();
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
