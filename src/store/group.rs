//! Group commit for SQLite: many writers, one fsync.
//!
//! SQLite admits one writer, and with `synchronous=FULL` every commit waits for the disk (about half
//! a millisecond here), so one transaction per request caps the service near a thousand writes a
//! second however fast the statements are. Instead, the one write connection keeps an *epoch*
//! transaction open. Each write takes the connection in turn ([`GroupCommit::writer`]), runs its
//! statements and lets go ([`Writer::done`]), then waits until the epoch is committed. A committer task
//! commits the epoch whenever writers have finished in it; while that commit's fsync runs, the next
//! writers queue up and go into the next epoch together. A writer therefore answers only once its
//! change is on disk, and one fsync covers everything its epoch holds.
//!
//! A write of several statements that must stand or fall together asks for an *atomic* writer, which
//! runs inside its own savepoint; a single statement is atomic by itself and skips the two extra round
//! trips to SQLite's thread (the connection is held for exactly the writes' round trips, so they are
//! what bounds throughput). The hot path's writes do not come here: they run whole on the write
//! thread (`write_thread.rs`), which has its own connection and epochs; the two take turns through one
//! write lock, held from `BEGIN` to the end of each epoch.
//!
//! If a commit fails, every writer of that epoch gets the error and nothing of the epoch is kept: a
//! writer never reports success for a change that is not durable. An atomic writer that is dropped
//! midway (its request was cancelled) has its savepoint rolled back before the connection is used
//! again. After any writer is dropped midway the epoch's transaction is checked: SQLite rolls back the
//! whole transaction on some I/O errors, and then the epoch fails.

use std::sync::Arc;

use sqlx::SqliteConnection;
use tokio::sync::{Mutex, MutexGuard, Notify, OwnedMutexGuard, watch};

use super::{StoreError, StoreResult};

/// How an epoch ended: `None` while open, then committed (`Ok`) or not (`Err` with the reason).
type Outcome = Option<Result<(), Arc<str>>>;

/// The shared write connection and its open epoch.
pub struct GroupCommit {
    state: Mutex<State>,
    /// SQLite's one write lock, shared with the write thread (`write_thread.rs`): held from `BEGIN`
    /// to the end of the epoch, so that the two connections take turns instead of meeting `SQLITE_BUSY`.
    write_lock: Arc<Mutex<()>>,
    /// Wakes the committer: a writer finished (or was dropped) in the open epoch.
    finished: Notify,
}

struct State {
    conn: SqliteConnection,
    /// The write lock, while an epoch is open.
    held: Option<OwnedMutexGuard<()>>,
    /// The store is closing: no more writers.
    closed: bool,
    /// `BEGIN` has run and `COMMIT` not yet.
    open: bool,
    /// Writers that finished in the open epoch and wait for its commit.
    waiting: usize,
    /// An atomic writer was dropped inside its savepoint: roll it back before anything else runs.
    dangling: bool,
    /// A writer was dropped midway (perhaps on an error): check the epoch's transaction still stands.
    unsure: bool,
    /// The epoch cannot commit (its transaction is gone, or a savepoint could not be undone).
    poisoned: bool,
    outcome: watch::Sender<Outcome>,
}

impl GroupCommit {
    /// Takes the write connection and starts the committer task; each epoch holds `write_lock`.
    pub fn start(conn: SqliteConnection, write_lock: Arc<Mutex<()>>) -> Arc<GroupCommit> {
        let group = Arc::new(GroupCommit {
            write_lock,
            state: Mutex::new(State {
                conn,
                held: None,
                closed: false,
                open: false,
                waiting: 0,
                dangling: false,
                unsure: false,
                poisoned: false,
                outcome: watch::channel(None).0,
            }),
            finished: Notify::new(),
        });
        let committer = group.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = committer.finished.notified() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
                committer.commit().await;
                // Every store handle is gone: nothing can write any more.
                if Arc::strong_count(&committer) == 1 {
                    return;
                }
            }
        });
        group
    }

    /// Waits for the connection for one write; an `atomic` one runs inside its own savepoint.
    pub async fn writer(&self, atomic: bool) -> StoreResult<Writer<'_>> {
        let mut st = self.state.lock().await;
        if st.closed {
            return Err(StoreError::Unavailable("store closed".into()));
        }
        st.settle().await;
        if st.poisoned {
            st.end_epoch(false, "an earlier write broke the transaction").await;
        }
        if !st.open {
            st.held = Some(self.write_lock.clone().lock_owned().await);
            if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut st.conn).await {
                st.held = None;
                return Err(e.into());
            }
            st.open = true;
        }
        if atomic && let Err(e) = sqlx::query("SAVEPOINT w").execute(&mut st.conn).await {
            st.poisoned = true;
            return Err(e.into());
        }
        Ok(Writer { group: self, state: st, atomic, finished: false })
    }

    /// Commits the open epoch. (Also one no writer waits for — its writer was dropped — so that the
    /// write lock does not stay taken until the next write.)
    async fn commit(&self) {
        let mut st = self.state.lock().await;
        st.settle().await;
        if !st.open {
            return;
        }
        let ok = !st.poisoned;
        st.end_epoch(ok, "the transaction was broken by a failed write").await;
    }

    /// Commits what is open, folds the WAL into the database file and refuses further writes.
    pub async fn close(&self) {
        self.commit().await;
        let mut st = self.state.lock().await;
        if st.open {
            st.end_epoch(false, "store closed").await;
        }
        st.closed = true;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut st.conn).await;
    }
}

impl State {
    /// Cleans up after a writer that was dropped midway: rolls back its savepoint, and checks that the
    /// epoch's transaction is still open (`BEGIN` fails inside a transaction; if it succeeds, SQLite
    /// had rolled the epoch back).
    async fn settle(&mut self) {
        if self.dangling {
            self.dangling = false;
            match sqlx::query("ROLLBACK TO w; RELEASE w").execute(&mut self.conn).await {
                Ok(_) => {}
                // A writer cancelled after its `RELEASE` ran but before it was marked finished: it is
                // whole. (Had SQLite dropped the epoch's transaction, the check below finds it.)
                Err(e) if no_such_savepoint(&e) => self.unsure = true,
                Err(_) => self.poisoned = true,
            }
        }
        if self.unsure {
            self.unsure = false;
            if self.open && sqlx::query("BEGIN").execute(&mut self.conn).await.is_ok() {
                self.poisoned = true;
            }
        }
    }

    /// Ends the epoch: `COMMIT` when `commit`, else (or when the commit fails) `ROLLBACK`. Its
    /// writers learn the outcome, and the next write begins a new epoch.
    async fn end_epoch(&mut self, commit: bool, why: &str) {
        let outcome = if commit {
            match sqlx::query("COMMIT").execute(&mut self.conn).await {
                Ok(_) => {
                    crate::metrics::get().commit(self.waiting);
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(error = %e, "group commit failed");
                    let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
                    Err(Arc::from(format!("commit failed: {e}")))
                }
            }
        } else {
            tracing::error!(reason = why, "group commit: epoch rolled back");
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            Err(Arc::from(why))
        };
        self.open = false;
        self.held = None;
        self.waiting = 0;
        self.poisoned = false;
        let done = std::mem::replace(&mut self.outcome, watch::channel(None).0);
        done.send_replace(Some(outcome));
    }
}

/// One write's hold on the connection. Finish it with [`Writer::done`] (keep the changes) or
/// [`Writer::abort`]; both return once the epoch is durable. An atomic writer's abort or drop undoes
/// its changes; a plain writer has at most one writing statement, and aborts only when it wrote nothing.
pub struct Writer<'a> {
    group: &'a GroupCommit,
    state: MutexGuard<'a, State>,
    atomic: bool,
    finished: bool,
}

impl Writer<'_> {
    /// The connection (inside this write's savepoint if it is atomic).
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.state.conn
    }

    /// Keeps this write's changes and waits until they are committed.
    pub async fn done(self) -> StoreResult<()> {
        let sql: &[&str] = if self.atomic { &["RELEASE w"] } else { &[] };
        self.finish(sql).await
    }

    /// Undoes this write's changes. It still waits for the epoch: what it read may have been written
    /// by an earlier writer of the same epoch, which is not yet durable.
    pub async fn abort(self) -> StoreResult<()> {
        let sql: &[&str] = if self.atomic { &["ROLLBACK TO w; RELEASE w"] } else { &[] };
        self.finish(sql).await
    }

    async fn finish(mut self, statements: &[&'static str]) -> StoreResult<()> {
        let mut result = Ok(());
        for sql in statements {
            if let Err(e) = sqlx::query(*sql).execute(&mut self.state.conn).await {
                self.state.poisoned = true;
                result = Err(StoreError::from(e));
                break;
            }
        }
        self.state.waiting += 1;
        let mut outcome = self.state.outcome.subscribe();
        self.finished = true;
        drop(self);
        result?;
        let ended =
            outcome.wait_for(Option::is_some).await.map_err(|_| StoreError::Unavailable("store closed".into()))?;
        match &*ended {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => Err(StoreError::Unavailable(why.to_string())),
            None => Err(StoreError::Unavailable("epoch did not end".into())),
        }
    }
}

fn no_such_savepoint(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("no such savepoint"))
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.state.dangling |= self.atomic;
            self.state.unsure = true;
        }
        // (The lock is released right after this, when `state` drops.)
        self.group.finished.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

    use super::*;

    async fn open(dir: &tempfile::TempDir) -> (Arc<GroupCommit>, SqliteConnectOptions) {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(dir.path().join("g.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let mut conn = opts.connect().await.unwrap();
        for sql in [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE item (id INTEGER PRIMARY KEY, \
             parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
            "INSERT INTO parent (id) VALUES (1)",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        (GroupCommit::start(conn, Default::default()), opts)
    }

    /// What another connection (a reader) sees committed.
    async fn committed(opts: &SqliteConnectOptions) -> Vec<i64> {
        let mut conn = opts.connect().await.unwrap();
        sqlx::query_scalar("SELECT id FROM item ORDER BY id").fetch_all(&mut conn).await.unwrap()
    }

    async fn insert(g: &GroupCommit, id: i64, parent: i64) -> StoreResult<()> {
        let mut w = g.writer(id % 2 == 0).await?;
        sqlx::query("INSERT INTO item (id, parent) VALUES ($1, $2)").bind(id).bind(parent).execute(w.conn()).await?;
        w.done().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let (g, opts) = open(&dir).await;
        let tasks: Vec<_> = (1..=200)
            .map(|i| {
                tokio::spawn({
                    let g = g.clone();
                    async move { insert(&g, i, 1).await }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(committed(&opts).await, (1..=200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_done_write_is_visible_to_readers_when_done_returns() {
        let dir = tempfile::tempdir().unwrap();
        let (g, opts) = open(&dir).await;
        insert(&g, 7, 1).await.unwrap();
        assert_eq!(committed(&opts).await, vec![7]);
    }

    #[tokio::test]
    async fn abort_and_drop_undo_only_their_own_write() {
        let dir = tempfile::tempdir().unwrap();
        let (g, opts) = open(&dir).await;
        insert(&g, 1, 1).await.unwrap();
        let mut w = g.writer(true).await.unwrap();
        sqlx::query("INSERT INTO item (id, parent) VALUES (2, 1)").execute(w.conn()).await.unwrap();
        w.abort().await.unwrap();
        let mut w = g.writer(true).await.unwrap();
        sqlx::query("INSERT INTO item (id, parent) VALUES (3, 1)").execute(w.conn()).await.unwrap();
        drop(w); // a cancelled request
        insert(&g, 4, 1).await.unwrap();
        assert_eq!(committed(&opts).await, vec![1, 4]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_writer_of_its_epoch_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (g, opts) = open(&dir).await;
        // Hold the connection so that the next writers queue up and land in one epoch; one of them
        // breaks a deferred constraint, which only COMMIT checks.
        let hold = g.writer(true).await.unwrap();
        let tasks: Vec<_> = (10..20)
            .map(|i| {
                let g = g.clone();
                tokio::spawn(async move { insert(&g, i, if i == 15 { 99 } else { 1 }).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        hold.done().await.unwrap_err();
        for t in tasks {
            let err = t.await.unwrap().unwrap_err();
            assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        }
        assert!(committed(&opts).await.is_empty());
        // The next epoch is clean.
        insert(&g, 30, 1).await.unwrap();
        assert_eq!(committed(&opts).await, vec![30]);
    }
}
