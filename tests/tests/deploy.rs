//! `switchboard aws deploy` against a local AWS (moto's CloudFormation, S3,
//! DynamoDB, IAM, Lambda, API Gateway, Logs): a dry run changes nothing; a
//! deploy creates the stack (CREATE_COMPLETE) with the tables `aws
//! bootstrap` would create, which `aws status` and `serve --profile` accept;
//! deploying again is reported as no change. The artifact is given
//! (`--artifact`), so no cross build runs here. moto creates Cognito
//! resources and function URLs only as placeholders, and lists no outputs
//! for a stack made by a change set: the test checks the stack's state, the
//! tables and the profile file, not those.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use pretty_assertions::assert_eq;
use serde_json::Value;
use switchboard_tests::moto::{self, Moto};

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

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// The smallest valid zip (no entries): the stack only needs an artifact in S3.
fn artifact(dir: &Path) -> PathBuf {
    let path = dir.join("bootstrap.zip");
    let mut bytes = b"PK\x05\x06".to_vec();
    bytes.extend([0u8; 18]);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_creates_the_stack_and_a_second_deploy_changes_nothing() {
    let moto = Moto::start().await;
    // The local issuer stands in for the user pool moto does not create.
    let issuer = start().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = moto::unique_prefix("deploy");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "# written by the test\n[profiles.e2e]\nkind = \"aws\"\nregion = \"{}\"\ntable_prefix = \"{prefix}\"\n\
             secret_prefix = \"{prefix}secrets/\"\nissuer = \"{}\"\njwks_uri = \"{}\"\nendpoint_url = \"{}\"\n",
            moto::REGION,
            issuer.stack.info.issuer_url,
            issuer.stack.info.jwks_url,
            moto.endpoint()
        ),
    )
    .unwrap();
    let zip = artifact(dir.path());
    let stack = format!("sb-{}", prefix.trim_end_matches('-').replace('_', "-"));
    let deploy = |extra: &[&str]| {
        let mut cmd = switchboard(&config, dir.path());
        cmd.args(["--profile", "e2e", "aws", "deploy", "--artifact"])
            .arg(&zip)
            .args([
                "--stack",
                &stack,
                "--domain-prefix",
                "sb-test",
                "--wait",
                "120",
            ])
            .args(extra);
        run(&mut cmd)
    };

    // A dry run shows the change set and leaves nothing behind.
    let out = ok(&deploy(&["--dry-run", "--json"]));
    let plan: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["creates"], true);
    let changed: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["logical_id"].as_str().unwrap())
        .collect();
    for id in [
        "AgentsTable",
        "CountersTable",
        "Function",
        "Api",
        "AgentsProxyMethod",
        "FunctionRole",
    ] {
        assert!(
            changed.contains(&id),
            "{id} missing from the change set: {changed:?}"
        );
    }
    let status = ok(&run(switchboard(&config, dir.path()).args([
        "--profile",
        "e2e",
        "aws",
        "status",
        "--stack",
        &stack,
        "--json",
    ])));
    let status: Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(
        status["stack"]["state"],
        Value::Null,
        "the dry run created nothing: {status}"
    );
    assert_eq!(status["ready"], false);

    // The deploy.
    let out = ok(&deploy(&[]));
    assert!(
        out.contains(&format!("Stack {stack}: CREATE_COMPLETE")),
        "{out}"
    );
    assert!(out.contains("uploaded"), "{out}");
    assert!(out.contains("Profile e2e written to"), "{out}");

    // The tables are the ones `aws bootstrap` creates, and the stack is there.
    let status = ok(&run(switchboard(&config, dir.path()).args([
        "--profile",
        "e2e",
        "aws",
        "status",
        "--stack",
        &stack,
        "--json",
    ])));
    let status: Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(
        status["stack"]["state"]["status"], "CREATE_COMPLETE",
        "{status}"
    );
    let tables = status["tables"].as_array().unwrap();
    let keys: Vec<(String, String, String)> = tables
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["key"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (format!("{prefix}agents"), "id".into(), "ACTIVE".into()),
            (
                format!("{prefix}permissions"),
                "scope".into(),
                "ACTIVE".into()
            ),
            (format!("{prefix}counters"), "key".into(), "ACTIVE".into()),
            (
                format!("{prefix}embeddings"),
                "agent_id".into(),
                "ACTIVE".into()
            ),
        ]
    );
    assert!(tables.iter().all(|t| t["problem"].is_null()), "{status}");
    // moto lists no outputs for a stack made by a change set, and keeps the
    // profile's own issuer: nothing to check of them here.

    // The profile was rewritten in place, comments and endpoint kept.
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.starts_with("# written by the test\n"), "{written}");
    assert!(written.contains(moto.endpoint()), "{written}");

    // `serve --profile` accepts the tables.
    let mut cmd = switchboard(&config, dir.path());
    cmd.args([
        "--profile",
        "e2e",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--json",
    ]);
    let serve = ServeProcess::start(cmd, &dir.path().join("serve.log"));
    let ready: Value = reqwest::get(format!("{}/readyz", serve.url("gateway_url")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["store"], "ok", "{ready}");
    drop(serve);

    // Again, with the same artifact and parameters: no change.
    let out = ok(&deploy(&["--json"]));
    let again: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["status"], "CREATE_COMPLETE", "{again}");
    let out = ok(&deploy(&[]));
    assert!(out.contains("No changes"), "{out}");

    // A different artifact is an update.
    std::fs::write(
        &zip,
        b"PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00",
    )
    .unwrap();
    let out = ok(&deploy(&[]));
    assert!(
        out.contains(&format!("Stack {stack}: UPDATE_COMPLETE")),
        "{out}"
    );
}

#[test]
fn deploy_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    // The local profile is not deployable.
    let out = run(switchboard(&config, dir.path()).args(["aws", "deploy", "--artifact", "x.zip"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--profile NAME"),
        "{out:?}"
    );
    // A new profile needs a region.
    let out = run(switchboard(&config, dir.path())
        .env_remove("AWS_REGION")
        .args(["--profile", "fresh", "aws", "deploy", "--artifact", "x.zip"]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--region"),
        "{out:?}"
    );
    // Not a zip.
    let not_zip = dir.path().join("bootstrap");
    std::fs::write(&not_zip, b"\x7fELF").unwrap();
    let out = run(switchboard(&config, dir.path())
        .args([
            "--profile",
            "fresh",
            "aws",
            "deploy",
            "--region",
            "us-east-1",
            "--artifact",
        ])
        .arg(&not_zip));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a zip"),
        "{out:?}"
    );
}

/// `clients add|list|rm` on an AWS profile manage the user pool's app
/// clients (client credentials), creating resource-server scopes as needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_an_aws_profile_are_cognito_app_clients() {
    use aws_sdk_cognitoidentityprovider::types::OAuthFlowType;

    let moto = Moto::start().await;
    let conn = aws_connection(&aws_profile(moto.endpoint(), "unused-", "http://unused"));
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&conn.sdk);
    let pool = cognito
        .create_user_pool()
        .pool_name("switchboard-test")
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap()
        .id
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.e2e]\nkind = \"aws\"\nregion = \"{}\"\nissuer = \"https://cognito-idp.{}.amazonaws.com/{pool}\"\nendpoint_url = \"{}\"\n",
            moto::REGION,
            moto::REGION,
            moto.endpoint()
        ),
    )
    .unwrap();
    let clients = |args: &[&str]| {
        let mut cmd = switchboard(&config, dir.path());
        cmd.args(["--profile", "e2e", "clients"]).args(args);
        run(&mut cmd)
    };

    let added: Value = serde_json::from_str(
        ok(&clients(&[
            "add",
            "caller",
            "--scope",
            "switchboard/agents",
            "--scope",
            "switchboard/echo",
            "--json",
        ]))
        .trim(),
    )
    .unwrap();
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    assert!(
        !client_id.is_empty() && added["client_secret"].as_str().unwrap().len() > 10,
        "{added}"
    );

    // What Cognito now holds.
    let described = cognito
        .describe_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&client_id)
        .send()
        .await
        .unwrap()
        .user_pool_client
        .unwrap();
    assert_eq!(described.client_name.as_deref(), Some("caller"));
    assert_eq!(
        described.allowed_o_auth_flows(),
        [OAuthFlowType::ClientCredentials]
    );
    assert_eq!(
        described.allowed_o_auth_scopes(),
        ["switchboard/agents", "switchboard/echo"]
    );
    assert!(described.client_secret.is_some());
    let scopes = |rs: aws_sdk_cognitoidentityprovider::types::ResourceServerType| {
        let mut v: Vec<String> = rs
            .scopes()
            .iter()
            .map(|s| s.scope_name().to_owned())
            .collect();
        v.sort();
        v
    };
    let server = cognito
        .describe_resource_server()
        .user_pool_id(&pool)
        .identifier("switchboard")
        .send()
        .await
        .unwrap()
        .resource_server
        .unwrap();
    assert_eq!(scopes(server), ["agents", "echo"]);

    // A second client on scopes that exist changes no resource server; a
    // scope of a new server creates that server. (Adding a scope to an
    // existing server is UpdateResourceServer, which moto 5.2.5 lacks.)
    ok(&clients(&[
        "add",
        "other",
        "--scope",
        "switchboard/echo",
        "--scope",
        "travel/book",
    ]));
    let server = |id: &'static str| {
        let cognito = cognito.clone();
        let pool = pool.clone();
        async move {
            cognito
                .describe_resource_server()
                .user_pool_id(&pool)
                .identifier(id)
                .send()
                .await
                .unwrap()
                .resource_server
                .unwrap()
        }
    };
    assert_eq!(scopes(server("switchboard").await), ["agents", "echo"]);
    assert_eq!(scopes(server("travel").await), ["book"]);

    let listed: Value = serde_json::from_str(ok(&clients(&["list", "--json"])).trim()).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["caller", "other"]);

    // Refusals: a scope without its server, a name already taken.
    let out = clients(&["add", "bad", "--scope", "agents"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RESOURCE_SERVER/NAME"),
        "{out:?}"
    );
    let out = clients(&["add", "caller", "--scope", "switchboard/agents"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already has an app client named caller"),
        "{out:?}"
    );

    // Removed by name, then by client id.
    ok(&clients(&["rm", "caller"]));
    let other = listed.as_array().unwrap()[1]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&clients(&["rm", &other]));
    let listed: Value = serde_json::from_str(ok(&clients(&["list", "--json"])).trim()).unwrap();
    assert_eq!(listed, serde_json::json!([]));
    let out = clients(&["rm", "caller"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no app client caller"),
        "{out:?}"
    );
}
