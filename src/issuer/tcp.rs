//! ISO 8583 to an issuer over TCP (framed as in docs/iso8583.md "Connecting"): [`TcpHost`], the
//! TSP's client of a remote authorization host, and [`serve`], the `tsp issuer-sim --listen ADDR`
//! server around a [`Simulator`].
//!
//! Both ends speak one [`Dialect`] per link (`dialect` of an `[[issuers]]` entry, `tsp issuer-sim
//! --dialect`), in 2-byte length frames. Both ends pipeline: many requests in flight on one connection, answers in any order, matched by
//! response MTI, DE11 and DE41. Frames travel in wiped buffers, since requests carry PANs.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::{Instant, timeout_at};
use zeroize::{Zeroize, Zeroizing};

use crate::config::MacAlgorithm;
use crate::hsm::Hsm;
use crate::iso8583::frame::{FrameError, encode_frame, read_frame};
use crate::iso8583::{Dialect, MAX_MESSAGE_LEN, Message, Mti, mac};
use crate::tls::{BoxedIo, Connector, HANDSHAKE_TIMEOUT, TlsAcceptor};

use super::host::{IssuerError, IssuerFuture, IssuerHost};
use super::sim::Simulator;

/// A framed message on its way to the socket; wiped once written.
type Frame = Zeroizing<Vec<u8>>;

/// Largest request `serve` accepts (the messages of docs/iso8583.md "Messages" are far smaller).
const MAX_REQUEST: usize = 8 * 1024;
/// Requests one server connection works on at once; reading waits beyond that.
const MAX_IN_FLIGHT: usize = 512;
/// Frames queued for one connection's writer.
const QUEUE: usize = 1024;
/// Bytes gathered into one write when frames queue up.
const BATCH: usize = 64 * 1024;

/// Writes queued frames, gathering those already waiting into one write. Ends when every sender is
/// gone (after writing what they sent) or the socket fails.
async fn write_loop<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<Frame>, mut w: W) -> io::Result<()> {
    let mut batch: Frame = Zeroizing::new(Vec::with_capacity(BATCH + MAX_MESSAGE_LEN + 2));
    while let Some(frame) = rx.recv().await {
        batch.extend_from_slice(&frame);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        let written = w.write_all(&batch).await;
        batch.zeroize();
        written?;
    }
    w.shutdown().await
}

/// A link's MAC key (docs/iso8583.md "MAC"): a TR-31 key block under the HSM's link KBPK, used
/// only through the HSM. With one, every message on the link carries a MAC (DE64, or DE128 with a
/// secondary bitmap) over the whole encoded message before it, and every message received must.
#[derive(Clone)]
pub struct LinkMac {
    hsm: Hsm,
    block: String,
}

impl LinkMac {
    pub fn new(hsm: Hsm, block: String) -> LinkMac {
        LinkMac { hsm, block }
    }

    /// A MAC key from a clear key (configuration, `tsp issuer-sim --tak`) of `algorithm`.
    pub async fn from_clear(hsm: Hsm, algorithm: MacAlgorithm, key: &[u8]) -> Result<LinkMac, hsm_sim::HsmError> {
        hsm.ensure_link_kbpk().await?;
        let (usage, alg) = algorithm.tr31();
        let (block, _kcv) = hsm.link_key_from_clear(usage, alg, key).await?;
        Ok(LinkMac { hsm, block })
    }

    /// `msg` encoded in `dialect` with its MAC.
    pub async fn encode(&self, dialect: Dialect, msg: &mut Message) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut out = Zeroizing::new(mac::prepare(dialect, msg).map_err(|e| e.to_string())?);
        let m = self.hsm.link_mac(&self.block, mac::covered(dialect, &out)).await.map_err(|e| e.to_string())?;
        mac::seal(dialect, &mut out, &m);
        Ok(out)
    }

    /// Whether `msg`, received as `raw`, carries a valid MAC.
    pub async fn check(&self, dialect: Dialect, raw: &[u8], msg: &Message) -> bool {
        let Ok((covered, given)) = mac::received(dialect, raw, msg) else { return false };
        match self.hsm.link_mac_verify(&self.block, covered, &given).await {
            Ok(valid) => valid,
            Err(e) => {
                tracing::error!(error = %e, "MAC check failed");
                false
            }
        }
    }
}

/// Frames and queues `msg` in `dialect`, with its MAC on a MAC link (dropped if the connection is
/// gone).
async fn queue_message(tx: &mpsc::Sender<Frame>, dialect: Dialect, msg: &Message, link_mac: Option<&LinkMac>) {
    let body = match link_mac {
        Some(k) => k.encode(dialect, &mut msg.clone()).await,
        None => dialect.encode(msg).map(Zeroizing::new).map_err(|e| e.to_string()),
    };
    let frame = match body.and_then(|b| encode_frame(&b).map_err(|e| e.to_string())) {
        Ok(f) => Zeroizing::new(f),
        Err(e) => {
            tracing::error!(mti = %msg.mti(), error = %e, "ISO 8583 answer cannot be encoded");
            return;
        }
    };
    let _ = tx.send(frame).await;
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// What pairs a response with its request: the response MTI (`0210` for a `0200`), DE11, DE41.
#[derive(Clone, PartialEq, Eq, Hash)]
struct MatchKey {
    mti: Mti,
    stan: String,
    terminal: String,
}

impl MatchKey {
    fn new(mti: Mti, msg: &Message) -> MatchKey {
        MatchKey {
            mti,
            stan: msg.stan().unwrap_or("").to_string(),
            terminal: msg.terminal_id().unwrap_or("").to_string(),
        }
    }
}

type Answer = Result<Message, IssuerError>;

/// Requests waiting for their answer on one connection. Several may share a key (a retry while the
/// first is in flight): they are answered in order. `None` once the connection is gone.
#[derive(Default)]
struct Pending(Mutex<Option<Waiters>>);

/// By key, the waiting requests' ids and answer channels, oldest first.
type Waiters = HashMap<MatchKey, VecDeque<(u64, oneshot::Sender<Answer>)>>;

impl Pending {
    fn open() -> Pending {
        Pending(Mutex::new(Some(HashMap::new())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waiters>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for `key`; `None` when the connection has closed.
    fn register(&self, key: MatchKey, id: u64) -> Option<oneshot::Receiver<Answer>> {
        let (tx, rx) = oneshot::channel();
        self.lock().as_mut()?.entry(key).or_default().push_back((id, tx));
        Some(rx)
    }

    fn remove(&self, key: &MatchKey, id: u64) {
        if let Some(map) = self.lock().as_mut()
            && let Some(q) = map.get_mut(key)
        {
            q.retain(|(i, _)| *i != id);
            if q.is_empty() {
                map.remove(key);
            }
        }
    }

    /// The oldest request waiting for `key`.
    fn take(&self, key: &MatchKey) -> Option<oneshot::Sender<Answer>> {
        let mut guard = self.lock();
        let map = guard.as_mut()?;
        let q = map.get_mut(key)?;
        let first = q.pop_front().map(|(_, tx)| tx);
        if q.is_empty() {
            map.remove(key);
        }
        first
    }

    /// The connection is gone: every waiter learns it at once.
    fn close(&self) {
        self.lock().take();
    }

    fn is_closed(&self) -> bool {
        self.lock().is_none()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().as_ref().map_or(0, |m| m.values().map(VecDeque::len).sum())
    }
}

/// Stops waiting for an answer however the wait ends (answer, timeout, caller gone).
struct Waiting<'a> {
    pending: &'a Pending,
    key: MatchKey,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending.remove(&self.key, self.id);
    }
}

/// One live connection: its writer's queue and the requests waiting on its reader.
struct Conn {
    tx: mpsc::Sender<Frame>,
    pending: Arc<Pending>,
}

/// A remote issuer host at `host:port`, over one persistent, pipelined connection that is opened
/// on first use and again after it drops; over TLS when it has a [`Connector`].
pub struct TcpHost {
    addr: String,
    tls: Option<Connector>,
    timeout: Duration,
    dialect: Dialect,
    mac: Option<LinkMac>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
}

impl TcpHost {
    /// `addr` is `host:port`; `timeout` bounds each request, connecting included. Does no I/O.
    pub fn new(addr: &str, timeout: Duration) -> TcpHost {
        TcpHost::with_tls(addr, None, timeout)
    }

    /// [`TcpHost::new`], over TLS when `tls` is set (the handshake is part of connecting, under the
    /// same timeout).
    pub fn with_tls(addr: &str, tls: Option<Connector>, timeout: Duration) -> TcpHost {
        TcpHost {
            addr: addr.to_string(),
            tls,
            timeout,
            dialect: Dialect::Ascii,
            mac: None,
            conn: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(0),
        }
    }

    /// The same host, spoken to in `dialect` (default `ascii`).
    pub fn in_dialect(mut self, dialect: Dialect) -> TcpHost {
        self.dialect = dialect;
        self
    }

    /// The same host over a MAC link: requests carry a MAC under `mac`, and an answer whose MAC is
    /// missing or does not verify is not believed (the request's outcome is unknown: `91`, and a
    /// `0420` is owed).
    pub fn with_mac(mut self, mac: Option<LinkMac>) -> TcpHost {
        self.mac = mac;
        self
    }

    /// The live connection, opening one if there is none.
    async fn connection(&self) -> Result<Arc<Conn>, IssuerError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.pending.is_closed()
        {
            return Ok(c.clone());
        }
        // Dropping the old queue ends its writer.
        *slot = None;
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| IssuerError::Unavailable(format!("issuer host {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let stream: BoxedIo = match &self.tls {
            None => Box::new(stream),
            Some(tls) => tls
                .connect(stream)
                .await
                .map_err(|e| IssuerError::Unavailable(format!("issuer host {}: {e}", self.addr)))?,
        };
        let (rd, wr) = tokio::io::split(stream);
        let pending = Arc::new(Pending::open());
        let reader = tokio::spawn(read_answers(rd, self.dialect, self.mac.clone(), pending.clone()));
        let (tx, rx) = mpsc::channel(QUEUE);
        let closing = pending.clone();
        let addr = self.addr.clone();
        tokio::spawn(async move {
            if let Err(e) = write_loop(rx, wr).await {
                tracing::warn!(issuer_host = %addr, error = %e, "issuer connection failed");
            }
            closing.close();
            reader.abort();
        });
        tracing::debug!(issuer_host = %self.addr, "issuer connection open");
        let conn = Arc::new(Conn { tx, pending });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn call(&self, req: Message) -> Result<Message, IssuerError> {
        let resp_mti =
            req.mti().response().ok_or_else(|| IssuerError::Protocol(format!("{} is not a request", req.mti())))?;
        let key = MatchKey::new(resp_mti, &req);
        let mut req = req;
        let body = match &self.mac {
            Some(k) => k.encode(self.dialect, &mut req).await,
            None => self.dialect.encode(&req).map(Zeroizing::new).map_err(|e| e.to_string()),
        }
        .map_err(|e| IssuerError::Protocol(format!("request: {e}")))?;
        drop(req);
        let frame = Zeroizing::new(encode_frame(&body).map_err(|e| IssuerError::Protocol(e.to_string()))?);
        drop(body);

        let deadline = Instant::now() + self.timeout;
        let conn = timeout_at(deadline, self.connection())
            .await
            .map_err(|_| IssuerError::Unavailable(format!("issuer host {}: connect timed out", self.addr)))??;
        let closed = || IssuerError::Unavailable(format!("issuer host {}: connection closed", self.addr));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rx = conn.pending.register(key.clone(), id).ok_or_else(closed)?;
        let _waiting = Waiting { pending: &conn.pending, key, id };
        match timeout_at(deadline, conn.tx.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(closed()),
            Err(_) => return Err(IssuerError::Unavailable(format!("issuer host {}: send queue full", self.addr))),
        }
        match timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            // The connection dropped after the request went out: as good as no answer.
            Ok(Err(_)) | Err(_) => Err(IssuerError::Timeout),
        }
    }

    #[cfg(test)]
    async fn pending_len(&self) -> usize {
        self.conn.lock().await.as_ref().map_or(0, |c| c.pending.len())
    }
}

impl IssuerHost for TcpHost {
    fn send(&self, req: Message) -> IssuerFuture<'_> {
        Box::pin(self.call(req))
    }
}

/// Reads answers and hands each to the request waiting for it, until the connection ends.
async fn read_answers<R: AsyncRead + Unpin>(
    mut rd: R,
    dialect: Dialect,
    link_mac: Option<LinkMac>,
    pending: Arc<Pending>,
) {
    loop {
        let bytes = match read_frame(&mut rd, MAX_MESSAGE_LEN).await {
            Ok(Some(b)) => Zeroizing::new(b),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "issuer connection failed");
                break;
            }
        };
        let (key, answer) = match dialect.decode(&bytes) {
            Ok(msg) => {
                let key = MatchKey::new(msg.mti(), &msg);
                match &link_mac {
                    Some(k) if !k.check(dialect, &bytes, &msg).await => {
                        tracing::warn!(mti = %key.mti, stan = %key.stan, "issuer answer with a missing or bad MAC");
                        (key, Err(IssuerError::Protocol("answer MAC missing or wrong".into())))
                    }
                    _ => (key, Ok(msg)),
                }
            }
            Err(e) => match e.partial() {
                Some(p) => (MatchKey::new(p.mti(), p), Err(IssuerError::Protocol(format!("answer: {e}")))),
                None => {
                    tracing::warn!(error = %e, "unreadable issuer answer dropped");
                    continue;
                }
            },
        };
        match pending.take(&key) {
            Some(waiter) => {
                let _ = waiter.send(answer);
            }
            None => tracing::debug!(mti = %key.mti, stan = %key.stan, "issuer answer for no waiting request (late?)"),
        }
    }
    pending.close();
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// Serves the simulator on `listener` until the task is dropped: each connection on its own task,
/// so that one bad client never affects another.
pub async fn serve(listener: TcpListener, sim: Arc<Simulator>) -> io::Result<()> {
    serve_with(listener, sim, None).await
}

/// [`serve`], over TLS when `tls` is set (`tsp issuer-sim --tls-cert … --tls-key …`): each
/// connection's handshake on its own task, so a slow one stalls no other.
pub async fn serve_with(listener: TcpListener, sim: Arc<Simulator>, tls: Option<TlsAcceptor>) -> io::Result<()> {
    serve_in(listener, sim, tls, Dialect::Ascii).await
}

/// [`serve_with`], speaking `dialect` (`tsp issuer-sim --dialect`).
pub async fn serve_in(
    listener: TcpListener,
    sim: Arc<Simulator>,
    tls: Option<TlsAcceptor>,
    dialect: Dialect,
) -> io::Result<()> {
    serve_mac(listener, sim, tls, dialect, None).await
}

/// [`serve_in`] over a MAC link (`tsp issuer-sim --tak`): a request whose MAC is missing or wrong
/// is answered `63` (security violation) and not handled; every answer carries a MAC.
pub async fn serve_mac(
    listener: TcpListener,
    sim: Arc<Simulator>,
    tls: Option<TlsAcceptor>,
    dialect: Dialect,
    link_mac: Option<LinkMac>,
) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tracing::debug!(%peer, "issuer-sim connection");
                let _ = stream.set_nodelay(true);
                let (sim, tls, link_mac) = (sim.clone(), tls.clone(), link_mac.clone());
                tokio::spawn(async move {
                    let stream: BoxedIo = match tls {
                        None => Box::new(stream),
                        Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                            Ok(Ok(s)) => Box::new(s),
                            Ok(Err(e)) => {
                                tracing::info!(%peer, error = %e, "issuer-sim TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                    };
                    serve_connection(stream, sim, dialect, link_mac).await;
                });
            }
            Err(e) => {
                // Out of descriptors and the like: pass, rather than spin.
                tracing::warn!(error = %e, "issuer-sim accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers one connection's requests, each on its own task, through one writer.
async fn serve_connection(stream: BoxedIo, sim: Arc<Simulator>, dialect: Dialect, link_mac: Option<LinkMac>) {
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Frame>(QUEUE);
    let writer = tokio::spawn(write_loop(rx, wr));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let (bytes, oversized) = match read_frame(&mut rd, MAX_REQUEST).await {
            Ok(Some(b)) => (Zeroizing::new(b), false),
            Ok(None) => break,
            Err(FrameError::TooLarge(len)) => match read_oversized(&mut rd, len).await {
                Ok(head) => (head, true),
                Err(_) => break,
            },
            Err(FrameError::Io(e)) => {
                tracing::debug!(error = %e, "issuer-sim connection ended");
                break;
            }
        };
        let decoded = dialect.decode(&bytes);
        let refused = match (&decoded, &link_mac) {
            (Ok(req), Some(k)) if !oversized => !k.check(dialect, &bytes, req).await,
            _ => false,
        };
        drop(bytes);
        let k = link_mac.as_ref();
        match decoded {
            Ok(req) if refused => {
                tracing::info!(mti = %req.mti(), "request with a missing or bad MAC: 63");
                if let Some(mut resp) = sim.format_error(&req) {
                    let _ = resp.set_response_code("63");
                    queue_message(&tx, dialect, &resp, k).await;
                }
            }
            Ok(req) if !oversized => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                let (sim, tx, link_mac) = (sim.clone(), tx.clone(), link_mac.clone());
                tokio::spawn(async move {
                    if let Some(resp) = sim.handle(req).await {
                        queue_message(&tx, dialect, &resp, link_mac.as_ref()).await;
                    }
                    drop(permit);
                });
            }
            Ok(req) => {
                tracing::info!(mti = %req.mti(), "oversized request");
                if let Some(resp) = sim.format_error(&req) {
                    queue_message(&tx, dialect, &resp, k).await;
                }
            }
            Err(e) => match e.partial() {
                Some(partial) => {
                    tracing::info!(mti = %partial.mti(), error = %e, "malformed request");
                    if let Some(resp) = sim.format_error(partial) {
                        queue_message(&tx, dialect, &resp, k).await;
                    }
                }
                None => {
                    tracing::info!(error = %e, "unidentifiable message; closing the connection");
                    break;
                }
            },
        }
    }
    // Answers still being worked out go out before the writer ends.
    drop(tx);
    if let Ok(Err(e)) = writer.await {
        tracing::debug!(error = %e, "issuer-sim connection write failed");
    }
}

/// Skips a frame over [`MAX_REQUEST`] and returns its first `MAX_REQUEST` bytes, so that it can
/// still be answered `30` from what they identify, and the stream stays in step.
async fn read_oversized<R: AsyncRead + Unpin>(rd: &mut R, len: usize) -> io::Result<Frame> {
    let mut head = Zeroizing::new(vec![0u8; MAX_REQUEST.min(len)]);
    rd.read_exact(&mut head).await?;
    let rest = (len - head.len()) as u64;
    let skipped = tokio::io::copy(&mut rd.take(rest), &mut tokio::io::sink()).await?;
    if skipped < rest {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso8583::frame::write_frame;
    use crate::issuer::host::connect;
    use crate::issuer::sim::SimConfig;
    use crate::issuer::sim::tests::{PAN, purchase};
    use tokio::task::JoinSet;

    async fn server(sim: Arc<Simulator>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(listener, sim));
        addr
    }

    #[tokio::test]
    async fn pipelined_requests_match_their_callers() {
        let sim = Arc::new(Simulator::new(SimConfig { latency_ms: 5, ..SimConfig::default() }));
        let addr = server(sim.clone()).await;
        let host: Arc<dyn IssuerHost> =
            connect(&format!("tcp://{addr}"), Duration::from_secs(5), None, sim.clone()).unwrap();
        let mut set = JoinSet::new();
        for i in 1..=300u64 {
            let host = host.clone();
            set.spawn(async move {
                let req = purchase(&format!("{i:06}"), i * 10);
                let resp = host.send(req).await.unwrap();
                assert_eq!(resp.mti(), Mti::FINANCIAL_RESPONSE);
                assert_eq!(resp.stan(), Some(format!("{i:06}").as_str()));
                assert_eq!(resp.amount(), Some(i * 10));
                assert_eq!(resp.response_code(), Some("00"));
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        assert_eq!(sim.used(PAN), (1..=300i64).map(|i| i * 10).sum::<i64>());

        // Out of order on one connection: a slow request, then a fast one that overtakes it.
        sim.set_latency_ms(300);
        let slow = {
            let host = host.clone();
            tokio::spawn(async move { host.send(purchase("000901", 901)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        sim.set_latency_ms(0);
        let fast = host.send(purchase("000902", 902)).await.unwrap();
        assert_eq!((fast.stan(), fast.amount()), (Some("000902"), Some(902)));
        assert!(!slow.is_finished());
        let slow = slow.await.unwrap().unwrap();
        assert_eq!((slow.stan(), slow.amount()), (Some("000901"), Some(901)));
    }

    #[tokio::test]
    async fn timeout_then_recovery() {
        let sim = Arc::new(Simulator::new(SimConfig::default()));
        let addr = server(sim.clone()).await;
        let host = TcpHost::new(&addr, Duration::from_millis(200));
        assert_eq!(host.call(purchase("000001", 100)).await.unwrap().response_code(), Some("00"));

        sim.set_offline(true);
        assert_eq!(host.call(purchase("000002", 100)).await, Err(IssuerError::Timeout));
        assert_eq!(host.pending_len().await, 0);
        sim.set_offline(false);
        assert_eq!(host.call(purchase("000003", 100)).await.unwrap().response_code(), Some("00"));

        // A late answer finds nobody waiting and is dropped; the next request is unaffected.
        sim.set_latency_ms(400);
        assert_eq!(host.call(purchase("000004", 100)).await, Err(IssuerError::Timeout));
        assert_eq!(host.pending_len().await, 0);
        sim.set_latency_ms(0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = host.call(purchase("000005", 100)).await.unwrap();
        assert_eq!(r.stan(), Some("000005"));
        assert_eq!(sim.used(PAN), 400);
        assert_eq!(sim.stats().received(Mti::FINANCIAL_REQUEST), 5);
    }

    #[tokio::test]
    async fn reconnects_after_the_connection_drops() {
        let sim = Arc::new(Simulator::new(SimConfig::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sim2 = sim.clone();
        tokio::spawn(async move {
            // The first connection dies after reading one request; later ones are served.
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = read_frame(&mut s, MAX_REQUEST).await;
            drop(s);
            serve(listener, sim2).await
        });
        let host = TcpHost::new(&addr, Duration::from_secs(2));
        let t = std::time::Instant::now();
        assert_eq!(host.call(purchase("000001", 100)).await, Err(IssuerError::Timeout));
        assert!(t.elapsed() < Duration::from_secs(1), "a dropped connection fails its requests at once");
        assert_eq!(host.call(purchase("000002", 100)).await.unwrap().response_code(), Some("00"));

        // Nothing listening at all: the request never left.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap().to_string();
        drop(closed);
        let host = TcpHost::new(&gone, Duration::from_secs(2));
        let e = host.call(purchase("000003", 100)).await.unwrap_err();
        assert!(matches!(e, IssuerError::Unavailable(_)) && !e.outcome_unknown(), "{e:?}");
        assert!(!e.to_string().contains(PAN));
    }

    async fn exchange(s: &mut TcpStream, bytes: &[u8]) -> Option<Message> {
        write_frame(s, bytes).await.unwrap();
        read_frame(s, MAX_MESSAGE_LEN).await.unwrap().map(|b| Message::decode(&b).unwrap())
    }

    #[tokio::test]
    async fn malformed_frames_get_30_and_the_connection_lives() {
        let sim = Arc::new(Simulator::new(SimConfig::default()));
        let addr = server(sim.clone()).await;
        let mut s = TcpStream::connect(&addr).await.unwrap();

        // A letter in DE4: the rest is still read, so the answer names DE11 and DE41.
        let good = purchase("000001", 12_500).encode().unwrap();
        let text = String::from_utf8(good.clone()).unwrap();
        let at = text.find("000000012500").unwrap() + 5;
        let mut bad = good.clone();
        bad[at] = b'X';
        let r = exchange(&mut s, &bad).await.unwrap();
        assert_eq!((r.mti(), r.response_code()), (Mti::FINANCIAL_RESPONSE, Some("30")));
        assert_eq!((r.stan(), r.terminal_id()), (Some("000001"), Some("TERM0001")));

        // The connection keeps working.
        let r = exchange(&mut s, &purchase("000002", 100).encode().unwrap()).await.unwrap();
        assert_eq!((r.stan(), r.response_code()), (Some("000002"), Some("00")));

        // Too large: answered 30 from its head, and the stream stays in step.
        let mut huge = good.clone();
        huge.resize(MAX_REQUEST + 100, b'0');
        let r = exchange(&mut s, &huge).await.unwrap();
        assert_eq!(r.response_code(), Some("30"));
        let r = exchange(&mut s, &purchase("000003", 100).encode().unwrap()).await.unwrap();
        assert_eq!((r.stan(), r.response_code()), (Some("000003"), Some("00")));

        // Not even an MTI: the connection is closed, others are not.
        let mut other = TcpStream::connect(&addr).await.unwrap();
        assert!(exchange(&mut s, b"XX").await.is_none());
        let r = exchange(&mut other, &purchase("000004", 100).encode().unwrap()).await.unwrap();
        assert_eq!(r.response_code(), Some("00"));
        assert_eq!(sim.used(PAN), 300);
    }
}
