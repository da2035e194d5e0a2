//! Sample A2A agents: real JSON-RPC servers, each on its own port, for
//! developing and testing the gateway without any real agent.
//!
//! Every agent serves
//!
//! * `POST /`: A2A JSON-RPC. 1.0 methods (`SendMessage`,
//!   `SendStreamingMessage`, `GetTask`, `ListTasks`, `CancelTask`,
//!   `SubscribeToTask`) answer in 1.0 shapes; the 0.3 names (`message/send`,
//!   `message/stream`, `tasks/get`, `tasks/cancel`, `tasks/resubscribe`)
//!   answer in 0.3 shapes. As in the official SDK's server, a 1.0 method needs
//!   `A2A-Version: 1.x` (header or query parameter) and a 0.3 method a missing
//!   or `0.x` version, else -32009. Streams are SSE, one JSON-RPC response
//!   per `data:` event, sent as produced; the stream closes after the task's
//!   final status.
//! * `GET /.well-known/agent-card.json` and the legacy
//!   `/.well-known/agent.json`: the card (1.0 fields with the 0.3 ones merged
//!   in, as the SDK's server writes it).
//! * `GET /_debug/requests`: every request received, oldest first, as
//!   `{"method", "http", "authorization", "a2a_version"}` (`method` is the
//!   JSON-RPC method, `null` for other requests; `authorization` the header
//!   exactly as received, `null` if absent). `DELETE` clears the list.
//!
//! The agents:
//!
//! * **echo**: replies with a completed task whose artifact and status
//!   message carry the parts it was sent.
//! * **stream**: works for a while: the task (submitted), `working`, then
//!   artifact chunks appended to one artifact, then `completed`, each event
//!   300 ms after the previous one (500 ms when the text contains `slow`, in
//!   any case).
//!   Message metadata `intervalMs` (0–60000) and `chunks` (1–100) override
//!   the pacing and the number of chunks (default 4).
//! * **guarded**: the echo agent behind a bearer token from the local issuer
//!   carrying a required scope. No or bad token: HTTP 401 with
//!   `WWW-Authenticate: Bearer …` and a JSON-RPC error (code -32050); valid
//!   token without the scope: HTTP 403 (code -32051). The card declares the
//!   OAuth2 client-credentials scheme with the issuer's token URL.
//!
//! A `SendMessage` with `configuration.returnImmediately: true` (0.3:
//! `blocking: false`) returns the task at once and lets it run; `CancelTask`
//! stops a running task and tells its streams.

//!
//! Where things are: the JSON-RPC endpoint and its SSE streams in
//! [`jsonrpc`]; what each method does, and how the stream agent paces its
//! task, in [`behavior`]; the guarded agent's token check in [`guard`]; the
//! task store in [`tasks`]; the A2A objects in [`model`].

mod behavior;
mod card;
mod guard;
mod jsonrpc;
mod model;
mod rpc;
mod tasks;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use switchboard_core::auth::jwt::Verifier;

use behavior::Behavior;
use guard::Guard;
use tasks::TaskStore;

/// The scope the guarded agent asks for unless told otherwise.
pub const DEFAULT_GUARDED_SCOPE: &str = "agents/guarded.invoke";

/// Pause between stream events.
const STREAM_INTERVAL: Duration = Duration::from_millis(300);
/// Pause between stream events when the text contains `slow`.
const SLOW_INTERVAL: Duration = Duration::from_millis(500);
/// Artifact chunks the stream agent sends.
const STREAM_CHUNKS: u64 = 4;
/// Longest pause a message may ask for.
const MAX_INTERVAL_MS: u64 = 60_000;
/// Most chunks a message may ask for.
const MAX_CHUNKS: u64 = 100;
/// Most requests remembered for `/_debug/requests`.
const REQUEST_LOG_CAPACITY: usize = 1_000;
/// Default and largest `ListTasks` page.
const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 100;

/// Which sample agent to run.
pub enum SampleKind {
    /// Echoes what it is sent.
    Echo,
    /// Streams its reply in timed chunks.
    Stream,
    /// Echo, behind a bearer token with `required_scope`.
    Guarded {
        /// Checks tokens against the local issuer.
        verifier: Arc<Verifier>,
        /// The scope every call's token must carry.
        required_scope: String,
        /// The issuer's token endpoint, published in the card.
        token_url: String,
    },
}

impl SampleKind {
    /// `echo`, `stream` or `guarded`.
    pub fn name(&self) -> &'static str {
        match self {
            SampleKind::Echo => "echo",
            SampleKind::Stream => "stream",
            SampleKind::Guarded { .. } => "guarded",
        }
    }
}

impl std::fmt::Debug for SampleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleKind::Guarded {
                required_scope,
                token_url,
                ..
            } => f
                .debug_struct("Guarded")
                .field("required_scope", required_scope)
                .field("token_url", token_url)
                .finish_non_exhaustive(),
            other => f.write_str(other.name()),
        }
    }
}

/// The agent's card as served at `public_url`.
pub fn card(kind: &SampleKind, public_url: &str) -> Value {
    let url = public_url.trim_end_matches('/');
    let info = match kind {
        SampleKind::Echo => card::CardInfo {
            name: "Echo Agent",
            description: "Replies with exactly what it is sent, as a completed task.",
            skill: card::skill(
                "echo",
                "Echo",
                "Returns the message's parts as an artifact and as the status message.",
                &["echo", "test"],
                &["hello"],
            ),
            oauth: None,
        },
        SampleKind::Stream => card::CardInfo {
            name: "Stream Agent",
            description: "Streams its reply as artifact chunks a few hundred milliseconds apart.",
            skill: card::skill(
                "stream",
                "Stream",
                "Streams a working status, four artifact chunks and a completed status; \
                 a message containing 'slow' spaces them 500 ms apart.",
                &["stream", "sse", "test"],
                &["stream this", "slow stream please"],
            ),
            oauth: None,
        },
        SampleKind::Guarded {
            required_scope,
            token_url,
            ..
        } => card::CardInfo {
            name: "Guarded Agent",
            description: "Echoes, but only for callers with an OAuth2 client-credentials token \
                          from the local issuer.",
            skill: card::skill(
                "guarded-echo",
                "Guarded echo",
                "Echoes the message back to callers holding the required scope.",
                &["echo", "oauth2", "test"],
                &["hello"],
            ),
            oauth: Some((token_url.as_str(), required_scope.as_str())),
        },
    };
    card::build(&info, url)
}

/// The agent's routes: JSON-RPC at `/`, the card, and `/_debug/requests`.
/// `public_url` is the address clients reach it at; it goes into the card.
pub fn router(kind: SampleKind, public_url: String) -> Router {
    let card = card(&kind, &public_url);
    let (behavior, guard) = match kind {
        SampleKind::Echo => (Behavior::Echo, None),
        SampleKind::Stream => (Behavior::Stream, None),
        SampleKind::Guarded {
            verifier,
            required_scope,
            ..
        } => (
            Behavior::Echo,
            Some(Guard {
                verifier,
                scope: required_scope,
            }),
        ),
    };
    let agent = Arc::new(Agent {
        behavior,
        guard,
        card,
        tasks: TaskStore::default(),
        requests: RequestLog::default(),
    });
    Router::new()
        .route("/", post(jsonrpc::rpc_endpoint))
        .route("/.well-known/agent-card.json", get(card_endpoint))
        .route("/.well-known/agent.json", get(card_endpoint))
        .route(
            "/_debug/requests",
            get(debug_requests).delete(clear_debug_requests),
        )
        .with_state(agent)
}

/// A sample agent serving on its own listener.
pub struct SampleHandle {
    /// Base URL, `http://127.0.0.1:PORT` (JSON-RPC endpoint and card base).
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SampleHandle {
    /// Stops accepting connections and waits up to two seconds for open
    /// ones (streams) to finish, then drops them.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for SampleHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for SampleHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleHandle")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Serves a sample agent on `listener` until the handle is shut down or
/// dropped. The card's URL is the listener's address (loopback when it is
/// bound to every interface).
pub async fn spawn(
    kind: SampleKind,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<SampleHandle> {
    let bound = listener.local_addr()?;
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, bound.port());
    let url = format!("http://{addr}");
    let name = kind.name();
    let app = router(kind, url.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(agent = name, error = %e, "sample agent server stopped");
        }
    });
    tracing::debug!(agent = name, %url, "sample agent listening");
    Ok(SampleHandle {
        url,
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

struct Agent {
    behavior: Behavior,
    guard: Option<Guard>,
    card: Value,
    tasks: TaskStore,
    requests: RequestLog,
}

/// One request as `/_debug/requests` reports it.
#[derive(Debug, Clone, Serialize)]
struct RecordedRequest {
    method: Option<String>,
    http: String,
    authorization: Option<String>,
    a2a_version: Option<String>,
}

#[derive(Default)]
struct RequestLog(Mutex<VecDeque<RecordedRequest>>);

impl RequestLog {
    fn record(&self, entry: RecordedRequest) {
        let mut log = self.0.lock();
        if log.len() >= REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn card_endpoint(
    State(agent): State<Arc<Agent>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Json<Value> {
    agent.requests.record(RecordedRequest {
        method: None,
        http: format!("GET {}", uri.path()),
        authorization: header_string(&headers, "authorization"),
        a2a_version: header_string(&headers, "a2a-version"),
    });
    Json(agent.card.clone())
}

async fn debug_requests(State(agent): State<Arc<Agent>>) -> Json<Vec<RecordedRequest>> {
    Json(agent.requests.0.lock().iter().cloned().collect())
}

async fn clear_debug_requests(State(agent): State<Arc<Agent>>) -> StatusCode {
    agent.requests.0.lock().clear();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
