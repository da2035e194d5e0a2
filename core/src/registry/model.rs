//! Registry records: agents, permissions, issuer clients, rate counters.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How the gateway authenticates itself to an agent's backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackendAuth {
    /// No credentials are sent.
    #[default]
    None,
    /// A static header whose value is read from the secret store.
    Header {
        /// Header name, for example `x-api-key` or `authorization`.
        name: String,
        /// Name (or ARN) of the secret holding the header's value.
        secret: String,
    },
    /// OAuth2 client credentials: the gateway fetches and caches a token.
    #[serde(rename = "oauth2")]
    OAuth2 {
        /// Token endpoint.
        token_url: String,
        /// The gateway's client id at that endpoint.
        client_id: String,
        /// Name (or ARN) of the secret holding the client secret.
        secret: String,
        /// Scopes to request; empty asks for the client's defaults.
        #[serde(default)]
        scopes: Vec<String>,
    },
}

impl BackendAuth {
    /// A short human description, never containing a secret value.
    pub fn describe(&self) -> String {
        match self {
            BackendAuth::None => "none".into(),
            BackendAuth::Header { name, secret } => format!("header {name} from secret {secret}"),
            BackendAuth::OAuth2 {
                token_url,
                client_id,
                scopes,
                ..
            } => format!(
                "oauth2 client {client_id} at {token_url} scopes [{}]",
                scopes.join(" ")
            ),
        }
    }
}

/// One agent in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentRecord {
    /// Routing id: `/agents/{id}`.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// What the agent does.
    #[serde(default)]
    pub description: String,
    /// Base URL of the agent's backend. `/agents/{id}/{rest}` maps to `{url}/{rest}`.
    pub url: String,
    /// How the gateway authenticates to the backend.
    #[serde(default)]
    pub auth: BackendAuth,
    /// Requests per minute per client; `None` uses the gateway default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Disabled agents answer 404 exactly like unknown ones.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The backend's agent card as last fetched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub card: Option<serde_json::Value>,
    /// Last change, milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_at: i64,
    /// Optimistic-concurrency version; bumped by every write.
    #[serde(default)]
    pub version: u64,
}

fn default_true() -> bool {
    true
}

impl AgentRecord {
    /// A new enabled record with no backend auth and the default limit.
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> Self {
        AgentRecord {
            id: id.into(),
            name: String::new(),
            description: String::new(),
            url: url.into(),
            auth: BackendAuth::None,
            rate_limit: None,
            enabled: true,
            card: None,
            updated_at: 0,
            version: 0,
        }
    }
}

/// The stored embedding of one agent's discovery text (see [`crate::discovery`]).
///
/// Keyed by agent id; one item per agent, so it maps onto a DynamoDB item as
/// well as onto a SQLite row. `vectors[0]` embeds the whole agent (name,
/// description, skills); `vectors[1..]` embed its card's skills one by one,
/// in card order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRecord {
    /// The agent.
    pub agent_id: String,
    /// The model that produced the vectors; vectors of another model are never mixed in.
    pub model: String,
    /// Hash of the text that was embedded; when the agent's text hashes
    /// differently, the vectors are stale and are recomputed.
    pub text_hash: String,
    /// The vectors, all of one length.
    pub vectors: Vec<Vec<f32>>,
    /// When they were computed, milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_at: i64,
}

impl EmbeddingRecord {
    /// The vectors as every store keeps them: one blob of every vector's
    /// `f32`s, little-endian, back to back, and the vectors' length (their
    /// dimensions; 0 when there are none). `Err` names the agent when the
    /// vectors are not all of one length.
    pub fn encode_vectors(&self) -> Result<(usize, Vec<u8>), String> {
        let dims = self.vectors.first().map_or(0, Vec::len);
        if self.vectors.iter().any(|v| v.len() != dims) {
            return Err(format!(
                "embedding of {}: vectors of different lengths",
                self.agent_id
            ));
        }
        let mut blob = Vec::with_capacity(self.vectors.len() * dims * 4);
        for v in &self.vectors {
            for x in v {
                blob.extend_from_slice(&x.to_le_bytes());
            }
        }
        Ok((dims, blob))
    }

    /// The vectors of `agent_id` back from a blob of
    /// [`encode_vectors`](Self::encode_vectors) and its dimensions. `Err`
    /// when the blob cannot hold vectors of that many dimensions.
    pub fn decode_vectors(agent_id: &str, dims: i64, blob: &[u8]) -> Result<Vec<Vec<f32>>, String> {
        let bad = || {
            format!(
                "embedding of {agent_id}: {} bytes for {dims} dimensions",
                blob.len()
            )
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
}

/// What a scope grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Permission {
    /// The OAuth2 scope, as it appears in the token.
    pub scope: String,
    /// Agent ids this scope reaches; `*` means every agent.
    #[schema(value_type = Vec<String>)]
    pub agents: BTreeSet<String>,
}

/// A client of the local issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// OAuth2 client id.
    pub client_id: String,
    /// `salt$sha256hex` of the client secret; the secret itself is never stored.
    pub secret_hash: String,
    /// Scopes this client may request.
    pub allowed_scopes: Vec<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// Key of one rate-limit window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CounterKey {
    /// Caller's client id.
    pub client_id: String,
    /// Agent id.
    pub agent_id: String,
    /// Window number: Unix seconds / 60.
    pub window: u64,
}

impl CounterKey {
    /// `client#agent#window`, the key used by every store.
    pub fn storage_key(&self) -> String {
        format!("{}#{}#{}", self.client_id, self.agent_id, self.window)
    }
}

/// Result of one attempt to count a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOutcome {
    /// Counted; the value is the count after this request.
    Allowed(u64),
    /// Not counted: the window already holds `limit` requests.
    Limited(u64),
}

/// A window counter as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterEntry {
    /// The window.
    pub key: CounterKey,
    /// Requests counted in it.
    pub count: u64,
    /// Unix seconds after which the entry is stale.
    pub expires_at: u64,
}
