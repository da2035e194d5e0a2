//! Copying the registry from one profile's stores to another's: the
//! difference in agents and permissions (added, changed, removed), which
//! secrets the copied agents need, and applying it.
//!
//! The target ends up with exactly the source's agents and permissions.
//! Secret values are never copied unless asked ([`SyncOptions::copy_secrets`]);
//! without that, the plan only says which secrets the target lacks.
//! Embeddings are not copied (they are recomputed from the agents), nor are
//! local issuer clients (an AWS profile's clients live in its Cognito pool).
//!
//! * `plan.rs`: [`plan()`] reads both sides and works out the difference
//!   ([`diff`], pure) and what happens to each secret.
//! * `report.rs`: a plan in lines for people ([`SyncPlan::report`]; the CLI
//!   and the console show the same).
//! * `apply.rs`: [`apply()`] writes a plan to the target, in a safe order.

mod apply;
mod plan;
mod report;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::registry::AgentRecord;

pub use apply::{apply, SyncError};
pub use plan::{changed_fields, diff, plan, secret_of};

/// What to sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Copy the values of the secrets the agents use (never by default).
    pub copy_secrets: bool,
}

/// One agent's difference. `Changed` holds the target's record and the
/// source's, and the fields that differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AgentChange {
    /// In the source only: created in the target.
    Added {
        /// The source's record.
        agent: AgentRecord,
    },
    /// In both, different: the target's record is replaced.
    Changed {
        /// The target's record now.
        from: Box<AgentRecord>,
        /// The source's record.
        to: Box<AgentRecord>,
        /// Names of the fields that differ.
        fields: Vec<String>,
    },
    /// In the target only: deleted there.
    Removed {
        /// The target's record.
        agent: AgentRecord,
    },
}

impl AgentChange {
    /// The agent id.
    pub fn id(&self) -> &str {
        match self {
            AgentChange::Added { agent } | AgentChange::Removed { agent } => &agent.id,
            AgentChange::Changed { to, .. } => &to.id,
        }
    }
}

/// One scope's difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PermissionChange {
    /// In the source only.
    Added {
        /// The scope.
        scope: String,
        /// What it grants.
        agents: BTreeSet<String>,
    },
    /// Granting different agents.
    Changed {
        /// The scope.
        scope: String,
        /// Agents the target's scope gains.
        added: BTreeSet<String>,
        /// Agents it loses.
        removed: BTreeSet<String>,
    },
    /// In the target only.
    Removed {
        /// The scope.
        scope: String,
        /// What it grants there now.
        agents: BTreeSet<String>,
    },
}

impl PermissionChange {
    /// The scope.
    pub fn scope(&self) -> &str {
        match self {
            PermissionChange::Added { scope, .. }
            | PermissionChange::Changed { scope, .. }
            | PermissionChange::Removed { scope, .. } => scope,
        }
    }
}

/// What happens to one secret the synced agents use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretAction {
    /// Its value is copied (asked for, and the target lacks it or differs).
    Copy,
    /// The target has the same value.
    Same,
    /// The target has it (values not compared: copying was not asked for).
    Present,
    /// The target lacks it and it is not copied: those agents will answer 502
    /// until it is set there.
    Missing,
    /// Neither side has it.
    MissingInSource,
}

/// A secret the synced agents use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretNeed {
    /// Its name (or ARN).
    pub name: String,
    /// The agents that use it.
    pub used_by: Vec<String>,
    /// What sync does about it.
    pub action: SecretAction,
}

/// Everything sync would change, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncPlan {
    /// Agent differences, by id.
    pub agents: Vec<AgentChange>,
    /// Permission differences, by scope.
    pub permissions: Vec<PermissionChange>,
    /// Secrets the source's agents use.
    pub secrets: Vec<SecretNeed>,
}

/// Counts of a plan or of what was applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncCounts {
    /// Agents created.
    pub agents_added: usize,
    /// Agents replaced.
    pub agents_changed: usize,
    /// Agents deleted.
    pub agents_removed: usize,
    /// Scopes created.
    pub scopes_added: usize,
    /// Scopes changed.
    pub scopes_changed: usize,
    /// Scopes deleted.
    pub scopes_removed: usize,
    /// Secret values copied.
    pub secrets_copied: usize,
}

impl SyncPlan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
            && self.permissions.is_empty()
            && !self.secrets.iter().any(|s| s.action == SecretAction::Copy)
    }

    /// How many of each change.
    pub fn counts(&self) -> SyncCounts {
        let mut c = SyncCounts::default();
        for a in &self.agents {
            match a {
                AgentChange::Added { .. } => c.agents_added += 1,
                AgentChange::Changed { .. } => c.agents_changed += 1,
                AgentChange::Removed { .. } => c.agents_removed += 1,
            }
        }
        for p in &self.permissions {
            match p {
                PermissionChange::Added { .. } => c.scopes_added += 1,
                PermissionChange::Changed { .. } => c.scopes_changed += 1,
                PermissionChange::Removed { .. } => c.scopes_removed += 1,
            }
        }
        c.secrets_copied = self
            .secrets
            .iter()
            .filter(|s| s.action == SecretAction::Copy)
            .count();
        c
    }
}
