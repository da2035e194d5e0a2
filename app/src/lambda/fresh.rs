//! Freshness on the request: a Lambda execution environment is frozen
//! between invocations, and the registry poller with it. When an
//! environment thaws (or simply sat idle), the cached registry may be older
//! than the bound; the request itself then asks the store whether anything
//! changed (the generation numbers; a reload only when they moved) before it
//! is decided. Nothing is decided from a view older than the bound: when the
//! store does not answer, the request is refused with 503 (fail closed),
//! shaped like every other refusal for its binding.

use std::time::Duration;

use axum::http::Method;
use axum::response::Response;
use serde_json::Value;
use switchboard_core::error::{ErrorStyle, GatewayError};
use switchboard_core::proxy::{jsonrpc, path::parse_agent_path};
use switchboard_core::Gateway;

/// Paths that answer without the registry.
fn needs_registry(path: &str) -> bool {
    !matches!(path, "/healthz" | "/metrics")
}

/// How a refusal is shaped: a JSON-RPC error for a JSON-RPC call (its id is
/// unknown before the body is read, so `null`), else REST.
fn style(method: &Method, path: &str) -> ErrorStyle {
    match parse_agent_path(path) {
        Ok(route) if jsonrpc::is_jsonrpc(method, route.rest) => ErrorStyle::JsonRpc(Value::Null),
        _ => ErrorStyle::Rest,
    }
}

/// Makes sure a request for `method path` is decided from a registry view
/// at most `max_age` old: `None` to go on, or the refusal to answer.
pub async fn ensure(
    gw: &Gateway,
    max_age: Duration,
    method: &Method,
    path: &str,
) -> Option<Response> {
    if !needs_registry(path) || gw.registry.unconfirmed_for() <= max_age {
        return None;
    }
    match gw.registry.refresh().await {
        Ok(reloaded) => {
            tracing::debug!(reloaded, "registry checked on the request");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "registry check failed; refusing requests until the store answers");
            Some(
                GatewayError::Unavailable("the registry store did not answer".to_owned())
                    .into_response_with(&style(method, path)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_no_registry_and_refusals_keep_their_shape() {
        let shaped_as_jsonrpc = |m: Method, p: &str| matches!(style(&m, p), ErrorStyle::JsonRpc(_));
        assert!(!needs_registry("/healthz"));
        assert!(needs_registry("/readyz"));
        assert!(needs_registry("/agents"));
        assert!(shaped_as_jsonrpc(Method::POST, "/agents/echo"));
        assert!(!shaped_as_jsonrpc(Method::GET, "/agents/echo/v1/tasks/1"));
        assert!(!shaped_as_jsonrpc(Method::GET, "/discover"));
    }
}
