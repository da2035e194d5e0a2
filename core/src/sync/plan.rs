//! Working out a sync: the difference between two registries and what
//! happens to each secret the source's agents use. Reads, never writes.

use std::collections::{BTreeMap, BTreeSet};

use super::{AgentChange, PermissionChange, SecretAction, SecretNeed, SyncOptions, SyncPlan};
use crate::registry::{AgentRecord, BackendAuth, Permission, StoreError, StoreResult};
use crate::store::Stores;

/// The fields of two records that differ (store bookkeeping ignored).
pub fn changed_fields(from: &AgentRecord, to: &AgentRecord) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            out.push(name.to_owned());
        }
    };
    check("name", from.name == to.name);
    check("description", from.description == to.description);
    check("url", from.url == to.url);
    check("auth", from.auth == to.auth);
    check("rate_limit", from.rate_limit == to.rate_limit);
    check("enabled", from.enabled == to.enabled);
    check("card", from.card == to.card);
    out
}

/// The difference between two registries (pure; no store involved).
pub fn diff(
    source_agents: &[AgentRecord],
    source_permissions: &[Permission],
    target_agents: &[AgentRecord],
    target_permissions: &[Permission],
) -> (Vec<AgentChange>, Vec<PermissionChange>) {
    let src: BTreeMap<&str, &AgentRecord> =
        source_agents.iter().map(|a| (a.id.as_str(), a)).collect();
    let dst: BTreeMap<&str, &AgentRecord> =
        target_agents.iter().map(|a| (a.id.as_str(), a)).collect();
    let ids: BTreeSet<&str> = src.keys().chain(dst.keys()).copied().collect();
    let mut agents = Vec::new();
    for id in ids {
        match (src.get(id), dst.get(id)) {
            (Some(s), None) => agents.push(AgentChange::Added {
                agent: (*s).clone(),
            }),
            (None, Some(d)) => agents.push(AgentChange::Removed {
                agent: (*d).clone(),
            }),
            (Some(s), Some(d)) => {
                let fields = changed_fields(d, s);
                if !fields.is_empty() {
                    agents.push(AgentChange::Changed {
                        from: Box::new((*d).clone()),
                        to: Box::new((*s).clone()),
                        fields,
                    });
                }
            }
            (None, None) => {}
        }
    }

    let grants = |ps: &[Permission]| -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in ps {
            m.entry(p.scope.clone())
                .or_default()
                .extend(p.agents.iter().cloned());
        }
        m.retain(|_, a| !a.is_empty());
        m
    };
    let src = grants(source_permissions);
    let dst = grants(target_permissions);
    let scopes: BTreeSet<&String> = src.keys().chain(dst.keys()).collect();
    let mut permissions = Vec::new();
    for scope in scopes {
        match (src.get(scope), dst.get(scope)) {
            (Some(s), None) => permissions.push(PermissionChange::Added {
                scope: scope.clone(),
                agents: s.clone(),
            }),
            (None, Some(d)) => permissions.push(PermissionChange::Removed {
                scope: scope.clone(),
                agents: d.clone(),
            }),
            (Some(s), Some(d)) if s != d => permissions.push(PermissionChange::Changed {
                scope: scope.clone(),
                added: s.difference(d).cloned().collect(),
                removed: d.difference(s).cloned().collect(),
            }),
            _ => {}
        }
    }
    (agents, permissions)
}

/// The secret an agent's backend auth reads, if any.
pub fn secret_of(agent: &AgentRecord) -> Option<&str> {
    match &agent.auth {
        BackendAuth::None => None,
        BackendAuth::Header { secret, .. } | BackendAuth::OAuth2 { secret, .. } => Some(secret),
    }
}

/// Refuses a source holding an agent the registry would not accept (written
/// before a rule existed, or by hand): a sync never spreads one to another
/// profile.
pub(super) fn check_source(agents: &[AgentRecord]) -> StoreResult<()> {
    let problems: Vec<String> = agents
        .iter()
        .filter_map(|a| {
            crate::registry::validate::validate_agent(a)
                .err()
                .map(|errors| format!("{}: {}", a.id, errors.join("; ")))
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "the source holds agents the registry does not accept, so nothing is synced \
         (fix or delete them first): {}",
        problems.join(" | ")
    )))
}

/// Reads both sides and works out what a sync would do. Writes nothing.
pub async fn plan(source: &Stores, target: &Stores, options: SyncOptions) -> StoreResult<SyncPlan> {
    let source_agents = source.agents.list().await?;
    check_source(&source_agents)?;
    let source_permissions = source.permissions.list().await?;
    let target_agents = target.agents.list().await?;
    let target_permissions = target.permissions.list().await?;
    let (agents, permissions) = diff(
        &source_agents,
        &source_permissions,
        &target_agents,
        &target_permissions,
    );

    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in &source_agents {
        if let Some(s) = secret_of(a) {
            used.entry(s.to_owned()).or_default().push(a.id.clone());
        }
    }
    let mut secrets = Vec::new();
    for (name, used_by) in used {
        let in_target = match target.secrets.get(&name).await {
            Ok(v) => Some(v),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let action = if options.copy_secrets {
            match source.secrets.get(&name).await {
                Ok(v) if in_target.as_ref() == Some(&v) => SecretAction::Same,
                Ok(_) => SecretAction::Copy,
                Err(StoreError::NotFound(_)) if in_target.is_some() => SecretAction::Present,
                Err(StoreError::NotFound(_)) => SecretAction::MissingInSource,
                Err(e) => return Err(e),
            }
        } else if in_target.is_some() {
            SecretAction::Present
        } else {
            SecretAction::Missing
        };
        secrets.push(SecretNeed {
            name,
            used_by,
            action,
        });
    }
    Ok(SyncPlan {
        agents,
        permissions,
        secrets,
    })
}
