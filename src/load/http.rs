//! The REST side of `tsp load`: preparing what the ISO 8583 modes pay with (cards, a gift
//! certificate, a local-currency wallet, one-time tokens), and the `tokenize` mode itself.
//!
//! Owns the HTTP client (reqwest, keep-alive, one pool for the run) and the shapes of the few
//! requests the load tool makes, as a pay app (`app` key) and an operator (`admin` key) make them.
//! Setup failures end the run with an error naming the route and the service's error code; in the
//! timed `tokenize` part every failure is counted instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::LoadError;
use super::stats::{Stats, Wrong};

/// The demo API keys (`demo-keys.json`).
#[derive(Clone, serde::Deserialize)]
pub struct Keys {
    pub app: String,
    #[serde(default)]
    pub van: String,
    pub admin: String,
}

/// A REST client of one service.
#[derive(Clone)]
pub struct Rest {
    client: reqwest::Client,
    base: String,
    keys: Arc<Keys>,
}

/// The card expiry of every card the load tool registers.
const EXPIRY: &str = "3012";

impl Rest {
    pub fn new(base: &str, keys: Keys) -> Result<Rest, LoadError> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| LoadError::Setup(format!("HTTP client: {e}")))?;
        Ok(Rest { client, base: base.trim_end_matches('/').to_string(), keys: Arc::new(keys) })
    }

    /// POSTs `body` with `key`; the status and the JSON answer (Null when it is not JSON).
    async fn post(&self, key: &str, path: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
        let r = self.client.post(format!("{}{path}", self.base)).bearer_auth(key).json(body).send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// POSTs and expects one of `ok` statuses; returns the answer or an error naming the failure.
    async fn expect(&self, key: &str, path: &str, body: &Value, ok: &[u16]) -> Result<Value, LoadError> {
        match self.post(key, path, body).await {
            Ok((st, v)) if ok.contains(&st) => Ok(v),
            Ok((st, v)) => Err(LoadError::Setup(format!(
                "POST {path}: HTTP {st} {}",
                v["error"]["code"].as_str().unwrap_or("(no error code)")
            ))),
            Err(e) => Err(LoadError::Setup(format!("POST {path}: {e}"))),
        }
    }

    fn id(v: &Value, what: &str) -> Result<String, LoadError> {
        v["id"].as_str().map(str::to_string).ok_or_else(|| LoadError::Setup(format!("{what}: no id in the answer")))
    }

    /// Registers a card (201, or 200 when this requestor has it already) and returns its instrument.
    pub async fn card(&self, pan: &str) -> Result<String, LoadError> {
        let v = self
            .expect(
                &self.keys.app,
                "/v1/instruments",
                &json!({ "type": "card", "pan": pan, "expiry": EXPIRY }),
                &[200, 201],
            )
            .await?;
        Self::id(&v, "card")
    }

    /// Issues a gift certificate of `face_value` KRW valid for a year and registers it: its instrument.
    pub async fn gift(&self, face_value: u64) -> Result<String, LoadError> {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::days(365);
        let at = expires
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| LoadError::Setup(format!("gift certificate expiry: {e}")))?;
        let body = json!({ "face_value": face_value.to_string(), "currency": "KRW", "expires_at": at });
        let g = self.expect(&self.keys.admin, "/v1/admin/gift-certificates", &body, &[201]).await?;
        let code = g["code"].as_str().ok_or_else(|| LoadError::Setup("gift certificate: no code".into()))?;
        let v =
            self.expect(&self.keys.app, "/v1/instruments", &json!({ "type": "gift", "code": code }), &[201]).await?;
        Self::id(&v, "gift certificate")
    }

    /// The requestor's wallet in `region` (created when missing), charged with `amount` KRW.
    pub async fn local_wallet(&self, region: &str, amount: u64) -> Result<String, LoadError> {
        let v = self
            .expect(&self.keys.app, "/v1/instruments", &json!({ "type": "local", "region": region }), &[200, 201])
            .await?;
        let id = Self::id(&v, "local wallet")?;
        let path = format!("/v1/instruments/{id}/charge");
        self.expect(&self.keys.app, &path, &json!({ "amount": amount.to_string() }), &[201]).await?;
        Ok(id)
    }

    /// Registers terminal `id` (DE41) for `merchant` (DE42) in the terminal registry (201, or 200
    /// when it was already).
    pub async fn terminal(&self, id: &str, merchant: &str) -> Result<(), LoadError> {
        let body = json!({ "id": id, "merchant_id": merchant });
        self.expect(&self.keys.admin, "/v1/admin/terminals", &body, &[200, 201]).await.map(|_| ())
    }

    /// Registers every terminal of `terminals` (id, merchant), `parallel` requests at a time.
    pub async fn terminals(&self, terminals: Vec<(String, &'static str)>, parallel: usize) -> Result<(), LoadError> {
        let terminals = Arc::new(terminals);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::<Result<(), LoadError>>::new();
        for _ in 0..parallel.max(1) {
            let (rest, terminals, next) = (self.clone(), terminals.clone(), next.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, merchant)) = terminals.get(i) else { return Ok(()) };
                    rest.terminal(id, merchant).await?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| LoadError::Setup(format!("terminal registration task: {e}")))??;
        }
        Ok(())
    }

    /// A one-time token of `instrument`.
    pub async fn token(&self, instrument: &str) -> Result<String, LoadError> {
        let v = self.expect(&self.keys.app, "/v1/tokens", &json!({ "instrument_id": instrument }), &[201]).await?;
        v["token"].as_str().map(str::to_string).ok_or_else(|| LoadError::Setup("POST /v1/tokens: no token".into()))
    }

    /// One token for each instrument named (in that order), `parallel` requests at a time.
    pub async fn tokens(&self, instruments: Vec<String>, parallel: usize) -> Result<Vec<String>, LoadError> {
        let instruments = Arc::new(instruments);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..parallel.max(1) {
            let (rest, instruments, next) = (self.clone(), instruments.clone(), next.clone());
            tasks.spawn(async move {
                let mut got = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(ins) = instruments.get(i) else { return Ok::<_, LoadError>(got) };
                    got.push((i, rest.token(ins).await?));
                }
            });
        }
        let mut out = vec![String::new(); instruments.len()];
        while let Some(r) = tasks.join_next().await {
            let got = r.map_err(|e| LoadError::Setup(format!("token task: {e}")))??;
            for (i, t) in got {
                if let Some(slot) = out.get_mut(i) {
                    *slot = t;
                }
            }
        }
        Ok(out)
    }

    /// Registers the cards `pans`, `parallel` at a time: their instruments, in order.
    pub async fn cards(&self, pans: Vec<String>, parallel: usize) -> Result<Vec<String>, LoadError> {
        let mut out = Vec::with_capacity(pans.len());
        for chunk in pans.chunks(parallel.max(1)) {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, pan) in chunk.iter().enumerate() {
                let (rest, pan) = (self.clone(), pan.clone());
                tasks.spawn(async move { (i, rest.card(&pan).await) });
            }
            let mut ids = vec![String::new(); chunk.len()];
            while let Some(r) = tasks.join_next().await {
                let (i, id) = r.map_err(|e| LoadError::Setup(format!("card task: {e}")))?;
                if let Some(slot) = ids.get_mut(i) {
                    *slot = id?;
                }
            }
            out.extend(ids);
        }
        Ok(out)
    }

    /// The `tokenize` mode on one client: `POST /v1/tokens` for `instrument` until `quota` requests
    /// (None: no limit) or `deadline`. Right is `201` with a 16-digit, Luhn-valid token.
    pub async fn tokenize(&self, instrument: &str, quota: Option<u64>, deadline: Option<Instant>) -> Stats {
        let body = json!({ "instrument_id": instrument });
        let next = || Some((body.clone(), ()));
        let check = |_: &(), status: u16, v: &Value| {
            let token_ok = v["token"]
                .as_str()
                .is_some_and(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_digit()) && crate::luhn::is_valid(t));
            if status != 201 {
                Some(Wrong::Code)
            } else if !token_ok {
                Some(Wrong::Echo)
            } else {
                None
            }
        };
        self.timed("tokenize", &self.keys.app, "/v1/tokens", quota, deadline, next, check).await
    }

    /// The `register` mode on one client: `POST /v1/instruments` with a new card each time (`pan()`
    /// draws the run's next number; None once they are spent), until `quota` requests or `deadline`.
    /// Right is `201` with an `ins_…` id and the card's last four digits.
    pub async fn register(
        &self,
        pan: impl Fn() -> Option<String> + Send,
        quota: Option<u64>,
        deadline: Option<Instant>,
    ) -> Stats {
        let next = || {
            let pan = pan()?;
            let last4 = pan[pan.len().saturating_sub(4)..].to_string();
            Some((json!({ "type": "card", "pan": pan, "expiry": EXPIRY }), last4))
        };
        let check = |last4: &String, status: u16, v: &Value| {
            let right = v["id"].as_str().is_some_and(|id| id.starts_with("ins_"))
                && v["last4"].as_str() == Some(last4.as_str())
                && v["status"] == "active";
            if status != 201 {
                Some(Wrong::Code)
            } else if !right {
                Some(Wrong::Echo)
            } else {
                None
            }
        };
        self.timed("register", &self.keys.app, "/v1/instruments", quota, deadline, next, check).await
    }

    /// The `detokenize` mode on one client: `POST /v1/detokenize` with the `van` key for each of
    /// `tokens` (token, the PAN behind it) in turn, until `quota` requests or `deadline`. Right is
    /// `200` with that PAN and the card's expiry.
    pub async fn detokenize(
        &self,
        tokens: Vec<(String, String)>,
        quota: Option<u64>,
        deadline: Option<Instant>,
    ) -> Stats {
        let mut turn = tokens.iter().cycle();
        let next = || turn.next().map(|(t, pan)| (json!({ "token": t }), pan.clone()));
        let check = |pan: &String, status: u16, v: &Value| {
            if status != 200 {
                Some(Wrong::Code)
            } else if v["pan"].as_str() != Some(pan.as_str()) || v["expiry"] != EXPIRY {
                Some(Wrong::Echo)
            } else {
                None
            }
        };
        self.timed("detokenize", &self.keys.van, "/v1/detokenize", quota, deadline, next, check).await
    }

    /// A timed REST mode on one client: POSTs what `next` gives (a body and what the answer must
    /// show) with `key` to `path`, one at a time, until `quota` requests (None: no limit),
    /// `deadline`, or `next` has no more; `check` names what is wrong with an answer, if anything.
    #[allow(clippy::too_many_arguments)]
    async fn timed<E>(
        &self,
        op: &'static str,
        key: &str,
        path: &str,
        quota: Option<u64>,
        deadline: Option<Instant>,
        mut next: impl FnMut() -> Option<(Value, E)>,
        check: impl Fn(&E, u16, &Value) -> Option<Wrong>,
    ) -> Stats {
        let mut stats = Stats::default();
        let mut sent = 0u64;
        while quota.is_none_or(|q| sent < q) && deadline.is_none_or(|d| Instant::now() < d) {
            let Some((body, expected)) = next() else { break };
            sent += 1;
            stats.op(op).requests += 1;
            let t0 = Instant::now();
            let answer = self.post(key, path, &body).await;
            let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
            let o = stats.op(op);
            match answer {
                Ok((status, v)) => {
                    o.answered(&status.to_string(), micros);
                    if let Some(w) = check(&expected, status, &v) {
                        o.wrong(w);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, path, "load: request failed");
                    o.wrong(if e.is_timeout() { Wrong::Timeout } else { Wrong::Connection });
                }
            }
        }
        stats
    }
}
