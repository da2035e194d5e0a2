//! Tokens in the console: signed by the local issuer, asked of an AWS
//! profile's token endpoint, or pasted and taken apart against the active
//! profile's verifier and permissions.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::registry::Secret;

use super::{Active, Core};
use crate::console::msg::{CoreEvent, Inspection, Minted};

impl Core {
    /// Signs a token for a client with the local issuer (refused on an AWS
    /// profile, whose gateways only take their own issuer's tokens).
    pub(super) async fn mint(
        &self,
        a: &Active,
        client: String,
        scopes: Vec<String>,
        ttl: Duration,
    ) {
        if let ProfileKind::Aws(_) = a.profile.kind {
            self.failed(
                format!(
                    "profile {} verifies tokens from its own issuer, so a locally signed one would be refused; \
                     mint one from its token endpoint with the client's id and secret",
                    a.profile.name
                ),
                true,
            )
            .await;
            return;
        }
        match self.issuer.mint(&self.issuer_url, &client, &scopes, ttl) {
            Ok(token) => {
                self.emit(CoreEvent::Minted(Minted {
                    client,
                    scopes,
                    token,
                    ttl,
                }))
                .await
            }
            Err(e) => self.failed(format!("{e:#}"), true).await,
        }
    }

    /// A client-credentials token from the AWS profile's token endpoint,
    /// as `token mint` gets one.
    pub(super) async fn mint_remote(
        &self,
        profile: &Profile,
        client: &str,
        secret: &Secret,
        scopes: &[String],
    ) -> Result<Minted, String> {
        let Some(aws) = profile.aws() else {
            return Err(format!(
                "profile {} signs tokens with the local issuer's key: mint one for a listed client",
                profile.name
            ));
        };
        let http = crate::cmd::token::token_http_client().map_err(|e| format!("{e:#}"))?;
        let token =
            crate::cmd::token::mint_from_profile(&http, &profile.name, aws, client, secret, scopes)
                .await
                .map_err(|e| format!("{e:#}"))?;
        let claims = crate::cmd::token::decode_jwt(&token.access_token)
            .map(|(_, c)| c)
            .unwrap_or(Value::Null);
        let granted = match &token.scope {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None if claims.get("scope").is_some() || claims.get("scp").is_some() => {
                switchboard_core::auth::jwt::scopes_of(&claims)
            }
            None => scopes.to_vec(),
        };
        let ttl = match token.expires_in {
            Some(s) => Duration::from_secs(s),
            None => {
                let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Duration::from_secs(exp.saturating_sub(now))
            }
        };
        Ok(Minted {
            client: client.to_owned(),
            scopes: granted,
            token: token.access_token,
            ttl,
        })
    }

    /// A token taken apart, checked by the active profile's verifier and
    /// explained against its permissions.
    pub(super) async fn inspect(&self, a: &Active, token: &str) -> Result<Inspection, String> {
        let (header, claims) =
            crate::cmd::token::decode_jwt(token.trim()).map_err(|e| format!("{e:#}"))?;
        let validity = a
            .gateway
            .verifier
            .verify(token.trim())
            .await
            .map(|p| p.client_id.clone())
            .map_err(|e| e.to_string());
        let snapshot = a.gateway.registry.snapshot();
        let mut ids: Vec<&String> = snapshot.agents.keys().collect();
        ids.sort();
        let agents = crate::cmd::token::explain_all(&snapshot.permissions, &claims, ids);
        Ok(Inspection {
            header,
            claims,
            validity,
            agents,
        })
    }
}
