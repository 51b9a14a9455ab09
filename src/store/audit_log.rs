//! The audit appender: this process's chain of audit rows (see `crate::audit`), written in batches.
//!
//! Callers hand their row to one task per store ([`Appender::append`]) and wait. The task takes
//! whatever has queued up (up to [`MAX_BATCH`] rows), numbers and hashes the rows after its chain's
//! last one — which it keeps in memory: only this task writes this chain — and writes them with one
//! multi-row insert: on SQLite into the group commit's epoch, on PostgreSQL in autocommit. Each caller
//! gets its row's `seq` once that write is durable. While a batch is written the next one queues up,
//! so one commit covers many rows and no lock is held across a commit; nodes never wait for each
//! other's appends.
//!
//! The chain begins (lazily, with the first row this process writes) with a start row forking from
//! the trail's last row, and about once a second ([`ANCHOR_EVERY`]) a batch also carries an anchor
//! naming the last row of each other chain that moved since. If a write fails, its callers get the
//! error and the task starts a new chain with the next batch: whether or not the failed rows landed,
//! both chains stay whole.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{AuditDraft, Backend, NewAuditRow, StoreError, StoreResult};
use crate::audit::{ANCHOR, CHAIN_START, GENESIS, anchor_detail, chain_hash, start_detail};

/// The most rows one write carries.
const MAX_BATCH: usize = 512;
/// Callers that may wait for the task at once before `append` waits to queue.
const QUEUE: usize = 8192;
/// How often (at most) a busy chain anchors the others.
const ANCHOR_EVERY: Duration = Duration::from_secs(1);
/// How far back (in `seq`) an anchor looks past the last one: rows numbered earlier may commit later.
const LATE_ROWS: i64 = 10_000;

struct Job {
    row: AuditDraft,
    reply: oneshot::Sender<StoreResult<i64>>,
}

/// The handle every clone of a store shares; the task starts with the first append.
#[derive(Default)]
pub struct Appender {
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl Appender {
    /// Appends `row` to this process's chain; its `seq` once it is durable.
    pub async fn append(&self, backend: &Backend, row: AuditDraft) -> StoreResult<i64> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(backend.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the audit appender stopped".into());
        queue.send(Job { row, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// This process's chain: its id, and its last row's link and hash.
struct Chain {
    id: String,
    link: i64,
    hash: String,
}

/// What the anchors have covered.
#[derive(Default)]
struct Anchors {
    last: Option<Instant>,
    /// Rows after this `seq` are looked at by the next anchor.
    after: i64,
    /// The last link each other chain was anchored at.
    named: HashMap<String, i64>,
}

async fn run(backend: Backend, mut queue: mpsc::Receiver<Job>) {
    let mut chain: Option<Chain> = None;
    let mut anchors = Anchors::default();
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        match write(&backend, &mut chain, &mut anchors, &jobs).await {
            Ok(seqs) => {
                for (job, seq) in jobs.into_iter().zip(seqs) {
                    let _ = job.reply.send(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = jobs.len(), "audit append failed; a new chain starts");
                chain = None;
                for job in jobs {
                    let _ = job.reply.send(Err(copy(&e)));
                }
            }
        }
    }
}

fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Database(m) => StoreError::Database(m.clone()),
        StoreError::Migrate(m) => StoreError::Migrate(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Busy => StoreError::Busy,
    }
}

/// Writes `jobs` (after a start row and an anchor when due) and returns each job's `seq`.
async fn write(
    backend: &Backend,
    chain: &mut Option<Chain>,
    anchors: &mut Anchors,
    jobs: &[Job],
) -> StoreResult<Vec<i64>> {
    // Rows the chain writes itself carry the time of the batch's first caller (its clock).
    let at = jobs.first().map_or(0, |j| j.row.at);
    let mut rows: Vec<NewAuditRow> = Vec::with_capacity(jobs.len() + 2);
    let (id, mut link, mut prev) = match chain {
        Some(c) => (c.id.clone(), c.link, c.hash.clone()),
        None => {
            let id = uuid::Uuid::now_v7().simple().to_string();
            let (fork_seq, fork_hash) = backend.audit_last().await?.unwrap_or((0, GENESIS.to_string()));
            *anchors = Anchors { last: None, after: (fork_seq - LATE_ROWS).max(0), named: HashMap::new() };
            let start = AuditDraft {
                at,
                actor: "system".into(),
                action: CHAIN_START.into(),
                subject: Some(id.clone()),
                outcome: "ok".into(),
                detail: start_detail(fork_seq),
            };
            let hash = push(&mut rows, &id, 1, fork_hash, start);
            (id, 1, hash)
        }
    };
    if anchors.last.is_none_or(|t| t.elapsed() >= ANCHOR_EVERY) {
        let top = backend.audit_last().await?.map_or(0, |(seq, _)| seq);
        let heads: Vec<_> = backend
            .audit_heads_since(anchors.after, &id)
            .await?
            .into_iter()
            .filter(|h| anchors.named.get(&h.chain).is_none_or(|l| h.link > *l))
            .collect();
        anchors.last = Some(Instant::now());
        anchors.after = anchors.after.max(top - LATE_ROWS);
        if !heads.is_empty() {
            if anchors.named.len() > 10_000 {
                anchors.named.clear();
            }
            for h in &heads {
                anchors.named.insert(h.chain.clone(), h.link);
            }
            let anchor = AuditDraft {
                at,
                actor: "system".into(),
                action: ANCHOR.into(),
                subject: None,
                outcome: "ok".into(),
                detail: anchor_detail(&heads),
            };
            link += 1;
            prev = push(&mut rows, &id, link, prev, anchor);
        }
    }
    let first_job = rows.len();
    for j in jobs {
        link += 1;
        prev = push(&mut rows, &id, link, prev, j.row.clone());
    }
    let assigned = backend.insert_audit_rows(&rows).await?;
    let seq_of: HashMap<i64, i64> = assigned.into_iter().map(|(seq, link)| (link, seq)).collect();
    let seqs = rows[first_job..]
        .iter()
        .map(|r| seq_of.get(&r.link).copied().ok_or_else(|| StoreError::Corrupt("an audit row got no seq".into())))
        .collect::<StoreResult<Vec<i64>>>()?;
    *chain = Some(Chain { id, link, hash: prev });
    Ok(seqs)
}

/// Adds `row` at `link` of `chain` after `prev`; returns its hash.
fn push(rows: &mut Vec<NewAuditRow>, chain: &str, link: i64, prev: String, row: AuditDraft) -> String {
    let mut r = NewAuditRow {
        chain: chain.to_string(),
        link,
        at: row.at,
        actor: row.actor,
        action: row.action,
        subject: row.subject,
        outcome: row.outcome,
        detail: row.detail,
        prev_hash: prev,
        hash: String::new(),
    };
    r.hash = chain_hash(&r.prev_hash, link, chain, &r.fields());
    let hash = r.hash.clone();
    rows.push(r);
    hash
}
