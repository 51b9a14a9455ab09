//! A node whose key store is sealed, waiting for its custodians (docs/security.md "Sealed key
//! store"). It holds no key: it serves nothing that needs one, and says so.
//!
//! - REST: `GET /healthz` is 503 `{"status":"sealed"}`; `GET /v1/sys/seal-status` tells the threshold
//!   and how many shares it has; `POST /v1/sys/unseal {"share"}` hands it one share (what `tsp keys
//!   unlock` sends); every other route is 503 `sealed`.
//! - ISO 8583: every request is answered `91` (the switch cannot take it now), nothing processed.
//!
//! Once the shares it holds reach the threshold and open the key store, both fronts stop and the
//! node starts as usual on the same sockets.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::hsm::Hsm;
use crate::iso8583::Message;
use crate::iso8583::frame::{read_frame, write_frame};
use crate::payments::{Reply, ResponseCode};
use crate::tls::{BoxedIo, HANDSHAKE_TIMEOUT, TlsAcceptor};

/// What a sealed node knows: its key store and the shares handed to it so far.
struct Unsealer {
    keystore: PathBuf,
    seal: hsm_sim::seal::Seal,
    shares: Vec<Zeroizing<String>>,
    opened: Option<Hsm>,
}

type Shared = Arc<Mutex<Unsealer>>;

impl Unsealer {
    /// Adds `share` (checked against the seal) and tries to open the key store. `Ok(true)` once open.
    fn add(&mut self, share: &str) -> Result<bool, (StatusCode, &'static str, String)> {
        hsm_sim::seal::parse_share(&self.seal, share)
            .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, "share_invalid", e.message))?;
        if !self.shares.iter().any(|s| s.trim() == share.trim()) {
            self.shares.push(Zeroizing::new(share.trim().to_string()));
        }
        self.try_open()
    }

    fn try_open(&mut self) -> Result<bool, (StatusCode, &'static str, String)> {
        let shares: Vec<&str> = self.shares.iter().map(|s| s.as_str()).collect();
        match hsm_sim::Hsm::open_sealed(&self.keystore, &shares) {
            Ok(None) => Ok(false),
            Ok(Some(sim)) => {
                self.shares.clear();
                self.opened = Some(Hsm::in_process(Arc::new(sim)));
                Ok(true)
            }
            Err(e) => {
                // The shares rebuilt a key that does not open the store: one of them is wrong. They
                // are all dropped; the custodians start again.
                self.shares.clear();
                Err((StatusCode::UNPROCESSABLE_ENTITY, "shares_wrong", e.message))
            }
        }
    }

    fn status(&self) -> serde_json::Value {
        json!({
            "sealed": self.opened.is_none(),
            "threshold": self.seal.threshold,
            "custodians": self.seal.custodians,
            "progress": self.shares.len(),
        })
    }
}

/// The sockets a sealed node answers on, and their TLS when configured (shares are secrets: over
/// TLS wherever the node itself would be).
pub struct Fronts {
    pub http: std::net::TcpListener,
    pub iso: std::net::TcpListener,
    pub rest_tls: Option<TlsAcceptor>,
    pub iso_tls: Option<TlsAcceptor>,
}

/// Connections a sealed node serves at once on each front.
const SEALED_CONNECTIONS: usize = 64;

/// Serves as a sealed node on `fronts` until the key store at `keystore` opens (with `given` shares
/// first, then those handed in over REST); returns the opened HSM.
pub async fn until_unsealed(
    fronts: Fronts,
    keystore: PathBuf,
    seal: hsm_sim::seal::Seal,
    given: Vec<Zeroizing<String>>,
) -> std::io::Result<Hsm> {
    let Fronts { http, iso, rest_tls, iso_tls } = fronts;
    let (threshold, custodians) = (seal.threshold, seal.custodians);
    let mut u = Unsealer { keystore, seal, shares: Vec::new(), opened: None };
    for s in &given {
        if let Err((_, code, m)) = u.add(s) {
            eprintln!("tsp: a given share was not taken ({code}): {m}");
        }
    }
    if let Some(hsm) = u.opened.take() {
        return Ok(hsm);
    }
    println!(
        "tsp: SEALED — the key store needs {threshold} of its {custodians} custodians' shares \
         (`tsp keys unlock`); {} given",
        u.shares.len()
    );
    let shared: Shared = Arc::new(Mutex::new(u));
    let (open_tx, open_rx) = watch::channel(false);
    let app = Router::new()
        .route("/healthz", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "sealed" }))) }))
        .route("/v1/sys/seal-status", get(seal_status))
        .route("/v1/sys/unseal", post(unseal))
        .fallback(|| async { sealed_error() })
        .with_state((shared.clone(), open_tx));
    http.set_nonblocking(true)?;
    iso.set_nonblocking(true)?;
    let http = tokio::net::TcpListener::from_std(http)?;
    let iso = tokio::net::TcpListener::from_std(iso)?;
    let mut stop = open_rx.clone();
    let iso_task = tokio::spawn(iso_91(iso, iso_tls, open_rx.clone()));
    let http = crate::api::listener::CappedListener::with_tls(http, SEALED_CONNECTIONS, rest_tls);
    axum::serve(http, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|open| *open).await;
        })
        .await?;
    let _ = iso_task.await;
    let opened = shared.lock().unwrap_or_else(|e| e.into_inner()).opened.take();
    opened.ok_or_else(|| std::io::Error::other("the sealed front stopped before the key store opened"))
}

fn sealed_error() -> Response {
    let body = json!({ "error": {
        "code": "sealed",
        "message": "this node is sealed: it needs its custodians' shares (tsp keys unlock)",
    }});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn seal_status(State((shared, _)): State<(Shared, watch::Sender<bool>)>) -> Response {
    let status = shared.lock().unwrap_or_else(|e| e.into_inner()).status();
    Json(status).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsealBody {
    share: String,
}

async fn unseal(
    State((shared, open)): State<(Shared, watch::Sender<bool>)>,
    body: Result<Json<UnsealBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        let e =
            json!({ "error": { "code": "invalid_json", "message": "the body is {\"share\": \"hsm-sim-share/1:…\"}" }});
        return (StatusCode::BAD_REQUEST, Json(e)).into_response();
    };
    let body = Zeroizing::new(body.share);
    let mut u = shared.lock().unwrap_or_else(|e| e.into_inner());
    match u.add(&body) {
        Ok(opened) => {
            let status = u.status();
            drop(u);
            if opened {
                tracing::warn!("key store unsealed: the node starts");
                let _ = open.send(true);
            }
            Json(status).into_response()
        }
        Err((status, code, message)) => {
            tracing::warn!(code, "unseal share refused");
            (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
        }
    }
}

/// The ISO 8583 front of a sealed node: each request is answered `91`, nothing is processed.
async fn iso_91(listener: tokio::net::TcpListener, tls: Option<TlsAcceptor>, open: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    let mut stop = open.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => if let Ok((sock, _)) = accepted {
                if conns.len() >= SEALED_CONNECTIONS {
                    continue;
                }
                let (tls, open) = (tls.clone(), open.clone());
                conns.spawn(async move {
                    let io: BoxedIo = match tls {
                        None => Box::new(sock),
                        Some(t) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, t.accept(sock)).await {
                            Ok(Ok(s)) => Box::new(s),
                            _ => return,
                        },
                    };
                    answer_91(io, open).await
                });
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.wait_for(|o| *o) => break,
        }
    }
    conns.abort_all();
}

async fn answer_91(io: BoxedIo, mut open: watch::Receiver<bool>) {
    let (mut rd, mut wr) = tokio::io::split(io);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, 8 * 1024) => f,
            _ = open.wait_for(|o| *o) => return,
        };
        let Ok(Some(bytes)) = frame else { return };
        // A malformed request gets `30` as ever (when its MTI can be read); a well-formed one `91`.
        let (req, code) = match Message::decode(&bytes) {
            Ok(m) => (m, ResponseCode::ISSUER_UNAVAILABLE),
            Err(e) => match e.partial() {
                Some(p) => (p.clone(), ResponseCode::FORMAT_ERROR),
                None => continue,
            },
        };
        let Some(resp_mti) = req.mti().response() else { continue };
        let Ok(out) = Reply::to(&req, resp_mti, code).encode() else { continue };
        if write_frame(&mut wr, &out).await.is_err() {
            return;
        }
    }
}
