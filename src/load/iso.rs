//! One pipelined ISO 8583 connection of `tsp load`.
//!
//! Owns the wire side of a load connection: a writer that sends what its [`Driver`] asks for while
//! fewer than `pipeline` requests are in flight, and a reader that matches each answer to its
//! request by DE11 (within the connection, so DE11 + DE41) and checks it against what was sent —
//! the request's response MTI, DE41 and (for financial messages) DE4 echoed, DE39 the expected code.
//! A request unanswered after [`REQUEST_TIMEOUT`] is counted wrong; a broken connection counts all
//! its outstanding requests wrong and ends this connection only. Nothing here panics on what the
//! network sends.
//!
//! The driver decides what to send (see `modes`); answers that approve a payment are handed back to
//! it through [`Shared::approved`], so that cancels and reversals follow only approved payments.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::stats::{Stats, Wrong};
use crate::iso8583::frame::{encode_frame, read_frame};
use crate::iso8583::{MAX_MESSAGE_LEN, Message, Mti};

/// How long a request may wait for its answer before it counts as wrong (`timeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often outstanding requests are checked against their deadline while waiting.
const SWEEP: Duration = Duration::from_millis(100);

/// The instrument a payment was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Card,
    Gift,
    Local,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Card, Kind::Gift, Kind::Local];

    pub fn index(self) -> usize {
        match self {
            Kind::Card => 0,
            Kind::Gift => 1,
            Kind::Local => 2,
        }
    }
}

/// An approved payment that a cancel or reversal may follow: the request as sent and its amount.
#[derive(Clone)]
pub struct Paid {
    pub request: Message,
    pub amount: u64,
    pub kind: Kind,
}

/// A request the driver wants sent.
pub struct Outgoing {
    pub msg: Message,
    /// The operation it counts under (`purchase card`, `echo`, …).
    pub op: &'static str,
    /// The DE39 that makes its answer right.
    pub code: &'static str,
    /// For a payment that cancels or reversals may follow once it is approved.
    pub paid: Option<Paid>,
}

/// What the driver wants next.
pub enum Next {
    Send(Box<Outgoing>),
    /// Nothing to send until an answer comes (a follow-up waits for an approval).
    Wait,
    /// This connection's share is done.
    Done,
    /// A request could not be built; the connection stops (counted wrong as `build`).
    Failed,
}

/// Decides what a connection sends. Called with the connection's shared state locked.
pub trait Driver: Send {
    fn next(&mut self, shared: &mut Shared) -> Next;
    /// Follow-ups given up because no approved payment was left for them.
    fn skipped(&self) -> u64 {
        0
    }
}

/// What the answer to a request must show.
struct Expect {
    mti: Option<Mti>,
    terminal: Option<String>,
    amount: Option<u64>,
    code: &'static str,
}

/// What an answer is matched to its request by: DE41 and DE11 (a connection may carry several
/// terminals, each with its own STANs).
fn key_of(msg: &Message) -> Option<String> {
    Some(format!("{}/{}", msg.terminal_id().unwrap_or(""), msg.stan()?))
}

struct Pending {
    sent: Instant,
    op: &'static str,
    expect: Expect,
    paid: Option<Paid>,
}

/// The state the writer, the reader and the driver share on one connection.
#[derive(Default)]
pub struct Shared {
    /// Outstanding requests by [`key_of`].
    pending: HashMap<String, Pending>,
    /// Keys already counted as timed out, so that their late answers are not counted again.
    timed_out: HashSet<String>,
    /// Approved payments not yet followed up, oldest first.
    pub approved: VecDeque<Paid>,
    /// Payments sent and not yet answered (an approval may still come for a follow-up).
    pub payments_in_flight: usize,
    stats: Stats,
    closed: bool,
    /// The dialect answers are written in.
    dialect: crate::iso8583::Dialect,
}

impl Shared {
    /// Removes `key` from the outstanding requests, keeping `payments_in_flight` in step.
    fn take(&mut self, key: &str) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        if p.paid.is_some() {
            self.payments_in_flight = self.payments_in_flight.saturating_sub(1);
        }
        Some(p)
    }

    /// Checks one frame the server sent against the request it answers.
    fn answer(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        let msg = match self.dialect.decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                // Attribute it to its request when its DE41 and DE11 can still be read.
                match e.partial().and_then(key_of).and_then(|k| self.take(&k)) {
                    Some(p) => {
                        let op = self.stats.op(p.op);
                        op.answered("--", micros(now - p.sent));
                        op.wrong(Wrong::Undecodable);
                    }
                    None => self.stats.stray(Wrong::Undecodable),
                }
                return;
            }
        };
        let key = key_of(&msg);
        let Some(p) = key.as_deref().and_then(|k| self.take(k)) else {
            if key.is_some_and(|k| self.timed_out.remove(&k)) {
                self.stats.late += 1;
            } else {
                self.stats.stray(Wrong::Unmatched);
            }
            return;
        };
        let code = msg.response_code().unwrap_or("--");
        let echoed = Some(msg.mti()) == p.expect.mti
            && msg.terminal_id() == p.expect.terminal.as_deref()
            && (p.expect.amount.is_none() || msg.amount() == p.expect.amount);
        let op = self.stats.op(p.op);
        op.answered(code, micros(now - p.sent));
        if !echoed {
            op.wrong(Wrong::Echo);
        } else if code != p.expect.code {
            op.wrong(Wrong::Code);
        } else if let Some(paid) = p.paid {
            self.approved.push_back(paid);
        }
    }

    /// Counts every outstanding request past its deadline as timed out.
    fn sweep(&mut self, now: Instant) {
        let expired: Vec<String> =
            self.pending.iter().filter(|(_, p)| now >= p.sent + REQUEST_TIMEOUT).map(|(k, _)| k.clone()).collect();
        for key in expired {
            if let Some(p) = self.take(&key) {
                self.stats.op(p.op).wrong(Wrong::Timeout);
                self.timed_out.insert(key);
            }
        }
    }

    /// The connection broke: every outstanding request is wrong, and nothing more is sent.
    fn fail_all(&mut self) {
        let keys: Vec<String> = self.pending.keys().cloned().collect();
        for key in keys {
            if let Some(p) = self.take(&key) {
                self.stats.op(p.op).wrong(Wrong::Connection);
            }
        }
        self.closed = true;
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Nothing panics while holding the lock; if something did, the counts are still worth reading.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one connection measured.
pub struct ConnResult {
    pub stats: Stats,
    pub skipped: u64,
}

/// Runs one connection to `addr`: sends what `driver` asks for, at most `pipeline` in flight, until
/// the driver is done or `deadline` passes, then waits for the outstanding answers (each at most
/// [`REQUEST_TIMEOUT`]).
pub async fn run_connection<D: Driver>(
    addr: &str,
    dialect: crate::iso8583::Dialect,
    mut driver: D,
    pipeline: usize,
    deadline: Option<Instant>,
) -> ConnResult {
    let sock = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, addr, "load: cannot connect to the ISO 8583 front");
            let mut stats = Stats::default();
            stats.stray(Wrong::Connect);
            return ConnResult { stats, skipped: 0 };
        }
    };
    let _ = sock.set_nodelay(true);
    let (mut rd, mut wr) = sock.into_split();
    let shared = Arc::new(Mutex::new(Shared { dialect, ..Shared::default() }));
    let notify = Arc::new(Notify::new());
    let reader: JoinHandle<()> = {
        let (shared, notify) = (shared.clone(), notify.clone());
        tokio::spawn(async move {
            loop {
                match read_frame(&mut rd, MAX_MESSAGE_LEN).await {
                    Ok(Some(bytes)) => lock(&shared).answer(&bytes),
                    Ok(None) | Err(_) => {
                        lock(&shared).fail_all();
                        notify.notify_one();
                        break;
                    }
                }
                notify.notify_one();
            }
        })
    };

    let mut next_sweep = Instant::now() + SWEEP;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let next = {
            let mut sh = lock(&shared);
            if sh.closed {
                break;
            }
            if now >= next_sweep {
                sh.sweep(now);
                next_sweep = now + SWEEP;
            }
            if sh.pending.len() >= pipeline { Next::Wait } else { driver.next(&mut sh) }
        };
        let out = match next {
            Next::Send(out) => out,
            Next::Wait => {
                let until = deadline.map_or(next_sweep, |d| d.min(next_sweep));
                wait(&notify, until).await;
                continue;
            }
            Next::Done => break,
            Next::Failed => {
                lock(&shared).stats.stray(Wrong::Build);
                break;
            }
        };
        let Outgoing { msg, op, code, paid } = *out;
        let (Some(key), Ok(frame)) = (key_of(&msg), dialect.encode(&msg).map(|b| encode_frame(&b))) else {
            lock(&shared).stats.stray(Wrong::Build);
            break;
        };
        let Ok(frame) = frame else {
            lock(&shared).stats.stray(Wrong::Build);
            break;
        };
        let financial = matches!(msg.mti().as_bytes(), [b'0', b'2' | b'4', ..]);
        let expect = Expect {
            mti: msg.mti().response(),
            terminal: msg.terminal_id().map(str::to_string),
            amount: if financial { msg.amount() } else { None },
            code,
        };
        {
            let mut sh = lock(&shared);
            sh.stats.op(op).requests += 1;
            if paid.is_some() {
                sh.payments_in_flight += 1;
            }
            sh.pending.insert(key, Pending { sent: Instant::now(), op, expect, paid });
        }
        if wr.write_all(&frame).await.is_err() {
            lock(&shared).fail_all();
            break;
        }
    }

    // The share is sent: wait for what is still outstanding.
    loop {
        let now = Instant::now();
        {
            let mut sh = lock(&shared);
            if now >= next_sweep {
                sh.sweep(now);
                next_sweep = now + SWEEP;
            }
            if sh.pending.is_empty() || sh.closed {
                break;
            }
        }
        wait(&notify, next_sweep).await;
    }
    reader.abort();
    let _ = wr.shutdown().await;
    let stats = std::mem::take(&mut lock(&shared).stats);
    ConnResult { stats, skipped: driver.skipped() }
}

/// Until an answer comes or `until`.
async fn wait(notify: &Notify, until: Instant) {
    tokio::select! {
        _ = notify.notified() => {}
        _ = tokio::time::sleep_until(until.into()) => {}
    }
}
