//! The guarded agent's check: a bearer token from the local issuer carrying
//! the required scope, else 401 or 403 with a JSON-RPC error and a
//! `WWW-Authenticate` challenge.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchboard_core::auth::jwt::{AuthError, Verifier};

use super::model::Wire;

pub(super) struct Guard {
    pub(super) verifier: Arc<Verifier>,
    pub(super) scope: String,
}

/// Why the guarded agent turned a call away.
pub(super) enum Denied {
    Unauthenticated(AuthError),
    MissingScope(String),
}

impl Guard {
    pub(super) async fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(Denied::Unauthenticated(AuthError::Missing))?;
        let principal = self
            .verifier
            .verify(token)
            .await
            .map_err(Denied::Unauthenticated)?;
        if principal.scopes.contains(&self.scope) {
            Ok(())
        } else {
            Err(Denied::MissingScope(self.scope.clone()))
        }
    }
}

impl Denied {
    pub(super) fn into_response(self, id: &Value, wire: Wire) -> Response {
        let (status, code, reason, message, challenge) = match &self {
            Denied::Unauthenticated(e) => {
                let reason = match e {
                    AuthError::Missing => "TOKEN_MISSING",
                    AuthError::Expired => "TOKEN_EXPIRED",
                    _ => "TOKEN_INVALID",
                };
                let challenge = match e {
                    AuthError::Missing => "Bearer realm=\"guarded-agent\"".to_owned(),
                    other => format!(
                        "Bearer realm=\"guarded-agent\", error=\"invalid_token\", error_description=\"{}\"",
                        other.to_string().replace(['"', '\\', '\r', '\n'], "'")
                    ),
                };
                (
                    StatusCode::UNAUTHORIZED,
                    -32050,
                    reason,
                    format!("guarded agent: {e}"),
                    challenge,
                )
            }
            Denied::MissingScope(scope) => (
                StatusCode::FORBIDDEN,
                -32051,
                "INSUFFICIENT_SCOPE",
                format!("guarded agent: the token lacks the scope {scope}"),
                format!(
                    "Bearer realm=\"guarded-agent\", error=\"insufficient_scope\", scope=\"{}\"",
                    scope.replace(['"', '\\'], "'")
                ),
            ),
        };
        let mut error = json!({ "code": code, "message": message });
        if wire == Wire::V1 {
            error["data"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "a2a-protocol.org",
                "metadata": {},
            }]);
        }
        let body = json!({ "jsonrpc": "2.0", "id": id, "error": error });
        let mut response = (status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}
