//! `switchboard import` / `export`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use switchboard_core::registry::file::{ClientSpec, RegistryFile};
use switchboard_emulator::issuer::Issuer;

use super::Ctx;
use crate::cli::{ExportArgs, ImportArgs};

/// Loads a registry file. Everything is validated before anything is
/// written; agents land in one transaction (all or none), then the scopes
/// named in the file are set to exactly what the file says (other scopes are
/// kept), then missing clients are created and their secrets printed once.
pub async fn import(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let file: RegistryFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a registry file", args.file.display()))?;
    let stores = ctx.stores()?;
    let existing: Vec<String> = stores
        .agents
        .list()
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    // Permissions may name agents already in the registry as well as the file's.
    let mut check = file.clone();
    for id in &existing {
        if !check.agents.iter().any(|a| &a.id == id) {
            check
                .agents
                .push(switchboard_core::registry::AgentRecord::new(
                    id.clone(),
                    "http://127.0.0.1",
                ));
        }
    }
    if let Err(errors) = check.validate(|_| false) {
        bail!(
            "{} has {} problem(s); nothing was imported:\n  {}",
            args.file.display(),
            errors.len(),
            errors.join("\n  ")
        );
    }
    let mut clients_to_add = Vec::new();
    let aws = matches!(
        ctx.profile.kind,
        switchboard_core::profile::ProfileKind::Aws(_)
    );
    for c in &file.clients {
        if !aws && stores.clients.get(&c.client_id).await?.is_none() {
            clients_to_add.push(c.clone());
        }
    }
    if aws && !file.clients.is_empty() {
        eprintln!(
            "note: {} client(s) in the file are not imported: profile {} takes tokens from its Cognito user pool, whose app clients Switchboard does not manage",
            file.clients.len(),
            ctx.profile.name
        );
    }

    let n_agents = file.agents.len();
    stores.agents.put_many(file.agents.clone()).await?;
    let mut perms: BTreeMap<String, _> = stores
        .permissions
        .list()
        .await?
        .into_iter()
        .map(|p| (p.scope.clone(), p))
        .collect();
    for p in file.permission_records() {
        perms.insert(p.scope.clone(), p);
    }
    stores
        .permissions
        .replace_all(perms.into_values().collect())
        .await?;
    println!(
        "imported {n_agents} agent(s) and {} scope(s) from {}",
        file.permissions.len(),
        args.file.display()
    );
    if !clients_to_add.is_empty() {
        let issuer = Issuer::open(&ctx.data_dir, stores.clients.clone())?;
        for c in clients_to_add {
            let secret = issuer.create_client(&c.client_id, &c.scopes).await?;
            println!(
                "created client {} with secret {secret} (shown only now)",
                c.client_id
            );
        }
    }
    Ok(())
}

/// Writes the registry as a file (agents without cached cards; clients without secrets).
pub async fn export(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    let mut agents = stores.agents.list().await?;
    for a in &mut agents {
        a.card = None;
    }
    let file = RegistryFile {
        agents,
        permissions: stores
            .permissions
            .list()
            .await?
            .into_iter()
            .map(|p| (p.scope, p.agents))
            .collect(),
        clients: stores
            .clients
            .list()
            .await?
            .into_iter()
            .map(|c| ClientSpec {
                client_id: c.client_id,
                scopes: c.allowed_scopes,
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file)?;
    match args.file {
        Some(path) => {
            std::fs::write(&path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => println!("{text}"),
    }
    Ok(())
}
