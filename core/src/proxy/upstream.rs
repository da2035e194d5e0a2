//! The upstream request step: the call as the backend gets it — its URL
//! under the agent's backend base, the headers that may cross, the
//! backend's credential, and the body (the JSON-RPC prefix already read,
//! then the rest, never more than the limit) — sent and answered within the
//! header timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use futures::StreamExt;

use super::headers;
use super::jsonrpc::Incoming;
use super::path::AgentRoute;
use crate::error::GatewayError;
use crate::registry::AgentRecord;

/// What the upstream request needs besides the caller's request.
pub struct Upstream<'a> {
    /// The backend client of this worker.
    pub http: reqwest::Client,
    /// The gateway's public URL (for `X-Forwarded-*`).
    pub public_url: &'a str,
    /// The most body bytes passed on.
    pub body_limit: u64,
    /// How long the backend has to answer with its headers.
    pub header_timeout: Duration,
}

/// Sends the call to `agent`'s backend and returns its answer (headers
/// read, body still streaming).
pub async fn send(
    up: Upstream<'_>,
    agent: &AgentRecord,
    route: &AgentRoute<'_>,
    parts: &Parts,
    peer: Option<SocketAddr>,
    credential: Option<(HeaderName, HeaderValue)>,
    incoming: Incoming,
) -> Result<reqwest::Response, GatewayError> {
    let url = match (route.rest.is_empty(), parts.uri.query()) {
        // The JSON-RPC endpoint itself: parsed once per worker thread.
        (true, None) => parsed_base_url(&agent.url),
        _ => reqwest::Url::parse(&upstream_url(&agent.url, route, parts.uri.query())),
    }
    .map_err(|e| GatewayError::BackendUnreachable(format!("invalid backend URL: {e}")))?;
    let mut up_headers =
        headers::upstream_request_for(&parts.headers, peer.map(|p| p.ip()), up.public_url);
    if let Some((name, value)) = credential {
        up_headers.insert(name, value);
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let has_body = incoming.has_body(parts);
    let mut builder = up
        .http
        .request(parts.method.clone(), url)
        .headers(up_headers);
    if has_body {
        builder = builder.body(limited_body(
            incoming.prefix,
            incoming.body,
            up.body_limit,
            too_large.clone(),
        ));
    }
    match tokio::time::timeout(up.header_timeout, builder.send()).await {
        Err(_) => Err(GatewayError::BackendTimeout),
        Ok(Err(_)) if too_large.load(Ordering::Relaxed) => {
            Err(GatewayError::PayloadTooLarge(up.body_limit))
        }
        Ok(Err(e)) => Err(GatewayError::from_backend(e)),
        Ok(Ok(r)) => Ok(r),
    }
}

thread_local! {
    /// Backend base URLs already parsed on this thread.
    static PARSED_URLS: std::cell::RefCell<std::collections::HashMap<String, reqwest::Url>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Most base URLs a thread keeps parsed; past it the cache starts over.
const PARSED_URLS_MAX: usize = 1024;

/// `base` parsed, from this thread's cache when it was parsed before.
fn parsed_base_url(base: &str) -> Result<reqwest::Url, url::ParseError> {
    PARSED_URLS.with(|cache| {
        if let Some(url) = cache.borrow().get(base) {
            return Ok(url.clone());
        }
        let url = reqwest::Url::parse(base)?;
        let mut cache = cache.borrow_mut();
        if cache.len() >= PARSED_URLS_MAX {
            cache.clear();
        }
        cache.insert(base.to_owned(), url.clone());
        Ok(url)
    })
}

fn upstream_url(base: &str, route: &AgentRoute<'_>, query: Option<&str>) -> String {
    let mut url = if route.rest.is_empty() {
        base.to_owned()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), route.rest)
    };
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// The request body for the backend: the peeked prefix, then the rest,
/// refusing to pass more than `limit` bytes.
fn limited_body(
    prefix: Option<Bytes>,
    rest: Body,
    limit: u64,
    too_large: Arc<AtomicBool>,
) -> reqwest::Body {
    let head = futures::stream::iter(prefix.map(Ok::<Bytes, axum::Error>));
    let mut seen: u64 = 0;
    let stream = head.chain(rest.into_data_stream()).map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len() as u64;
        if seen > limit {
            too_large.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body over the limit"));
        }
        Ok::<Bytes, std::io::Error>(chunk)
    });
    reqwest::Body::wrap_stream(stream)
}
