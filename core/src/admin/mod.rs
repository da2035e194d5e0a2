//! The admin API under `/admin`, on the gateway's own listener: the registry
//! (agents, permissions, secrets) edited over HTTP, the live traffic stream
//! and the API's OpenAPI document. Every route needs a token carrying the
//! admin scope ([`GatewayConfig::admin_scope`](crate::GatewayConfig)); each
//! call leaves one audit line naming the client. One file per resource.

pub mod agents;
pub mod openapi;
pub mod permissions;
pub mod refresh;
pub mod secrets;
pub mod traffic;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::auth::{authenticate, Principal};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::registry::StoreError;

/// The admin routes, to nest under `/admin`. The gate runs before every one
/// of them, unknown ones included, so nothing under `/admin` answers
/// without the admin scope.
pub fn router(gw: &Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/agents", get(agents::list))
        .route(
            "/agents/{id}",
            get(agents::get)
                .put(agents::put)
                .patch(agents::patch)
                .delete(agents::delete),
        )
        .route("/agents/{id}/refresh", post(agents::refresh))
        .route(
            "/permissions",
            get(permissions::list)
                .put(permissions::put)
                .delete(permissions::delete),
        )
        .route("/secrets", get(secrets::list))
        // Secret names hold `/` (Secrets Manager paths): the rest of the path.
        .route(
            "/secrets/{*name}",
            put(secrets::put).delete(secrets::delete),
        )
        .route("/traffic", get(traffic::stream))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { GatewayError::NotFound("no such admin route".into()) })
        .layer(middleware::from_fn_with_state(gw.clone(), gate))
}

/// The admin caller, put in the request's extensions by the gate.
#[derive(Clone)]
pub struct AdminCaller(pub Arc<Principal>);

/// Authenticates, requires the admin scope, and writes the call's one audit
/// line (client, method, path, status), refusals included.
async fn gate(State(gw): State<Arc<Gateway>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The full path: inside the nested router the URI lost its `/admin`.
    let path = req.extensions().get::<OriginalUri>().map_or_else(
        || format!("/admin{}", req.uri().path()),
        |u| u.path().to_owned(),
    );
    let (client, response) = match admit(&gw, req.headers()).await {
        Ok(principal) => {
            let client = principal.client_id.clone();
            req.extensions_mut().insert(AdminCaller(principal));
            (client, next.run(req).await)
        }
        Err((client, e)) => (client, e.into_response()),
    };
    tracing::info!(
        target: "switchboard::audit",
        admin = true,
        client = %client,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    response
}

/// The caller when its token is good and carries the admin scope; else the
/// refusal, with the client id when the token was good.
async fn admit(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<Arc<Principal>, (String, GatewayError)> {
    let principal = authenticate(&gw.verifier, headers)
        .await
        .map_err(|e| ("-".to_owned(), GatewayError::from(e)))?;
    let scope = &gw.config.admin_scope;
    if principal.scopes.iter().any(|s| s == scope) {
        Ok(principal)
    } else {
        Err((
            principal.client_id.clone(),
            GatewayError::AdminScopeRequired(scope.clone()),
        ))
    }
}

/// A store error as the admin API answers it: a missing key is 404, a lost
/// conditional write 412, the rest as on the request path.
pub(crate) fn store_error(e: StoreError) -> GatewayError {
    match e {
        StoreError::NotFound(_) => GatewayError::NotFound(e.to_string()),
        StoreError::Conflict(m) => GatewayError::PreconditionFailed(format!(
            "the record changed meanwhile ({m}); read it again and retry"
        )),
        other => other.into(),
    }
}

/// A JSON body, or a 400 naming the field at fault.
pub(crate) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            GatewayError::BadRequest(format!("invalid body: {}", e.inner()))
        } else {
            GatewayError::BadRequest(format!("{path}: {}", e.inner()))
        }
    })?;
    de.end()
        .map_err(|e| GatewayError::BadRequest(format!("invalid body: {e}")))?;
    Ok(value)
}

/// What the caller's `If-Match` / `If-None-Match` asks of the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// No condition: last writer wins.
    None,
    /// `If-Match: "N"`: only if the stored version is N.
    Version(u64),
    /// `If-Match: *`: only if the record exists.
    Exists,
    /// `If-None-Match: *`: only if it does not.
    Absent,
}

/// Reads the request's precondition; 400 when a header cannot be read.
pub(crate) fn precondition(headers: &HeaderMap) -> Result<Precondition, GatewayError> {
    let text = |name: header::HeaderName| -> Result<Option<String>, GatewayError> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str().map(|s| s.trim().to_owned()).map_err(|_| {
                    GatewayError::BadRequest(format!("{name}: not a readable header value"))
                })
            })
            .transpose()
    };
    if let Some(v) = text(header::IF_NONE_MATCH)? {
        return if v == "*" {
            Ok(Precondition::Absent)
        } else {
            Err(GatewayError::BadRequest(
                "if-none-match: only * is supported (create only)".into(),
            ))
        };
    }
    match text(header::IF_MATCH)? {
        None => Ok(Precondition::None),
        Some(v) if v == "*" => Ok(Precondition::Exists),
        Some(v) => v
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse()
            .map(Precondition::Version)
            .map_err(|_| {
                GatewayError::BadRequest(format!(
                    "if-match: {v:?} is not an ETag this API gave out (\"N\", the record's version)"
                ))
            }),
    }
}

/// The `ETag` of a record at `version`.
pub(crate) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// After a registry write: the request path sees it on the next request
/// (the cache reloads now, discovery re-indexes from it) and no cached
/// backend credential outlives it.
pub(crate) async fn after_write(gw: &Gateway) {
    gw.backend_auth.clear();
    if let Err(e) = gw.registry.reload().await {
        tracing::warn!(error = %e, "registry reload after an admin write failed; the poller will catch up");
    }
}
