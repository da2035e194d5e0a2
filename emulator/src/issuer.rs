//! A local OAuth2 issuer that plays Amazon Cognito: client-credentials tokens
//! shaped like Cognito access tokens, signed RS256 with a published JWKS.
//!
//! Endpoints (see [`Issuer::router`]):
//!
//! * `POST /oauth2/token`: `grant_type=client_credentials`, client
//!   authentication by HTTP Basic (`client_secret_basic`) or form fields
//!   (`client_secret_post`), optional space-separated `scope`. Errors follow
//!   RFC 6749 §5.2.
//! * `GET /.well-known/jwks.json`
//! * `GET /.well-known/openid-configuration`

mod secret;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use serde_json::{json, Value};
use switchboard_core::registry::{
    validate_client_id, validate_scope, ClientRecord, ClientStore, StoreError,
};

use crate::keys::SigningKey;

pub use secret::{generate_secret, hash_secret, verify_secret};

/// Lifetime of tokens from the token endpoint (Cognito's default).
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Path of the token endpoint under the issuer URL.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Path of the key set under the issuer URL.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the discovery document under the issuer URL.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The issuer: a signing key and the clients allowed to ask for tokens.
/// Cloning is cheap.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

struct Inner {
    key: SigningKey,
    clients: Arc<dyn ClientStore>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// Claims of an access token, in Cognito's shape (no `aud`).
#[derive(Debug, Serialize)]
struct AccessClaims<'a> {
    sub: &'a str,
    client_id: &'a str,
    token_use: &'static str,
    scope: String,
    auth_time: u64,
    iss: &'a str,
    exp: u64,
    iat: u64,
    version: u32,
    jti: String,
}

impl Issuer {
    /// Loads the signing key from `data_dir` (creating one on first run) and
    /// serves tokens to the clients in `clients`.
    pub fn open(data_dir: &Path, clients: Arc<dyn ClientStore>) -> anyhow::Result<Issuer> {
        let key = SigningKey::load_or_create(data_dir)?;
        Ok(Issuer {
            inner: Arc::new(Inner { key, clients }),
        })
    }

    /// The token, key-set and discovery endpoints. `issuer_url` is the public
    /// base address (`http://127.0.0.1:PORT`); it becomes the tokens' `iss`.
    pub fn router(&self, issuer_url: String) -> Router {
        let state = RouterState {
            issuer: self.clone(),
            issuer_url: Arc::from(normalize_issuer_url(&issuer_url)),
        };
        Router::new()
            .route(TOKEN_PATH, post(token_endpoint))
            .route(JWKS_PATH, get(jwks_endpoint))
            .route(DISCOVERY_PATH, get(discovery_endpoint))
            .with_state(state)
    }

    /// Signs a token for `client_id` with `scopes`, without asking for a
    /// secret: for operators minting test tokens. The client need not exist.
    pub fn mint(
        &self,
        issuer_url: &str,
        client_id: &str,
        scopes: &[String],
        ttl: Duration,
    ) -> anyhow::Result<String> {
        validate_client_id(client_id).map_err(anyhow::Error::msg)?;
        for scope in scopes {
            validate_scope(scope).map_err(anyhow::Error::msg)?;
        }
        anyhow::ensure!(!ttl.is_zero(), "the token lifetime must be more than zero");
        self.sign(&normalize_issuer_url(issuer_url), client_id, scopes, ttl)
    }

    /// The public key set: `{"keys": [jwk]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.inner.key.jwk()] })
    }

    /// The id of the signing key (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        self.inner.key.kid()
    }

    /// Registers a client allowed to request `scopes` and returns its new
    /// secret. The secret is stored only as a salted hash: this is the one
    /// time it can be shown.
    pub async fn create_client(
        &self,
        client_id: &str,
        scopes: &[String],
    ) -> anyhow::Result<String> {
        validate_client_id(client_id).map_err(anyhow::Error::msg)?;
        for scope in scopes {
            validate_scope(scope).map_err(anyhow::Error::msg)?;
        }
        let mut allowed: Vec<String> = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if !allowed.contains(scope) {
                allowed.push(scope.clone());
            }
        }
        let secret = generate_secret();
        let record = ClientRecord {
            client_id: client_id.to_owned(),
            secret_hash: hash_secret(&secret),
            allowed_scopes: allowed,
            created_at: now_millis(),
        };
        match self.inner.clients.create(record).await {
            Ok(()) => Ok(secret),
            Err(StoreError::Conflict(_)) => {
                anyhow::bail!("a client with id '{client_id}' already exists")
            }
            Err(e) => Err(e).with_context(|| format!("cannot create client '{client_id}'")),
        }
    }

    fn sign(
        &self,
        issuer_url: &str,
        client_id: &str,
        scopes: &[String],
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let now = now_secs();
        let claims = AccessClaims {
            sub: client_id,
            client_id,
            token_use: "access",
            scope: scopes.join(" "),
            auth_time: now,
            iss: issuer_url,
            exp: now.saturating_add(ttl.as_secs().max(1)),
            iat: now,
            version: 2,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid().to_owned());
        // Cognito's access tokens carry only `kid` and `alg`.
        header.typ = None;
        jsonwebtoken::encode(&header, &claims, self.inner.key.encoding_key())
            .context("cannot sign the token")
    }

    /// The whole client-credentials exchange, from request headers and body
    /// to the token response.
    async fn exchange(
        &self,
        issuer_url: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, OAuthError> {
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err(OAuthError::invalid_request(
                    "the body must be application/x-www-form-urlencoded",
                ));
            }
        }
        let form = Form::parse(body)?;
        match form.get("grant_type") {
            None => return Err(OAuthError::invalid_request("grant_type is missing")),
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("grant_type '{other}' is not supported; use client_credentials"),
                ))
            }
        }
        let credentials = client_credentials(headers, &form)?;
        let record = match self.inner.clients.get(&credentials.client_id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Err(OAuthError::invalid_client()),
            Err(e) => {
                tracing::error!(error = %e, "client store failed during a token request");
                return Err(OAuthError::new(
                    ErrorCode::ServerError,
                    "the client store is unavailable",
                ));
            }
        };
        let secrets_match = credentials
            .secrets
            .iter()
            .all(|secret| verify_secret(secret, &record.secret_hash));
        if !secrets_match {
            return Err(OAuthError::invalid_client());
        }
        let scopes = granted_scopes(form.get("scope"), &record.allowed_scopes)?;
        let token = self
            .sign(issuer_url, &record.client_id, &scopes, TOKEN_TTL)
            .map_err(|e| {
                tracing::error!(error = %e, "cannot sign a token");
                OAuthError::new(ErrorCode::ServerError, "cannot sign the token")
            })?;
        Ok(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL.as_secs(),
        }))
    }
}

/// The scopes a token gets: the requested ones if all are allowed, or every
/// allowed scope when none was requested.
fn granted_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let requested: Vec<&str> = requested
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if requested.is_empty() {
        return Ok(allowed.to_vec());
    }
    let mut granted: Vec<String> = Vec::with_capacity(requested.len());
    for scope in requested {
        if !allowed.iter().any(|a| a == scope) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scope '{scope}' is not allowed for this client"),
            ));
        }
        if !granted.iter().any(|g| g == scope) {
            granted.push(scope.to_owned());
        }
    }
    Ok(granted)
}

/// Who the caller says it is, and every secret it presented.
struct Credentials {
    client_id: String,
    secrets: Vec<String>,
}

/// Reads client authentication from the `Authorization: Basic` header and/or
/// the form's `client_id` / `client_secret`.
fn client_credentials(headers: &HeaderMap, form: &Form) -> Result<Credentials, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(parse_basic(value).ok_or_else(OAuthError::invalid_client)?),
    };
    let form_id = form.get("client_id");
    let form_secret = form.get("client_secret");
    match (basic, form_id) {
        (Some((id, secret)), form_id) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            let mut secrets = vec![secret];
            secrets.extend(form_secret.map(str::to_owned));
            Ok(Credentials {
                client_id: id,
                secrets,
            })
        }
        (None, Some(id)) => match form_secret {
            Some(secret) => Ok(Credentials {
                client_id: id.to_owned(),
                secrets: vec![secret.to_owned()],
            }),
            None => Err(OAuthError::invalid_client()),
        },
        (None, None) => Err(OAuthError::invalid_client()),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    if id.is_empty() {
        return None;
    }
    Some((id, form_decode(secret)?))
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A form body in which no parameter appears twice (RFC 6749 §3.2).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{name}' appears more than once"
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Form(pairs))
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// The error codes of RFC 6749 §5.2 this issuer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    ServerError,
}

impl ErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::ServerError => "server_error",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A token-endpoint error response.
#[derive(Debug)]
struct OAuthError {
    code: ErrorCode,
    description: String,
}

impl OAuthError {
    fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// The same answer for an unknown client, a wrong secret and missing
    /// authentication, so callers cannot probe which client ids exist.
    fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        }));
        let mut response = (self.code.status(), no_store_headers(), body).into_response();
        if self.code == ErrorCode::InvalidClient {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"switchboard\""),
            );
        }
        response
    }
}

fn no_store_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

#[derive(Clone)]
struct RouterState {
    issuer: Issuer,
    issuer_url: Arc<str>,
}

async fn token_endpoint(
    State(state): State<RouterState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state
        .issuer
        .exchange(&state.issuer_url, &headers, &body)
        .await
    {
        Ok(token) => (StatusCode::OK, no_store_headers(), Json(token)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn jwks_endpoint(State(state): State<RouterState>) -> Json<Value> {
    Json(state.issuer.jwks())
}

async fn discovery_endpoint(State(state): State<RouterState>) -> Json<Value> {
    let base = &*state.issuer_url;
    Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "claims_supported": [
            "sub", "client_id", "scope", "token_use", "iss", "exp", "iat", "auth_time", "jti", "version"
        ],
    }))
}

/// The issuer URL without a trailing slash, as Cognito writes `iss`.
fn normalize_issuer_url(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
