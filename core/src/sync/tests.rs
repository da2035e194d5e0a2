//! The plan, its report and the difference, on records made here.

use std::collections::BTreeSet;

use super::plan::check_source;
use super::*;
use crate::registry::{AgentRecord, BackendAuth, Permission};
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
