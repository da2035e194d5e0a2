//! Store backends. Each implements the traits in [`crate::registry::store`].

pub mod aws;
pub mod dynamodb;
pub mod secretsmanager;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use crate::profile::{Profile, ProfileKind};
use crate::registry::{
    AgentStore, ClientStore, CounterStore, EmbeddingStore, PermissionStore, SecretStore,
    StoreResult,
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
