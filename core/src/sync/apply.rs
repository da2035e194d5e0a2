//! Applying a sync plan to the target's stores, in an order that never
//! leaves an agent pointing at a missing secret, and the error of a sync
//! that stopped part way.

use std::collections::BTreeSet;

use super::{AgentChange, PermissionChange, SecretAction, SyncCounts, SyncPlan};
use crate::registry::StoreError;
use crate::store::Stores;

/// A sync that stopped part way.
#[derive(Debug, thiserror::Error)]
#[error("sync stopped after {}: {step}: {source}", .done.summary())]
pub struct SyncError {
    /// What had been applied.
    pub done: SyncCounts,
    /// The step that failed.
    pub step: String,
    /// Why.
    #[source]
    pub source: StoreError,
}

/// Applies a plan: secrets first (so no agent points at a missing secret
/// because of the sync), then added and changed agents, then permissions,
/// then removed agents. Changed agents are replaced only if the target's
/// record is still the one planned against (else `Conflict`: plan again).
/// Stops at the first failure; applying the same plan again is safe.
pub async fn apply(
    plan: &SyncPlan,
    source: &Stores,
    target: &Stores,
) -> Result<SyncCounts, SyncError> {
    let mut done = SyncCounts::default();
    let fail = |done: &SyncCounts, step: String, source: StoreError| SyncError {
        done: *done,
        step,
        source,
    };
    for s in plan
        .secrets
        .iter()
        .filter(|s| s.action == SecretAction::Copy)
    {
        let step = format!("copying secret {}", s.name);
        let value = source
            .secrets
            .get(&s.name)
            .await
            .map_err(|e| fail(&done, step.clone(), e))?;
        target
            .secrets
            .put(&s.name, &value)
            .await
            .map_err(|e| fail(&done, step.clone(), e))?;
        done.secrets_copied += 1;
    }
    for a in &plan.agents {
        match a {
            AgentChange::Added { agent } => {
                target
                    .agents
                    .create(agent.clone())
                    .await
                    .map_err(|e| fail(&done, format!("adding agent {}", agent.id), e))?;
                done.agents_added += 1;
            }
            AgentChange::Changed { from, to, .. } => {
                let mut record = (**to).clone();
                record.version = from.version;
                target
                    .agents
                    .update(record)
                    .await
                    .map_err(|e| fail(&done, format!("changing agent {}", to.id), e))?;
                done.agents_changed += 1;
            }
            AgentChange::Removed { .. } => {}
        }
    }
    for p in &plan.permissions {
        let step = format!("scope {}", p.scope());
        let vec = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
        match p {
            PermissionChange::Added { scope, agents } => {
                target
                    .permissions
                    .grant(scope, &vec(agents))
                    .await
                    .map_err(|e| fail(&done, step, e))?;
                done.scopes_added += 1;
            }
            PermissionChange::Changed {
                scope,
                added,
                removed,
            } => {
                if !added.is_empty() {
                    target
                        .permissions
                        .grant(scope, &vec(added))
                        .await
                        .map_err(|e| fail(&done, step.clone(), e))?;
                }
                if !removed.is_empty() {
                    target
                        .permissions
                        .revoke(scope, &vec(removed))
                        .await
                        .map_err(|e| fail(&done, step, e))?;
                }
                done.scopes_changed += 1;
            }
            PermissionChange::Removed { scope, agents } => {
                match target.permissions.revoke(scope, &vec(agents)).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(fail(&done, step, e)),
                }
                done.scopes_removed += 1;
            }
        }
    }
    for a in &plan.agents {
        if let AgentChange::Removed { agent } = a {
            match target.agents.delete(&agent.id).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(fail(&done, format!("removing agent {}", agent.id), e)),
            }
            done.agents_removed += 1;
        }
    }
    Ok(done)
}
