//! The store traits. Each maps onto a DynamoDB table as well as onto SQLite:
//! single-key reads and writes, conditional writes, no joins and no
//! transactions spanning tables.

use async_trait::async_trait;

use super::model::{
    AgentRecord, ClientRecord, CounterEntry, CounterKey, CounterOutcome, EmbeddingRecord,
    Permission,
};

/// What went wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A conditional write failed: the key exists already, or its version moved on.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store cannot be reached or refuses to work (locked, read-only, endpoint gone).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data that cannot be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A record the store refuses to write because the registry's
    /// validators refuse it (see [`super::validate`]); the message names the
    /// field. Nothing of the call was written.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// The backend reported an error that is not about reaching it (those are
    /// [`StoreError::Unavailable`]): an SQL error, a request the service
    /// refused. `context` says what the store was doing; the backend's own
    /// error is kept as the source.
    #[error("store error: {context}: {source}")]
    Backend {
        /// What the store was doing, for example `listing agents`.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// A [`StoreError::Backend`] holding `source`.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The same error once more, for another caller of one failed operation
    /// (a batch answers every waiting caller with its one error). A backend
    /// error's source is kept as its message.
    pub fn duplicate(&self) -> Self {
        match self {
            StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
            StoreError::Backend { context, source } => {
                StoreError::backend(context.clone(), source.to_string())
            }
        }
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Agents, keyed by agent id.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// One agent, or `None`.
    async fn get(&self, id: &str) -> StoreResult<Option<AgentRecord>>;
    /// Every agent, sorted by id.
    async fn list(&self) -> StoreResult<Vec<AgentRecord>>;
    /// Creates a record; `Conflict` when the id exists, `Invalid` when
    /// [`validate_agent`](super::validate::validate_agent) refuses it.
    /// Returns the stored record.
    async fn create(&self, record: AgentRecord) -> StoreResult<AgentRecord>;
    /// Replaces a record only if its stored version is `record.version`;
    /// `NotFound` or `Conflict` otherwise, `Invalid` as for `create`. Returns
    /// the stored record (version + 1).
    async fn update(&self, record: AgentRecord) -> StoreResult<AgentRecord>;
    /// Creates or replaces records regardless of version. On SQLite all of them
    /// land or none do; on DynamoDB in batches of the largest transaction size.
    /// Every record is validated before any is written: one invalid record
    /// (`Invalid`) and nothing is written.
    async fn put_many(&self, records: Vec<AgentRecord>) -> StoreResult<()>;
    /// Deletes a record; `NotFound` when absent.
    async fn delete(&self, id: &str) -> StoreResult<()>;
    /// A number that changes whenever any agent changes. Caches poll it.
    async fn generation(&self) -> StoreResult<u64>;
}

/// Permissions, keyed by scope.
#[async_trait]
pub trait PermissionStore: Send + Sync {
    /// Every scope with what it grants, sorted by scope.
    async fn list(&self) -> StoreResult<Vec<Permission>>;
    /// Adds agent ids (or `*`) to a scope, creating the scope if needed.
    /// `Invalid` when the scope or an agent id is not valid.
    async fn grant(&self, scope: &str, agents: &[String]) -> StoreResult<Permission>;
    /// Removes agent ids from a scope; a scope left empty is deleted.
    /// `NotFound` when the scope does not exist.
    async fn revoke(&self, scope: &str, agents: &[String]) -> StoreResult<Option<Permission>>;
    /// Replaces every permission (import). Atomic on SQLite. `Invalid` (and
    /// nothing written) when any scope or agent id is not valid.
    async fn replace_all(&self, permissions: Vec<Permission>) -> StoreResult<()>;
    /// A number that changes whenever any permission changes.
    async fn generation(&self) -> StoreResult<u64>;
}

/// Per-minute request counters.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Atomically adds one to the window's count unless it already holds
    /// `limit`; a request over the limit is not counted. `window_start` is
    /// when `key`'s window begins and `expires_at` when its counter may be
    /// deleted (Unix seconds): a store may delete the windows that expired by
    /// `window_start` as it goes.
    async fn try_increment(
        &self,
        key: &CounterKey,
        limit: u64,
        window_start: u64,
        expires_at: u64,
    ) -> StoreResult<CounterOutcome>;
    /// Live windows (expiry after `now` Unix seconds); expired ones are ignored
    /// even if the backend has not deleted them yet.
    async fn list(&self, now: u64) -> StoreResult<Vec<CounterEntry>>;
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A masked form for screens: `ab…(32 chars)`.
    pub fn masked(&self) -> String {
        format!("••••••({} chars)", self.0.chars().count())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(••••••)")
    }
}

/// Backend credentials by name (local) or name/ARN (Secrets Manager).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret; `NotFound` when absent, `Unavailable` when the store is down.
    async fn get(&self, name: &str) -> StoreResult<Secret>;
    /// Creates or replaces a secret.
    async fn put(&self, name: &str, value: &Secret) -> StoreResult<()>;
    /// Deletes a secret; `NotFound` when absent.
    async fn delete(&self, name: &str) -> StoreResult<()>;
    /// Names of every secret (never values).
    async fn list_names(&self) -> StoreResult<Vec<String>>;
}

/// Clients of the local issuer.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// One client, or `None`.
    async fn get(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// Every client, sorted by id.
    async fn list(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Creates a client; `Conflict` when the id exists, `Invalid` when its id
    /// or one of its scopes is not valid.
    async fn create(&self, record: ClientRecord) -> StoreResult<()>;
    /// Deletes a client; `NotFound` when absent.
    async fn delete(&self, client_id: &str) -> StoreResult<()>;
}

/// Discovery embeddings, keyed by agent id. Written by whichever process
/// embeds an agent first (a gateway or the CLI), read at start-up so an
/// unchanged agent is never embedded twice.
#[async_trait]
pub trait EmbeddingStore: Send + Sync {
    /// One agent's embedding, or `None`.
    async fn get(&self, agent_id: &str) -> StoreResult<Option<EmbeddingRecord>>;
    /// Every stored embedding, sorted by agent id.
    async fn list(&self) -> StoreResult<Vec<EmbeddingRecord>>;
    /// Creates or replaces records, keyed by agent id. On SQLite all of them
    /// land or none do.
    async fn put_many(&self, records: Vec<EmbeddingRecord>) -> StoreResult<()>;
    /// Deletes an agent's embedding; `NotFound` when absent.
    async fn delete(&self, agent_id: &str) -> StoreResult<()>;
}
