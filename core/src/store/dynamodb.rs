//! DynamoDB backend for the agent, permission, counter and embedding stores.
//!
//! Four tables, each with one string partition key and no sort key (names are
//! the profile's `table_prefix` followed by the role):
//!
//! | table | key | attributes |
//! | --- | --- | --- |
//! | `agents` | `id` | `name`, `description`, `url`, `auth` (map: `type` and its fields), `rate_limit` (absent: gateway default), `enabled`, `card` (map, absent when none), `updated_at` (ms), `version` |
//! | `permissions` | `scope` | `agents` (string set of agent ids or `*`) |
//! | `counters` | `key` (`client#agent#window`) | `client_id`, `agent_id`, `window`, `count`, `expires_at` (TTL attribute, Unix seconds) |
//! | `embeddings` | `agent_id` | `model`, `text_hash`, `dimensions`, `vectors` (binary: little-endian `f32`s back to back), `updated_at` |
//!
//! The agents table also holds one bookkeeping item, id `#generation`, with
//! numbers `agents` and `permissions` that every edit raises by one in the
//! same transaction as the edit (agent ids can never start with `#`). Caches
//! on every instance poll that one item to learn that something changed.
//!
//! Counters are one `UpdateItem` with `ADD` under the condition
//! `attribute_not_exists(count) OR count < limit`: a request over the limit
//! changes nothing, so any number of instances admit exactly `limit` per
//! window. Windows carry a TTL; since DynamoDB deletes expired items late (and
//! some emulators never), readers ignore windows whose `expires_at` passed.
//!
//! Multi-item writes (`put_many`, `replace_all`) use `TransactWriteItems` in
//! batches of at most 100 items and 4 MB: each batch lands whole or not at
//! all, but a large write is not all-or-nothing across batches.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    TransactWriteItem, Update,
};
use serde::Serialize;
use serde_json::Value;

use super::aws::{classify, is_throttling, unavailable, AwsConnection, Failure};
use crate::registry::{
    AgentRecord, AgentStore, CounterEntry, CounterKey, CounterOutcome, CounterStore,
    EmbeddingRecord, EmbeddingStore, Permission, PermissionStore, StoreError, StoreResult,
};

type Item = HashMap<String, AttributeValue>;
/// A scan filter: expression, attribute names, attribute values.
type ScanFilter<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    Vec<(&'a str, AttributeValue)>,
);

/// Key of the bookkeeping item in the agents table.
pub const GENERATION_ITEM: &str = "#generation";
/// Most items in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Largest total size of one `TransactWriteItems`, with room to spare.
const MAX_TRANSACTION_BYTES: usize = 3_500_000;
/// Attempts when a transaction collides with a concurrent one.
const TRANSACTION_ATTEMPTS: u32 = 6;
/// Attribute DynamoDB's TTL deletes counter windows by.
pub const TTL_ATTRIBUTE: &str = "expires_at";

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

/// The four tables, their keys and what they are for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSpec {
    /// What the table holds: `agents`, `permissions`, `counters`, `embeddings`.
    pub role: &'static str,
    /// Its name in this profile.
    pub name: String,
    /// Partition key (a string).
    pub key: &'static str,
    /// The TTL attribute, for tables with one.
    pub ttl: Option<&'static str>,
}

/// One table as found in the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableState {
    /// The table.
    #[serde(flatten)]
    pub spec: TableSpec,
    /// `ACTIVE`, `CREATING`, … or `MISSING`.
    pub status: String,
    /// Approximate item count as DynamoDB reports it (refreshed every few hours on AWS).
    pub items: Option<i64>,
    /// TTL status (`ENABLED`, `DISABLED`, …) for tables with a TTL attribute.
    pub ttl_status: Option<String>,
    /// Whether `bootstrap` created it (or enabled its TTL) just now.
    pub created: bool,
    /// Something wrong with it (a different key schema), in words.
    pub problem: Option<String>,
}

/// DynamoDB-backed stores of one AWS profile. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    conn: AwsConnection,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn built<T>(what: &str, r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> StoreResult<T> {
    r.map_err(|e| StoreError::Unavailable(format!("cannot build the {what} request: {e}")))
}

/// JSON → DynamoDB attribute value (maps, lists, strings, numbers, booleans, null).
pub fn json_to_attribute(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(x) => AttributeValue::N(x.to_string()),
        Value::String(x) => AttributeValue::S(x.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(json_to_attribute).collect()),
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                .collect(),
        ),
    }
}

fn number_to_json(text: &str) -> Result<Value, String> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(Value::from(u));
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("{text:?} is not a number"))
}

/// DynamoDB attribute value → JSON (string and number sets become arrays).
pub fn attribute_to_json(v: &AttributeValue) -> Result<Value, String> {
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(x) => number_to_json(x)?,
        AttributeValue::S(x) => Value::String(x.clone()),
        AttributeValue::L(a) => {
            Value::Array(a.iter().map(attribute_to_json).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        AttributeValue::Ss(x) => Value::Array(x.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(x) => Value::Array(
            x.iter()
                .map(|t| number_to_json(t))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unexpected attribute {other:?}")),
    })
}

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

fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn num_attr(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn need_str(item: &Item, name: &str, what: &str) -> StoreResult<String> {
    str_attr(item, name)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: no string attribute {name}")))
}

fn need_num(item: &Item, name: &str, what: &str) -> StoreResult<i64> {
    num_attr(item, name)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: no number attribute {name}")))
}

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

fn read_counter(item: &Item) -> StoreResult<CounterEntry> {
    let what = "counter";
    Ok(CounterEntry {
        key: CounterKey {
            client_id: need_str(item, "client_id", what)?,
            agent_id: need_str(item, "agent_id", what)?,
            window: need_num(item, "window", what)? as u64,
        },
        count: need_num(item, "count", what)? as u64,
        expires_at: need_num(item, TTL_ATTRIBUTE, what)? as u64,
    })
}

fn encode_vectors(record: &EmbeddingRecord) -> StoreResult<(usize, Vec<u8>)> {
    let dims = record.vectors.first().map_or(0, Vec::len);
    if record.vectors.iter().any(|v| v.len() != dims) {
        return Err(StoreError::Corrupt(format!(
            "embedding of {}: vectors of different lengths",
            record.agent_id
        )));
    }
    let mut blob = Vec::with_capacity(record.vectors.len() * dims * 4);
    for v in &record.vectors {
        for x in v {
            blob.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok((dims, blob))
}

fn decode_vectors(agent_id: &str, dims: i64, blob: &[u8]) -> StoreResult<Vec<Vec<f32>>> {
    let bad = || {
        StoreError::Corrupt(format!(
            "embedding of {agent_id}: {} bytes for {dims} dimensions",
            blob.len()
        ))
    };
    let dims = usize::try_from(dims).map_err(|_| bad())?;
    if dims == 0 {
        return if blob.is_empty() {
            Ok(Vec::new())
        } else {
            Err(bad())
        };
    }
    if !blob.len().is_multiple_of(dims * 4) {
        return Err(bad());
    }
    Ok(blob
        .chunks_exact(dims * 4)
        .map(|v| {
            v.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

fn embedding_item(record: &EmbeddingRecord) -> StoreResult<Item> {
    let (dims, blob) = encode_vectors(record)?;
    let mut item = Item::new();
    item.insert("agent_id".into(), s(&record.agent_id));
    item.insert("model".into(), s(&record.model));
    item.insert("text_hash".into(), s(&record.text_hash));
    item.insert("dimensions".into(), n(dims));
    item.insert("updated_at".into(), n(record.updated_at));
    if !blob.is_empty() {
        item.insert(
            "vectors".into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(blob)),
        );
    }
    Ok(item)
}

fn read_embedding(item: &Item) -> StoreResult<EmbeddingRecord> {
    let agent_id = need_str(item, "agent_id", "embedding")?;
    let what = format!("embedding of {agent_id}");
    let dims = need_num(item, "dimensions", &what)?;
    let blob: &[u8] = match item.get("vectors") {
        None => &[],
        Some(AttributeValue::B(b)) => b.as_ref(),
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "{what}: vectors is {other:?}, not binary"
            )))
        }
    };
    Ok(EmbeddingRecord {
        vectors: decode_vectors(&agent_id, dims, blob)?,
        model: need_str(item, "model", &what)?,
        text_hash: need_str(item, "text_hash", &what)?,
        updated_at: num_attr(item, "updated_at").unwrap_or(0),
        agent_id,
    })
}

/// Rough size of an item on the wire, for batching under the request limit.
fn approx_size(item: &Item) -> usize {
    fn size(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(x) | AttributeValue::N(x) => x.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::L(l) => l.iter().map(size).sum::<usize>() + 3 * l.len(),
            AttributeValue::M(m) => m.iter().map(|(k, v)| k.len() + size(v) + 3).sum(),
            AttributeValue::Ss(x) | AttributeValue::Ns(x) => x.iter().map(|e| e.len() + 3).sum(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + size(v) + 3).sum()
}

/// Splits writes into transactions of at most `per_batch` items and
/// [`MAX_TRANSACTION_BYTES`] bytes.
fn batches<T>(writes: Vec<(usize, T)>, per_batch: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut bytes = 0;
    for (size, w) in writes {
        if !current.is_empty()
            && (current.len() >= per_batch || bytes + size > MAX_TRANSACTION_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(w);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Why a transaction did not land.
enum Cancelled {
    /// Conditions failed: the cancellation code of each item, in order.
    Conditions(Vec<String>),
}

impl DynamoStore {
    /// Stores over the tables of `conn`'s profile.
    pub fn new(conn: AwsConnection) -> Self {
        DynamoStore { conn }
    }

    /// The connection.
    pub fn connection(&self) -> &AwsConnection {
        &self.conn
    }

    fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.conn.dynamodb
    }

    /// The tables of this profile.
    pub fn tables(&self) -> Vec<TableSpec> {
        let t = &self.conn.tables;
        vec![
            TableSpec {
                role: "agents",
                name: t.agents.clone(),
                key: "id",
                ttl: None,
            },
            TableSpec {
                role: "permissions",
                name: t.permissions.clone(),
                key: "scope",
                ttl: None,
            },
            TableSpec {
                role: "counters",
                name: t.counters.clone(),
                key: "key",
                ttl: Some(TTL_ATTRIBUTE),
            },
            TableSpec {
                role: "embeddings",
                name: t.embeddings.clone(),
                key: "agent_id",
                ttl: None,
            },
        ]
    }

    /// Maps a failed call on `table` to a store error.
    fn fail<E, R>(
        &self,
        what: &str,
        table: &str,
        err: &aws_sdk_dynamodb::error::SdkError<E, R>,
    ) -> StoreError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: std::fmt::Debug,
    {
        let failure = classify(err);
        self.failure(what, table, failure)
    }

    fn failure(&self, what: &str, table: &str, failure: Failure) -> StoreError {
        if failure.code() == Some("ResourceNotFoundException") {
            return StoreError::Unavailable(format!(
                "{what}: the DynamoDB table {table} does not exist in {}; {}",
                self.conn.target(),
                self.conn.bootstrap_hint()
            ));
        }
        unavailable(&self.conn, what, failure)
    }

    async fn get_item(
        &self,
        what: &str,
        table: &str,
        key: &str,
        id: &str,
    ) -> StoreResult<Option<Item>> {
        let out = self
            .client()
            .get_item()
            .table_name(table)
            .key(key, s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.fail(what, table, &e))?;
        Ok(out.item)
    }

    /// Every item of a table (consistent reads, all pages), optionally filtered.
    async fn scan(
        &self,
        what: &str,
        table: &str,
        filter: Option<ScanFilter<'_>>,
    ) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client()
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some((expr, names, values)) = &filter {
                req = req.filter_expression(*expr);
                for (k, v) in names.iter() {
                    req = req.expression_attribute_names(*k, *v);
                }
                for (k, v) in values {
                    req = req.expression_attribute_values(*k, v.clone());
                }
            }
            let page = req.send().await.map_err(|e| self.fail(what, table, &e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The update that raises one generation number by one.
    fn bump(&self, which: &str) -> StoreResult<TransactWriteItem> {
        let update = built(
            "generation",
            Update::builder()
                .table_name(&self.conn.tables.agents)
                .key("id", s(GENERATION_ITEM))
                .update_expression("ADD #g :one")
                .expression_attribute_names("#g", which)
                .expression_attribute_values(":one", n(1))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn generation_of(&self, which: &str) -> StoreResult<u64> {
        let table = &self.conn.tables.agents;
        let out = self
            .client()
            .get_item()
            .table_name(table)
            .key("id", s(GENERATION_ITEM))
            .consistent_read(true)
            .projection_expression("#g")
            .expression_attribute_names("#g", which)
            .send()
            .await
            .map_err(|e| self.fail("reading the generation", table, &e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| num_attr(i, which))
            .unwrap_or(0) as u64)
    }

    /// Runs one transaction. Collisions with concurrent transactions (and
    /// throttling inside one) are retried with backoff; failed conditions are
    /// returned as `Err(Cancelled)`.
    async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> StoreResult<Result<(), Cancelled>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = uuid::Uuid::new_v4().to_string();
            let result = self
                .client()
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(token)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let retry = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let codes: Vec<String> = c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect();
                    if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                        return Ok(Err(Cancelled::Conditions(codes)));
                    }
                    let transient = codes.iter().any(|c| {
                        c == "TransactionConflict" || c == "ThrottlingError" || is_throttling(c)
                    });
                    if !transient {
                        let detail = c.message().unwrap_or_default().to_owned();
                        return Err(StoreError::Unavailable(format!(
                            "{what}: transaction cancelled ({}): {detail}",
                            codes.join(", ")
                        )));
                    }
                    codes.join(", ")
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    "TransactionInProgress".to_owned()
                }
                _ => return Err(self.fail(what, &self.conn.tables.agents, &err)),
            };
            if attempt >= TRANSACTION_ATTEMPTS {
                return Err(StoreError::Unavailable(format!(
                    "{what}: the transaction kept colliding with others ({retry}); try again"
                )));
            }
            let base = 20u64 << attempt.min(6);
            let jitter = rand::random::<u64>() % base.max(1);
            tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
        }
    }

    /// Creates the tables that are missing (on-demand billing), waits until
    /// every table is active, and turns on TTL for the counters. Safe to run
    /// any number of times.
    pub async fn bootstrap(&self, wait: Duration) -> StoreResult<Vec<TableState>> {
        let mut created = BTreeSet::new();
        for spec in self.tables() {
            let req = self
                .client()
                .create_table()
                .table_name(&spec.name)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(built(
                    "table",
                    AttributeDefinition::builder()
                        .attribute_name(spec.key)
                        .attribute_type(ScalarAttributeType::S)
                        .build(),
                )?)
                .key_schema(built(
                    "table",
                    KeySchemaElement::builder()
                        .attribute_name(spec.key)
                        .key_type(KeyType::Hash)
                        .build(),
                )?);
            match req.send().await {
                Ok(_) => {
                    created.insert(spec.name.clone());
                }
                Err(e) => {
                    let failure = classify(&e);
                    if failure.code() != Some("ResourceInUseException") {
                        return Err(self.failure(
                            &format!("creating table {}", spec.name),
                            &spec.name,
                            failure,
                        ));
                    }
                }
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let states = self.status().await?;
            let pending: Vec<&TableState> =
                states.iter().filter(|t| t.status != "ACTIVE").collect();
            if pending.is_empty() {
                break;
            }
            if let Some(missing) = pending.iter().find(|t| t.status == "MISSING") {
                return Err(StoreError::Unavailable(format!(
                    "table {} disappeared while it was being created",
                    missing.spec.name
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<String> = pending
                    .iter()
                    .map(|t| format!("{} ({})", t.spec.name, t.status))
                    .collect();
                return Err(StoreError::Unavailable(format!(
                    "tables not active after {} s: {}",
                    wait.as_secs(),
                    names.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut ttl_enabled = BTreeSet::new();
        for spec in self.tables() {
            let Some(attr) = spec.ttl else { continue };
            let (status, current) = self.ttl_of(&spec.name).await?;
            let on = matches!(
                status,
                Some(TimeToLiveStatus::Enabled) | Some(TimeToLiveStatus::Enabling)
            );
            if on && current.as_deref() == Some(attr) {
                continue;
            }
            if on {
                return Err(StoreError::Unavailable(format!(
                    "table {} has TTL on attribute {:?}, not {attr:?}; turn it off first",
                    spec.name,
                    current.unwrap_or_default()
                )));
            }
            self.client()
                .update_time_to_live()
                .table_name(&spec.name)
                .time_to_live_specification(built(
                    "TTL",
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(attr)
                        .build(),
                )?)
                .send()
                .await
                .map_err(|e| self.fail("turning on TTL", &spec.name, &e))?;
            ttl_enabled.insert(spec.name.clone());
        }
        let mut states = self.status().await?;
        for t in &mut states {
            t.created = created.contains(&t.spec.name) || ttl_enabled.contains(&t.spec.name);
        }
        if let Some(bad) = states.iter().find_map(|t| t.problem.clone()) {
            return Err(StoreError::Unavailable(bad));
        }
        Ok(states)
    }

    async fn ttl_of(&self, table: &str) -> StoreResult<(Option<TimeToLiveStatus>, Option<String>)> {
        let out = self
            .client()
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| self.fail("reading TTL settings", table, &e))?;
        let d = out.time_to_live_description;
        Ok((
            d.as_ref().and_then(|d| d.time_to_live_status().cloned()),
            d.as_ref()
                .and_then(|d| d.attribute_name())
                .map(str::to_owned),
        ))
    }

    /// What exists of this profile's tables.
    pub async fn status(&self) -> StoreResult<Vec<TableState>> {
        let mut out = Vec::new();
        for spec in self.tables() {
            let described = self
                .client()
                .describe_table()
                .table_name(&spec.name)
                .send()
                .await;
            let table = match described {
                Ok(o) => o.table,
                Err(e) => {
                    let failure = classify(&e);
                    if failure.code() == Some("ResourceNotFoundException") {
                        out.push(TableState {
                            spec,
                            status: "MISSING".into(),
                            items: None,
                            ttl_status: None,
                            created: false,
                            problem: None,
                        });
                        continue;
                    }
                    return Err(unavailable(
                        &self.conn,
                        &format!("describing table {}", spec.name),
                        failure,
                    ));
                }
            };
            let status = table
                .as_ref()
                .and_then(|t| t.table_status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| TableStatus::Active.as_str().to_owned());
            let keys: Vec<String> = table
                .as_ref()
                .map(|t| {
                    t.key_schema()
                        .iter()
                        .map(|k| format!("{} ({})", k.attribute_name(), k.key_type().as_str()))
                        .collect()
                })
                .unwrap_or_default();
            let expected = format!("{} (HASH)", spec.key);
            let problem = (keys != [expected.clone()]).then(|| {
                format!(
                    "table {} has key [{}], but Switchboard needs [{expected}] with type S",
                    spec.name,
                    keys.join(", ")
                )
            });
            let ttl_status = match spec.ttl {
                Some(attr) => {
                    let (st, current) = self.ttl_of(&spec.name).await?;
                    Some(match (st, current) {
                        (Some(st), Some(a)) if a == attr => st.as_str().to_owned(),
                        (Some(st), Some(a)) => format!("{} on {a:?}", st.as_str()),
                        (Some(st), None) => st.as_str().to_owned(),
                        (None, _) => "DISABLED".to_owned(),
                    })
                }
                None => None,
            };
            out.push(TableState {
                items: table.as_ref().and_then(|t| t.item_count()),
                spec,
                status,
                ttl_status,
                created: false,
                problem,
            });
        }
        Ok(out)
    }

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
                let failure = classify(&e);
                if failure.code() != Some("ConditionalCheckFailedException") {
                    return Err(self.failure("removing an empty scope", table, failure));
                }
                return self.load_permission(scope).await;
            }
        }
        Ok(left)
    }

    async fn replace_all(&self, permissions: Vec<Permission>) -> StoreResult<()> {
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

#[async_trait]
impl CounterStore for DynamoStore {
    async fn try_increment(
        &self,
        key: &CounterKey,
        limit: u64,
        expires_at: u64,
    ) -> StoreResult<CounterOutcome> {
        if limit == 0 {
            return Ok(CounterOutcome::Limited(0));
        }
        let table = &self.conn.tables.counters;
        let result = self
            .client()
            .update_item()
            .table_name(table)
            .key("key", s(key.storage_key()))
            .update_expression("SET client_id = :c, agent_id = :a, #w = :w, #e = :e ADD #n :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", "count")
            .expression_attribute_names("#w", "window")
            .expression_attribute_names("#e", TTL_ATTRIBUTE)
            .expression_attribute_values(":c", s(&key.client_id))
            .expression_attribute_values(":a", s(&key.agent_id))
            .expression_attribute_values(":w", n(key.window))
            .expression_attribute_values(":e", n(expires_at))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let count = out
                    .attributes
                    .as_ref()
                    .and_then(|a| num_attr(a, "count"))
                    .ok_or_else(|| {
                        StoreError::Corrupt("counter update returned no count".into())
                    })?;
                Ok(CounterOutcome::Allowed(count as u64))
            }
            Err(e) => {
                let failure = classify(&e);
                if failure.code() == Some("ConditionalCheckFailedException") {
                    Ok(CounterOutcome::Limited(limit))
                } else {
                    Err(self.failure("counting a request", table, failure))
                }
            }
        }
    }

    async fn list(&self, now: u64) -> StoreResult<Vec<CounterEntry>> {
        let items = self
            .scan(
                "listing counters",
                &self.conn.tables.counters,
                Some((
                    "#e > :now",
                    &[("#e", TTL_ATTRIBUTE)],
                    vec![(":now", n(now))],
                )),
            )
            .await?;
        let mut out = items
            .iter()
            .map(read_counter)
            .collect::<StoreResult<Vec<_>>>()?;
        // The filter ran on the server; check again in case it was ignored.
        out.retain(|e| e.expires_at > now);
        out.sort_by(|a, b| {
            (&a.key.client_id, &a.key.agent_id, a.key.window).cmp(&(
                &b.key.client_id,
                &b.key.agent_id,
                b.key.window,
            ))
        });
        Ok(out)
    }
}

#[async_trait]
impl EmbeddingStore for DynamoStore {
    async fn get(&self, agent_id: &str) -> StoreResult<Option<EmbeddingRecord>> {
        let table = &self.conn.tables.embeddings;
        self.get_item("reading an embedding", table, "agent_id", agent_id)
            .await?
            .as_ref()
            .map(read_embedding)
            .transpose()
    }

    async fn list(&self) -> StoreResult<Vec<EmbeddingRecord>> {
        let items = self
            .scan("listing embeddings", &self.conn.tables.embeddings, None)
            .await?;
        let mut out = items
            .iter()
            .map(read_embedding)
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Ok(out)
    }

    async fn put_many(&self, records: Vec<EmbeddingRecord>) -> StoreResult<()> {
        let mut by_id: BTreeMap<String, Item> = BTreeMap::new();
        // Every record is checked before anything is written.
        for r in &records {
            by_id.insert(r.agent_id.clone(), embedding_item(r)?);
        }
        let table = self.conn.tables.embeddings.clone();
        let writes = by_id
            .into_values()
            .map(|item| {
                let size = approx_size(&item);
                let put = built(
                    "embedding",
                    Put::builder()
                        .table_name(&table)
                        .set_item(Some(item))
                        .build(),
                )?;
                Ok((size, TransactWriteItem::builder().put(put).build()))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        for batch in batches(writes, MAX_TRANSACTION_ITEMS) {
            if let Err(Cancelled::Conditions(codes)) =
                self.transact("writing embeddings", batch).await?
            {
                return Err(StoreError::Unavailable(format!(
                    "writing embeddings: unexpected condition failure ({})",
                    codes.join(", ")
                )));
            }
        }
        Ok(())
    }

    async fn delete(&self, agent_id: &str) -> StoreResult<()> {
        let table = &self.conn.tables.embeddings;
        let r = self
            .client()
            .delete_item()
            .table_name(table)
            .key("agent_id", s(agent_id))
            .condition_expression("attribute_exists(agent_id)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = classify(&e);
                if failure.code() == Some("ConditionalCheckFailedException") {
                    Err(StoreError::NotFound(format!("embedding of {agent_id}")))
                } else {
                    Err(self.failure("deleting an embedding", table, failure))
                }
            }
        }
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

    #[test]
    fn batching_respects_count_and_size() {
        let writes: Vec<(usize, u32)> = (0..250).map(|i| (10, i)).collect();
        let b = batches(writes, 99);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![99, 99, 52]);
        let big: Vec<(usize, u32)> = (0..5).map(|i| (1_500_000, i)).collect();
        let b = batches(big, 99);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
    }
}
