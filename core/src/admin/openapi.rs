//! `GET /admin/openapi.json`: the admin API described as OpenAPI 3.1,
//! generated from the handlers and the types they take and return.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{agents, permissions, secrets, traffic};
use crate::registry::{AgentRecord, BackendAuth, Permission};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard admin API",
        description = "The gateway's registry, permissions, secrets and live traffic. Every route needs a bearer token with the admin scope (`switchboard/admin` unless configured otherwise): 401 without a token, 403 ADMIN_SCOPE_REQUIRED without the scope."
    ),
    paths(
        agents::list,
        agents::get,
        agents::put,
        agents::patch,
        agents::delete,
        agents::refresh,
        permissions::list,
        permissions::put,
        permissions::delete,
        secrets::list,
        secrets::put,
        secrets::delete,
        traffic::stream,
        document,
    ),
    components(schemas(
        AgentRecord,
        BackendAuth,
        Permission,
        agents::AgentList,
        agents::AgentPatch,
        permissions::PermissionList,
        permissions::ScopeGrant,
        permissions::ScopeRevoke,
        secrets::SecretValue,
        secrets::SecretInfo,
        secrets::SecretList,
    )),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
pub struct AdminApi;

/// Adds the bearer-token security scheme.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/admin/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}
