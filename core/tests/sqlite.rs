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
