//! SQLite secrets: one row per name, and the [`SecretStore`] implementation.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{map_err, SqliteStore};
use crate::registry::{Secret, SecretStore, StoreError, StoreResult};

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
