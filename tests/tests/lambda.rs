//! Lambda mode end to end: the real binary (`switchboard lambda`) driven
//! through a local Lambda Runtime API with API Gateway REST events, on
//! DynamoDB (moto) with the local stack's issuer and sample agents as
//! backends. Responses are streamed (the runtime's streaming response);
//! refusals carry the same bodies as `serve`; the registry is checked on
//! the request after the process was frozen; metrics come out as
//! embedded-metric-format lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use common::*;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::registry::AgentRecord;
use switchboard_tests::lambda_runtime::RuntimeApi;
use switchboard_tests::moto;

const PUBLIC_URL: &str = "https://api.example.test/prod";

/// `switchboard lambda` against `runtime`, on the stack's AWS profile.
struct Function {
    child: Child,
    stdout: tempfile::NamedTempFile,
}

impl Function {
    fn start(s: &Stack, runtime: &RuntimeApi) -> Function {
        let aws = s.aws.as_ref().unwrap();
        let stdout = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(binary())
            .arg("lambda")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "switchboard-test")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/switchboard-test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
            .env("AWS_REGION", moto::REGION)
            .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", aws.moto.endpoint())
            .env("SWITCHBOARD_TABLE_PREFIX", &aws.profile.table_prefix)
            .env("SWITCHBOARD_SECRET_PREFIX", &aws.profile.secret_prefix)
            .env("SWITCHBOARD_ISSUER", &s.stack.info.issuer_url)
            .env("SWITCHBOARD_JWKS_URL", &s.stack.info.jwks_url)
            .env("SWITCHBOARD_TOKEN_URL", &s.stack.info.token_url)
            .env("SWITCHBOARD_PUBLIC_URL", PUBLIC_URL)
            .env("SWITCHBOARD_REGISTRY_MAX_AGE_MS", "200")
            // No background poll: only the check on the request keeps the
            // registry fresh, so the tests below prove that check.
            .env("SWITCHBOARD_REGISTRY_POLL_MS", "3600000")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout.reopen().unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Function { child, stdout }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.stdout.path()).unwrap()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An API Gateway REST (v1) proxy event for `method path`.
fn event(method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> String {
    let mut headers = json!({"Host": "api.example.test", "A2A-Version": "1.0"});
    if body.is_some() {
        headers["Content-Type"] = json!("application/json");
    }
    if let Some(t) = token {
        headers["Authorization"] = json!(format!("Bearer {t}"));
    }
    let multi: serde_json::Map<String, Value> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({
        "resource": "/agents/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"proxy": path.trim_start_matches("/agents/")},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "r1", "stage": "prod",
            "requestId": "a1", "identity": {"sourceIp": "203.0.113.9"},
            "resourcePath": "/agents/{proxy+}", "httpMethod": method,
            "apiId": "api", "path": format!("/prod{path}"), "protocol": "HTTP/1.1",
            "requestTimeEpoch": 0
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
    .to_string()
}

/// Sends `event` and returns the status and the whole body as JSON.
async fn call(runtime: &RuntimeApi, event: String) -> (u16, Value, Value) {
    let mut inv = runtime.invoke(event);
    let prelude = inv.prelude(PATIENCE).await;
    let status = prelude["statusCode"].as_u64().unwrap() as u16;
    let body = inv.body(PATIENCE).await;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, prelude, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_mode_serves_the_router_with_streaming() {
    let s = start_on(Backend::Aws).await;
    let runtime = RuntimeApi::start().await;
    let function = Function::start(&s, &runtime);

    // The card, rewritten to the public URL.
    let (status, prelude, card) = call(
        &runtime,
        event(
            "GET",
            "/agents/echo/.well-known/agent-card.json",
            None,
            None,
        ),
    )
    .await;
    assert_eq!(status, 200, "{card}");
    assert!(
        prelude["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("application/json"),
        "{prelude}"
    );
    assert!(
        card.to_string()
            .contains(&format!("{PUBLIC_URL}/agents/echo")),
        "{card}"
    );
    assert!(
        !card.to_string().contains(&s.agent_backend("echo")),
        "{card}"
    );

    // SendMessage with a token.
    let token = s.token(&["switchboard/echo"]).await;
    let (status, _, body) = call(
        &runtime,
        event(
            "POST",
            "/agents/echo",
            Some(&token),
            Some(&send_message("1", "hello lambda")),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["task"]["status"]["state"],
        json!("TASK_STATE_COMPLETED")
    );
    assert!(body.to_string().contains("hello lambda"));

    // Refusals: the same bodies as `serve` gives for the same requests.
    let serve_401: Value = s
        .send("echo", None, &send_message("a", "x"))
        .await
        .json()
        .await
        .unwrap();
    let (status, prelude, body) = call(
        &runtime,
        event("POST", "/agents/echo", None, Some(&send_message("a", "x"))),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body, serve_401);
    assert_eq!(prelude["headers"]["www-authenticate"], json!("Bearer"));

    let other = s.sign(&s.claims(&["switchboard/nothing"]));
    let serve_403: Value = s
        .send("echo", Some(&other), &send_message("b", "x"))
        .await
        .json()
        .await
        .unwrap();
    let (status, _, body) = call(
        &runtime,
        event(
            "POST",
            "/agents/echo",
            Some(&other),
            Some(&send_message("b", "x")),
        ),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body, serve_403);

    // A limit of one per minute, shared through DynamoDB with `serve`.
    s.stack
        .stores
        .agents
        .create(AgentRecord {
            rate_limit: Some(1),
            ..AgentRecord::new("limited", s.agent_backend("echo"))
        })
        .await
        .unwrap();
    s.stack
        .stores
        .permissions
        .grant("test/limited", &["limited".into()])
        .await
        .unwrap();
    let limited = s.sign(&s.claims(&["test/limited"]));
    // The new agent is seen within the registry bound (200 ms).
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, _, body) = call(
            &runtime,
            event(
                "POST",
                "/agents/limited",
                Some(&limited),
                Some(&send_message("c", "x")),
            ),
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(
            status == 404 && std::time::Instant::now() < deadline,
            "{status} {body}"
        );
    }
    let (status, prelude, mut body) = call(
        &runtime,
        event(
            "POST",
            "/agents/limited",
            Some(&limited),
            Some(&send_message("d", "x")),
        ),
    )
    .await;
    assert_eq!(status, 429);
    assert!(prelude["headers"]["retry-after"].is_string(), "{prelude}");
    s.reload().await;
    let mut serve_429: Value = s
        .send("limited", Some(&limited), &send_message("d", "x"))
        .await
        .json()
        .await
        .unwrap();
    // The message counts the seconds left in the window.
    body["error"]["message"].take();
    serve_429["error"]["message"].take();
    assert_eq!(body, serve_429);

    // Metrics: one EMF line per request, the audit fields beside them.
    let log = function.log();
    let emf: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert!(
        emf.iter().any(|v| v["Agent"] == "echo"
            && v["StatusCode"] == "200"
            && v["method"] == "SendMessage"),
        "{log}"
    );
    assert!(
        emf.iter()
            .any(|v| v["Reason"] == "TOKEN_MISSING" && v["AuthFailures"] == 1),
        "{log}"
    );
    assert!(
        emf.iter()
            .any(|v| v["Agent"] == "limited" && v["RateLimited"] == 1),
        "{log}"
    );
    assert!(
        runtime.init_errors().is_empty(),
        "{:?}",
        runtime.init_errors()
    );
    drop(function);
}

/// Each SSE event reaches the caller while the backend still holds the
/// next: the backend sends one event and waits until the test has it. A
/// function that buffered the response would deadlock here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_streams_sse_event_by_event() {
    use axum::response::sse::{Event, Sse};
    use tokio::sync::{mpsc, Mutex};

    let s = start_on(Backend::Aws).await;
    let (release_tx, release_rx) = mpsc::channel::<()>(1);
    let release_rx = Arc::new(Mutex::new(release_rx));
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let release = release_rx.clone();
            async move {
                Sse::new(futures::stream::unfold(0, move |n| {
                    let release = release.clone();
                    async move {
                        match n {
                            0 => Some((
                                Ok::<_, std::convert::Infallible>(
                                    Event::default().data("{\"n\":1}"),
                                ),
                                1,
                            )),
                            1 => {
                                release.lock().await.recv().await;
                                Some((Ok(Event::default().data("{\"n\":2}")), 2))
                            }
                            _ => None,
                        }
                    }
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    s.stack
        .stores
        .agents
        .create(AgentRecord::new("sse", url))
        .await
        .unwrap();
    s.stack
        .stores
        .permissions
        .grant("test/sse", &["sse".into()])
        .await
        .unwrap();
    let token = s.sign(&s.claims(&["test/sse"]));

    let runtime = RuntimeApi::start().await;
    let _function = Function::start(&s, &runtime);
    let mut inv = runtime.invoke(event(
        "POST",
        "/agents/sse",
        Some(&token),
        Some(&json!({"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{}})),
    ));
    let prelude = inv.prelude(PATIENCE).await;
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert!(prelude["headers"]["content-type"]
        .as_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let first = inv.next_event(PATIENCE).await;
    assert_eq!(
        first.as_deref(),
        Some("{\"n\":1}"),
        "the first event arrived while the backend held the second"
    );
    release_tx.send(()).await.unwrap();
    assert_eq!(inv.next_event(PATIENCE).await.as_deref(), Some("{\"n\":2}"));
    assert_eq!(inv.next_event(PATIENCE).await, None);
}

/// A frozen environment (the process stopped, as Lambda freezes it between
/// invocations) never decides from the registry it had before: a
/// permission revoked while it was frozen is refused on the first request
/// after it thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_function_checks_the_registry_on_the_request() {
    let s = start_on(Backend::Aws).await;
    let runtime = RuntimeApi::start().await;
    let function = Function::start(&s, &runtime);
    let token = s.token(&["switchboard/echo"]).await;
    let (status, _, body) = call(
        &runtime,
        event(
            "POST",
            "/agents/echo",
            Some(&token),
            Some(&send_message("1", "before")),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    function.signal("-STOP");
    s.stack
        .stores
        .permissions
        .revoke("switchboard/echo", &["echo".into()])
        .await
        .unwrap();
    // Longer than the bound (200 ms) while frozen.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let inv = runtime.invoke(event(
        "POST",
        "/agents/echo",
        Some(&token),
        Some(&send_message("2", "after")),
    ));
    function.signal("-CONT");
    let mut inv = inv;
    let prelude = inv.prelude(PATIENCE).await;
    assert_eq!(prelude["statusCode"], 403, "{prelude}");
}
