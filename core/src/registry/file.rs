//! The registry file: agents, permissions and issuer clients in one JSON
//! document, used by `import`, `export` and the sample stack's fixtures.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::model::{validate_agent_id, validate_backend_url, AgentRecord, BackendAuth, Permission};
use super::ALL_AGENTS;

/// A client of the local issuer as written in a registry file (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// OAuth2 client id.
    pub client_id: String,
    /// Scopes it may request.
    pub scopes: Vec<String>,
}

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// Agents.
    #[serde(default)]
    pub agents: Vec<AgentRecord>,
    /// Scope → agent ids (or `*`).
    #[serde(default)]
    pub permissions: BTreeMap<String, BTreeSet<String>>,
    /// Local issuer clients (ignored by AWS profiles).
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
}

impl RegistryFile {
    /// Parses and validates a document; every problem is listed, not just the first.
    pub fn parse(text: &str) -> Result<RegistryFile, Vec<String>> {
        let file: RegistryFile =
            serde_json::from_str(text).map_err(|e| vec![format!("not a registry file: {e}")])?;
        file.validate(|u| u.starts_with("sample:"))?;
        Ok(file)
    }

    /// Checks ids, URLs, duplicates and permission references. `placeholder`
    /// says which URLs stand for something filled in later.
    pub fn validate(&self, placeholder: impl Fn(&str) -> bool) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let mut ids = BTreeSet::new();
        for a in &self.agents {
            if let Err(e) = validate_agent_id(&a.id) {
                errors.push(e);
            }
            if !ids.insert(a.id.as_str()) {
                errors.push(format!("agent {} appears more than once", a.id));
            }
            if !placeholder(&a.url) {
                if let Err(e) = validate_backend_url(&a.url) {
                    errors.push(format!("agent {}: {e}", a.id));
                }
            }
            if let BackendAuth::OAuth2 { token_url, .. } = &a.auth {
                if !placeholder(token_url) {
                    if let Err(e) = url::Url::parse(token_url) {
                        errors.push(format!("agent {}: token URL {token_url:?}: {e}", a.id));
                    }
                }
            }
        }
        for (scope, agents) in &self.permissions {
            if scope.trim().is_empty() || scope.contains(char::is_whitespace) {
                errors.push(format!("scope {scope:?} is empty or contains spaces"));
            }
            for agent in agents {
                if agent != ALL_AGENTS && !ids.contains(agent.as_str()) {
                    errors.push(format!(
                        "scope {scope} grants {agent}, which is not among the file's agents"
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The permissions as records.
    pub fn permission_records(&self) -> Vec<Permission> {
        self.permissions
            .iter()
            .map(|(scope, agents)| Permission {
                scope: scope.clone(),
                agents: agents.clone(),
            })
            .collect()
    }
}
