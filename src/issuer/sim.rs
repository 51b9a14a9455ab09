//! The issuer simulator: a card issuer's authorization host in memory, speaking the TSP's ISO 8583
//! dialect (docs/iso8583.md "The issuer side") with DE2 holding the real PAN.
//!
//! Owns each card's credit limit and open-to-buy, and the issuer's memory of transactions by their
//! key (DE11, DE41, DE7, DE32), which makes repeats idempotent and lets reversals (DE90) undo an
//! original exactly once. It can also misbehave on purpose — latency, lost answers, going offline —
//! so that the TSP's timeout and reversal-advice paths can be tested.
//!
//! Runs in-process behind [`super::host::InProcessHost`] or over TCP as `tsp issuer-sim`
//! ([`super::host::serve`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::{self, Clock};
use crate::iso8583::{Message, Mti, OriginalData, private};
use crate::luhn;

/// How the simulator behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Credit limit of a card without its own ([`Simulator::set_limit`]), in minor units.
    pub default_limit_minor: i64,
    /// Delay before each answer.
    pub latency_ms: u64,
    /// Share (0.0–1.0) of requests whose answer is lost: the request takes effect but no answer
    /// leaves, as when a response is lost on the way back. `0420` advices are exempt.
    pub failure_rate: f64,
    /// Seeds approval codes and lost-answer draws, so that runs repeat.
    pub seed: u64,
    /// How card registrations (token activation requests) are decided (`[[issuer_sim.activation]]`).
    pub activation: Vec<crate::config::ActivationRule>,
    /// Print every activation code sent on standard output (`tsp issuer-sim`: its "phone").
    pub print_codes: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            default_limit_minor: 5_000_000,
            latency_ms: 0,
            failure_rate: 0.0,
            seed: 0x5eed,
            activation: Vec::new(),
            print_codes: false,
        }
    }
}

/// What the simulator has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests received, by MTI (including those left unanswered).
    pub received: BTreeMap<Mti, u64>,
    /// Answers with DE39 `00`.
    pub approved: u64,
    /// Answers with any other DE39.
    pub declined: u64,
    /// Requests not answered (offline or a lost answer).
    pub unanswered: u64,
    /// Repeats answered from memory without a second effect.
    pub repeats: u64,
}

impl SimStats {
    /// How many requests of type `mti` arrived.
    pub fn received(&self, mti: Mti) -> u64 {
        self.received.get(&mti).copied().unwrap_or(0)
    }
}

/// Fields every answer copies from its request, besides DE39 and DE38: the echo list of tsp's own
/// answers (docs/iso8583.md "Decisions") less DE22 and DE23.
const ECHO: [u8; 12] = [2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49];

/// A transaction's identity: its MTI and DE11, DE41, DE7, DE32 — normalized as DE90 carries them
/// (DE7 zeros when absent, DE32 right-justified to 11 digits), so that a reversal finds it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct TxKey {
    mti: Mti,
    stan: String,
    terminal: String,
    sent_at: String,
    acquirer: String,
}

impl TxKey {
    /// The key of `req` itself; `None` without a STAN.
    fn of(req: &Message) -> Option<TxKey> {
        let stan = req.stan()?;
        Some(TxKey {
            mti: req.mti(),
            stan: stan.to_string(),
            terminal: req.terminal_id().unwrap_or("").to_string(),
            sent_at: req.transmission_date_time().unwrap_or("0000000000").to_string(),
            acquirer: format!("{:0>11}", req.acquirer_id().unwrap_or("")),
        })
    }

    /// The key of the original that `req`'s DE90 names (DE90 has no DE41: the terminal is `req`'s).
    fn original(req: &Message, orig: &OriginalData) -> TxKey {
        TxKey {
            mti: orig.mti(),
            stan: orig.stan().to_string(),
            terminal: req.terminal_id().unwrap_or("").to_string(),
            sent_at: orig.transmission_date_time().to_string(),
            acquirer: orig.acquirer_id().to_string(),
        }
    }
}

/// What a remembered transaction did to the open-to-buy.
enum Effect {
    /// A purchase: `amount` was taken; `refunded` of it has been given back since.
    Purchase { pan: String, amount: i64, refunded: i64 },
    /// A refund of `amount` against the purchase `original`.
    Refund { pan: String, amount: i64, original: TxKey },
    /// A reversal, or a declined request: nothing to undo.
    None,
}

/// A remembered request.
enum Entry {
    /// Answered: the answer for repeats, what it did, and whether a reversal undid it.
    Done { fingerprint: [u8; 32], answer: Box<Message>, approved: bool, effect: Effect, reversed: bool },
    /// A reversal came for this key before the original did: the late original is declined.
    ReversedBeforeArrival,
}

/// How many requests the simulator remembers (for repeats, reversals and refunds); beyond it the
/// oldest is forgotten. A real issuer's windows are bounded too, and this one lives in the service's
/// process: remembering every request grew the server by about 1.4 KB a payment
/// (docs/performance.md).
const REMEMBERED: usize = 20_000;

/// The remembered requests by key, and the order they came in (to forget the oldest).
#[derive(Default)]
struct Txns {
    by_key: HashMap<TxKey, Entry>,
    order: VecDeque<TxKey>,
}

impl Txns {
    fn get(&self, key: &TxKey) -> Option<&Entry> {
        self.by_key.get(key)
    }

    fn get_mut(&mut self, key: &TxKey) -> Option<&mut Entry> {
        self.by_key.get_mut(key)
    }

    fn insert(&mut self, key: TxKey, entry: Entry) {
        if self.by_key.insert(key.clone(), entry).is_none() {
            self.order.push_back(key);
            while self.order.len() > REMEMBERED {
                if let Some(oldest) = self.order.pop_front() {
                    self.by_key.remove(&oldest);
                }
            }
        }
    }
}

/// The mutable state, behind one lock.
struct State {
    offline: bool,
    latency_ms: u64,
    limits: HashMap<String, i64>,
    /// Cards the issuer refuses outright (`05`): lost, stolen, closed.
    blocked: HashSet<String>,
    used: HashMap<String, i64>,
    txns: Txns,
    stats: SimStats,
    rng: u64,
    /// When each card was asked to be registered (token activation requests), for velocity rules.
    registrations: HashMap<String, Vec<i64>>,
    /// Activation codes "sent" to cardholders.
    outbox: Vec<activation::SentCode>,
    /// The token assurance of each card's last financial request.
    assurance: HashMap<String, String>,
}

impl State {
    /// splitmix64: deterministic from the seed, which is all a simulator needs.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn approval_code(&mut self) -> String {
        format!("{:06}", self.next_u64() % 1_000_000)
    }

    fn used(&self, pan: &str) -> i64 {
        self.used.get(pan).copied().unwrap_or(0)
    }

    fn add_used(&mut self, pan: &str, delta: i64) {
        let u = self.used.entry(pan.to_string()).or_insert(0);
        *u = u.saturating_add(delta).max(0);
    }
}

/// A card issuer's authorization host. Cheap to share (`Arc`); every method takes `&self`.
pub struct Simulator {
    cfg: SimConfig,
    clock: Clock,
    state: Mutex<State>,
}

impl fmt::Debug for Simulator {
    /// Configuration and counts only: the state holds card numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator").field("cfg", &self.cfg).field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// A request's content, to tell a repeat from a different request under the same key (`94`).
fn fingerprint(req: &Message) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(req.mti().as_bytes());
    for de in [2u8, 3, 4, 14, 49, 90] {
        if let Some(v) = req.get(de) {
            h.update([de]);
            h.update((v.len() as u32).to_be_bytes());
            h.update(v.as_bytes());
        }
    }
    h.finalize().into()
}

/// The answer to `req` with response code `code`: the response MTI (`None` when `req` is not a
/// request) and the echoed fields.
fn answer(req: &Message, code: &str) -> Option<Message> {
    let mut resp = Message::new(req.mti().response()?);
    for de in ECHO {
        if let Some(v) = req.get(de) {
            // Copied from a valid message into the same field: cannot fail.
            let _ = resp.set(de, v);
        }
    }
    let _ = resp.set_response_code(code);
    Some(resp)
}

/// `answer` that cannot be `None`: for requests already known to be requests.
fn reply(req: &Message, code: &str) -> Message {
    answer(req, code).unwrap_or_else(|| Message::new(req.mti()))
}

fn approved_reply(req: &Message, auth_code: &str) -> Message {
    let mut resp = reply(req, "00");
    let _ = resp.set_authorization_code(auth_code);
    resp
}

impl Simulator {
    pub fn new(cfg: SimConfig) -> Simulator {
        Self::with_clock(cfg, Clock::system())
    }

    /// With the service's clock, so that tests that move time also move card expiry.
    pub fn with_clock(cfg: SimConfig, clock: Clock) -> Simulator {
        let state = State {
            offline: false,
            latency_ms: cfg.latency_ms,
            limits: HashMap::new(),
            blocked: HashSet::new(),
            used: HashMap::new(),
            txns: Txns::default(),
            stats: SimStats::default(),
            rng: cfg.seed,
            registrations: HashMap::new(),
            outbox: Vec::new(),
            assurance: HashMap::new(),
        };
        Simulator { cfg, clock, state: Mutex::new(state) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for a simulator.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets one card's credit limit (minor units).
    pub fn set_limit(&self, pan: &str, minor: i64) {
        self.lock().limits.insert(pan.to_string(), minor);
    }

    /// Blocks a card (every verification and purchase with it is `05`) or unblocks it.
    pub fn set_blocked(&self, pan: &str, blocked: bool) {
        let mut st = self.lock();
        if blocked {
            st.blocked.insert(pan.to_string());
        } else {
            st.blocked.remove(pan);
        }
    }

    /// While offline, requests are counted but have no effect and get no answer.
    pub fn set_offline(&self, offline: bool) {
        self.lock().offline = offline;
    }

    pub fn set_latency_ms(&self, ms: u64) {
        self.lock().latency_ms = ms;
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    /// The card's open-to-buy in use: approved purchases less refunds and reversals.
    pub fn used(&self, pan: &str) -> i64 {
        self.lock().used(pan)
    }

    /// Answers one request as the issuer would; `None` when no answer leaves (offline, a lost
    /// answer, or a message that is not a request).
    pub async fn handle(&self, req: Message) -> Option<Message> {
        let latency = {
            let mut st = self.lock();
            *st.stats.received.entry(req.mti()).or_insert(0) += 1;
            if st.offline {
                st.stats.unanswered += 1;
                return None;
            }
            st.latency_ms
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut st = self.lock();
        let resp = self.decide(&mut st, &req)?;
        let lose =
            req.mti() != Mti::REVERSAL_ADVICE && self.cfg.failure_rate > 0.0 && st.next_f64() < self.cfg.failure_rate;
        if lose {
            st.stats.unanswered += 1;
            return None;
        }
        if resp.response_code() == Some("00") {
            st.stats.approved += 1;
        } else {
            st.stats.declined += 1;
        }
        Some(resp)
    }

    /// The `30` answer to a request that could not be decoded, from what could be read of it;
    /// `None` when that was not a request. Counted, but not subject to latency or offline.
    pub(crate) fn format_error(&self, partial: &Message) -> Option<Message> {
        let resp = answer(partial, "30")?;
        let mut st = self.lock();
        *st.stats.received.entry(partial.mti()).or_insert(0) += 1;
        st.stats.declined += 1;
        Some(resp)
    }

    fn decide(&self, st: &mut State, req: &Message) -> Option<Message> {
        let mti = req.mti();
        Some(match mti {
            Mti::AUTHORIZATION_REQUEST => match req.processing_code().and_then(|p| p.get(..2)) {
                Some("33") => self.activation_request(st, req),
                Some("34") => self.activation_code(st, req),
                _ => self.verify(st, req),
            },
            Mti::FINANCIAL_REQUEST => match req.processing_code().map(|p| p.get(..2)) {
                Some(Some("00")) => {
                    if let (Some(pan), Some(ta)) = (req.pan(), req.get(48).and_then(|d| private::get(d, "TA"))) {
                        st.assurance.insert(pan.to_string(), ta.to_string());
                    }
                    self.remembered(st, req, Self::purchase)
                }
                Some(Some("20")) => self.remembered(st, req, Self::refund),
                None => reply(req, "30"),
                _ => reply(req, "12"),
            },
            Mti::REVERSAL_REQUEST | Mti::REVERSAL_ADVICE => self.remembered(st, req, Self::reverse),
            Mti::NETWORK_REQUEST => {
                let mut resp = reply(req, "00");
                if let Some(code) = req.network_management_code() {
                    let _ = resp.set_network_management_code(code);
                }
                resp
            }
            _ => return answer(req, "12"),
        })
    }

    /// `true` when DE14 (`YYMM`) is before this month (UTC), or not a month at all.
    fn expired(&self, expiry: &str) -> bool {
        let digits = |r: std::ops::Range<usize>| expiry.get(r).and_then(|s| s.parse::<i32>().ok());
        let (Some(yy), Some(mm)) = (digits(0..2), digits(2..4)) else { return true };
        if !(1..=12).contains(&mm) {
            return true;
        }
        let (year, month) = clock::year_month(self.clock.now_ms());
        (2000 + yy, mm) < (year, i32::from(month))
    }

    /// `0100`: account verification (amount zero), no effect.
    fn verify(&self, st: &mut State, req: &Message) -> Message {
        let verification = matches!(req.processing_code().and_then(|p| p.get(..2)), Some("90" | "00"));
        if !verification || req.amount().unwrap_or(0) != 0 {
            return reply(req, "12");
        }
        let Some(pan) = req.pan() else { return reply(req, "30") };
        if !luhn::is_valid(pan) {
            return reply(req, "14");
        }
        if req.expiry().is_some_and(|e| self.expired(e)) {
            return reply(req, "54");
        }
        if st.blocked.contains(pan) {
            return reply(req, "05");
        }
        let code = st.approval_code();
        approved_reply(req, &code)
    }

    /// Runs `decide_new` once per transaction key: a repeat gets the first answer, a different
    /// request under a used key `94`; both without effect.
    fn remembered(
        &self,
        st: &mut State,
        req: &Message,
        decide_new: fn(&Self, &mut State, &Message) -> (Message, Effect),
    ) -> Message {
        let Some(key) = TxKey::of(req) else { return reply(req, "30") };
        let fp = fingerprint(req);
        let late_after_reversal = match st.txns.get(&key) {
            Some(Entry::Done { fingerprint: first_fp, answer: first, .. }) => {
                if *first_fp == fp {
                    let first = Message::clone(first);
                    st.stats.repeats += 1;
                    return first;
                }
                return reply(req, "94");
            }
            Some(Entry::ReversedBeforeArrival) => true,
            None => false,
        };
        let (resp, effect, reversed) = if late_after_reversal {
            // Already reversed: decline, so that nothing is left to undo.
            (reply(req, "05"), Effect::None, true)
        } else {
            let (resp, effect) = decide_new(self, st, req);
            (resp, effect, false)
        };
        let approved = resp.response_code() == Some("00");
        st.txns
            .insert(key, Entry::Done { fingerprint: fp, answer: Box::new(resp.clone()), approved, effect, reversed });
        resp
    }

    /// `0200` `00xxxx`.
    fn purchase(&self, st: &mut State, req: &Message) -> (Message, Effect) {
        let decline = |code| (reply(req, code), Effect::None);
        let Some(pan) = req.pan() else { return decline("30") };
        if !luhn::is_valid(pan) {
            return decline("14");
        }
        if req.expiry().is_some_and(|e| self.expired(e)) {
            return decline("54");
        }
        if st.blocked.contains(pan) {
            return decline("05");
        }
        let amount = match req.amount().and_then(|a| i64::try_from(a).ok()) {
            Some(a) if a > 0 => a,
            _ => return decline("13"),
        };
        let limit = st.limits.get(pan).copied().unwrap_or(self.cfg.default_limit_minor);
        if st.used(pan).saturating_add(amount) > limit {
            return decline("51");
        }
        st.add_used(pan, amount);
        let code = st.approval_code();
        (approved_reply(req, &code), Effect::Purchase { pan: pan.to_string(), amount, refunded: 0 })
    }

    /// `0200` `20xxxx`: gives back part or all of what the purchase in DE90 took.
    fn refund(&self, st: &mut State, req: &Message) -> (Message, Effect) {
        let decline = |code| (reply(req, code), Effect::None);
        let Some(orig) = req.original_data() else { return decline("30") };
        let amount = match req.amount().and_then(|a| i64::try_from(a).ok()) {
            Some(a) if a > 0 => a,
            _ => return decline("13"),
        };
        let orig_key = TxKey::original(req, &orig);
        let Some(Entry::Done { approved, reversed, effect: Effect::Purchase { pan, amount: taken, refunded }, .. }) =
            st.txns.get_mut(&orig_key)
        else {
            return decline("25");
        };
        if req.pan().is_some_and(|p| p != pan.as_str()) {
            return decline("25");
        }
        let left = if *approved && !*reversed { *taken - *refunded } else { 0 };
        if amount > left {
            return decline("64");
        }
        *refunded += amount;
        let pan = pan.clone();
        st.add_used(&pan, -amount);
        let code = st.approval_code();
        (approved_reply(req, &code), Effect::Refund { pan, amount, original: orig_key })
    }

    /// `0400`/`0420`: undoes the original in DE90 once. Unknown originals answer `25` and are
    /// remembered, so that a late original is declined.
    fn reverse(&self, st: &mut State, req: &Message) -> (Message, Effect) {
        let Some(orig) = req.original_data() else { return (reply(req, "30"), Effect::None) };
        let orig_key = TxKey::original(req, &orig);
        let undo = match st.txns.get_mut(&orig_key) {
            None => {
                st.txns.insert(orig_key, Entry::ReversedBeforeArrival);
                return (reply(req, "25"), Effect::None);
            }
            Some(Entry::ReversedBeforeArrival) => return (reply(req, "25"), Effect::None),
            Some(Entry::Done { approved, reversed, effect, .. }) => {
                if !*approved || *reversed {
                    return (reply(req, "00"), Effect::None);
                }
                *reversed = true;
                match effect {
                    Effect::Purchase { pan, amount, refunded } => Some((pan.clone(), -(*amount - *refunded), None)),
                    Effect::Refund { pan, amount, original } => Some((pan.clone(), *amount, Some(original.clone()))),
                    Effect::None => None,
                }
            }
        };
        if let Some((pan, delta, refund_of)) = undo {
            match refund_of {
                None => st.add_used(&pan, delta),
                Some(purchase) => {
                    // Undoing a refund takes the money again, unless the purchase itself is gone.
                    if let Some(Entry::Done { reversed: false, effect: Effect::Purchase { refunded, .. }, .. }) =
                        st.txns.get_mut(&purchase)
                    {
                        *refunded -= delta;
                        st.add_used(&pan, delta);
                    }
                }
            }
        }
        (reply(req, "00"), Effect::None)
    }
}

mod activation;
pub use activation::{APP_DESTINATION, SentCode, phone_of};

#[cfg(test)]
pub(crate) mod tests;
