//! Every error a caller can see, and the one place that turns it into an
//! HTTP response (status, headers and body).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::auth::{AuthError, Denied};
use crate::registry::StoreError;

/// Why the gateway answered instead of the agent.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No, bad or expired token.
    #[error("{0}")]
    Unauthenticated(#[from] AuthError),
    /// Valid token, agent not permitted.
    #[error("{0}")]
    Forbidden(String),
    /// Valid token without the admin scope, on the admin API.
    #[error("this route needs a token with scope {0}")]
    AdminScopeRequired(String),
    /// An `If-Match` (or `If-None-Match`) the stored record no longer
    /// matches: someone else wrote it first.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Unknown or disabled agent, or no such route.
    #[error("{0}")]
    NotFound(String),
    /// Over the per-minute limit.
    #[error("rate limit of {limit} requests per minute reached; retry in {retry_after} s")]
    RateLimited {
        /// The limit in force.
        limit: u64,
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// Body over the configured limit.
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(u64),
    /// Malformed request the gateway itself must judge (query parameters, a
    /// JSON-RPC envelope that is not a single request, and the like).
    #[error("{0}")]
    BadRequest(String),
    /// A JSON-RPC request body that is not JSON (JSON-RPC "Parse error").
    #[error("{0}")]
    ParseError(String),
    /// A discovery query over the longest accepted.
    #[error("the query is {len} bytes long; at most {max} bytes are accepted")]
    QueryTooLong {
        /// The query's length in bytes.
        len: usize,
        /// The most accepted.
        max: usize,
    },
    /// Backend refused or reset the connection. The detail is logged, not sent.
    #[error("the agent's backend could not be reached")]
    BackendUnreachable(String),
    /// Backend answered with something that is not HTTP we can pass on.
    #[error("the agent's backend sent an invalid response")]
    BackendBadResponse(String),
    /// Backend did not answer in time.
    #[error("the agent's backend did not answer in time")]
    BackendTimeout,
    /// The gateway could not obtain credentials for the backend.
    #[error("backend credentials unavailable: {0}")]
    BackendAuth(String),
    /// A store (registry, counters, secrets) is unavailable: fail closed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for GatewayError {
    /// A record the store refuses is the caller's mistake (400); every other
    /// store failure fails closed (503), naming no store internals.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(_) => GatewayError::BadRequest(e.to_string()),
            StoreError::Unavailable(_) | StoreError::Corrupt(_) | StoreError::Backend { .. } => {
                GatewayError::Unavailable("a store is unavailable".into())
            }
            other => GatewayError::Unavailable(other.to_string()),
        }
    }
}

impl From<Denied> for GatewayError {
    fn from(e: Denied) -> Self {
        GatewayError::Forbidden(e.0)
    }
}

impl GatewayError {
    /// A failed backend call, as the caller is told of it: no answer in
    /// time, no connection, or an answer that is not HTTP to pass on. The
    /// detail (without the URL) is kept for the log, never sent.
    pub fn from_backend(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            GatewayError::BackendTimeout
        } else if e.is_connect() {
            GatewayError::BackendUnreachable(e.without_url().to_string())
        } else {
            GatewayError::BackendBadResponse(e.without_url().to_string())
        }
    }
}

/// The shape an error body takes, chosen from the request.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorStyle {
    /// JSON-RPC binding: `{"jsonrpc":"2.0","id":…,"error":{code,message,data:[ErrorInfo]}}`.
    JsonRpc(Value),
    /// Everything else: `google.rpc.Status` JSON, `{"error":{code,status,message,details}}`.
    Rest,
}

impl GatewayError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) | GatewayError::AdminScopeRequired(_) => {
                StatusCode::FORBIDDEN
            }
            GatewayError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::PayloadTooLarge(_) | GatewayError::QueryTooLong { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            GatewayError::BadRequest(_) | GatewayError::ParseError(_) => StatusCode::BAD_REQUEST,
            GatewayError::BackendUnreachable(_)
            | GatewayError::BackendBadResponse(_)
            | GatewayError::BackendAuth(_) => StatusCode::BAD_GATEWAY,
            GatewayError::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `google.rpc.Code` name for the status.
    pub fn rpc_status(&self) -> &'static str {
        match self {
            GatewayError::Unauthenticated(_) => "UNAUTHENTICATED",
            GatewayError::Forbidden(_) | GatewayError::AdminScopeRequired(_) => "PERMISSION_DENIED",
            GatewayError::PreconditionFailed(_) => "FAILED_PRECONDITION",
            GatewayError::NotFound(_) => "NOT_FOUND",
            GatewayError::RateLimited { .. }
            | GatewayError::PayloadTooLarge(_)
            | GatewayError::QueryTooLong { .. } => "RESOURCE_EXHAUSTED",
            GatewayError::BadRequest(_) | GatewayError::ParseError(_) => "INVALID_ARGUMENT",
            GatewayError::BackendUnreachable(_)
            | GatewayError::BackendBadResponse(_)
            | GatewayError::BackendAuth(_)
            | GatewayError::Unavailable(_) => "UNAVAILABLE",
            GatewayError::BackendTimeout => "DEADLINE_EXCEEDED",
        }
    }

    /// Machine-readable reason, the `ErrorInfo.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::Unauthenticated(AuthError::Missing) => "TOKEN_MISSING",
            GatewayError::Unauthenticated(AuthError::Expired) => "TOKEN_EXPIRED",
            GatewayError::Unauthenticated(_) => "TOKEN_INVALID",
            GatewayError::Forbidden(_) => "AGENT_NOT_PERMITTED",
            GatewayError::AdminScopeRequired(_) => "ADMIN_SCOPE_REQUIRED",
            GatewayError::PreconditionFailed(_) => "VERSION_MISMATCH",
            GatewayError::NotFound(_) => "AGENT_NOT_FOUND",
            GatewayError::RateLimited { .. } => "RATE_LIMITED",
            GatewayError::PayloadTooLarge(_) => "REQUEST_BODY_TOO_LARGE",
            GatewayError::QueryTooLong { .. } => "QUERY_TOO_LONG",
            GatewayError::BadRequest(_) => "INVALID_REQUEST",
            GatewayError::ParseError(_) => "PARSE_ERROR",
            GatewayError::BackendUnreachable(_) => "BACKEND_UNREACHABLE",
            GatewayError::BackendBadResponse(_) => "BACKEND_BAD_RESPONSE",
            GatewayError::BackendTimeout => "BACKEND_TIMEOUT",
            GatewayError::BackendAuth(_) => "BACKEND_CREDENTIALS_UNAVAILABLE",
            GatewayError::Unavailable(_) => "STORE_UNAVAILABLE",
        }
    }

    /// JSON-RPC error code. Gateway errors use the implementation-defined
    /// server range (-32050 … -32059), clear of A2A's own -32001 … -32009;
    /// a body that is not one JSON-RPC request gets JSON-RPC's own -32700
    /// (not JSON) or -32600 (not a valid request).
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            GatewayError::Unauthenticated(_) => -32050,
            GatewayError::Forbidden(_) | GatewayError::AdminScopeRequired(_) => -32051,
            GatewayError::PreconditionFailed(_) => -32059,
            GatewayError::NotFound(_) => -32052,
            GatewayError::RateLimited { .. } => -32053,
            GatewayError::PayloadTooLarge(_) | GatewayError::QueryTooLong { .. } => -32054,
            GatewayError::BadRequest(_) => -32600,
            GatewayError::ParseError(_) => -32700,
            GatewayError::BackendUnreachable(_) | GatewayError::BackendBadResponse(_) => -32055,
            GatewayError::BackendTimeout => -32056,
            GatewayError::BackendAuth(_) => -32057,
            GatewayError::Unavailable(_) => -32058,
        }
    }

    fn error_info(&self) -> Value {
        json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": self.reason(),
            "domain": "a2a-protocol.org",
            "metadata": { "httpStatus": self.status().as_u16().to_string() },
        })
    }

    /// The body for this error in the given style.
    pub fn body(&self, style: &ErrorStyle) -> Value {
        let message = self.to_string();
        match style {
            ErrorStyle::JsonRpc(id) => json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {
                    "code": self.jsonrpc_code(),
                    "message": message,
                    "data": [self.error_info()],
                },
            }),
            ErrorStyle::Rest => json!({
                "error": {
                    "code": self.status().as_u16(),
                    "status": self.rpc_status(),
                    "message": message,
                    "details": [self.error_info()],
                },
            }),
        }
    }

    /// Headers that belong with this error.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        match self {
            GatewayError::Unauthenticated(e) => {
                let value = match e {
                    AuthError::Missing => "Bearer".to_owned(),
                    _ => format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        header_text(&e.to_string())
                    ),
                };
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            GatewayError::RateLimited { limit, retry_after } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                h.insert("ratelimit-limit", HeaderValue::from(*limit));
                h.insert("ratelimit-remaining", HeaderValue::from(0u64));
                h.insert("ratelimit-reset", HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        h
    }

    /// The whole response.
    pub fn into_response_with(self, style: &ErrorStyle) -> Response {
        let status = self.status();
        let mut resp = (status, axum::Json(self.body(style))).into_response();
        resp.headers_mut().extend(self.headers());
        resp
    }
}

/// Text that can sit inside a quoted header parameter: printable ASCII
/// without `"` or `\` (others become `'` or `?`), at most
/// [`MAX_HEADER_TEXT`] characters. Error messages may quote what a caller
/// sent (a token's `kid`, its `client_id`); none of it may break the header.
fn header_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_HEADER_TEXT)
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    if s.chars().count() > MAX_HEADER_TEXT {
        out.push_str("...");
    }
    out
}

/// Longest `error_description` sent in `WWW-Authenticate`.
const MAX_HEADER_TEXT: usize = 200;

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.into_response_with(&ErrorStyle::Rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn jsonrpc_shape() {
        let e = GatewayError::Unauthenticated(AuthError::Expired);
        assert_eq!(
            e.body(&ErrorStyle::JsonRpc(json!(7))),
            json!({
                "jsonrpc": "2.0",
                "id": 7,
                "error": {
                    "code": -32050,
                    "message": "token has expired",
                    "data": [{
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "TOKEN_EXPIRED",
                        "domain": "a2a-protocol.org",
                        "metadata": {"httpStatus": "401"},
                    }],
                },
            })
        );
        assert_eq!(
            e.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"invalid_token\", error_description=\"token has expired\"")
        );
    }

    #[test]
    fn parse_errors_and_invalid_requests_use_jsonrpc_codes() {
        let e = GatewayError::ParseError("the body is not JSON".into());
        assert_eq!(
            (e.status(), e.jsonrpc_code(), e.reason()),
            (StatusCode::BAD_REQUEST, -32700, "PARSE_ERROR")
        );
        let e = GatewayError::BadRequest("batch requests are not supported".into());
        assert_eq!(
            (e.status(), e.jsonrpc_code(), e.reason()),
            (StatusCode::BAD_REQUEST, -32600, "INVALID_REQUEST")
        );
    }

    #[test]
    fn caller_text_cannot_break_the_challenge() {
        let kid = format!("\u{0435}\"\\\r\n{}", "k".repeat(500));
        let e = GatewayError::Unauthenticated(AuthError::UnknownKey(kid));
        let value = e.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(value.len() < 300, "{value}");
        assert!(
            value.starts_with(
                "Bearer error=\"invalid_token\", error_description=\"no signing key with kid '?'"
            ),
            "{value}"
        );
        let inner = &value["Bearer error=\"invalid_token\", error_description=\"".len()..];
        assert!(!inner[..inner.len() - 1].contains(['"', '\\']), "{value}");
        assert!(value.ends_with("...\""), "{value}");
    }

    #[test]
    fn backend_details_are_not_sent() {
        let e = GatewayError::BackendUnreachable("connect 10.0.0.7:8443 refused".into());
        let body = e.body(&ErrorStyle::Rest).to_string();
        assert!(!body.contains("10.0.0.7"), "{body}");
    }
}
