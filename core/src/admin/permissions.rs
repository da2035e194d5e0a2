//! `/admin/permissions`: which agents each scope reaches. Scopes hold `/`,
//! so they travel in the body, not the path.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{after_write, json_body, store_error};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::registry::{validate_permission, Permission};

/// `GET /admin/permissions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionList {
    /// Every scope with what it grants, sorted by scope.
    pub permissions: Vec<Permission>,
}

/// `PUT /admin/permissions`: the scope's whole list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeGrant {
    /// The OAuth2 scope.
    pub scope: String,
    /// Agent ids (or `*`) it reaches from now on; empty removes the scope.
    pub agents: Vec<String>,
}

/// `DELETE /admin/permissions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeRevoke {
    /// The OAuth2 scope.
    pub scope: String,
    /// Agent ids to take away; left out, the whole scope goes.
    #[serde(default)]
    pub agents: Option<Vec<String>>,
}

/// The agents `scope` grants today.
async fn granted(gw: &Gateway, scope: &str) -> Result<Option<BTreeSet<String>>, GatewayError> {
    let all = gw.stores.permissions.list().await.map_err(store_error)?;
    Ok(all.into_iter().find(|p| p.scope == scope).map(|p| p.agents))
}

/// Every permission.
#[utoipa::path(get, path = "/admin/permissions", tag = "permissions",
    responses((status = 200, description = "Every scope", body = PermissionList)))]
pub async fn list(State(gw): State<Arc<Gateway>>) -> Result<Json<PermissionList>, GatewayError> {
    let permissions = gw.stores.permissions.list().await.map_err(store_error)?;
    Ok(Json(PermissionList { permissions }))
}

/// Replaces one scope's list of agents.
#[utoipa::path(put, path = "/admin/permissions", tag = "permissions",
    request_body = ScopeGrant,
    responses((status = 200, description = "What the scope grants now", body = Permission),
        (status = 400, description = "The scope or an agent id is invalid; nothing was written")))]
pub async fn put(State(gw): State<Arc<Gateway>>, body: Bytes) -> Result<Response, GatewayError> {
    let grant: ScopeGrant = json_body(&body)?;
    validate_permission(&grant.scope, &grant.agents).map_err(GatewayError::BadRequest)?;
    let wanted: BTreeSet<String> = grant.agents.into_iter().collect();
    let current = granted(&gw, &grant.scope).await?.unwrap_or_default();
    let add: Vec<String> = wanted.difference(&current).cloned().collect();
    let remove: Vec<String> = current.difference(&wanted).cloned().collect();
    let store = &gw.stores.permissions;
    if !add.is_empty() {
        store.grant(&grant.scope, &add).await.map_err(store_error)?;
    }
    if !remove.is_empty() {
        store
            .revoke(&grant.scope, &remove)
            .await
            .map_err(store_error)?;
    }
    after_write(&gw).await;
    Ok((
        StatusCode::OK,
        Json(Permission {
            scope: grant.scope,
            agents: wanted,
        }),
    )
        .into_response())
}

/// Takes agents (or the whole scope) away.
#[utoipa::path(delete, path = "/admin/permissions", tag = "permissions",
    request_body = ScopeRevoke,
    responses((status = 204, description = "Revoked"),
        (status = 400, description = "The scope or an agent id is invalid"),
        (status = 404, description = "No such scope")))]
pub async fn delete(State(gw): State<Arc<Gateway>>, body: Bytes) -> Result<Response, GatewayError> {
    let revoke: ScopeRevoke = json_body(&body)?;
    let named = revoke.agents.clone().unwrap_or_default();
    validate_permission(&revoke.scope, &named).map_err(GatewayError::BadRequest)?;
    let current = granted(&gw, &revoke.scope)
        .await?
        .ok_or_else(|| GatewayError::NotFound(format!("no scope {}", revoke.scope)))?;
    let agents = match revoke.agents {
        Some(agents) => agents,
        None => current.into_iter().collect(),
    };
    gw.stores
        .permissions
        .revoke(&revoke.scope, &agents)
        .await
        .map_err(store_error)?;
    after_write(&gw).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
