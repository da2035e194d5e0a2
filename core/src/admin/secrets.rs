//! `/admin/secrets`: backend credentials, write-only. No route returns a
//! value, no error quotes one, and a write takes effect on the next request
//! (the cached backend credentials are dropped).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{after_write, store_error};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::registry::{validate_secret_name, validate_secret_value, BackendAuth, Secret};

/// `PUT /admin/secrets/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value. Written, never read back.
    #[schema(write_only)]
    pub value: String,
}

/// One secret as listed: its name and who uses it, never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretInfo {
    /// Name (or ARN).
    pub name: String,
    /// Agents whose backend auth reads it.
    pub agents: Vec<String>,
    /// Whether the store holds it (agents may name one that is missing).
    pub exists: bool,
}

/// `GET /admin/secrets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    /// Sorted by name.
    pub secrets: Vec<SecretInfo>,
}

fn checked_name(name: &str) -> Result<(), GatewayError> {
    validate_secret_name(name).map_err(|e| GatewayError::BadRequest(format!("name: {e}")))
}

/// Secret names, each with the agents that use it.
#[utoipa::path(get, path = "/admin/secrets", tag = "secrets",
    responses((status = 200, description = "Names only", body = SecretList)))]
pub async fn list(State(gw): State<Arc<Gateway>>) -> Result<Json<SecretList>, GatewayError> {
    let names = gw.stores.secrets.list_names().await.map_err(store_error)?;
    let agents = gw.stores.agents.list().await.map_err(store_error)?;
    let mut by_name: BTreeMap<String, SecretInfo> = names
        .into_iter()
        .map(|name| {
            let info = SecretInfo {
                name: name.clone(),
                agents: Vec::new(),
                exists: true,
            };
            (name, info)
        })
        .collect();
    for agent in agents {
        let secret = match &agent.auth {
            BackendAuth::None => continue,
            BackendAuth::Header { secret, .. } | BackendAuth::OAuth2 { secret, .. } => secret,
        };
        by_name
            .entry(secret.clone())
            .or_insert_with(|| SecretInfo {
                name: secret.clone(),
                agents: Vec::new(),
                exists: false,
            })
            .agents
            .push(agent.id);
    }
    Ok(Json(SecretList {
        secrets: by_name.into_values().collect(),
    }))
}

/// Creates or replaces a secret; the next request to an agent using it
/// sends the new value.
#[utoipa::path(put, path = "/admin/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name (or ARN)")),
    request_body = SecretValue,
    responses((status = 204, description = "Stored"),
        (status = 400, description = "The name or the value is invalid")))]
pub async fn put(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, GatewayError> {
    checked_name(&name)?;
    // Parse errors are not passed on: serde's messages may quote the value.
    let SecretValue { value } = serde_json::from_slice(&body).map_err(|_| {
        GatewayError::BadRequest(
            "value: the body must be {\"value\": \"…\"}, the value a string".into(),
        )
    })?;
    validate_secret_value(&value).map_err(|e| GatewayError::BadRequest(format!("value: {e}")))?;
    gw.stores
        .secrets
        .put(&name, &Secret::new(value))
        .await
        .map_err(store_error)?;
    after_write(&gw).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes a secret.
#[utoipa::path(delete, path = "/admin/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name (or ARN)")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such secret")))]
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Result<Response, GatewayError> {
    checked_name(&name)?;
    gw.stores.secrets.delete(&name).await.map_err(store_error)?;
    after_write(&gw).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
