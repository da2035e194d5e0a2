//! DynamoDB embeddings: one item per agent, its vectors as one binary
//! attribute (see [`EmbeddingRecord::encode_vectors`]), and the
//! [`EmbeddingStore`] implementation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::codec::{approx_size, n, need_num, need_str, num_attr, s, Item};
use super::{batches, built, Cancelled, DynamoStore, MAX_TRANSACTION_ITEMS};
use crate::registry::{EmbeddingRecord, EmbeddingStore, StoreError, StoreResult};
use crate::store::aws::classify;

fn embedding_item(record: &EmbeddingRecord) -> StoreResult<Item> {
    let (dims, blob) = record.encode_vectors().map_err(StoreError::Corrupt)?;
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
        vectors: EmbeddingRecord::decode_vectors(&agent_id, dims, blob)
            .map_err(StoreError::Corrupt)?,
        model: need_str(item, "model", &what)?,
        text_hash: need_str(item, "text_hash", &what)?,
        updated_at: num_attr(item, "updated_at").unwrap_or(0),
        agent_id,
    })
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
                let failure = classify(e);
                if failure.code() == Some("ConditionalCheckFailedException") {
                    Err(StoreError::NotFound(format!("embedding of {agent_id}")))
                } else {
                    Err(self.failure("deleting an embedding", table, failure))
                }
            }
        }
    }
}
