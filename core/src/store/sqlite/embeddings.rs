//! SQLite embeddings: one row per agent, its vectors as one blob (see
//! [`EmbeddingRecord::encode_vectors`]), and the [`EmbeddingStore`]
//! implementation.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{map_err, SqliteStore};
use crate::registry::{EmbeddingRecord, EmbeddingStore, StoreError, StoreResult};
use crate::store::now_ms;

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
    let vectors =
        EmbeddingRecord::decode_vectors(&agent_id, dims, &blob).map_err(StoreError::Corrupt)?;
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
                let (dims, blob) = record.encode_vectors().map_err(StoreError::Corrupt)?;
                let updated_at = if record.updated_at > 0 {
                    record.updated_at
                } else {
                    now_ms()
                };
                stmt.execute(params![
                    record.agent_id,
                    record.model,
                    record.text_hash,
                    dims as i64,
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
