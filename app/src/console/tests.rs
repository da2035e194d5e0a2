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
use switchboard_core::profile::{Profile, ProfileKind};
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
        vec![
            profile,
            Profile {
                name: "prod".into(),
                production: true,
                kind: ProfileKind::Aws(switchboard_core::profile::AwsProfile {
                    region: "eu-west-1".into(),
                    table_prefix: "switchboard-".into(),
                    secret_prefix: String::new(),
                    issuer: "https://cognito-idp.eu-west-1.amazonaws.com/p".into(),
                    jwks_uri: None,
                    token_url: None,
                    endpoint_url: None,
                    aws_profile: None,
                }),
            },
        ],
    )
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
    // An AWS profile cannot be used by this build: said, not crashed.
    press(&mut app, "j");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.status,
        Status::Error("profile prod is an AWS profile, and this build has no AWS backends".into())
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
