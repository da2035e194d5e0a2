//! A sync plan in words: the lines `switchboard sync` prints and the
//! console's sync diff shows, and the one-line summary of counts.

use std::collections::BTreeSet;

use super::{AgentChange, PermissionChange, SecretAction, SyncCounts, SyncPlan};

impl SyncPlan {
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

impl SyncCounts {
    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "{} agents added, {} changed, {} removed; {} scopes added, {} changed, {} removed; {} secrets copied",
            self.agents_added,
            self.agents_changed,
            self.agents_removed,
            self.scopes_added,
            self.scopes_changed,
            self.scopes_removed,
            self.secrets_copied
        )
    }
}
