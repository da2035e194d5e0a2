//! The profile's tables: what they are, creating them (`bootstrap`) and
//! reporting what exists of them (`status`).

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use serde::Serialize;

use super::{built, DynamoStore, TTL_ATTRIBUTE};
use crate::registry::{StoreError, StoreResult};
use crate::store::aws::{classify, store_error};

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

impl DynamoStore {
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
                    let failure = classify(e);
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
                .map_err(|e| self.fail("turning on TTL", &spec.name, e))?;
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
            .map_err(|e| self.fail("reading TTL settings", table, e))?;
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
                    let failure = classify(e);
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
                    return Err(store_error(
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
}
