//! The router: the gateway's HTTP surface and its small handlers. Calls to
//! agents go down the request path in [`crate::pipeline`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};

use crate::auth::{authenticate, Principal};
use crate::error::{ErrorStyle, GatewayError};
use crate::gateway::Gateway;
use crate::pipeline;
use crate::proxy::card::{rewrite_card, CardContext};
use crate::proxy::path::parse_agent_path;

/// The axum router for the whole HTTP surface.
pub fn router(gw: &Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/agents", get(list_agents))
        .route("/agents/", get(list_agents))
        .route("/agents/{*rest}", any(agents))
        .route("/discover", get(discover))
        .nest("/admin", crate::admin::router(gw))
        .fallback(|| async { GatewayError::NotFound("no such route".into()).into_response() })
        .with_state(gw.clone())
}

impl Gateway {
    /// The axum router for the whole HTTP surface.
    pub fn router(self: &Arc<Self>) -> Router {
        router(self)
    }
}

/// Everything under `/agents/`: the agent's card, or a call to the agent.
async fn agents(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let path = req.uri().path().to_owned();
    let route = match parse_agent_path(&path) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(?e, %path, "not an agent route");
            return GatewayError::NotFound(format!("no agent at {path}"))
                .into_response_with(&ErrorStyle::Rest);
        }
    };
    if req.method() == Method::GET
        && matches!(
            route.rest,
            ".well-known/agent-card.json" | ".well-known/agent.json"
        )
    {
        return agent_card(&gw, route.agent)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    pipeline::handle(gw, peer, route, req).await
}

/// `GET /agents/{id}/.well-known/agent-card.json` (and `agent.json`): the
/// backend's card, rewritten to point at the gateway. No token needed.
async fn agent_card(gw: &Gateway, id: &str) -> Result<Response, GatewayError> {
    let snapshot = gw.registry.snapshot();
    let agent = snapshot
        .routable(id)
        .cloned()
        .ok_or_else(|| GatewayError::NotFound(format!("no agent {id}")))?;
    let scopes: Vec<String> = snapshot
        .permissions
        .scopes_granting(id)
        .into_iter()
        .map(str::to_owned)
        .collect();
    drop(snapshot);
    let card = gw.backend_card(&agent).await.inspect_err(|e| {
        tracing::warn!(agent = id, error = ?e, "agent card unavailable");
    })?;
    let gateway_url = gw.agent_url(id);
    let rewritten = rewrite_card(
        card,
        &CardContext {
            backend_url: &agent.url,
            gateway_url: &gateway_url,
            token_url: &gw.token_url,
            scopes: &scopes,
        },
    );
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "max-age=30")],
        axum::Json(rewritten),
    )
        .into_response())
}

/// The caller behind a request's bearer token, or the 401 to answer.
async fn caller(gw: &Gateway, headers: &HeaderMap) -> Result<Arc<Principal>, GatewayError> {
    Ok(authenticate(&gw.verifier, headers).await?)
}

/// `GET /agents`: what this caller may reach.
async fn list_agents(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let principal = match caller(&gw, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
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

/// `GET /discover?q=…&k=…`: agents ranked by meaning, among those this
/// caller may reach.
async fn discover(State(gw): State<Arc<Gateway>>, headers: HeaderMap, uri: Uri) -> Response {
    let principal = match caller(&gw, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let snapshot = gw.registry.snapshot();
    match crate::discovery::http::discover(
        &gw.discovery,
        &snapshot,
        &principal,
        uri.query(),
        &gw.public_url,
    )
    .await
    {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let store = gw.stores.agents.generation().await;
    let keys = if gw.verifier.key_count() > 0 {
        Ok(gw.verifier.key_count())
    } else {
        gw.verifier.prefetch().await
    };
    let ready = store.is_ok() && keys.is_ok();
    let body = json!({
        "ready": ready,
        "store": store.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
        "signing_keys": match &keys { Ok(n) => json!(n), Err(e) => json!(e.to_string()) },
        // Informational: discovery answers (lexically) even without its model.
        "discovery": gw.discovery.status(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.metrics.render(),
    )
        .into_response()
}
