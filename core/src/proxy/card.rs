//! Agent cards: the one fetch of a backend's card (used by the gateway, the
//! CLI and the console), and the rewrite that makes every URL in it point at
//! the gateway and its security scheme the gateway's own.
//!
//! Rewritten fields, each on its own terms:
//! * A2A 1.0: `supportedInterfaces[].url`;
//! * A2A 0.3: `url` and `additionalInterfaces[].url`.
//!
//! A URL under the backend's base keeps its suffix (`{backend}/rest` becomes
//! `{gateway}/agents/{id}/rest`), so REST and JSON-RPC endpoints stay apart.
//! A URL on another origin cannot be proxied faithfully; it is still pointed
//! at the gateway (with its path) rather than leaking a direct address. No
//! rewritten URL resolves outside `{gateway}/agents/{id}` (see [`rewrite_url`]).
//!
//! Card signatures (`signatures`) cover the original bytes and cannot verify
//! after rewriting, so they are dropped; the gateway does not re-sign.
//! Nothing else in the card changes.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use crate::error::GatewayError;

/// Where a backend serves its card, under its base URL.
pub const CARD_PATH: &str = ".well-known/agent-card.json";

/// Why a backend's card could not be had. The messages name no URL.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The request failed: no answer in time, no connection, or an answer
    /// that is not HTTP.
    #[error("{}", detail(.0))]
    Failed(GatewayError),
    /// The backend answered, but not with a success status.
    #[error("the card request answered {0}")]
    Status(StatusCode),
    /// The answer is not JSON.
    #[error("the card is not JSON: {0}")]
    NotJson(String),
}

/// What went wrong with a backend request, with the detail a caller of the
/// gateway is not told but an operator is.
fn detail(e: &GatewayError) -> String {
    match e {
        GatewayError::BackendUnreachable(d) | GatewayError::BackendBadResponse(d) => d.clone(),
        other => other.to_string(),
    }
}

impl From<CardError> for GatewayError {
    fn from(e: CardError) -> Self {
        match e {
            CardError::Failed(e) => e,
            other => GatewayError::BackendBadResponse(other.to_string()),
        }
    }
}

/// How long a backend has to serve its card to the CLI and the console.
pub const TOOL_FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// `{base_url}/.well-known/agent-card.json`.
pub fn card_url(base_url: &str) -> String {
    format!("{}/{CARD_PATH}", base_url.trim_end_matches('/'))
}

/// Fetches a backend's card, sending `credential` (the backend's own auth
/// header) when there is one.
pub async fn fetch_card(
    http: &reqwest::Client,
    base_url: &str,
    credential: Option<(HeaderName, HeaderValue)>,
    timeout: Duration,
) -> Result<Value, CardError> {
    let mut req = http.get(card_url(base_url)).timeout(timeout);
    if let Some((name, value)) = credential {
        req = req.header(name, value);
    }
    let failed = |e| CardError::Failed(GatewayError::from_backend(e));
    let resp = req.send().await.map_err(failed)?;
    if !resp.status().is_success() {
        return Err(CardError::Status(resp.status()));
    }
    let bytes = resp.bytes().await.map_err(failed)?;
    serde_json::from_slice(&bytes).map_err(|e| CardError::NotJson(e.to_string()))
}

/// The name of the gateway's security scheme in rewritten cards.
pub const SCHEME_NAME: &str = "switchboard";

/// What the rewrite needs to know.
#[derive(Debug, Clone)]
pub struct CardContext<'a> {
    /// The agent's backend base URL from the registry.
    pub backend_url: &'a str,
    /// `{public_url}/agents/{id}`.
    pub gateway_url: &'a str,
    /// The issuer's token endpoint callers get tokens from.
    pub token_url: &'a str,
    /// Scopes that grant this agent.
    pub scopes: &'a [String],
}

/// Maps one URL from the card to the gateway.
///
/// The URL is parsed and normalised first, as a client would resolve it: dot
/// segments (raw or percent-encoded) and, for `http`/`https`, backslashes.
/// The result is always the agent's gateway URL, optionally followed by a
/// path and a query, and never resolves outside it: a suffix that would climb
/// out, an unparseable URL and a URL with no path (`mailto:`, `urn:`) all
/// become the agent's gateway URL itself. The query is kept for URLs under
/// the backend URL; fragments are dropped.
pub fn rewrite_url(url: &str, ctx: &CardContext<'_>) -> String {
    let gateway = ctx.gateway_url.trim_end_matches('/');
    let Ok(parsed) = url::Url::parse(url) else {
        tracing::warn!(%url, backend = %ctx.backend_url, "card URL does not parse; pointing it at the gateway");
        return gateway.to_owned();
    };
    if parsed.cannot_be_a_base() {
        tracing::warn!(%url, backend = %ctx.backend_url, "card URL has no path; pointing it at the gateway");
        return gateway.to_owned();
    }
    let backend = url::Url::parse(ctx.backend_url).ok();
    let base_path = backend
        .as_ref()
        .map(|b| b.path().trim_end_matches('/'))
        .unwrap_or_default();
    let path = parsed.path();
    let below_base = match path.strip_prefix(base_path) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Some(rest),
        _ => None,
    };
    let same_origin = backend
        .as_ref()
        .is_some_and(|b| b.origin() == parsed.origin());
    let under_backend = same_origin && below_base.is_some();
    if !under_backend {
        // Another origin cannot be proxied faithfully; it is still pointed at
        // the gateway (with its path) rather than leaking a direct address.
        tracing::warn!(%url, backend = %ctx.backend_url, "card URL is not under the backend URL; pointing it at the gateway anyway");
    }
    // A backslash is a separator in an `http(s)` URL but not in every other
    // scheme's, so it is escaped before it lands under the gateway's scheme.
    let suffix = below_base
        .unwrap_or(path)
        .trim_end_matches('/')
        .replace('\\', "%5C");
    let mut out = format!("{gateway}{suffix}");
    if under_backend {
        if let Some(query) = parsed.query() {
            out.push('?');
            out.push_str(query);
        }
    }
    if stays_under(&out, gateway) {
        out
    } else {
        tracing::warn!(%url, rewritten = %out, "card URL would resolve outside the gateway URL; using the gateway URL");
        gateway.to_owned()
    }
}

/// Whether `candidate` resolves to `gateway` or a path below it.
fn stays_under(candidate: &str, gateway: &str) -> bool {
    let (Ok(c), Ok(g)) = (url::Url::parse(candidate), url::Url::parse(gateway)) else {
        return false;
    };
    let root = g.path().trim_end_matches('/');
    c.origin() == g.origin()
        && c.username() == g.username()
        && c.password() == g.password()
        && c.fragment().is_none()
        && c.path()
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One scope list per alternative requirement: each granting scope alone,
/// or a single empty list when no scope grants the agent yet.
fn requirement_scopes(ctx: &CardContext<'_>) -> Vec<Vec<String>> {
    if ctx.scopes.is_empty() {
        vec![vec![]]
    } else {
        ctx.scopes.iter().map(|s| vec![s.clone()]).collect()
    }
}

fn rewrite_interfaces(list: Option<&mut Value>, ctx: &CardContext<'_>) {
    if let Some(Value::Array(items)) = list {
        for item in items {
            if let Some(Value::String(u)) = item.get_mut("url") {
                *u = rewrite_url(u, ctx);
            }
        }
    }
}

/// Rewrites a card. Never fails: a card that is not a JSON object comes back
/// unchanged except that it is not trusted to carry URLs.
pub fn rewrite_card(mut card: Value, ctx: &CardContext<'_>) -> Value {
    let Some(obj) = card.as_object_mut() else {
        return card;
    };
    let is_v1 = obj.contains_key("supportedInterfaces");
    let is_v03 = obj.contains_key("url") || obj.contains_key("additionalInterfaces");
    rewrite_interfaces(obj.get_mut("supportedInterfaces"), ctx);
    rewrite_interfaces(obj.get_mut("additionalInterfaces"), ctx);
    if let Some(Value::String(u)) = obj.get_mut("url") {
        *u = rewrite_url(u, ctx);
    }
    obj.remove("signatures");

    let scopes: Map<String, Value> = ctx
        .scopes
        .iter()
        .map(|s| {
            (
                s.clone(),
                json!(format!("grants access through the gateway ({s})")),
            )
        })
        .collect();
    let flows = json!({ "clientCredentials": { "tokenUrl": ctx.token_url, "scopes": scopes } });
    let description = "OAuth2 client credentials from the Switchboard gateway's issuer";
    // A 1.0 card gets the 1.0 scheme shape, a 0.3 card the 0.3 one, and a card
    // speaking both gets both, as the official SDKs emit them.
    let mut scheme = Map::new();
    if is_v1 {
        scheme.insert(
            "oauth2SecurityScheme".into(),
            json!({ "description": description, "flows": flows }),
        );
        // Any one granting scope is enough: one requirement per scope (a
        // requirement's list means "all of these").
        let alternatives: Vec<Value> = requirement_scopes(ctx)
            .into_iter()
            .map(|s| json!({ "schemes": { SCHEME_NAME: { "list": s } } }))
            .collect();
        obj.insert("securityRequirements".into(), Value::Array(alternatives));
    }
    if is_v03 || !is_v1 {
        scheme.insert("type".into(), json!("oauth2"));
        scheme.insert("description".into(), json!(description));
        scheme.insert("flows".into(), flows);
        let alternatives: Vec<Value> = requirement_scopes(ctx)
            .into_iter()
            .map(|s| json!({ SCHEME_NAME: s }))
            .collect();
        obj.insert("security".into(), Value::Array(alternatives));
    } else {
        obj.remove("security");
    }
    obj.insert(
        "securitySchemes".into(),
        json!({ SCHEME_NAME: Value::Object(scheme) }),
    );
    card
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn ctx(scopes: &[String]) -> CardContext<'_> {
        CardContext {
            backend_url: "http://10.0.0.5:9000/a2a",
            gateway_url: "https://gw.example/agents/echo",
            token_url: "https://issuer.example/oauth2/token",
            scopes,
        }
    }

    #[test]
    fn urls_keep_their_suffix() {
        let s = vec![];
        let c = ctx(&s);
        assert_eq!(
            rewrite_url("http://10.0.0.5:9000/a2a", &c),
            "https://gw.example/agents/echo"
        );
        assert_eq!(
            rewrite_url("http://10.0.0.5:9000/a2a/", &c),
            "https://gw.example/agents/echo"
        );
        assert_eq!(
            rewrite_url("http://10.0.0.5:9000/a2a/rest", &c),
            "https://gw.example/agents/echo/rest"
        );
        assert_eq!(
            rewrite_url("http://other:1/a2a/v1", &c),
            "https://gw.example/agents/echo/v1"
        );
        assert_eq!(
            rewrite_url("http://10.0.0.5:9000/a2abc", &c),
            "https://gw.example/agents/echo/a2abc"
        );
    }

    #[test]
    fn urls_never_leave_the_agent() {
        let s = vec![];
        let c = ctx(&s);
        for (url, want) in [
            // Dot segments, raw, percent-encoded, or behind backslashes.
            (
                "http://10.0.0.5:9000/a2a/../../other",
                "https://gw.example/agents/echo/other",
            ),
            (
                "http://10.0.0.5:9000/a2a/%2e%2E/x",
                "https://gw.example/agents/echo/x",
            ),
            (
                "http://10.0.0.5:9000/a2a/\\..\\..\\x",
                "https://gw.example/agents/echo/x",
            ),
            // A non-special scheme keeps backslashes in its path; they must
            // not become separators under the gateway's https.
            (
                "x-a2a://h/\\..\\..\\x",
                "https://gw.example/agents/echo/%5C..%5C..%5Cx",
            ),
            // No path to keep: never glued onto the agent id.
            ("mailto:ops@example.com", "https://gw.example/agents/echo"),
            ("urn:a2a:x", "https://gw.example/agents/echo"),
            ("not a url", "https://gw.example/agents/echo"),
            // Query kept under the backend; fragment dropped.
            (
                "http://10.0.0.5:9000/a2a/rest?tenant=t1#top",
                "https://gw.example/agents/echo/rest?tenant=t1",
            ),
            ("http://other:1/a2a?k=v", "https://gw.example/agents/echo"),
        ] {
            assert_eq!(rewrite_url(url, &c), want, "{url}");
        }
    }

    #[test]
    fn v1_card() {
        let s = vec!["switchboard/echo".to_owned()];
        let card = json!({
            "name": "Echo",
            "supportedInterfaces": [
                {"url": "http://10.0.0.5:9000/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": "http://10.0.0.5:9000/a2a/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}
            ],
            "securitySchemes": {"backend": {"apiKeySecurityScheme": {"name": "x-key"}}},
            "signatures": [{"protected": "x", "signature": "y"}],
            "skills": [{"id": "echo", "name": "Echo"}]
        });
        assert_eq!(
            rewrite_card(card, &ctx(&s)),
            json!({
                "name": "Echo",
                "supportedInterfaces": [
                    {"url": "https://gw.example/agents/echo", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                    {"url": "https://gw.example/agents/echo/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}
                ],
                "securitySchemes": {"switchboard": {"oauth2SecurityScheme": {
                    "description": "OAuth2 client credentials from the Switchboard gateway's issuer",
                    "flows": {"clientCredentials": {
                        "tokenUrl": "https://issuer.example/oauth2/token",
                        "scopes": {"switchboard/echo": "grants access through the gateway (switchboard/echo)"}
                    }}
                }}},
                "securityRequirements": [{"schemes": {"switchboard": {"list": ["switchboard/echo"]}}}],
                "skills": [{"id": "echo", "name": "Echo"}]
            })
        );
    }

    #[test]
    fn v03_card() {
        let s = vec![];
        let card = json!({
            "name": "Echo",
            "url": "http://10.0.0.5:9000/a2a",
            "preferredTransport": "JSONRPC",
            "additionalInterfaces": [{"url": "http://10.0.0.5:9000/a2a/v1", "transport": "HTTP+JSON"}],
            "security": [{"backend": []}]
        });
        let out = rewrite_card(card, &ctx(&s));
        assert_eq!(out["url"], json!("https://gw.example/agents/echo"));
        assert_eq!(
            out["additionalInterfaces"],
            json!([{"url": "https://gw.example/agents/echo/v1", "transport": "HTTP+JSON"}])
        );
        assert_eq!(out["security"], json!([{"switchboard": []}]));
        assert_eq!(
            out["securitySchemes"]["switchboard"]["type"],
            json!("oauth2")
        );
        assert_eq!(out["preferredTransport"], json!("JSONRPC"));
    }

    #[test]
    fn each_granting_scope_is_an_alternative() {
        let s = vec!["a".to_owned(), "b".to_owned()];
        let card = json!({"supportedInterfaces": [], "url": "http://10.0.0.5:9000/a2a"});
        let out = rewrite_card(card, &ctx(&s));
        assert_eq!(
            out["securityRequirements"],
            json!([
                {"schemes": {"switchboard": {"list": ["a"]}}},
                {"schemes": {"switchboard": {"list": ["b"]}}}
            ])
        );
        assert_eq!(
            out["security"],
            json!([{"switchboard": ["a"]}, {"switchboard": ["b"]}])
        );
    }

    #[test]
    fn non_object_cards_are_left_alone() {
        let s = vec![];
        assert_eq!(rewrite_card(json!([1, 2]), &ctx(&s)), json!([1, 2]));
    }
}
