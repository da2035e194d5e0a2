//! The request path end to end: auth, authorization, limits, routing,
//! backend auth and streaming, each status asserted with its body. Every
//! test runs twice: on the local profile's SQLite store (`sqlite::…`) and on
//! an AWS profile's DynamoDB and Secrets Manager against a local moto server
//! (`aws::…`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::registry::{AgentRecord, BackendAuth};
use switchboard_core::GatewayConfig;

fn error_info(reason: &str, status: u16) -> Value {
    json!([{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "a2a-protocol.org",
        "metadata": {"httpStatus": status.to_string()},
    }])
}

async fn send_message_through_the_gateway(b: Backend) {
    let s = start_on(b).await;
    let token = s.token(&["switchboard/echo"]).await;
    let resp = s
        .send("echo", Some(&token), &send_message("1", "hello"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["ratelimit-limit"], "600");
    assert_eq!(resp.headers()["ratelimit-remaining"], "599");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], json!("1"));
    let task = &body["result"]["task"];
    assert_eq!(task["status"]["state"], json!("TASK_STATE_COMPLETED"));
    assert!(body.to_string().contains("hello"), "{body}");
}

async fn unauthenticated_requests_get_401_with_jsonrpc_errors(b: Backend) {
    let s = start_on(b).await;
    let info = &s.stack.info;

    // Missing token.
    let resp = s.send("echo", None, &send_message("a", "x")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "id": "a", "error": {
            "code": -32050, "message": "missing bearer token",
            "data": error_info("TOKEN_MISSING", 401)}})
    );

    // Expired.
    let mut claims = s.claims(&["switchboard/echo"]);
    claims["exp"] = json!(now() - 3600);
    claims["iat"] = json!(now() - 7200);
    let resp = s
        .send("echo", Some(&s.sign(&claims)), &send_message("b", "x"))
        .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], json!("token has expired"));
    assert_eq!(body["error"]["data"], error_info("TOKEN_EXPIRED", 401));
    assert_eq!(body["id"], json!("b"));

    // Wrong issuer.
    let mut claims = s.claims(&["switchboard/echo"]);
    claims["iss"] = json!("https://cognito-idp.us-east-1.amazonaws.com/elsewhere");
    let resp = s
        .send("echo", Some(&s.sign(&claims)), &send_message("c", "x"))
        .await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("token issuer is not trusted")
    );

    // Bad signature: a valid token with its signature from another key.
    let good = s.token(&["switchboard/echo"]).await;
    let other = rsa::RsaPrivateKey::new(&mut rand_core(), 2048).unwrap();
    let pem =
        rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&other, rsa::pkcs8::LineEnding::LF).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(s.stack.issuer.kid().to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &s.claims(&["switchboard/echo"]),
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_ne!(forged, good);
    let resp = s.send("echo", Some(&forged), &send_message("d", "x")).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("token signature is invalid")
    );

    // Non-JSON-RPC routes answer google.rpc.Status.
    let resp = s
        .http
        .get(s.gw("/agents/echo/v1/tasks/123"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "missing bearer token",
            "details": error_info("TOKEN_MISSING", 401)}})
    );
    assert_eq!(info.client_id, "demo-client");
}

fn rand_core() -> rand::rngs::ThreadRng {
    rand::thread_rng()
}

async fn forbidden_unknown_and_disabled_agents(b: Backend) {
    let s = start_on(b).await;
    let token = s.token(&["switchboard/echo"]).await;

    let resp = s
        .send("stream", Some(&token), &send_message("1", "x"))
        .await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("denied: stream is granted by [switchboard/all switchboard/stream], the token has [switchboard/echo]")
    );
    assert_eq!(
        body["error"]["data"],
        error_info("AGENT_NOT_PERMITTED", 403)
    );

    let resp = s.send("nope", Some(&token), &send_message("2", "x")).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], json!("no agent nope"));
    assert_eq!(body["id"], json!("2"));

    s.edit_agent("echo", |echo| {
        echo.enabled = false;
    })
    .await;
    let resp = s.send("echo", Some(&token), &send_message("3", "x")).await;
    assert_eq!(resp.status(), 404);

    // Ids that fail the pattern look like unknown agents. (Dot segments in the
    // rest of the path are covered by the path parser's tests: HTTP clients
    // normalize them away before sending.)
    for path in [
        "/agents/a%2Fb",
        "/agents/ECHO",
        "/agents/%C3%A9cho",
        "/agents/e%63ho",
    ] {
        let resp = s
            .http
            .post(s.gw(path))
            .bearer_auth(&token)
            .json(&send_message("4", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
}

async fn body_over_the_limit_is_413(b: Backend) {
    let s = start_on_with(
        b,
        GatewayConfig {
            body_limit: 4096,
            ..GatewayConfig::default()
        },
    )
    .await;
    let token = s.token(&["switchboard/echo"]).await;
    let big = send_message("big", &"x".repeat(8192));
    let resp = s.send("echo", Some(&token), &big).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("request body exceeds the limit of 4096 bytes")
    );
    assert_eq!(
        body["error"]["data"],
        error_info("REQUEST_BODY_TOO_LARGE", 413)
    );

    // A chunked body with no length is cut off at the limit too. (To the
    // JSON-RPC endpoint: the echo agent serves no HTTP+JSON paths, so it
    // would answer 404 there without reading the body, and hang up while
    // the gateway is still sending it.)
    let chunks = futures::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024]))),
    );
    let resp = s
        .http
        .post(s.gw("/agents/echo"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

async fn exactly_the_limit_passes_under_concurrency(b: Backend) {
    let s = Arc::new(start_on(b).await);
    s.edit_agent("echo", |echo| {
        echo.rate_limit = Some(100);
    })
    .await;
    let token = Arc::new(s.token(&["switchboard/echo"]).await);
    // The burst inside one window, so that exactly the limit is admitted.
    let answers = in_one_window(Duration::from_secs(20), || {
        let (s, token) = (s.clone(), token.clone());
        async move {
            let mut tasks = Vec::new();
            for i in 0..256 {
                let s = s.clone();
                let token = token.clone();
                tasks.push(tokio::spawn(async move {
                    let resp = s
                        .send("echo", Some(&token), &send_message(&i.to_string(), "x"))
                        .await;
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    (status, headers)
                }));
            }
            let mut answers = Vec::new();
            for t in tasks {
                answers.push(t.await.unwrap());
            }
            answers
        }
    })
    .await;
    let mut ok = 0;
    let mut limited = 0;
    for (status, headers) in answers {
        match status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry));
                assert_eq!(headers["ratelimit-limit"], "100");
                assert_eq!(headers["ratelimit-remaining"], "0");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (100, 156));
}

async fn backend_down_is_502_and_slow_is_504(b: Backend) {
    let s = start_on_with(
        b,
        GatewayConfig {
            header_timeout_ms: 500,
            ..GatewayConfig::default()
        },
    )
    .await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    // A backend that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    for (id, url) in [("down", closed_url.clone()), ("slow", silent_url)] {
        s.stack
            .stores
            .agents
            .create(AgentRecord::new(id, url))
            .await
            .unwrap();
    }
    s.stack
        .stores
        .permissions
        .grant("test/faults", &["down".into(), "slow".into()])
        .await
        .unwrap();
    s.reload().await;
    let token = s.sign(&s.claims(&["test/faults"]));

    let resp = s.send("down", Some(&token), &send_message("1", "x")).await;
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("the agent's backend could not be reached")
    );
    assert!(
        !text.contains(&closed_url[7..]),
        "backend address leaked: {text}"
    );

    let resp = s.send("slow", Some(&token), &send_message("2", "x")).await;
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("the agent's backend did not answer in time")
    );
    assert_eq!(body["id"], json!("2"));
}

async fn backends_never_see_the_callers_token(b: Backend) {
    let s = start_on(b).await;
    let token = s.token(&["switchboard/echo", "switchboard/guarded"]).await;
    let resp = s.send("echo", Some(&token), &send_message("1", "hi")).await;
    assert_eq!(resp.status(), 200);
    let resp = s
        .send("guarded", Some(&token), &send_message("2", "hi"))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let resp = s
        .send("guarded", Some(&token), &send_message("3", "again"))
        .await;
    assert_eq!(resp.status(), 200);

    let echo_seen = s.seen_authorizations("echo").await;
    assert_eq!(echo_seen, vec![None]);
    let guarded_seen = s.seen_authorizations("guarded").await;
    assert_eq!(guarded_seen.len(), 2);
    for auth in &guarded_seen {
        let auth = auth.as_deref().expect("the guarded agent got credentials");
        assert!(!auth.contains(&token), "caller token forwarded");
        let backend_token = auth.strip_prefix("Bearer ").unwrap();
        let claims = jsonwebtoken::dangerous_insecure_decode_claims(backend_token);
        assert_eq!(claims["client_id"], json!("switchboard-gateway"));
        assert_eq!(claims["scope"], json!("agents/guarded.invoke"));
    }
    // One token fetched and reused for both calls.
    assert_eq!(guarded_seen[0], guarded_seen[1]);
}

mod jsonwebtoken {
    pub use ::jsonwebtoken::*;
    use base64::Engine;

    pub fn dangerous_insecure_decode_claims(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

async fn missing_backend_secret_is_502(b: Backend) {
    let s = start_on(b).await;
    s.edit_agent("echo", |echo| {
        echo.auth = BackendAuth::Header {
            name: "x-api-key".into(),
            secret: "does-not-exist".into(),
        };
    })
    .await;
    let token = s.token(&["switchboard/echo"]).await;
    let resp = s.send("echo", Some(&token), &send_message("1", "x")).await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("backend credentials unavailable: the secret \"does-not-exist\" for agent echo does not exist")
    );
}

async fn cards_are_rewritten_to_the_gateway(b: Backend) {
    let s = start_on(b).await;
    for path in ["agent-card.json", "agent.json"] {
        let card: Value = s
            .http
            .get(s.gw(&format!("/agents/echo/.well-known/{path}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Every interface URL, 1.0 and 0.3, points at the gateway.
        let backend = s.agent_backend("echo");
        let mut urls = vec![card["url"].clone()];
        for list in ["supportedInterfaces", "additionalInterfaces"] {
            for i in card[list].as_array().into_iter().flatten() {
                urls.push(i["url"].clone());
            }
        }
        assert!(urls.len() >= 3, "{card}");
        for u in &urls {
            let u = u.as_str().unwrap();
            assert!(u.starts_with(&s.gw("/agents/echo")), "{u} in {card}");
            assert!(!u.contains(&backend));
        }
        assert_eq!(
            card["supportedInterfaces"][0]["url"],
            json!(s.gw("/agents/echo"))
        );
        assert_eq!(
            card["securitySchemes"]["switchboard"]["oauth2SecurityScheme"]["flows"]
                ["clientCredentials"]["tokenUrl"],
            json!(s.stack.info.token_url)
        );
    }
    let resp = s
        .http
        .get(s.gw("/agents/nope/.well-known/agent-card.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

async fn list_of_reachable_agents(b: Backend) {
    let s = start_on(b).await;
    let token = s.token(&["switchboard/echo", "switchboard/stream"]).await;
    let body: Value = s
        .http
        .get(s.gw("/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["echo", "stream"]);
    let resp = s.http.get(s.gw("/agents")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

async fn health_readiness_and_metrics(b: Backend) {
    let s = start_on(b).await;
    let resp = s.http.get(s.gw("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s.http.get(s.gw("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let token = s.token(&["switchboard/echo"]).await;
    s.send("echo", Some(&token), &send_message("1", "x")).await;
    s.send("echo", None, &send_message("2", "x")).await;
    let text = s
        .http
        .get(s.gw("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("switchboard_requests_total{agent=\"echo\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("switchboard_requests_total{agent=\"echo\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("switchboard_request_duration_seconds_bucket"),
        "{text}"
    );
}

/// The gateway passes each SSE event on as it comes: the backend sends one
/// event and then waits until the client has received it before sending the
/// next. A buffering gateway would deadlock here and the test would time out.
async fn sse_is_forwarded_event_by_event(b: Backend) {
    use axum::response::sse::{Event, Sse};
    use tokio::sync::{mpsc, Mutex};

    let s = start_on(b).await;
    let (release_tx, release_rx) = mpsc::channel::<()>(1);
    let release_rx = Arc::new(Mutex::new(release_rx));
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let release_rx = release_rx.clone();
            async move {
                let stream = async_stream_events(release_rx);
                Sse::new(stream)
            }
        }),
    );
    fn async_stream_events(
        release: Arc<Mutex<mpsc::Receiver<()>>>,
    ) -> impl futures::Stream<Item = Result<Event, std::convert::Infallible>> {
        futures::stream::unfold(0, move |n| {
            let release = release.clone();
            async move {
                match n {
                    0 => Some((Ok(Event::default().data("{\"n\":1}")), 1)),
                    1 => {
                        // Wait for the client to confirm it has event 1.
                        release.lock().await.recv().await;
                        Some((Ok(Event::default().data("{\"n\":2}")), 2))
                    }
                    _ => None,
                }
            }
        })
    }
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
    s.reload().await;
    let token = s.sign(&s.claims(&["test/sse"]));

    let resp = s
        .send(
            "sse",
            Some(&token),
            &json!({"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    use eventsource_stream::Eventsource;
    let mut events = resp.bytes_stream().eventsource();
    let first = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("the first event arrived while the backend still held the second")
        .unwrap()
        .unwrap();
    assert_eq!(first.data, "{\"n\":1}");
    release_tx.send(()).await.unwrap();
    let second = tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.data, "{\"n\":2}");
    assert!(events.next().await.is_none());
}

async fn streaming_sample_agent_through_the_gateway(b: Backend) {
    let s = start_on(b).await;
    let token = s.token(&["switchboard/stream"]).await;
    let body = json!({
        "jsonrpc": "2.0", "id": "s1", "method": "SendStreamingMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hello"}]}},
    });
    let resp = s
        .http
        .post(s.gw("/agents/stream"))
        .bearer_auth(&token)
        .header("A2A-Version", "1.0")
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    use eventsource_stream::Eventsource;
    let events: Vec<Value> = resp
        .bytes_stream()
        .eventsource()
        .map(|e| serde_json::from_str(&e.unwrap().data).unwrap())
        .collect()
        .await;
    assert!(events.len() >= 4, "{events:?}");
    assert!(events.iter().all(|e| e["id"] == json!("s1")));
    let last = events.last().unwrap();
    assert_eq!(
        last["result"]["statusUpdate"]["status"]["state"],
        json!("TASK_STATE_COMPLETED")
    );
    assert!(events
        .iter()
        .any(|e| e["result"].get("artifactUpdate").is_some()));
}

async fn a2a_version_header_passes_through_unchanged(b: Backend) {
    let s = start_on(b).await;
    let token = s.token(&["switchboard/echo"]).await;
    // 0.3 method names with no A2A-Version header (missing means 0.3).
    let resp = s
        .http
        .post(s.gw("/agents/echo"))
        .bearer_auth(&token)
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "message/send",
            "params": {"message": {"kind": "message", "messageId": "m", "role": "user",
                "parts": [{"kind": "text", "text": "old"}]}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["kind"], json!("task"));
    assert_eq!(body["result"]["status"]["state"], json!("completed"));
}

/// What crosses the gateway: the rest of the path and the query go through
/// untouched, `A2A-Version` passes unchanged, hop-by-hop headers and the
/// caller's credentials stay behind, and `X-Forwarded-*` are set by the
/// gateway, not copied from the caller.
async fn headers_and_paths_cross_the_gateway_as_they_should(b: Backend) {
    use axum::http::HeaderMap;
    let s = start_on(b).await;
    let app = axum::Router::new().fallback(
        |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| async move {
            let h: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                .collect();
            (
                [
                    ("connection", "x-backend-secret"),
                    ("x-backend-secret", "1"),
                    ("x-visible", "yes"),
                ],
                axum::Json(
                    json!({"method": method.as_str(), "uri": uri.to_string(), "headers": h}),
                ),
            )
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/base", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    s.stack
        .stores
        .agents
        .create(AgentRecord::new("mirror", url))
        .await
        .unwrap();
    s.stack
        .stores
        .permissions
        .grant("test/mirror", &["mirror".into()])
        .await
        .unwrap();
    s.reload().await;
    let token = s.sign(&s.claims(&["test/mirror"]));

    let resp = s
        .http
        .get(s.gw("/agents/mirror/v1/tasks/t-1:subscribe?historyLength=3&x=a%20b"))
        .bearer_auth(&token)
        .header("A2A-Version", "0.3")
        .header("Connection", "keep-alive, x-hop")
        .header("x-hop", "drop me")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Forwarded-Host", "evil.example")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-visible"], "yes");
    assert!(resp.headers().get("x-backend-secret").is_none());
    assert_eq!(resp.headers()["ratelimit-limit"], "600");
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], json!("GET"));
    assert_eq!(
        seen["uri"],
        json!("/base/v1/tasks/t-1:subscribe?historyLength=3&x=a%20b")
    );
    let h = &seen["headers"];
    assert_eq!(h["a2a-version"], json!("0.3"));
    assert_eq!(h["x-custom"], json!("kept"));
    assert_eq!(h.get("authorization"), None, "caller token forwarded: {h}");
    assert_eq!(h.get("x-hop"), None);
    assert_eq!(h["x-forwarded-for"], json!("127.0.0.1"));
    assert_eq!(h["x-forwarded-proto"], json!("http"));
    assert_eq!(
        h["x-forwarded-host"],
        json!(s.stack.info.gateway_url.trim_start_matches("http://"))
    );

    // Without an A2A-Version header none is added.
    let seen: Value = s
        .http
        .post(s.gw("/agents/mirror"))
        .bearer_auth(&token)
        .json(&send_message("1", "x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"].get("a2a-version"), None);
    assert_eq!(seen["uri"], json!("/base"));
}

/// The traffic bus sees each request start, each SSE event and the end.
async fn traffic_events_follow_a_stream(b: Backend) {
    use switchboard_core::TrafficEvent;
    let s = start_on(b).await;
    let (mut rx, _capture) = s.stack.gateway.events.subscribe_capturing();
    let token = s.token(&["switchboard/stream"]).await;
    let body = json!({
        "jsonrpc": "2.0", "id": "s1", "method": "SendStreamingMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hello"}]}},
    });
    let resp = s.send("stream", Some(&token), &body).await;
    let n_events = resp.text().await.unwrap().matches("data:").count();
    let mut started = None;
    let mut sse = 0;
    let mut finished = None;
    let mut bodies = Vec::new();
    while finished.is_none() {
        let ev = tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .unwrap()
            .unwrap();
        match &*ev {
            TrafficEvent::Started {
                client,
                agent,
                method,
                ..
            } => started = Some((client.clone(), agent.clone(), method.clone())),
            TrafficEvent::Sse { seq, .. } => {
                assert_eq!(*seq, sse);
                sse += 1;
            }
            TrafficEvent::Body {
                direction, data, ..
            } => bodies.push((*direction, data.contains("\"text\":\"hello\""))),
            TrafficEvent::Finished { status, error, .. } => {
                finished = Some((*status, error.clone()))
            }
        }
    }
    // The request body is captured (local default); a stream's answer
    // comes as its SSE events, not as a body.
    assert_eq!(
        bodies,
        vec![(switchboard_core::events::Direction::Request, true)]
    );
    assert_eq!(
        started,
        Some((
            "demo-client".into(),
            "stream".into(),
            "SendStreamingMessage".into()
        ))
    );
    assert_eq!(sse as usize, n_events);
    assert_eq!(finished, Some((200, None)));
}

/// Each test above, once per backend.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Backend::Sqlite).await
            })*
        }
        mod aws {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Backend::Aws).await
            })*
        }
    };
}

on_every_backend!(
    send_message_through_the_gateway,
    unauthenticated_requests_get_401_with_jsonrpc_errors,
    forbidden_unknown_and_disabled_agents,
    body_over_the_limit_is_413,
    exactly_the_limit_passes_under_concurrency,
    backend_down_is_502_and_slow_is_504,
    backends_never_see_the_callers_token,
    missing_backend_secret_is_502,
    cards_are_rewritten_to_the_gateway,
    list_of_reachable_agents,
    health_readiness_and_metrics,
    sse_is_forwarded_event_by_event,
    streaming_sample_agent_through_the_gateway,
    a2a_version_header_passes_through_unchanged,
    headers_and_paths_cross_the_gateway_as_they_should,
    traffic_events_follow_a_stream,
);
