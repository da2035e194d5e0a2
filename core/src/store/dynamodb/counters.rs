//! DynamoDB rate-limit counters: one item per window, counted by one
//! conditional `UpdateItem` (see the [module documentation](super)), and the
//! [`CounterStore`] implementation.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::codec::{n, need_num, need_str, num_attr, s, Item};
use super::{DynamoStore, TTL_ATTRIBUTE};
use crate::registry::{
    CounterEntry, CounterKey, CounterOutcome, CounterStore, StoreError, StoreResult,
};
use crate::store::aws::classify;

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

#[async_trait]
impl CounterStore for DynamoStore {
    async fn try_increment(
        &self,
        key: &CounterKey,
        limit: u64,
        _window_start: u64,
        expires_at: u64,
    ) -> StoreResult<CounterOutcome> {
        // Expired windows are left to the table's TTL; the window's start is not needed.
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
                let failure = classify(e);
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
