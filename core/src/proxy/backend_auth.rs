//! Credentials the gateway presents to an agent's backend.
//!
//! Static headers read their value from the secret store; OAuth2
//! client-credentials tokens are fetched from the backend's token endpoint
//! ([`oauth2::client_credentials`]) and cached until shortly before they
//! expire, one refresh at a time per (token URL, client, scopes). Failures are remembered for a few seconds so a
//! storm of requests does not hammer a broken endpoint or store.
//! The caller's own token is never forwarded; only what is built here is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use parking_lot::Mutex;

use crate::auth::oauth2;
use crate::error::GatewayError;
use crate::registry::{BackendAuth, Secret, SecretStore, StoreError};

/// A token is refreshed this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// A secret value is reused for this long before it is read again.
pub const SECRET_TTL: Duration = Duration::from_secs(60);
/// A failure is answered from memory for this long.
pub const FAILURE_TTL: Duration = Duration::from_secs(5);
/// How long a token request may take.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
enum Slot {
    Ready {
        value: Secret,
        until: Instant,
    },
    Failed {
        error: String,
        unavailable: bool,
        until: Instant,
    },
}

/// One cached credential: the value (read on every request without waiting)
/// and a lock that lets one task at a time refresh it.
#[derive(Default)]
struct Cell {
    slot: parking_lot::Mutex<Option<Slot>>,
    refresh: tokio::sync::Mutex<()>,
}

type SlotRef = Arc<Cell>;

/// Builds backend credentials; share one per gateway.
pub struct BackendAuthenticator {
    secrets: Arc<dyn SecretStore>,
    http: reqwest::Client,
    slots: Mutex<HashMap<String, SlotRef>>,
}

impl BackendAuthenticator {
    /// An authenticator reading secrets from `secrets` and fetching tokens with `http`.
    pub fn new(secrets: Arc<dyn SecretStore>, http: reqwest::Client) -> Self {
        BackendAuthenticator {
            secrets,
            http,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every cached secret and token (after an edit of backend auth).
    pub fn clear(&self) {
        self.slots.lock().clear();
    }

    fn slot(&self, key: String) -> SlotRef {
        self.slots.lock().entry(key).or_default().clone()
    }

    /// The header to add for `auth`, if any.
    pub async fn header(
        &self,
        agent: &str,
        auth: &BackendAuth,
    ) -> Result<Option<(HeaderName, HeaderValue)>, GatewayError> {
        match auth {
            BackendAuth::None => Ok(None),
            BackendAuth::Header { name, secret } => {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    GatewayError::BackendAuth(format!(
                        "agent {agent} has an invalid backend header name"
                    ))
                })?;
                let value = self
                    .cached(format!("secret\n{secret}"), || async {
                        let v = self.read_secret(agent, secret).await?;
                        Ok((v, SECRET_TTL))
                    })
                    .await?;
                Ok(Some((name, header_value(agent, value.expose())?)))
            }
            BackendAuth::OAuth2 {
                token_url,
                client_id,
                secret,
                scopes,
            } => {
                let key = format!("oauth2\n{token_url}\n{client_id}\n{}", scopes.join(" "));
                let token = self
                    .cached(key, || {
                        self.fetch_token(agent, token_url, client_id, secret, scopes)
                    })
                    .await?;
                Ok(Some((
                    axum::http::header::AUTHORIZATION,
                    header_value(agent, &format!("Bearer {}", token.expose()))?,
                )))
            }
        }
    }

    async fn cached<F, Fut>(&self, key: String, fetch: F) -> Result<Secret, GatewayError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(Secret, Duration), GatewayError>>,
    {
        let cell = self.slot(key);
        if let Some(answer) = fresh(&cell) {
            return answer;
        }
        // One refresh at a time: the others wait here and then find it fresh.
        let _refreshing = cell.refresh.lock().await;
        if let Some(answer) = fresh(&cell) {
            return answer;
        }
        let now = Instant::now();
        match fetch().await {
            Ok((value, ttl)) => {
                *cell.slot.lock() = Some(Slot::Ready {
                    value: value.clone(),
                    until: now + ttl,
                });
                Ok(value)
            }
            Err(e) => {
                let (error, unavailable) = match &e {
                    GatewayError::Unavailable(m) => (m.clone(), true),
                    GatewayError::BackendAuth(m) => (m.clone(), false),
                    other => (other.to_string(), false),
                };
                *cell.slot.lock() = Some(Slot::Failed {
                    error,
                    unavailable,
                    until: now + FAILURE_TTL,
                });
                Err(e)
            }
        }
    }

    async fn read_secret(&self, agent: &str, name: &str) -> Result<Secret, GatewayError> {
        match self.secrets.get(name).await {
            Ok(v) => Ok(v),
            Err(StoreError::NotFound(_)) => {
                tracing::error!(agent, secret = name, "backend secret is missing");
                Err(GatewayError::BackendAuth(format!(
                    "the secret {name:?} for agent {agent} does not exist"
                )))
            }
            Err(e) => {
                tracing::error!(agent, secret = name, error = %e, "secret store unavailable");
                Err(GatewayError::Unavailable(
                    "the secret store is unavailable".into(),
                ))
            }
        }
    }

    async fn fetch_token(
        &self,
        agent: &str,
        token_url: &str,
        client_id: &str,
        secret: &str,
        scopes: &[String],
    ) -> Result<(Secret, Duration), GatewayError> {
        let client_secret = self.read_secret(agent, secret).await?;
        let token = oauth2::client_credentials(
            &self.http,
            token_url,
            client_id,
            &client_secret,
            scopes,
            TOKEN_TIMEOUT,
        )
        .await
        .map_err(|e| {
            tracing::error!(agent, token_url, client_id, error = %e, "backend token request failed");
            GatewayError::BackendAuth(format!(
                "the token endpoint for agent {agent} refused or failed"
            ))
        })?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300));
        let ttl = lifetime.checked_sub(REFRESH_MARGIN).unwrap_or(lifetime / 2);
        Ok((Secret::new(token.access_token), ttl))
    }
}

/// The cached answer while it is still good.
fn fresh(cell: &Cell) -> Option<Result<Secret, GatewayError>> {
    let now = Instant::now();
    match cell.slot.lock().as_ref()? {
        Slot::Ready { value, until } if *until > now => Some(Ok(value.clone())),
        Slot::Failed {
            error,
            unavailable,
            until,
        } if *until > now => Some(Err(if *unavailable {
            GatewayError::Unavailable(error.clone())
        } else {
            GatewayError::BackendAuth(error.clone())
        })),
        _ => None,
    }
}

fn header_value(agent: &str, v: &str) -> Result<HeaderValue, GatewayError> {
    let mut value = HeaderValue::from_str(v).map_err(|_| {
        GatewayError::BackendAuth(format!(
            "the backend credential for agent {agent} is not a valid header value"
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}
