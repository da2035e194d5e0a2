//! The AWS profile end to end, on a local moto server: gateway processes
//! sharing DynamoDB state, edits reaching every instance, the AWS endpoint
//! failing, and the `aws` and `sync` commands of the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::registry::{AgentRecord, BackendAuth, Secret};
use switchboard_core::store::Stores;
use switchboard_core::GatewayConfig;
use switchboard_tests::moto::{self, Moto};

/// Writes a config file with one AWS profile, `e2e`, on `endpoint` and
/// `prefix`, taking tokens from `stack`'s issuer.
fn write_config(dir: &Path, endpoint: &str, prefix: &str, stack: Option<&Stack>) -> PathBuf {
    let (issuer, jwks, token) = match stack {
        Some(s) => (
            s.stack.info.issuer_url.clone(),
            s.stack.info.jwks_url.clone(),
            s.stack.info.token_url.clone(),
        ),
        None => (
            "http://127.0.0.1:9".to_owned(),
            "http://127.0.0.1:9/.well-known/jwks.json".to_owned(),
            "http://127.0.0.1:9/oauth2/token".to_owned(),
        ),
    };
    let text = format!(
        r#"[profiles.e2e]
kind = "aws"
region = "{region}"
table_prefix = "{prefix}"
secret_prefix = "{prefix}secrets/"
issuer = "{issuer}"
jwks_uri = "{jwks}"
token_url = "{token}"
endpoint_url = "{endpoint}"

[profiles.prod]
kind = "aws"
production = true
region = "{region}"
table_prefix = "{prefix}"
secret_prefix = "{prefix}secrets/"
issuer = "{issuer}"
endpoint_url = "{endpoint}"
"#,
        region = moto::REGION
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The binary with the test's credentials and nothing of the developer's AWS setup.
fn switchboard(config: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("SWITCHBOARD_PROFILE")
        .stdin(Stdio::null());
    cmd
}

fn run(config: &Path, data: &Path, args: &[&str]) -> Output {
    switchboard(config, data).args(args).output().unwrap()
}

/// A `switchboard serve --profile e2e --json` process.
struct Gateway {
    _process: ServeProcess,
    url: String,
    _data: tempfile::TempDir,
}

fn serve(config: &Path) -> Gateway {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = switchboard(config, data.path());
    cmd.args([
        "--profile",
        "e2e",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--json",
    ]);
    let process = ServeProcess::start(cmd, &data.path().join("serve.log"));
    assert_eq!(process.info["profile"], json!("e2e"));
    Gateway {
        url: process.url("gateway_url"),
        _process: process,
        _data: data,
    }
}

/// Two gateway processes on the AWS stack's tables (reached directly, not
/// through the stack's fault proxy).
fn two_gateways(s: &Stack) -> (Vec<Gateway>, tempfile::TempDir) {
    let aws = s.aws.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        aws.moto.endpoint(),
        &aws.profile.table_prefix,
        Some(s),
    );
    (vec![serve(&config), serve(&config)], dir)
}

async fn post(http: &reqwest::Client, gateway: &str, token: &str, id: &str) -> reqwest::Response {
    http.post(format!("{gateway}/agents/echo"))
        .header("A2A-Version", "1.0")
        .bearer_auth(token)
        .json(&send_message(id, "x"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_gateway_processes_admit_exactly_the_limit_together() {
    let s = start_on(Backend::Aws).await;
    s.edit_agent("echo", |echo| {
        echo.rate_limit = Some(100);
    })
    .await;
    let (gateways, _dir) = two_gateways(&s);
    let token = Arc::new(s.token(&["switchboard/echo"]).await);
    let urls: Vec<String> = gateways.iter().map(|g| g.url.clone()).collect();
    let by_status = in_one_window(Duration::from_secs(20), || {
        let (http, token, urls) = (s.http.clone(), token.clone(), urls.clone());
        async move {
            let mut tasks = Vec::new();
            for i in 0..256 {
                let http = http.clone();
                let token = token.clone();
                let url = urls[i % 2].clone();
                tasks.push(tokio::spawn(async move {
                    post(&http, &url, &token, &i.to_string())
                        .await
                        .status()
                        .as_u16()
                }));
            }
            let mut by_status = std::collections::BTreeMap::new();
            for t in tasks {
                *by_status.entry(t.await.unwrap()).or_insert(0) += 1;
            }
            by_status
        }
    })
    .await;
    assert_eq!(by_status, [(200, 100), (429, 156)].into_iter().collect());
}

#[tokio::test]
async fn an_edit_reaches_every_instance_within_the_bound() {
    let s = start_on(Backend::Aws).await;
    let (gateways, dir) = two_gateways(&s);
    let token = s.token(&["switchboard/echo"]).await;
    for g in &gateways {
        assert_eq!(post(&s.http, &g.url, &token, "1").await.status(), 200);
    }
    // Disabled through the CLI on the same profile: a third process.
    let config = dir.path().join("config.toml");
    let data = tempfile::tempdir().unwrap();
    ok(&run(
        &config,
        data.path(),
        &["--profile", "e2e", "agents", "disable", "echo"],
    ));
    let edited = Instant::now();
    // Each instance polls the store every `registry_poll_ms`; a busy machine
    // may take longer, never for ever.
    let bound = GatewayConfig::default().registry_poll() + SLACK;
    for g in &gateways {
        loop {
            if post(&s.http, &g.url, &token, "2").await.status() == 404 {
                break;
            }
            assert!(
                edited.elapsed() < bound,
                "{} still routes after {bound:?}",
                g.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "the edit reached both instances after {:?}",
        edited.elapsed()
    );
}

#[tokio::test]
async fn the_aws_endpoint_going_away_is_503_and_the_gateway_recovers() {
    let s = start_on(Backend::Aws).await;
    let proxy = &s.aws.as_ref().unwrap().proxy;
    let token = s.token(&["switchboard/echo"]).await;
    assert_eq!(
        s.send("echo", Some(&token), &send_message("1", "x"))
            .await
            .status(),
        200
    );

    proxy.go_down();
    let resp = s.send("echo", Some(&token), &send_message("2", "x")).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["data"][0]["reason"],
        json!("STORE_UNAVAILABLE")
    );
    assert_eq!(body["id"], json!("2"));
    let ready = s.http.get(s.gw("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    proxy.come_back().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = s
            .send("echo", Some(&token), &send_message("3", "x"))
            .await
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the gateway did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_503() {
    let s = start_on(Backend::Aws).await;
    let proxy = &s.aws.as_ref().unwrap().proxy;
    let token = s.token(&["switchboard/echo"]).await;
    proxy.reset_counts();
    proxy.throttle(Some("UpdateItem"), Some(2));
    let resp = s.send("echo", Some(&token), &send_message("1", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(proxy.throttled().get("UpdateItem"), Some(&2));

    proxy.reset_counts();
    proxy.throttle(Some("UpdateItem"), None);
    let resp = s.send("echo", Some(&token), &send_message("2", "x")).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["data"][0]["reason"],
        json!("STORE_UNAVAILABLE")
    );
    assert_eq!(proxy.throttled().get("UpdateItem"), Some(&3));
    proxy.pass();
    let resp = s.send("echo", Some(&token), &send_message("3", "x")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_request_makes_one_store_call_the_counter() {
    let s = start_on_with(
        Backend::Aws,
        GatewayConfig {
            // Keep the cache poller quiet while counting.
            registry_poll_ms: 3_600_000,
            ..GatewayConfig::default()
        },
    )
    .await;
    let proxy = &s.aws.as_ref().unwrap().proxy;
    let token = s.token(&["switchboard/echo", "switchboard/guarded"]).await;
    // Warm the caches (the guarded agent's backend token needs a secret once).
    for agent in ["echo", "guarded"] {
        let resp = s.send(agent, Some(&token), &send_message("0", "x")).await;
        assert_eq!(resp.status(), 200);
    }
    // Discovery loads and stores the agents' embeddings in the background
    // (a `Scan`, a `TransactWriteItems`): let it finish before counting.
    s.settle_discovery().await;
    proxy.reset_counts();
    for i in 0..20 {
        let agent = if i % 2 == 0 { "echo" } else { "guarded" };
        let resp = s
            .send(agent, Some(&token), &send_message(&i.to_string(), "x"))
            .await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        proxy.calls(),
        [("UpdateItem".to_owned(), 20)].into_iter().collect()
    );
}

#[tokio::test]
async fn a_missing_secret_is_502_on_secrets_manager() {
    let s = start_on(Backend::Aws).await;
    s.edit_agent("echo", |echo| {
        echo.auth = BackendAuth::Header {
            name: "x-api-key".into(),
            secret: "arn:aws:secretsmanager:us-east-1:123456789012:secret:nowhere-AbCdEf".into(),
        };
    })
    .await;
    let token = s.token(&["switchboard/echo"]).await;
    let resp = s.send("echo", Some(&token), &send_message("1", "x")).await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["data"][0]["reason"],
        json!("BACKEND_CREDENTIALS_UNAVAILABLE")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secretsmanager:us-east-1:123456789012:secret:nowhere-AbCdEf\" for agent echo does not exist"),
        "{body}"
    );
}

#[tokio::test]
async fn serve_without_tables_says_how_to_create_them() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        moto.endpoint(),
        &moto::unique_prefix("bare"),
        None,
    );
    let out = run(
        &config,
        dir.path(),
        &[
            "--profile",
            "e2e",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        err.contains("switchboard --profile e2e aws bootstrap"),
        "{err}"
    );
}

#[tokio::test]
async fn aws_bootstrap_status_and_sync_from_local() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = moto::unique_prefix("cli");
    let config = write_config(dir.path(), moto.endpoint(), &prefix, None);
    let data = dir.path().join("data");

    // Status before and after bootstrap; bootstrap twice is fine.
    let status: Value = serde_json::from_str(&ok(&run(
        &config,
        &data,
        &["--profile", "e2e", "aws", "status", "--json"],
    )))
    .unwrap();
    assert_eq!(status["ready"], json!(false));
    let boot: Value = serde_json::from_str(&ok(&run(
        &config,
        &data,
        &["--profile", "e2e", "aws", "bootstrap", "--json"],
    )))
    .unwrap();
    let created: Vec<(&str, bool)> = boot["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["created"].as_bool().unwrap()))
        .collect();
    let names = ["agents", "permissions", "counters", "embeddings"].map(|r| format!("{prefix}{r}"));
    assert_eq!(
        created,
        names.iter().map(|n| (n.as_str(), true)).collect::<Vec<_>>()
    );
    let again = ok(&run(
        &config,
        &data,
        &["--profile", "e2e", "aws", "bootstrap"],
    ));
    assert!(again.contains("nothing changed"), "{again}");
    let status: Value = serde_json::from_str(&ok(&run(
        &config,
        &data,
        &["--profile", "e2e", "aws", "status", "--json"],
    )))
    .unwrap();
    assert_eq!(status["ready"], json!(true));
    assert_eq!(status["tables"][2]["ttl_status"], json!("ENABLED"));
    let human = ok(&run(&config, &data, &["--profile", "e2e", "aws", "status"]));
    assert!(
        human.contains(&format!("{prefix}counters")) && human.contains("ACTIVE"),
        "{human}"
    );

    // A local registry with a secret-backed agent.
    let local = Stores::open(&switchboard_core::profile::Profile::local(), &data).unwrap();
    let mut keyed = AgentRecord::new("keyed", "http://127.0.0.1:9/k");
    keyed.auth = BackendAuth::Header {
        name: "x-api-key".into(),
        secret: "api/key".into(),
    };
    local.agents.create(keyed).await.unwrap();
    local
        .agents
        .create(AgentRecord::new("plain", "http://127.0.0.1:9/p"))
        .await
        .unwrap();
    local
        .secrets
        .put("api/key", &Secret::new("s3cr3t-value"))
        .await
        .unwrap();
    local
        .permissions
        .grant("team/a", &["keyed".into(), "plain".into()])
        .await
        .unwrap();

    // Dry run: the difference, nothing written.
    let plan = ok(&run(&config, &data, &["sync", "--to", "e2e", "--dry-run"]));
    assert_eq!(
        plan.lines().collect::<Vec<_>>(),
        vec![
            "sync local → e2e",
            "  + agent keyed  http://127.0.0.1:9/k",
            "  + agent plain  http://127.0.0.1:9/p",
            "  + scope team/a  → keyed plain",
            "  ! secret api/key  missing in the target (used by keyed); set it there or sync with secrets copied",
            "dry run: nothing was changed (2 agents added, 0 changed, 0 removed; 1 scopes added, 0 changed, 0 removed; 0 secrets copied)",
        ]
    );
    let remote = Stores::aws(aws_connection(&aws_profile(
        moto.endpoint(),
        &prefix,
        "http://x",
    )));
    assert_eq!(remote.agents.list().await.unwrap(), vec![]);

    // Applied: agents and permissions, never the secret value.
    ok(&run(&config, &data, &["sync", "--to", "e2e"]));
    let ids: Vec<String> = remote
        .agents
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec!["keyed", "plain"]);
    assert_eq!(
        remote.permissions.list().await.unwrap(),
        local.permissions.list().await.unwrap()
    );
    assert_eq!(
        remote.secrets.list_names().await.unwrap(),
        Vec::<String>::new()
    );

    // A change, a removal and the secret copied on request.
    let mut plain = local.agents.get("plain").await.unwrap().unwrap();
    plain.rate_limit = Some(7);
    local.agents.update(plain).await.unwrap();
    remote
        .agents
        .create(AgentRecord::new("stray", "http://127.0.0.1:9/s"))
        .await
        .unwrap();
    let out: Value = serde_json::from_str(&ok(&run(
        &config,
        &data,
        &["sync", "--to", "e2e", "--copy-secrets", "--json"],
    )))
    .unwrap();
    assert_eq!(
        out["applied"],
        json!({"agents_added": 0, "agents_changed": 1, "agents_removed": 1,
               "scopes_added": 0, "scopes_changed": 0, "scopes_removed": 0, "secrets_copied": 1})
    );
    assert!(!out.to_string().contains("s3cr3t-value"));
    assert_eq!(
        remote.secrets.get("api/key").await.unwrap().expose(),
        "s3cr3t-value"
    );
    assert_eq!(
        remote
            .agents
            .get("plain")
            .await
            .unwrap()
            .unwrap()
            .rate_limit,
        Some(7)
    );
    assert_eq!(remote.agents.get("stray").await.unwrap(), None);
    let plan = ok(&run(&config, &data, &["sync", "--to", "e2e", "--dry-run"]));
    assert!(plan.contains("no difference"), "{plan}");

    // A production target needs --yes without a terminal.
    local.agents.delete("plain").await.unwrap();
    let out = run(&config, &data, &["sync", "--to", "prod"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));
    assert!(remote.agents.get("plain").await.unwrap().is_some());
    ok(&run(&config, &data, &["sync", "--to", "prod", "--yes"]));
    assert_eq!(remote.agents.get("plain").await.unwrap(), None);

    // Clients live in the user pool.
    let out = run(&config, &data, &["--profile", "e2e", "clients", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cognito user pool"));
}
