//! Every screen and dialog as an insta snapshot over `TestBackend` at a
//! fixed size, with the state built through actions and core events; and
//! the key handling behind them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use pretty_assertions::assert_eq;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::{json, Value};
use switchboard_core::auth::Explanation;
use switchboard_core::profile::{AwsProfile, Profile, ProfileKind};
use switchboard_core::registry::{
    AgentRecord, BackendAuth, ClientRecord, CounterEntry, CounterKey, Permission,
};
use switchboard_core::TrafficEvent;

use super::app::{App, Model, StackView, Status, Tab};
use super::dialog::Dialog;
use super::keymap::Keymap;
use super::msg::{CoreEvent, Health, Inspection, Minted, Request, SendUpdate};
use super::theme::Theme;

/// 2023-11-14 22:13:20 UTC plus 15 s: inside a minute window.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 - 1_700_000_000 % 60 + 15)
}

fn card(name: &str, url: &str, oauth: bool) -> Value {
    let mut c = json!({
        "name": name,
        "description": format!("{name} sample agent"),
        "version": "0.1.0",
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}
        ],
        "capabilities": {"streaming": true},
        "skills": [{"id": "s", "name": name, "description": "does its thing", "tags": ["demo", "sample"]}],
        "protocolVersion": "0.3",
        "url": url,
    });
    if oauth {
        c["securitySchemes"] = json!({"oauth2": {"oauth2SecurityScheme": {"flows": {"clientCredentials": {
            "tokenUrl": "http://127.0.0.1:7401/oauth2/token",
            "scopes": {"agents/guarded.invoke": "Call this agent"}}}}}});
    }
    c
}

fn agent(id: &str, name: &str, port: u16, limit: Option<u32>) -> AgentRecord {
    let mut a = AgentRecord::new(id, format!("http://127.0.0.1:{port}"));
    a.name = name.into();
    a.description = format!("{name} sample agent");
    a.rate_limit = limit;
    a.version = 1;
    a
}

fn perm(scope: &str, agents: &[&str]) -> Permission {
    Permission {
        scope: scope.into(),
        agents: agents
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>(),
    }
}

fn client(id: &str, scopes: &[&str]) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        secret_hash: "x$y".into(),
        allowed_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: 0,
    }
}

fn model(profile: Profile) -> Model {
    Model::new(
        StackView {
            gateway_url: "http://127.0.0.1:7400".into(),
            issuer_url: "http://127.0.0.1:7401".into(),
            token_url: "http://127.0.0.1:7401/oauth2/token".into(),
            data_dir: PathBuf::from("/home/dev/.local/share/switchboard"),
            log_file: PathBuf::from("/home/dev/.local/share/switchboard/switchboard.log"),
            default_limit: 600,
        },
        profile.clone(),
        vec![profile, dev_profile(), prod_profile()],
    )
}

/// An AWS profile with a token URL, not production.
fn dev_profile() -> Profile {
    Profile {
        name: "dev".into(),
        production: false,
        kind: ProfileKind::Aws(AwsProfile {
            region: "us-east-1".into(),
            table_prefix: "switchboard-dev-".into(),
            secret_prefix: "switchboard/dev/".into(),
            issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Dev".into(),
            jwks_uri: None,
            token_url: Some("https://dev.auth.us-east-1.amazoncognito.com/oauth2/token".into()),
            endpoint_url: None,
            aws_profile: None,
        }),
    }
}

/// An AWS profile marked production, without a token URL.
fn prod_profile() -> Profile {
    Profile {
        name: "prod".into(),
        production: true,
        kind: ProfileKind::Aws(AwsProfile {
            region: "eu-west-1".into(),
            table_prefix: "switchboard-prod-".into(),
            secret_prefix: "switchboard/prod/".into(),
            issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Prod".into(),
            jwks_uri: None,
            token_url: None,
            endpoint_url: None,
            aws_profile: None,
        }),
    }
}

/// A console with the sample registry loaded, as the core reports it.
fn app_with(profile: Profile) -> App {
    let mut app = App::new(model(profile), Keymap::defaults(), Theme::new(false));
    app.clock = Some(now());
    let mut guarded = agent("guarded", "Guarded echo", 7404, Some(600));
    guarded.auth = BackendAuth::OAuth2 {
        token_url: "http://127.0.0.1:7401/oauth2/token".into(),
        client_id: "switchboard-gateway".into(),
        secret: "sample/switchboard-gateway".into(),
        scopes: vec!["agents/guarded.invoke".into()],
    };
    let mut disabled = agent("weather", "Weather", 9000, None);
    disabled.enabled = false;
    app.on_core(CoreEvent::Agents(vec![
        agent("echo", "Echo", 7402, Some(600)),
        guarded,
        agent("stream", "Streamer", 7403, Some(5)),
        disabled,
    ]));
    app.on_core(CoreEvent::Permissions(vec![
        perm("switchboard/all", &["*"]),
        perm("switchboard/echo", &["echo"]),
        perm("switchboard/guarded", &["guarded"]),
        perm("switchboard/stream", &["stream"]),
    ]));
    app.on_core(CoreEvent::Clients(vec![
        client(
            "demo-client",
            &[
                "switchboard/echo",
                "switchboard/stream",
                "switchboard/guarded",
            ],
        ),
        client("switchboard-gateway", &["agents/guarded.invoke"]),
    ]));
    let window = now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 60;
    let counter = |c: &str, a: &str, n: u64| CounterEntry {
        key: CounterKey {
            client_id: c.into(),
            agent_id: a.into(),
            window,
        },
        count: n,
        expires_at: 0,
    };
    app.on_core(CoreEvent::Counters(vec![
        counter("demo-client", "echo", 12),
        counter("demo-client", "stream", 5),
        counter("other", "echo", 3),
    ]));
    for (id, port, oauth) in [
        ("echo", 7402, false),
        ("guarded", 7404, true),
        ("stream", 7403, false),
    ] {
        app.on_core(CoreEvent::Health {
            id: id.into(),
            health: Health::Up {
                latency: Duration::from_millis(2),
                card: Arc::new(card(id, &format!("http://127.0.0.1:{port}"), oauth)),
            },
        });
    }
    app.on_core(CoreEvent::Health {
        id: "weather".into(),
        health: Health::Down {
            error: "connection refused".into(),
        },
    });
    app.status = Status::None;
    app.take_requests();
    app
}

fn app() -> App {
    app_with(Profile::local())
}

fn production_app() -> App {
    let mut p = Profile::local();
    p.production = true;
    app_with(p)
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.render(f)).unwrap();
    t.backend().to_string()
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.on_key(key(c));
    }
}

fn typed(app: &mut App, text: &str) {
    press(app, text);
}

fn started(id: u64, agent: &str, method: &str, at_ms: u64) -> CoreEvent {
    CoreEvent::Traffic(Arc::new(TrafficEvent::Started {
        id,
        at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + at_ms),
        client: "demo-client".into(),
        agent: agent.into(),
        method: method.into(),
    }))
}

fn sse(id: u64, seq: u64, data: Value) -> CoreEvent {
    CoreEvent::Traffic(Arc::new(TrafficEvent::Sse {
        id,
        seq,
        event: None,
        data: data.to_string(),
    }))
}

fn finished(id: u64, status: u16, ms: u64) -> CoreEvent {
    CoreEvent::Traffic(Arc::new(TrafficEvent::Finished {
        id,
        status,
        latency: Duration::from_millis(ms),
        error: (status >= 400).then(|| "agent not permitted".to_owned()),
    }))
}

fn status_event(task: &str, state: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": "1", "result": {"statusUpdate": {
        "taskId": task, "contextId": "ctx", "status": {"state": state}}}})
}

fn artifact_event(task: &str, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": "1", "result": {"artifactUpdate": {
        "taskId": task, "contextId": "ctx", "append": true,
        "artifact": {"artifactId": "a1", "parts": [{"text": text}]}}}})
}

fn with_traffic(app: &mut App) {
    app.on_core(started(1, "echo", "SendMessage", 0));
    app.on_core(finished(1, 200, 4));
    app.on_core(started(2, "stream", "SendStreamingMessage", 250));
    app.on_core(sse(2, 0, json!({"jsonrpc": "2.0", "id": "1", "result": {"task": {"id": "t-1", "contextId": "ctx", "status": {"state": "TASK_STATE_SUBMITTED"}}}})));
    app.on_core(sse(2, 1, status_event("t-1", "TASK_STATE_WORKING")));
    app.on_core(sse(2, 2, artifact_event("t-1", "chunk 1 of 4")));
    app.on_core(started(3, "guarded", "SendMessage", 900));
    app.on_core(finished(3, 403, 1));
    app.on_core(started(
        4,
        "stream",
        "GET /.well-known/agent-card.json",
        1200,
    ));
}

// ---------------------------------------------------------------- screens

#[test]
fn agents_screen() {
    let mut app = app();
    app.on_core(started(1, "echo", "SendMessage", 0));
    app.on_core(finished(1, 200, 12));
    insta::assert_snapshot!("agents", screen(&app, 100, 30));
}

#[test]
fn agents_screen_at_80x24_with_the_guarded_agent_selected() {
    let mut app = app();
    press(&mut app, "j");
    insta::assert_snapshot!("agents_80x24", screen(&app, 80, 24));
}

#[test]
fn too_small_a_terminal_says_so() {
    insta::assert_snapshot!("too_small", screen(&app(), 60, 20));
}

#[test]
fn permissions_screen() {
    let mut app = app();
    press(&mut app, "2jl");
    insta::assert_snapshot!("permissions", screen(&app, 100, 24));
}

#[test]
fn clients_screen() {
    let mut app = app();
    press(&mut app, "3");
    insta::assert_snapshot!("clients", screen(&app, 100, 24));
}

#[test]
fn traffic_screen() {
    let mut app = app();
    with_traffic(&mut app);
    press(&mut app, "4");
    insta::assert_snapshot!("traffic", screen(&app, 100, 24));
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
    insta::assert_snapshot!("traffic_detail", screen(&app, 100, 40));
}

#[test]
fn traffic_filters_and_pause() {
    let mut app = app();
    with_traffic(&mut app);
    press(&mut app, "4s"); // 2xx/3xx
    press(&mut app, "p");
    app.on_core(started(5, "echo", "SendMessage", 2000));
    app.on_core(finished(5, 200, 3));
    insta::assert_snapshot!("traffic_filtered_paused", screen(&app, 100, 24));
}

#[test]
fn send_screen_idle() {
    let mut app = app();
    press(&mut app, "5");
    insta::assert_snapshot!("send_idle", screen(&app, 100, 24));
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
    insta::assert_snapshot!("send_streaming", screen(&app, 100, 30));

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
    insta::assert_snapshot!("discover_unavailable", screen(&app, 100, 24));
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
    app.on_core(CoreEvent::Discovered(Ok(super::msg::Discovered {
        query: "say it back".into(),
        mode: "lexical".into(),
        model: None,
        notice: Some("the embedding model is not installed; run scripts/install-model".into()),
        hits: vec![
            super::msg::DiscoverHit {
                agent: "echo".into(),
                name: "Echo".into(),
                score: 0.912,
                skills: vec!["Echo".into()],
                enabled: true,
            },
            super::msg::DiscoverHit {
                agent: "weather".into(),
                name: "Weather".into(),
                score: 0.101,
                skills: vec![],
                enabled: false,
            },
        ],
    })));
    insta::assert_snapshot!("discover", screen(&app, 100, 24));
}

#[test]
fn limits_screen() {
    let mut app = app();
    press(&mut app, "7");
    assert_eq!(app.take_requests(), vec![Request::RefreshCounters]);
    insta::assert_snapshot!("limits", screen(&app, 100, 24));
}

#[test]
fn profile_screen() {
    let mut app = app();
    press(&mut app, "8");
    insta::assert_snapshot!("profile", screen(&app, 100, 24));
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
    insta::assert_snapshot!("production_typed_confirm", screen(&app, 100, 24));

    typed(&mut app, "locl");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.take_requests(), vec![]);
    insta::assert_snapshot!("production_typed_confirm_wrong", screen(&app, 100, 24));

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

// ---------------------------------------------------------------- dialogs

#[test]
fn help_popup_lists_every_key_from_the_keymap() {
    let mut app = app();
    press(&mut app, "?");
    insta::assert_snapshot!("help", screen(&app, 100, 30));
    press(&mut app, "?");
    assert!(app.dialogs.is_empty());
}

#[test]
fn add_agent_by_url_prefills_the_form_from_its_card() {
    let mut app = app();
    press(&mut app, "a");
    insta::assert_snapshot!("add_agent_url", screen(&app, 100, 24));
    typed(&mut app, "http://127.0.0.1:9100");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::FetchCard {
            url: "http://127.0.0.1:9100".into()
        }]
    );
    let card = card("Weather Bot", "http://127.0.0.1:9100", false);
    app.on_core(CoreEvent::CardFetched {
        url: "http://127.0.0.1:9100".into(),
        result: Ok(card.clone()),
    });
    insta::assert_snapshot!("add_agent_form", screen(&app, 100, 30));
    app.on_key(code(KeyCode::Enter));
    let reqs = app.take_requests();
    let Some(Request::SaveAgent {
        record,
        create: true,
        secret: None,
    }) = reqs.first()
    else {
        panic!("{reqs:?}")
    };
    assert_eq!(
        (
            record.id.as_str(),
            record.name.as_str(),
            record.url.as_str()
        ),
        ("weather-bot", "Weather Bot", "http://127.0.0.1:9100")
    );
    assert_eq!(record.card.as_ref(), Some(&card));
    app.on_core(CoreEvent::AgentSaved {
        id: "weather-bot".into(),
        created: true,
    });
    assert!(app.dialogs.is_empty());
}

#[test]
fn a_url_without_a_card_still_opens_the_form() {
    let mut app = app();
    press(&mut app, "a");
    typed(&mut app, "http://127.0.0.1:9100/a2a/");
    app.on_key(code(KeyCode::Enter));
    app.on_core(CoreEvent::CardFetched {
        url: "http://127.0.0.1:9100/a2a/".into(),
        result: Err("connection refused".into()),
    });
    let Some(Dialog::Form { form, .. }) = app.dialogs.last() else {
        panic!()
    };
    assert_eq!(form.text("id"), "a2a");
    assert!(form.note.as_ref().unwrap().contains("connection refused"));
}

#[test]
fn agent_form_validates_every_field() {
    let mut app = app();
    press(&mut app, "j");
    press(&mut app, "e"); // guarded: oauth2
                          // Break the URL, the limit and the token URL.
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    for f in &mut form.fields {
        if let super::form::FieldKind::Text(t) = &mut f.kind {
            match f.key {
                "url" => t.set("http://169.254.169.254/"),
                "limit" => t.set("lots"),
                "token_url" => t.set("not a url"),
                _ => {}
            }
        }
    }
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.take_requests(), vec![]);
    insta::assert_snapshot!("edit_agent_errors", screen(&app, 100, 36));
}

#[test]
fn backend_secrets_are_typed_masked_and_sent_once() {
    let mut app = app();
    press(&mut app, "e"); // echo: no auth
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    let auth = form.fields.iter().position(|f| f.key == "auth").unwrap();
    form.focus = auth;
    app.on_key(code(KeyCode::Right)); // header
    for _ in 0..2 {
        app.on_key(code(KeyCode::Tab));
    }
    // Header name, then (token fields hidden) the secret name, then its value.
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    form.focus = form.fields.iter().position(|f| f.key == "header").unwrap();
    typed(&mut app, "x-api-key");
    let Some(Dialog::Form { form, .. }) = app.dialogs.last_mut() else {
        panic!()
    };
    form.focus = form
        .fields
        .iter()
        .position(|f| f.key == "secret_value")
        .unwrap();
    typed(&mut app, "hunter2");
    let shown = screen(&app, 100, 30);
    assert!(!shown.contains("hunter2"), "{shown}");
    insta::assert_snapshot!("edit_agent_secret_masked", shown);
    app.on_key(code(KeyCode::Enter));
    let reqs = app.take_requests();
    let Some(Request::SaveAgent {
        record,
        create: false,
        secret: Some((name, value)),
    }) = reqs.first()
    else {
        panic!("{reqs:?}")
    };
    assert_eq!(
        record.auth,
        BackendAuth::Header {
            name: "x-api-key".into(),
            secret: "agents/echo".into()
        }
    );
    assert_eq!((name.as_str(), value.expose()), ("agents/echo", "hunter2"));
    // A failed save keeps the form open with the error.
    app.on_core(CoreEvent::Failed {
        message: "agent echo was changed elsewhere".into(),
        form: true,
    });
    let Some(Dialog::Form { form, .. }) = app.dialogs.last() else {
        panic!()
    };
    assert_eq!(
        form.error.as_deref(),
        Some("agent echo was changed elsewhere")
    );
    assert!(!form.pending);
}

#[test]
fn delete_asks_first() {
    let mut app = app();
    press(&mut app, "d");
    insta::assert_snapshot!("delete_confirm", screen(&app, 100, 24));
    press(&mut app, "n");
    assert_eq!(app.take_requests(), vec![]);
    press(&mut app, "dy");
    assert_eq!(
        app.take_requests(),
        vec![Request::DeleteAgent { id: "echo".into() }]
    );
}

#[test]
fn new_scope_form() {
    let mut app = app();
    press(&mut app, "2llln");
    insta::assert_snapshot!("new_scope", screen(&app, 100, 24));
    typed(&mut app, "team/weather");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Grant {
            scope: "team/weather".into(),
            agent: "weather".into()
        }]
    );
    app.on_core(CoreEvent::Done("team/weather now grants weather".into()));
    assert!(app.dialogs.is_empty());
}

#[test]
fn add_client_shows_the_secret_once() {
    let mut app = app();
    press(&mut app, "3a");
    typed(&mut app, "ci-bot");
    app.on_key(code(KeyCode::Tab));
    typed(&mut app, "switchboard/echo");
    insta::assert_snapshot!("add_client", screen(&app, 100, 24));
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::AddClient {
            id: "ci-bot".into(),
            scopes: vec!["switchboard/echo".into()]
        }]
    );
    app.on_core(CoreEvent::ClientCreated {
        id: "ci-bot".into(),
        secret: "s3cr3t-shown-once".into(),
    });
    insta::assert_snapshot!("client_secret_once", screen(&app, 100, 24));
    press(&mut app, "y");
    assert_eq!(app.take_clipboard(), vec!["s3cr3t-shown-once".to_owned()]);
    app.on_key(code(KeyCode::Enter));
    assert!(app.dialogs.is_empty());
}

#[test]
fn mint_a_token_for_chosen_scopes() {
    let mut app = app();
    press(&mut app, "3m");
    // Untick switchboard/guarded (third), tick agents/guarded.invoke (fourth).
    app.on_key(code(KeyCode::Down));
    app.on_key(code(KeyCode::Down));
    app.on_key(key(' '));
    app.on_key(code(KeyCode::Down));
    app.on_key(key(' '));
    insta::assert_snapshot!("mint", screen(&app, 100, 24));
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Mint {
            client: "demo-client".into(),
            scopes: vec![
                "switchboard/echo".into(),
                "switchboard/stream".into(),
                "agents/guarded.invoke".into()
            ],
            ttl: Duration::from_secs(3600)
        }]
    );
    app.on_core(CoreEvent::Minted(Minted {
        client: "demo-client".into(),
        scopes: vec!["switchboard/echo".into(), "switchboard/stream".into()],
        token: "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJkZW1vLWNsaWVudCJ9.c2lnbmF0dXJl"
            .into(),
        ttl: Duration::from_secs(3600),
    }));
    assert!(app.dialogs.is_empty());
    insta::assert_snapshot!("minted", screen(&app, 100, 24));
    press(&mut app, "y");
    assert_eq!(app.take_clipboard().len(), 1);
}

#[test]
fn inspect_a_pasted_token() {
    let mut app = app();
    press(&mut app, "3");
    app.on_terminal(crossterm::event::Event::Paste("eyJ.eyJ.sig\n".into()));
    insta::assert_snapshot!("inspect_form", screen(&app, 100, 24));
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::Inspect {
            token: "eyJ.eyJ.sig".into()
        }]
    );
    app.on_core(CoreEvent::Inspected(Ok(Inspection {
        header: json!({"alg": "RS256", "kid": "k1"}),
        claims: json!({"client_id": "demo-client", "scope": "switchboard/echo", "exp": 1_700_003_600u64}),
        validity: Ok("demo-client".into()),
        agents: vec![
            Explanation {
                agent: "echo".into(),
                allowed: true,
                granted_by: vec!["switchboard/echo".into()],
                reason: "allowed: granted by scope switchboard/echo".into(),
            },
            Explanation {
                agent: "stream".into(),
                allowed: false,
                granted_by: vec![],
                reason: "denied: stream is granted by [switchboard/all switchboard/stream], the token has [switchboard/echo]".into(),
            },
        ],
    })));
    assert!(app.dialogs.is_empty());
    insta::assert_snapshot!("inspected", screen(&app, 100, 30));
}

#[test]
fn send_pickers() {
    let mut app = app();
    press(&mut app, "5a");
    insta::assert_snapshot!("pick_agent", screen(&app, 100, 24));
    press(&mut app, "k");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.screens.send.agent.as_deref(), Some("guarded"));
    press(&mut app, "cj");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.screens.send.client.as_deref(),
        Some("switchboard-gateway")
    );
}

// ---------------------------------------------------------------- keys

#[test]
fn quitting() {
    let mut app = app();
    press(&mut app, "q");
    assert!(app.quit);
    // In a form, q is a letter; ctrl-c still quits.
    let mut app = self::app();
    press(&mut app, "aq");
    assert!(!app.quit);
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
}

#[test]
fn tabs_by_number_tab_key_and_mouse() {
    let mut app = app();
    press(&mut app, "4");
    assert_eq!(app.tab, Tab::Traffic);
    app.on_key(code(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Send);
    app.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    app.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(app.tab, Tab::Clients);
    // "1:Agents 2:Permissions 3:Clients …": column 10 is in "2:Permissions".
    app.on_terminal(crossterm::event::Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 10,
        row: 1,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.tab, Tab::Permissions);
    // Typing in the Send box does not switch tabs.
    press(&mut app, "5i12");
    assert_eq!(app.tab, Tab::Send);
}

#[test]
fn mouse_wheel_and_clicks_select_rows() {
    let mut app = app();
    let _ = screen(&app, 100, 30);
    app.on_terminal(crossterm::event::Event::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 5,
        row: 5,
        modifiers: KeyModifiers::NONE,
    }));
    let shown = screen(&app, 100, 30);
    assert!(shown.contains("Weather — Weather sample agent"), "{shown}");
    // Row 4 is the second agent (borders, tabs, header above).
    app.on_terminal(crossterm::event::Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row: 5,
        modifiers: KeyModifiers::NONE,
    }));
    let shown = screen(&app, 100, 30);
    assert!(
        shown.contains("Guarded echo — Guarded echo sample agent"),
        "{shown}"
    );
}

#[test]
fn permission_keys_grant_and_revoke() {
    let mut app = app();
    press(&mut app, "2j"); // switchboard/echo × echo
    app.on_key(key(' '));
    assert_eq!(
        app.take_requests(),
        vec![Request::Revoke {
            scope: "switchboard/echo".into(),
            agent: "echo".into()
        }]
    );
    press(&mut app, "l+"); // × guarded: grant
    assert_eq!(
        app.take_requests(),
        vec![Request::Grant {
            scope: "switchboard/echo".into(),
            agent: "guarded".into()
        }]
    );
    press(&mut app, "k-"); // switchboard/all × guarded: only through *
    assert_eq!(app.take_requests(), vec![]);
    assert_eq!(
        app.status,
        Status::Error("switchboard/all reaches guarded through *; revoke * instead".into())
    );
}

#[test]
fn errors_land_in_the_status_line_and_the_console_stays_open() {
    let mut app = app();
    app.on_core(CoreEvent::Failed {
        message: "cannot save agent echo: store unavailable: disk I/O error".into(),
        form: false,
    });
    press(&mut app, "5s"); // nothing written yet
    assert!(!app.quit);
    assert_eq!(
        app.status,
        Status::Error("write a message first (i)".into())
    );
    insta::assert_snapshot!("status_error", screen(&app, 100, 24));
}

#[test]
fn cancelled_typed_confirmation_writes_nothing() {
    let mut app = production_app();
    press(&mut app, "dy");
    assert!(matches!(app.dialogs.last(), Some(Dialog::Typed { .. })));
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.take_requests(), vec![]);
    assert!(app.dialogs.is_empty());
    assert_eq!(app.status, Status::Info("nothing was written".into()));
}

#[test]
fn every_screen_and_dialog_fits_80x24() {
    let mut app = app();
    with_traffic(&mut app);
    for tab in "12345678".chars() {
        press(&mut app, &tab.to_string());
        let shown = screen(&app, 80, 24);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 24);
        assert!(lines[1].contains("8:Profile"), "{shown}");
        assert!(lines[23].contains("? help"), "{shown}");
    }
    press(&mut app, "1e");
    let shown = screen(&app, 80, 24);
    assert!(
        shown.contains("Edit agent echo") && shown.contains("Backend auth"),
        "{shown}"
    );
    app.on_key(code(KeyCode::Esc));
    press(&mut app, "?");
    assert!(screen(&app, 80, 24).contains("Keys"));
    insta::assert_snapshot!("traffic_80x24", {
        press(&mut app, "?4");
        app.on_key(code(KeyCode::Enter));
        screen(&app, 80, 24)
    });
}

// ---------------------------------------------------------------- profiles

/// The agents an AWS profile's tables hold (different from local's).
fn aws_agents() -> Vec<AgentRecord> {
    let mut billing = agent("billing", "Billing", 8443, Some(120));
    billing.url = "https://billing.internal.example".into();
    vec![billing, agent("echo", "Echo", 7402, Some(600))]
}

/// Switches `app` to `profile` as the core would report it, with lists.
fn switched_to(app: &mut App, profile: Profile) {
    app.on_core(CoreEvent::ProfileSwitched { profile });
    app.on_core(CoreEvent::Agents(aws_agents()));
    app.on_core(CoreEvent::Permissions(vec![perm(
        "billing/read",
        &["billing"],
    )]));
    app.on_core(CoreEvent::Clients(vec![]));
}

#[test]
fn choosing_a_profile_switches_live_and_the_header_follows_the_core() {
    let mut app = app();
    press(&mut app, "8j");
    assert_eq!(app.take_requests(), vec![]);
    app.on_key(code(KeyCode::Enter));
    // The worker opens the profile; nothing changes until it answers.
    assert_eq!(
        app.take_requests(),
        vec![Request::SwitchProfile {
            profile: dev_profile()
        }]
    );
    assert_eq!(app.model.profile.name, "local");
    assert_eq!(app.model.switching.as_deref(), Some("dev"));
    insta::assert_snapshot!("profile_switching", screen(&app, 100, 24));

    switched_to(&mut app, dev_profile());
    assert_eq!(app.model.profile, dev_profile());
    assert_eq!(app.model.switching, None);
    assert_eq!(
        app.model
            .agents
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        vec!["billing", "echo"]
    );
    assert!(app.model.health.is_empty() && app.model.counters.is_empty());
    insta::assert_snapshot!("profile_aws_active", screen(&app, 100, 24));

    // Every registry screen shows that profile's data now.
    press(&mut app, "1");
    let shown = screen(&app, 100, 24);
    assert!(
        shown.contains("billing") && !shown.contains("Streamer"),
        "{shown}"
    );
    // Send still goes through the local gateway, to the local agents.
    press(&mut app, "5a");
    let Some(Dialog::Picker { items, .. }) = app.dialogs.last() else {
        panic!("no agent picker");
    };
    let ids: Vec<&str> = items.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(ids, vec!["echo", "guarded", "stream", "weather"]);
    app.on_key(code(KeyCode::Esc));
    insta::assert_snapshot!("send_on_aws_profile", screen(&app, 100, 24));
}

#[test]
fn a_profile_that_cannot_be_reached_leaves_the_previous_one_active() {
    let mut app = app();
    press(&mut app, "8jj");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::SwitchProfile {
            profile: prod_profile()
        }]
    );
    let message = "cannot switch to profile prod: cannot load the registry: store unavailable: \
        listing agents: AWS region eu-west-1 unreachable: cannot connect";
    app.on_core(CoreEvent::ProfileFailed {
        profile: "prod".into(),
        message: message.into(),
    });
    assert!(!app.quit);
    assert_eq!(app.model.profile.name, "local");
    assert_eq!(app.model.agents.len(), 4, "the local lists stay");
    assert_eq!(app.model.switching, None);
    assert_eq!(
        app.status,
        Status::Error(format!("{message}; still on profile local"))
    );
    insta::assert_snapshot!("profile_switch_failed", screen(&app, 100, 24));
    // The console keeps working on local.
    press(&mut app, "1 ");
    assert_eq!(
        app.take_requests(),
        vec![Request::SetEnabled {
            id: "echo".into(),
            enabled: false
        }]
    );
}

#[test]
fn a_production_profile_is_red_and_its_writes_need_its_name() {
    let mut app = app();
    app.theme = Theme::new(true);
    switched_to(&mut app, prod_profile());
    let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
    t.draw(|f| app.render(f)).unwrap();
    let buf = t.backend().buffer();
    let header: String = (0..100).map(|x| buf[(x, 0)].symbol()).collect();
    let at = header.find(" prod ").unwrap() as u16 + 1;
    assert_eq!(buf[(at, 0)].fg, ratatui::style::Color::Red, "{header}");
    assert!(header.contains("PRODUCTION"), "{header}");

    press(&mut app, "1d");
    app.on_key(key('y'));
    assert_eq!(app.take_requests(), vec![]);
    let Some(Dialog::Typed { profile, .. }) = app.dialogs.last() else {
        panic!("no typed confirmation: {:?}", app.dialogs);
    };
    assert_eq!(profile, "prod");
    typed(&mut app, "prod");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::DeleteAgent {
            id: "billing".into()
        }]
    );
}

#[test]
fn switching_closes_dialogs_that_could_write() {
    let mut app = app();
    press(&mut app, "1d");
    assert!(matches!(app.dialogs.last(), Some(Dialog::Confirm { .. })));
    switched_to(&mut app, dev_profile());
    assert!(app.dialogs.is_empty());
    assert_eq!(
        app.status,
        Status::Info(
            "now on profile dev (aws us-east-1; Send and Traffic still use the local gateway); \
             the open dialog was closed"
                .into()
        )
    );
    // Switching back to local: Send's lists are the local ones again.
    app.on_core(CoreEvent::ProfileSwitched {
        profile: Profile::local(),
    });
    app.on_core(CoreEvent::Agents(vec![agent("echo", "Echo", 7402, None)]));
    assert_eq!(app.model.local_agents.len(), 1);
    assert_eq!(
        app.status,
        Status::Info("now on profile local (the local stack)".into())
    );
}

fn sample_plan() -> switchboard_core::sync::SyncPlan {
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
    insta::assert_snapshot!("sync_diff", screen(&app, 100, 24));

    // Production target: its name must be typed.
    press(&mut app, "a");
    assert_eq!(app.take_requests(), vec![]);
    assert!(matches!(app.dialogs.last(), Some(Dialog::Typed { profile, .. }) if profile == "prod"));
    insta::assert_snapshot!("sync_typed_confirm", screen(&app, 100, 24));
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
    insta::assert_snapshot!("sync_diff_empty", screen(&app, 100, 24));
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
fn on_an_aws_profile_tokens_come_from_its_token_endpoint() {
    let mut app = app();
    switched_to(&mut app, dev_profile());
    press(&mut app, "3");
    insta::assert_snapshot!("clients_aws", screen(&app, 100, 24));

    // Its clients live in the user pool: adding one here is refused, in words.
    press(&mut app, "a");
    assert!(app.dialogs.is_empty());
    assert!(
        matches!(&app.status, Status::Error(e) if e.starts_with("profile dev takes tokens from its user pool")),
        "{:?}",
        app.status
    );

    press(&mut app, "m");
    insta::assert_snapshot!("mint_remote", screen(&app, 100, 24));
    typed(&mut app, "pool-client");
    app.on_key(code(KeyCode::Tab));
    typed(&mut app, "s3cr3t");
    app.on_key(code(KeyCode::Tab));
    typed(&mut app, "billing/read");
    let shown = screen(&app, 100, 24);
    assert!(!shown.contains("s3cr3t"), "the secret is masked:\n{shown}");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.take_requests(),
        vec![Request::MintRemote {
            client: "pool-client".into(),
            secret: switchboard_core::registry::Secret::new("s3cr3t"),
            scopes: vec!["billing/read".into()],
        }]
    );
    // A refusal keeps the form open with the reason.
    app.on_core(CoreEvent::Failed {
        message: "the token endpoint https://dev.auth.us-east-1.amazoncognito.com/oauth2/token \
                  refused client pool-client: invalid_client"
            .into(),
        form: true,
    });
    assert!(matches!(app.dialogs.last(), Some(Dialog::Form { .. })));
    app.on_key(code(KeyCode::Enter));
    app.take_requests();
    app.on_core(CoreEvent::Minted(Minted {
        client: "pool-client".into(),
        scopes: vec!["billing/read".into()],
        token: "eyJhbGciOiJSUzI1NiJ9.eyJjbGllbnRfaWQiOiJwb29sLWNsaWVudCJ9.sig".into(),
        ttl: Duration::from_secs(3600),
    }));
    assert!(app.dialogs.is_empty());
    assert!(screen(&app, 100, 24).contains("eyJhbGciOiJSUzI1NiJ9"));
}

#[test]
fn every_screen_on_an_aws_profile_fits_80x24() {
    let mut app = app();
    switched_to(&mut app, prod_profile());
    for tab in "12345678".chars() {
        press(&mut app, &tab.to_string());
        let shown = screen(&app, 80, 24);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 24);
        assert!(lines[0].contains("profile  prod  PRODUCTION"), "{shown}");
        assert!(lines[23].contains("? help"), "{shown}");
    }
    press(&mut app, "s");
    app.on_core(CoreEvent::SyncPlanned {
        to: prod_profile(),
        copy_secrets: false,
        plan: Ok(sample_plan()),
    });
    let shown = screen(&app, 80, 24);
    assert!(
        shown.contains("Sync diff: local → prod") && shown.contains("a apply"),
        "{shown}"
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

#[test]
fn starting_on_an_aws_profile_asks_the_core_to_switch() {
    let mut app = app();
    app.switch_profile(prod_profile());
    assert_eq!(
        app.take_requests(),
        vec![Request::SwitchProfile {
            profile: prod_profile()
        }]
    );
    assert_eq!(
        app.status,
        Status::Info(
            "connecting to profile prod (aws eu-west-1); local stays active until it answers"
                .into()
        )
    );
}

// ---------------------------------------------------------------- terminal

/// Bytes written through a shared buffer.
#[derive(Clone, Default)]
struct Shared(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_panic_hook_gives_the_terminal_back_before_the_message() {
    // The hook is process-wide: take it only for this panic, then put the
    // previous one back.
    static HOOK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one_at_a_time = HOOK.lock();

    let term = Shared::default();
    let for_hook = term.clone();
    let for_previous = term.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(super::panic_hook(
        move || for_hook.clone(),
        Box::new(move |info| {
            let mut out = for_previous.clone();
            let _ = std::io::Write::write_all(&mut out, format!("[message: {info}]").as_bytes());
        }),
    ));
    let result = std::panic::catch_unwind(|| panic!("the console broke"));
    let _ = std::panic::take_hook();
    std::panic::set_hook(previous);
    assert!(result.is_err());

    // What restoring writes: paste and mouse modes off, the main screen back,
    // the cursor shown — then, and only then, the message.
    let mut expected = Vec::new();
    crossterm::execute!(
        expected,
        crossterm::event::DisableBracketedPaste,
        crossterm::event::DisableMouseCapture,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    )
    .unwrap();
    let written = term.0.lock().clone();
    let text = String::from_utf8_lossy(&written);
    assert!(
        written.starts_with(&expected),
        "the terminal was not restored first: {text:?}"
    );
    let rest = String::from_utf8_lossy(&written[expected.len()..]).into_owned();
    assert!(
        rest.starts_with("[message: ") && rest.contains("the console broke"),
        "{rest:?}"
    );
    assert!(super::PANICKED.load(std::sync::atomic::Ordering::SeqCst));
    super::PANICKED.store(false, std::sync::atomic::Ordering::SeqCst);
}
