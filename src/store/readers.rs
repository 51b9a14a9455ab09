//! SQLite read connections used on the caller's own thread, for the reads on the hot paths (a
//! payment's token and instrument, a token request's instrument, a detokenize's VAN scope, a
//! registration's look for the card by fingerprint and for its PAR).
//!
//! sqlx runs each SQLite connection on a thread of its own: a read is a message to that thread and a
//! wake-up back, and under `pay` those hops cost more CPU than the read itself (a few B-tree pages
//! already in memory). Here the caller takes an idle connection, runs its statements in place and
//! puts the connection back. A read may wait on the disk when its pages are not cached, as any
//! blocking call would hold the task's worker thread; WAL readers never wait for the writer.
//!
//! Every other read still goes through sqlx's pool (`sqlite.rs`). Reads in place lengthen each poll
//! of the task that runs them: a path whose writes go through the group-commit connection (a task on
//! the runtime, one hop to sqlx's thread per statement) got slower with them, its serial writer
//! waiting longer for its turn (docs/performance.md), so they suit paths whose writes are units.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::OpenFlags;

use super::StoreResult;

/// Idle connections kept for reuse; a caller finding none opens another, and one coming back to a
/// full list is closed. (A tokio worker runs one read at a time: two workers rarely need more.)
const KEEP_IDLE: usize = 8;

pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl Readers {
    /// Read connections to the database at `path` (open, migrated, in WAL mode); one is opened now
    /// so that a file that cannot be read fails at start.
    pub fn open(path: &Path) -> StoreResult<Readers> {
        let readers = Readers { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) };
        let first = readers.connect()?;
        readers.put_back(first);
        Ok(readers)
    }

    fn connect(&self) -> StoreResult<rusqlite::Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }

    fn take(&self) -> Option<rusqlite::Connection> {
        self.idle.lock().ok()?.pop()
    }

    fn put_back(&self, conn: rusqlite::Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEEP_IDLE
        {
            idle.push(conn);
        }
    }

    /// Runs `read` on an idle connection (a new one when none is idle), here on the caller's thread.
    pub fn with<T>(&self, read: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = match self.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = read(&conn);
        self.put_back(conn);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)").unwrap();
        (dir, path)
    }

    #[test]
    fn a_read_sees_what_a_writer_committed_and_cannot_write() {
        let (_dir, path) = database();
        let readers = Readers::open(&path).unwrap();
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let sum: i64 = readers.with(|c| Ok(c.query_row("SELECT SUM(v) FROM t", [], |r| r.get(0))?)).unwrap();
        assert_eq!(sum, 3);
        let refused = readers.with(|c| Ok(c.execute("INSERT INTO t VALUES (3)", [])?));
        assert!(refused.is_err(), "a read connection wrote");
    }

    #[test]
    fn connections_are_reused_and_a_busy_one_is_not_shared() {
        let (_dir, path) = database();
        let readers = Readers::open(&path).unwrap();
        // Inside a read the one idle connection is taken: a nested read opens another.
        let nested = readers.with(|_| readers.with(|_| Ok(()))).map(|()| readers.idle.lock().unwrap().len());
        assert_eq!(nested.unwrap(), 2);
        readers.with(|_| Ok(())).unwrap();
        assert_eq!(readers.idle.lock().unwrap().len(), 2, "a read opened a connection while one was idle");
    }
}
