//! DynamoDB permissions: one item per scope (its agent ids as a string
//! set), and the [`PermissionStore`] implementation.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::codec::{need_str, s, Item};
use super::{batches, built, Cancelled, DynamoStore, MAX_TRANSACTION_ITEMS};
use crate::registry::{Permission, PermissionStore, StoreError, StoreResult};
use crate::store::aws::classify;
use crate::store::check_permission;

fn read_permission(item: &Item) -> StoreResult<Option<Permission>> {
    let scope = need_str(item, "scope", "permission")?;
    match item.get("agents") {
        None => Ok(None),
        Some(AttributeValue::Ss(agents)) if !agents.is_empty() => Ok(Some(Permission {
            scope,
            agents: agents.iter().cloned().collect(),
        })),
        Some(AttributeValue::Ss(_)) => Ok(None),
        Some(other) => Err(StoreError::Corrupt(format!(
            "permission {scope}: agents is {other:?}, not a string set"
        ))),
    }
}

impl DynamoStore {
    async fn load_permission(&self, scope: &str) -> StoreResult<Option<Permission>> {
        let table = &self.conn.tables.permissions;
        self.get_item("reading a permission", table, "scope", scope)
            .await?
            .as_ref()
            .map(read_permission)
            .transpose()
            .map(Option::flatten)
    }

    fn permission_update(
        &self,
        scope: &str,
        op: &str,
        agents: &[String],
        condition: Option<&str>,
    ) -> StoreResult<TransactWriteItem> {
        let mut u = Update::builder()
            .table_name(&self.conn.tables.permissions)
            .key("scope", s(scope))
            .update_expression(format!("{op} agents :a"))
            .expression_attribute_values(":a", AttributeValue::Ss(agents.to_vec()));
        if let Some(c) = condition {
            u = u.condition_expression(c);
        }
        Ok(TransactWriteItem::builder()
            .update(built("permission", u.build())?)
            .build())
    }
}

fn dedup(agents: &[String]) -> Vec<String> {
    agents
        .iter()
        .cloned()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

#[async_trait]
impl PermissionStore for DynamoStore {
    async fn list(&self) -> StoreResult<Vec<Permission>> {
        let items = self
            .scan("listing permissions", &self.conn.tables.permissions, None)
            .await?;
        let mut out = Vec::new();
        for item in &items {
            if let Some(p) = read_permission(item)? {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.scope.cmp(&b.scope));
        Ok(out)
    }

    async fn grant(&self, scope: &str, agents: &[String]) -> StoreResult<Permission> {
        check_permission(scope, agents)?;
        let agents = dedup(agents);
        if agents.is_empty() {
            return Ok(self.load_permission(scope).await?.unwrap_or(Permission {
                scope: scope.to_owned(),
                agents: BTreeSet::new(),
            }));
        }
        let items = vec![
            self.permission_update(scope, "ADD", &agents, None)?,
            self.bump("permissions")?,
        ];
        if let Err(Cancelled::Conditions(codes)) = self.transact("granting", items).await? {
            return Err(StoreError::Unavailable(format!(
                "granting: unexpected condition failure ({})",
                codes.join(", ")
            )));
        }
        Ok(self.load_permission(scope).await?.unwrap_or(Permission {
            scope: scope.to_owned(),
            agents: agents.into_iter().collect(),
        }))
    }

    async fn revoke(&self, scope: &str, agents: &[String]) -> StoreResult<Option<Permission>> {
        let agents = dedup(agents);
        if agents.is_empty() {
            return match self.load_permission(scope).await? {
                None => Err(StoreError::NotFound(format!("scope {scope}"))),
                Some(p) => Ok(Some(p)),
            };
        }
        let items = vec![
            self.permission_update(scope, "DELETE", &agents, Some("attribute_exists(agents)"))?,
            self.bump("permissions")?,
        ];
        if let Err(Cancelled::Conditions(_)) = self.transact("revoking", items).await? {
            return Err(StoreError::NotFound(format!("scope {scope}")));
        }
        let left = self.load_permission(scope).await?;
        if left.is_none() {
            // DynamoDB drops a set attribute that became empty; drop the item
            // too, unless a grant slipped in meanwhile.
            let table = &self.conn.tables.permissions;
            let r = self
                .client()
                .delete_item()
                .table_name(table)
                .key("scope", s(scope))
                .condition_expression("attribute_not_exists(agents)")
                .send()
                .await;
            if let Err(e) = r {
                let failure = classify(e);
                if failure.code() != Some("ConditionalCheckFailedException") {
                    return Err(self.failure("removing an empty scope", table, failure));
                }
                return self.load_permission(scope).await;
            }
        }
        Ok(left)
    }

    async fn replace_all(&self, permissions: Vec<Permission>) -> StoreResult<()> {
        permissions
            .iter()
            .try_for_each(|p| check_permission(&p.scope, &p.agents))?;
        let table = self.conn.tables.permissions.clone();
        let current: BTreeMap<String, BTreeSet<String>> = PermissionStore::list(self)
            .await?
            .into_iter()
            .map(|p| (p.scope, p.agents))
            .collect();
        let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in permissions {
            wanted.entry(p.scope).or_default().extend(p.agents);
        }
        wanted.retain(|_, agents| !agents.is_empty());
        let mut writes: Vec<(usize, TransactWriteItem)> = Vec::new();
        for scope in current.keys().filter(|s| !wanted.contains_key(*s)) {
            let delete = built(
                "permission",
                Delete::builder()
                    .table_name(&table)
                    .key("scope", s(scope))
                    .build(),
            )?;
            writes.push((
                scope.len() + 16,
                TransactWriteItem::builder().delete(delete).build(),
            ));
        }
        for (scope, agents) in &wanted {
            if current.get(scope) == Some(agents) {
                continue;
            }
            let put = built(
                "permission",
                Put::builder()
                    .table_name(&table)
                    .item("scope", s(scope))
                    .item(
                        "agents",
                        AttributeValue::Ss(agents.iter().cloned().collect()),
                    )
                    .build(),
            )?;
            let size = scope.len() + agents.iter().map(|a| a.len() + 3).sum::<usize>() + 16;
            writes.push((size, TransactWriteItem::builder().put(put).build()));
        }
        let batches = if writes.is_empty() {
            vec![Vec::new()]
        } else {
            batches(writes, MAX_TRANSACTION_ITEMS - 1)
        };
        for mut batch in batches {
            batch.push(self.bump("permissions")?);
            if let Err(Cancelled::Conditions(codes)) =
                self.transact("replacing permissions", batch).await?
            {
                return Err(StoreError::Unavailable(format!(
                    "replacing permissions: unexpected condition failure ({})",
                    codes.join(", ")
                )));
            }
        }
        Ok(())
    }

    async fn generation(&self) -> StoreResult<u64> {
        self.generation_of("permissions").await
    }
}
