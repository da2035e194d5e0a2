//! SQLite agents: one row per agent (the record as JSON, its version and
//! time of change), and the [`AgentStore`] implementation.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{bump, corrupt, generation, map_err, SqliteStore};
use crate::registry::{AgentRecord, AgentStore, StoreError, StoreResult};
use crate::store::{check_agent, now_ms};

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
        check_agent(&record)?;
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
        check_agent(&record)?;
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
        records.iter().try_for_each(check_agent)?;
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
