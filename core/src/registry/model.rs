//! Registry records: agents, permissions, issuer clients, rate counters.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The one pattern every agent id must match: 1 to 64 bytes of lowercase ASCII
/// letters, digits, `-` and `_`, starting with a letter or digit.
///
/// Dots are not allowed, so `.` and `..` can never be ids; neither can anything
/// with `/`, `%`, upper case or non-ASCII look-alikes.
pub const AGENT_ID_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// Checks an agent id against [`AGENT_ID_PATTERN`].
pub fn validate_agent_id(id: &str) -> Result<(), String> {
    let bytes = id.as_bytes();
    if bytes.is_empty() {
        return Err("agent id is empty".into());
    }
    if bytes.len() > 64 {
        return Err(format!(
            "agent id is {} bytes long; at most 64 are allowed",
            bytes.len()
        ));
    }
    if !(bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit()) {
        return Err(format!(
            "agent id {id:?} must start with a lowercase letter or a digit (pattern {AGENT_ID_PATTERN})"
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "agent id {id:?} contains {bad:?}; allowed are a-z, 0-9, '-' and '_' (pattern {AGENT_ID_PATTERN})"
        ));
    }
    Ok(())
}

/// How the gateway authenticates itself to an agent's backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// What a scope grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// The OAuth2 scope, as it appears in the token.
    pub scope: String,
    /// Agent ids this scope reaches; `*` means every agent.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids() {
        for ok in ["echo", "a", "agent-1", "x_y", &"a".repeat(64)] {
            assert!(validate_agent_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "A",
            "é",
            "-a",
            "a.b",
            &"a".repeat(65),
            "a%2f",
        ] {
            assert!(validate_agent_id(bad).is_err(), "{bad}");
        }
    }
}

/// Checks a backend URL: `http` or `https`, a host, no credentials, and not a
/// link-local or cloud-metadata address. Loopback is allowed: developers run
/// agents locally.
pub fn validate_backend_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{raw:?}: only http and https backends are supported, not {}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "backend URLs must not carry credentials; use backend auth with a secret instead"
                .into(),
        );
    }
    let blocked = match url.host() {
        None => return Err(format!("{raw:?} has no host")),
        Some(url::Host::Ipv4(ip)) => ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast(),
        Some(url::Host::Ipv6(ip)) => {
            let seg = ip.segments();
            (seg[0] & 0xffc0) == 0xfe80
                || ip == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || ip.is_unspecified()
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_link_local() || v4.is_unspecified())
        }
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "metadata.google.internal" || d == "metadata" || d == "instance-data"
        }
    };
    if blocked {
        return Err(format!(
            "{raw:?} points at a link-local or cloud-metadata address, which backends may not use"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod url_tests {
    use super::validate_backend_url;

    #[test]
    fn backend_urls() {
        for ok in [
            "http://127.0.0.1:8080",
            "https://agent.example.com/a2a",
            "http://[::1]:9/",
        ] {
            assert!(validate_backend_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://x",
            "http://user:pw@host/",
            "http://169.254.169.254/latest",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://metadata.google.internal/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(validate_backend_url(bad).is_err(), "{bad}");
        }
    }
}
