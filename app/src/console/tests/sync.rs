//! The sync diff from the local profile to another, and applying it.

use pretty_assertions::assert_eq;

use super::*;

pub(super) fn sample_plan() -> switchboard_core::sync::SyncPlan {
    use switchboard_core::sync::{AgentChange, PermissionChange, SecretAction, SecretNeed};
    let mut guarded = agent("guarded", "Guarded echo", 7404, Some(600));
    guarded.auth = BackendAuth::Header {
        name: "x-api-key".into(),
        secret: "sample/guarded".into(),
    };
    let old_echo = agent("echo", "Echo", 7402, Some(60));
    let new_echo = agent("echo", "Echo", 7402, Some(600));
    switchboard_core::sync::SyncPlan {
        agents: vec![
            AgentChange::Removed {
                agent: aws_agents().remove(0),
            },
            AgentChange::Changed {
                from: Box::new(old_echo),
                to: Box::new(new_echo),
                fields: vec!["rate_limit".into()],
            },
            AgentChange::Added { agent: guarded },
        ],
        permissions: vec![
            PermissionChange::Removed {
                scope: "billing/read".into(),
                agents: ["billing".to_owned()].into(),
            },
            PermissionChange::Added {
                scope: "switchboard/guarded".into(),
                agents: ["guarded".to_owned()].into(),
            },
        ],
        secrets: vec![SecretNeed {
            name: "sample/guarded".into(),
            used_by: vec!["guarded".into()],
            action: SecretAction::Missing,
        }],
    }
}

#[test]
fn the_sync_diff_is_the_clis_dry_run_and_applies_after_the_typed_name() {
    let mut app = app();
    press(&mut app, "8jj");
    press(&mut app, "s");
    assert_eq!(
        app.take_requests(),
        vec![Request::PlanSync {
            to: prod_profile(),
            copy_secrets: false
        }]
    );
    let plan = sample_plan();
    app.on_core(CoreEvent::SyncPlanned {
        to: prod_profile(),
        copy_secrets: false,
        plan: Ok(plan.clone()),
    });
    let Some(Dialog::SyncPlan { lines, .. }) = app.dialogs.last() else {
        panic!("no sync dialog: {:?}", app.dialogs);
    };
    // Exactly what `switchboard sync --to prod --dry-run` prints.
    assert_eq!(*lines, plan.dry_run_report("local", "prod"));
    snapshot("sync_diff", screen(&app, 100, 24));

    // Production target: its name must be typed.
    press(&mut app, "a");
    assert_eq!(app.take_requests(), vec![]);
    assert!(matches!(app.dialogs.last(), Some(Dialog::Typed { profile, .. }) if profile == "prod"));
    snapshot("sync_typed_confirm", screen(&app, 100, 24));
    typed(&mut app, "prod");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::ApplySync {
            to: prod_profile(),
            plan
        }]
    );
    assert!(app.dialogs.is_empty());
}

#[test]
fn a_sync_to_a_profile_not_marked_production_asks_yes_or_no() {
    let mut app = app();
    press(&mut app, "8j");
    // Secret values are copied only when asked, as with --copy-secrets.
    press(&mut app, "cs");
    assert_eq!(
        app.take_requests(),
        vec![Request::PlanSync {
            to: dev_profile(),
            copy_secrets: true
        }]
    );
    let plan = sample_plan();
    app.on_core(CoreEvent::SyncPlanned {
        to: dev_profile(),
        copy_secrets: true,
        plan: Ok(plan.clone()),
    });
    press(&mut app, "a");
    let Some(Dialog::Confirm { message, .. }) = app.dialogs.last() else {
        panic!("no question: {:?}", app.dialogs);
    };
    assert_eq!(
        message,
        "Make dev's agents and permissions exactly local's (3 agent changes, 2 scope changes, \
         0 secret values copied)?"
    );
    press(&mut app, "y");
    assert_eq!(
        app.take_requests(),
        vec![Request::ApplySync {
            to: dev_profile(),
            plan
        }]
    );
}

#[test]
fn an_empty_sync_diff_has_nothing_to_apply_and_local_is_no_target() {
    let mut app = app();
    press(&mut app, "8s");
    assert_eq!(app.take_requests(), vec![]);
    assert_eq!(
        app.status,
        Status::Error(
            "sync copies from the local profile to another: select an AWS profile".into()
        )
    );
    press(&mut app, "j");
    let empty = switchboard_core::sync::SyncPlan {
        agents: vec![],
        permissions: vec![],
        secrets: vec![],
    };
    app.on_core(CoreEvent::SyncPlanned {
        to: dev_profile(),
        copy_secrets: false,
        plan: Ok(empty),
    });
    snapshot("sync_diff_empty", screen(&app, 100, 24));
    press(&mut app, "a");
    assert_eq!(app.take_requests(), vec![]);
    assert_eq!(
        app.status,
        Status::Info("nothing to apply: the profiles agree".into())
    );
    app.on_key(code(KeyCode::Esc));
    assert!(app.dialogs.is_empty());
    // A plan that cannot be made is an error in the status line.
    app.on_core(CoreEvent::SyncPlanned {
        to: dev_profile(),
        copy_secrets: false,
        plan: Err("comparing local with dev: store unavailable".into()),
    });
    assert!(app.dialogs.is_empty());
    assert_eq!(
        app.status,
        Status::Error("comparing local with dev: store unavailable".into())
    );
}

#[test]
fn a_long_sync_diff_scrolls_and_stops_at_its_end() {
    use switchboard_core::sync::{AgentChange, SyncPlan};
    let mut app = app();
    press(&mut app, "8j");
    let plan = SyncPlan {
        agents: (0..40)
            .map(|i| AgentChange::Added {
                agent: agent(&format!("agent-{i:02}"), "A", 9000 + i, None),
            })
            .collect(),
        permissions: vec![],
        secrets: vec![],
    };
    app.on_core(CoreEvent::SyncPlanned {
        to: dev_profile(),
        copy_secrets: false,
        plan: Ok(plan),
    });
    let shown = screen(&app, 100, 24);
    assert!(
        shown.contains("+ agent agent-00") && shown.contains("lines 1–"),
        "{shown}"
    );
    assert!(!shown.contains("dry run: nothing was changed"), "{shown}");
    for _ in 0..10 {
        app.on_key(code(KeyCode::PageDown));
        screen(&app, 100, 24);
    }
    // 43 rows: the heading, 40 agents, the summary on two.
    let end = screen(&app, 100, 24);
    assert!(
        end.contains("+ agent agent-39")
            && end.contains("dry run: nothing was changed")
            && end.contains("lines 27–43 of 43"),
        "{end}"
    );
    // At the end, one step up moves at once.
    press(&mut app, "k");
    let up = screen(&app, 100, 24);
    assert!(
        up.contains("lines 26–42 of 43") && up.contains("+ agent agent-24"),
        "{up}"
    );
}
