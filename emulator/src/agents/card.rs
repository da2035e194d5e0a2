//! Agent cards. Each card is what the official SDK's server publishes for an
//! agent with a 1.0 and a 0.3 JSON-RPC interface: the 1.0 fields
//! (`supportedInterfaces`, `securitySchemes.*.oauth2SecurityScheme`,
//! `securityRequirements`) with the 0.3 fields merged in (`url`,
//! `preferredTransport`, `protocolVersion`, `additionalInterfaces`,
//! `securitySchemes.*.type`/`flows`, `security`). 1.0 clients ignore the 0.3
//! fields and 0.3 clients ignore the 1.0 ones.

use serde_json::{json, Value};

/// Name of the OAuth2 scheme in the guarded agent's card.
pub const OAUTH_SCHEME: &str = "oauth2";

/// What a card says about one agent.
pub struct CardInfo<'a> {
    /// Display name.
    pub name: &'a str,
    /// What the agent does.
    pub description: &'a str,
    /// The one skill.
    pub skill: Value,
    /// `(token_url, scope)` when calls need an OAuth2 client-credentials token.
    pub oauth: Option<(&'a str, &'a str)>,
}

/// The card for an agent served at `url`.
pub fn build(info: &CardInfo<'_>, url: &str) -> Value {
    let mut card = json!({
        "name": info.name,
        "description": info.description,
        "version": env!("CARGO_PKG_VERSION"),
        "supportedInterfaces": [
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3" },
        ],
        "provider": { "organization": "Switchboard samples", "url": "https://example.org/switchboard/samples" },
        "capabilities": { "streaming": true, "pushNotifications": false },
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [info.skill],
        // 0.3 fields.
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3",
        "additionalInterfaces": [{ "url": url, "transport": "JSONRPC" }],
    });
    if let Some((token_url, scope)) = info.oauth {
        let flows = json!({
            "clientCredentials": {
                "tokenUrl": token_url,
                "scopes": { scope: "Call this agent" },
            }
        });
        card["securitySchemes"] = json!({
            OAUTH_SCHEME: {
                "oauth2SecurityScheme": {
                    "description": "OAuth2 client credentials from the local issuer",
                    "flows": flows,
                },
                // 0.3 shape of the same scheme.
                "type": "oauth2",
                "description": "OAuth2 client credentials from the local issuer",
                "flows": flows,
            }
        });
        card["securityRequirements"] =
            json!([{ "schemes": { OAUTH_SCHEME: { "list": [scope] } } }]);
        card["security"] = json!([{ OAUTH_SCHEME: [scope] }]);
    }
    card
}

/// A skill entry.
pub fn skill(id: &str, name: &str, description: &str, tags: &[&str], examples: &[&str]) -> Value {
    json!({
        "id": id,
        "name": name,
        "description": description,
        "tags": tags,
        "examples": examples,
        "inputModes": ["text/plain"],
        "outputModes": ["text/plain"],
    })
}
