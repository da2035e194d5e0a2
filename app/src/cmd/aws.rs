//! `switchboard aws bootstrap|status`: an AWS profile's tables.

use std::time::Duration;

use anyhow::bail;
use serde_json::json;
use switchboard_core::profile::{all_profiles, AwsProfile, ProfileKind};
use switchboard_core::registry::{AgentStore, PermissionStore, SecretStore};
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};
use switchboard_core::store::dynamodb::{DynamoStore, TableState};
use switchboard_core::store::secretsmanager::SecretsManagerStore;

use super::Ctx;
use crate::cli::AwsCmd;
use crate::output;

/// The AWS settings of the chosen profile, or an error naming the AWS profiles.
pub(crate) fn aws_profile(ctx: &Ctx) -> anyhow::Result<&AwsProfile> {
    match &ctx.profile.kind {
        ProfileKind::Aws(a) => Ok(a),
        ProfileKind::Local => {
            let names: Vec<String> = all_profiles(&ctx.config.profiles)
                .into_iter()
                .filter(|p| matches!(p.kind, ProfileKind::Aws(_)))
                .map(|p| p.name)
                .collect();
            if names.is_empty() {
                bail!(
                    "`aws` commands work on an AWS profile, and the config file names none; \
                     add one under [profiles.NAME] with kind = \"aws\" (see the README)"
                )
            }
            bail!(
                "`aws` commands work on an AWS profile; choose one with --profile NAME ({})",
                names.join(", ")
            )
        }
    }
}

fn rows(tables: &[TableState]) -> Vec<Vec<String>> {
    tables
        .iter()
        .map(|t| {
            vec![
                t.spec.name.clone(),
                t.spec.role.to_owned(),
                t.spec.key.to_owned(),
                t.status.clone(),
                t.ttl_status
                    .as_ref()
                    .map(|s| format!("{} ({})", s, t.spec.ttl.unwrap_or_default()))
                    .unwrap_or_else(|| "-".into()),
                t.items.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

const HEADER: [&str; 6] = ["TABLE", "HOLDS", "KEY", "STATUS", "TTL", "ITEMS"];

/// Runs an `aws` subcommand.
pub async fn run(ctx: &Ctx, cmd: AwsCmd) -> anyhow::Result<()> {
    if let AwsCmd::Deploy(args) = cmd {
        // Works on a profile the config file does not have yet, too.
        return super::deploy::run(ctx, args).await;
    }
    let aws = aws_profile(ctx)?;
    let conn = AwsConnection::new(
        &ctx.profile.name,
        aws,
        AwsCredentials::Chain,
        AwsSettings::default(),
    )?;
    let db = DynamoStore::new(conn.clone());
    match cmd {
        AwsCmd::Bootstrap { wait, json } => {
            let tables = db.bootstrap(Duration::from_secs(wait)).await?;
            if json.json {
                return output::json(&json!({
                    "profile": ctx.profile.name,
                    "target": conn.target(),
                    "tables": tables,
                }));
            }
            println!("profile {}: {}", ctx.profile.name, conn.target());
            output::table(&HEADER, &rows(&tables));
            let created = tables.iter().filter(|t| t.created).count();
            if created == 0 {
                println!("Every table was already there and active; nothing changed.");
            } else {
                println!("Created or updated {created} table(s); every table is active.");
            }
            Ok(())
        }
        AwsCmd::Deploy(args) => super::deploy::run(ctx, args).await,
        AwsCmd::Status(f) => {
            let stack_name = super::deploy::stack_name(&ctx.profile.name, f.stack.as_deref());
            let stack = super::deploy::stack::describe(&conn, &stack_name).await;
            let tables = db.status().await?;
            let ready = tables
                .iter()
                .all(|t| t.status == "ACTIVE" && t.problem.is_none());
            let secrets = SecretsManagerStore::new(conn.clone());
            let secret_names = secrets.list_names().await.map_err(|e| e.to_string());
            let generations = if ready {
                Some((
                    AgentStore::generation(&db).await?,
                    PermissionStore::generation(&db).await?,
                ))
            } else {
                None
            };
            let jwks = aws.jwks_url();
            if f.json.json {
                return output::json(&json!({
                    "stack": match &stack {
                        Ok(st) => json!({"name": stack_name, "state": st}),
                        Err(e) => json!({"name": stack_name, "error": e.to_string()}),
                    },
                    "profile": ctx.profile.name,
                    "target": conn.target(),
                    "ready": ready,
                    "tables": tables,
                    "secrets": match &secret_names {
                        Ok(n) => json!({"prefix": aws.secret_prefix, "count": n.len()}),
                        Err(e) => json!({"prefix": aws.secret_prefix, "error": e}),
                    },
                    "generations": generations.map(|(a, p)| json!({"agents": a, "permissions": p})),
                    "issuer": aws.issuer,
                    "jwks_uri": jwks,
                    "token_url": aws.token_url,
                }));
            }
            println!("profile {}: {}", ctx.profile.name, conn.target());
            output::table(&HEADER, &rows(&tables));
            for t in &tables {
                if let Some(p) = &t.problem {
                    println!("problem: {p}");
                }
            }
            match &secret_names {
                Ok(n) => println!(
                    "secrets      {} under prefix {:?} in Secrets Manager",
                    n.len(),
                    aws.secret_prefix
                ),
                Err(e) => println!("secrets      cannot list: {e}"),
            }
            if let Some((a, p)) = generations {
                println!("generations  agents {a}, permissions {p}");
            }
            println!("issuer       {}", aws.issuer);
            println!("JWKS         {jwks}");
            match &aws.token_url {
                Some(t) => println!("token URL    {t}"),
                None => println!(
                    "token URL    not set (cards advertise {}/oauth2/token; set token_url to the user pool domain's endpoint)",
                    aws.issuer_url()
                ),
            }
            match &stack {
                Ok(Some(st)) => println!(
                    "stack        {stack_name}: {}{}",
                    st.status,
                    st.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                Ok(None) => println!(
                    "stack        {stack_name}: none (create it with `switchboard --profile {} aws deploy`)",
                    ctx.profile.name
                ),
                Err(e) => println!("stack        {stack_name}: cannot describe: {e:#}"),
            }
            if !ready {
                println!("Not ready: {}.", conn.bootstrap_hint());
            }
            Ok(())
        }
    }
}
