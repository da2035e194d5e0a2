//! SQLite backend for every store trait.
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

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::registry::{
    AgentRecord, AgentStore, ClientRecord, ClientStore, CounterEntry, CounterKey, CounterOutcome,
    CounterStore, EmbeddingRecord, EmbeddingStore, Permission, PermissionStore, Secret,
    SecretStore, StoreError, StoreResult,
};

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

const COUNTER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    window INTEGER NOT NULL,
    count INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS counters_expiry ON counters(expires_at);
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

/// Work for the counters' thread.
enum CounterJob {
    /// Count one request (see [`CounterStore::try_increment`]).
    Increment(Increment),
    /// Anything else, run like a [`Writer`] job.
    Other(Job),
}

/// One request to count, and where its answer goes.
struct Increment {
    key: CounterKey,
    limit: u64,
    expires_at: u64,
    reply: oneshot::Sender<StoreResult<CounterOutcome>>,
}

/// One connection on a thread of its own, fed jobs over a channel.
#[derive(Clone)]
struct Writer {
    jobs: mpsc::Sender<Job>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A `u64` as SQLite's `INTEGER` (an `i64`): values past `i64::MAX` (the
/// end of time, for expiries) are stored as `i64::MAX`, not wrapped to a
/// negative number that would sort before every real time.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            StoreError::Conflict(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
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
        let conn = open_connection(&counters_path(path), "OFF", COUNTER_SCHEMA)?;
        conn.busy_timeout(Duration::ZERO).map_err(map_err)?;
        let conn = Arc::new(parking_lot::Mutex::new(CounterConn {
            conn,
            pruned_window: 0,
        }));
        let (counters, rx) = mpsc::channel::<CounterJob>();
        let queued = Arc::new(AtomicUsize::new(0));
        let (thread_conn, answered) = (conn.clone(), queued.clone());
        std::thread::Builder::new()
            .name("sqlite-counters".into())
            .spawn(move || counter_loop(&thread_conn, rx, &answered))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite thread: {e}")))?;
        let inline = Arc::new(InlineCounter {
            conn,
            fallback: counters.clone(),
            queued,
        });
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

    /// Runs `f` on the counters' thread, inside its own savepoint.
    async fn counters_call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (job, rx) = savepoint_job(f);
        self.counters.send(CounterJob::Other(job)).map_err(|_| {
            StoreError::Unavailable("the SQLite counters thread has stopped".into())
        })?;
        rx.await.map_err(|_| {
            StoreError::Unavailable("the SQLite counters thread dropped a job".into())
        })?
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

/// The counters' thread. Increments that arrive together are counted in one
/// transaction: each key's count is read once, every increment of the batch
/// is decided in arrival order, and each key is written once. The write
/// lock (`BEGIN IMMEDIATE`) is held throughout, so other processes on the
/// same file see exact counts too. Nothing is answered before the commit.
///
/// At quiet times increments do not come here: [`InlineCounter`] counts
/// them on the caller's thread.
fn counter_loop(
    shared: &parking_lot::Mutex<CounterConn>,
    rx: mpsc::Receiver<CounterJob>,
    queued: &AtomicUsize,
) {
    while let Some(batch) = next_batch(&rx) {
        let mut guard = shared.lock();
        let CounterConn {
            conn,
            pruned_window,
        } = &mut *guard;
        // Only this thread waits for another process's lock.
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
        counter_batch(conn, pruned_window, batch, queued);
        let _ = conn.busy_timeout(Duration::ZERO);
    }
}

/// One batch of the counters' thread, in one transaction.
fn counter_batch(
    conn: &Connection,
    pruned_window: &mut u64,
    batch: Vec<CounterJob>,
    queued: &AtomicUsize,
) {
    if let Err(err) = exec_cached(conn, "BEGIN IMMEDIATE") {
        tracing::warn!(error = %err, "SQLite counters could not begin a transaction");
        for job in batch {
            match job {
                CounterJob::Increment(inc) => {
                    let _ = inc
                        .reply
                        .send(Err(StoreError::Unavailable(err.to_string())));
                    queued.fetch_sub(1, Ordering::AcqRel);
                }
                CounterJob::Other(job) => {
                    job(Err(StoreError::Unavailable(err.to_string())))(Ok(()))
                }
            }
        }
        return;
    }
    let mut counts: HashMap<String, Counted> = HashMap::new();
    let mut answers: Vec<(oneshot::Sender<StoreResult<CounterOutcome>>, CounterOutcome)> =
        Vec::with_capacity(batch.len());
    let mut completions: Vec<Completion> = Vec::new();
    let mut failed: Option<StoreError> = None;
    for job in batch {
        match job {
            CounterJob::Increment(inc) => {
                if failed.is_some() {
                    answers.push((inc.reply, CounterOutcome::Limited(inc.limit)));
                    continue;
                }
                let outcome = decide(conn, &mut counts, pruned_window, &inc).unwrap_or_else(|e| {
                    failed = Some(e);
                    CounterOutcome::Limited(inc.limit)
                });
                answers.push((inc.reply, outcome));
            }
            CounterJob::Other(job) => {
                // Readers see every increment decided before them.
                if failed.is_none() {
                    if let Err(e) = write_counts(conn, &mut counts) {
                        failed = Some(e);
                    }
                }
                completions.push(job(Ok(conn)));
            }
        }
    }
    if failed.is_none() {
        if let Err(e) = write_counts(conn, &mut counts) {
            failed = Some(e);
        }
    }
    let outcome = finish(conn, failed);
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, "SQLite counters transaction failed; rolled back");
    }
    let increments = answers.len();
    for (reply, answer) in answers {
        let _ = reply.send(match &outcome {
            Ok(()) => Ok(answer),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        });
    }
    queued.fetch_sub(increments, Ordering::AcqRel);
    for done in completions {
        done(match &outcome {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        });
    }
}

/// Commits, or rolls back when something failed (or the commit does).
fn finish(conn: &Connection, failed: Option<StoreError>) -> StoreResult<()> {
    match failed {
        Some(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
        None => exec_cached(conn, "COMMIT").inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        }),
    }
}

/// Decides one increment within a batch's transaction: the key's count is
/// read on its first increment of the batch and kept in `counts` after.
/// Expired windows are pruned once per window.
fn decide(
    conn: &Connection,
    counts: &mut HashMap<String, Counted>,
    pruned_window: &mut u64,
    inc: &Increment,
) -> StoreResult<CounterOutcome> {
    if inc.key.window > *pruned_window {
        *pruned_window = inc.key.window;
        let now = inc.key.window.saturating_mul(crate::ratelimit::WINDOW_SECS);
        conn.prepare_cached("DELETE FROM counters WHERE expires_at <= ?1")
            .and_then(|mut stmt| stmt.execute(params![sql_int(now)]))
            .map_err(map_err)?;
    }
    let counted = match counts.entry(inc.key.storage_key()) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let count = stored_count(conn, v.key())?;
            v.insert(Counted {
                key: inc.key.clone(),
                count,
                expires_at: inc.expires_at,
                dirty: false,
            })
        }
    };
    Ok(if counted.count < inc.limit {
        counted.count += 1;
        counted.dirty = true;
        CounterOutcome::Allowed(counted.count)
    } else {
        CounterOutcome::Limited(inc.limit)
    })
}

/// Counts an increment on the calling thread when nothing else is being
/// counted, so that a request at a quiet time does not wait for the
/// counters' thread to wake up (and then for its own thread to be woken
/// again): the two wake-ups cost more than the transaction.
///
/// Once requests overlap, they go to the counters' thread, where those that
/// arrive together share one transaction; per request that is far cheaper
/// than one transaction each. The connection here never waits for a lock
/// (its busy timeout is zero), so no caller is blocked behind another
/// process or the thread: an increment that finds the file locked goes to
/// the thread, which waits as long as [`BUSY_TIMEOUT`] allows.
struct InlineCounter {
    /// The one counters connection of this process, shared with the thread
    /// so that the two never wait for each other's lock inside SQLite (whose
    /// busy handler sleeps a millisecond or more).
    conn: Arc<parking_lot::Mutex<CounterConn>>,
    fallback: mpsc::Sender<CounterJob>,
    /// Increments sent to the thread and not yet answered.
    queued: Arc<AtomicUsize>,
}

/// The counters connection. Its busy timeout is zero except while the
/// counters' thread is using it.
struct CounterConn {
    conn: Connection,
    /// The newest window whose predecessors have been deleted.
    pruned_window: u64,
}

impl InlineCounter {
    fn submit(&self, inc: Increment) {
        if self.queued.load(Ordering::Acquire) == 0 {
            if let Some(mut counter) = self.conn.try_lock() {
                self.count(&mut counter, inc);
                return;
            }
        }
        self.hand_over(inc);
    }

    /// Sends an increment to the counters' thread.
    fn hand_over(&self, inc: Increment) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(CounterJob::Increment(inc))) =
            self.fallback.send(CounterJob::Increment(inc))
        {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            let _ = inc.reply.send(Err(StoreError::Unavailable(
                "the SQLite counters thread has stopped".into(),
            )));
        }
    }

    /// Counts `inc` in a transaction of its own and answers it, or hands it
    /// to the counters' thread when that cannot be done here.
    fn count(&self, counter: &mut CounterConn, inc: Increment) {
        match increment_one(counter, &inc) {
            Ok(outcome) => {
                let _ = inc.reply.send(Ok(outcome));
            }
            Err(e) => {
                // Locked by someone else (or failing here): nothing was
                // counted, so the thread may count it.
                tracing::debug!(error = %e, "counting on the counters' thread instead");
                self.hand_over(inc);
            }
        }
    }
}

/// Counts one increment in one statement, which SQLite runs as a
/// transaction of its own: the row is created at 1, or its count goes up by
/// one only while below the limit (no row comes back when it is not).
fn increment_one(counter: &mut CounterConn, inc: &Increment) -> StoreResult<CounterOutcome> {
    let conn = &counter.conn;
    if inc.key.window > counter.pruned_window {
        let now = inc.key.window.saturating_mul(crate::ratelimit::WINDOW_SECS);
        conn.prepare_cached("DELETE FROM counters WHERE expires_at <= ?1")
            .and_then(|mut stmt| stmt.execute(params![sql_int(now)]))
            .map_err(map_err)?;
        counter.pruned_window = inc.key.window;
    }
    let count = conn
        .prepare_cached(
            "INSERT INTO counters(key, client_id, agent_id, window, count, expires_at)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)
             ON CONFLICT(key) DO UPDATE SET count = count + 1 WHERE count < ?6
             RETURNING count",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    inc.key.storage_key(),
                    inc.key.client_id,
                    inc.key.agent_id,
                    sql_int(inc.key.window),
                    sql_int(inc.expires_at),
                    sql_int(inc.limit),
                ],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        })
        .map_err(map_err)?;
    Ok(match count {
        Some(n) => CounterOutcome::Allowed(n.max(0) as u64),
        None => CounterOutcome::Limited(inc.limit),
    })
}

/// One key's count within a batch.
struct Counted {
    key: CounterKey,
    count: u64,
    expires_at: u64,
    dirty: bool,
}

fn stored_count(conn: &Connection, storage_key: &str) -> StoreResult<u64> {
    conn.prepare_cached("SELECT count FROM counters WHERE key = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(params![storage_key], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map(|n| n.unwrap_or(0).max(0) as u64)
        .map_err(map_err)
}

/// Writes the counts changed in this batch.
fn write_counts(conn: &Connection, counts: &mut HashMap<String, Counted>) -> StoreResult<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO counters(key, client_id, agent_id, window, count, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(key) DO UPDATE SET count = excluded.count",
        )
        .map_err(map_err)?;
    for (storage_key, c) in counts.iter_mut().filter(|(_, c)| c.dirty) {
        stmt.execute(params![
            storage_key,
            c.key.client_id,
            c.key.agent_id,
            sql_int(c.key.window),
            sql_int(c.count),
            sql_int(c.expires_at)
        ])
        .map_err(map_err)?;
        c.dirty = false;
    }
    Ok(())
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

fn read_agent(body: &str) -> StoreResult<AgentRecord> {
    serde_json::from_str(body).map_err(|e| corrupt("agent", e))
}

fn write_agent(conn: &Connection, record: &AgentRecord) -> StoreResult<()> {
    let body = serde_json::to_string(record).map_err(|e| corrupt("agent", e))?;
    conn.execute(
        "INSERT INTO agents(id, body, version, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(id) DO UPDATE SET body = excluded.body, version = excluded.version,
         updated_at = excluded.updated_at",
        params![record.id, body, record.version as i64, record.updated_at],
    )
    .map_err(map_err)?;
    Ok(())
}

fn stored_version(conn: &Connection, id: &str) -> StoreResult<Option<u64>> {
    conn.query_row(
        "SELECT version FROM agents WHERE id = ?1",
        params![id],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map_err(map_err)
    .map(|v| v.map(|v| v as u64))
}

#[async_trait]
impl AgentStore for SqliteStore {
    async fn get(&self, id: &str) -> StoreResult<Option<AgentRecord>> {
        let id = id.to_owned();
        self.call(move |conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM agents WHERE id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(map_err)?;
            body.as_deref().map(read_agent).transpose()
        })
        .await
    }

    async fn list(&self) -> StoreResult<Vec<AgentRecord>> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare("SELECT body FROM agents ORDER BY id")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(map_err)?;
            let mut out = Vec::new();
            for body in rows {
                out.push(read_agent(&body.map_err(map_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn create(&self, mut record: AgentRecord) -> StoreResult<AgentRecord> {
        self.call(move |conn| {
            if stored_version(conn, &record.id)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "agent {} already exists",
                    record.id
                )));
            }
            record.version = 1;
            record.updated_at = now_ms();
            write_agent(conn, &record)?;
            bump(conn, "agents")?;
            Ok(record)
        })
        .await
    }

    async fn update(&self, mut record: AgentRecord) -> StoreResult<AgentRecord> {
        self.call(move |conn| {
            match stored_version(conn, &record.id)? {
                None => return Err(StoreError::NotFound(format!("agent {}", record.id))),
                Some(v) if v != record.version => {
                    return Err(StoreError::Conflict(format!(
                        "agent {} changed meanwhile (version {v}, edit based on {})",
                        record.id, record.version
                    )))
                }
                Some(_) => {}
            }
            record.version += 1;
            record.updated_at = now_ms();
            write_agent(conn, &record)?;
            bump(conn, "agents")?;
            Ok(record)
        })
        .await
    }

    async fn put_many(&self, records: Vec<AgentRecord>) -> StoreResult<()> {
        self.call(move |conn| {
            let now = now_ms();
            for mut record in records {
                record.version = stored_version(conn, &record.id)?.unwrap_or(0) + 1;
                record.updated_at = now;
                write_agent(conn, &record)?;
            }
            bump(conn, "agents")
        })
        .await
    }

    async fn delete(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.call(move |conn| {
            let n = conn
                .execute("DELETE FROM agents WHERE id = ?1", params![id])
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("agent {id}")));
            }
            bump(conn, "agents")
        })
        .await
    }

    async fn generation(&self) -> StoreResult<u64> {
        self.call(|conn| generation(conn, "agents")).await
    }
}

fn read_permission(scope: String, agents: &str) -> StoreResult<Permission> {
    let agents: BTreeSet<String> =
        serde_json::from_str(agents).map_err(|e| corrupt("permission", e))?;
    Ok(Permission { scope, agents })
}

fn load_permission(conn: &Connection, scope: &str) -> StoreResult<Option<Permission>> {
    let agents: Option<String> = conn
        .query_row(
            "SELECT agents FROM permissions WHERE scope = ?1",
            params![scope],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    agents
        .map(|a| read_permission(scope.to_owned(), &a))
        .transpose()
}

fn save_permission(conn: &Connection, p: &Permission) -> StoreResult<()> {
    if p.agents.is_empty() {
        conn.execute("DELETE FROM permissions WHERE scope = ?1", params![p.scope])
            .map_err(map_err)?;
    } else {
        let agents = serde_json::to_string(&p.agents).map_err(|e| corrupt("permission", e))?;
        conn.execute(
            "INSERT INTO permissions(scope, agents) VALUES (?1, ?2)
             ON CONFLICT(scope) DO UPDATE SET agents = excluded.agents",
            params![p.scope, agents],
        )
        .map_err(map_err)?;
    }
    Ok(())
}

#[async_trait]
impl PermissionStore for SqliteStore {
    async fn list(&self) -> StoreResult<Vec<Permission>> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare("SELECT scope, agents FROM permissions ORDER BY scope")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(map_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (scope, agents) = row.map_err(map_err)?;
                out.push(read_permission(scope, &agents)?);
            }
            Ok(out)
        })
        .await
    }

    async fn grant(&self, scope: &str, agents: &[String]) -> StoreResult<Permission> {
        let scope = scope.to_owned();
        let agents = agents.to_vec();
        self.call(move |conn| {
            let mut p = load_permission(conn, &scope)?.unwrap_or(Permission {
                scope,
                agents: BTreeSet::new(),
            });
            p.agents.extend(agents);
            save_permission(conn, &p)?;
            bump(conn, "permissions")?;
            Ok(p)
        })
        .await
    }

    async fn revoke(&self, scope: &str, agents: &[String]) -> StoreResult<Option<Permission>> {
        let scope = scope.to_owned();
        let agents = agents.to_vec();
        self.call(move |conn| {
            let Some(mut p) = load_permission(conn, &scope)? else {
                return Err(StoreError::NotFound(format!("scope {scope}")));
            };
            for a in &agents {
                p.agents.remove(a);
            }
            save_permission(conn, &p)?;
            bump(conn, "permissions")?;
            Ok((!p.agents.is_empty()).then_some(p))
        })
        .await
    }

    async fn replace_all(&self, permissions: Vec<Permission>) -> StoreResult<()> {
        self.call(move |conn| {
            conn.execute("DELETE FROM permissions", [])
                .map_err(map_err)?;
            for p in &permissions {
                save_permission(conn, p)?;
            }
            bump(conn, "permissions")
        })
        .await
    }

    async fn generation(&self) -> StoreResult<u64> {
        self.call(|conn| generation(conn, "permissions")).await
    }
}

#[async_trait]
impl CounterStore for SqliteStore {
    async fn try_increment(
        &self,
        key: &CounterKey,
        limit: u64,
        expires_at: u64,
    ) -> StoreResult<CounterOutcome> {
        if limit == 0 {
            return Ok(CounterOutcome::Limited(0));
        }
        let (reply, rx) = oneshot::channel();
        self.inline.submit(Increment {
            key: key.clone(),
            limit,
            expires_at,
            reply,
        });
        rx.await.map_err(|_| {
            StoreError::Unavailable("the SQLite counters thread dropped a job".into())
        })?
    }

    async fn list(&self, now: u64) -> StoreResult<Vec<CounterEntry>> {
        self.counters_call(move |conn| {
            // Expired windows are ignored here and pruned opportunistically.
            conn.execute(
                "DELETE FROM counters WHERE expires_at <= ?1",
                params![sql_int(now)],
            )
            .map_err(map_err)?;
            let mut stmt = conn
                .prepare(
                    "SELECT client_id, agent_id, window, count, expires_at FROM counters
                     WHERE expires_at > ?1 ORDER BY client_id, agent_id, window",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![sql_int(now)], |r| {
                    Ok(CounterEntry {
                        key: CounterKey {
                            client_id: r.get(0)?,
                            agent_id: r.get(1)?,
                            window: r.get::<_, i64>(2)? as u64,
                        },
                        count: r.get::<_, i64>(3)? as u64,
                        expires_at: r.get::<_, i64>(4)? as u64,
                    })
                })
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn get(&self, name: &str) -> StoreResult<Secret> {
        let name = name.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT value FROM secrets WHERE name = ?1",
                params![name],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(map_err)?
            .map(Secret::new)
            .ok_or_else(|| StoreError::NotFound(format!("secret {name}")))
        })
        .await
    }

    async fn put(&self, name: &str, value: &Secret) -> StoreResult<()> {
        let name = name.to_owned();
        let value = value.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO secrets(name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, value.expose()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.call(move |conn| {
            let n = conn
                .execute("DELETE FROM secrets WHERE name = ?1", params![name])
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("secret {name}")));
            }
            Ok(())
        })
        .await
    }

    async fn list_names(&self) -> StoreResult<Vec<String>> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare("SELECT name FROM secrets ORDER BY name")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn get(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let id = client_id.to_owned();
        self.call(move |conn| {
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM clients WHERE client_id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("client", e)))
                .transpose()
        })
        .await
    }

    async fn list(&self) -> StoreResult<Vec<ClientRecord>> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare("SELECT body FROM clients ORDER BY client_id")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(map_err)?;
            let mut out = Vec::new();
            for body in rows {
                let body = body.map_err(map_err)?;
                out.push(serde_json::from_str(&body).map_err(|e| corrupt("client", e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn create(&self, record: ClientRecord) -> StoreResult<()> {
        self.call(move |conn| {
            let body = serde_json::to_string(&record).map_err(|e| corrupt("client", e))?;
            let n = conn
                .execute(
                    "INSERT INTO clients(client_id, body) VALUES (?1, ?2)
                     ON CONFLICT(client_id) DO NOTHING",
                    params![record.client_id, body],
                )
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "client {} already exists",
                    record.client_id
                )));
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, client_id: &str) -> StoreResult<()> {
        let id = client_id.to_owned();
        self.call(move |conn| {
            let n = conn
                .execute("DELETE FROM clients WHERE client_id = ?1", params![id])
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("client {id}")));
            }
            Ok(())
        })
        .await
    }
}

/// Vectors as one blob: every vector's `f32`s, little-endian, back to back.
fn encode_vectors(record: &EmbeddingRecord) -> StoreResult<(i64, Vec<u8>)> {
    let dims = record.vectors.first().map_or(0, Vec::len);
    if record.vectors.iter().any(|v| v.len() != dims) {
        return Err(StoreError::Corrupt(format!(
            "embedding of {}: vectors of different lengths",
            record.agent_id
        )));
    }
    let mut blob = Vec::with_capacity(record.vectors.len() * dims * 4);
    for v in &record.vectors {
        for x in v {
            blob.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok((dims as i64, blob))
}

fn decode_vectors(agent_id: &str, dims: i64, blob: &[u8]) -> StoreResult<Vec<Vec<f32>>> {
    let bad = || {
        StoreError::Corrupt(format!(
            "embedding of {agent_id}: {} bytes for {dims} dimensions",
            blob.len()
        ))
    };
    let dims = usize::try_from(dims).map_err(|_| bad())?;
    if dims == 0 {
        return if blob.is_empty() {
            Ok(Vec::new())
        } else {
            Err(bad())
        };
    }
    if !blob.len().is_multiple_of(dims * 4) {
        return Err(bad());
    }
    Ok(blob
        .chunks_exact(dims * 4)
        .map(|v| {
            v.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

fn read_embedding(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, i64, Vec<u8>, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn embedding_record(
    (agent_id, model, text_hash, dims, blob, updated_at): (
        String,
        String,
        String,
        i64,
        Vec<u8>,
        i64,
    ),
) -> StoreResult<EmbeddingRecord> {
    let vectors = decode_vectors(&agent_id, dims, &blob)?;
    Ok(EmbeddingRecord {
        agent_id,
        model,
        text_hash,
        vectors,
        updated_at,
    })
}

const EMBEDDING_COLUMNS: &str = "agent_id, model, text_hash, dimensions, vectors, updated_at";

#[async_trait]
impl EmbeddingStore for SqliteStore {
    async fn get(&self, agent_id: &str) -> StoreResult<Option<EmbeddingRecord>> {
        let id = agent_id.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {EMBEDDING_COLUMNS} FROM embeddings WHERE agent_id = ?1"),
                params![id],
                read_embedding,
            )
            .optional()
            .map_err(map_err)?
            .map(embedding_record)
            .transpose()
        })
        .await
    }

    async fn list(&self) -> StoreResult<Vec<EmbeddingRecord>> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {EMBEDDING_COLUMNS} FROM embeddings ORDER BY agent_id"
                ))
                .map_err(map_err)?;
            let rows = stmt.query_map([], read_embedding).map_err(map_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(embedding_record(row.map_err(map_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_many(&self, records: Vec<EmbeddingRecord>) -> StoreResult<()> {
        self.call(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "INSERT INTO embeddings({EMBEDDING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(agent_id) DO UPDATE SET model = excluded.model,
                     text_hash = excluded.text_hash, dimensions = excluded.dimensions,
                     vectors = excluded.vectors, updated_at = excluded.updated_at"
                ))
                .map_err(map_err)?;
            for record in &records {
                let (dims, blob) = encode_vectors(record)?;
                let updated_at = if record.updated_at > 0 {
                    record.updated_at
                } else {
                    now_ms()
                };
                stmt.execute(params![
                    record.agent_id,
                    record.model,
                    record.text_hash,
                    dims,
                    blob,
                    updated_at
                ])
                .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, agent_id: &str) -> StoreResult<()> {
        let id = agent_id.to_owned();
        self.call(move |conn| {
            let n = conn
                .execute("DELETE FROM embeddings WHERE agent_id = ?1", params![id])
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("embedding of agent {id}")));
            }
            Ok(())
        })
        .await
    }
}
