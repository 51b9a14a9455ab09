//! `tsp load`: a load generator for a running `tsp serve`.
//!
//! Owns the client side of a load test and nothing of the service: it reaches the service only
//! through REST and ISO 8583 over TCP, as pay apps and terminals do. A run has two parts:
//!
//! 1. **Setup** (not timed), over REST with the demo keys: cards (one per connection, fresh Luhn-valid
//!    test PANs of BIN 411111 and 555555), for `mixed` a gift certificate and a local-currency wallet
//!    of `seoul-gangnam`, for `pay` and `mixed` every one-time token the run will pay with, and for
//!    `detokenize` four tokens per connection (`register` needs no setup).
//! 2. **The timed part**: `--connections` ISO 8583 connections with up to `--pipeline` requests in
//!    flight each (`echo`, `pay`, `mixed`; see [`modes`] and [`iso`]), or as many REST clients on
//!    keep-alive connections, one request in flight each (`tokenize`; `register`, a new card of the
//!    demo BINs each time; `detokenize` with the `van` key, which needs the server's
//!    `[limits] detokenize_per_second = 0` to measure more than that limit; see [`http`]). It ends after `--count` requests or
//!    `--duration`, whichever comes first (`--duration` defaults to 10 s when `--count` is absent;
//!    `pay` and `mixed` need `--count`, because their tokens are issued beforehand).
//!
//! Every answer is checked against its request; [`stats`] counts codes, wrong outcomes and
//! latencies and prints the [`Report`]. [`command`] is `tsp load`: it fails when anything was wrong.

pub mod http;
pub mod iso;
pub mod modes;
pub mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use http::{Keys, Rest};
use iso::{ConnResult, Driver, Kind, run_connection};
pub use stats::Report;
use stats::Stats;

use crate::terminal::Requests;

/// What the load generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `0800` echoes over ISO 8583.
    Echo,
    /// `POST /v1/tokens` over HTTP.
    Tokenize,
    /// `0200` card purchases over ISO 8583 with pre-issued tokens.
    Pay,
    /// Card, gift certificate and local-currency payments, partial cancels and reversals.
    Mixed,
    /// `POST /v1/instruments` over HTTP, a new card each time.
    Register,
    /// `POST /v1/detokenize` over HTTP with tokens issued beforehand.
    Detokenize,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Tokenize => "tokenize",
            Mode::Pay => "pay",
            Mode::Mixed => "mixed",
            Mode::Register => "register",
            Mode::Detokenize => "detokenize",
        }
    }
}

impl Mode {
    /// Whether the mode's timed part is REST (one request in flight per client).
    pub fn over_rest(self) -> bool {
        matches!(self, Mode::Tokenize | Mode::Register | Mode::Detokenize)
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "echo" => Ok(Mode::Echo),
            "tokenize" => Ok(Mode::Tokenize),
            "pay" => Ok(Mode::Pay),
            "mixed" => Ok(Mode::Mixed),
            "register" => Ok(Mode::Register),
            "detokenize" => Ok(Mode::Detokenize),
            _ => Err(format!("unknown mode {s:?}: echo, tokenize, pay, mixed, register or detokenize")),
        }
    }
}

/// `10s`, `500ms`, `2m`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("invalid duration {s:?} (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?}: ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}"))
}

/// `tsp load`'s options.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub mode: Mode,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub connections: usize,
    pub pipeline: usize,
    /// host:port of the ISO 8583 front.
    pub iso: String,
    /// The dialect of that listener (docs/iso8583.md "Dialects"); 2-byte length frames.
    pub dialect: crate::iso8583::Dialect,
    /// Base URL of the REST API.
    pub http: String,
    /// The demo keys file (`{"app","van","admin"}`).
    pub keys: PathBuf,
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Options(String),
    #[error("keys file {path}: {message}")]
    Keys { path: String, message: String },
    #[error("setup: {0}")]
    Setup(String),
    #[error("{0} wrong answers")]
    Wrong(u64),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

/// The most connections a run opens: terminal ids carry the connection's number in four digits.
const MAX_CONNECTIONS: usize = 9_999;
/// The server answers at most 256 requests in flight per connection.
const MAX_PIPELINE: usize = 256;
/// Face value of the gift certificate `mixed` pays with, in KRW.
const GIFT_FACE_VALUE: u64 = 100_000_000;
/// What `mixed` charges to its local-currency wallet, in KRW.
const LOCAL_CHARGE: u64 = 50_000_000;
/// The demo region of the wallet, whose merchant is [`modes::LOCAL_MERCHANT`].
const LOCAL_REGION: &str = "seoul-gangnam";
/// Tokens each `detokenize` client turns back into its card's number, in turn.
const DETOKENIZE_TOKENS: usize = 4;
/// REST requests at a time while preparing.
const SETUP_PARALLEL: usize = 32;

/// `tsp load`: runs, prints the report (text, or one JSON object with `--json`) on `out`, and fails
/// when any answer was wrong.
pub async fn command(opts: &LoadOptions, out: &mut dyn Write) -> Result<(), LoadError> {
    let report = run(opts).await?;
    if opts.json {
        writeln!(out, "{}", report.json())?;
    } else {
        report.write_text(out)?;
    }
    out.flush()?;
    match report.wrong() {
        0 => Ok(()),
        n => Err(LoadError::Wrong(n)),
    }
}

/// Share `i` of `total` split over `n`: as even as can be.
fn share(total: u64, n: usize, i: usize) -> u64 {
    let n = n.max(1) as u64;
    total / n + u64::from((i as u64) < total % n)
}

/// A random number that keeps this run's cards and terminal ids apart from earlier runs'.
fn run_nonce() -> Result<u32, LoadError> {
    let rng = ring::rand::SystemRandom::new();
    let bytes: [u8; 4] =
        ring::rand::generate(&rng).map_err(|_| LoadError::Setup("no randomness from the OS".into()))?.expose();
    Ok(u32::from_be_bytes(bytes))
}

/// DE41 of connection `i`: `L`, three base-36 characters of the run, four digits. Its local-currency
/// payments (another merchant, so another terminal) go as `M…` with the same characters.
fn terminal_id(nonce: u32, i: usize) -> String {
    const B36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let n = nonce as usize;
    let c = |k: usize| char::from(B36[(n / 36usize.pow(k as u32)) % 36]);
    format!("L{}{}{}{:04}", c(2), c(1), c(0), i % 10_000)
}

/// DE41 of connection `i`'s local-currency payments (see [`terminal_id`]).
fn local_terminal_id(nonce: u32, i: usize) -> String {
    format!("M{}", &terminal_id(nonce, i)[1..])
}

/// Test card `i` of this run: BIN 411111 (issuer `hanbit`) or 555555 (`nuri`) in turn, a serial
/// from the run and the connection, a Luhn check digit.
fn test_pan(nonce: u32, i: usize) -> Result<String, LoadError> {
    let bin = if i.is_multiple_of(2) { "411111" } else { "555555" };
    let serial = u64::from(nonce % 100_000) * 10_000 + (i % 10_000) as u64;
    crate::luhn::complete(&format!("{bin}{serial:09}")).ok_or_else(|| LoadError::Setup("test PAN".into()))
}

/// Card `n` of a `register` run: BIN 411111 (`hanbit`) or 555555 (`nuri`) in turn, three digits
/// of the run, a six-digit serial, a Luhn digit; None past the millionth.
fn register_pan(nonce: u32, n: u64) -> Option<String> {
    if n >= 1_000_000 {
        return None;
    }
    let bin = if n.is_multiple_of(2) { "411111" } else { "555555" };
    crate::luhn::complete(&format!("{bin}{:03}{n:06}", nonce % 1000))
}

fn read_keys(path: &std::path::Path) -> Result<Keys, LoadError> {
    let err = |message: String| LoadError::Keys { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| err(e.to_string()))
}

/// Runs the load and returns what it measured.
pub async fn run(opts: &LoadOptions) -> Result<Report, LoadError> {
    if opts.connections == 0 || opts.connections > MAX_CONNECTIONS {
        return Err(LoadError::Options(format!("--connections must be 1 to {MAX_CONNECTIONS}")));
    }
    if opts.pipeline == 0 || opts.pipeline > MAX_PIPELINE {
        return Err(LoadError::Options(format!("--pipeline must be 1 to {MAX_PIPELINE}")));
    }
    if opts.count == Some(0) {
        return Err(LoadError::Options("--count must be at least 1".into()));
    }
    if matches!(opts.mode, Mode::Pay | Mode::Mixed) && opts.count.is_none() {
        return Err(LoadError::Options(format!(
            "--mode {} needs --count: its tokens are issued before the timed part",
            opts.mode.as_str()
        )));
    }
    let duration = match (opts.duration, opts.count) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    // No more connections than requests: each has a share.
    let conns = opts.count.map_or(opts.connections, |c| opts.connections.min(usize::try_from(c).unwrap_or(usize::MAX)));
    let quota = |i: usize| opts.count.map(|c| share(c, conns, i));
    let nonce = run_nonce()?;
    let setup_started = Instant::now();

    let mut report = Report {
        mode: opts.mode.as_str(),
        connections: conns,
        pipeline: if opts.mode.over_rest() { 1 } else { opts.pipeline },
        setup_seconds: 0.0,
        seconds: 0.0,
        stats: Stats::default(),
        skipped: 0,
    };

    if opts.mode == Mode::Echo {
        let drivers = (0..conns).map(|i| modes::Echo::new(&terminal_id(nonce, i), quota(i))).collect();
        let (secs, results) = drive(&opts.iso, opts.dialect, drivers, opts.pipeline, duration).await;
        report.seconds = secs;
        merge(&mut report, results);
        return Ok(report);
    }

    let keys = read_keys(&opts.keys)?;
    if opts.mode == Mode::Detokenize && keys.van.is_empty() {
        return Err(LoadError::Keys {
            path: opts.keys.display().to_string(),
            message: "--mode detokenize needs the `van` key (scope detokenize)".into(),
        });
    }
    let rest = Rest::new(&opts.http, keys)?;

    if opts.mode == Mode::Register {
        // Every card of the run is new: BIN 411111 or 555555 in turn, three digits of the run, a
        // six-digit serial, a Luhn digit.
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        report.setup_seconds = setup_started.elapsed().as_secs_f64();
        let started = Instant::now();
        let deadline = duration.map(|d| started + d);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..conns {
            let (rest, q, next) = (rest.clone(), quota(i), next.clone());
            tasks.spawn(async move {
                let pan = move || register_pan(nonce, next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                rest.register(pan, q, deadline).await
            });
        }
        join_rest(&mut report, tasks).await?;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let pans = (0..conns).map(|i| test_pan(nonce, i)).collect::<Result<Vec<_>, _>>()?;
    eprintln!("tsp load: registering {conns} cards");
    let cards = rest.cards(pans.clone(), SETUP_PARALLEL).await?;

    if opts.mode == Mode::Detokenize {
        let wanted: Vec<String> =
            cards.iter().flat_map(|c| std::iter::repeat_n(c.clone(), DETOKENIZE_TOKENS)).collect();
        eprintln!("tsp load: issuing {} tokens", wanted.len());
        let tokens = rest.tokens(wanted, SETUP_PARALLEL).await?;
        report.setup_seconds = setup_started.elapsed().as_secs_f64();
        let started = Instant::now();
        let deadline = duration.map(|d| started + d);
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (chunk, pan)) in tokens.chunks(DETOKENIZE_TOKENS).zip(&pans).enumerate() {
            let mine: Vec<(String, String)> = chunk.iter().map(|t| (t.clone(), pan.clone())).collect();
            let (rest, q) = (rest.clone(), quota(i));
            tasks.spawn(async move { rest.detokenize(mine, q, deadline).await });
        }
        join_rest(&mut report, tasks).await?;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    if opts.mode == Mode::Tokenize {
        report.setup_seconds = setup_started.elapsed().as_secs_f64();
        let started = Instant::now();
        let deadline = duration.map(|d| started + d);
        let mut tasks = tokio::task::JoinSet::new();
        for (i, card) in cards.into_iter().enumerate() {
            let (rest, q) = (rest.clone(), quota(i));
            tasks.spawn(async move { rest.tokenize(&card, q, deadline).await });
        }
        join_rest(&mut report, tasks).await?;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let terminal = |i: usize| Requests::new(&terminal_id(nonce, i), modes::MERCHANT);
    // Only registered terminals may pay: this run's, each for its one merchant.
    let mut terminals: Vec<(String, &'static str)> =
        (0..conns).map(|i| (terminal_id(nonce, i), modes::MERCHANT)).collect();
    if opts.mode == Mode::Mixed {
        terminals.extend((0..conns).map(|i| (local_terminal_id(nonce, i), modes::LOCAL_MERCHANT)));
    }
    eprintln!("tsp load: registering {} terminals", terminals.len());
    rest.terminals(terminals, SETUP_PARALLEL).await?;

    if opts.mode == Mode::Pay {
        let per: Vec<usize> = (0..conns).map(|i| quota(i).unwrap_or(0) as usize).collect();
        let wanted: Vec<String> =
            cards.iter().zip(&per).flat_map(|(c, n)| std::iter::repeat_n(c.clone(), *n)).collect();
        eprintln!("tsp load: issuing {} tokens", wanted.len());
        let mut tokens = rest.tokens(wanted, SETUP_PARALLEL).await?.into_iter();
        let mut drivers = Vec::with_capacity(conns);
        for (i, n) in per.iter().enumerate() {
            drivers.push(modes::Pay::new(terminal(i), tokens.by_ref().take(*n).collect()));
        }
        report.setup_seconds = setup_started.elapsed().as_secs_f64();
        let (secs, results) = drive(&opts.iso, opts.dialect, drivers, opts.pipeline, duration).await;
        report.seconds = secs;
        merge(&mut report, results);
        return Ok(report);
    }

    // Mixed.
    eprintln!("tsp load: issuing a gift certificate and charging a {LOCAL_REGION} wallet");
    let gift = rest.gift(GIFT_FACE_VALUE).await?;
    let local = rest.local_wallet(LOCAL_REGION, LOCAL_CHARGE).await?;
    let schedules: Vec<Vec<modes::Step>> = (0..conns).map(|i| modes::schedule(i, quota(i).unwrap_or(0))).collect();
    let mut wanted = Vec::new();
    for (i, s) in schedules.iter().enumerate() {
        let n = modes::tokens_needed(s);
        for k in Kind::ALL {
            let ins = match k {
                Kind::Card => cards.get(i).ok_or_else(|| LoadError::Setup("a card is missing".into()))?,
                Kind::Gift => &gift,
                Kind::Local => &local,
            };
            wanted.extend(std::iter::repeat_n(ins.clone(), n[k.index()]));
        }
    }
    eprintln!("tsp load: issuing {} tokens", wanted.len());
    let mut tokens = rest.tokens(wanted, SETUP_PARALLEL).await?.into_iter();
    let mut drivers = Vec::with_capacity(conns);
    for (i, steps) in schedules.into_iter().enumerate() {
        let n = modes::tokens_needed(&steps);
        let mut per_kind: [Vec<String>; 3] = Default::default();
        for k in Kind::ALL {
            per_kind[k.index()] = tokens.by_ref().take(n[k.index()]).collect();
            per_kind[k.index()].reverse();
        }
        let local = Requests::new(&local_terminal_id(nonce, i), modes::LOCAL_MERCHANT);
        drivers.push(modes::Mixed::new(terminal(i), local, steps, per_kind));
    }
    report.setup_seconds = setup_started.elapsed().as_secs_f64();
    let (secs, results) = drive(&opts.iso, opts.dialect, drivers, opts.pipeline, duration).await;
    report.seconds = secs;
    merge(&mut report, results);
    Ok(report)
}

/// Waits for the REST clients of a timed part and adds up what they counted.
async fn join_rest(report: &mut Report, mut tasks: tokio::task::JoinSet<Stats>) -> Result<(), LoadError> {
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(s) => report.stats.add(&s),
            Err(e) => return Err(LoadError::Setup(format!("{} task: {e}", report.mode))),
        }
    }
    Ok(())
}

/// The timed part over ISO 8583: one task per driver; the seconds from the start to the last answer.
async fn drive<D: Driver + 'static>(
    addr: &str,
    dialect: crate::iso8583::Dialect,
    drivers: Vec<D>,
    pipeline: usize,
    duration: Option<Duration>,
) -> (f64, Vec<ConnResult>) {
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let mut tasks = tokio::task::JoinSet::new();
    for d in drivers {
        let addr = addr.to_string();
        tasks.spawn(async move { run_connection(&addr, dialect, d, pipeline, deadline).await });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                // A connection task that panicked or was cancelled: its requests are unaccounted for.
                tracing::error!(error = %e, "load: a connection task failed");
                let mut stats = Stats::default();
                stats.stray(stats::Wrong::Connection);
                results.push(ConnResult { stats, skipped: 0 });
            }
        }
    }
    (started.elapsed().as_secs_f64(), results)
}

fn merge(report: &mut Report, results: Vec<ConnResult>) {
    for r in results {
        report.stats.add(&r.stats);
        report.skipped += r.skipped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn shares_ids_and_pans() {
        let parts: Vec<u64> = (0..4).map(|i| share(10, 4, i)).collect();
        assert_eq!(parts, [3, 3, 2, 2]);
        assert_eq!(terminal_id(0, 7), "L0000007");
        assert_eq!(terminal_id(36 * 36 * 36 - 1, 12), "LZZZ0012");
        assert_eq!(local_terminal_id(36 * 36 * 36 - 1, 12), "MZZZ0012");
        let pan = test_pan(123_456, 3).unwrap();
        assert!(pan.starts_with("555555") && pan.len() == 16 && crate::luhn::is_valid(&pan), "{pan}");
        assert!(test_pan(u32::MAX, 9_999).is_ok_and(|p| p.len() == 16 && p.starts_with("555555")));
    }
}
