//! The real `switchboard` binary: `serve --json`, and CLI edits reaching the
//! running gateway through the shared data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use serde_json::{json, Value};

struct Serve {
    _process: common::ServeProcess,
    info: Value,
    dir: tempfile::TempDir,
}

fn serve() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    common::install_test_key(dir.path());
    let mut cmd = Command::new(common::binary());
    cmd.args(["--data-dir"])
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--json"]);
    let process = common::ServeProcess::start(cmd, &dir.path().join("serve.stderr"));
    Serve {
        info: process.info.clone(),
        _process: process,
        dir,
    }
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::binary())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn fails(out: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} in: {stderr}"
    );
}

async fn token(
    http: &reqwest::Client,
    info: &Value,
    id: &str,
    secret: &str,
    scope: &str,
) -> reqwest::Response {
    http.post(info["token_url"].as_str().unwrap())
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap()
}

async fn call(http: &reqwest::Client, info: &Value, agent: &str, token: &str) -> u16 {
    http.post(format!(
        "{}/agents/{agent}",
        info["gateway_url"].as_str().unwrap()
    ))
    .bearer_auth(token)
    .header("A2A-Version", "1.0")
    .json(&common::send_message("1", "hi"))
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// Polls until `call` answers `want`, for at most [`common::PATIENCE`].
async fn until_status(
    http: &reqwest::Client,
    info: &Value,
    agent: &str,
    token: &str,
    want: u16,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = call(http, info, agent, token).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < common::PATIENCE,
            "the running gateway still answers {got} for {agent}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_json_and_cli_edits_reach_the_running_gateway() {
    let s = serve();
    let info = &s.info;
    for key in [
        "gateway_url",
        "token_url",
        "issuer_url",
        "jwks_url",
        "client_id",
        "client_secret",
    ] {
        assert!(
            info[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} in {info}"
        );
    }
    let ids: Vec<&str> = info["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["echo", "stream", "guarded"]);
    let http = reqwest::Client::new();
    let resp = token(
        &http,
        info,
        info["client_id"].as_str().unwrap(),
        info["client_secret"].as_str().unwrap(),
        "switchboard/echo",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let tok = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(call(&http, info, "echo", &tok).await, 200);

    // Disable through the CLI: the running gateway answers 404 shortly after.
    common::ok(&cli(s.dir.path(), &["agents", "disable", "echo"]));
    let took = until_status(&http, info, "echo", &tok, 404).await;
    eprintln!("disable reached the gateway after {took:?}");
    common::ok(&cli(s.dir.path(), &["agents", "enable", "echo"]));
    until_status(&http, info, "echo", &tok, 200).await;

    // Revoke and grant.
    common::ok(&cli(
        s.dir.path(),
        &["permissions", "revoke", "switchboard/echo", "echo"],
    ));
    until_status(&http, info, "echo", &tok, 403).await;
    common::ok(&cli(
        s.dir.path(),
        &["permissions", "grant", "switchboard/echo", "echo"],
    ));
    until_status(&http, info, "echo", &tok, 200).await;

    // A new agent added through the CLI, pointing at the stream sample's backend.
    let stream_url = info["agents"][1]["url"].as_str().unwrap();
    let added: Value = serde_json::from_str(&common::ok(&cli(
        s.dir.path(),
        &[
            "agents", "add", "copy", "--url", stream_url, "--limit", "5", "--json",
        ],
    )))
    .unwrap();
    assert_eq!(added["id"], json!("copy"));
    assert_eq!(added["rate_limit"], json!(5));
    assert_eq!(
        added["name"],
        json!("Stream Agent"),
        "name taken from the card: {added}"
    );
    common::ok(&cli(
        s.dir.path(),
        &["permissions", "grant", "switchboard/echo", "copy"],
    ));
    until_status(&http, info, "copy", &tok, 200).await;

    // Name and description given: the card is fetched and stored all the same.
    let echo_url = info["agents"][0]["url"].as_str().unwrap();
    let named: Value = serde_json::from_str(&common::ok(&cli(
        s.dir.path(),
        &[
            "agents",
            "add",
            "named",
            "--url",
            echo_url,
            "--name",
            "Mine",
            "--description",
            "Given",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(
        (
            &named["name"],
            &named["description"],
            named["card"]["name"].is_string()
        ),
        (&json!("Mine"), &json!("Given"), true),
        "{named}"
    );
    // A new URL fetches the new backend's card; refresh fetches again.
    let edited: Value = serde_json::from_str(&common::ok(&cli(
        s.dir.path(),
        &["agents", "edit", "named", "--url", stream_url, "--json"],
    )))
    .unwrap();
    assert_eq!(edited["card"]["name"], json!("Stream Agent"), "{edited}");
    let refreshed = common::ok(&cli(s.dir.path(), &["agents", "refresh", "--all"]));
    for id in ["echo", "stream", "guarded", "copy", "named"] {
        assert!(
            refreshed.contains(&format!("refreshed the card of {id} ")),
            "{refreshed}"
        );
    }
    fails(
        &cli(s.dir.path(), &["agents", "refresh", "nobody"]),
        1,
        "no agent nobody",
    );

    // A client added through the CLI can get tokens right away.
    let client: Value = serde_json::from_str(&common::ok(&cli(
        s.dir.path(),
        &[
            "clients",
            "add",
            "ci-bot",
            "--scope",
            "switchboard/echo",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(client["client_id"], json!("ci-bot"));
    let secret = client["client_secret"].as_str().unwrap();
    assert_eq!(
        token(&http, info, "ci-bot", secret, "switchboard/echo")
            .await
            .status(),
        200
    );
    assert_eq!(
        token(&http, info, "ci-bot", "wrong", "switchboard/echo")
            .await
            .status(),
        401
    );
    assert_eq!(
        token(&http, info, "ci-bot", secret, "switchboard/all")
            .await
            .status(),
        400
    );

    // Minted tokens work against the gateway, and decode explains them.
    let minted = common::ok(&cli(
        s.dir.path(),
        &[
            "token",
            "mint",
            "--client",
            "ci-bot",
            "--scope",
            "switchboard/echo",
        ],
    ));
    let minted = minted.trim();
    assert_eq!(call(&http, info, "stream", minted).await, 403);
    let decoded: Value = serde_json::from_str(&common::ok(&cli(
        s.dir.path(),
        &["token", "decode", minted, "--json"],
    )))
    .unwrap();
    assert_eq!(decoded["validity"]["valid"], json!(true));
    assert_eq!(decoded["claims"]["client_id"], json!("ci-bot"));
    let echo = decoded["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == json!("echo"))
        .unwrap();
    assert_eq!(echo["allowed"], json!(true));
    assert_eq!(echo["granted_by"], json!(["switchboard/echo"]));

    // No --scope: the client's own scopes. Unknown clients and scopes it
    // does not hold are refused with what there is.
    let own = common::ok(&cli(
        s.dir.path(),
        &["token", "mint", "--client", "demo-client"],
    ));
    let decoded: Value = serde_json::from_str(&common::ok(&cli(
        s.dir.path(),
        &["token", "decode", own.trim(), "--json"],
    )))
    .unwrap();
    assert_eq!(
        decoded["claims"]["scope"],
        json!("switchboard/echo switchboard/stream switchboard/guarded")
    );
    fails(
        &cli(s.dir.path(), &["token", "mint", "--client", "ops"]),
        1,
        "no client ops on this profile; clients: ci-bot, demo-client, switchboard-gateway",
    );
    fails(
        &cli(
            s.dir.path(),
            &[
                "token",
                "mint",
                "--client",
                "ci-bot",
                "--scope",
                "switchboard/all",
            ],
        ),
        1,
        "client ci-bot does not hold scope switchboard/all; it holds: switchboard/echo",
    );
}

#[test]
fn bad_input_is_refused_with_a_message_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::ok(&cli(
        d,
        &[
            "agents",
            "add",
            "one",
            "--url",
            "http://127.0.0.1:9",
            "--name",
            "One",
            "--description",
            "x",
        ],
    ));
    fails(
        &cli(
            d,
            &[
                "agents",
                "add",
                "one",
                "--url",
                "http://127.0.0.1:9",
                "--name",
                "x",
                "--description",
                "x",
            ],
        ),
        1,
        "already exists",
    );
    fails(
        &cli(
            d,
            &["agents", "add", "Bad/Id", "--url", "http://127.0.0.1:9"],
        ),
        1,
        "agent id",
    );
    fails(
        &cli(d, &["agents", "add", "two", "--url", "ftp://x"]),
        1,
        "only http and https",
    );
    fails(
        &cli(
            d,
            &["agents", "add", "two", "--url", "http://169.254.169.254/"],
        ),
        1,
        "metadata",
    );
    fails(
        &cli(
            d,
            &["agents", "add", "two", "--url", "http://u:p@127.0.0.1/"],
        ),
        1,
        "credentials",
    );
    fails(&cli(d, &["agents", "show", "nope"]), 1, "no agent nope");
    fails(&cli(d, &["agents", "rm", "nope"]), 1, "no agent nope");
    fails(
        &cli(d, &["permissions", "grant", "s", "one", "nope"]),
        1,
        "no agent nope",
    );
    fails(
        &cli(d, &["permissions", "grant", "team\"x", "one"]),
        1,
        "which scopes may not contain",
    );
    fails(
        &cli(d, &["permissions", "revoke", "s", "one"]),
        1,
        "no scope s",
    );
    fails(&cli(d, &["clients", "rm", "nope"]), 1, "no client nope");
    fails(
        &cli(d, &["agents", "frobnicate"]),
        2,
        "unrecognized subcommand",
    );

    let list: Value =
        serde_json::from_str(&common::ok(&cli(d, &["agents", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let perms: Value =
        serde_json::from_str(&common::ok(&cli(d, &["permissions", "list", "--json"]))).unwrap();
    assert_eq!(perms, json!([]));
}

#[test]
fn import_is_validated_whole_and_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.json");
    std::fs::write(
        &bad,
        serde_json::to_string(&json!({
            "agents": [
                {"id": "good", "url": "http://127.0.0.1:1"},
                {"id": "BAD", "url": "http://127.0.0.1:2"},
                {"id": "meta", "url": "http://169.254.169.254/"}
            ],
            "permissions": {"s": ["good", "ghost"]}
        }))
        .unwrap(),
    )
    .unwrap();
    let out = cli(d, &["import", bad.to_str().unwrap()]);
    fails(&out, 1, "nothing was imported");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BAD") && stderr.contains("ghost") && stderr.contains("metadata"),
        "{stderr}"
    );
    let list: Value =
        serde_json::from_str(&common::ok(&cli(d, &["agents", "list", "--json"]))).unwrap();
    assert_eq!(list, json!([]));

    let good = d.join("good.json");
    let agents: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("a{i}"), "url": format!("http://127.0.0.1:{}", 1000 + i), "rate_limit": 10}))
        .collect();
    std::fs::write(
        &good,
        serde_json::to_string(
            &json!({"agents": agents, "permissions": {"s": ["a1", "a2"], "all": ["*"]}}),
        )
        .unwrap(),
    )
    .unwrap();
    common::ok(&cli(d, &["import", good.to_str().unwrap()]));
    let exported: Value = serde_json::from_str(&common::ok(&cli(d, &["export"]))).unwrap();
    assert_eq!(exported["agents"].as_array().unwrap().len(), 50);
    assert_eq!(
        exported["permissions"],
        json!({"all": ["*"], "s": ["a1", "a2"]})
    );

    // The export imports into a fresh directory unchanged.
    let other = tempfile::tempdir().unwrap();
    let file = d.join("export.json");
    std::fs::write(&file, serde_json::to_string(&exported).unwrap()).unwrap();
    common::ok(&cli(other.path(), &["import", file.to_str().unwrap()]));
    let again: Value = serde_json::from_str(&common::ok(&cli(other.path(), &["export"]))).unwrap();
    assert_eq!(again["permissions"], exported["permissions"]);
    let ids = |v: &Value| -> Vec<String> {
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&again), ids(&exported));
}
