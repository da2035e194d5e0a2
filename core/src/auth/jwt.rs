//! Bearer-token verification against an issuer's JWKS.
//!
//! Keys are fetched from the issuer's `jwks_uri` (given, or discovered through
//! `{issuer}/.well-known/openid-configuration`) and cached. A token whose `kid`
//! is not cached triggers at most one refresh per [`REFRESH_COOLDOWN`]; when the
//! JWKS endpoint is down, cached keys keep working.
//!
//! A verified token's claims are cached by the token itself, so the RS256/ES256
//! signature is checked once per token rather than once per request. What can
//! change for a cached token is re-checked on every hit: `exp` and `nbf` against
//! the clock, and whether the key that signed it is still published (a key
//! rotated out of the JWKS drops the cache).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{jwk::Jwk, Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};

use super::oauth2;

/// How often an unknown `kid` may trigger a JWKS refresh.
pub const REFRESH_COOLDOWN: Duration = Duration::from_secs(30);

/// Largest token accepted; anything longer is rejected before parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Most leeway allowed on `exp` / `nbf`.
pub const MAX_LEEWAY_SECS: u64 = 60;

/// How long a discovery or JWKS request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Most verified tokens remembered.
const TOKEN_CACHE_CAPACITY: usize = 10_000;

/// Where tokens come from and what they must carry.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Expected `iss`, exactly.
    pub issuer: String,
    /// JWKS URL; `None` discovers it from the issuer's discovery document
    /// (`{issuer}/.well-known/openid-configuration`, [`oauth2::discover`]).
    pub jwks_uri: Option<String>,
    /// When set, only these `client_id`s are accepted.
    pub allowed_client_ids: Option<Vec<String>>,
    /// Clock leeway for `exp` and `nbf`, capped at [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `client_id`, or `sub` when the token has no `client_id`.
    pub client_id: String,
    /// `sub`.
    pub subject: String,
    /// Scopes from `scope` (space-separated) or `scp` (array).
    pub scopes: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// `nbf`, Unix seconds, if present.
    pub not_before: Option<u64>,
    /// Every claim, for inspection tools.
    pub claims: serde_json::Value,
}

/// Why a token was refused. Every variant answers 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg` other than RS256 / ES256, or not matching the key.
    #[error("token algorithm {0} is not accepted (RS256 or ES256 only)")]
    UnsupportedAlg(String),
    /// No published key has this `kid`.
    #[error("no signing key with kid {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not trusted")]
    WrongIssuer,
    /// `token_use` present and not `access`.
    #[error("token_use must be \"access\"")]
    WrongTokenUse,
    /// `client_id` not in the allow-list.
    #[error("client {0} is not allowed")]
    ClientNotAllowed(String),
    /// Keys could not be fetched and none are cached.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

struct CachedKey {
    key: DecodingKey,
    alg: Algorithm,
}

struct KeyState {
    keys: HashMap<String, Arc<CachedKey>>,
    last_fetch: Option<Instant>,
    jwks_uri: Option<String>,
}

/// Verifies bearer tokens. Share it as `Arc<Verifier>`.
pub struct Verifier {
    config: VerifierConfig,
    http: reqwest::Client,
    state: RwLock<KeyState>,
    refresh: tokio::sync::Mutex<()>,
    tokens: Mutex<HashMap<String, (Arc<Principal>, String)>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    /// A verifier with no keys yet; the first token (or [`Verifier::prefetch`]) fetches them.
    pub fn new(config: VerifierConfig, http: reqwest::Client) -> Arc<Verifier> {
        let jwks_uri = config.jwks_uri.clone();
        Arc::new(Verifier {
            config: VerifierConfig {
                leeway_secs: config.leeway_secs.min(MAX_LEEWAY_SECS),
                ..config
            },
            http,
            state: RwLock::new(KeyState {
                keys: HashMap::new(),
                last_fetch: None,
                jwks_uri,
            }),
            refresh: tokio::sync::Mutex::new(()),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Number of signing keys cached.
    pub fn key_count(&self) -> usize {
        self.state.read().keys.len()
    }

    /// Fetches the JWKS now.
    pub async fn prefetch(&self) -> Result<usize, AuthError> {
        self.refresh_keys(true).await
    }

    /// Verifies a token and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(format!(
                "token is {} bytes; at most {MAX_TOKEN_BYTES} are accepted",
                token.len()
            )));
        }
        if let Some(p) = self.cached(token)? {
            return Ok(p);
        }
        check_header(token)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::UnsupportedAlg(format!("{:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Malformed("token header has no kid".into()))?;
        let key = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.refresh_keys(false).await?;
                self.key(&kid)
                    .ok_or_else(|| AuthError::UnknownKey(shown_kid(&kid)))?
            }
        };
        if key.alg != header.alg {
            return Err(AuthError::UnsupportedAlg(format!(
                "{:?} (the key {kid} is {:?})",
                header.alg, key.alg
            )));
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway_secs;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)
            .map_err(map_jwt_error)?;
        let principal = Arc::new(self.principal(data.claims)?);
        self.remember(token, &principal, kid);
        Ok(principal)
    }

    fn cached(&self, token: &str) -> Result<Option<Arc<Principal>>, AuthError> {
        let tokens = self.tokens.lock();
        let Some((p, _kid)) = tokens.get(token) else {
            return Ok(None);
        };
        let now = now_secs();
        if now > p.expires_at + self.config.leeway_secs {
            return Err(AuthError::Expired);
        }
        if p.not_before
            .is_some_and(|nbf| nbf > now + self.config.leeway_secs)
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(Some(p.clone()))
    }

    fn remember(&self, token: &str, principal: &Arc<Principal>, kid: String) {
        let mut tokens = self.tokens.lock();
        if tokens.len() >= TOKEN_CACHE_CAPACITY {
            let now = now_secs();
            tokens.retain(|_, (p, _)| p.expires_at + self.config.leeway_secs >= now);
            if tokens.len() >= TOKEN_CACHE_CAPACITY {
                tokens.clear();
            }
        }
        tokens.insert(token.to_owned(), (principal.clone(), kid));
    }

    fn principal(&self, claims: serde_json::Value) -> Result<Principal, AuthError> {
        if let Some(use_) = claims.get("token_use") {
            if use_.as_str() != Some("access") {
                return Err(AuthError::WrongTokenUse);
            }
        }
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let client_id = match claims.get("client_id") {
            None => subject.clone(),
            Some(serde_json::Value::String(c)) => c.clone(),
            Some(_) => {
                return Err(AuthError::Malformed(
                    "token claim client_id is not a string".into(),
                ))
            }
        };
        if client_id.is_empty() {
            return Err(AuthError::Malformed(
                "token has neither client_id nor sub".into(),
            ));
        }
        if let Some(allowed) = &self.config.allowed_client_ids {
            if !allowed.iter().any(|c| c == &client_id) {
                return Err(AuthError::ClientNotAllowed(client_id));
            }
        }
        let scopes = scopes_of(&claims);
        let expires_at = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0);
        let not_before = claims.get("nbf").and_then(|v| v.as_u64());
        Ok(Principal {
            client_id,
            subject,
            scopes,
            expires_at,
            not_before,
            claims,
        })
    }

    fn key(&self, kid: &str) -> Option<Arc<CachedKey>> {
        self.state.read().keys.get(kid).cloned()
    }

    /// Refreshes the key set. Unless `force`d, does nothing if the last fetch
    /// was less than [`REFRESH_COOLDOWN`] ago. On failure the cached keys stay.
    async fn refresh_keys(&self, force: bool) -> Result<usize, AuthError> {
        let started = Instant::now();
        let _one_at_a_time = self.refresh.lock().await;
        {
            let state = self.state.read();
            if let Some(last) = state.last_fetch {
                // Someone else refreshed while we waited, or we are cooling down.
                // With no keys at all (the issuer was down at start), retry
                // sooner, but still at most once a second.
                let cooldown = if state.keys.is_empty() {
                    Duration::from_secs(1)
                } else {
                    REFRESH_COOLDOWN
                };
                if last >= started || (!force && last.elapsed() < cooldown) {
                    return Ok(state.keys.len());
                }
            }
        }
        self.state.write().last_fetch = Some(Instant::now());
        let keys = match self.fetch_keys().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, issuer = %self.config.issuer, "JWKS refresh failed; keeping cached keys");
                let n = self.state.read().keys.len();
                return if n == 0 { Err(e) } else { Ok(n) };
            }
        };
        let n = keys.len();
        let mut state = self.state.write();
        let removed: Vec<String> = state
            .keys
            .keys()
            .filter(|k| !keys.contains_key(*k))
            .cloned()
            .collect();
        state.keys = keys;
        drop(state);
        if !removed.is_empty() {
            tracing::info!(
                ?removed,
                "signing keys rotated out; forgetting tokens they signed"
            );
            self.tokens
                .lock()
                .retain(|_, (_, kid)| !removed.contains(kid));
        }
        Ok(n)
    }

    async fn jwks_uri(&self) -> Result<String, AuthError> {
        if let Some(uri) = self.state.read().jwks_uri.clone() {
            return Ok(uri);
        }
        let metadata = oauth2::discover(&self.http, &self.config.issuer, FETCH_TIMEOUT)
            .await
            .map_err(keys_unavailable)?;
        let Some(jwks_uri) = metadata.jwks_uri else {
            return Err(AuthError::KeysUnavailable(format!(
                "{}: names no jwks_uri",
                oauth2::discovery_url(&self.config.issuer)
            )));
        };
        self.state.write().jwks_uri = Some(jwks_uri.clone());
        Ok(jwks_uri)
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<CachedKey>>, AuthError> {
        let uri = self.jwks_uri().await?;
        let body: serde_json::Value = oauth2::get_json(&self.http, &uri, FETCH_TIMEOUT)
            .await
            .map_err(keys_unavailable)?;
        let mut keys = HashMap::new();
        for raw in body
            .get("keys")
            .and_then(|k| k.as_array())
            .into_iter()
            .flatten()
        {
            match parse_jwk(raw) {
                Ok((kid, key)) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(why) => tracing::debug!(%why, "skipping a JWKS entry"),
            }
        }
        Ok(keys)
    }
}

/// A failed discovery or JWKS request, naming the URL.
fn keys_unavailable(e: oauth2::OAuth2Error) -> AuthError {
    AuthError::KeysUnavailable(format!("{}: {e}", e.url()))
}

/// Checks the JOSE header as sent, before any library reads it: a JSON
/// object without `crit`. No header extension is understood here, so a token
/// that marks one critical is invalid (RFC 7515 §4.1.11); `jwk`, `jku`,
/// `x5u` and `x5c` are never used to find a key.
fn check_header(token: &str) -> Result<(), AuthError> {
    use base64::Engine;
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| AuthError::Malformed("token header is not base64url".into()))?;
    let header: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("token header is not JSON".into()))?;
    let Some(fields) = header.as_object() else {
        return Err(AuthError::Malformed(
            "token header is not a JSON object".into(),
        ));
    };
    if fields.contains_key("crit") {
        return Err(AuthError::Malformed(
            "token header lists critical extensions (crit), none of which are supported".into(),
        ));
    }
    Ok(())
}

/// A `kid` as it may appear in an error: printable ASCII, at most 64 characters.
fn shown_kid(kid: &str) -> String {
    let mut out: String = kid
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if kid.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

fn parse_jwk(raw: &serde_json::Value) -> Result<(String, CachedKey), String> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    let kty = raw.get("kty").and_then(|v| v.as_str()).unwrap_or_default();
    let alg = match (kty, raw.get("alg").and_then(|v| v.as_str())) {
        ("RSA", None | Some("RS256")) => Algorithm::RS256,
        ("EC", None | Some("ES256")) => Algorithm::ES256,
        (kty, alg) => return Err(format!("unsupported key {kty}/{alg:?}")),
    };
    if let Some(u) = raw.get("use").and_then(|v| v.as_str()) {
        if u != "sig" {
            return Err(format!("key use {u}"));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok((kid, CachedKey { key, alg }))
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm => AuthError::UnsupportedAlg("mismatch".into()),
        ErrorKind::MissingRequiredClaim(c) => AuthError::Malformed(format!("missing claim {c}")),
        _ => AuthError::Malformed(e.to_string()),
    }
}

/// Scopes from `scope` (space-separated, Cognito style) or `scp` (array or
/// string). Only the ASCII space separates scopes (RFC 6749 §3.3): a scope
/// holding another kind of white space stays one (unknown) scope rather
/// than becoming two.
pub fn scopes_of(claims: &serde_json::Value) -> Vec<String> {
    let split = |s: &str| {
        s.split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    match (claims.get("scope"), claims.get("scp")) {
        (Some(serde_json::Value::String(s)), _) => split(s),
        (_, Some(serde_json::Value::Array(a))) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        (_, Some(serde_json::Value::String(s))) => split(s),
        _ => Vec::new(),
    }
}
