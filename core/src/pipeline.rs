//! The request path for a call to an agent (`/agents/{id}[/{rest}]`), read
//! top to bottom: each step is a function in a file named for it, returns
//! `Result<_, GatewayError>`, and never calls the next one. A refusal
//! becomes a response in one place, [`Record::refuse`], which also records
//! it.
//!
//! | step | file |
//! | --- | --- |
//! | route | [`crate::proxy::route`] |
//! | JSON-RPC envelope (body read ahead) | [`crate::proxy::jsonrpc`] |
//! | bearer token, authenticate | [`crate::auth::bearer`] |
//! | authorize | [`crate::auth::scopes`] |
//! | rate limit | [`crate::ratelimit`] |
//! | backend credentials | [`crate::proxy::backend_auth`] |
//! | upstream request | [`crate::proxy::upstream`] |
//! | relay (plain / SSE) | [`crate::proxy::relay`], [`crate::proxy::sse`] |
//! | audit record | [`crate::audit`] |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::Request;
use axum::response::Response;
use serde_json::Value;

use crate::audit::Record;
use crate::auth::{authenticate, authorize};
use crate::error::{ErrorStyle, GatewayError};
use crate::events::Direction;
use crate::gateway::Gateway;
use crate::proxy::path::AgentRoute;
use crate::proxy::upstream::Upstream;
use crate::proxy::{jsonrpc, relay, route, upstream};
use crate::ratelimit::Budget;

/// Handles one call to an agent; `target` is its parsed path.
pub async fn handle(
    gw: Arc<Gateway>,
    peer: Option<SocketAddr>,
    target: AgentRoute<'_>,
    req: Request<Body>,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let jsonrpc = jsonrpc::is_jsonrpc(&parts.method, target.rest);
    let (method, style) = if jsonrpc {
        ("?".to_owned(), ErrorStyle::JsonRpc(Value::Null))
    } else {
        (
            format!("{} /{}", parts.method, target.rest),
            ErrorStyle::Rest,
        )
    };
    let mut record = Record::begin(
        &gw.events,
        &gw.metrics,
        target.agent,
        method,
        style,
        started,
    );
    match forward(&gw, peer, &target, &parts, body, jsonrpc, &mut record).await {
        Ok((answer, budget)) => relay::respond(
            answer,
            &budget,
            record,
            &gw.events,
            gw.config.sse_keepalive(),
        ),
        Err(err) => record.refuse(err),
    }
}

/// The steps up to the backend's answer.
async fn forward(
    gw: &Gateway,
    peer: Option<SocketAddr>,
    target: &AgentRoute<'_>,
    parts: &Parts,
    body: Body,
    jsonrpc: bool,
    record: &mut Record,
) -> Result<(reqwest::Response, Budget), GatewayError> {
    // Decided by the path before the body is read, so no body changes it;
    // told after the token, so a caller without one learns that first.
    let routed = route::resolve(
        &gw.registry,
        target.agent,
        gw.config.registry_max_unconfirmed(),
    );
    let mut incoming = jsonrpc::read(parts, body, jsonrpc, gw.config.body_limit, record).await?;
    let principal = authenticate(&gw.verifier, &parts.headers).await?;
    record.authenticated(&principal.client_id);
    if let Some(body) = &incoming.prefix {
        gw.events
            .publish_body(record.id(), Direction::Request, body);
    }
    let route::Routed { snapshot, agent } = routed?;
    authorize(&snapshot.permissions, &principal.scopes, &agent.id)?;
    drop(snapshot);
    incoming.check()?;
    let limit = agent.rate_limit.unwrap_or(gw.config.default_rate_limit);
    let budget = gw
        .limiter
        .admit(&principal.client_id, &agent.id, limit.into(), now_secs())
        .await?;
    let credential = gw.backend_auth.header(&agent.id, &agent.auth).await?;
    let answer = upstream::send(
        Upstream {
            http: gw.backend_http(),
            public_url: &gw.public_url,
            body_limit: gw.config.body_limit,
            header_timeout: gw.config.header_timeout(),
        },
        &agent,
        target,
        parts,
        peer,
        credential,
        incoming,
    )
    .await?;
    Ok((answer, budget))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
