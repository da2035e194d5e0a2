//! The JSON-RPC endpoint (`POST /`): version negotiation, the guard, the
//! method's answer as one JSON-RPC response or as an SSE stream of them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::behavior::Reply;
use super::model::{StreamEvent, Task, TaskState, Wire};
use super::rpc::{self, RpcError};
use super::{header_string, Agent, RecordedRequest};

pub(super) async fn rpc_endpoint(
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
