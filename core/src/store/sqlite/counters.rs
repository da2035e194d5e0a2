//! The SQLite rate-limit counters: their own file and thread, counted
//! inline at quiet times and in shared transactions under load (see the
//! [module documentation](super)), and the [`CounterStore`] implementation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::{
    counters_path, exec_cached, map_err, next_batch, open_connection, savepoint_job, sql_int,
    Completion, Job, SqliteStore, BUSY_TIMEOUT,
};
use crate::registry::{
    CounterEntry, CounterKey, CounterOutcome, CounterStore, StoreError, StoreResult,
};

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

/// Work for the counters' thread.
pub(super) enum CounterJob {
    /// Count one request (see [`CounterStore::try_increment`]).
    Increment(Increment),
    /// Anything else, run like a [`Writer`](super::Writer) job.
    Other(Job),
}

/// One request to count, and where its answer goes.
pub(super) struct Increment {
    key: CounterKey,
    limit: u64,
    /// When the key's window begins (Unix seconds): windows expired by then
    /// are deleted.
    window_start: u64,
    expires_at: u64,
    reply: oneshot::Sender<StoreResult<CounterOutcome>>,
}

/// Opens the counters file beside the database at `path` and starts its
/// thread: the sender that feeds the thread, and the counter that counts on
/// the caller's thread when it can.
pub(super) fn start(path: &Path) -> StoreResult<(mpsc::Sender<CounterJob>, Arc<InlineCounter>)> {
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
    Ok((counters, inline))
}

impl SqliteStore {
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
                    let _ = inc.reply.send(Err(err.duplicate()));
                    queued.fetch_sub(1, Ordering::AcqRel);
                }
                CounterJob::Other(job) => job(Err(err.duplicate()))(Ok(())),
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
            Err(e) => Err(e.duplicate()),
        });
    }
    queued.fetch_sub(increments, Ordering::AcqRel);
    for done in completions {
        done(match &outcome {
            Ok(()) => Ok(()),
            Err(e) => Err(e.duplicate()),
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
        conn.prepare_cached("DELETE FROM counters WHERE expires_at <= ?1")
            .and_then(|mut stmt| stmt.execute(params![sql_int(inc.window_start)]))
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
pub(super) struct InlineCounter {
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
        conn.prepare_cached("DELETE FROM counters WHERE expires_at <= ?1")
            .and_then(|mut stmt| stmt.execute(params![sql_int(inc.window_start)]))
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

#[async_trait]
impl CounterStore for SqliteStore {
    async fn try_increment(
        &self,
        key: &CounterKey,
        limit: u64,
        window_start: u64,
        expires_at: u64,
    ) -> StoreResult<CounterOutcome> {
        if limit == 0 {
            return Ok(CounterOutcome::Limited(0));
        }
        let (reply, rx) = oneshot::channel();
        self.inline.submit(Increment {
            key: key.clone(),
            limit,
            window_start,
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
