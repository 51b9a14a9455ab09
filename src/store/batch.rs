//! Batches of units of work for SQLite's write connection.
//!
//! A unit of work (`sqlite.rs`) is one text of statements that opens and releases its own
//! savepoint and ends with a one-row report. Sent one by one, each unit costs a round trip to the
//! connection's thread and back, and on these machines a thread's wake-up, not SQLite, is most of
//! that cost. So units of one kind queue here, and one task per kind sends whatever has queued as a
//! single command: the unit's text repeated, its parameters renumbered for each copy (`$1` of the
//! third copy of a 40-parameter unit is `$81`). SQLite runs them back to back, each in its own
//! savepoint, in the writer's open epoch; every caller then waits for that epoch's commit, as a
//! single write does. Units never depend on each other's outcome beyond what they read from the
//! database, so a batch is the same as its units in queue order.
//!
//! A unit that fails (a statement errs) is rolled back alone: the units before it stand, its
//! caller gets the error, and the units after it (which did not run) are sent again.

use std::sync::{Arc, OnceLock, Weak};

use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use tokio::sync::{mpsc, oneshot};

use super::group::{Committed, GroupCommit};
use super::{StoreError, StoreResult};

/// The most units one command carries. Batches are sent in sizes that are powers of two (27 units
/// go as 16, 8, 2 and 1), so that a kind keeps seven prepared texts, not sixty-four.
pub const MAX_BATCH: usize = 64;
const SIZES: usize = MAX_BATCH.trailing_zeros() as usize + 1;

/// A query being bound, on its way to the write connection.
pub type Query = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// A kind of unit: its text (parameters `$1` … `$PARAMS`) and the texts of its batches.
pub struct UnitKind {
    pub text: &'static str,
    pub params: usize,
    batches: OnceLock<Vec<&'static str>>,
}

impl UnitKind {
    pub const fn new(text: &'static str, params: usize) -> UnitKind {
        UnitKind { text, params, batches: OnceLock::new() }
    }

    /// The largest batch size (a power of two) that `n` units fill, and its text.
    fn batch(&self, n: usize) -> (usize, &'static str) {
        let texts = self.batches.get_or_init(|| {
            (0..SIZES)
                .map(|p| {
                    let text: String = (0..1usize << p).map(|i| renumber(self.text, i * self.params) + ";\n").collect();
                    // Made once per kind and size, and kept for the process's life (sqlx keeps a
                    // prepared statement per text).
                    &*Box::leak(text.into_boxed_str())
                })
                .collect()
        });
        let p = (usize::BITS - 1 - n.clamp(1, MAX_BATCH).leading_zeros()) as usize;
        (1 << p, texts[p])
    }
}

/// One unit waiting for the write connection: it binds its parameters and hears its report (the
/// unit's last row) and the commit to wait for.
pub trait Unit: Send + 'static {
    fn bind(&self, q: Query) -> Query;
}

type Reply = (StoreResult<SqliteRow>, Option<Committed>);

struct Job<U> {
    unit: U,
    reply: oneshot::Sender<Reply>,
}

/// The queue of one kind of unit, and the task that empties it.
pub struct UnitQueue<U: Unit> {
    tx: mpsc::UnboundedSender<Job<U>>,
}

impl<U: Unit> UnitQueue<U> {
    /// Starts the kind's task; it ends when the queue's last handle is dropped.
    pub fn start(kind: &'static UnitKind, group: &Arc<GroupCommit>) -> UnitQueue<U> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drain(kind, Arc::downgrade(group), rx));
        UnitQueue { tx }
    }

    /// Runs `unit` and returns its report once the epoch holding it is committed.
    pub async fn run(&self, unit: U) -> StoreResult<SqliteRow> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("store closed".into());
        self.tx.send(Job { unit, reply }).map_err(|_| closed())?;
        let (report, committed) = answer.await.map_err(|_| closed())?;
        let report = report?;
        committed.ok_or_else(closed)?.wait().await?;
        Ok(report)
    }
}

async fn drain<U: Unit>(kind: &'static UnitKind, group: Weak<GroupCommit>, mut rx: mpsc::UnboundedReceiver<Job<U>>) {
    while let Some(first) = rx.recv().await {
        let Some(group) = group.upgrade() else { return };
        let mut jobs = vec![first];
        let mut w = match group.unit_writer().await {
            Ok(w) => w,
            Err(e) => {
                fail(jobs, &e);
                continue;
            }
        };
        // Whatever queued while the connection was busy (a commit, another kind's batch) goes too.
        while jobs.len() < MAX_BATCH
            && let Ok(j) = rx.try_recv()
        {
            jobs.push(j);
        }
        let mut reports: Vec<StoreResult<SqliteRow>> = Vec::with_capacity(jobs.len());
        while reports.len() < jobs.len() {
            let (n, text) = kind.batch(jobs.len() - reports.len());
            let q = jobs[reports.len()..][..n].iter().fold(sqlx::query(text), |q, j| j.unit.bind(q));
            let (rows, failed) = run_batch(q, w.conn()).await;
            reports.extend(rows.into_iter().map(Ok));
            if let Some(e) = failed {
                // The unit at `reports.len()` failed: undo what it did (if its savepoint is still
                // open), report the error to it, and send the rest again — unless the epoch is
                // lost, when none of them may run.
                let lost = w.undo_unit().await.err();
                if reports.len() < jobs.len() {
                    reports.push(Err(e));
                }
                if let Some(lost) = lost {
                    tracing::error!(error = %lost, "a failed unit took its epoch with it");
                    while reports.len() < jobs.len() {
                        reports.push(Err(StoreError::Unavailable(lost.to_string())));
                    }
                }
            }
        }
        let committed = w.released_nowait().await;
        let (committed, err) = match committed {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        for (job, report) in jobs.into_iter().zip(reports) {
            let report = match (&err, report) {
                (Some(e), _) => Err(StoreError::Unavailable(e.to_string())),
                (None, r) => r,
            };
            let _ = job.reply.send((report, committed.clone()));
        }
    }
}

/// Sends one batch and collects its reports (one row per unit that ran whole) and the error that
/// stopped it, if one did.
async fn run_batch(q: Query, conn: &mut sqlx::SqliteConnection) -> (Vec<SqliteRow>, Option<StoreError>) {
    use futures_util::TryStreamExt;
    use sqlx::Executor;
    let mut rows = Vec::new();
    let mut stream = conn.fetch_many(q);
    loop {
        match stream.try_next().await {
            Ok(Some(sqlx::Either::Right(row))) => rows.push(row),
            Ok(Some(sqlx::Either::Left(_))) => {}
            Ok(None) => return (rows, None),
            Err(e) => return (rows, Some(e.into())),
        }
    }
}

fn fail<U>(jobs: Vec<Job<U>>, e: &StoreError) {
    for j in jobs {
        let _ = j.reply.send((Err(StoreError::Unavailable(e.to_string())), None));
    }
}

/// `text` with every parameter `$N` made `$(N + offset)`. (The units' texts hold no `$` but in
/// parameters.)
pub fn renumber(text: &str, offset: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some(&(_, d)) = chars.peek() {
            let Some(v) = d.to_digit(10) else { break };
            n = n * 10 + v as usize;
            digits = true;
            chars.next();
        }
        if digits {
            out.push_str(&(n + offset).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Insert(i64);

    impl Unit for Insert {
        fn bind(&self, q: Query) -> Query {
            q.bind(self.0)
        }
    }

    static INSERT: UnitKind = UnitKind::new(
        "SAVEPOINT w; INSERT INTO item (id) VALUES ($1); INSERT INTO item (id) VALUES ($1 + 1000); RELEASE w; SELECT $1",
        1,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_runs_its_units_in_order_and_a_failing_unit_fails_alone() {
        use sqlx::{ConnectOptions, Row};
        let dir = tempfile::tempdir().unwrap();
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("b.db")).create_if_missing(true);
        let mut conn = opts.connect().await.unwrap();
        sqlx::query("CREATE TABLE item (id INTEGER PRIMARY KEY)").execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO item (id) VALUES (1005)").execute(&mut conn).await.unwrap();
        let group = GroupCommit::start(conn);
        let queue = Arc::new(UnitQueue::start(&INSERT, &group));
        // Hold the connection so that the units queue up and go as one batch.
        let hold = group.writer(false).await.unwrap();
        let tasks: Vec<_> = (1..=10)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.run(Insert(i)).await.map(|row| row.get::<i64, _>(0)) })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        hold.done().await.unwrap();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap().ok());
        }
        // Unit 5's second insert collides with the row already there: it alone is undone.
        let want: Vec<Option<i64>> = (1..=10).map(|i| (i != 5).then_some(i)).collect();
        assert_eq!(answers, want);
        let mut check = opts.connect().await.unwrap();
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM item WHERE id < 1000 ORDER BY id").fetch_all(&mut check).await.unwrap();
        assert_eq!(ids, vec![1, 2, 3, 4, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn renumber_moves_every_parameter_and_nothing_else() {
        assert_eq!(renumber("SELECT $1, $12 FROM t WHERE a = $3", 40), "SELECT $41, $52 FROM t WHERE a = $43");
        assert_eq!(renumber("x = $9;y = $10", 0), "x = $9;y = $10");
        assert_eq!(renumber("no parameters, 12 $ signs", 5), "no parameters, 12 $ signs");
    }

    #[test]
    fn a_batch_text_is_the_unit_repeated_with_its_own_parameters() {
        static K: UnitKind = UnitKind::new("SELECT $1 + $2", 2);
        assert_eq!(K.batch(1), (1, "SELECT $1 + $2;\n"));
        assert_eq!(K.batch(2), (2, "SELECT $1 + $2;\nSELECT $3 + $4;\n"));
        // Three units go as two, then one.
        assert_eq!(K.batch(3), K.batch(2));
        assert_eq!(K.batch(0), K.batch(1));
        assert_eq!(K.batch(1000).0, MAX_BATCH);
    }
}
