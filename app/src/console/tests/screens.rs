//! Each screen drawn with the sample data, and a terminal too small for any.

use pretty_assertions::assert_eq;

use super::*;

#[test]
fn agents_screen() {
    let mut app = app();
    app.on_core(started(1, "echo", "SendMessage", 0));
    app.on_core(finished(1, 200, 12));
    snapshot("agents", screen(&app, 100, 30));
}

#[test]
fn agents_screen_at_80x24_with_the_guarded_agent_selected() {
    let mut app = app();
    press(&mut app, "j");
    snapshot("agents_80x24", screen(&app, 80, 24));
}

#[test]
fn too_small_a_terminal_says_so() {
    snapshot("too_small", screen(&app(), 60, 20));
}

#[test]
fn permissions_screen() {
    let mut app = app();
    press(&mut app, "2jl");
    snapshot("permissions", screen(&app, 100, 24));
}

#[test]
fn clients_screen() {
    let mut app = app();
    press(&mut app, "3");
    snapshot("clients", screen(&app, 100, 24));
}

#[test]
fn traffic_screen() {
    let mut app = app();
    with_traffic(&mut app);
    press(&mut app, "4");
    snapshot("traffic", screen(&app, 100, 24));
}

#[test]
fn traffic_detail_shows_the_events_pretty_printed() {
    let mut app = app();
    with_traffic(&mut app);
    press(&mut app, "4kk");
    app.on_key(code(KeyCode::Enter));
    app.on_core(sse(2, 3, status_event("t-1", "TASK_STATE_COMPLETED")));
    app.on_core(finished(2, 200, 1510));
    press(&mut app, "g");
    snapshot("traffic_detail", screen(&app, 100, 40));
}

#[test]
fn traffic_filters_and_pause() {
    let mut app = app();
    with_traffic(&mut app);
    press(&mut app, "4s"); // 2xx/3xx
    press(&mut app, "p");
    app.on_core(started(5, "echo", "SendMessage", 2000));
    app.on_core(finished(5, 200, 3));
    snapshot("traffic_filtered_paused", screen(&app, 100, 24));
}

#[test]
fn send_screen_idle() {
    let mut app = app();
    press(&mut app, "5");
    snapshot("send_idle", screen(&app, 100, 24));
}

#[test]
fn send_screen_streaming() {
    let mut app = app();
    press(&mut app, "5i");
    typed(&mut app, "hello stream");
    app.on_key(code(KeyCode::Enter));
    press(&mut app, "t");
    let reqs = app.take_requests();
    let Some(Request::Send(req)) = reqs.first() else {
        panic!("{reqs:?}")
    };
    assert_eq!(
        (
            req.agent.as_str(),
            req.client.as_str(),
            req.text.as_str(),
            req.stream
        ),
        ("stream", "demo-client", "hello stream", true)
    );
    assert_eq!(req.scopes.len(), 3);
    let id = req.send_id;
    app.on_core(CoreEvent::Send {
        send_id: id,
        update: SendUpdate::Status(200),
    });
    app.on_core(CoreEvent::Send {
        send_id: id,
        update: SendUpdate::Event(json!({"jsonrpc": "2.0", "id": "1", "result": {"task": {"id": "t-9", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED"}}}})),
    });
    for (i, ev) in [
        status_event("t-9", "TASK_STATE_WORKING"),
        artifact_event("t-9", "hello"),
        artifact_event("t-9", "stream"),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = i;
        app.on_core(CoreEvent::Send {
            send_id: id,
            update: SendUpdate::Event(ev),
        });
    }
    snapshot("send_streaming", screen(&app, 100, 30));

    // Cancel the running task: CancelTask with its id.
    press(&mut app, "x");
    assert_eq!(
        app.take_requests(),
        vec![Request::Cancel {
            send_id: id,
            agent: "stream".into(),
            client: "demo-client".into(),
            scopes: req.scopes.clone(),
            task_id: "t-9".into(),
        }]
    );
}

#[test]
fn discover_screen_without_discovery() {
    let mut app = app();
    app.model.discovery = false;
    press(&mut app, "6");
    snapshot("discover_unavailable", screen(&app, 100, 24));
}

#[test]
fn discover_screen_ranks_agents() {
    let mut app = app();
    press(&mut app, "6/");
    typed(&mut app, "say it back");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Discover {
            query: "say it back".into()
        }]
    );
    app.on_core(CoreEvent::Discovered(Ok(crate::console::msg::Discovered {
        query: "say it back".into(),
        mode: "lexical".into(),
        model: None,
        notice: Some("the embedding model is not installed; run scripts/install-model".into()),
        hits: vec![
            crate::console::msg::DiscoverHit {
                agent: "echo".into(),
                name: "Echo".into(),
                score: 0.912,
                skills: vec!["Echo".into()],
                enabled: true,
            },
            crate::console::msg::DiscoverHit {
                agent: "weather".into(),
                name: "Weather".into(),
                score: 0.101,
                skills: vec![],
                enabled: false,
            },
        ],
    })));
    snapshot("discover", screen(&app, 100, 24));
}

#[test]
fn limits_screen() {
    let mut app = app();
    press(&mut app, "7");
    assert_eq!(app.take_requests(), vec![Request::RefreshCounters]);
    snapshot("limits", screen(&app, 100, 24));
}

#[test]
fn profile_screen() {
    let mut app = app();
    press(&mut app, "8");
    snapshot("profile", screen(&app, 100, 24));
    let shown = screen(&app, 100, 24);
    assert!(!shown.contains("no AWS backends"), "{shown}");
    // The active profile again: nothing to do.
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.take_requests(), vec![]);
    assert_eq!(
        app.status,
        Status::Info("local is already the active profile".into())
    );
}

#[test]
fn production_profile_is_red_and_writes_need_the_typed_name() {
    let mut app = production_app();
    press(&mut app, "2");
    app.on_key(key(' ')); // switchboard/all × echo (through *): grant directly
    assert_eq!(app.take_requests(), vec![]);
    assert!(matches!(app.dialogs.last(), Some(Dialog::Typed { .. })));
    snapshot("production_typed_confirm", screen(&app, 100, 24));

    typed(&mut app, "locl");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.take_requests(), vec![]);
    snapshot("production_typed_confirm_wrong", screen(&app, 100, 24));

    typed(&mut app, "local");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Grant {
            scope: "switchboard/all".into(),
            agent: "echo".into()
        }]
    );
    assert!(app.dialogs.is_empty());
}
