//! Authorization: may this caller reach this agent, and why (not).

use serde::Serialize;

use crate::registry::PermissionSet;
pub use crate::registry::ALL_AGENTS;

/// A caller whose scopes grant no route to the agent. The reason is the
/// one [`explain`] gives, safe to send in a 403 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The authorize step: the first of `scopes` that grants `agent`, or why
/// none does.
pub fn authorize<'a, S: AsRef<str>>(
    permissions: &PermissionSet,
    scopes: &'a [S],
    agent: &str,
) -> Result<&'a str, Denied> {
    permissions
        .granting_scope(scopes, agent)
        .ok_or_else(|| Denied(explain(permissions, scopes, agent).reason))
}

/// Most scopes an [`Explanation::reason`] names from one list; the reason is
/// sent to callers in 403 bodies, so a token with thousands of scopes must
/// not make it thousands of lines long.
const MAX_LISTED: usize = 20;

/// Longest scope shown as it is in a reason; longer ones are cut.
const MAX_SCOPE_SHOWN: usize = 100;

/// `items` joined with `sep`, at most [`MAX_LISTED`] of them and each at
/// most [`MAX_SCOPE_SHOWN`] characters, saying how many were left out.
fn listed<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(MAX_LISTED)
        .map(|s| {
            let s = s.as_ref();
            if s.chars().count() > MAX_SCOPE_SHOWN {
                let cut: String = s.chars().take(MAX_SCOPE_SHOWN).collect();
                format!("{cut}…")
            } else {
                s.to_owned()
            }
        })
        .collect();
    let mut out = shown.join(sep);
    if items.len() > MAX_LISTED {
        out.push_str(&format!("{sep}… ({} more)", items.len() - MAX_LISTED));
    }
    out
}

/// Why a caller may or may not reach an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The agent asked about.
    pub agent: String,
    /// The decision.
    pub allowed: bool,
    /// Every one of the caller's scopes that grants the agent (empty when denied).
    pub granted_by: Vec<String>,
    /// One sentence a person can read.
    pub reason: String,
}

/// Says which scopes grant `agent`, or why none does.
pub fn explain<S: AsRef<str>>(
    permissions: &PermissionSet,
    scopes: &[S],
    agent: &str,
) -> Explanation {
    let granted_by: Vec<String> = scopes
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| permissions.scope_grants(s, agent))
        .map(str::to_owned)
        .collect();
    let allowed = !granted_by.is_empty();
    let reason = if allowed {
        let how: Vec<String> = granted_by
            .iter()
            .map(|s| {
                if permissions.grants_all(s) {
                    format!("{s} (grants every agent)")
                } else {
                    s.clone()
                }
            })
            .collect();
        format!("allowed: granted by scope {}", listed(&how, ", "))
    } else if scopes.is_empty() {
        "denied: the token carries no scopes".to_owned()
    } else {
        let needed = permissions.scopes_granting(agent);
        let have: Vec<&str> = scopes.iter().map(AsRef::as_ref).collect();
        if needed.is_empty() {
            format!(
                "denied: no scope grants {agent}; the token has [{}]",
                listed(&have, " ")
            )
        } else {
            format!(
                "denied: {agent} is granted by [{}], the token has [{}]",
                listed(&needed, " "),
                listed(&have, " ")
            )
        }
    };
    Explanation {
        agent: agent.to_owned(),
        allowed,
        granted_by,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Permission, ALL_AGENTS};
    use pretty_assertions::assert_eq;

    fn set() -> PermissionSet {
        PermissionSet::new([
            Permission {
                scope: "s/echo".into(),
                agents: ["echo".to_owned()].into(),
            },
            Permission {
                scope: "s/all".into(),
                agents: [ALL_AGENTS.to_owned()].into(),
            },
        ])
    }

    #[test]
    fn explains() {
        let p = set();
        assert_eq!(
            explain(&p, &["s/echo"], "stream"),
            Explanation {
                agent: "stream".into(),
                allowed: false,
                granted_by: vec![],
                reason: "denied: stream is granted by [s/all], the token has [s/echo]".into(),
            }
        );
        assert_eq!(
            explain(&p, &["s/echo", "s/all"], "echo").reason,
            "allowed: granted by scope s/echo, s/all (grants every agent)"
        );
        let none: [&str; 0] = [];
        assert_eq!(
            explain(&p, &none, "echo").reason,
            "denied: the token carries no scopes"
        );
    }

    #[test]
    fn reasons_stay_short_whatever_the_token_carries() {
        let mut scopes: Vec<String> = (0..5000).map(|i| format!("s/{i}")).collect();
        scopes.push("x".repeat(10_000));
        let why = explain(&set(), &scopes, "stream");
        assert!(!why.allowed);
        assert!(why.reason.len() < 1000, "{}", why.reason);
        assert!(why.reason.ends_with("… (4981 more)]"), "{}", why.reason);
    }
}
