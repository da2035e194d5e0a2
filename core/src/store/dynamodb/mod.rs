//! DynamoDB backend for the agent, permission, counter and embedding stores:
//! the client, requests and transactions here; the tables (bootstrap,
//! status) in `tables.rs`, the attribute-value codec in `codec.rs`, and one
//! file per aggregate beside them.
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

mod agents;
mod codec;
mod counters;
mod embeddings;
mod permissions;
mod tables;

use std::time::Duration;

use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use self::codec::{n, num_attr, s, Item};
use super::aws::{classify, is_throttling, store_error, AwsConnection, Failure, ServiceError};
use crate::registry::{StoreError, StoreResult};

pub use self::codec::{attribute_to_json, json_to_attribute};
pub use self::tables::{TableSpec, TableState};

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

/// DynamoDB-backed stores of one AWS profile. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    conn: AwsConnection,
}

fn built<T>(what: &str, r: Result<T, BuildError>) -> StoreResult<T> {
    r.map_err(|e| StoreError::backend(format!("cannot build the {what} request"), e))
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

    /// Maps a failed call on `table` to a store error.
    fn fail<E, R>(&self, what: &str, table: &str, err: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
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
        store_error(&self.conn, what, failure)
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
            .map_err(|e| self.fail(what, table, e))?;
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
            let page = req.send().await.map_err(|e| self.fail(what, table, e))?;
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
            .map_err(|e| self.fail("reading the generation", table, e))?;
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
                        let message = c.message().unwrap_or_default().to_owned();
                        return Err(StoreError::backend(
                            format!("{what}: transaction cancelled ({})", codes.join(", ")),
                            ServiceError {
                                code: "TransactionCanceledException".into(),
                                message,
                                source: Box::new(err),
                            },
                        ));
                    }
                    codes.join(", ")
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    "TransactionInProgress".to_owned()
                }
                _ => return Err(self.fail(what, &self.conn.tables.agents, err)),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

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
