//! SQLite permissions: one row per scope (its agent ids as a JSON array),
//! and the [`PermissionStore`] implementation.

use std::collections::BTreeSet;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{bump, corrupt, generation, map_err, SqliteStore};
use crate::registry::{Permission, PermissionStore, StoreError, StoreResult};
use crate::store::check_permission;

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
        check_permission(scope, agents)?;
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
        permissions
            .iter()
            .try_for_each(|p| check_permission(&p.scope, &p.agents))?;
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
