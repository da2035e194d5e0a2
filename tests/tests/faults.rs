//! Faults end to end, on real sockets against the in-process stack (SQLite
//! unless said otherwise): backends that refuse, hang, reset, send garbage or
//! trickle; the issuer's JWKS endpoint down or slow; the store locked; a
//! missing secret and a failing backend token endpoint under a storm; and
//! `kill -9` of the real binary in the middle of an import.
//!
//! Covered elsewhere and not repeated here: a refused backend's 502 body and a
//! silent backend's 504 body on both stores (`gateway.rs`,
//! `backend_down_is_502_and_slow_is_504`), the AWS endpoint going away and
//! throttling (`aws.rs`), and JWKS caching in the verifier alone
//! (`core/tests/jwt.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{json, Value};
use switchboard_core::registry::{AgentRecord, BackendAuth, Secret};
use switchboard_core::{EventBus, Gateway, GatewayConfig, TrafficEvent};
use switchboard_tests::backends::{self, Behaviour, Misbehaving};

// ---------------------------------------------------------------------------
// helpers

/// Registers agent `id` at `url`, lets scope `test/{id}` reach it, and
/// returns a token carrying that scope.
async fn add_agent(s: &Stack, id: &str, url: &str) -> String {
    add_record(s, AgentRecord::new(id, url)).await
}

async fn add_record(s: &Stack, record: AgentRecord) -> String {
    let id = record.id.clone();
    let scope = format!("test/{id}");
    s.stack.stores.agents.create(record).await.unwrap();
    s.stack
        .stores
        .permissions
        .grant(&scope, std::slice::from_ref(&id))
        .await
        .unwrap();
    s.reload().await;
    s.sign(&s.claims(&[&scope]))
}

fn streaming_message(id: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "SendStreamingMessage",
        "params": {"message": {"messageId": format!("m-{id}"), "role": "ROLE_USER", "parts": [{"text": "go"}]}},
    })
}

/// Status, reason (`ErrorInfo.reason`) and message of a gateway error answer.
async fn gateway_error(resp: reqwest::Response) -> (u16, String, String, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let err = &body["error"];
    (
        status,
        err["data"][0]["reason"]
            .as_str()
            .or(err["details"][0]["reason"].as_str())
            .unwrap_or_default()
            .to_owned(),
        err["message"].as_str().unwrap_or_default().to_owned(),
        text,
    )
}

/// The gateway still serves the echo sample agent.
async fn still_serves(s: &Stack) {
    let token = s.token(&["switchboard/echo"]).await;
    let resp = s
        .send("echo", Some(&token), &send_message("after", "still here"))
        .await;
    assert_eq!(resp.status(), 200, "the gateway no longer serves echo");
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("still here"), "{body}");
}

/// Sends `n` requests at once with the tokens `token(i)`; returns each
/// status and body text, in order.
async fn storm(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    token: impl Fn(usize) -> String,
) -> Vec<(u16, String)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let req = http
            .post(url)
            .bearer_auth(token(i))
            .header("A2A-Version", "1.0")
            .json(&send_message(&i.to_string(), "storm"));
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn statuses(results: &[(u16, String)]) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for (s, _) in results {
        *m.entry(*s).or_default() += 1;
    }
    m
}

// ---------------------------------------------------------------------------
// backends

/// A refused backend is 502 every time, and is served as soon as it comes
/// back on the same address: no failure is remembered for it.
#[tokio::test]
async fn a_refusing_backend_is_502_until_it_comes_back() {
    let s = start().await;
    let url = backends::refusing_url();
    let token = add_agent(&s, "down", &url).await;
    for i in 0..3 {
        let resp = s
            .send("down", Some(&token), &send_message(&i.to_string(), "x"))
            .await;
        let (status, reason, message, text) = gateway_error(resp).await;
        assert_eq!(
            (status, reason.as_str(), message.as_str()),
            (
                502,
                "BACKEND_UNREACHABLE",
                "the agent's backend could not be reached"
            ),
            "{text}"
        );
    }

    let listener = tokio::net::TcpListener::bind(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|axum::Json(req): axum::Json<Value>| async move {
            axum::Json(json!({"jsonrpc": "2.0", "id": req["id"], "result": {"back": true}}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = s
        .send("down", Some(&token), &send_message("back", "x"))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "id": "back", "result": {"back": true}})
    );
}

/// A backend that takes requests and never answers: every caller gets 504
/// once the header timeout has passed (not before), and meanwhile other
/// agents keep answering.
#[tokio::test]
async fn a_silent_backend_is_504_after_the_header_timeout_and_blocks_no_one() {
    const TIMEOUT: Duration = Duration::from_millis(3000);
    const CALLERS: usize = 10;
    let s = Arc::new(
        start_with(GatewayConfig {
            header_timeout_ms: TIMEOUT.as_millis() as u64,
            ..GatewayConfig::default()
        })
        .await,
    );
    let silent = Misbehaving::start(Behaviour::Silent).await;
    let token = Arc::new(add_agent(&s, "silent", &silent.url()).await);
    let sent_at = Instant::now();
    let mut waiting = Vec::new();
    for i in 0..CALLERS {
        let (s, token) = (s.clone(), token.clone());
        waiting.push(tokio::spawn(async move {
            let started = Instant::now();
            let resp = s
                .send("silent", Some(&token), &send_message(&i.to_string(), "x"))
                .await;
            let out = gateway_error(resp).await;
            (started.elapsed(), out)
        }));
    }
    until("every request reached the silent backend", PATIENCE, || {
        let n = silent.requests();
        async move { n == CALLERS }
    })
    .await;
    // While all of them wait, echo answers.
    still_serves(&s).await;
    // None is answered before its timeout (checked here while the timeout
    // cannot have passed yet, and for each answer below by its time).
    if sent_at.elapsed() < TIMEOUT {
        assert!(
            waiting.iter().all(|t| !t.is_finished()),
            "a caller of the silent backend was answered before its timeout"
        );
    }
    for t in waiting {
        let (took, (status, reason, message, text)) = t.await.unwrap();
        assert_eq!(
            (status, reason.as_str(), message.as_str()),
            (
                504,
                "BACKEND_TIMEOUT",
                "the agent's backend did not answer in time"
            ),
            "{text}"
        );
        assert!(took >= TIMEOUT, "504 after {took:?}, before the timeout");
        assert!(took < TIMEOUT + SLACK, "504 only after {took:?}");
    }
    still_serves(&s).await;
}

/// Sends a streaming request to `agent` and collects every SSE event.
async fn stream_events(s: &Stack, agent: &str, token: &str) -> Vec<eventsource_stream::Event> {
    let resp = s
        .http
        .post(s.gw(&format!("/agents/{agent}")))
        .bearer_auth(token)
        .header("A2A-Version", "1.0")
        .header("accept", "text/event-stream")
        .json(&streaming_message("s1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    tokio::time::timeout(
        PATIENCE,
        resp.bytes_stream()
            .eventsource()
            .map(|e| e.expect("a well-formed event stream"))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ended")
}

/// The `error` event the gateway ends a broken stream with.
fn assert_error_event(ev: &eventsource_stream::Event) {
    assert_eq!(ev.event, "error", "{ev:?}");
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(
        data,
        json!({"jsonrpc": "2.0", "id": "s1", "error": {
        "code": data["error"]["code"],
        "message": "the agent's backend sent an invalid response",
        "data": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "BACKEND_BAD_RESPONSE",
            "domain": "a2a-protocol.org",
            "metadata": {"httpStatus": "502"},
        }]}})
    );
}

/// The backend resets the connection between two events: the caller's
/// stream carries the first event and then ends with an `error` event; the
/// gateway goes on serving.
#[tokio::test]
async fn a_backend_reset_between_events_ends_the_stream_with_an_error_event() {
    let s = start().await;
    let backend = Misbehaving::start(Behaviour::sse_then_reset("data: {\"n\":1}\n\n")).await;
    let token = add_agent(&s, "resets", &backend.url()).await;
    let events = stream_events(&s, "resets", &token).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].data, "{\"n\":1}");
    assert_eq!(events[0].event, "message");
    assert_error_event(&events[1]);
    still_serves(&s).await;
}

/// The backend resets the connection in the middle of an event. The caller
/// must not receive the truncated event as if it were whole (its `data`
/// would be cut JSON): the stream carries the first event, then the `error`
/// event, and nothing that fails to parse.
#[tokio::test]
async fn a_backend_reset_inside_an_event_never_hands_the_caller_a_truncated_event() {
    let s = start().await;
    let backend = Misbehaving::start(Behaviour::sse_then_reset(
        "data: {\"n\":1}\n\ndata: {\"n\":2,\"text\":\"cut of",
    ))
    .await;
    let token = add_agent(&s, "resets", &backend.url()).await;
    let events = stream_events(&s, "resets", &token).await;
    let last = events.last().expect("some events");
    assert_error_event(last);
    for ev in &events[..events.len() - 1] {
        assert!(
            serde_json::from_str::<Value>(&ev.data).is_ok(),
            "the caller received a truncated event as a whole one: {ev:?} (all: {events:?})"
        );
    }
    assert_eq!(events.len(), 2, "{events:?}");
    still_serves(&s).await;
}

/// A plain (non-SSE) body cut by a reset reaches the caller as an aborted
/// response, never as a shorter body that looks complete, and the record of
/// the request says why.
#[tokio::test]
async fn a_backend_reset_inside_a_json_body_aborts_the_callers_response() {
    let s = start().await;
    let backend = Misbehaving::start(Behaviour::json_then_reset(
        r#"{"jsonrpc":"2.0","id":"1","result":{"text":"cut"#,
    ))
    .await;
    let token = add_agent(&s, "resets", &backend.url()).await;
    let mut bus = s.stack.gateway.events.subscribe();
    let resp = s
        .send("resets", Some(&token), &send_message("1", "x"))
        .await;
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await;
    assert!(
        body.is_err(),
        "a cut body was delivered as complete: {body:?}"
    );
    let finished = tokio::time::timeout(PATIENCE, async {
        loop {
            if let TrafficEvent::Finished { status, error, .. } = &*bus.recv().await.unwrap() {
                return (*status, error.clone());
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(finished.0, 200);
    let why = finished.1.expect("the record says why the response broke");
    assert!(why.contains("broke the response"), "{why}");
    still_serves(&s).await;
}

/// Garbage instead of HTTP, one header of 1 MiB, or a thousand headers: 502
/// with nothing of the backend's answer in the body.
#[tokio::test]
async fn garbage_and_oversized_response_heads_are_502() {
    let s = start().await;
    for (id, behaviour) in [
        ("garbage", Behaviour::Garbage),
        ("huge-header", Behaviour::OversizedHeader(1 << 20)),
        ("many-headers", Behaviour::ManyHeaders(1000)),
    ] {
        let backend = Misbehaving::start(behaviour).await;
        let token = add_agent(&s, id, &backend.url()).await;
        let resp = s.send(id, Some(&token), &send_message("1", "x")).await;
        let (status, reason, message, text) = gateway_error(resp).await;
        assert_eq!(
            (status, reason.as_str(), message.as_str()),
            (
                502,
                "BACKEND_BAD_RESPONSE",
                "the agent's backend sent an invalid response"
            ),
            "{id}: {text}"
        );
        let port = backend.url().rsplit(':').next().unwrap().to_owned();
        for leak in [port.as_str(), "not HTTP", "aaaaaaaa", "x-h1"] {
            assert!(!text.contains(leak), "{id}: {leak:?} leaked in {text}");
        }
        assert_eq!(backend.requests(), 1, "{id}");
    }
    still_serves(&s).await;
}

/// A backend that writes its whole answer one byte at a time and stops
/// half-way until the test has seen the first part. If the gateway held the
/// body back, the first part would never arrive and the test would time out.
#[tokio::test]
async fn a_byte_by_byte_sse_answer_is_streamed_not_buffered() {
    let s = start().await;
    let backend = Misbehaving::start(Behaviour::Trickle {
        content_type: "text/event-stream".into(),
        first: b"data: {\"n\":1}\n\ndata: {\"n\"".to_vec(),
        rest: b":2}\n\n".to_vec(),
    })
    .await;
    let token = add_agent(&s, "trickle", &backend.url()).await;
    let resp = s
        .send("trickle", Some(&token), &streaming_message("s1"))
        .await;
    assert_eq!(resp.status(), 200);
    let mut events = resp.bytes_stream().eventsource();
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the first event while the backend still holds the rest (buffered?)")
        .unwrap()
        .unwrap();
    assert_eq!(first.data, "{\"n\":1}");
    assert_eq!(
        backend.finished(),
        0,
        "the backend had already sent its last byte"
    );
    backend.release();
    let second = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.data, "{\"n\":2}");
    assert!(events.next().await.is_none());
    until("the backend sent its last byte", PATIENCE, || {
        let n = backend.finished();
        async move { n == 1 }
    })
    .await;
}

/// The same for a plain JSON answer: the caller reads exactly the bytes the
/// backend has sent so far while the backend waits for it.
#[tokio::test]
async fn a_byte_by_byte_json_answer_is_streamed_not_buffered() {
    let s = start().await;
    let first = br#"{"jsonrpc":"2.0","id":"1","result":{"text":"#.to_vec();
    let rest = br#""slowly"}}"#.to_vec();
    let backend = Misbehaving::start(Behaviour::Trickle {
        content_type: "application/json".into(),
        first: first.clone(),
        rest: rest.clone(),
    })
    .await;
    let token = add_agent(&s, "trickle", &backend.url()).await;
    let resp = s
        .send("trickle", Some(&token), &send_message("1", "x"))
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    while got.len() < first.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("the first bytes while the backend still holds the rest (buffered?)")
            .expect("more body")
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&first)
    );
    assert_eq!(
        backend.finished(),
        0,
        "the backend had already sent its last byte"
    );
    backend.release();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), body.next())
        .await
        .unwrap()
    {
        got.extend_from_slice(&chunk.unwrap());
    }
    let whole: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(
        whole,
        json!({"jsonrpc": "2.0", "id": "1", "result": {"text": "slowly"}})
    );
    until("the backend sent its last byte", PATIENCE, || {
        let n = backend.finished();
        async move { n == 1 }
    })
    .await;
}

// ---------------------------------------------------------------------------
// shutting down

fn gateway_addr(s: &Stack) -> std::net::SocketAddr {
    let url = &s.stack.info.gateway_url;
    url.strip_prefix("http://")
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("not http://ip:port: {url}"))
}

/// A trickling SSE agent behind the gateway, and a caller that has read the
/// first event of its stream.
async fn open_stream(
    s: &Stack,
) -> (
    Misbehaving,
    impl futures::Stream<
        Item = Result<
            eventsource_stream::Event,
            eventsource_stream::EventStreamError<reqwest::Error>,
        >,
    >,
) {
    let backend = Misbehaving::start(Behaviour::Trickle {
        content_type: "text/event-stream".into(),
        first: b"data: {\"n\":1}\n\n".to_vec(),
        rest: b"data: {\"n\":2}\n\n".to_vec(),
    })
    .await;
    let token = add_agent(s, "trickle", &backend.url()).await;
    let resp = s
        .send("trickle", Some(&token), &streaming_message("s1"))
        .await;
    assert_eq!(resp.status(), 200);
    let mut events = Box::pin(resp.bytes_stream().eventsource());
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the first event")
        .unwrap()
        .unwrap();
    assert_eq!(first.data, "{\"n\":1}");
    (backend, events)
}

/// Once shutdown begins, the gateway takes no new connection, and a stream
/// already open runs to its end.
#[tokio::test]
async fn shutdown_lets_an_open_stream_finish_and_takes_no_new_connection() {
    let s = start().await;
    let addr = gateway_addr(&s);
    let (backend, mut events) = open_stream(&s).await;
    let Stack { stack, dir, .. } = s;
    let stopping = tokio::spawn(stack.shutdown());
    until(
        "the gateway stops accepting connections",
        PATIENCE,
        || async move { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
    backend.release();
    let second = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("the rest of the stream after shutdown began")
        .unwrap()
        .unwrap();
    assert_eq!(second.data, "{\"n\":2}");
    assert!(events.next().await.is_none());
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("the stack stops once the stream is done")
        .unwrap();
    drop(dir);
}

/// A stream still open when the grace period ends is closed: shutdown does
/// not wait for ever, and nothing is left running behind it.
#[tokio::test]
async fn shutdown_closes_a_stream_still_open_after_the_grace_period() {
    let s = start().await;
    let (_backend, mut events) = open_stream(&s).await;
    let Stack { stack, dir, .. } = s;
    let began = Instant::now();
    let stopping = tokio::spawn(stack.shutdown());
    let end = tokio::time::timeout(
        switchboard_core::listener::SHUTDOWN_GRACE + SLACK,
        events.next(),
    )
    .await
    .expect("the stream is still open well after the grace period");
    let took = began.elapsed();
    assert!(
        end.as_ref().is_none_or(|e| e.is_err()),
        "an event arrived instead of the end: {end:?}"
    );
    assert!(
        took >= switchboard_core::listener::SHUTDOWN_GRACE - Duration::from_millis(500),
        "closed after {took:?}, before the grace period ended"
    );
    stopping.await.unwrap();
    drop(dir);
}

// ---------------------------------------------------------------------------
// the issuer's JWKS endpoint

const JWKS_UP: u8 = 0;
const JWKS_DOWN: u8 = 1;
/// Takes the request and answers (503) only when released.
const JWKS_HANGING: u8 = 2;

/// A JWKS endpoint serving the issuer's keys that can go down or hang, and
/// counts every fetch.
struct JwksStandIn {
    url: String,
    fetches: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
    release: Arc<tokio::sync::Semaphore>,
}

async fn jwks_stand_in(keys: Value) -> JwksStandIn {
    let fetches = Arc::new(AtomicUsize::new(0));
    let mode = Arc::new(AtomicU8::new(JWKS_UP));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (f, m, r) = (fetches.clone(), mode.clone(), release.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (f, m, r, keys) = (f.clone(), m.clone(), r.clone(), keys.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                match m.load(Ordering::SeqCst) {
                    JWKS_UP => (axum::http::StatusCode::OK, axum::Json(keys)),
                    JWKS_HANGING => {
                        r.acquire().await.unwrap().forget();
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(json!({})),
                        )
                    }
                    _ => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({})),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksStandIn {
        url,
        fetches,
        mode,
        release,
    }
}

/// A second gateway on the stack's stores whose keys come from `jwks_url`.
async fn gateway_with_jwks(s: &Stack, jwks_url: &str) -> (String, Arc<Gateway>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = GatewayConfig {
        issuer: Some(s.stack.info.issuer_url.clone()),
        jwks_uri: Some(jwks_url.to_owned()),
        token_url: Some(s.stack.info.token_url.clone()),
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(config, s.stack.stores.clone(), EventBus::new(), url.clone())
        .await
        .unwrap();
    let serving = gw.clone();
    tokio::spawn(async move {
        serving
            .serve(listener, std::future::pending::<()>())
            .await
            .unwrap()
    });
    (url, gw)
}

/// Signs `claims` with the issuer's key under a `kid` of our choosing.
fn sign_with_kid(s: &Stack, claims: &Value, kid: &str) -> String {
    let pem = std::fs::read_to_string(s.dir.path().join("issuer-key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Fails, saying why, when more than the JWKS refresh cooldown has passed
/// since `since` (no earlier than the last fetch): the storms must fit in it
/// for "no fetch" to be what the gateway owes. They take a second or two;
/// the cooldown is 30 s.
fn within_cooldown(since: Instant) {
    use switchboard_core::auth::jwt::REFRESH_COOLDOWN;
    assert!(
        since.elapsed() < REFRESH_COOLDOWN,
        "the storms took {:?}, longer than the refresh cooldown ({REFRESH_COOLDOWN:?}): \
         a fetch would be allowed again, so the test cannot tell",
        since.elapsed()
    );
}

/// The JWKS endpoint down, then hanging: tokens signed with a cached key keep
/// working (even while a refresh hangs), tokens with an unknown `kid` get
/// 401 (never a 5xx), and storms of 200 of them cause at most one fetch per
/// refresh cooldown.
#[tokio::test]
async fn jwks_down_or_hanging_keeps_cached_keys_and_is_not_hammered() {
    use switchboard_core::auth::jwt::REFRESH_COOLDOWN;
    const STORM: usize = 200;
    let s = Arc::new(start().await);
    let keys: Value = s
        .http
        .get(&s.stack.info.jwks_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks = jwks_stand_in(keys).await;
    // No fetch of the gateway's is earlier than this.
    let gateway_started = Instant::now();
    let (gw_url, _gw) = gateway_with_jwks(&s, &jwks.url).await;
    let echo = format!("{gw_url}/agents/echo");
    let fresh = {
        let s = s.clone();
        move |n: usize| {
            let mut claims = s.claims(&["switchboard/echo"]);
            claims["jti"] = json!(format!("fresh-{n}"));
            s.sign(&claims)
        }
    };
    let unknown = {
        let s = s.clone();
        move |n: usize| {
            sign_with_kid(
                &s,
                &s.claims(&["switchboard/echo"]),
                &format!("rotated-{n}"),
            )
        }
    };
    let fetches = || jwks.fetches.load(Ordering::SeqCst);
    let all_401 = |results: &[(u16, String)]| {
        assert_eq!(
            statuses(results),
            BTreeMap::from([(401, results.len())]),
            "{results:?}"
        );
        for (i, (_, body)) in results.iter().enumerate() {
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                body["error"]["message"],
                json!(format!("no signing key with kid \"rotated-{i}\""))
            );
        }
    };

    // Keys fetched on the first token (or at start).
    assert_eq!(storm(&s.http, &echo, 1, &fresh).await[0].0, 200);
    let fetched_at = Instant::now();
    let base = fetches();
    assert!(base >= 1, "no JWKS fetch");

    // Down: a token never seen before, signed with the cached key, passes.
    jwks.mode.store(JWKS_DOWN, Ordering::SeqCst);
    assert_eq!(storm(&s.http, &echo, 1, |i| fresh(100 + i)).await[0].0, 200);
    // Unknown kids within the cooldown: 401 and no fetch at all.
    all_401(&storm(&s.http, &echo, STORM, &unknown).await);
    within_cooldown(gateway_started);
    assert_eq!(fetches(), base);

    // Past the cooldown, a storm of unknown kids while the endpoint hangs:
    // one fetch, and tokens with the cached key still pass meanwhile.
    let wait = (fetched_at + REFRESH_COOLDOWN + Duration::from_secs(1))
        .saturating_duration_since(Instant::now());
    tokio::time::sleep(wait).await;
    jwks.mode.store(JWKS_HANGING, Ordering::SeqCst);
    let refresh_started = Instant::now();
    let storming = {
        let (http, echo, unknown) = (s.http.clone(), echo.clone(), unknown.clone());
        tokio::spawn(async move { storm(&http, &echo, STORM, unknown).await })
    };
    until("the refresh reached the JWKS endpoint", PATIENCE, || {
        let n = fetches();
        async move { n > base }
    })
    .await;
    assert_eq!(storm(&s.http, &echo, 1, |i| fresh(200 + i)).await[0].0, 200);
    assert!(
        !storming.is_finished(),
        "the storm was answered before the JWKS endpoint was"
    );
    jwks.mode.store(JWKS_DOWN, Ordering::SeqCst);
    jwks.release.add_permits(STORM);
    all_401(&storming.await.unwrap());
    assert_eq!(fetches(), base + 1, "more than one refresh for one storm");

    // Right after: another storm, no fetch.
    all_401(&storm(&s.http, &echo, STORM, &unknown).await);
    within_cooldown(refresh_started);
    assert_eq!(fetches(), base + 1);
    assert_eq!(storm(&s.http, &echo, 1, |i| fresh(300 + i)).await[0].0, 200);
}

// ---------------------------------------------------------------------------
// the store

/// Another connection holds a SQLite file's write lock (an exclusive
/// transaction). The counters' file is on every request's path: every
/// request is 503 at once. The main file (registry, permissions) is not: the
/// gateway serves the view the store last confirmed for a bounded time
/// (`GatewayConfig::registry_max_unconfirmed`), then fails closed with 503
/// until the store answers again, so a revoked permission cannot live on
/// while the store is unreachable. Readiness says so, and the gateway
/// recovers by itself once the lock is gone. Each file twice, to show the
/// recovery leaves nothing behind.
#[tokio::test]
async fn a_locked_store_is_503_and_recovers_by_itself() {
    let s = Arc::new(start().await);
    let token = Arc::new(s.token(&["switchboard/echo"]).await);
    assert_eq!(
        s.send("echo", Some(&token), &send_message("0", "x"))
            .await
            .status(),
        200
    );
    let main_db = s.dir.path().join(switchboard_core::store::DB_FILE);
    let counters_db = switchboard_core::store::sqlite::counters_path(&main_db);
    let bound = switchboard_core::GatewayConfig::default().registry_max_unconfirmed();
    for (file, db) in [
        ("counters", &counters_db),
        ("main", &main_db),
        ("counters", &counters_db),
        ("main", &main_db),
    ] {
        let lock = rusqlite::Connection::open(db).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE;").unwrap();
        let locked_at = Instant::now();
        if file == "main" {
            // Served from the confirmed view until the bound, then refused.
            let deadline = locked_at + bound + SLACK;
            loop {
                let status = s
                    .send("echo", Some(&token), &send_message("w", "x"))
                    .await
                    .status();
                if status == 503 {
                    break;
                }
                assert_eq!(status, 200, "{file}: {status}");
                assert!(
                    Instant::now() < deadline,
                    "{file}: still served {:?} after the store stopped answering",
                    locked_at.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The bound counts from the store's last answer, at most one
            // poll before the lock.
            let earliest = bound - switchboard_core::GatewayConfig::default().registry_poll();
            assert!(
                locked_at.elapsed() >= earliest,
                "{file}: refused after {:?}, before the bound",
                locked_at.elapsed()
            );
        }
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (s, token) = (s.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                gateway_error(
                    s.send("echo", Some(&token), &send_message(&i.to_string(), "x"))
                        .await,
                )
                .await
            }));
        }
        for t in tasks {
            let (status, reason, message, text) = t.await.unwrap();
            assert_eq!(
                (status, reason.as_str()),
                (503, "STORE_UNAVAILABLE"),
                "{file}: {text}"
            );
            assert!(
                message.starts_with("service unavailable: ") && message.contains("store"),
                "{file}: {message}"
            );
        }
        if file == "main" {
            let ready = s.http.get(s.gw("/readyz")).send().await.unwrap();
            assert_eq!(ready.status(), 503, "{file}");
        }

        drop(lock); // rolls back and lets go
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = s
                .send("echo", Some(&token), &send_message("r", "x"))
                .await
                .status();
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "{file}");
            assert!(Instant::now() < deadline, "{file}: no recovery");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ready = s.http.get(s.gw("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{file}");
    }
}

// ---------------------------------------------------------------------------
// backend credentials

/// A backend token endpoint that fails until told otherwise, counting hits
/// and the client credentials it was shown.
struct TokenEndpoint {
    url: String,
    hits: Arc<AtomicUsize>,
    ok: Arc<std::sync::atomic::AtomicBool>,
    basic: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn token_endpoint() -> TokenEndpoint {
    let hits = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let basic = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, o, b) = (hits.clone(), ok.clone(), basic.clone());
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let (h, o, b) = (h.clone(), o.clone(), b.clone());
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(v) = headers.get("authorization") {
                    b.lock().unwrap().push(v.to_str().unwrap_or("?").to_owned());
                }
                if o.load(Ordering::SeqCst) {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"access_token": format!("backend-token-{n}"),
                            "token_type": "Bearer", "expires_in": 300})),
                    )
                } else {
                    (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({"error": "server_error"})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    TokenEndpoint {
        url,
        hits,
        ok,
        basic,
    }
}

/// Fetches a remembered failure allows during a storm that took `took`: one,
/// plus one per [`FAILURE_TTL`] the storm outlasted.
///
/// [`FAILURE_TTL`]: switchboard_core::proxy::backend_auth::FAILURE_TTL
fn fetches_allowed(took: Duration) -> usize {
    let ttl = switchboard_core::proxy::backend_auth::FAILURE_TTL;
    1 + (took.as_secs_f64() / ttl.as_secs_f64()).floor() as usize
}

/// The backend's token endpoint fails: 502 with a clear message, one hit for
/// a storm of 100 requests (per failure TTL), and once it works again (after
/// the failure is forgotten) one token serves every following request.
#[tokio::test]
async fn a_failing_backend_token_endpoint_is_502_and_not_hammered() {
    let s = start().await;
    let te = token_endpoint().await;
    s.stack
        .stores
        .secrets
        .put("tok/client-secret", &Secret::new("gw-client-secret"))
        .await
        .unwrap();
    let mut record = AgentRecord::new("tok", s.agent_backend("echo"));
    record.auth = BackendAuth::OAuth2 {
        token_url: te.url.clone(),
        client_id: "gw".into(),
        secret: "tok/client-secret".into(),
        scopes: vec!["echo.invoke".into()],
    };
    let token = add_record(&s, record).await;
    let url = s.gw("/agents/tok");
    let hits = || te.hits.load(Ordering::SeqCst);

    let started = Instant::now();
    let results = storm(&s.http, &url, 100, |_| token.clone()).await;
    let allowed = fetches_allowed(started.elapsed());
    assert_eq!(statuses(&results), BTreeMap::from([(502, 100)]));
    let body: Value = serde_json::from_str(&results[0].1).unwrap();
    assert_eq!(
        body["error"]["message"],
        json!(
            "backend credentials unavailable: the token endpoint for agent tok refused or failed"
        )
    );
    assert_eq!(
        body["error"]["data"][0]["reason"],
        json!("BACKEND_CREDENTIALS_UNAVAILABLE")
    );
    let failed = hits();
    assert!(
        (1..=allowed).contains(&failed),
        "{failed} token requests for one storm (at most {allowed})"
    );

    // It works again: served once the failure is forgotten, with one fetch.
    te.ok.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + PATIENCE;
    while storm(&s.http, &url, 1, |_| token.clone()).await[0].0 != 200 {
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(hits(), failed + 1);
    let results = storm(&s.http, &url, 20, |_| token.clone()).await;
    assert_eq!(statuses(&results), BTreeMap::from([(200, 20)]));
    assert_eq!(hits(), failed + 1, "the token was not reused");
    let seen = s.seen_authorizations("echo").await;
    let expected = format!("Bearer backend-token-{}", failed + 1);
    assert_eq!(seen.len(), 21);
    assert!(
        seen.iter().all(|a| a.as_deref() == Some(&*expected)),
        "{seen:?}"
    );
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("gw:gw-client-secret")
    );
    assert_eq!(*te.basic.lock().unwrap(), vec![basic; failed + 1]);
}

/// A missing backend secret on Secrets Manager: 502 with a clear message, and
/// a storm of 100 requests reads the secret once per failure TTL (counted at
/// the proxy in front of the local AWS). Once the secret exists, requests are
/// served.
#[tokio::test]
async fn a_missing_secret_storm_reads_secrets_manager_once() {
    let s = start_on(Backend::Aws).await;
    let aws = s.aws.as_ref().unwrap();
    s.edit_agent("echo", |echo| {
        echo.auth = BackendAuth::Header {
            name: "authorization".into(),
            secret: "storm/api-key".into(),
        };
    })
    .await;
    let token = s.token(&["switchboard/echo"]).await;
    let url = s.gw("/agents/echo");
    let reads = || {
        aws.proxy
            .calls()
            .get("GetSecretValue")
            .copied()
            .unwrap_or(0) as usize
    };
    aws.proxy.reset_counts();

    let started = Instant::now();
    let results = storm(&s.http, &url, 100, |_| token.clone()).await;
    let allowed = fetches_allowed(started.elapsed());
    assert_eq!(
        statuses(&results),
        BTreeMap::from([(502, 100)]),
        "{:?}",
        results[0]
    );
    let body: Value = serde_json::from_str(&results[0].1).unwrap();
    assert_eq!(
        body["error"]["message"],
        json!("backend credentials unavailable: the secret \"storm/api-key\" for agent echo does not exist")
    );
    let failed = reads();
    assert!(
        (1..=allowed).contains(&failed),
        "{failed} secret reads for one storm (at most {allowed}): {:?}",
        aws.proxy.calls()
    );

    s.stack
        .stores
        .secrets
        .put("storm/api-key", &Secret::new("Bearer static-api-key"))
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while storm(&s.http, &url, 1, |_| token.clone()).await[0].0 != 200 {
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reads(), failed + 1);
    assert_eq!(
        s.seen_authorizations("echo").await,
        vec![Some("Bearer static-api-key".to_owned())]
    );
}

// ---------------------------------------------------------------------------
// kill -9 during an import

const IMPORT_AGENTS: usize = 1000;

/// 1,000 agents with descriptions long enough (8 KiB each) that SQLite
/// spills the transaction into the WAL before it commits, which gives the
/// kill a window inside the write.
fn write_import_file(path: &Path) {
    let filler = "An agent imported in bulk to test an interrupted import. ".repeat(140);
    let agents: Vec<Value> = (0..IMPORT_AGENTS)
        .map(|i| {
            json!({
                "id": format!("bulk-{i:04}"),
                "url": format!("http://127.0.0.1:{}", 10_000 + i),
                "name": format!("Bulk {i}"),
                "description": format!("{i}: {filler}"),
                "rate_limit": 60,
            })
        })
        .collect();
    let file = json!({"agents": agents, "permissions": {"bulk": ["*"]}});
    std::fs::write(path, serde_json::to_vec(&file).unwrap()).unwrap();
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SWITCHBOARD_PROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A data directory with an empty registry and no WAL file, so the import's
/// first write is what makes the WAL grow.
fn empty_data_dir(root: &Path, name: &str) -> PathBuf {
    let data = root.join(name);
    let out = cli(&data, &["agents", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let db = data.join(switchboard_core::store::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    let wal = wal_path(&data);
    assert!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0,
        "a WAL is left in {}",
        data.display()
    );
    data
}

fn wal_path(data: &Path) -> PathBuf {
    data.join(format!("{}-wal", switchboard_core::store::DB_FILE))
}

fn wal_len(data: &Path) -> u64 {
    std::fs::metadata(wal_path(data))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Opens the database as SQLite recovers it after a crash: it must pass the
/// integrity check, and hold all of the import's agents or none.
fn agents_after_recovery(data: &Path) -> usize {
    let conn = rusqlite::Connection::open(data.join(switchboard_core::store::DB_FILE)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", data.display());
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM agents WHERE id LIKE 'bulk-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    // The binary reads the same registry.
    let out = cli(data, &["agents", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), n as usize);
    n as usize
}

/// `kill -9` of `switchboard import` at several points of its write: each
/// time the database is intact and holds all 1,000 agents or none of them.
/// The kill points are set by how far the WAL has grown (measured on a first,
/// complete import), so they land inside the write, not by luck of timing.
#[test]
fn kill_9_during_an_import_leaves_all_agents_or_none() {
    use std::os::unix::process::ExitStatusExt;
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("bulk.json");
    write_import_file(&file);
    let file_arg = file.to_str().unwrap();

    // A complete import: how far the WAL grows.
    let data = empty_data_dir(root.path(), "complete");
    let mut child = Command::new(binary())
        .arg("--data-dir")
        .arg(&data)
        .args(["import", file_arg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut wal_max = 0;
    let status = loop {
        wal_max = wal_max.max(wal_len(&data));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    assert!(status.success(), "the import failed: {status}");
    assert_eq!(agents_after_recovery(&data), IMPORT_AGENTS);
    assert!(wal_max > 0, "the import never wrote to the WAL");

    // Each kill must leave all or none. At least one must land inside the
    // write: on a busy machine a round's kills may all come too late (the
    // watcher of the WAL is descheduled while the import commits), so a
    // round without one is run again, a few times.
    const ROUNDS: usize = 4;
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        for (i, fraction) in [0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0]
            .into_iter()
            .enumerate()
        {
            let threshold = ((wal_max as f64 * fraction) as u64).max(1);
            let data = empty_data_dir(root.path(), &format!("killed-{round}-{i}"));
            let mut child = Command::new(binary())
                .arg("--data-dir")
                .arg(&data)
                .args(["import", file_arg])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let wal_at_kill = loop {
                let len = wal_len(&data);
                if len >= threshold || child.try_wait().unwrap().is_some() {
                    break len;
                }
                std::thread::sleep(Duration::from_micros(100));
            };
            let _ = child.kill(); // SIGKILL
            let status = child.wait().unwrap();
            let killed = status.signal() == Some(9);
            let n = agents_after_recovery(&data);
            assert!(
                n == 0 || n == IMPORT_AGENTS,
                "kill at WAL {wal_at_kill} B: {n} of {IMPORT_AGENTS} agents"
            );
            outcomes.push((threshold, wal_at_kill, killed, n));
        }
        eprintln!("(threshold, WAL at kill, killed, agents): {outcomes:?}");
        if outcomes
            .iter()
            .any(|&(_, wal, killed, n)| killed && wal > 0 && n == 0)
        {
            return;
        }
    }
    panic!("no kill landed inside the write in {ROUNDS} rounds: {outcomes:?}");
}
