//! The request path for `/agents/{id}[/{rest}]`: authenticate, authorize,
//! rate-limit, route, add backend credentials, and stream to the backend.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::headers;
use super::path::{parse_agent_path, AgentRoute};
use super::sse::{relay_plain, relay_sse};
use crate::auth::{AuthError, Principal};
use crate::error::{ErrorStyle, GatewayError};
use crate::events::{EventBus, TrafficEvent};
use crate::metrics::Metrics;
use crate::ratelimit::Budget;
use crate::server::Gateway;

/// How much of a JSON-RPC request body is read ahead to learn its `id` and
/// `method` (for error bodies, the traffic view and the audit log). Larger
/// bodies stream on without it.
pub const PEEK_LIMIT: usize = 64 * 1024;

/// Records the end of a request (metrics, traffic event, audit line) exactly
/// once: when the response body is finished or dropped.
pub struct FinishGuard {
    inner: Option<FinishInner>,
    error: Mutex<Option<String>>,
}

struct FinishInner {
    bus: EventBus,
    metrics: Arc<Metrics>,
    id: u64,
    agent: String,
    client: String,
    method: String,
    status: u16,
    started: Instant,
}

impl FinishGuard {
    /// Notes why the response went wrong, for the record.
    pub fn set_error(&self, why: String) {
        *self.error.lock() = Some(why);
    }
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        let Some(i) = self.inner.take() else { return };
        let latency = i.started.elapsed();
        let error = self.error.lock().take();
        i.metrics.record(&i.agent, i.status, latency.as_secs_f64());
        tracing::info!(
            target: "switchboard::audit",
            request = i.id,
            client = %i.client,
            agent = %i.agent,
            method = %i.method,
            status = i.status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            error = error.as_deref().unwrap_or(""),
        );
        i.bus.publish(TrafficEvent::Finished {
            id: i.id,
            status: i.status,
            latency,
            error,
        });
    }
}

/// The request's JSON-RPC envelope, as far as it could be read, and what is
/// wrong with it if it is not one JSON-RPC request.
#[derive(Debug, Default)]
struct RpcMeta {
    id: Value,
    method: Option<String>,
    invalid: Option<GatewayError>,
}

/// Only the envelope members, each as written; `params` and anything else
/// are skipped without building a value (so without recursion: nesting
/// depth costs nothing here and is the agent's to judge). A member
/// given twice is an error, so the gateway and the agent cannot read
/// different methods out of one body.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    jsonrpc: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    method: Option<&'a serde_json::value::RawValue>,
}

/// Reads the envelope of a JSON-RPC body. A body read only in part is judged
/// by its first byte (a batch); a whole body must be one request object with
/// `"jsonrpc": "2.0"` and a string `method`.
fn rpc_meta(prefix: &[u8], complete: bool) -> RpcMeta {
    use serde_json::error::Category;
    if prefix.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return RpcMeta {
            invalid: Some(GatewayError::BadRequest(
                "batch requests are not supported: send one JSON-RPC request per HTTP request"
                    .into(),
            )),
            ..RpcMeta::default()
        };
    }
    if !complete {
        return RpcMeta::default();
    }
    let Ok(text) = std::str::from_utf8(prefix) else {
        return RpcMeta {
            invalid: Some(GatewayError::ParseError(
                "the body is not UTF-8, so not JSON".into(),
            )),
            ..RpcMeta::default()
        };
    };
    let env = match serde_json::from_str::<Envelope<'_>>(text) {
        Ok(env) => env,
        Err(e) => {
            let invalid = match e.classify() {
                Category::Data => GatewayError::BadRequest(format!(
                    "the body is not a JSON-RPC request object: {e}"
                )),
                Category::Syntax | Category::Eof | Category::Io => {
                    GatewayError::ParseError(format!("the body is not JSON: {e}"))
                }
            };
            return RpcMeta {
                invalid: Some(invalid),
                ..RpcMeta::default()
            };
        }
    };
    let value = |raw: Option<&serde_json::value::RawValue>| {
        raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
    };
    let id = value(env.id);
    let method = value(env.method);
    let invalid = if !matches!(
        id,
        None | Some(Value::Null | Value::String(_) | Value::Number(_))
    ) {
        Some("id must be a string, a number or null")
    } else if value(env.jsonrpc) != Some(Value::String("2.0".into())) {
        Some("jsonrpc must be \"2.0\"")
    } else if !matches!(method, Some(Value::String(_))) {
        Some("method must be a string")
    } else {
        None
    };
    RpcMeta {
        id: id
            .filter(|v| v.is_string() || v.is_number())
            .unwrap_or(Value::Null),
        method: method.and_then(|m| m.as_str().map(str::to_owned)),
        invalid: invalid
            .map(|why| GatewayError::BadRequest(format!("not a JSON-RPC request: {why}"))),
    }
}

/// Reads up to `limit` bytes of `body`. Returns the bytes read, whether that
/// was the whole body, and the body itself to continue from.
async fn peek(mut body: Body, limit: usize) -> Result<(Bytes, bool, Body), GatewayError> {
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match body.frame().await {
            None => return Ok((buf.freeze(), true, Body::empty())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(GatewayError::BadRequest(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
    Ok((buf.freeze(), false, body))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Extracts the bearer token. Exactly one `Authorization` header with the
/// `Bearer` scheme (any case, RFC 9110) followed by one space.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization header is not ASCII".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Malformed("Authorization is not \"Bearer <token>\"".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(format!(
            "Authorization scheme {scheme:?} is not Bearer"
        )));
    }
    if token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed(
            "Authorization is not \"Bearer <token>\" with a single space".into(),
        ));
    }
    Ok(token)
}

/// What is known about the request so far, for the record.
struct Record {
    id: u64,
    agent: String,
    client: String,
    method: String,
    started: Instant,
}

impl Record {
    fn guard(&self, gw: &Gateway, status: u16) -> FinishGuard {
        FinishGuard {
            inner: Some(FinishInner {
                bus: gw.events.clone(),
                metrics: gw.metrics.clone(),
                id: self.id,
                agent: self.agent.clone(),
                client: self.client.clone(),
                method: self.method.clone(),
                status,
                started: self.started,
            }),
            error: Mutex::new(None),
        }
    }

    fn publish_start(&self, gw: &Gateway) {
        if !gw.events.has_subscribers() {
            return;
        }
        gw.events.publish(TrafficEvent::Started {
            id: self.id,
            at: SystemTime::now(),
            client: self.client.clone(),
            agent: self.agent.clone(),
            method: self.method.clone(),
        });
    }

    /// Answers with a gateway error and records it.
    fn reject(&self, gw: &Gateway, err: GatewayError, style: &ErrorStyle) -> Response {
        let status = err.status().as_u16();
        let guard = self.guard(gw, status);
        guard.set_error(format!("{}: {err}", err.reason()));
        if let GatewayError::BackendUnreachable(d)
        | GatewayError::BackendBadResponse(d)
        | GatewayError::Unavailable(d) = &err
        {
            tracing::warn!(agent = %self.agent, detail = %d, "request failed");
        }
        err.into_response_with(style)
    }
}

fn budget_headers(h: &mut HeaderMap, b: &Budget) {
    h.insert("ratelimit-limit", HeaderValue::from(b.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(b.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(b.reset));
}

/// Handles one request under `/agents/`.
pub async fn handle(gw: Arc<Gateway>, peer: Option<SocketAddr>, req: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let route = match parse_agent_path(&path) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(?e, %path, "not an agent route");
            return GatewayError::NotFound(format!("no agent at {path}"))
                .into_response_with(&ErrorStyle::Rest);
        }
    };
    if parts.method == Method::GET
        && matches!(
            route.rest,
            ".well-known/agent-card.json" | ".well-known/agent.json"
        )
    {
        return super::super::server::card(&gw, route.agent).await;
    }
    let is_jsonrpc = route.rest.is_empty() && parts.method == Method::POST;
    let mut record = Record {
        id: gw.events.next_id(),
        agent: route.agent.to_owned(),
        client: "-".into(),
        method: if is_jsonrpc {
            "?".into()
        } else {
            format!("{} /{}", parts.method, route.rest)
        },
        started,
    };

    // The body: refuse a declared oversize at once, and read ahead a bounded
    // prefix of JSON-RPC requests to learn their id and method.
    let limit = gw.config.body_limit;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut style = if is_jsonrpc {
        ErrorStyle::JsonRpc(Value::Null)
    } else {
        ErrorStyle::Rest
    };
    if declared.is_some_and(|n| n > limit) {
        record.publish_start(&gw);
        return record.reject(&gw, GatewayError::PayloadTooLarge(limit), &style);
    }
    let mut invalid_rpc = None;
    let (prefix, body) = if is_jsonrpc {
        match peek(body, PEEK_LIMIT.min(limit as usize + 1)).await {
            Ok((prefix, complete, rest)) => {
                let meta = rpc_meta(&prefix, complete);
                style = ErrorStyle::JsonRpc(meta.id);
                if let Some(m) = meta.method {
                    record.method = m;
                }
                if prefix.len() as u64 > limit {
                    record.publish_start(&gw);
                    return record.reject(&gw, GatewayError::PayloadTooLarge(limit), &style);
                }
                invalid_rpc = meta.invalid;
                (Some(prefix), rest)
            }
            Err(e) => {
                record.publish_start(&gw);
                return record.reject(&gw, e, &style);
            }
        }
    } else {
        (None, body)
    };

    // Authenticate.
    let principal: Arc<Principal> = match bearer_token(&parts.headers) {
        Ok(token) => match gw.verifier.verify(token).await {
            Ok(p) => p,
            Err(e) => {
                record.publish_start(&gw);
                return record.reject(&gw, GatewayError::Unauthenticated(e), &style);
            }
        },
        Err(e) => {
            record.publish_start(&gw);
            return record.reject(&gw, GatewayError::Unauthenticated(e), &style);
        }
    };
    record.client = principal.client_id.clone();
    record.publish_start(&gw);

    // A JSON-RPC body that is not one request goes no further.
    if let Some(e) = invalid_rpc {
        return record.reject(&gw, e, &style);
    }

    // Route and authorize from the cached registry, as long as the store
    // keeps confirming it.
    let unconfirmed = gw.registry.unconfirmed_for();
    if unconfirmed > gw.config.registry_max_unconfirmed() {
        return record.reject(
            &gw,
            GatewayError::Unavailable(format!(
                "the registry store has not answered for {} s",
                unconfirmed.as_secs()
            )),
            &style,
        );
    }
    let snapshot = gw.registry.snapshot();
    let Some(agent) = snapshot.routable(route.agent).cloned() else {
        return record.reject(
            &gw,
            GatewayError::NotFound(format!("no agent {}", route.agent)),
            &style,
        );
    };
    if snapshot
        .permissions
        .granting_scope(&principal.scopes, &agent.id)
        .is_none()
    {
        let why = snapshot.permissions.explain(&principal.scopes, &agent.id);
        return record.reject(&gw, GatewayError::Forbidden(why.reason), &style);
    }
    drop(snapshot);

    // Rate limit: the one store call on the path.
    let limit_per_minute = u64::from(agent.rate_limit.unwrap_or(gw.config.default_rate_limit));
    let budget = match gw
        .limiter
        .admit(
            &principal.client_id,
            &agent.id,
            limit_per_minute,
            now_secs(),
        )
        .await
    {
        Ok(b) => b,
        Err(e) => return record.reject(&gw, e, &style),
    };

    // Backend credentials.
    let credential = match gw.backend_auth.header(&agent.id, &agent.auth).await {
        Ok(c) => c,
        Err(e) => return record.reject(&gw, e, &style),
    };

    // Build and send the upstream request.
    let url = match (route.rest.is_empty(), parts.uri.query()) {
        // The JSON-RPC endpoint itself: parsed once per worker thread.
        (true, None) => parsed_base_url(&agent.url),
        _ => reqwest::Url::parse(&upstream_url(&agent.url, &route, parts.uri.query())),
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            return record.reject(
                &gw,
                GatewayError::BackendUnreachable(format!("invalid backend URL: {e}")),
                &style,
            )
        }
    };
    let mut up_headers =
        headers::upstream_request_for(&parts.headers, peer.map(|p| p.ip()), &gw.public_url);
    if let Some((name, value)) = credential {
        up_headers.insert(name, value);
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let has_body = prefix.is_some()
        || declared.is_some_and(|n| n > 0)
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let mut builder = gw
        .backend_http()
        .request(parts.method.clone(), url)
        .headers(up_headers);
    if has_body {
        builder = builder.body(limited_body(prefix, body, limit, too_large.clone()));
    }
    let sent = tokio::time::timeout(gw.config.header_timeout(), builder.send()).await;
    let resp = match sent {
        Err(_) => return record.reject(&gw, GatewayError::BackendTimeout, &style),
        Ok(Err(e)) => {
            let err = if too_large.load(Ordering::Relaxed) {
                GatewayError::PayloadTooLarge(limit)
            } else if e.is_timeout() {
                GatewayError::BackendTimeout
            } else if e.is_connect() {
                GatewayError::BackendUnreachable(e.without_url().to_string())
            } else {
                GatewayError::BackendBadResponse(e.without_url().to_string())
            };
            return record.reject(&gw, err, &style);
        }
        Ok(Ok(r)) => r,
    };

    let status = resp.status();
    let mut out_headers = headers::downstream_response(resp.headers());
    budget_headers(&mut out_headers, &budget);
    let is_sse = out_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let guard = record.guard(&gw, status.as_u16());
    let upstream = resp.bytes_stream().boxed();
    let body = if is_sse {
        out_headers.remove(header::CONTENT_LENGTH);
        let id = match &style {
            ErrorStyle::JsonRpc(id) => id.clone(),
            ErrorStyle::Rest => Value::Null,
        };
        let jsonrpc = is_jsonrpc;
        let error_event = Box::new(move |msg: &str| -> Bytes {
            let err = GatewayError::BackendBadResponse(msg.to_owned());
            let payload = if jsonrpc {
                err.body(&ErrorStyle::JsonRpc(id.clone()))
            } else {
                err.body(&ErrorStyle::Rest)
            };
            Bytes::from(format!("event: error\ndata: {payload}\n\n"))
        });
        let bus = gw
            .events
            .has_subscribers()
            .then(|| (gw.events.clone(), record.id));
        Body::from_stream(relay_sse(
            upstream,
            gw.config.sse_keepalive(),
            bus,
            error_event,
            guard,
        ))
    } else {
        Body::from_stream(relay_plain(upstream, guard))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
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

/// `GET /agents`: what this caller may reach.
pub async fn list_reachable(gw: Arc<Gateway>, headers: HeaderMap) -> Response {
    let principal = match bearer_token(&headers) {
        Ok(t) => match gw.verifier.verify(t).await {
            Ok(p) => p,
            Err(e) => return GatewayError::Unauthenticated(e).into_response(),
        },
        Err(e) => return GatewayError::Unauthenticated(e).into_response(),
    };
    let snapshot = gw.registry.snapshot();
    let mut agents: Vec<Value> = snapshot
        .agents
        .values()
        .filter(|a| a.enabled)
        .filter(|a| {
            snapshot
                .permissions
                .granting_scope(&principal.scopes, &a.id)
                .is_some()
        })
        .map(|a| {
            let url = gw.agent_url(&a.id);
            json!({
                "id": a.id,
                "name": a.name,
                "description": a.description,
                "url": url,
                "card_url": format!("{url}/.well-known/agent-card.json"),
            })
        })
        .collect();
    agents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    (StatusCode::OK, axum::Json(json!({ "agents": agents }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Err(AuthError::Missing));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer_token(&h), Ok("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc"),
        );
        assert!(bearer_token(&h).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer_token(&h).is_err());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer def"),
        );
        assert!(bearer_token(&h).is_err());
    }

    #[test]
    fn rpc_meta_reads_id_and_method() {
        let m = rpc_meta(
            br#"{"jsonrpc":"2.0","id":"a1","method":"SendMessage"}"#,
            true,
        );
        assert_eq!(m.id, json!("a1"));
        assert_eq!(m.method.as_deref(), Some("SendMessage"));
        assert_eq!(rpc_meta(b"{\"id\":1", false).id, Value::Null);
        assert_eq!(rpc_meta(b"not json", true).id, Value::Null);
    }
}
