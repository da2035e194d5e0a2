//! `switchboard secrets …`. Values go in through standard input and never come out.

use std::io::Read;

use anyhow::{bail, Context};
use switchboard_core::registry::{Secret, StoreError};

use super::Ctx;
use crate::cli::SecretsCmd;
use crate::output;

/// Runs a `secrets` subcommand.
pub async fn run(ctx: &Ctx, cmd: SecretsCmd) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    match cmd {
        SecretsCmd::List(f) => {
            let names = stores.secrets.list_names().await?;
            if f.json {
                return output::json(&names);
            }
            for n in names {
                println!("{n}");
            }
            Ok(())
        }
        SecretsCmd::Set { name } => {
            if name.trim().is_empty() {
                bail!("the secret name is empty");
            }
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("reading the secret from standard input")?;
            let value = value.trim_end_matches(['\r', '\n']).to_owned();
            if value.is_empty() {
                bail!("no secret value on standard input; nothing was stored");
            }
            let secret = Secret::new(value);
            stores.secrets.put(&name, &secret).await?;
            println!("stored secret {name} {}", secret.masked());
            Ok(())
        }
        SecretsCmd::Rm { name } => {
            stores.secrets.delete(&name).await.map_err(|e| match e {
                StoreError::NotFound(_) => anyhow::anyhow!("no secret {name}"),
                other => other.into(),
            })?;
            println!("deleted secret {name}");
            Ok(())
        }
    }
}
