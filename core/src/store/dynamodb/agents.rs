//! DynamoDB agents: one item per agent (its fields as attributes, see the
//! [module documentation](super)), and the [`AgentStore`] implementation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use serde_json::Value;

use super::codec::{approx_size, attribute_to_json, json_to_attribute, n, s, str_attr, Item};
use super::{batches, built, Cancelled, DynamoStore, MAX_TRANSACTION_ITEMS};
use crate::registry::{AgentRecord, AgentStore, StoreError, StoreResult};
use crate::store::{check_agent, now_ms};

/// Every attribute an agent item may have besides its key and version. A
/// replacing write sets those present and removes the others.
const AGENT_ATTRIBUTES: [&str; 8] = [
    "name",
    "description",
    "url",
    "auth",
    "rate_limit",
    "enabled",
    "card",
    "updated_at",
];

fn agent_item(record: &AgentRecord) -> StoreResult<Item> {
    let value = serde_json::to_value(record)
        .map_err(|e| StoreError::Corrupt(format!("agent {}: {e}", record.id)))?;
    let Value::Object(map) = value else {
        return Err(StoreError::Corrupt(format!(
            "agent {} is not an object",
            record.id
        )));
    };
    Ok(map
        .iter()
        .map(|(k, v)| (k.clone(), json_to_attribute(v)))
        .collect())
}

fn read_agent(item: &Item) -> StoreResult<AgentRecord> {
    let id = str_attr(item, "id").unwrap_or("?").to_owned();
    let map = item
        .iter()
        .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
        .collect::<Result<serde_json::Map<String, Value>, String>>()
        .map_err(|e| StoreError::Corrupt(format!("agent {id}: {e}")))?;
    serde_json::from_value(Value::Object(map))
        .map_err(|e| StoreError::Corrupt(format!("agent {id}: {e}")))
}

impl DynamoStore {
    fn reserved(id: &str) -> bool {
        id.starts_with('#')
    }

    /// The write that replaces an agent regardless of its version.
    fn replace_agent(
        &self,
        record: &AgentRecord,
        now: i64,
    ) -> StoreResult<(usize, TransactWriteItem)> {
        let mut record = record.clone();
        record.updated_at = now;
        let item = agent_item(&record)?;
        let size = approx_size(&item);
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.conn.tables.agents)
            .key("id", s(&record.id))
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":one", n(1));
        for (i, attr) in AGENT_ATTRIBUTES.iter().enumerate() {
            let name = format!("#a{i}");
            update = update.expression_attribute_names(&name, *attr);
            match item.get(*attr) {
                Some(v) => {
                    let value = format!(":v{i}");
                    sets.push(format!("{name} = {value}"));
                    update = update.expression_attribute_values(value, v.clone());
                }
                None => removes.push(name),
            }
        }
        let mut expr = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        expr.push_str(" ADD #version :one");
        let update = built("agent", update.update_expression(expr).build())?;
        Ok((size, TransactWriteItem::builder().update(update).build()))
    }
}

#[async_trait]
impl AgentStore for DynamoStore {
    async fn get(&self, id: &str) -> StoreResult<Option<AgentRecord>> {
        if Self::reserved(id) {
            return Ok(None);
        }
        let table = &self.conn.tables.agents;
        self.get_item("reading an agent", table, "id", id)
            .await?
            .as_ref()
            .map(read_agent)
            .transpose()
    }

    async fn list(&self) -> StoreResult<Vec<AgentRecord>> {
        let items = self
            .scan("listing agents", &self.conn.tables.agents, None)
            .await?;
        let mut out = items
            .iter()
            .filter(|i| !str_attr(i, "id").is_some_and(Self::reserved))
            .map(read_agent)
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn create(&self, mut record: AgentRecord) -> StoreResult<AgentRecord> {
        if Self::reserved(&record.id) {
            return Err(StoreError::Conflict(format!(
                "{} is reserved and cannot be an agent id",
                record.id
            )));
        }
        check_agent(&record)?;
        record.version = 1;
        record.updated_at = now_ms();
        let put = built(
            "agent",
            Put::builder()
                .table_name(&self.conn.tables.agents)
                .set_item(Some(agent_item(&record)?))
                .condition_expression("attribute_not_exists(id)")
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.bump("agents")?,
        ];
        match self.transact("creating an agent", items).await? {
            Ok(()) => Ok(record),
            Err(Cancelled::Conditions(_)) => Err(StoreError::Conflict(format!(
                "agent {} already exists",
                record.id
            ))),
        }
    }

    async fn update(&self, mut record: AgentRecord) -> StoreResult<AgentRecord> {
        if Self::reserved(&record.id) {
            return Err(StoreError::NotFound(format!("agent {}", record.id)));
        }
        check_agent(&record)?;
        let expected = record.version;
        record.version = expected + 1;
        record.updated_at = now_ms();
        let put = built(
            "agent",
            Put::builder()
                .table_name(&self.conn.tables.agents)
                .set_item(Some(agent_item(&record)?))
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(expected))
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.bump("agents")?,
        ];
        match self.transact("updating an agent", items).await? {
            Ok(()) => Ok(record),
            Err(Cancelled::Conditions(_)) => match AgentStore::get(self, &record.id).await? {
                None => Err(StoreError::NotFound(format!("agent {}", record.id))),
                Some(stored) => Err(StoreError::Conflict(format!(
                    "agent {} changed meanwhile (version {}, edit based on {expected})",
                    record.id, stored.version
                ))),
            },
        }
    }

    async fn put_many(&self, records: Vec<AgentRecord>) -> StoreResult<()> {
        // One write per id (the last one wins), as a transaction may touch an item once.
        let mut by_id: BTreeMap<String, AgentRecord> = BTreeMap::new();
        for r in records {
            if Self::reserved(&r.id) {
                return Err(StoreError::Conflict(format!(
                    "{} is reserved and cannot be an agent id",
                    r.id
                )));
            }
            check_agent(&r)?;
            by_id.insert(r.id.clone(), r);
        }
        if by_id.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let writes = by_id
            .values()
            .map(|r| self.replace_agent(r, now))
            .collect::<StoreResult<Vec<_>>>()?;
        for mut batch in batches(writes, MAX_TRANSACTION_ITEMS - 1) {
            batch.push(self.bump("agents")?);
            if let Err(Cancelled::Conditions(codes)) =
                self.transact("writing agents", batch).await?
            {
                return Err(StoreError::Unavailable(format!(
                    "writing agents: unexpected condition failure ({})",
                    codes.join(", ")
                )));
            }
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> StoreResult<()> {
        if Self::reserved(id) {
            return Err(StoreError::NotFound(format!("agent {id}")));
        }
        let delete = built(
            "agent",
            Delete::builder()
                .table_name(&self.conn.tables.agents)
                .key("id", s(id))
                .condition_expression("attribute_exists(id)")
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.bump("agents")?,
        ];
        match self.transact("deleting an agent", items).await? {
            Ok(()) => Ok(()),
            Err(Cancelled::Conditions(_)) => Err(StoreError::NotFound(format!("agent {id}"))),
        }
    }

    async fn generation(&self) -> StoreResult<u64> {
        self.generation_of("agents").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::BackendAuth;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn agent_attributes_cover_the_record() {
        // A record with every optional field set serializes to exactly the
        // key, the version and AGENT_ATTRIBUTES: a new field must be added there.
        let mut r = AgentRecord::new("a", "http://x");
        r.rate_limit = Some(5);
        r.card = Some(json!({"name": "a"}));
        let item = agent_item(&r).unwrap();
        let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want: Vec<&str> = AGENT_ATTRIBUTES.to_vec();
        want.extend(["id", "version"]);
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn agents_round_trip_through_attributes() {
        let mut r = AgentRecord::new("a", "http://x");
        r.name = String::new();
        r.auth = BackendAuth::OAuth2 {
            token_url: "http://t".into(),
            client_id: "c".into(),
            secret: "s".into(),
            scopes: vec![],
        };
        r.card =
            Some(json!({"n": 1, "f": 1.5, "neg": -3, "l": [true, null, "x"], "big": u64::MAX}));
        r.version = 7;
        r.updated_at = 1_700_000_000_123;
        assert_eq!(read_agent(&agent_item(&r).unwrap()).unwrap(), r);
    }
}
