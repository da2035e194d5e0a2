//! OAuth2 and OpenID Connect as a client, written once: the
//! client-credentials grant (RFC 6749 §4.4) and the issuer's discovery
//! document (`{issuer}/.well-known/openid-configuration`).
//!
//! The gateway fetches backend tokens with [`client_credentials`]
//! (`proxy::backend_auth`) and finds an issuer's `jwks_uri` with [`discover`]
//! (`auth::jwt`); `switchboard token mint` on an AWS profile uses both to get
//! a token from the profile's token endpoint.
//!
//! The client authenticates with HTTP Basic (`client_secret_basic`), which the
//! local issuer and Cognito both accept; the form carries only `grant_type`
//! and `scope`. An [`OAuth2Error`] names the URL and what went wrong, never
//! the secret, and each caller turns it into its own error.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::registry::Secret;

/// Where an issuer publishes its discovery document, below its URL.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The discovery document's URL for `issuer` (a trailing slash is ignored).
pub fn discovery_url(issuer: &str) -> String {
    format!("{}{DISCOVERY_PATH}", issuer.trim_end_matches('/'))
}

/// A token endpoint's answer to a client-credentials request (RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    /// The token (never empty: an empty one is [`OAuth2Error::EmptyToken`]).
    pub access_token: String,
    /// Seconds it lives, when the endpoint says.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// The scopes granted, space-separated, when the endpoint says.
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"••••••")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The parts of an issuer's discovery document Switchboard reads. Each may be
/// missing (a Cognito user pool names a `token_endpoint` only once it has a
/// domain); the caller says what it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OidcMetadata {
    /// `issuer`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `jwks_uri`: where the signing keys are.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// `token_endpoint`: where tokens are issued.
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

/// Why a token or discovery request failed. The message says what happened;
/// [`OAuth2Error::url`] says where. No variant holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuth2Error {
    /// No answer within the timeout.
    #[error("no answer within {after:?}")]
    Timeout {
        /// The URL asked.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The request could not be sent, or no answer came.
    #[error("no answer: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What the HTTP client said (without the URL).
        reason: String,
    },
    /// The answer started and broke off.
    #[error("the answer broke off: {reason}")]
    Interrupted {
        /// The URL asked.
        url: String,
        /// What the HTTP client said (without the URL).
        reason: String,
    },
    /// A status other than 2xx, with the OAuth2 error (RFC 6749 §5.2) when
    /// the body carries one.
    #[error("answered {}", refusal(*status, error.as_deref(), error_description.as_deref()))]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// `error`, e.g. `invalid_client`.
        error: Option<String>,
        /// `error_description`.
        error_description: Option<String>,
    },
    /// A 2xx answer that is not the JSON expected.
    #[error("the answer is not the JSON expected: {reason}")]
    BadJson {
        /// The URL asked.
        url: String,
        /// What the JSON parser said.
        reason: String,
    },
    /// A token answer whose `access_token` is empty.
    #[error("the answer holds an empty access token")]
    EmptyToken {
        /// The URL asked.
        url: String,
    },
}

impl OAuth2Error {
    /// The URL that was asked.
    pub fn url(&self) -> &str {
        match self {
            OAuth2Error::Timeout { url, .. }
            | OAuth2Error::Unreachable { url, .. }
            | OAuth2Error::Interrupted { url, .. }
            | OAuth2Error::Status { url, .. }
            | OAuth2Error::BadJson { url, .. }
            | OAuth2Error::EmptyToken { url } => url,
        }
    }

    /// For [`OAuth2Error::Status`], why the request was refused in the
    /// endpoint's words: `error: error_description`, `error`, or else
    /// `HTTP {status}`.
    pub fn refusal(&self) -> Option<String> {
        match self {
            OAuth2Error::Status {
                status,
                error,
                error_description,
                ..
            } => Some(refusal(
                *status,
                error.as_deref(),
                error_description.as_deref(),
            )),
            _ => None,
        }
    }

    fn from_reqwest(url: &str, timeout: Duration, e: reqwest::Error, sent: bool) -> Self {
        let url = url.to_owned();
        if e.is_timeout() {
            return OAuth2Error::Timeout {
                url,
                after: timeout,
            };
        }
        let reason = e.without_url().to_string();
        if sent {
            OAuth2Error::Interrupted { url, reason }
        } else {
            OAuth2Error::Unreachable { url, reason }
        }
    }
}

fn refusal(status: reqwest::StatusCode, error: Option<&str>, description: Option<&str>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.to_owned(),
        (None, _) => format!("HTTP {status}"),
    }
}

/// An RFC 6749 §5.2 error answer.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Sends `request` and reads a 2xx JSON answer as `T`.
async fn answer<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
    timeout: Duration,
) -> Result<T, OAuth2Error> {
    let resp = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| OAuth2Error::from_reqwest(url, timeout, e, false))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| OAuth2Error::from_reqwest(url, timeout, e, true))?;
    if !status.is_success() {
        let (error, error_description) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => (Some(b.error), b.error_description),
            Err(_) => (None, None),
        };
        return Err(OAuth2Error::Status {
            url: url.to_owned(),
            status,
            error,
            error_description,
        });
    }
    serde_json::from_slice(&body).map_err(|e| OAuth2Error::BadJson {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// GETs `url` and reads its 2xx JSON answer (a discovery document, a JWKS).
pub async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<T, OAuth2Error> {
    answer(http.get(url), url, timeout).await
}

/// Asks `token_url` for a token with the client-credentials grant,
/// authenticating as `client_id` with HTTP Basic. `scopes` empty: the
/// client's default scopes.
pub async fn client_credentials(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    secret: &Secret,
    scopes: &[String],
    timeout: Duration,
) -> Result<TokenResponse, OAuth2Error> {
    let mut form: Vec<(&str, String)> = vec![("grant_type", "client_credentials".into())];
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    let request = http
        .post(token_url)
        .basic_auth(client_id, Some(secret.expose()))
        .form(&form);
    let token: TokenResponse = answer(request, token_url, timeout).await?;
    if token.access_token.is_empty() {
        return Err(OAuth2Error::EmptyToken {
            url: token_url.to_owned(),
        });
    }
    Ok(token)
}

/// Reads `issuer`'s discovery document ([`discovery_url`]).
pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
    timeout: Duration,
) -> Result<OidcMetadata, OAuth2Error> {
    get_json(http, &discovery_url(issuer), timeout).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    const SECRET: &str = "s3cr3t-never-shown";

    /// A token endpoint and discovery document on 127.0.0.1:0 that answer
    /// according to the client id (the Basic user) or the path.
    async fn server() -> String {
        let app = axum::Router::new()
            .route(
                "/token",
                post(|headers: HeaderMap, body: String| async move {
                    use base64::Engine;
                    let basic = headers["authorization"].to_str().unwrap();
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(basic.strip_prefix("Basic ").unwrap())
                        .unwrap();
                    let decoded = String::from_utf8(decoded).unwrap();
                    let (client, secret) = decoded.split_once(':').unwrap();
                    let ok = |v: serde_json::Value| (StatusCode::OK, v.to_string());
                    match client {
                        _ if secret != SECRET => (
                            StatusCode::UNAUTHORIZED,
                            json!({"error": "invalid_client", "error_description": "bad secret"})
                                .to_string(),
                        ),
                        "good" => ok(json!({
                            "access_token": "tok",
                            "token_type": "Bearer",
                            "expires_in": 60,
                            "scope": body,
                        })),
                        "empty" => ok(json!({"access_token": ""})),
                        "garbled" => (StatusCode::OK, "{not json".to_owned()),
                        "teapot" => (StatusCode::IM_A_TEAPOT, "<html>".to_owned()),
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            ok(json!({"access_token": "late"}))
                        }
                        _ => (
                            StatusCode::BAD_REQUEST,
                            json!({"error": "unauthorized_client"}).to_string(),
                        ),
                    }
                }),
            )
            .route(
                "/ok/.well-known/openid-configuration",
                get(|| async {
                    axum::Json(json!({
                        "issuer": "http://i/ok",
                        "jwks_uri": "http://i/jwks",
                        "token_endpoint": "http://i/token",
                        "grant_types_supported": ["client_credentials"],
                    }))
                }),
            )
            .route(
                "/nodomain/.well-known/openid-configuration",
                get(|| async { axum::Json(json!({"jwks_uri": "http://i/jwks"})) }),
            )
            .route(
                "/garbled/.well-known/openid-configuration",
                get(|| async { "[1, 2" }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn mint(base: &str, client: &str, secret: &str) -> Result<TokenResponse, OAuth2Error> {
        client_credentials(
            &reqwest::Client::new(),
            &format!("{base}/token"),
            client,
            &Secret::new(secret),
            &["a".into(), "b".into()],
            Duration::from_millis(500),
        )
        .await
    }

    #[tokio::test]
    async fn a_token_is_fetched_with_basic_auth_and_the_scopes_in_the_form() {
        let base = server().await;
        let token = mint(&base, "good", SECRET).await.unwrap();
        assert_eq!(
            token,
            TokenResponse {
                access_token: "tok".into(),
                expires_in: Some(60),
                scope: Some("grant_type=client_credentials&scope=a+b".into()),
            }
        );
        assert!(!format!("{token:?}").contains("tok\""), "{token:?}");
    }

    #[tokio::test]
    async fn a_refusal_carries_the_oauth2_error_and_never_the_secret() {
        let base = server().await;
        let url = format!("{base}/token");
        let err = mint(&base, "good", "wrong-secret-4711").await.unwrap_err();
        assert_eq!(
            err,
            OAuth2Error::Status {
                url: url.clone(),
                status: reqwest::StatusCode::UNAUTHORIZED,
                error: Some("invalid_client".into()),
                error_description: Some("bad secret".into()),
            }
        );
        assert_eq!(err.refusal().unwrap(), "invalid_client: bad secret");
        assert_eq!(
            err.to_string(),
            "answered invalid_client: bad secret",
            "{err:?}"
        );
        assert!(!format!("{err} {err:?}").contains("wrong-secret-4711"));

        let err = mint(&base, "other", SECRET).await.unwrap_err();
        assert_eq!(err.refusal().unwrap(), "unauthorized_client");
        // A refusal whose body is not an OAuth2 error says the status.
        let err = mint(&base, "teapot", SECRET).await.unwrap_err();
        assert_eq!(err.refusal().unwrap(), "HTTP 418 I'm a teapot");
        assert_eq!(err.url(), url);
    }

    #[tokio::test]
    async fn bad_json_and_empty_tokens_are_errors() {
        let base = server().await;
        let url = format!("{base}/token");
        let err = mint(&base, "garbled", SECRET).await.unwrap_err();
        assert!(
            matches!(&err, OAuth2Error::BadJson { url: u, reason } if *u == url && reason.contains("line 1")),
            "{err:?}"
        );
        assert_eq!(
            mint(&base, "empty", SECRET).await.unwrap_err(),
            OAuth2Error::EmptyToken { url }
        );
    }

    #[tokio::test]
    async fn a_slow_endpoint_times_out_and_a_closed_port_is_unreachable() {
        let base = server().await;
        let started = std::time::Instant::now();
        let err = mint(&base, "slow", SECRET).await.unwrap_err();
        assert_eq!(
            err,
            OAuth2Error::Timeout {
                url: format!("{base}/token"),
                after: Duration::from_millis(500),
            }
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(err.to_string(), "no answer within 500ms");

        // Bound then dropped: nothing listens there.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let err = mint(&closed, "good", SECRET).await.unwrap_err();
        assert!(matches!(&err, OAuth2Error::Unreachable { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains(SECRET));
    }

    #[tokio::test]
    async fn discovery_reads_the_document_below_the_issuer() {
        let base = server().await;
        let http = reqwest::Client::new();
        let timeout = Duration::from_secs(2);
        // A trailing slash, as people write issuer URLs.
        let meta = discover(&http, &format!("{base}/ok/"), timeout)
            .await
            .unwrap();
        assert_eq!(
            meta,
            OidcMetadata {
                issuer: Some("http://i/ok".into()),
                jwks_uri: Some("http://i/jwks".into()),
                token_endpoint: Some("http://i/token".into()),
            }
        );
        let meta = discover(&http, &format!("{base}/nodomain"), timeout)
            .await
            .unwrap();
        assert_eq!(meta.token_endpoint, None);

        let err = discover(&http, &format!("{base}/garbled"), timeout)
            .await
            .unwrap_err();
        assert!(matches!(err, OAuth2Error::BadJson { .. }), "{err:?}");
        assert_eq!(
            err.url(),
            format!("{base}/garbled/.well-known/openid-configuration")
        );
        let err = discover(&http, &format!("{base}/missing"), timeout)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            OAuth2Error::Status {
                url: format!("{base}/missing/.well-known/openid-configuration"),
                status: reqwest::StatusCode::NOT_FOUND,
                error: None,
                error_description: None,
            }
        );
        assert_eq!(err.to_string(), "answered HTTP 404 Not Found");
    }
}
