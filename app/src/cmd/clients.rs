//! `switchboard clients …`.

use anyhow::Context;
use serde_json::json;
use switchboard_core::registry::StoreError;
use switchboard_emulator::issuer::Issuer;

use super::Ctx;
use crate::cli::ClientsCmd;
use crate::output;

/// Runs a `clients` subcommand.
pub async fn run(ctx: &Ctx, cmd: ClientsCmd) -> anyhow::Result<()> {
    if let switchboard_core::profile::ProfileKind::Aws(aws) = &ctx.profile.kind {
        // The Cognito user pool's app clients.
        return super::cognito::run(ctx, aws, cmd).await;
    }
    let stores = ctx.stores()?;
    match cmd {
        ClientsCmd::List(f) => {
            let list = stores.clients.list().await?;
            if f.json {
                let out: Vec<_> = list
                    .iter()
                    .map(|c| json!({ "client_id": c.client_id, "scopes": c.allowed_scopes, "created_at": c.created_at }))
                    .collect();
                return output::json(&out);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| vec![c.client_id.clone(), c.allowed_scopes.join(" ")])
                .collect();
            output::table(&["CLIENT", "SCOPES"], &rows);
            Ok(())
        }
        ClientsCmd::Add { id, scopes, json } => {
            let issuer = Issuer::open(&ctx.data_dir, stores.clients.clone())
                .context("opening the local issuer")?;
            let secret = issuer.create_client(&id, &scopes).await?;
            if json.json {
                return output::json(&json!({
                    "client_id": id,
                    "client_secret": secret,
                    "scopes": scopes,
                }));
            }
            println!("client id      {id}");
            println!("client secret  {secret}");
            println!("scopes         {}", scopes.join(" "));
            println!("The secret is shown only now; store it somewhere safe.");
            Ok(())
        }
        ClientsCmd::Rm { id } => {
            stores.clients.delete(&id).await.map_err(|e| match e {
                StoreError::NotFound(_) => anyhow::anyhow!("no client {id}"),
                other => other.into(),
            })?;
            println!("removed client {id}");
            Ok(())
        }
    }
}
