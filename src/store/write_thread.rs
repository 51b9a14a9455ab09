//! The SQLite write thread: the hot path's writes run whole on the thread that owns a write
//! connection.
//!
//! A unit of work (`sqlite.rs`: claim a payment, approve it and consume its token, insert a token)
//! is a short list of statements whose later ones decide from what the earlier ones did
//! (`changes()`, the rows they left) and whose last one reports the outcome in one row of truths.
//! The caller binds the unit's parameters on its own task and sends it here; this thread, which owns
//! a `rusqlite` connection, runs units back to back in one epoch transaction, commits the epoch once,
//! and only then answers every unit in it. While a commit's fsync runs, the next units queue in the
//! channel and go into the next epoch together (group commit). Statements are plain calls into SQLite
//! on this thread, kept prepared: no hop to another thread per statement or per unit, only one
//! wake-up to come here and one to answer.
//!
//! Durability is the group commit's: `synchronous=FULL`, and a unit is answered only once the epoch
//! holding it is committed. Units are written not to fail (conflicts are conditions, not errors), so
//! an epoch first runs them bare; if one does fail midway, nothing of that pass is kept and the epoch
//! runs again with each unit in its own savepoint, so that the failing unit is undone alone, its caller
//! gets the error, and the others stand. If the epoch's transaction is lost (SQLite rolls the whole
//! transaction back on some errors) or its commit fails, every unit of the epoch gets the error and
//! nothing of it is kept.
//!
//! The rest of the store's writes go through `group.rs`'s connection. SQLite admits one writer, so
//! the two take turns through one lock held from `BEGIN` to `COMMIT` (the `write_lock` both are given).

use std::sync::{Arc, OnceLock, mpsc};

use rusqlite::types::{ToSql, ToSqlOutput, Value};
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// The most units one epoch holds; the rest wait for the next one.
const MAX_EPOCH: usize = 512;

/// A kind of unit: its statements, separated by `;` (parameters `$1` …; no `;` inside a literal).
pub struct UnitKind {
    text: &'static str,
    statements: OnceLock<Vec<&'static str>>,
}

impl UnitKind {
    pub const fn new(text: &'static str) -> UnitKind {
        UnitKind { text, statements: OnceLock::new() }
    }

    fn statements(&self) -> &[&'static str] {
        self.statements.get_or_init(|| self.text.split(';').map(str::trim).filter(|s| !s.is_empty()).collect())
    }
}

/// A unit's parameters, bound in order (`$1` first) as the shared `bind_…!` macros of `sql.rs` bind
/// them.
#[derive(Default)]
pub struct Params {
    values: Vec<Value>,
    /// A value that could not be turned into SQL (an amount out of range): the unit fails.
    error: Option<String>,
}

impl Params {
    pub fn bind<T: ToSql>(mut self, v: T) -> Params {
        match v.to_sql() {
            Ok(ToSqlOutput::Borrowed(r)) => match Value::try_from(r) {
                Ok(v) => self.values.push(v),
                Err(e) => {
                    self.error.get_or_insert_with(|| e.to_string());
                }
            },
            Ok(ToSqlOutput::Owned(v)) => self.values.push(v),
            Ok(_) => {
                self.error.get_or_insert_with(|| "a parameter of a kind units do not bind".into());
            }
            Err(e) => {
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
        self
    }
}

/// One unit waiting for the write thread: it binds its parameters.
pub trait Unit {
    fn bind(&self, p: Params) -> Params;
}

/// A unit's report: the truths in its last statement's row.
type Report = StoreResult<Vec<bool>>;

struct Job {
    kind: &'static UnitKind,
    params: Params,
    reply: oneshot::Sender<Report>,
}

enum Msg {
    Unit(Job),
    /// Finish what is queued before this, then stop.
    Close(oneshot::Sender<()>),
}

/// The handle to the write thread; the thread ends when the last handle is dropped or on
/// [`WriteThread::close`].
#[derive(Clone)]
pub struct WriteThread {
    tx: mpsc::Sender<Msg>,
}

impl WriteThread {
    /// Starts the thread on `conn` (configured by the caller); it takes `write_lock` for each epoch.
    pub fn start(conn: rusqlite::Connection, write_lock: Arc<tokio::sync::Mutex<()>>) -> StoreResult<WriteThread> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || serve(conn, &write_lock, &rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the write thread: {e}")))?;
        Ok(WriteThread { tx })
    }

    /// Runs `unit` of `kind` and returns its report once the epoch holding it is committed.
    pub async fn run<const N: usize>(&self, kind: &'static UnitKind, unit: &impl Unit) -> StoreResult<[bool; N]> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable("store closed".into());
        let params = unit.bind(Params::default());
        self.tx.send(Msg::Unit(Job { kind, params, reply })).map_err(|_| closed())?;
        let truths = answer.await.map_err(|_| closed())??;
        truths
            .try_into()
            .map_err(|t: Vec<bool>| StoreError::Corrupt(format!("a unit reported {} truths, not {N}", t.len())))
    }

    /// Commits what is queued and stops the thread; later units get "store closed".
    pub async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

fn serve(conn: rusqlite::Connection, write_lock: &tokio::sync::Mutex<()>, rx: &mpsc::Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut closing = None;
        let mut jobs: Vec<Job> = Vec::new();
        let mut reports: Vec<Report> = Vec::new();
        // (A plain thread, outside the runtime: blocking on the lock is what it is for.)
        let held = write_lock.blocking_lock();
        let began = exec(&conn, "BEGIN IMMEDIATE");
        // The first pass runs the units bare, with no savepoint each (a savepoint copies every page
        // a unit first touches into its journal): units are written not to fail, so this is the
        // pass that commits. Once one fails, no more units join the epoch.
        let mut failed = began.is_err();
        while let Some(msg) = next.take() {
            match msg {
                Msg::Close(done) => {
                    closing = Some(done);
                    break;
                }
                Msg::Unit(job) => {
                    if !failed {
                        match statements(&conn, &job) {
                            Ok(report) => reports.push(Ok(report)),
                            Err(_) => failed = true,
                        }
                    }
                    jobs.push(job);
                }
            }
            if jobs.len() < MAX_EPOCH && !failed {
                next = rx.try_recv().ok();
            }
        }
        let outcome = match began {
            Err(e) => Err(e.to_string()),
            // A unit failed midway, its earlier statements written: nothing of the first pass is
            // kept, and every unit runs again, each in its own savepoint, so that the failing one
            // is undone alone. (A unit's parameters are fixed when it is bound, so those that
            // succeeded do the same again.)
            Ok(()) if failed => {
                let _ = exec(&conn, "ROLLBACK");
                again(&conn, &jobs)
            }
            Ok(()) => end(&conn, jobs.len()).map(|()| reports),
        };
        drop(held);
        // Every job has its report: the first pass gave one to each unless one failed, and then the
        // second pass gave one to each.
        let reports =
            outcome.unwrap_or_else(|why| jobs.iter().map(|_| Err(StoreError::Unavailable(why.clone()))).collect());
        for (job, report) in jobs.into_iter().zip(reports) {
            let _ = job.reply.send(report);
        }
        if let Some(done) = closing {
            let _ = done.send(());
            return;
        }
    }
}

/// The second pass over an epoch in which a unit failed: every unit in its own savepoint, then the
/// commit. Each unit's report, or why nothing of the epoch is kept.
fn again(conn: &rusqlite::Connection, jobs: &[Job]) -> Result<Vec<Report>, String> {
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    let mut reports = Vec::with_capacity(jobs.len());
    for job in jobs {
        reports.push(run_unit(conn, job));
        // A failed statement can take SQLite's whole transaction with it: then nothing of this
        // epoch is kept.
        if conn.is_autocommit() {
            let why = "the epoch's transaction was lost".to_string();
            tracing::error!(reason = %why, "write thread: epoch rolled back");
            return Err(why);
        }
    }
    end(conn, jobs.len()).map(|()| reports)
}

/// Commits the epoch (of `writes` units).
fn end(conn: &rusqlite::Connection, writes: usize) -> Result<(), String> {
    match exec(conn, "COMMIT") {
        Ok(()) => {
            crate::metrics::get().commit(writes);
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "write thread: commit failed");
            let _ = exec(conn, "ROLLBACK");
            Err(format!("commit failed: {e}"))
        }
    }
}

/// Runs one unit inside its own savepoint: kept whole when every statement succeeds, undone whole
/// when one fails.
fn run_unit(conn: &rusqlite::Connection, job: &Job) -> Report {
    exec(conn, "SAVEPOINT w")?;
    match statements(conn, job) {
        Ok(report) => {
            exec(conn, "RELEASE w")?;
            Ok(report)
        }
        Err(e) => {
            // (If this fails, SQLite dropped the transaction: the caller sees it in autocommit.)
            let _ = exec(conn, "ROLLBACK TO w").and_then(|()| exec(conn, "RELEASE w"));
            Err(e)
        }
    }
}

fn exec(conn: &rusqlite::Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn statements(conn: &rusqlite::Connection, job: &Job) -> Report {
    if let Some(e) = &job.params.error {
        return Err(StoreError::Database(e.clone()));
    }
    let Some((last, body)) = job.kind.statements().split_last() else {
        return Err(StoreError::Corrupt("a unit without statements".into()));
    };
    for sql in body {
        let mut stmt = conn.prepare_cached(sql)?;
        bind(&mut stmt, &job.params.values)?;
        stmt.raw_execute()?;
    }
    let mut stmt = conn.prepare_cached(last)?;
    bind(&mut stmt, &job.params.values)?;
    let columns = stmt.column_count();
    let mut rows = stmt.raw_query();
    let row = rows.next()?.ok_or_else(|| StoreError::Corrupt("a unit without its report".into()))?;
    (0..columns).map(|i| row.get::<_, bool>(i).map_err(StoreError::from)).collect()
}

/// Binds each of the statement's parameters `$N` to the unit's `N`th value.
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, values: &[Value]) -> StoreResult<()> {
    for i in 1..=stmt.parameter_count() {
        let n = stmt.parameter_name(i).and_then(|name| name.strip_prefix('$')).and_then(|n| n.parse::<usize>().ok());
        let value = n
            .and_then(|n| values.get(n.wrapping_sub(1)))
            .ok_or_else(|| StoreError::Corrupt(format!("a unit's parameter {i} is not bound")))?;
        stmt.raw_bind_parameter(i, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Insert(i64);

    impl Unit for Insert {
        fn bind(&self, p: Params) -> Params {
            p.bind(self.0)
        }
    }

    static INSERT: UnitKind = UnitKind::new(
        "INSERT INTO item (id, parent) VALUES ($1, 1); INSERT INTO item (id, parent) VALUES ($1 + 1000, 1); \
         SELECT $1 > 0, changes() = 1",
    );

    struct Db {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl Db {
        fn new() -> Db {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("w.db");
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE parent (id INTEGER PRIMARY KEY); \
                 CREATE TABLE item (id INTEGER PRIMARY KEY, \
                 parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED); \
                 INSERT INTO parent (id) VALUES (1); INSERT INTO item (id, parent) VALUES (1005, 1)",
            )
            .unwrap();
            Db { _dir: dir, path }
        }

        fn open(&self) -> rusqlite::Connection {
            let conn = rusqlite::Connection::open(&self.path).unwrap();
            conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL").unwrap();
            conn
        }

        /// What another connection (a reader) sees committed.
        fn committed(&self) -> Vec<i64> {
            let conn = self.open();
            let mut s = conn.prepare("SELECT id FROM item WHERE id < 1000 ORDER BY id").unwrap();
            s.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
        }
    }

    #[test]
    fn a_unit_is_split_into_its_statements() {
        assert_eq!(INSERT.statements().len(), 3);
        assert_eq!(INSERT.statements()[2], "SELECT $1 > 0, changes() = 1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn units_queued_together_commit_together_and_a_failing_unit_fails_alone() {
        let db = Db::new();
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let w = WriteThread::start(db.open(), lock.clone()).unwrap();
        // Hold the write lock so that the units queue up and go into one epoch.
        let held = lock.clone().lock_owned().await;
        let tasks: Vec<_> = (1..=10)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move { w.run::<2>(&INSERT, &Insert(i)).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // Nothing is answered, nor visible, before the epoch commits.
        assert!(tasks.iter().all(|t| !t.is_finished()));
        drop(held);
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap().ok());
        }
        // Unit 5's second insert collides with the row already there: it alone is undone.
        let want: Vec<Option<[bool; 2]>> = (1..=10).map(|i| (i != 5).then_some([true, true])).collect();
        assert_eq!(answers, want);
        assert_eq!(db.committed(), vec![1, 2, 3, 4, 6, 7, 8, 9, 10]);
        // An answer is on disk and visible to readers when it returns.
        w.run::<2>(&INSERT, &Insert(20)).await.unwrap();
        assert!(db.committed().contains(&20));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_thread_and_the_group_commit_connection_take_turns() {
        use sqlx::ConnectOptions;
        let db = Db::new();
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let w = WriteThread::start(db.open(), lock.clone()).unwrap();
        // No busy timeout: meeting the other connection's write lock would fail at once.
        let conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db.path)
            .busy_timeout(std::time::Duration::ZERO)
            .connect()
            .await
            .unwrap();
        let g = super::super::group::GroupCommit::start(conn, lock);
        let mut tasks = Vec::new();
        for i in 1..=200i64 {
            let (w, g) = (w.clone(), g.clone());
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    w.run::<2>(&INSERT, &Insert(i)).await.map(|_| ())
                } else {
                    let mut c = g.writer(false).await?;
                    sqlx::query("INSERT INTO item (id, parent) VALUES ($1, 1)").bind(i).execute(c.conn()).await?;
                    c.done().await
                }
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(db.committed(), (1..=200).collect::<Vec<_>>());
    }

    struct Orphan(i64);

    impl Unit for Orphan {
        fn bind(&self, p: Params) -> Params {
            p.bind(self.0)
        }
    }

    /// Breaks a deferred foreign key, which only `COMMIT` checks.
    static ORPHAN: UnitKind = UnitKind::new("INSERT INTO item (id, parent) VALUES ($1, 99); SELECT 1");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_unit_of_its_epoch_and_keeps_nothing() {
        let db = Db::new();
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let w = WriteThread::start(db.open(), lock.clone()).unwrap();
        let held = lock.clone().lock_owned().await;
        let mut tasks = Vec::new();
        for i in 10..20 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                if i == 15 {
                    w.run::<1>(&ORPHAN, &Orphan(i)).await.map(|_| ())
                } else {
                    w.run::<2>(&INSERT, &Insert(i)).await.map(|_| ())
                }
            }));
            // In order, so that all are queued before the lock is let go.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(held);
        for t in tasks {
            let err = t.await.unwrap().unwrap_err();
            assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        }
        assert!(db.committed().is_empty());
        // The next epoch is clean.
        w.run::<2>(&INSERT, &Insert(30)).await.unwrap();
        assert_eq!(db.committed(), vec![30]);
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_bound_fails_its_unit_and_close_stops_the_thread() {
        struct Unbindable;
        impl ToSql for Unbindable {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Err(rusqlite::Error::ToSqlConversionFailure("out of range".into()))
            }
        }
        struct Huge;
        impl Unit for Huge {
            fn bind(&self, p: Params) -> Params {
                p.bind(1).bind(Unbindable)
            }
        }
        let db = Db::new();
        let w = WriteThread::start(db.open(), Arc::new(tokio::sync::Mutex::new(()))).unwrap();
        assert!(matches!(w.run::<2>(&INSERT, &Huge).await, Err(StoreError::Database(_))));
        // A report of the wrong width is refused, not cut.
        assert!(matches!(w.run::<3>(&INSERT, &Insert(1)).await, Err(StoreError::Corrupt(_))));
        w.close().await;
        assert!(matches!(w.run::<2>(&INSERT, &Insert(2)).await, Err(StoreError::Unavailable(_))));
        assert_eq!(db.committed(), vec![1]);
    }
}
