//! `switchboard token …`: mint tokens with the local issuer's key, and inspect any token.

use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use serde_json::{json, Value};
use switchboard_core::auth::jwt::scopes_of;
use switchboard_core::auth::{Explanation, PermissionSet, Verifier, VerifierConfig};
use switchboard_emulator::issuer::Issuer;
use switchboard_emulator::stack::read_runtime;

use super::Ctx;
use crate::cli::TokenCmd;
use crate::output;

/// Runs a `token` subcommand.
pub async fn run(ctx: &Ctx, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Mint {
            client,
            scopes,
            ttl,
            issuer,
        } => {
            let issuer_url = match issuer {
                Some(u) => u,
                None => read_runtime(&ctx.data_dir)
                    .map(|r| r.issuer_url)
                    .with_context(|| {
                        format!(
                            "no local stack is running on {}; start `switchboard serve` or pass --issuer URL",
                            ctx.data_dir.display()
                        )
                    })?,
            };
            let stores = ctx.stores()?;
            let issuer = Issuer::open(&ctx.data_dir, stores.clients.clone())?;
            let token = issuer.mint(&issuer_url, &client, &scopes, Duration::from_secs(ttl))?;
            println!("{token}");
            Ok(())
        }
        TokenCmd::Decode { token, json } => decode(ctx, token.trim(), json.json).await,
    }
}

fn decode_part(part: &str, what: &str) -> anyhow::Result<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .with_context(|| format!("the token's {what} is not base64url"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("the token's {what} is not JSON"))
}

/// A JWT's header and claims, without checking anything.
pub(crate) fn decode_jwt(token: &str) -> anyhow::Result<(Value, Value)> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        bail!(
            "not a JWT: expected three dot-separated parts, found {}",
            parts.len()
        );
    }
    Ok((
        decode_part(parts[0], "header")?,
        decode_part(parts[1], "claims")?,
    ))
}

/// What a token with `claims` reaches among `agents`, and why.
pub(crate) fn explain_all(
    permissions: &PermissionSet,
    claims: &Value,
    agents: impl IntoIterator<Item = impl AsRef<str>>,
) -> Vec<Explanation> {
    let scopes = scopes_of(claims);
    agents
        .into_iter()
        .map(|a| permissions.explain(&scopes, a.as_ref()))
        .collect()
}

async fn decode(ctx: &Ctx, token: &str, as_json: bool) -> anyhow::Result<()> {
    let (header, claims) = decode_jwt(token)?;

    // Validity, checked exactly as the gateway would against the running stack's JWKS.
    let validity = match read_runtime(&ctx.data_dir) {
        Some(rt) => {
            let verifier = Verifier::new(
                VerifierConfig {
                    issuer: rt.issuer_url.clone(),
                    jwks_uri: Some(rt.jwks_url.clone()),
                    allowed_client_ids: ctx.config.gateway.allowed_client_ids.clone(),
                    leeway_secs: ctx.config.gateway.leeway_secs,
                },
                reqwest::Client::new(),
            );
            match verifier.verify(token).await {
                Ok(_) => json!({ "valid": true, "checked_against": rt.jwks_url }),
                Err(e) => {
                    json!({ "valid": false, "reason": e.to_string(), "checked_against": rt.jwks_url })
                }
            }
        }
        None => json!({
            "valid": Value::Null,
            "reason": format!("no local stack is running on {}; start `switchboard serve` to check signatures against its JWKS", ctx.data_dir.display()),
        }),
    };

    let stores = ctx.stores()?;
    let permissions = PermissionSet::new(stores.permissions.list().await?);
    let agents = stores.agents.list().await?;
    let explanations = explain_all(&permissions, &claims, agents.iter().map(|a| &a.id));

    if as_json {
        return output::json(&json!({
            "header": header,
            "claims": claims,
            "validity": validity,
            "agents": explanations,
        }));
    }
    println!("header  {}", serde_json::to_string_pretty(&header)?);
    println!("claims  {}", serde_json::to_string_pretty(&claims)?);
    match validity.get("valid").and_then(Value::as_bool) {
        Some(true) => println!(
            "valid   yes (against {})",
            validity["checked_against"].as_str().unwrap_or("")
        ),
        Some(false) => println!("valid   NO: {}", validity["reason"].as_str().unwrap_or("")),
        None => println!(
            "valid   unknown: {}",
            validity["reason"].as_str().unwrap_or("")
        ),
    }
    println!();
    let rows: Vec<Vec<String>> = explanations
        .iter()
        .map(|e| {
            vec![
                e.agent.clone(),
                if e.allowed { "yes" } else { "no" }.into(),
                e.reason.clone(),
            ]
        })
        .collect();
    output::table(&["AGENT", "REACHES", "WHY"], &rows);
    Ok(())
}
