//! Store backends. Each implements the traits in [`crate::registry::store`],
//! and each refuses to write a record the registry's validators refuse
//! ([`StoreError::Invalid`]), with the checks below.

pub mod aws;
pub mod dynamodb;
pub mod secretsmanager;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use crate::profile::{Profile, ProfileKind};
use crate::registry::validate::{agent_problems, validate_client, validate_permission};
use crate::registry::{
    AgentRecord, AgentStore, ClientRecord, ClientStore, CounterStore, EmbeddingStore,
    PermissionStore, SecretStore, StoreError, StoreResult,
};

/// Every store the gateway and the console use, chosen once at start-up.
#[derive(Clone)]
pub struct Stores {
    /// Agent registry.
    pub agents: Arc<dyn AgentStore>,
    /// Scope → agents.
    pub permissions: Arc<dyn PermissionStore>,
    /// Rate-limit windows.
    pub counters: Arc<dyn CounterStore>,
    /// Backend credentials.
    pub secrets: Arc<dyn SecretStore>,
    /// Local issuer clients.
    pub clients: Arc<dyn ClientStore>,
    /// Discovery embeddings.
    pub embeddings: Arc<dyn EmbeddingStore>,
}

impl Stores {
    /// Every store backed by one SQLite file.
    pub fn sqlite(db: sqlite::SqliteStore) -> Self {
        let db = Arc::new(db);
        Stores {
            agents: db.clone(),
            permissions: db.clone(),
            counters: db.clone(),
            secrets: db.clone(),
            clients: db.clone(),
            embeddings: db,
        }
    }
}

/// The SQLite file of the local profile inside the data directory.
pub const DB_FILE: &str = "switchboard.db";

impl Stores {
    /// The stores of a profile: the SQLite file in `data_dir` for `local`,
    /// DynamoDB and Secrets Manager for an AWS profile (credentials from the
    /// standard AWS chain). The one place that picks backends.
    pub fn open(profile: &Profile, data_dir: &Path) -> StoreResult<Stores> {
        match &profile.kind {
            ProfileKind::Local => Ok(Stores::sqlite(sqlite::SqliteStore::open(
                &data_dir.join(DB_FILE),
            )?)),
            ProfileKind::Aws(aws) => Ok(Stores::aws(aws::AwsConnection::new(
                &profile.name,
                aws,
                aws::AwsCredentials::Chain,
                aws::AwsSettings::default(),
            )?)),
        }
    }

    /// DynamoDB for agents, permissions, counters and embeddings, Secrets
    /// Manager for secrets. There are no local issuer clients: tokens come
    /// from the Cognito user pool (see [`aws::CognitoClients`]).
    pub fn aws(conn: aws::AwsConnection) -> Self {
        let db = Arc::new(dynamodb::DynamoStore::new(conn.clone()));
        Stores {
            agents: db.clone(),
            permissions: db.clone(),
            counters: db.clone(),
            embeddings: db,
            secrets: Arc::new(secretsmanager::SecretsManagerStore::new(conn.clone())),
            clients: Arc::new(aws::CognitoClients::new(&conn)),
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is set before it): the
/// `updated_at` the stores write.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `Invalid` unless [`validate_agent`](crate::registry::validate_agent)
/// accepts the record; the message names the agent and every field at fault.
pub(crate) fn check_agent(record: &AgentRecord) -> StoreResult<()> {
    let problems = agent_problems(record);
    if problems.is_empty() {
        return Ok(());
    }
    let problems: Vec<String> = problems
        .into_iter()
        .map(|(field, e)| format!("{field}: {e}"))
        .collect();
    Err(StoreError::Invalid(format!(
        "agent {:?}: {}",
        record.id,
        problems.join("; ")
    )))
}

/// `Invalid` unless `scope` is a valid scope and every agent a valid agent id
/// or `*`.
pub(crate) fn check_permission<'a>(
    scope: &str,
    agents: impl IntoIterator<Item = &'a String>,
) -> StoreResult<()> {
    validate_permission(scope, agents).map_err(StoreError::Invalid)
}

/// `Invalid` unless the client's id and every scope it may request are valid.
pub(crate) fn check_client(record: &ClientRecord) -> StoreResult<()> {
    validate_client(record).map_err(StoreError::Invalid)
}
