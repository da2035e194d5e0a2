//! The registry file: agents, permissions and issuer clients in one JSON
//! document, used by `import`, `export` and the sample stack's fixtures.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::model::{AgentRecord, BackendAuth, Permission};
use super::validate::{agent_problems, validate_client_id, validate_scope};
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

    /// Checks every agent, scope and client with the registry's validators
    /// (those the stores apply), duplicates and permission references.
    /// `placeholder` says which URLs stand for something filled in later.
    pub fn validate(&self, placeholder: impl Fn(&str) -> bool) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let mut ids = BTreeSet::new();
        for a in &self.agents {
            if !ids.insert(a.id.as_str()) {
                errors.push(format!("agent {} appears more than once", a.id));
            }
            let token_url = match &a.auth {
                BackendAuth::OAuth2 { token_url, .. } => Some(token_url.as_str()),
                _ => None,
            };
            for (field, e) in agent_problems(a) {
                match field {
                    "id" => errors.push(e),
                    "url" if placeholder(&a.url) => {}
                    "auth.token_url" if token_url.is_some_and(&placeholder) => {}
                    _ => errors.push(format!("agent {}: {e}", a.id)),
                }
            }
        }
        for (scope, agents) in &self.permissions {
            if let Err(e) = validate_scope(scope) {
                errors.push(e);
            }
            for agent in agents {
                if agent != ALL_AGENTS && !ids.contains(agent.as_str()) {
                    errors.push(format!(
                        "scope {scope} grants {agent}, which is not among the file's agents"
                    ));
                }
            }
        }
        for c in &self.clients {
            if let Err(e) = validate_client_id(&c.client_id) {
                errors.push(e);
            }
            for scope in &c.scopes {
                if let Err(e) = validate_scope(scope) {
                    errors.push(format!("client {}: {e}", c.client_id));
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn files_are_judged_by_the_stores_rules() {
        let file = serde_json::json!({
            "agents": [{
                "id": "a",
                "url": "sample:a",
                "auth": {"type": "oauth2", "token_url": "http://169.254.169.254/t",
                         "client_id": "gw", "secret": "s"},
            }],
            "permissions": {"a\"b": ["a"]},
            "clients": [{"client_id": "c/1", "scopes": ["ok", "a b"]}],
        });
        let errors = RegistryFile::parse(&file.to_string()).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "agent a: token URL \"http://169.254.169.254/t\" points at a link-local or \
                 cloud-metadata address (169.254.169.254 is a cloud-metadata address), which \
                 backends may not use; loopback and private addresses are fine",
                "the scope 'a\"b' contains '\"', which scopes may not contain",
                "the client id 'c/1' contains '/'; use only letters, digits, '.', '_' and '-'",
                "client c/1: the scope 'a b' contains ' ', which scopes may not contain",
            ]
        );
        // Placeholders stand in for URLs filled in later.
        let sample = serde_json::json!({"agents": [{
            "id": "a", "url": "sample:a",
            "auth": {"type": "oauth2", "token_url": "sample:t", "client_id": "gw", "secret": "s"},
        }]});
        assert!(RegistryFile::parse(&sample.to_string()).is_ok());
    }
}
