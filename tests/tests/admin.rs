//! The admin API under `/admin`, end to end on real sockets: registry edits
//! that the request path obeys at once, the admin scope, optimistic
//! concurrency, validation, write-only secrets and the live traffic stream.
//! The flows that touch the stores run on both the SQLite store and the AWS
//! stores (DynamoDB and Secrets Manager on a local moto server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::GatewayConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "switchboard/admin";

/// A token for `client` with `scopes`, signed by the stack's issuer.
fn token_for(s: &Stack, client: &str, scopes: &[&str]) -> String {
    let mut claims = s.claims(scopes);
    claims["sub"] = json!(client);
    claims["client_id"] = json!(client);
    s.sign(&claims)
}

fn admin_token(s: &Stack) -> String {
    token_for(s, "registry-admin", &[ADMIN])
}

/// One admin call: method, path under the gateway, optional JSON body and
/// extra headers; returns status, headers and the body as JSON (`Null`
/// when empty).
async fn admin(
    s: &Stack,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = s.http.request(method, s.gw(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, headers, value)
}

fn reason(body: &Value) -> &str {
    body["error"]["details"][0]["reason"].as_str().unwrap_or("")
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

use reqwest::Method;

async fn register_grant_and_call(b: Backend) {
    let s = start_on(b).await;
    let admin_t = admin_token(&s);
    let echo_url = s.agent_backend("echo");

    let (status, headers, created) = admin(
        &s,
        Some(&admin_t),
        Method::PUT,
        "/admin/agents/team-echo",
        Some(&json!({"url": echo_url, "name": "Team echo", "description": "Says it back"})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let version = created["version"].as_u64().unwrap();
    assert_eq!(headers["etag"], format!("\"{version}\"").as_str());
    assert_eq!(
        (created["id"].clone(), created["enabled"].clone()),
        (json!("team-echo"), json!(true))
    );

    let (status, _, granted) = admin(
        &s,
        Some(&admin_t),
        Method::PUT,
        "/admin/permissions",
        Some(&json!({"scope": "team/echo", "agents": ["team-echo"]})),
        &[],
    )
    .await;
    assert_eq!(
        (status, granted),
        (200, json!({"scope": "team/echo", "agents": ["team-echo"]}))
    );

    // Another client, holding only the new scope, calls it at once.
    let caller = token_for(&s, "team-client", &["team/echo"]);
    let resp = s
        .send("team-echo", Some(&caller), &send_message("1", "hello team"))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], json!("1"));
    assert!(body["result"].is_object(), "{body}");
    // ... and nothing else.
    let resp = s
        .send("echo", Some(&caller), &send_message("2", "hello"))
        .await;
    assert_eq!(resp.status(), 403);

    // The card, fetched again and stored.
    let (status, _, refreshed) = admin(
        &s,
        Some(&admin_t),
        Method::POST,
        "/admin/agents/team-echo/refresh",
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["card"]["skills"].is_array(), "{refreshed}");
    assert_eq!(refreshed["name"], json!("Team echo"), "a given name stays");
    assert_eq!(
        refreshed["version"].as_u64().unwrap(),
        version + 1,
        "one write"
    );

    // PATCH: disabled answers 404 like an unknown agent.
    let (status, _, patched) = admin(
        &s,
        Some(&admin_t),
        Method::PATCH,
        "/admin/agents/team-echo",
        Some(&json!({"enabled": false, "rate_limit": 5})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["enabled"].clone(), patched["rate_limit"].clone()),
        (json!(false), json!(5))
    );
    let resp = s
        .send("team-echo", Some(&caller), &send_message("3", "hello"))
        .await;
    assert_eq!(resp.status(), 404);

    // Listed, then deleted.
    let (status, _, list) =
        admin(&s, Some(&admin_t), Method::GET, "/admin/agents", None, &[]).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"team-echo") && ids.contains(&"echo"),
        "{ids:?}"
    );
    let (status, _, _) = admin(
        &s,
        Some(&admin_t),
        Method::DELETE,
        "/admin/agents/team-echo",
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, gone) = admin(
        &s,
        Some(&admin_t),
        Method::GET,
        "/admin/agents/team-echo",
        None,
        &[],
    )
    .await;
    assert_eq!((status, reason(&gone)), (404, "AGENT_NOT_FOUND"));
    let (status, _, body) = admin(
        &s,
        Some(&admin_t),
        Method::DELETE,
        "/admin/permissions",
        Some(&json!({"scope": "team/echo"})),
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, _, perms) = admin(
        &s,
        Some(&admin_t),
        Method::GET,
        "/admin/permissions",
        None,
        &[],
    )
    .await;
    assert!(
        !perms["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["scope"] == json!("team/echo")),
        "{perms}"
    );
}

async fn two_writers(b: Backend) {
    let s = start_on(b).await;
    let t = admin_token(&s);
    let (status, headers, echo) =
        admin(&s, Some(&t), Method::GET, "/admin/agents/echo", None, &[]).await;
    assert_eq!(status, 200);
    let tag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(tag, format!("\"{}\"", echo["version"]));

    // Writer A wins.
    let (status, headers_a, a) = admin(
        &s,
        Some(&t),
        Method::PATCH,
        "/admin/agents/echo",
        Some(&json!({"description": "from A"})),
        &[("if-match", &tag)],
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_ne!(headers_a["etag"].to_str().unwrap(), tag);

    // Writer B read the same version: its PUT, PATCH and DELETE are refused.
    let mut b_record = echo.clone();
    b_record["description"] = json!("from B");
    let (status, _, refused) = admin(
        &s,
        Some(&t),
        Method::PUT,
        "/admin/agents/echo",
        Some(&b_record),
        &[("if-match", &tag)],
    )
    .await;
    assert_eq!((status, reason(&refused)), (412, "VERSION_MISMATCH"));
    let (status, _, _) = admin(
        &s,
        Some(&t),
        Method::PATCH,
        "/admin/agents/echo",
        Some(&json!({"description": "from B"})),
        &[("if-match", &tag)],
    )
    .await;
    assert_eq!(status, 412);
    let (status, _, _) = admin(
        &s,
        Some(&t),
        Method::DELETE,
        "/admin/agents/echo",
        None,
        &[("if-match", &tag)],
    )
    .await;
    assert_eq!(status, 412);
    // Create-only on an existing id.
    let (status, _, _) = admin(
        &s,
        Some(&t),
        Method::PUT,
        "/admin/agents/echo",
        Some(&b_record),
        &[("if-none-match", "*")],
    )
    .await;
    assert_eq!(status, 412);

    let (_, _, now) = admin(&s, Some(&t), Method::GET, "/admin/agents/echo", None, &[]).await;
    assert_eq!(now, a, "A's write stands, B's left no trace");
}

/// Every field the API takes, invalid in turn: 400 naming the field, and
/// nothing written.
async fn invalid_fields(b: Backend) {
    let s = start_on(b).await;
    let t = admin_token(&s);
    let url = s.agent_backend("echo");
    let (_, _, agents_before) = admin(&s, Some(&t), Method::GET, "/admin/agents", None, &[]).await;
    let (_, _, perms_before) =
        admin(&s, Some(&t), Method::GET, "/admin/permissions", None, &[]).await;
    let (_, _, secrets_before) =
        admin(&s, Some(&t), Method::GET, "/admin/secrets", None, &[]).await;

    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"url": "ftp://example.com"}),
            "url",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"name": "no url"}),
            "url",
        ),
        (
            Method::PUT,
            "/admin/agents/Bad%20Id",
            json!({"url": url}),
            "id",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"id": "other", "url": url}),
            "id",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"url": url, "enabled": "yes"}),
            "enabled",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"url": url, "rate_limit": "many"}),
            "rate_limit",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"url": url, "auth": {"type": "header", "name": "bad header", "secret": "s"}}),
            "auth.name",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"url": url, "auth": {"type": "header", "name": "x-api-key", "secret": " "}}),
            "auth.secret",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"url": url, "auth": {"type": "oauth2", "token_url": "http://169.254.169.254/token", "client_id": "c", "secret": "s"}}),
            "auth.token_url",
        ),
        (
            Method::PUT,
            "/admin/agents/new",
            json!({"url": url, "auth": {"type": "oauth2", "token_url": "https://idp.example.com/token", "client_id": "", "secret": "s"}}),
            "auth.client_id",
        ),
        (
            Method::PATCH,
            "/admin/agents/echo",
            json!({"enabled": 1}),
            "enabled",
        ),
        (
            Method::PATCH,
            "/admin/agents/echo",
            json!({"rate_limit": 0}),
            "rate_limit",
        ),
        (
            Method::PATCH,
            "/admin/agents/echo",
            json!({"rate_limit": -3}),
            "rate_limit",
        ),
        (
            Method::PATCH,
            "/admin/agents/echo",
            json!({"description": 7}),
            "description",
        ),
        (
            Method::PATCH,
            "/admin/agents/echo",
            json!({"url": url}),
            "url",
        ),
        (
            Method::PUT,
            "/admin/permissions",
            json!({"scope": "has space", "agents": ["echo"]}),
            "scope",
        ),
        (
            Method::PUT,
            "/admin/permissions",
            json!({"scope": "team/x", "agents": ["Not An Id"]}),
            "Not An Id",
        ),
        (
            Method::PUT,
            "/admin/permissions",
            json!({"scope": "team/x"}),
            "agents",
        ),
        (
            Method::DELETE,
            "/admin/permissions",
            json!({"scope": "has space"}),
            "scope",
        ),
        (
            Method::PUT,
            "/admin/secrets/bad%20name",
            json!({"value": "v"}),
            "name",
        ),
        (
            Method::PUT,
            "/admin/secrets/good",
            json!({"value": ""}),
            "value",
        ),
        (
            Method::PUT,
            "/admin/secrets/good",
            json!({"value": 12345}),
            "value",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, _, answer) = admin(&s, Some(&t), method.clone(), path, Some(&body), &[]).await;
        assert_eq!(
            (status, reason(&answer)),
            (400, "INVALID_REQUEST"),
            "{method} {path} {body}: {answer}"
        );
        assert!(
            message(&answer).contains(field),
            "{method} {path} {body}: the message does not name {field}: {answer}"
        );
    }
    let (status, _, answer) = admin(
        &s,
        Some(&t),
        Method::PUT,
        "/admin/secrets/good",
        Some(&json!({"value": 12345})),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        !answer.to_string().contains("12345"),
        "the value is quoted back: {answer}"
    );

    let (_, _, agents_after) = admin(&s, Some(&t), Method::GET, "/admin/agents", None, &[]).await;
    let (_, _, perms_after) =
        admin(&s, Some(&t), Method::GET, "/admin/permissions", None, &[]).await;
    let (_, _, secrets_after) = admin(&s, Some(&t), Method::GET, "/admin/secrets", None, &[]).await;
    assert_eq!(agents_after, agents_before, "nothing half-written");
    assert_eq!(perms_after, perms_before);
    assert_eq!(secrets_after, secrets_before);
}

/// A secret written over the API is used by the very next request, and no
/// response or traffic event ever shows a value or a token.
async fn secrets_are_write_only(b: Backend) {
    let s = start_on(b).await;
    let t = admin_token(&s);
    let url = s.agent_backend("echo");
    let first = format!("first-{}", uuid::Uuid::new_v4().simple());
    let second = format!("second-{}", uuid::Uuid::new_v4().simple());

    let mut traffic = s
        .http
        .get(s.gw("/admin/traffic"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(traffic.status(), 200);
    assert_eq!(
        traffic.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut seen = String::new();
    read_until(&mut traffic, &mut seen, "event: ready").await;

    let mut answers = String::new();
    let (status, _, body) = admin(
        &s,
        Some(&t),
        Method::PUT,
        "/admin/secrets/team/key",
        Some(&json!({"value": first})),
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _, body) = admin(
        &s,
        Some(&t),
        Method::PUT,
        "/admin/agents/keyed",
        Some(&json!({"url": url, "auth": {"type": "header", "name": "authorization", "secret": "team/key"}})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    answers.push_str(&body.to_string());
    let (status, _, _) = admin(
        &s,
        Some(&t),
        Method::PUT,
        "/admin/permissions",
        Some(&json!({"scope": "team/keyed", "agents": ["keyed"]})),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let caller = token_for(&s, "team-client", &["team/keyed"]);

    let resp = s
        .send("keyed", Some(&caller), &send_message("1", "first call"))
        .await;
    assert_eq!(resp.status(), 200);
    answers.push_str(&resp.text().await.unwrap());
    let (status, _, _) = admin(
        &s,
        Some(&t),
        Method::PUT,
        "/admin/secrets/team/key",
        Some(&json!({"value": second})),
        &[],
    )
    .await;
    assert_eq!(status, 204);
    let resp = s
        .send("keyed", Some(&caller), &send_message("2", "second call"))
        .await;
    assert_eq!(resp.status(), 200);
    answers.push_str(&resp.text().await.unwrap());
    let seen_keys = s.seen_authorizations("echo").await;
    assert_eq!(
        seen_keys[seen_keys.len() - 2..],
        [Some(first.clone()), Some(second.clone())],
        "the rotated secret is sent on the next request"
    );

    let (status, _, listed) = admin(&s, Some(&t), Method::GET, "/admin/secrets", None, &[]).await;
    assert_eq!(status, 200);
    let entry = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == json!("team/key"))
        .cloned();
    assert_eq!(
        entry,
        Some(json!({"name": "team/key", "agents": ["keyed"], "exists": true}))
    );
    answers.push_str(&listed.to_string());
    let (status, _, agent) =
        admin(&s, Some(&t), Method::GET, "/admin/agents/keyed", None, &[]).await;
    assert_eq!(status, 200);
    answers.push_str(&agent.to_string());
    let (_, _, doc) = admin(&s, Some(&t), Method::GET, "/admin/openapi.json", None, &[]).await;
    answers.push_str(&doc.to_string());

    // The traffic of the second call, bodies captured, no secret in it.
    read_until(&mut traffic, &mut seen, "second call").await;
    read_until(&mut traffic, &mut seen, "event: finished").await;
    assert!(seen.contains("event: started"), "{seen}");
    assert!(seen.contains("\"client\":\"team-client\""), "{seen}");
    assert!(seen.contains("event: body"), "{seen}");
    for value in [&first, &second, &caller, &t] {
        assert!(!answers.contains(value.as_str()), "a secret in a response");
        assert!(
            !seen.contains(value.as_str()),
            "a secret in the traffic stream"
        );
    }

    let (status, _, _) = admin(
        &s,
        Some(&t),
        Method::DELETE,
        "/admin/secrets/team/key",
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, gone) = admin(
        &s,
        Some(&t),
        Method::DELETE,
        "/admin/secrets/team/key",
        None,
        &[],
    )
    .await;
    assert_eq!(status, 404, "{gone}");
}

/// Reads the SSE response into `seen` until it holds `needle`.
async fn read_until(resp: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => {
                panic!("the traffic stream ended or stalled before {needle:?}: {other:?}\n{seen}")
            }
        }
    }
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod aws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Aws).await })*
        }
    };
}

on_both_stores!(
    register_grant_and_call,
    two_writers,
    invalid_fields,
    secrets_are_write_only
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_scope_is_required_and_agents_paths_never_reach_it() {
    let s = start().await;
    let (status, headers, body) = admin(&s, None, Method::GET, "/admin/agents", None, &[]).await;
    assert_eq!((status, reason(&body)), (401, "TOKEN_MISSING"));
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, _, body) = admin(&s, None, Method::GET, "/admin/no-such-route", None, &[]).await;
    assert_eq!(
        status, 401,
        "unknown admin routes are not told apart: {body}"
    );

    let everything = token_for(&s, "demo-client", &["switchboard/echo", "switchboard/all"]);
    for (method, path) in [
        (Method::GET, "/admin/agents"),
        (Method::PUT, "/admin/secrets/x"),
        (Method::GET, "/admin/traffic"),
        (Method::GET, "/admin/openapi.json"),
    ] {
        let (status, _, body) =
            admin(&s, Some(&everything), method, path, Some(&json!({})), &[]).await;
        assert_eq!(
            (status, reason(&body), message(&body)),
            (
                403,
                "ADMIN_SCOPE_REQUIRED",
                "this route needs a token with scope switchboard/admin"
            ),
            "{path}"
        );
    }

    // An admin token through /agents/… reaches an agent or nothing, never the API.
    let t = admin_token(&s);
    for path in [
        "/agents/admin/agents",
        "/agents/echo/..%2f..%2fadmin/agents",
        "/agents/echo/%2e%2e%2f%2e%2e%2fadmin/agents",
    ] {
        let resp = s.http.get(s.gw(path)).bearer_auth(&t).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(
            status >= 400 && !text.contains("\"agents\":["),
            "{path}: {status} {text}"
        );
    }
    let (status, _, body) =
        admin(&s, Some(&t), Method::GET, "/admin/no-such-route", None, &[]).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_scope_is_configurable() {
    let s = start_with(GatewayConfig {
        admin_scope: "ops/registry".into(),
        ..GatewayConfig::default()
    })
    .await;
    let (status, _, body) = admin(
        &s,
        Some(&admin_token(&s)),
        Method::GET,
        "/admin/agents",
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, message(&body)),
        (403, "this route needs a token with scope ops/registry")
    );
    let t = token_for(&s, "ops", &["ops/registry"]);
    let (status, _, _) = admin(&s, Some(&t), Method::GET, "/admin/agents", None, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let s = start().await;
    let (status, _, doc) = admin(
        &s,
        Some(&admin_token(&s)),
        Method::GET,
        "/admin/openapi.json",
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut routes: Vec<String> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            routes.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes.sort();
    assert_eq!(
        routes,
        [
            "DELETE /admin/agents/{id}",
            "DELETE /admin/permissions",
            "DELETE /admin/secrets/{name}",
            "GET /admin/agents",
            "GET /admin/agents/{id}",
            "GET /admin/openapi.json",
            "GET /admin/permissions",
            "GET /admin/secrets",
            "GET /admin/traffic",
            "PATCH /admin/agents/{id}",
            "POST /admin/agents/{id}/refresh",
            "PUT /admin/agents/{id}",
            "PUT /admin/permissions",
            "PUT /admin/secrets/{name}",
        ]
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "AgentRecord",
        "BackendAuth",
        "AgentPatch",
        "ScopeGrant",
        "SecretValue",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        json!("bearer")
    );
}

/// A subscriber that never reads: the gateway keeps answering every call,
/// and once the subscriber reads again the stream says what it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_loses_events_and_is_told() {
    let s = start_with(GatewayConfig {
        traffic_buffer: 4,
        ..GatewayConfig::default()
    })
    .await;
    let t = admin_token(&s);
    let addr: std::net::SocketAddr = s
        .stack
        .info
        .gateway_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(addr).await.unwrap();
    conn.write_all(
        format!("GET /admin/traffic HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {t}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();

    // Well over what the socket buffers hold: 400 calls of 32 KiB each way.
    let token = s.token(&["switchboard/echo"]).await;
    let text = "x".repeat(32 * 1024);
    let calls = futures::stream::iter(0..400)
        .map(|i| {
            let (s, token, text) = (&s, &token, &text);
            async move {
                s.send("echo", Some(token), &send_message(&i.to_string(), text))
                    .await
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<u16>>()
        .await;
    assert!(
        calls.iter().all(|&c| c == 200),
        "the gateway stopped answering: {calls:?}"
    );

    // Now read: a `dropped` event with a count comes.
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + PATIENCE;
    let dropped = loop {
        let text = String::from_utf8_lossy(&seen);
        if let Some(at) = text.find("event: dropped\ndata: {\"dropped\":") {
            let rest = &text[at + "event: dropped\ndata: {\"dropped\":".len()..];
            if let Some(end) = rest.find('}') {
                break rest[..end].parse::<u64>().unwrap();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left.max(Duration::from_millis(1)), conn.read(&mut buf))
            .await
            .expect("no drop report in time")
            .unwrap();
        assert!(n > 0, "the stream closed without a drop report");
        // Keep only the tail: the report comes after megabytes of events.
        seen.extend_from_slice(&buf[..n]);
        if seen.len() > 256 * 1024 {
            seen.drain(..seen.len() - 128 * 1024);
        }
    };
    assert!(dropped > 0);
}
