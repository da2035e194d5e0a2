//! SQLite backend for every store trait: the connection plumbing here (open,
//! the writer thread, busy handling), one file per aggregate beside it.
//!
//! rusqlite is blocking, so one dedicated thread owns the connection and runs
//! jobs sent to it over a channel. Jobs that arrive together share one
//! transaction (group commit): under load, hundreds of rate-limit increments
//! cost one commit. Each job runs inside its own savepoint, so a job that fails
//! leaves nothing behind and does not disturb its neighbours; results are
//! handed back only after the commit succeeded.
//!
//! The per-minute counters live in a second file beside the first
//! (`<name>-counters.db`), with a connection and a thread of their own and
//! `synchronous=OFF`: they are the one store call on the request path, they
//! only matter for the current minute, and an fsync (or a long registry
//! write) must never stall it. An increment at a quiet moment is counted on
//! the request's own thread in one statement; increments that overlap go to
//! the counters' thread and share a transaction.
//!
//! A crash of the machine (not of the process) may forget the last counts; a
//! crashed process loses nothing, since every commit is in the operating
//! system's hands before a request is admitted.

mod agents;
mod clients;
mod counters;
mod embeddings;
mod permissions;
mod secrets;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use self::counters::{CounterJob, InlineCounter};
use crate::registry::{StoreError, StoreResult};

type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A job gets the connection, or the reason the transaction could not begin.
type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Completion + Send>;

/// Most jobs that share one transaction.
const MAX_BATCH: usize = 512;

/// How long a write waits for another process's lock before the store reports
/// itself unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_millis(2000);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS permissions (
    scope TEXT PRIMARY KEY,
    agents TEXT NOT NULL
);
DROP TABLE IF EXISTS counters;
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    agent_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    dimensions INTEGER NOT NULL,
    vectors BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// One SQLite database holding every table. Cheap to clone: clones share the
/// writer thread.
#[derive(Clone)]
pub struct SqliteStore {
    main: Writer,
    counters: mpsc::Sender<CounterJob>,
    inline: Arc<InlineCounter>,
    path: PathBuf,
}

/// One connection on a thread of its own, fed jobs over a channel.
#[derive(Clone)]
struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// A `u64` as SQLite's `INTEGER` (an `i64`): values past `i64::MAX` (the
/// end of time, for expiries) are stored as `i64::MAX`, not wrapped to a
/// negative number that would sort before every real time.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A rusqlite error as a store error: a constraint is a `Conflict`; a
/// database that is busy, locked, read-only or cannot be opened or written
/// is `Unavailable`; anything else is a `Backend` error holding the
/// rusqlite error.
fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            StoreError::Conflict(e.to_string())
        }
        rusqlite::Error::SqliteFailure(f, _) if unusable(f.code) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::backend("SQLite", e),
    }
}

/// Error codes that say the database cannot be used right now (or at all),
/// rather than that one statement went wrong.
fn unusable(code: rusqlite::ErrorCode) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        code,
        ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OutOfMemory
            | ErrorCode::OperationInterrupted
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
    )
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. The file is made
    /// readable by its owner only, since it holds secrets.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let main = Writer::open(path, "sqlite-writer", "NORMAL", SCHEMA)?;
        let (counters, inline) = counters::start(path)?;
        Ok(SqliteStore {
            main,
            counters,
            inline,
            path: path.to_path_buf(),
        })
    }

    /// Where the counters live, beside the main file.
    pub fn counters_path(&self) -> PathBuf {
        counters_path(&self.path)
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the main file's writer thread (see [`Writer::call`]).
    async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.main.call(f).await
    }
}

/// Where the counters of the database at `path` live:
/// `<dir>/<stem>-counters.db` for `<dir>/<stem>.<ext>`.
pub fn counters_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "switchboard".into());
    path.with_file_name(format!("{stem}-counters.db"))
}

impl Writer {
    /// Opens (creating if needed) the database at `path`, readable by its
    /// owner only, and starts its thread.
    fn open(path: &Path, thread: &str, synchronous: &str, schema: &str) -> StoreResult<Self> {
        let conn = open_connection(path, synchronous, schema)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite thread: {e}")))?;
        Ok(Writer { jobs: tx })
    }

    /// Runs `f` on the writer thread inside its own savepoint and returns its
    /// result once the enclosing transaction has committed.
    async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (job, rx) = savepoint_job(f);
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the SQLite thread dropped a job".into()))?
    }
}

/// Opens a connection: owner-only file, busy timeout, WAL, the schema.
fn open_connection(path: &Path, synchronous: &str, schema: &str) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(map_err)?;
    restrict_mode(path)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON;"
    ))
    .map_err(map_err)?;
    conn.execute_batch(schema).map_err(map_err)?;
    Ok(conn)
}

/// A job that runs `f` in its own savepoint, and where its result arrives
/// once the transaction has committed.
fn savepoint_job<T, F>(f: F) -> (Job, oneshot::Receiver<StoreResult<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |conn: Result<&Connection, StoreError>| {
        let result = match conn {
            Err(e) => Err(e),
            Ok(conn) => run_in_savepoint(conn, f),
        };
        Box::new(move |commit: StoreResult<()>| {
            let out = match commit {
                Ok(()) => result,
                Err(e) => Err(e),
            };
            let _ = tx.send(out);
        })
    });
    (job, rx)
}

fn run_in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    exec_cached(conn, "SAVEPOINT job")?;
    let r = f(conn);
    let end = if r.is_ok() {
        exec_cached(conn, "RELEASE job")
    } else {
        exec_cached(conn, "ROLLBACK TO job").and_then(|()| exec_cached(conn, "RELEASE job"))
    };
    end.and(r)
}

/// Runs a statement without parameters from the connection's statement cache
/// (these run for every job, so they are parsed once).
fn exec_cached(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(map_err)
}

#[cfg(unix)]
fn restrict_mode(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Unavailable(format!("cannot chmod {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn restrict_mode(_path: &Path) -> StoreResult<()> {
    Ok(())
}

/// Waits for a job, then takes whatever else is already waiting (up to
/// [`MAX_BATCH`]). `None` once every sender is gone.
fn next_batch<J>(rx: &mpsc::Receiver<J>) -> Option<Vec<J>> {
    let mut batch = vec![rx.recv().ok()?];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Some(batch) = next_batch(&rx) {
        if let Err(err) = exec_cached(&conn, "BEGIN IMMEDIATE") {
            tracing::warn!(error = %err, "SQLite store could not begin a transaction");
            for job in batch {
                job(Err(StoreError::Unavailable(err.to_string())))(Ok(()));
            }
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(Ok(&conn))).collect();
        let commit = exec_cached(&conn, "COMMIT");
        if let Err(e) = &commit {
            tracing::warn!(error = %e, "SQLite commit failed; rolling back");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(e.to_string())),
            });
        }
    }
}

fn bump(conn: &Connection, key: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, 1)
         ON CONFLICT(key) DO UPDATE SET value = value + 1",
        params![key],
    )
    .map_err(map_err)?;
    Ok(())
}

fn generation(conn: &Connection, key: &str) -> StoreResult<u64> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
        r.get::<_, i64>(0)
    })
    .optional()
    .map_err(map_err)
    .map(|v| v.unwrap_or(0) as u64)
}
