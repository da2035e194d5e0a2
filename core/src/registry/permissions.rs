//! Permissions as the hot path holds them: scope → the agents it grants.
//! What a decision means for a caller (the 403 reason, `token explain`) is
//! the business of [`crate::auth::scopes`].

use std::collections::{BTreeMap, BTreeSet};

use super::Permission;

/// The wildcard that grants every agent.
pub const ALL_AGENTS: &str = "*";

/// Scope → agents, as held in memory for the hot path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    by_scope: BTreeMap<String, BTreeSet<String>>,
}

impl PermissionSet {
    /// Builds the set from stored permissions.
    pub fn new(permissions: impl IntoIterator<Item = Permission>) -> Self {
        PermissionSet {
            by_scope: permissions
                .into_iter()
                .map(|p| (p.scope, p.agents))
                .collect(),
        }
    }

    /// Does `scope` grant `agent`?
    pub fn scope_grants(&self, scope: &str, agent: &str) -> bool {
        self.by_scope
            .get(scope)
            .is_some_and(|a| a.contains(agent) || a.contains(ALL_AGENTS))
    }

    /// Does `scope` grant every agent (`*`)?
    pub fn grants_all(&self, scope: &str) -> bool {
        self.by_scope
            .get(scope)
            .is_some_and(|a| a.contains(ALL_AGENTS))
    }

    /// The first of `scopes` that grants `agent`, if any. This is the hot-path check.
    pub fn granting_scope<'a, S: AsRef<str>>(
        &self,
        scopes: &'a [S],
        agent: &str,
    ) -> Option<&'a str> {
        scopes
            .iter()
            .map(AsRef::as_ref)
            .find(|s| self.scope_grants(s, agent))
    }

    /// Every scope that grants `agent`, by name or through `*`, sorted.
    pub fn scopes_granting(&self, agent: &str) -> Vec<&str> {
        self.by_scope
            .iter()
            .filter(|(_, a)| a.contains(agent) || a.contains(ALL_AGENTS))
            .map(|(s, _)| s.as_str())
            .collect()
    }

    /// Every stored permission.
    pub fn permissions(&self) -> Vec<Permission> {
        self.by_scope
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
    fn grants() {
        let p = PermissionSet::new([
            Permission {
                scope: "s/echo".into(),
                agents: ["echo".to_owned()].into(),
            },
            Permission {
                scope: "s/all".into(),
                agents: [ALL_AGENTS.to_owned()].into(),
            },
        ]);
        assert_eq!(p.granting_scope(&["x", "s/echo"], "echo"), Some("s/echo"));
        assert_eq!(p.granting_scope(&["s/echo"], "stream"), None);
        assert_eq!(p.granting_scope(&["s/all"], "stream"), Some("s/all"));
        assert_eq!(p.scopes_granting("stream"), vec!["s/all"]);
        assert_eq!(p.scopes_granting("echo"), vec!["s/all", "s/echo"]);
        assert!(p.grants_all("s/all"));
        assert!(!p.grants_all("s/echo"));
    }
}
