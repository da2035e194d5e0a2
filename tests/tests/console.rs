//! The console end to end: the real binary in a real terminal (tmux), driven
//! with `send-keys` and read with `capture-pane`; and the console's state and
//! worker wired together in process, switching live to an AWS profile on a
//! local moto server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use pretty_assertions::assert_eq;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::Value;
use switchboard::console::app::{App, Model, StackView, Status};
use switchboard::console::dialog::Dialog;
use switchboard::console::keymap::Keymap;
use switchboard::console::msg::{CoreEvent, Envelope, Request};
use switchboard::console::theme::Theme;
use switchboard::console::worker::{Core, Local};
use switchboard_core::auth::{Verifier, VerifierConfig};
use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::registry::AgentRecord;
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};
use switchboard_core::store::dynamodb::DynamoStore;
use switchboard_core::store::Stores;
use switchboard_core::sync::{self, SyncOptions};
use switchboard_core::GatewayConfig;
use switchboard_emulator::stack::{LocalStack, StackOptions};
use switchboard_tests::moto::{self, Moto};
use tokio::sync::mpsc;

/// A tmux server of our own (its own socket), one window running the console.
struct Tmux {
    socket: String,
}

const WAIT: Duration = Duration::from_secs(30);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux")
    }

    /// A server named for the test (`label`), so tests can run side by side.
    fn start(label: &str, command: &str) -> Tmux {
        match Command::new("tmux").arg("-V").output() {
            Ok(o) if o.status.success() => {}
            _ => panic!("tmux is needed for the console's end-to-end test: apt-get install tmux"),
        }
        let t = Tmux {
            socket: format!("switchboard-e2e-{label}-{}", std::process::id()),
        };
        let out = t.cmd(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            "120",
            "-y",
            "40",
            command,
            ";",
            "set-option",
            "-t",
            "console",
            "remain-on-exit",
            "on",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn text(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "console", "-l", text])
            .status
            .success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    /// Waits until every needle is on the screen; returns the screen.
    fn wait_for(&self, needles: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "waited {WAIT:?} for {needles:?}; the screen shows:\n{screen}\n{}",
                    self.pane_state()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pane_state(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&[
                    "display-message",
                    "-p",
                    "-t",
                    "console",
                    "#{pane_dead} #{pane_dead_status}",
                ])
                .stdout,
        )
        .trim()
        .to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn backend_url(data_dir: &Path, agent: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(data_dir.join("runtime.json")) {
            let v: Value = serde_json::from_str(&text).unwrap();
            return v["agents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"] == agent)
                .unwrap()["url"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert!(
            start.elapsed() < WAIT,
            "no runtime.json in {}",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn console_end_to_end_under_tmux() {
    let dir = tempfile::tempdir().unwrap();
    common::install_test_key(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    // The exit status is written to a file: tmux does not always record it
    // when the pane's terminal closes before the process is reaped.
    let exit_file = dir.path().join("exit-status");
    let command = format!(
        "{} --data-dir '{}' --config '{}' --listen 127.0.0.1:0; echo $? > '{}'",
        common::binary().display(),
        dir.path().display(),
        config.display(),
        exit_file.display()
    );
    let tmux = Tmux::start("local", &command);
    tmux.wait_for(&["1:Agents", "Agents (3)", "local stack up at"]);

    // Add an agent by URL: the card fills in the form; the id is ours.
    let url = backend_url(dir.path(), "stream");
    tmux.keys(&["a"]);
    tmux.wait_for(&["Add an agent", "Backend URL"]);
    tmux.text(&url);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Filled in from the agent's card"]);
    tmux.keys(&["C-u"]);
    tmux.text("e2e-stream");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["added agent e2e-stream", "Agents (4)"]);

    // Grant a new scope to it (its column comes first: e2e-stream < echo).
    tmux.keys(&["2"]);
    tmux.wait_for(&["Permissions: 4 scopes × 4 agents"]);
    tmux.keys(&["n"]);
    tmux.wait_for(&["Grant a new scope to e2e-stream"]);
    tmux.text("e2e/stream");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["e2e/stream now grants e2e-stream"]);

    // A client allowed that scope; its secret is shown once.
    tmux.keys(&["3", "a"]);
    tmux.wait_for(&["Add a client"]);
    tmux.text("e2e-client");
    tmux.keys(&["Tab"]);
    tmux.text("e2e/stream");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Client e2e-client added", "client secret"]);
    tmux.keys(&["Enter"]);

    // Mint a token for it (clients: demo-client, e2e-client, …).
    tmux.keys(&["j", "m"]);
    tmux.wait_for(&["Mint a token for e2e-client", "[x] e2e/stream"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["minted a token for e2e-client", "expires in 3600 s"]);

    // Stream a message to the new agent as that client.
    tmux.keys(&["5", "a"]);
    tmux.wait_for(&["Send to agent"]);
    tmux.keys(&["k", "k", "k", "k", "Enter", "c"]);
    tmux.wait_for(&["Send as client"]);
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for(&["agent  e2e-stream", "as client  e2e-client"]);
    tmux.keys(&["i"]);
    tmux.text("hello from the e2e test");
    tmux.keys(&["Enter", "t"]);
    let screen = tmux.wait_for(&["TASK_STATE_COMPLETED", "artifactUpdate", "HTTP 200"]);
    assert!(screen.contains("statusUpdate"), "{screen}");

    // The same request in Traffic, with its events.
    tmux.keys(&["4"]);
    tmux.wait_for(&["e2e-client", "e2e-stream", "SendStreamingMessage", "200"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Request events", "── event 0", "\"task\": {"]);
    tmux.keys(&["G"]);
    tmux.wait_for(&["── finished 200", "TASK_STATE_COMPLETED"]);

    // Quit: the process ends cleanly and takes the stack down with it.
    tmux.keys(&["q"]);
    wait_for_exit(&tmux, &exit_file, dir.path());
    assert!(
        !dir.path().join("runtime.json").exists(),
        "the stack was not shut down"
    );
    let log = std::fs::read_to_string(dir.path().join("switchboard.log")).unwrap();
    assert!(log.contains("console closing"), "{log}");
    assert!(
        log.contains("agent=e2e-stream method=SendStreamingMessage status=200"),
        "{log}"
    );
}

/// Waits for the exit status the pane's shell writes; asserts it is 0.
fn wait_for_exit(tmux: &Tmux, exit_file: &Path, data_dir: &Path) {
    let start = Instant::now();
    loop {
        let status = std::fs::read_to_string(exit_file).unwrap_or_default();
        if !status.trim().is_empty() {
            assert_eq!(
                status.trim(),
                "0",
                "the console exited with status {status}; log:\n{}",
                std::fs::read_to_string(data_dir.join("switchboard.log")).unwrap_or_default()
            );
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "the console did not exit (pane: {:?}):\n{}\n--- switchboard.log ---\n{}",
            tmux.pane_state(),
            tmux.screen(),
            std::fs::read_to_string(data_dir.join("switchboard.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The real binary started on an AWS profile (moto), switched live to a
/// profile that does not answer (it stays on moto) and to local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_switches_profiles_live_under_tmux() {
    let dir = tempfile::tempdir().unwrap();
    common::install_test_key(dir.path());
    let moto = Moto::start().await;
    let prefix = moto::unique_prefix("tmux");
    let aws = common::aws_profile(moto.endpoint(), &prefix, "http://127.0.0.1:9");
    let conn = common::aws_connection(&aws);
    DynamoStore::new(conn.clone())
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    Stores::aws(conn)
        .agents
        .create(AgentRecord::new("only-on-aws", "http://127.0.0.1:9"))
        .await
        .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[gateway]
model_dir = "{no_model}"

[profiles.moto]
kind = "aws"
region = "{region}"
table_prefix = "{prefix}"
secret_prefix = "{prefix}secrets/"
issuer = "http://127.0.0.1:9"
endpoint_url = "{endpoint}"

[profiles.down]
kind = "aws"
region = "{region}"
issuer = "http://127.0.0.1:9"
endpoint_url = "http://127.0.0.1:9"
"#,
            no_model = dir.path().join("no-model").display(),
            region = moto::REGION,
            endpoint = moto.endpoint(),
        ),
    )
    .unwrap();
    let exit_file = dir.path().join("exit-status");
    // Credentials for moto through the standard chain, and nothing of the
    // developer's own AWS setup.
    let command = format!(
        "env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL -u SWITCHBOARD_PROFILE \
         AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_EC2_METADATA_DISABLED=true \
         {bin} --data-dir '{data}' --config '{config}' --profile moto --listen 127.0.0.1:0; \
         echo $? > '{exit}'",
        key = moto::ACCESS_KEY_ID,
        secret = moto::SECRET_ACCESS_KEY,
        bin = common::binary().display(),
        data = dir.path().display(),
        config = config.display(),
        exit = exit_file.display()
    );
    let tmux = Tmux::start("profiles", &command);
    // Started on moto: its agent, not the local ones.
    tmux.wait_for(&["profile moto", "Agents (1)", "only-on-aws"]);

    // Profiles: local, down, moto. A profile that does not answer.
    tmux.keys(&["8"]);
    tmux.wait_for(&["Active: moto", "local gateway"]);
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for(&["cannot switch to profile down", "still on moto."]);
    let screen = tmux.screen();
    assert!(screen.contains("profile moto"), "{screen}");

    // Local, live: the stack inside the console was serving it all along.
    tmux.keys(&["k", "Enter"]);
    tmux.wait_for(&["now on profile local", "Active: local"]);
    tmux.keys(&["1"]);
    tmux.wait_for(&["Agents (3)", "stream"]);
    let screen = tmux.screen();
    assert!(!screen.contains("only-on-aws"), "{screen}");

    tmux.keys(&["q"]);
    wait_for_exit(&tmux, &exit_file, dir.path());
    let log = std::fs::read_to_string(dir.path().join("switchboard.log")).unwrap();
    assert!(
        log.contains("switched profile profile=moto")
            && log.contains("switched profile profile=local"),
        "{log}"
    );
}

// ------------------------------------------------ in process, on moto

/// The console's state and its worker, connected as the event loop connects
/// them (each request goes with the profile on screen), without a terminal.
struct Console {
    app: App,
    requests: mpsc::UnboundedSender<Envelope>,
    events: mpsc::Receiver<CoreEvent>,
    /// Every event the worker sent, in order.
    seen: Vec<CoreEvent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Console {
    fn keys(&mut self, keys: &str) {
        for c in keys.chars() {
            self.app
                .on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
    }

    fn key(&mut self, code: KeyCode) {
        self.app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn paste(&mut self, text: &str) {
        self.app.on_terminal(Event::Paste(text.to_owned()));
    }

    fn send_requests(&mut self) {
        for request in self.app.take_requests() {
            let profile = self.app.model.profile.name.clone();
            self.requests.send(Envelope { profile, request }).unwrap();
        }
    }

    /// Runs requests and events until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.send_requests();
            if done(&self.app) {
                return;
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => {
                    self.seen.push(ev.clone());
                    self.app.on_core(ev);
                }
                _ => panic!(
                    "waited {WAIT:?} for {what}; profile {}, status {:?}, dialogs {:?}",
                    self.app.model.profile.name, self.app.status, self.app.dialogs
                ),
            }
        }
    }

    fn screen(&self) -> String {
        let mut t = Terminal::new(TestBackend::new(120, 30)).unwrap();
        t.draw(|f| self.app.render(f)).unwrap();
        t.backend().to_string()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn ids(agents: &[AgentRecord]) -> Vec<String> {
    let mut ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    ids.sort();
    ids
}

fn static_credentials() -> AwsCredentials {
    AwsCredentials::Static {
        access_key_id: moto::ACCESS_KEY_ID.into(),
        secret_access_key: moto::SECRET_ACCESS_KEY.into(),
    }
}

/// The profiles a console over moto knows: local, `moto` (its tables there,
/// the local issuer standing in for Cognito) and `down` (nothing listens).
fn aws_profiles(moto: &Moto, prefix: &str, issuer: &str) -> (Profile, Profile) {
    let on_moto = Profile {
        name: "moto".into(),
        production: false,
        kind: ProfileKind::Aws(common::aws_profile(moto.endpoint(), prefix, issuer)),
    };
    let down = Profile {
        name: "down".into(),
        production: false,
        kind: ProfileKind::Aws(common::aws_profile(
            "http://127.0.0.1:9",
            prefix,
            "http://127.0.0.1:9",
        )),
    };
    (on_moto, down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_an_aws_profile_reopens_its_stores_live() {
    let dir = tempfile::tempdir().unwrap();
    common::install_test_key(dir.path());
    let config = GatewayConfig {
        model_dir: Some(dir.path().join("no-model")),
        ..GatewayConfig::default()
    };
    let stack = LocalStack::start(StackOptions {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        config: config.clone(),
    })
    .await
    .unwrap();
    let info = stack.info.clone();

    // An AWS profile whose tables hold an agent local does not have.
    let moto = Moto::start().await;
    let prefix = moto::unique_prefix("console");
    let (on_moto, down) = aws_profiles(&moto, &prefix, &info.issuer_url);
    let aws = on_moto.aws().unwrap().clone();
    let conn = common::aws_connection(&aws);
    DynamoStore::new(conn.clone())
        .bootstrap(Duration::from_secs(30))
        .await
        .unwrap();
    let remote = Stores::aws(conn);
    remote
        .agents
        .create(AgentRecord::new("only-on-aws", "http://127.0.0.1:9"))
        .await
        .unwrap();
    remote
        .permissions
        .grant("aws/only", &["only-on-aws".to_owned()])
        .await
        .unwrap();

    let (ev_tx, events) = mpsc::channel(4096);
    let (requests, req_rx) = mpsc::unbounded_channel();
    let core = Core::new(
        Local {
            gateway: stack.gateway.clone(),
            issuer: stack.issuer.clone(),
            stores: stack.stores.clone(),
            issuer_url: info.issuer_url.clone(),
            profile: Profile::local(),
            data_dir: dir.path().to_path_buf(),
            config,
        },
        ev_tx,
    )
    .unwrap()
    .with_store_opener(Arc::new(|p: &Profile| match &p.kind {
        ProfileKind::Aws(a) => Ok(Stores::aws(AwsConnection::new(
            &p.name,
            a,
            static_credentials(),
            AwsSettings::default(),
        )?)),
        ProfileKind::Local => panic!("the local profile is the stack's, never opened again"),
    }));
    let tasks = core.spawn(req_rx);
    let model = Model::new(
        StackView {
            gateway_url: info.gateway_url.clone(),
            issuer_url: info.issuer_url.clone(),
            token_url: info.token_url.clone(),
            data_dir: dir.path().to_path_buf(),
            log_file: dir.path().join("switchboard.log"),
            default_limit: 600,
        },
        Profile::local(),
        vec![Profile::local(), on_moto.clone(), down.clone()],
    );
    let mut c = Console {
        app: App::new(model, Keymap::defaults(), Theme::new(false)),
        requests,
        events,
        seen: Vec::new(),
        tasks,
    };
    c.until("the local registry", |a| a.model.agent("echo").is_some())
        .await;
    let local_ids = ids(&stack.stores.agents.list().await.unwrap());
    assert_eq!(ids(&c.app.model.agents), local_ids);

    // Profile screen: the moto profile, enter. The worker opens its tables.
    c.keys("8j");
    c.key(KeyCode::Enter);
    c.until("the switch to moto", |a| {
        a.model.profile.name == "moto"
            && a.model.agent("only-on-aws").is_some()
            && !a.model.permissions.is_empty()
    })
    .await;
    assert_eq!(ids(&c.app.model.agents), vec!["only-on-aws"]);
    assert_eq!(c.app.model.permissions.len(), 1);
    assert_eq!(c.app.model.permissions[0].scope, "aws/only");
    assert!(
        c.app.model.clients.is_empty(),
        "a user pool's clients are not listed"
    );
    // Send keeps the local agents.
    assert_eq!(ids(&c.app.model.local_agents), local_ids);
    let shown = c.screen();
    assert!(
        shown.contains("profile moto") && shown.contains("local gateway"),
        "{shown}"
    );

    // A write lands in moto's tables, not in the local file.
    c.keys("1 ");
    c.until(
        "the write on moto",
        |a| matches!(&a.status, Status::Info(s) if s == "agent only-on-aws disabled"),
    )
    .await;
    assert!(
        !remote
            .agents
            .get("only-on-aws")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(stack
        .stores
        .agents
        .get("only-on-aws")
        .await
        .unwrap()
        .is_none());

    // A write made for the local profile is refused once moto is active.
    c.requests
        .send(Envelope {
            profile: "local".into(),
            request: Request::DeleteAgent { id: "echo".into() },
        })
        .unwrap();
    c.until("the refusal", |a| matches!(&a.status, Status::Error(_)))
        .await;
    assert_eq!(
        c.app.status,
        Status::Error(
            "not done: delete agent echo was meant for profile local, and the console is now on moto"
                .into()
        )
    );
    assert!(stack.stores.agents.get("echo").await.unwrap().is_some());

    // The sync diff is the CLI's dry run; applying makes moto match local.
    let expected = sync::plan(&stack.stores, &remote, SyncOptions::default())
        .await
        .unwrap()
        .dry_run_report("local", "moto");
    c.keys("8s");
    c.until("the sync diff", |a| {
        matches!(a.dialogs.last(), Some(Dialog::SyncPlan { .. }))
    })
    .await;
    let Some(Dialog::SyncPlan { lines, .. }) = c.app.dialogs.last() else {
        unreachable!()
    };
    assert_eq!(*lines, expected);
    assert!(
        lines.iter().any(|l| l == "  - agent only-on-aws"),
        "{lines:?}"
    );
    c.keys("a");
    assert!(matches!(c.app.dialogs.last(), Some(Dialog::Confirm { .. })));
    c.keys("y");
    c.until(
        "the sync",
        |a| matches!(&a.status, Status::Info(s) if s.starts_with("synced local → moto")),
    )
    .await;
    assert_eq!(ids(&remote.agents.list().await.unwrap()), local_ids);
    c.until("moto's new lists", |a| {
        a.model.agent("only-on-aws").is_none()
    })
    .await;
    assert_eq!(ids(&c.app.model.agents), local_ids);

    // A token from moto's "Cognito" (the local issuer's token endpoint,
    // found through its discovery document), verified as its gateways would.
    c.keys("3m");
    c.paste(&info.client_id);
    c.key(KeyCode::Tab);
    c.paste(&info.client_secret);
    c.key(KeyCode::Tab);
    c.paste(&info.scopes[0]);
    c.key(KeyCode::Enter);
    c.until(
        "the token",
        |a| matches!(&a.status, Status::Info(s) if s.starts_with("minted a token for")),
    )
    .await;
    let minted = c
        .seen
        .iter()
        .find_map(|e| match e {
            CoreEvent::Minted(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(minted.client, info.client_id);
    let verifier = Verifier::new(
        VerifierConfig {
            issuer: aws.issuer_url().to_owned(),
            jwks_uri: Some(aws.jwks_url()),
            allowed_client_ids: None,
            leeway_secs: 30,
        },
        reqwest::Client::new(),
    );
    let principal = verifier.verify(&minted.token).await.unwrap();
    assert_eq!(principal.client_id, info.client_id);
    assert_eq!(principal.scopes, vec![info.scopes[0].clone()]);

    // A profile that does not answer: said, and moto stays active.
    c.keys("8j");
    c.key(KeyCode::Enter);
    c.until("the failed switch", |a| a.model.switch_error.is_some())
        .await;
    assert!(!c.app.quit);
    assert_eq!(c.app.model.profile.name, "moto");
    let Status::Error(why) = &c.app.status else {
        panic!("{:?}", c.app.status)
    };
    assert!(
        why.starts_with("cannot switch to profile down: ")
            && why.ends_with("; still on profile moto"),
        "{why}"
    );
    assert_eq!(ids(&c.app.model.agents), local_ids, "moto's lists stay");

    // And back to local.
    c.keys("kk");
    c.key(KeyCode::Enter);
    c.until("the switch back", |a| {
        a.model.profile.name == "local" && !a.model.agents.is_empty()
    })
    .await;
    assert_eq!(ids(&c.app.model.agents), local_ids);
    assert!(c.app.model.agent("only-on-aws").is_none());
    drop(c);
    stack.shutdown().await;
}
