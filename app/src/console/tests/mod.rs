//! Every screen and dialog as an insta snapshot over `TestBackend` at a
//! fixed size, with the state built through actions and core events; and
//! the key handling behind them. This file holds the sample data and the
//! helpers; the tests are in one file per concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dialogs;
mod keys;
mod profiles;
mod screens;
mod sync;
mod terminal;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::{json, Value};
use switchboard_core::auth::Explanation;
use switchboard_core::profile::{AwsProfile, Profile, ProfileKind};
use switchboard_core::registry::{
    AgentRecord, BackendAuth, ClientRecord, CounterEntry, CounterKey, Permission,
};
use switchboard_core::TrafficEvent;

use super::action::Tab;
use super::app::App;
use super::dialog::Dialog;
use super::keymap::Keymap;
use super::model::{Model, StackView, Status};
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

/// Asserts the snapshot `name`, kept in `console/snapshots/` under the name
/// it has always had there (`switchboard__console__tests__{name}.snap`).
fn snapshot(name: &str, value: impl std::fmt::Display) {
    insta::with_settings!({snapshot_path => "../snapshots"}, {
        insta::assert_snapshot!(name, value.to_string());
    });
}
