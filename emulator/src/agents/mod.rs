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

mod card;
mod model;
mod rpc;
mod tasks;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Map, Value};
use switchboard_core::auth::jwt::{AuthError, Verifier};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use model::{Artifact, Message, Part, Role, StreamEvent, Task, TaskState, TaskStatus, Wire};
use rpc::{Method, RpcError};
use tasks::{CancelSignal, TaskError, TaskStore};

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
        .route("/", post(rpc_endpoint))
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

enum Behavior {
    Echo,
    Stream,
}

struct Guard {
    verifier: Arc<Verifier>,
    scope: String,
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

/// What a method returns: one JSON-RPC result, or a stream of them.
enum Reply {
    Json(Value),
    Stream(Box<Task>, broadcast::Receiver<StreamEvent>),
}

async fn rpc_endpoint(
    State(agent): State<Arc<Agent>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let version = header_string(&headers, "a2a-version").or_else(|| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("a2a-version"))
            .map(|(_, v)| v.clone())
    });
    let requested = rpc::requested_version(version.as_deref()).to_owned();
    let parsed = rpc::parse(&body);
    agent.requests.record(RecordedRequest {
        method: parsed.as_ref().ok().map(|r| r.method.clone()),
        http: "POST /".into(),
        authorization: header_string(&headers, "authorization"),
        a2a_version: version,
    });
    let (id, known) = match &parsed {
        Ok(request) => (request.id.clone(), rpc::lookup(&request.method)),
        Err((id, _)) => (id.clone(), None),
    };
    let error_wire = known.map_or_else(|| rpc::wire_of_version(&requested), |(_, wire)| wire);

    if let Some(guard) = &agent.guard {
        if let Err(denied) = guard.check(&headers).await {
            return denied.into_response(&id, error_wire);
        }
    }
    let request = match parsed {
        Ok(request) => request,
        Err((id, error)) => return json_reply(rpc::failure(&id, &error, error_wire)),
    };
    let Some((method, wire)) = known else {
        let error = RpcError::method_not_found(&request.method);
        return json_reply(rpc::failure(&id, &error, error_wire));
    };
    if let Err(error) = rpc::check_version(&requested, wire) {
        return json_reply(rpc::failure(&id, &error, wire));
    }
    match agent.dispatch(method, wire, &request.params) {
        Ok(Reply::Json(result)) => json_reply(rpc::success(&id, result)),
        Ok(Reply::Stream(first, events)) => sse_reply(id, wire, *first, events),
        Err(error) => json_reply(rpc::failure(&id, &error, wire)),
    }
}

/// JSON-RPC answers, errors included, travel with HTTP 200.
fn json_reply(body: Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

/// Whether the stream ends after this event.
fn ends_stream(event: &StreamEvent) -> bool {
    match event {
        StreamEvent::Status { status, .. } => {
            status.state.is_terminal()
                || matches!(
                    status.state,
                    TaskState::InputRequired | TaskState::AuthRequired
                )
        }
        StreamEvent::Task(task) => task.status.state.is_terminal(),
        StreamEvent::Artifact { .. } => false,
    }
}

/// The task as it is now, then each change as it happens, until the task
/// ends. Each event is written to the socket as soon as it exists.
fn sse_reply(
    id: Value,
    wire: Wire,
    first: Task,
    events: broadcast::Receiver<StreamEvent>,
) -> Response {
    let state = (Some(StreamEvent::Task(first)), events, false);
    let stream = futures::stream::unfold(state, |(first, mut events, done)| async move {
        if let Some(event) = first {
            let done = ends_stream(&event);
            return Some((event, (None, events, done)));
        }
        if done {
            return None;
        }
        loop {
            match events.recv().await {
                Ok(event) => {
                    let done = ends_stream(&event);
                    return Some((event, (None, events, done)));
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a slow stream client missed task events");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let frames = futures::StreamExt::map(stream, move |event| {
        let body = rpc::success(&id, event.json(wire));
        Ok::<_, Infallible>(Event::default().data(body.to_string()))
    });
    Sse::new(frames)
        .keep_alive(KeepAlive::default())
        .into_response()
}

impl Agent {
    fn dispatch(
        self: &Arc<Self>,
        method: Method,
        wire: Wire,
        params: &Map<String, Value>,
    ) -> Result<Reply, RpcError> {
        match method {
            Method::Send => self.send(wire, params),
            Method::SendStreaming => {
                let message = message_param(params)?;
                let (task, events) = self.start_streaming(message, params)?;
                Ok(Reply::Stream(Box::new(task), events))
            }
            Method::GetTask => {
                let id = id_param(params)?;
                let history = u64_param(params, "historyLength")?;
                let task = self
                    .tasks
                    .get(&id)
                    .ok_or_else(|| RpcError::task_not_found(&id))?;
                Ok(Reply::Json(task.json(wire, history.map(to_usize))))
            }
            Method::CancelTask => {
                let id = id_param(params)?;
                match self.tasks.cancel(&id) {
                    Ok(task) => Ok(Reply::Json(task.json(wire, None))),
                    Err(TaskError::NotFound) => Err(RpcError::task_not_found(&id)),
                    Err(TaskError::Ended(state)) => {
                        Err(RpcError::task_not_cancelable(&id, state.json(wire)))
                    }
                }
            }
            Method::ListTasks => self.list(wire, params),
            Method::Subscribe => {
                let id = id_param(params)?;
                match self.tasks.subscribe(&id) {
                    Ok((task, events)) => Ok(Reply::Stream(Box::new(task), events)),
                    Err(TaskError::NotFound) => Err(RpcError::task_not_found(&id)),
                    Err(TaskError::Ended(state)) => Err(RpcError::unsupported(format!(
                        "Task {id} is already {}; there is nothing to subscribe to",
                        state.json(wire)
                    ))),
                }
            }
            Method::PushConfig => Err(RpcError::push_not_supported()),
            Method::ExtendedCard => Err(RpcError::extended_card_not_configured()),
        }
    }

    /// `SendMessage`: the finished task, or the task at once when the
    /// caller asked not to wait.
    fn send(self: &Arc<Self>, wire: Wire, params: &Map<String, Value>) -> Result<Reply, RpcError> {
        let message = message_param(params)?;
        let configuration = params.get("configuration").and_then(Value::as_object);
        let flag = |key: &str| {
            configuration
                .and_then(|c| c.get(key))
                .and_then(Value::as_bool)
        };
        let return_immediately = match wire {
            Wire::V1 => flag("returnImmediately").unwrap_or(false),
            Wire::V03 => !flag("blocking").unwrap_or(true),
        };
        let history = configuration
            .map(|c| u64_param(c, "historyLength"))
            .transpose()?
            .flatten();
        let (task, cancel, _events) = self.open_task(message.clone())?;
        let plan = self.plan(&task, &message, params);
        let task_id = task.id.clone();
        if return_immediately {
            tokio::spawn(run(
                self.clone(),
                task_id.clone(),
                plan.steps,
                plan.interval,
                cancel,
            ));
        } else {
            for step in plan.steps {
                if !self.tasks.apply(&task_id, step) {
                    break;
                }
            }
        }
        let task = self.tasks.get(&task_id).unwrap_or(task);
        let task = task.json(wire, history.map(to_usize));
        Ok(Reply::Json(match wire {
            Wire::V1 => json!({ "task": task }),
            Wire::V03 => task,
        }))
    }

    fn start_streaming(
        self: &Arc<Self>,
        message: Message,
        params: &Map<String, Value>,
    ) -> Result<(Task, broadcast::Receiver<StreamEvent>), RpcError> {
        let (task, cancel, events) = self.open_task(message.clone())?;
        let plan = self.plan(&task, &message, params);
        tokio::spawn(run(
            self.clone(),
            task.id.clone(),
            plan.steps,
            plan.interval,
            cancel,
        ));
        Ok((task, events))
    }

    /// A new task for the message, or the task it continues.
    fn open_task(
        &self,
        mut message: Message,
    ) -> Result<(Task, CancelSignal, broadcast::Receiver<StreamEvent>), RpcError> {
        if message.role != Role::User {
            return Err(RpcError::invalid_params("message.role must be ROLE_USER"));
        }
        if let Some(task_id) = message.task_id.clone() {
            return self
                .tasks
                .continue_with(&task_id, message)
                .map_err(|e| match e {
                    TaskError::NotFound => RpcError::task_not_found(&task_id),
                    TaskError::Ended(state) => RpcError::invalid_params(format!(
                        "task {task_id} has already ended ({}); send without taskId to start a new task",
                        state.json(Wire::V03)
                    )),
                });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let context_id = message
            .context_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        message.task_id = Some(id.clone());
        message.context_id = Some(context_id.clone());
        let task = Task {
            id,
            context_id,
            status: TaskStatus::now(TaskState::Submitted, None),
            artifacts: Vec::new(),
            history: vec![message],
        };
        let (cancel, events) = self.tasks.insert(task.clone());
        Ok((task, cancel, events))
    }

    /// What the agent will do with a message.
    fn plan(&self, task: &Task, message: &Message, params: &Map<String, Value>) -> Plan {
        let working = StreamEvent::status(task, TaskStatus::now(TaskState::Working, None));
        match self.behavior {
            Behavior::Echo => {
                let artifact = Artifact {
                    artifact_id: uuid::Uuid::new_v4().to_string(),
                    name: Some("echo".into()),
                    parts: message.parts.clone(),
                };
                let reply = Message::agent(task, message.parts.clone());
                Plan {
                    interval: Duration::ZERO,
                    steps: vec![
                        working,
                        StreamEvent::artifact(task, artifact, false, true),
                        StreamEvent::status(
                            task,
                            TaskStatus::now(TaskState::Completed, Some(reply)),
                        ),
                    ],
                }
            }
            Behavior::Stream => {
                let setting = |key: &str| {
                    message.metadata_u64(key).or_else(|| {
                        params
                            .get("metadata")
                            .and_then(|m| m.get(key))
                            .and_then(Value::as_u64)
                    })
                };
                let text = message.text();
                let interval = match setting("intervalMs") {
                    Some(ms) => Duration::from_millis(ms.min(MAX_INTERVAL_MS)),
                    None if text.to_lowercase().contains("slow") => SLOW_INTERVAL,
                    None => STREAM_INTERVAL,
                };
                let chunks = setting("chunks")
                    .unwrap_or(STREAM_CHUNKS)
                    .clamp(1, MAX_CHUNKS);
                let artifact_id = uuid::Uuid::new_v4().to_string();
                let mut steps = vec![working];
                for i in 1..=chunks {
                    let chunk = Artifact {
                        artifact_id: artifact_id.clone(),
                        name: (i == 1).then(|| "stream".to_owned()),
                        parts: vec![Part::text(format!("chunk {i}/{chunks}: {text}\n"))],
                    };
                    steps.push(StreamEvent::artifact(task, chunk, i > 1, i == chunks));
                }
                let reply =
                    Message::agent(task, vec![Part::text(format!("streamed {chunks} chunks"))]);
                steps.push(StreamEvent::status(
                    task,
                    TaskStatus::now(TaskState::Completed, Some(reply)),
                ));
                Plan { interval, steps }
            }
        }
    }

    fn list(&self, wire: Wire, params: &Map<String, Value>) -> Result<Reply, RpcError> {
        let context_id = match params.get("contextId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(RpcError::invalid_params("contextId must be a string")),
        };
        let status = match params.get("status") {
            None | Some(Value::Null) => None,
            Some(v) if v == "TASK_STATE_UNSPECIFIED" || v == 0 => None,
            Some(v) => Some(
                TaskState::parse(v)
                    .ok_or_else(|| RpcError::invalid_params(format!("unknown status {v}")))?,
            ),
        };
        let page_size = u64_param(params, "pageSize")?
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .min(MAX_PAGE_SIZE);
        let offset = match params.get("pageToken").and_then(Value::as_str) {
            None | Some("") => 0,
            Some(token) => token
                .parse::<usize>()
                .map_err(|_| RpcError::invalid_params("pageToken is not one this agent issued"))?,
        };
        let history = u64_param(params, "historyLength")?.map(to_usize);
        let include_artifacts = params
            .get("includeArtifacts")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut matching: Vec<Task> = self
            .tasks
            .list()
            .into_iter()
            .rev()
            .filter(|t| context_id.as_ref().is_none_or(|c| *c == t.context_id))
            .filter(|t| status.is_none_or(|s| s == t.status.state))
            .collect();
        let total = matching.len();
        let page: Vec<Value> = matching
            .drain(offset.min(total)..)
            .take(to_usize(page_size))
            .map(|mut t| {
                if !include_artifacts {
                    t.artifacts.clear();
                }
                t.json(wire, history)
            })
            .collect();
        let next = offset + page.len();
        let next_token = if next < total {
            next.to_string()
        } else {
            String::new()
        };
        Ok(Reply::Json(json!({
            "tasks": page,
            "nextPageToken": next_token,
            "pageSize": page_size,
            "totalSize": total,
        })))
    }
}

/// The events an agent will produce for a task, and the pause before each.
struct Plan {
    interval: Duration,
    steps: Vec<StreamEvent>,
}

/// Drives a task through its planned events, pausing between them, until
/// done or canceled. Runs on even if every client has gone away, so
/// `GetTask` shows the outcome.
async fn run(
    agent: Arc<Agent>,
    task_id: String,
    steps: Vec<StreamEvent>,
    interval: Duration,
    mut cancel: CancelSignal,
) {
    for mut step in steps {
        if !interval.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = cancel.wait_for(|canceled| *canceled) => {}
            }
        }
        // A status is stamped when it is set, not when it was planned.
        if let StreamEvent::Status { status, .. } = &mut step {
            *status = TaskStatus::now(status.state, status.message.take());
        }
        if *cancel.borrow() || !agent.tasks.apply(&task_id, step) {
            return;
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn message_param(params: &Map<String, Value>) -> Result<Message, RpcError> {
    let message = params
        .get("message")
        .ok_or_else(|| RpcError::invalid_params("message is required"))?;
    Message::parse(message).map_err(RpcError::invalid_params)
}

fn id_param(params: &Map<String, Value>) -> Result<String, RpcError> {
    match params.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(RpcError::invalid_params("id is required"))
        }
        Some(_) => Err(RpcError::invalid_params("id must be a string")),
    }
}

/// A non-negative integer parameter; proto JSON may send 64-bit integers as
/// strings.
fn u64_param(params: &Map<String, Value>, key: &str) -> Result<Option<u64>, RpcError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            RpcError::invalid_params(format!("{key} must be a non-negative integer"))
        }),
        Some(Value::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| RpcError::invalid_params(format!("{key} must be a non-negative integer"))),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{key} must be a non-negative integer"
        ))),
    }
}

/// Why the guarded agent turned a call away.
enum Denied {
    Unauthenticated(AuthError),
    MissingScope(String),
}

impl Guard {
    async fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(Denied::Unauthenticated(AuthError::Missing))?;
        let principal = self
            .verifier
            .verify(token)
            .await
            .map_err(Denied::Unauthenticated)?;
        if principal.scopes.contains(&self.scope) {
            Ok(())
        } else {
            Err(Denied::MissingScope(self.scope.clone()))
        }
    }
}

impl Denied {
    fn into_response(self, id: &Value, wire: Wire) -> Response {
        let (status, code, reason, message, challenge) = match &self {
            Denied::Unauthenticated(e) => {
                let reason = match e {
                    AuthError::Missing => "TOKEN_MISSING",
                    AuthError::Expired => "TOKEN_EXPIRED",
                    _ => "TOKEN_INVALID",
                };
                let challenge = match e {
                    AuthError::Missing => "Bearer realm=\"guarded-agent\"".to_owned(),
                    other => format!(
                        "Bearer realm=\"guarded-agent\", error=\"invalid_token\", error_description=\"{}\"",
                        other.to_string().replace(['"', '\\', '\r', '\n'], "'")
                    ),
                };
                (
                    StatusCode::UNAUTHORIZED,
                    -32050,
                    reason,
                    format!("guarded agent: {e}"),
                    challenge,
                )
            }
            Denied::MissingScope(scope) => (
                StatusCode::FORBIDDEN,
                -32051,
                "INSUFFICIENT_SCOPE",
                format!("guarded agent: the token lacks the scope {scope}"),
                format!(
                    "Bearer realm=\"guarded-agent\", error=\"insufficient_scope\", scope=\"{}\"",
                    scope.replace(['"', '\\'], "'")
                ),
            ),
        };
        let mut error = json!({ "code": code, "message": message });
        if wire == Wire::V1 {
            error["data"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "a2a-protocol.org",
                "metadata": {},
            }]);
        }
        let body = json!({ "jsonrpc": "2.0", "id": id, "error": error });
        let mut response = (status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
