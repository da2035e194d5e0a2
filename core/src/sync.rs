//! Copying the registry from one profile's stores to another's: the
//! difference in agents and permissions (added, changed, removed), which
//! secrets the copied agents need, and applying it.
//!
//! The target ends up with exactly the source's agents and permissions.
//! Secret values are never copied unless asked ([`SyncOptions::copy_secrets`]);
//! without that, the plan only says which secrets the target lacks.
//! Embeddings are not copied (they are recomputed from the agents), nor are
//! local issuer clients (an AWS profile's clients live in its Cognito pool).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::registry::{AgentRecord, BackendAuth, Permission, StoreError, StoreResult};
use crate::store::Stores;

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

    /// The plan as lines for people: `+` added, `~` changed, `-` removed,
    /// `!` needs attention. Never contains a secret value.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.agents {
            out.push(match a {
                AgentChange::Added { agent } => format!("+ agent {}  {}", agent.id, agent.url),
                AgentChange::Changed { to, fields, .. } => {
                    format!("~ agent {}  ({})", to.id, fields.join(", "))
                }
                AgentChange::Removed { agent } => format!("- agent {}", agent.id),
            });
        }
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(" ");
        for p in &self.permissions {
            out.push(match p {
                PermissionChange::Added { scope, agents } => {
                    format!("+ scope {scope}  → {}", list(agents))
                }
                PermissionChange::Changed {
                    scope,
                    added,
                    removed,
                } => {
                    let mut parts = Vec::new();
                    if !added.is_empty() {
                        parts.push(format!("+{}", list(added).replace(' ', " +")));
                    }
                    if !removed.is_empty() {
                        parts.push(format!("-{}", list(removed).replace(' ', " -")));
                    }
                    format!("~ scope {scope}  {}", parts.join(" "))
                }
                PermissionChange::Removed { scope, .. } => format!("- scope {scope}"),
            });
        }
        for s in &self.secrets {
            let users = s.used_by.join(", ");
            match s.action {
                SecretAction::Copy => {
                    out.push(format!("+ secret {}  value copied (used by {users})", s.name))
                }
                SecretAction::Missing => out.push(format!(
                    "! secret {}  missing in the target (used by {users}); set it there or sync with secrets copied",
                    s.name
                )),
                SecretAction::MissingInSource => out.push(format!(
                    "! secret {}  missing in both profiles (used by {users})",
                    s.name
                )),
                SecretAction::Same | SecretAction::Present => {}
            }
        }
        out
    }
}

impl SyncPlan {
    /// What every `switchboard sync --from FROM --to TO` prints first: a
    /// heading and [`SyncPlan::lines`], indented.
    pub fn report(&self, from: &str, to: &str) -> Vec<String> {
        let mut out = vec![format!("sync {from} → {to}")];
        if self.is_empty() {
            out.push("  no difference in agents or permissions".to_owned());
        }
        out.extend(self.lines().into_iter().map(|l| format!("  {l}")));
        out
    }

    /// What `switchboard sync … --dry-run` prints, line for line: the
    /// [`SyncPlan::report`] and, when there is something to do, what applying
    /// it would do. The console's sync diff shows exactly these lines.
    pub fn dry_run_report(&self, from: &str, to: &str) -> Vec<String> {
        let mut out = self.report(from, to);
        if !self.is_empty() {
            out.push(format!(
                "dry run: nothing was changed ({})",
                self.counts().summary()
            ));
        }
        out
    }
}

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
fn check_source(agents: &[AgentRecord]) -> StoreResult<()> {
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

/// A sync that stopped part way.
#[derive(Debug, thiserror::Error)]
#[error("sync stopped after {done_summary}: {step}: {source}")]
pub struct SyncError {
    /// What had been applied.
    pub done: SyncCounts,
    done_summary: String,
    /// The step that failed.
    pub step: String,
    /// Why.
    #[source]
    pub source: StoreError,
}

fn summary(c: &SyncCounts) -> String {
    format!(
        "{} agents added, {} changed, {} removed; {} scopes added, {} changed, {} removed; {} secrets copied",
        c.agents_added,
        c.agents_changed,
        c.agents_removed,
        c.scopes_added,
        c.scopes_changed,
        c.scopes_removed,
        c.secrets_copied
    )
}

impl SyncCounts {
    /// One line for people.
    pub fn summary(&self) -> String {
        summary(self)
    }
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
        done_summary: summary(done),
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn agent(id: &str, url: &str) -> AgentRecord {
        AgentRecord::new(id, url)
    }

    fn perm(scope: &str, agents: &[&str]) -> Permission {
        Permission {
            scope: scope.into(),
            agents: agents.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn agents_added_changed_removed_and_unchanged() {
        let mut same_src = agent("same", "http://s");
        same_src.version = 4;
        same_src.updated_at = 1;
        let mut same_dst = agent("same", "http://s");
        same_dst.version = 9;
        same_dst.updated_at = 2;
        let mut changed_src = agent("chg", "http://new");
        changed_src.rate_limit = Some(5);
        let changed_dst = agent("chg", "http://old");
        let (agents, perms) = diff(
            &[same_src, changed_src.clone(), agent("new", "http://n")],
            &[],
            &[same_dst, changed_dst.clone(), agent("gone", "http://g")],
            &[],
        );
        assert_eq!(
            agents,
            vec![
                AgentChange::Changed {
                    from: Box::new(changed_dst),
                    to: Box::new(changed_src),
                    fields: vec!["url".into(), "rate_limit".into()],
                },
                AgentChange::Removed {
                    agent: agent("gone", "http://g")
                },
                AgentChange::Added {
                    agent: agent("new", "http://n")
                },
            ]
        );
        assert_eq!(perms, vec![]);
    }

    #[test]
    fn scopes_added_changed_removed() {
        let (_, perms) = diff(
            &[],
            &[
                perm("a", &["x"]),
                perm("b", &["x", "y"]),
                perm("same", &["*"]),
            ],
            &[],
            &[
                perm("b", &["y", "z"]),
                perm("c", &["x"]),
                perm("same", &["*"]),
            ],
        );
        assert_eq!(
            perms,
            vec![
                PermissionChange::Added {
                    scope: "a".into(),
                    agents: set(&["x"])
                },
                PermissionChange::Changed {
                    scope: "b".into(),
                    added: set(&["x"]),
                    removed: set(&["z"])
                },
                PermissionChange::Removed {
                    scope: "c".into(),
                    agents: set(&["x"])
                },
            ]
        );
    }

    #[test]
    fn dry_run_report_is_heading_lines_and_summary() {
        let plan = SyncPlan {
            agents: vec![AgentChange::Added {
                agent: agent("a", "http://a"),
            }],
            permissions: vec![PermissionChange::Removed {
                scope: "old".into(),
                agents: set(&["x"]),
            }],
            secrets: vec![],
        };
        assert_eq!(
            plan.dry_run_report("local", "prod"),
            vec![
                "sync local → prod",
                "  + agent a  http://a",
                "  - scope old",
                "dry run: nothing was changed (1 agents added, 0 changed, 0 removed; 0 scopes added, 0 changed, 1 removed; 0 secrets copied)",
            ]
        );
        assert_eq!(plan.report("local", "prod").len(), 3);
        let empty = SyncPlan {
            agents: vec![],
            permissions: vec![],
            secrets: vec![],
        };
        assert_eq!(
            empty.dry_run_report("local", "dev"),
            vec![
                "sync local → dev",
                "  no difference in agents or permissions"
            ]
        );
    }

    #[test]
    fn a_source_agent_the_registry_refuses_stops_the_sync() {
        assert!(check_source(&[agent("fine", "http://127.0.0.1:9000")]).is_ok());
        let err = check_source(&[
            agent("fine", "http://127.0.0.1:9000"),
            agent("meta", "http://169.254.169.254/latest"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("meta: ") && err.contains("169.254.169.254"),
            "{err}"
        );
        assert!(!err.contains("fine:"), "{err}");
    }

    #[test]
    fn identical_registries_have_no_difference() {
        let agents = [agent("a", "http://a")];
        let perms = [perm("s", &["a"])];
        let (a, p) = diff(&agents, &perms, &agents, &perms);
        assert!(a.is_empty() && p.is_empty());
    }

    #[test]
    fn lines_never_show_secret_values_and_flag_missing_ones() {
        let mut a = agent("a", "http://a");
        a.auth = BackendAuth::Header {
            name: "x-api-key".into(),
            secret: "api".into(),
        };
        let plan = SyncPlan {
            agents: vec![AgentChange::Added { agent: a }],
            permissions: vec![PermissionChange::Changed {
                scope: "s".into(),
                added: set(&["a", "b"]),
                removed: set(&["c"]),
            }],
            secrets: vec![SecretNeed {
                name: "api".into(),
                used_by: vec!["a".into()],
                action: SecretAction::Missing,
            }],
        };
        assert_eq!(
            plan.lines(),
            vec![
                "+ agent a  http://a",
                "~ scope s  +a +b -c",
                "! secret api  missing in the target (used by a); set it there or sync with secrets copied",
            ]
        );
        assert!(!plan.is_empty());
        assert_eq!(
            plan.counts(),
            SyncCounts {
                agents_added: 1,
                scopes_changed: 1,
                ..SyncCounts::default()
            }
        );
    }
}
