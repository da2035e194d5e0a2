//! The store suite against SQLite, plus what only SQLite promises.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_suite;

use switchboard_core::registry::{AgentRecord, StoreError};
use switchboard_core::store::sqlite::SqliteStore;
use switchboard_core::store::Stores;

#[tokio::test]
async fn store_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    store_suite::run_all(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("db{i}.sqlite"));
        async move { Stores::sqlite(SqliteStore::open(&path).unwrap()) }
    })
    .await;
}

#[tokio::test]
async fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let _db = SqliteStore::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn put_many_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::sqlite(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let good: Vec<AgentRecord> = (0..1000)
        .map(|i| AgentRecord::new(format!("a{i}"), "http://127.0.0.1:1"))
        .collect();
    stores.agents.put_many(good).await.unwrap();
    assert_eq!(stores.agents.list().await.unwrap().len(), 1000);
}

#[tokio::test]
async fn a_locked_database_is_unavailable_not_an_error_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let stores = Stores::sqlite(SqliteStore::open(&path).unwrap());
    // Another connection holds the write lock.
    let other = rusqlite_lock(&path);
    let err = stores
        .agents
        .create(AgentRecord::new("x", "http://127.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    drop(other);
    // It recovers by itself once the lock is gone.
    stores
        .agents
        .create(AgentRecord::new("x", "http://127.0.0.1:1"))
        .await
        .unwrap();
}

fn rusqlite_lock(path: &std::path::Path) -> rusqlite::Connection {
    // Another connection holds an exclusive transaction open.
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE; SELECT 1;").unwrap();
    conn
}

#[tokio::test]
async fn a_damaged_embedding_is_reported_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let stores = Stores::sqlite(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    // 10 bytes cannot be 384-dimensional f32 vectors.
    conn.execute(
        "INSERT INTO embeddings(agent_id, model, text_hash, dimensions, vectors, updated_at)
         VALUES ('a', 'm', 'h', 384, x'00010203040506070809', 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let err = stores.embeddings.get("a").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(matches!(
        stores.embeddings.list().await.unwrap_err(),
        StoreError::Corrupt(_)
    ));
}

fn counter_key(window: u64) -> switchboard_core::registry::CounterKey {
    switchboard_core::registry::CounterKey {
        client_id: "c".into(),
        agent_id: "a".into(),
        window,
    }
}

/// Two stores on one file stand for two gateway processes. Increments one
/// at a time are counted on the caller's thread; overlapping ones go through
/// each store's counters thread. Either way the two count exactly together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_count_exactly_quiet_or_busy() {
    use switchboard_core::registry::{CounterOutcome, CounterStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let stores: Vec<std::sync::Arc<SqliteStore>> = (0..2)
        .map(|_| std::sync::Arc::new(SqliteStore::open(&path).unwrap()))
        .collect();

    // Quiet: one at a time, alternating stores, every count in order.
    for n in 1..=10u64 {
        let got = stores[n as usize % 2]
            .try_increment(
                &counter_key(1),
                10,
                store_suite::start(&counter_key(1)),
                u64::MAX,
            )
            .await
            .unwrap();
        assert_eq!(got, CounterOutcome::Allowed(n));
    }
    let over = stores[0]
        .try_increment(
            &counter_key(1),
            10,
            store_suite::start(&counter_key(1)),
            u64::MAX,
        )
        .await;
    assert_eq!(over.unwrap(), CounterOutcome::Limited(10));

    // Busy: 600 at once across both stores against a limit of 250.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..600 {
        let store = stores[i % 2].clone();
        tasks.spawn(async move {
            store
                .try_increment(
                    &counter_key(2),
                    250,
                    store_suite::start(&counter_key(2)),
                    u64::MAX,
                )
                .await
        });
    }
    let mut allowed = Vec::new();
    let mut limited = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap().unwrap() {
            CounterOutcome::Allowed(n) => allowed.push(n),
            CounterOutcome::Limited(_) => limited += 1,
        }
    }
    allowed.sort_unstable();
    assert_eq!(allowed, (1..=250).collect::<Vec<u64>>());
    assert_eq!(limited, 350);
}

/// An increment that finds the counters file locked by another process
/// waits for it (up to the busy timeout) instead of failing at once, and is
/// counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_waits_out_a_short_lock_and_counts_once() {
    use switchboard_core::registry::{CounterOutcome, CounterStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    let first = store
        .try_increment(
            &counter_key(3),
            5,
            store_suite::start(&counter_key(3)),
            u64::MAX,
        )
        .await;
    assert_eq!(first.unwrap(), CounterOutcome::Allowed(1));

    let locker = rusqlite_lock(&store.counters_path());
    // Taken before the lock's holder starts its 300 ms: the lock cannot be
    // released sooner than 300 ms after this, however the threads are run.
    let started = std::time::Instant::now();
    let released = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(locker);
    });
    let second = store
        .try_increment(
            &counter_key(3),
            5,
            store_suite::start(&counter_key(3)),
            u64::MAX,
        )
        .await;
    assert_eq!(second.unwrap(), CounterOutcome::Allowed(2));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "counted while the file was locked: {:?}",
        started.elapsed()
    );
    released.join().unwrap();
    let third = store
        .try_increment(
            &counter_key(3),
            5,
            store_suite::start(&counter_key(3)),
            u64::MAX,
        )
        .await;
    assert_eq!(third.unwrap(), CounterOutcome::Allowed(3));
}
