//! The relay step: the backend's answer goes back to the caller as it
//! arrives — its status, the headers that may cross with the caller's
//! budget added, and the body chunk by chunk, or event by event for SSE
//! ([`super::sse`]). The request's record is closed when the body ends.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::headers;
use super::sse::relay_sse;
use crate::audit::{FinishGuard, Record};
use crate::error::GatewayError;
use crate::events::{BodyCapture, Direction, EventBus};
use crate::ratelimit::Budget;

/// The caller's response from the backend's `resp`.
pub fn respond(
    resp: reqwest::Response,
    budget: &Budget,
    record: Record,
    bus: &EventBus,
    keepalive: Duration,
) -> Response {
    let status = resp.status();
    let mut out_headers = headers::downstream_response(resp.headers());
    budget_headers(&mut out_headers, budget);
    let is_sse = out_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let style = record.style().clone();
    let id = record.id();
    let guard = record.finish(status.as_u16());
    let upstream = resp.bytes_stream().boxed();
    let body = if is_sse {
        out_headers.remove(header::CONTENT_LENGTH);
        let error_event = Box::new(move |msg: &str| -> Bytes {
            let payload = GatewayError::BackendBadResponse(msg.to_owned()).body(&style);
            Bytes::from(format!("event: error\ndata: {payload}\n\n"))
        });
        let tap = bus.has_subscribers().then(|| (bus.clone(), id));
        Body::from_stream(relay_sse(upstream, keepalive, tap, error_event, guard))
    } else {
        let capture = bus
            .capture_limit()
            .map(|limit| BodyCapture::new(bus.clone(), id, Direction::Response, limit));
        Body::from_stream(relay_plain(upstream, guard, capture))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

fn budget_headers(h: &mut HeaderMap, b: &Budget) {
    h.insert("ratelimit-limit", HeaderValue::from(b.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(b.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(b.reset));
}

/// Relays a non-SSE body chunk by chunk, feeding `capture` (published
/// before the record closes). A backend error ends the body with an error,
/// which the server turns into an aborted response.
pub fn relay_plain(
    upstream: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    guard: FinishGuard,
    capture: Option<BodyCapture>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    // Dropped in field order: the capture goes out before the guard's `Finished`.
    struct State {
        capture: Option<BodyCapture>,
        guard: FinishGuard,
    }
    futures::stream::unfold(
        (upstream, State { capture, guard }, false),
        |(mut up, mut state, done)| async move {
            if done {
                return None;
            }
            let guard = &state.guard;
            match up.next().await {
                Some(Ok(chunk)) => {
                    if let Some(c) = &mut state.capture {
                        c.push(&chunk);
                    }
                    Some((Ok(chunk), (up, state, false)))
                }
                Some(Err(e)) => {
                    let why = format!("the backend broke the response: {}", e.without_url());
                    guard.set_error(why.clone());
                    Some((Err(std::io::Error::other(why)), (up, state, true)))
                }
                None => None,
            }
        },
    )
}
