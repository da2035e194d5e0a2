//! What the real binary writes to its logs: no secret ever, at any level, and
//! one structured audit line per decision.
//!
//! Both tests run `switchboard serve` as a process and read everything it
//! writes to standard error (where `serve` logs), plus the standard error of
//! every CLI command they run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};

/// A `switchboard serve --json` process logging to a file.
struct Serve {
    process: common::ServeProcess,
    dir: tempfile::TempDir,
    rust_log: Option<String>,
}

/// Starts `serve` with `RUST_LOG` set to `rust_log` (or unset: the default).
fn serve(rust_log: Option<&str>) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    common::install_test_key(dir.path());
    let mut cmd = Command::new(common::binary());
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--json"])
        .env("NO_COLOR", "1")
        .env_remove("SWITCHBOARD_PROFILE");
    match rust_log {
        Some(filter) => cmd.env("RUST_LOG", filter),
        None => cmd.env_remove("RUST_LOG"),
    };
    let process = common::ServeProcess::start(cmd, &dir.path().join("serve.stderr"));
    Serve {
        process,
        dir,
        rust_log: rust_log.map(str::to_owned),
    }
}

impl Serve {
    fn url(&self, key: &str) -> String {
        self.process.url(key)
    }

    fn agent_backend(&self, id: &str) -> String {
        self.process.info["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == json!(id))
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A CLI command on the same data directory, with the same `RUST_LOG`;
    /// its standard error is appended to `logs`.
    fn cli(&self, args: &[&str], stdin: Option<&str>, logs: &mut String) -> Output {
        let mut cmd = Command::new(common::binary());
        cmd.arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("SWITCHBOARD_PROFILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &self.rust_log {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "switchboard {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Stops the server with SIGTERM and returns everything it logged, once
    /// it has exited (a killed server could leave log lines unwritten).
    fn stop(mut self) -> String {
        let child = &mut self.process.child;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + common::PATIENCE;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "serve did not exit within {:?} of SIGTERM; it logged:\n{}",
                common::PATIENCE,
                std::fs::read_to_string(&self.process.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&self.process.stderr).unwrap()
    }

    /// Every secret value in the data directory's store.
    fn stored_secrets(&self) -> Vec<(String, String)> {
        let conn =
            rusqlite::Connection::open(self.dir.path().join(switchboard_core::store::DB_FILE))
                .unwrap();
        let mut stmt = conn.prepare("SELECT name, value FROM secrets").unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn issuer_token(http: &reqwest::Client, s: &Serve, scope: &str) -> String {
    let resp = http
        .post(s.url("token_url"))
        .basic_auth(s.url("client_id"), Some(s.url("client_secret")))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts a JSON-RPC request to `/agents/{agent}`; returns the status and body.
async fn call(
    http: &reqwest::Client,
    s: &Serve,
    agent: &str,
    token: &str,
    method: &str,
) -> (u16, String) {
    let resp = http
        .post(format!("{}/agents/{agent}", s.url("gateway_url")))
        .bearer_auth(token)
        .header("A2A-Version", "1.0")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": "1", "method": method,
            "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
        }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Calls until the answer is not 403/404 (a CLI edit reaching the running
/// gateway), for at most [`common::PATIENCE`]; every call is recorded.
async fn call_until_routed(
    http: &reqwest::Client,
    s: &Serve,
    agent: &str,
    token: &str,
    sent: &mut Vec<(String, u16)>,
) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (status, body) = call(http, s, agent, token, "SendMessage").await;
        sent.push((agent.to_owned(), status));
        if status != 404 && status != 403 {
            return (status, body);
        }
        assert!(
            start.elapsed() < common::PATIENCE,
            "{agent} never became reachable: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The token with its signature swapped for another token's: well formed,
/// and refused.
fn forged(token: &str, other: &str) -> String {
    let (head, _) = token.rsplit_once('.').unwrap();
    let (_, signature) = other.rsplit_once('.').unwrap();
    format!("{head}.{signature}")
}

/// The parts of a secret worth looking for: the whole value, and every
/// 16-character window at a stride of 8 (so any leaked run of 23 characters
/// or more is caught). For a JWT, its payload and signature (the header is
/// the same for every token of an issuer and says nothing).
fn fragments(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    let parts: Vec<&str> = value.split('.').collect();
    let secret_parts = if parts.len() == 3 && value.starts_with("eyJ") {
        vec![parts[1], parts[2]]
    } else {
        vec![value]
    };
    for part in secret_parts {
        out.push(part.to_owned());
        let chars: Vec<char> = part.chars().collect();
        if chars.len() > 16 {
            let mut i = 0;
            while i + 16 <= chars.len() {
                out.push(chars[i..i + 16].iter().collect());
                i += 8;
            }
            out.push(chars[chars.len() - 16..].iter().collect());
        }
    }
    out
}

fn basic(id: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

/// The end-to-end flows with every crate logging at `trace`: token mint,
/// SendMessage, streaming, static-header and OAuth2 backend auth, invalid
/// tokens, 403 and 429. No client secret, backend secret or bearer token
/// (nor a long enough piece of one) appears anywhere in the logs.
#[tokio::test]
async fn no_secret_or_token_reaches_the_logs_even_at_trace() {
    let s = serve(Some("trace"));
    let http = http();
    let mut cli_logs = String::new();
    let mut secrets: Vec<(String, String)> = Vec::new();

    // Tokens: from the issuer (client credentials) and minted by the CLI.
    let caller = issuer_token(
        &http,
        &s,
        "switchboard/echo switchboard/stream switchboard/guarded",
    )
    .await;
    secrets.push(("the caller's JWT".into(), caller.clone()));
    let minted = s.cli(
        &[
            "token",
            "mint",
            "--client",
            "demo-client",
            "--scope",
            "switchboard/echo",
        ],
        None,
        &mut cli_logs,
    );
    let minted = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    secrets.push(("a minted JWT".into(), minted.clone()));

    // SendMessage and a stream.
    assert_eq!(call(&http, &s, "echo", &caller, "SendMessage").await.0, 200);
    assert_eq!(call(&http, &s, "echo", &minted, "SendMessage").await.0, 200);
    let (status, body) = call(&http, &s, "stream", &caller, "SendStreamingMessage").await;
    assert_eq!(status, 200);
    assert!(body.contains("TASK_STATE_COMPLETED"), "{body}");

    // OAuth2 client-credentials backend auth (the guarded sample).
    assert_eq!(
        call(&http, &s, "guarded", &caller, "SendMessage").await.0,
        200
    );
    let guarded_seen = common::seen_authorizations(&http, &s.agent_backend("guarded")).await;
    let backend_token = guarded_seen[0]
        .as_deref()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    secrets.push(("the backend's access token".into(), backend_token));

    // A static header from a secret.
    let static_value = format!("Bearer static-{}", uuid::Uuid::new_v4().simple());
    s.cli(
        &["secrets", "set", "hdr/api-key"],
        Some(&format!("{static_value}\n")),
        &mut cli_logs,
    );
    s.cli(
        &[
            "agents",
            "add",
            "hdr",
            "--url",
            &s.agent_backend("echo"),
            "--name",
            "Header",
            "--description",
            "echo behind a static header",
            "--auth-header",
            "authorization",
            "--secret",
            "hdr/api-key",
        ],
        None,
        &mut cli_logs,
    );
    s.cli(
        &["permissions", "grant", "switchboard/echo", "hdr"],
        None,
        &mut cli_logs,
    );
    let mut sent = Vec::new();
    assert_eq!(
        call_until_routed(&http, &s, "hdr", &caller, &mut sent)
            .await
            .0,
        200
    );
    let echo_seen = common::seen_authorizations(&http, &s.agent_backend("echo")).await;
    assert_eq!(echo_seen.last().unwrap().as_deref(), Some(&*static_value));
    secrets.push(("the static header value".into(), static_value.clone()));

    // The admin API: a secret written over HTTP and used at once, an agent
    // and a permission edited, the traffic stream followed meanwhile.
    let admin_client = s.cli(
        &[
            "clients",
            "add",
            "registry-admin",
            "--scope",
            "switchboard/admin",
            "--json",
        ],
        None,
        &mut cli_logs,
    );
    let admin_client: Value = serde_json::from_slice(&admin_client.stdout).unwrap();
    secrets.push((
        "the admin client's secret".into(),
        admin_client["client_secret"].as_str().unwrap().to_owned(),
    ));
    let admin = s.cli(
        &["token", "mint", "--client", "registry-admin"],
        None,
        &mut cli_logs,
    );
    let admin = String::from_utf8(admin.stdout).unwrap().trim().to_owned();
    secrets.push(("the admin token".into(), admin.clone()));
    let gateway = s.url("gateway_url");
    let mut traffic = http
        .get(format!("{gateway}/admin/traffic"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(traffic.status(), 200);
    let admin_value = format!("Bearer admin-{}", uuid::Uuid::new_v4().simple());
    let mut answers = String::new();
    for (method, path, body, expect) in [
        (
            reqwest::Method::PUT,
            "/admin/secrets/adm/key",
            json!({"value": admin_value}),
            204,
        ),
        (
            reqwest::Method::PUT,
            "/admin/agents/adm",
            json!({"url": s.agent_backend("echo"), "auth": {"type": "header", "name": "authorization", "secret": "adm/key"}}),
            201,
        ),
        (
            reqwest::Method::PUT,
            "/admin/permissions",
            json!({"scope": "switchboard/guarded", "agents": ["guarded", "adm"]}),
            200,
        ),
        (reqwest::Method::GET, "/admin/secrets", Value::Null, 200),
        (reqwest::Method::GET, "/admin/agents/adm", Value::Null, 200),
        (
            reqwest::Method::PUT,
            "/admin/secrets/adm/key",
            json!({"value": 7}),
            400,
        ),
    ] {
        let mut req = http
            .request(method.clone(), format!("{gateway}{path}"))
            .bearer_auth(&admin);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), expect, "{method} {path}");
        answers.push_str(&resp.text().await.unwrap());
    }
    let (status, body) = call(&http, &s, "adm", &caller, "SendMessage").await;
    assert_eq!(status, 200, "{body}");
    answers.push_str(&body);
    let echo_seen = common::seen_authorizations(&http, &s.agent_backend("echo")).await;
    assert_eq!(echo_seen.last().unwrap().as_deref(), Some(&*admin_value));
    secrets.push((
        "a secret written over the admin API".into(),
        admin_value.clone(),
    ));
    let mut stream_text = String::new();
    let deadline = Instant::now() + common::PATIENCE;
    while !(stream_text.contains("\"agent\":\"adm\"") && stream_text.contains("event: body")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, traffic.chunk()).await {
            Ok(Ok(Some(chunk))) => stream_text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the traffic stream stalled: {other:?}\n{stream_text}"),
        }
    }
    drop(traffic);

    // Invalid tokens.
    let bad = forged(&caller, &minted);
    secrets.push(("a forged JWT".into(), bad.clone()));
    assert_eq!(call(&http, &s, "echo", &bad, "SendMessage").await.0, 401);
    let garbage = format!("not-a-jwt-{}", uuid::Uuid::new_v4().simple());
    secrets.push(("a garbage token".into(), garbage.clone()));
    assert_eq!(
        call(&http, &s, "echo", &garbage, "SendMessage").await.0,
        401
    );
    // 403: a minted token for echo only, on stream.
    assert_eq!(
        call(&http, &s, "stream", &minted, "SendMessage").await.0,
        403
    );

    // 429: an agent allowing one request per minute.
    s.cli(
        &[
            "agents",
            "add",
            "lim",
            "--url",
            &s.agent_backend("echo"),
            "--name",
            "Limited",
            "--description",
            "one a minute",
            "--limit",
            "1",
        ],
        None,
        &mut cli_logs,
    );
    s.cli(
        &["permissions", "grant", "switchboard/echo", "lim"],
        None,
        &mut cli_logs,
    );
    call_until_routed(&http, &s, "lim", &caller, &mut sent).await;
    let mut limited = false;
    for _ in 0..3 {
        if call(&http, &s, "lim", &caller, "SendMessage").await.0 == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "no 429 from an agent limited to 1 a minute");

    // Every secret the store holds, and the Basic credentials built from them.
    for (name, value) in s.stored_secrets() {
        if let Some(client) = name.strip_prefix("sample/") {
            secrets.push((
                format!("Basic credentials of {client}"),
                basic(client, &value),
            ));
        }
        secrets.push((format!("the stored secret {name}"), value));
    }
    assert!(
        secrets.iter().any(|(_, v)| v == &s.url("client_secret")),
        "the demo client's secret is among the stored ones"
    );
    assert!(
        secrets
            .iter()
            .any(|(what, _)| what == "the stored secret sample/switchboard-gateway"),
        "the gateway's backend client secret is among the stored ones"
    );

    let serve_logs = s.stop();
    // One audit line per admin call, naming the client.
    let admin_lines: Vec<&str> = serve_logs
        .lines()
        .filter(|l| l.contains("switchboard::audit") && l.contains("admin=true"))
        .collect();
    assert!(
        admin_lines
            .iter()
            .any(|l| l.contains("client=registry-admin")
                && l.contains("path=/admin/secrets/adm/key")
                && l.contains("status=204")),
        "no audit line for the admin secret write:\n{}",
        admin_lines.join("\n")
    );
    assert_eq!(
        admin_lines.len(),
        7,
        "one line per admin call (the stream and six edits):\n{}",
        admin_lines.join("\n")
    );
    // The filter was in force: trace lines from the HTTP stack on both sides
    // (hyper itself has no log output without an unstable feature), debug
    // lines from the gateway's crates.
    for target in ["axum", "hyper_util", "reqwest"] {
        assert!(
            serve_logs
                .lines()
                .any(|l| l.contains(" TRACE ") && l.contains(&format!(" {target}::"))),
            "no TRACE line from {target}"
        );
    }
    assert!(
        serve_logs
            .lines()
            .any(|l| l.contains(" DEBUG ") && l.contains(" switchboard_")),
        "no DEBUG line from the gateway's crates"
    );
    assert!(serve_logs.contains("switchboard::audit"), "no audit lines");

    let mut leaks = Vec::new();
    for (source, logs) in [
        ("serve", &serve_logs),
        ("the CLI", &cli_logs),
        ("an admin API answer", &answers),
        ("the traffic stream", &stream_text),
    ] {
        for (what, value) in &secrets {
            for fragment in fragments(value) {
                if let Some(line) = logs.lines().find(|l| l.contains(&fragment)) {
                    leaks.push(format!("{what} ({fragment:?}) in {source}'s log: {line}"));
                    break;
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the logs:\n{}",
        leaks.join("\n")
    );
}

/// One audit line, parsed from the log's `key=value` pairs.
fn parse_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        fields.insert(key.trim().to_owned(), value);
        rest = after.trim_start();
    }
    fields
}

/// Every decision is one audit line with client, agent, method, status and
/// latency, and the reason when the request was refused; no line carries a
/// token. Runs at the default log level.
#[tokio::test]
async fn every_decision_is_one_structured_audit_line_without_tokens() {
    let s = serve(None);
    let http = http();
    let mut cli_logs = String::new();
    let mut sent: Vec<(String, u16)> = Vec::new();

    let token = issuer_token(&http, &s, "switchboard/echo").await;
    let (status, _) = call(&http, &s, "echo", &token, "SendMessage").await;
    assert_eq!(status, 200);
    sent.push(("echo".into(), status));

    let minted = s.cli(
        &[
            "token",
            "mint",
            "--client",
            "demo-client",
            "--scope",
            "switchboard/echo",
        ],
        None,
        &mut cli_logs,
    );
    let minted = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let bad = forged(&token, &minted);
    let (status, _) = call(&http, &s, "echo", &bad, "SendMessage").await;
    assert_eq!(status, 401);
    sent.push(("echo".into(), status));
    let (status, _) = call(&http, &s, "stream", &minted, "GetTask").await;
    assert_eq!(status, 403);
    sent.push(("stream".into(), status));

    s.cli(
        &[
            "agents",
            "add",
            "lim",
            "--url",
            &s.agent_backend("echo"),
            "--name",
            "Limited",
            "--description",
            "one a minute",
            "--limit",
            "1",
        ],
        None,
        &mut cli_logs,
    );
    s.cli(
        &["permissions", "grant", "switchboard/echo", "lim"],
        None,
        &mut cli_logs,
    );
    call_until_routed(&http, &s, "lim", &token, &mut sent).await;
    loop {
        let (status, _) = call(&http, &s, "lim", &token, "SendMessage").await;
        sent.push(("lim".into(), status));
        if status == 429 {
            break;
        }
        assert!(sent.len() < 100, "no 429: {sent:?}");
    }

    let logs = s.stop();
    let audit: Vec<(&str, BTreeMap<String, String>)> = logs
        .lines()
        .filter_map(|l| {
            l.split_once(" switchboard::audit: ")
                .map(|(_, rest)| (l, parse_fields(rest)))
        })
        .collect();

    // One line per request, with the status each caller saw.
    let mut expected: Vec<(String, u16)> = sent.clone();
    expected.sort();
    let mut logged: Vec<(String, u16)> = audit
        .iter()
        .map(|(_, f)| (f["agent"].clone(), f["status"].parse().unwrap()))
        .collect();
    logged.sort();
    assert_eq!(logged, expected);

    for (line, f) in &audit {
        let keys: Vec<&str> = f.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "agent",
                "client",
                "error",
                "latency_ms",
                "method",
                "request",
                "status"
            ],
            "{line}"
        );
        let latency: f64 = f["latency_ms"].parse().unwrap();
        assert!(latency >= 0.0, "{line}");
        for secret in [&token, &minted, &bad] {
            for fragment in fragments(secret) {
                assert!(
                    !line.contains(&fragment),
                    "a token in the audit line {line}"
                );
            }
        }
    }
    let find = |agent: &str, status: &str| -> &BTreeMap<String, String> {
        &audit
            .iter()
            .find(|(_, f)| f["agent"] == agent && f["status"] == status)
            .unwrap_or_else(|| panic!("no audit line for {agent} {status}"))
            .1
    };
    let pick = |f: &BTreeMap<String, String>| {
        (
            f["client"].clone(),
            f["agent"].clone(),
            f["method"].clone(),
            f["status"].clone(),
        )
    };
    let s4 = |a: &str, b: &str, c: &str, d: &str| {
        (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned())
    };

    // Allowed.
    let allowed = find("echo", "200");
    assert_eq!(
        pick(allowed),
        s4("demo-client", "echo", "SendMessage", "200")
    );
    assert_eq!(allowed["error"], "");
    // Denied: no valid token; the client is unknown, the reason is given.
    let unauthenticated = find("echo", "401");
    assert_eq!(pick(unauthenticated), s4("-", "echo", "SendMessage", "401"));
    assert_eq!(
        unauthenticated["error"],
        "TOKEN_INVALID: token signature is invalid"
    );
    // Denied: not permitted.
    let forbidden = find("stream", "403");
    assert_eq!(
        pick(forbidden),
        s4("demo-client", "stream", "GetTask", "403")
    );
    assert_eq!(
        forbidden["error"],
        "AGENT_NOT_PERMITTED: denied: stream is granted by [switchboard/all switchboard/stream], the token has [switchboard/echo]"
    );
    // Limited.
    let limited = find("lim", "429");
    assert_eq!(
        pick(limited),
        s4("demo-client", "lim", "SendMessage", "429")
    );
    assert!(
        limited["error"].starts_with("RATE_LIMITED: rate limit of 1 requests per minute reached"),
        "{limited:?}"
    );
}
