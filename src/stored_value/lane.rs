//! A node's writers of one wallet: in order, decided in memory, written together.
//!
//! Every change to a local-currency wallet on this node goes through the wallet's lane. The lane
//! holds the wallet as the changes it took leave it, so the next change is decided at once, in
//! memory, and joins the batch being gathered. One task per busy wallet writes the batches in order,
//! each in one database transaction whose wallet update holds only at the version the batch was
//! decided on: a batch carries whatever arrived while the one before it was being written, so a
//! busy wallet costs one read when it gets busy and one commit per batch, not a read and a commit
//! per payment, and its writers queue instead of racing.
//!
//! What is not written as decided is decided again, never guessed:
//! - the wallet was written by another node (`Conflict`): the lane lets go of what it held, and
//!   every change not yet written is decided again from a fresh read;
//! - a database guard refused change k (its token was spent meanwhile, …): the changes before it
//!   are written on their own, change k hears the refusal, and the changes after it are decided
//!   again;
//! - a rule's refusal (`51`, `64`, …) decided on what the lane held is answered only after
//!   everything it was decided on is written and a fresh read agrees (another node may have charged
//!   the wallet meanwhile); a fresh read that disagrees lets go of the stale wallet.
//!
//! Across nodes the wallet's version alone decides, as before.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{oneshot, watch};

use super::wallet::{Applied, Loaded, Plan, Step, load, to_payment};
use crate::config::Config;
use crate::store::{LocalPaymentRow, Store, StoreError, WalletOutcome, WalletRow, WalletWrite};
use crate::{Error, Result};

/// Stripes of the lane table: wallets share a stripe's lock only to find their lane.
const STRIPES: usize = 64;
/// Idle lanes a stripe keeps (with the wallet they hold) before it lets go of them.
const IDLE_KEPT: usize = 4;
/// Payments a lane keeps as its changes left them, beyond those not yet written.
const PAYMENTS_KEPT: usize = 256;
/// The most changes one batch writes.
const MAX_BATCH: usize = 128;
/// How often one change is decided again before the caller hears `Busy`.
const MAX_ATTEMPTS: usize = 32;

/// This node's wallet lanes.
pub struct Lanes {
    stripes: Vec<Mutex<HashMap<String, Arc<Lane>>>>,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes { stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

/// Locks a mutex whose holder never panics while holding it (no code between lock and unlock
/// panics), taking the data back from a poisoned one all the same.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lanes {
    pub fn new() -> Lanes {
        Lanes::default()
    }

    /// The lane of one wallet, made when it has none.
    fn lane(&self, instrument_id: &str) -> Arc<Lane> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        instrument_id.hash(&mut h);
        let mut stripe = lock(&self.stripes[(h.finish() % STRIPES as u64) as usize]);
        if let Some(l) = stripe.get(instrument_id) {
            return l.clone();
        }
        if stripe.len() >= IDLE_KEPT {
            // Let go of idle lanes; a busy one stays until it is idle.
            stripe.retain(|_, l| Arc::strong_count(l) > 1 || !lock(&l.state).idle());
        }
        let l = Arc::new(Lane::new());
        stripe.insert(instrument_id.to_string(), l.clone());
        l
    }
}

struct Lane {
    state: Mutex<State>,
    /// The sequence number of the last batch settled (written, refused or given up).
    settled: watch::Sender<u64>,
}

impl Lane {
    fn new() -> Lane {
        Lane { state: Mutex::new(State::default()), settled: watch::Sender::new(0) }
    }

    /// Lets go of the wallet and of every batch not yet being written (they were decided on it),
    /// and tells those waiting for batches to settle that these have: the changes to answer `Again`.
    fn let_go(&self, st: &mut State) -> Vec<Change> {
        st.held = None;
        st.generation += 1;
        st.payments.clear();
        st.payment_order.clear();
        let dropped: Vec<Change> = st.batches.drain(..).flat_map(|b| b.changes).collect();
        st.settled = st.next_seq;
        self.settled.send_replace(st.settled);
        dropped
    }
}

#[derive(Default)]
struct State {
    /// The wallet as every change taken leaves it, written or not.
    held: Option<Held>,
    /// Batches taken and not yet being written, oldest first; the last may still gather.
    batches: VecDeque<Batch>,
    /// A writer task runs (it takes batches from the front until none is left).
    writing: bool,
    /// Payment rows as the changes taken leave them, by transaction id, with the batch that last
    /// changed each (a row of a batch not yet settled is never let go of).
    payments: HashMap<String, (u64, LocalPaymentRow)>,
    payment_order: VecDeque<String>,
    /// Bumped whenever the lane lets go of what it held: a decision begun before is made again.
    generation: u64,
    /// How many kept payment rows were let go of, and the ids of the latest (up to
    /// [`PAYMENTS_KEPT`]): a payment read from the database while it was let go of is read again.
    evicted: u64,
    evicted_ids: VecDeque<String>,
    next_seq: u64,
    settled: u64,
}

/// The wallet a lane holds.
struct Held {
    loaded: Loaded,
    /// The version the next new batch writes over.
    version: i64,
}

struct Batch {
    seq: u64,
    /// The lane's generation when the batch was begun: the wallet it was decided on.
    generation: u64,
    /// The wallet version it writes over.
    version: i64,
    changes: Vec<Change>,
}

struct Change {
    plan: Plan,
    /// The wallet as this change leaves it.
    wallet: WalletRow,
    at: i64,
    reply: oneshot::Sender<Verdict>,
}

/// What became of one change.
enum Verdict {
    Written,
    /// A database guard refused it; nothing of it was written.
    Refused(WalletOutcome),
    /// Not written: decide it again.
    Again,
    Failed(StoreError),
}

impl State {
    fn idle(&self) -> bool {
        self.batches.is_empty() && !self.writing
    }

    fn keep_payment(&mut self, seq: u64, row: &LocalPaymentRow) {
        if self.payments.insert(row.transaction_id.clone(), (seq, row.clone())).is_none() {
            self.payment_order.push_back(row.transaction_id.clone());
        }
        while self.payment_order.len() > PAYMENTS_KEPT {
            let Some(oldest) = self.payment_order.front() else { break };
            match self.payments.get(oldest) {
                // Its batch is not written yet: a read of the database would miss it.
                Some((s, _)) if *s > self.settled => break,
                _ => {}
            }
            if let Some(id) = self.payment_order.pop_front() {
                self.payments.remove(&id);
                self.evicted += 1;
                self.evicted_ids.push_back(id);
                if self.evicted_ids.len() > PAYMENTS_KEPT {
                    self.evicted_ids.pop_front();
                }
            }
        }
    }

    /// Whether a read of payment `id` from the database, begun when `evicted` rows had been let go
    /// of, still stands: the lane did not let go of that payment's row meanwhile (it may have
    /// changed it after the read began).
    fn read_stands(&self, evicted: u64, id: &str) -> bool {
        let since = (self.evicted - evicted) as usize;
        since <= self.evicted_ids.len() && !self.evicted_ids.iter().rev().take(since).any(|e| e == id)
    }

    /// Adds a decided change to the batch gathering (begun when there is none); its sequence number.
    fn take(&mut self, change: Change) -> Result<u64> {
        let held = self.held.as_mut().ok_or_else(|| Error::Internal("wallet lane: nothing held".into()))?;
        match self.batches.back_mut() {
            Some(b) if b.changes.len() < MAX_BATCH => {
                b.changes.push(change);
                Ok(b.seq)
            }
            _ => {
                self.next_seq += 1;
                let version = held.version;
                held.version += 1;
                let b = Batch { seq: self.next_seq, generation: self.generation, version, changes: vec![change] };
                self.batches.push_back(b);
                Ok(self.next_seq)
            }
        }
    }
}

/// Where a decision stands.
enum Decided<T> {
    /// Taken into a batch: wait for its verdict.
    Taken(oneshot::Receiver<Verdict>, T),
    /// The rule refused on what the database had: answer it.
    Refused(T),
    /// The rule refused on what the lane held: answer only once batches up to `upto` are settled
    /// and a fresh read agrees.
    Check(u64),
    /// The lane changed while this decision read the database: decide again.
    Again,
}

/// Applies one change to a wallet through its lane (see the module's notes): `rule` decides on
/// the wallet (and the payment `payment`, when given) with expired bonus lapsed, and what it plans
/// is written with the lapse in one transaction.
pub async fn apply<T>(
    lanes: &Lanes,
    store: &Store,
    config: &Config,
    now: impl Fn() -> i64,
    instrument_id: &str,
    payment: Option<&str>,
    mut rule: impl FnMut(&mut Loaded, i64) -> Result<Step<T>>,
) -> Result<Applied<T>> {
    let lane = lanes.lane(instrument_id);
    for _ in 0..MAX_ATTEMPTS {
        // What the lane lacks is read outside its lock; the ticket tells whether it still fits.
        let (generation, evicted, holds, kept) = {
            let st = lock(&lane.state);
            let kept = payment.is_some_and(|id| st.payments.contains_key(id));
            (st.generation, st.evicted, st.held.is_some(), kept)
        };
        let read = if holds { None } else { Some(load(store, config, instrument_id, None).await?) };
        let read_payment = match payment {
            Some(id) if !kept => Some(store.local_payment(id).await?),
            _ => None,
        };
        let decided = {
            let mut st = lock(&lane.state);
            decide(&mut st, &lane, store, generation, evicted, read, read_payment, payment, &now, &mut rule)?
        };
        match decided {
            Decided::Taken(verdict, answer) => match verdict.await {
                Ok(Verdict::Written) => return Ok(Applied::Done(answer)),
                Ok(Verdict::Refused(o)) => return Ok(Applied::Refused(o)),
                Ok(Verdict::Failed(e)) => return Err(Error::Store(e)),
                Ok(Verdict::Again) | Err(_) => continue,
            },
            Decided::Refused(answer) => return Ok(Applied::Done(answer)),
            Decided::Again => continue,
            Decided::Check(upto) => {
                // Everything the refusal was decided on is settled first, then read afresh.
                let mut settled = lane.settled.subscribe();
                if settled.wait_for(|s| *s >= upto).await.is_err() {
                    continue;
                }
                let mut fresh = load(store, config, instrument_id, payment).await?;
                let at = now();
                fresh.lapse(at)?;
                match rule(&mut fresh, at)? {
                    Step::Refuse(answer) => return Ok(Applied::Done(answer)),
                    Step::Write(..) => {
                        // The lane held a wallet older than the database's: another node wrote it.
                        let dropped = {
                            let mut st = lock(&lane.state);
                            match &st.held {
                                Some(h) if h.version < fresh.snapshot.wallet.version => lane.let_go(&mut st),
                                _ => Vec::new(),
                            }
                        };
                        for c in dropped {
                            let _ = c.reply.send(Verdict::Again);
                        }
                    }
                }
            }
        }
    }
    Err(Error::Store(StoreError::Busy))
}

/// Decides one change under the lane's lock.
#[allow(clippy::too_many_arguments)]
fn decide<T>(
    st: &mut State,
    lane: &Arc<Lane>,
    store: &Store,
    generation: u64,
    evicted: u64,
    read: Option<Loaded>,
    read_payment: Option<Option<LocalPaymentRow>>,
    payment: Option<&str>,
    now: &impl Fn() -> i64,
    rule: &mut impl FnMut(&mut Loaded, i64) -> Result<Step<T>>,
) -> Result<Decided<T>> {
    if st.generation != generation {
        return Ok(Decided::Again);
    }
    // Read in this decision, with nothing of this node's on its way: what the database has.
    let mut read_now = false;
    if st.held.is_none() {
        let Some(loaded) = read else { return Ok(Decided::Again) };
        let version = loaded.snapshot.wallet.version;
        st.held = Some(Held { loaded, version });
        read_now = st.idle();
    }
    let row = match payment {
        None => None,
        Some(id) => match st.payments.get(id) {
            Some((_, row)) => Some(row.clone()),
            None => match read_payment {
                Some(row) if st.read_stands(evicted, id) => row,
                // Kept when this decision began and let go of since, or let go of while it was read.
                _ => return Ok(Decided::Again),
            },
        },
    };
    let Some(held) = st.held.as_ref() else { return Ok(Decided::Again) };
    let mut l = held.loaded.clone();
    l.payment = row.as_ref().map(to_payment);
    let at = now();
    let lapse = l.lapse(at)?;
    let (mut plan, answer) = match rule(&mut l, at)? {
        Step::Refuse(answer) if read_now => return Ok(Decided::Refused(answer)),
        Step::Refuse(_) => return Ok(Decided::Check(st.next_seq)),
        Step::Write(plan, answer) => (*plan, answer),
    };
    if let Some(e) = lapse {
        plan.entries.insert(0, e);
    }
    let wallet = l.wallet_row()?;
    l.payment = None;
    l.snapshot.payment = None;
    let (reply, verdict) = oneshot::channel();
    let rows: Vec<LocalPaymentRow> = plan.new_payment.iter().chain(plan.payment_update.iter()).cloned().collect();
    let seq = st.take(Change { plan, wallet, at, reply })?;
    for r in &rows {
        st.keep_payment(seq, r);
    }
    if let Some(h) = st.held.as_mut() {
        h.loaded = l;
    }
    if !st.writing {
        st.writing = true;
        tokio::spawn(write_batches(lane.clone(), store.clone()));
    }
    Ok(Decided::Taken(verdict, answer))
}

impl Plan {
    fn as_write(&self, now: i64) -> WalletWrite<'_> {
        WalletWrite {
            now,
            entries: self.entries.clone(),
            transaction_id: self.transaction_id.as_deref(),
            consume_token: self.consume_token.as_deref(),
            new_payment: self.new_payment.as_ref(),
            payment_update: self.payment_update.as_ref(),
            cancel: self.cancel.as_ref().map(|(id, a)| (id.as_str(), *a)),
            reverse: self.reverse.as_deref(),
            txn: self.txn.as_ref(),
        }
    }
}

/// A lane's writer: writes its batches in order until none is left.
async fn write_batches(lane: Arc<Lane>, store: Store) {
    loop {
        let batch = {
            let mut st = lock(&lane.state);
            match st.batches.pop_front() {
                Some(b) => b,
                None => {
                    st.writing = false;
                    return;
                }
            }
        };
        let verdicts = write(&store, &batch).await;
        let mut dropped = Vec::new();
        {
            let mut st = lock(&lane.state);
            let written = verdicts.iter().all(|v| matches!(v, Verdict::Written));
            if !written && st.generation == batch.generation {
                // The lane's wallet went on from what was not written.
                dropped = lane.let_go(&mut st);
            }
            st.settled = st.settled.max(batch.seq);
            lane.settled.send_replace(st.settled);
        }
        for (c, v) in batch.changes.into_iter().zip(verdicts) {
            let _ = c.reply.send(v);
        }
        for c in dropped {
            let _ = c.reply.send(Verdict::Again);
        }
    }
}

/// Writes one batch: all of it, or the changes before a refused one.
async fn write(store: &Store, batch: &Batch) -> Vec<Verdict> {
    let n = batch.changes.len();
    let writes: Vec<WalletWrite<'_>> = batch.changes.iter().map(|c| c.plan.as_write(c.at)).collect();
    let wallet_after = |k: usize| WalletRow { version: batch.version, ..batch.changes[k].wallet.clone() };
    let again = |from: usize, to: usize| (from..to).map(|_| Verdict::Again);
    match store.write_wallet(&wallet_after(n - 1), &writes).await {
        Ok((WalletOutcome::Done, _)) => (0..n).map(|_| Verdict::Written).collect(),
        Ok((WalletOutcome::Conflict, _)) => again(0, n).collect(),
        Ok((refused, k)) => {
            // The changes before the refused one, as they were decided.
            let before = if k == 0 {
                Vec::new()
            } else {
                match store.write_wallet(&wallet_after(k - 1), &writes[..k]).await {
                    Ok((WalletOutcome::Done, _)) => (0..k).map(|_| Verdict::Written).collect(),
                    Ok(_) => return again(0, n).collect(),
                    Err(e) => return (0..n).map(|_| Verdict::Failed(e.clone())).collect(),
                }
            };
            before.into_iter().chain([Verdict::Refused(refused)]).chain(again(k + 1, n)).collect()
        }
        Err(e) => (0..n).map(|_| Verdict::Failed(e.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;

    fn row(id: &str) -> LocalPaymentRow {
        let zero = Amount::zero(&crate::money::test_currencies::krw());
        LocalPaymentRow {
            transaction_id: id.to_string(),
            instrument_id: "ins_w".into(),
            principal: zero,
            bonus: zero,
            cancelled_principal: zero,
            cancelled_bonus: zero,
            forfeited_bonus: zero,
            takes: Vec::new(),
        }
    }

    #[test]
    fn a_payment_read_while_others_are_let_go_of_stands() {
        let mut st = State { settled: 1, ..State::default() };
        for i in 0..PAYMENTS_KEPT {
            st.keep_payment(1, &row(&format!("txn_{i}")));
        }
        assert_eq!(st.evicted, 0);
        // A read of txn_x begins; meanwhile new payments push the oldest kept rows out.
        let ticket = st.evicted;
        for i in 0..10 {
            st.keep_payment(1, &row(&format!("txn_new_{i}")));
        }
        assert_eq!(st.evicted, 10);
        assert!(st.read_stands(ticket, "txn_x"), "other payments were let go of, not this one");
        assert!(!st.read_stands(ticket, "txn_3"), "txn_3 was let go of during the read");
        assert!(st.read_stands(ticket + 4, "txn_3") && !st.read_stands(ticket + 3, "txn_3"));
    }

    #[test]
    fn a_row_not_yet_written_is_never_let_go_of() {
        let mut st = State { settled: 0, ..State::default() };
        for i in 0..PAYMENTS_KEPT + 5 {
            st.keep_payment(1, &row(&format!("txn_{i}")));
        }
        // Batch 1 is not settled: a read of the database would miss its rows.
        assert_eq!((st.payments.len(), st.evicted), (PAYMENTS_KEPT + 5, 0));
        st.settled = 1;
        st.keep_payment(2, &row("txn_next"));
        assert_eq!((st.payments.len(), st.evicted), (PAYMENTS_KEPT, 6));
    }

    #[test]
    fn too_many_let_go_of_to_tell_means_read_again() {
        let mut st = State { settled: 1, ..State::default() };
        for i in 0..3 * PAYMENTS_KEPT {
            st.keep_payment(1, &row(&format!("txn_{i}")));
        }
        assert!(!st.read_stands(0, "txn_unrelated"));
        assert!(st.read_stands(st.evicted, "txn_unrelated"));
    }
}
