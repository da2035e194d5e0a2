//! `clients add|list|rm` on an AWS profile: the Cognito user pool's app
//! clients, with the client-credentials flow. The pool is the one the
//! profile's issuer names (`https://cognito-idp.{region}.amazonaws.com/{poolId}`).
//! Scopes are `RESOURCE_SERVER/NAME`; `clients add` creates the resource
//! server, or adds the scopes it lacks, before it creates the client.

use anyhow::{bail, Context as _};
use aws_sdk_cognitoidentityprovider::error::DisplayErrorContext;
use aws_sdk_cognitoidentityprovider::types::{
    OAuthFlowType, ResourceServerScopeType, UserPoolClientType,
};
use aws_sdk_cognitoidentityprovider::Client;
use serde_json::json;
use switchboard_core::profile::AwsProfile;
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};

use super::Ctx;
use crate::cli::ClientsCmd;
use crate::output;

/// The user pool id at the end of a Cognito issuer URL.
pub fn pool_id(issuer: &str) -> anyhow::Result<String> {
    let id = issuer
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let valid = id.split_once('_').is_some_and(|(region, rest)| {
        !region.is_empty()
            && !rest.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if !valid {
        bail!(
            "the issuer {issuer:?} does not name a Cognito user pool \
             (https://cognito-idp.REGION.amazonaws.com/REGION_ID)"
        );
    }
    Ok(id.to_owned())
}

/// Splits `RESOURCE_SERVER/NAME`.
fn split_scope(scope: &str) -> anyhow::Result<(&str, &str)> {
    match scope.rsplit_once('/') {
        Some((server, name)) if !server.is_empty() && !name.is_empty() => Ok((server, name)),
        _ => bail!(
            "Cognito scopes are RESOURCE_SERVER/NAME (e.g. switchboard/agents), not {scope:?}"
        ),
    }
}

fn sdk_error<E: std::error::Error + 'static>(what: &str, e: E) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", DisplayErrorContext(e))
}

/// Makes sure every scope exists on its resource server (created when
/// missing, or updated with the scopes it lacks).
async fn ensure_scopes(cognito: &Client, pool: &str, scopes: &[String]) -> anyhow::Result<()> {
    let mut by_server: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for s in scopes {
        let (server, name) = split_scope(s)?;
        by_server.entry(server).or_default().push(name);
    }
    for (server, names) in by_server {
        let existing = cognito
            .describe_resource_server()
            .user_pool_id(pool)
            .identifier(server)
            .send()
            .await;
        let (name, mut have) = match existing {
            Ok(out) => {
                let rs = out
                    .resource_server
                    .context("Cognito described no resource server")?;
                (
                    rs.name.unwrap_or_else(|| server.to_owned()),
                    rs.scopes.unwrap_or_default(),
                )
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                (server.to_owned(), Vec::new())
            }
            Err(e) => return Err(sdk_error(&format!("reading resource server {server}"), e)),
        };
        let missing: Vec<&str> = names
            .into_iter()
            .filter(|n| !have.iter().any(|s| s.scope_name() == *n))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let created = have.is_empty();
        for n in missing {
            have.push(
                ResourceServerScopeType::builder()
                    .scope_name(n)
                    .scope_description(format!("{server}/{n}"))
                    .build()
                    .context("building a scope")?,
            );
        }
        let result = if created {
            cognito
                .create_resource_server()
                .user_pool_id(pool)
                .identifier(server)
                .name(&name)
                .set_scopes(Some(have))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error(&format!("creating resource server {server}"), e))
        } else {
            cognito
                .update_resource_server()
                .user_pool_id(pool)
                .identifier(server)
                .name(&name)
                .set_scopes(Some(have))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error(&format!("adding scopes to resource server {server}"), e))
        };
        result?;
    }
    Ok(())
}

/// Every app client of the pool, described (scopes included).
async fn clients(cognito: &Client, pool: &str) -> anyhow::Result<Vec<UserPoolClientType>> {
    let mut ids = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = cognito
            .list_user_pool_clients()
            .user_pool_id(pool)
            .max_results(60)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| sdk_error("listing app clients", e))?;
        ids.extend(
            page.user_pool_clients
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.client_id),
        );
        match page.next_token {
            Some(t) if !t.is_empty() => next = Some(t),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let d = cognito
            .describe_user_pool_client()
            .user_pool_id(pool)
            .client_id(&id)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("describing app client {id}"), e))?;
        out.extend(d.user_pool_client);
    }
    out.sort_by(|a, b| a.client_name.cmp(&b.client_name));
    Ok(out)
}

/// Runs a `clients` subcommand on an AWS profile.
pub async fn run(ctx: &Ctx, aws: &AwsProfile, cmd: ClientsCmd) -> anyhow::Result<()> {
    let pool = pool_id(&aws.issuer)?;
    let conn = AwsConnection::new(
        &ctx.profile.name,
        aws,
        AwsCredentials::Chain,
        AwsSettings::default(),
    )?;
    let cognito = Client::new(&conn.sdk);
    match cmd {
        ClientsCmd::List(f) => {
            let list = clients(&cognito, &pool).await?;
            if f.json {
                let out: Vec<_> = list
                    .iter()
                    .map(|c| json!({"name": c.client_name, "client_id": c.client_id, "scopes": c.allowed_o_auth_scopes()}))
                    .collect();
                return output::json(&out);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    vec![
                        c.client_name.clone().unwrap_or_default(),
                        c.client_id.clone().unwrap_or_default(),
                        c.allowed_o_auth_scopes().join(" "),
                    ]
                })
                .collect();
            output::table(&["NAME", "CLIENT ID", "SCOPES"], &rows);
            Ok(())
        }
        ClientsCmd::Add { id, scopes, json } => {
            if scopes.is_empty() {
                bail!("a Cognito client-credentials client needs at least one --scope RESOURCE_SERVER/NAME");
            }
            if clients(&cognito, &pool)
                .await?
                .iter()
                .any(|c| c.client_name.as_deref() == Some(id.as_str()))
            {
                bail!("the user pool already has an app client named {id}");
            }
            ensure_scopes(&cognito, &pool, &scopes).await?;
            let created = cognito
                .create_user_pool_client()
                .user_pool_id(&pool)
                .client_name(&id)
                .generate_secret(true)
                .allowed_o_auth_flows_user_pool_client(true)
                .allowed_o_auth_flows(OAuthFlowType::ClientCredentials)
                .set_allowed_o_auth_scopes(Some(scopes.clone()))
                .send()
                .await
                .map_err(|e| sdk_error(&format!("creating app client {id}"), e))?
                .user_pool_client
                .context("Cognito returned no client")?;
            let client_id = created.client_id.unwrap_or_default();
            let secret = created.client_secret.unwrap_or_default();
            if json.json {
                return output::json(&json!({
                    "name": id, "client_id": client_id, "client_secret": secret, "scopes": scopes,
                }));
            }
            println!("name           {id}");
            println!("client id      {client_id}");
            println!("client secret  {secret}");
            println!("scopes         {}", scopes.join(" "));
            println!("The secret is shown only now; store it somewhere safe.");
            Ok(())
        }
        ClientsCmd::Rm { id } => {
            let list = clients(&cognito, &pool).await?;
            let found: Vec<&UserPoolClientType> = list
                .iter()
                .filter(|c| {
                    c.client_id.as_deref() == Some(id.as_str())
                        || c.client_name.as_deref() == Some(id.as_str())
                })
                .collect();
            let target = match found.as_slice() {
                [one] => one.client_id.clone().unwrap_or_default(),
                [] => bail!("no app client {id} (by name or client id) in user pool {pool}"),
                _ => bail!("several app clients are named {id}; remove one by its client id"),
            };
            cognito
                .delete_user_pool_client()
                .user_pool_id(&pool)
                .client_id(&target)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("deleting app client {target}"), e))?;
            println!("Removed app client {id} ({target}).");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids_and_scopes() {
        assert_eq!(
            pool_id("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/").unwrap(),
            "eu-west-1_AbC123"
        );
        assert!(pool_id("http://127.0.0.1:7401").is_err());
        assert_eq!(
            split_scope("switchboard/agents").unwrap(),
            ("switchboard", "agents")
        );
        assert!(split_scope("agents").is_err());
        assert!(split_scope("/x").is_err());
    }
}
