//! SQLite issuer clients: one row per client (the record as JSON), and the
//! [`ClientStore`] implementation.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{corrupt, map_err, SqliteStore};
use crate::registry::{ClientRecord, ClientStore, StoreError, StoreResult};
use crate::store::check_client;

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
        check_client(&record)?;
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
