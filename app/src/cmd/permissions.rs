//! `switchboard permissions …`.

use anyhow::bail;
use switchboard_core::auth::scopes::ALL_AGENTS;
use switchboard_core::registry::{validate_permission, StoreError};

use super::Ctx;
use crate::cli::PermissionsCmd;
use crate::output;

/// Runs a `permissions` subcommand.
pub async fn run(ctx: &Ctx, cmd: PermissionsCmd) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    match cmd {
        PermissionsCmd::List(f) => {
            let list = stores.permissions.list().await?;
            if f.json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|p| {
                    vec![
                        p.scope.clone(),
                        p.agents.iter().cloned().collect::<Vec<_>>().join(" "),
                    ]
                })
                .collect();
            output::table(&["SCOPE", "AGENTS"], &rows);
            Ok(())
        }
        PermissionsCmd::Grant { scope, agents } => {
            validate_permission(&scope, &agents).map_err(anyhow::Error::msg)?;
            let mut unknown = Vec::new();
            for a in &agents {
                if a != ALL_AGENTS && stores.agents.get(a).await?.is_none() {
                    unknown.push(a.as_str());
                }
            }
            if !unknown.is_empty() {
                bail!("no agent {}; nothing was granted", unknown.join(", "));
            }
            let p = stores.permissions.grant(&scope, &agents).await?;
            println!(
                "{} now grants {}",
                p.scope,
                p.agents.iter().cloned().collect::<Vec<_>>().join(" ")
            );
            Ok(())
        }
        PermissionsCmd::Revoke { scope, agents } => {
            match stores.permissions.revoke(&scope, &agents).await {
                Ok(Some(p)) => println!(
                    "{} now grants {}",
                    p.scope,
                    p.agents.iter().cloned().collect::<Vec<_>>().join(" ")
                ),
                Ok(None) => println!("{scope} grants nothing now and was removed"),
                Err(StoreError::NotFound(_)) => bail!("no scope {scope}"),
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
    }
}
