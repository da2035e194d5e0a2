//! `switchboard sync --from A --to B [--dry-run] [--copy-secrets]`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use serde_json::json;
use switchboard_core::profile::find_profile;
use switchboard_core::sync::{self, SyncCounts, SyncOptions};

use super::Ctx;
use crate::cli::SyncArgs;
use crate::output;

/// Shows the difference between two profiles and, unless `--dry-run`, makes
/// the target match the source.
pub async fn run(ctx: &Ctx, args: SyncArgs) -> anyhow::Result<()> {
    let from = find_profile(&ctx.config.profiles, &args.from).map_err(anyhow::Error::msg)?;
    let to = find_profile(&ctx.config.profiles, &args.to).map_err(anyhow::Error::msg)?;
    if from.name == to.name {
        bail!(
            "--from and --to are both {:?}; name two profiles",
            from.name
        );
    }
    let source = ctx.stores_of(&from)?;
    let target = ctx.stores_of(&to)?;
    let options = SyncOptions {
        copy_secrets: args.copy_secrets,
    };
    let plan = sync::plan(&source, &target, options)
        .await
        .with_context(|| format!("comparing {} with {}", from.name, to.name))?;
    let counts = plan.counts();
    let as_json = |applied: Option<&SyncCounts>| {
        output::json(&json!({
            "from": from.name, "to": to.name, "dry_run": args.dry_run,
            "plan": plan, "counts": counts, "applied": applied,
        }))
    };

    if !args.json.json {
        // The same lines the console's sync diff shows (core::sync).
        let report = if args.dry_run {
            plan.dry_run_report(&from.name, &to.name)
        } else {
            plan.report(&from.name, &to.name)
        };
        for line in report {
            println!("{line}");
        }
    }
    if plan.is_empty() || args.dry_run {
        if args.json.json {
            return as_json(None);
        }
        return Ok(());
    }

    if to.production && !args.yes {
        confirm(&to.name)?;
    }
    let applied = sync::apply(&plan, &source, &target).await.map_err(|e| {
        anyhow::anyhow!(
            "{e}\nRunning the same sync again is safe: it picks up where this one stopped."
        )
    })?;
    if args.json.json {
        return as_json(Some(&applied));
    }
    println!("applied: {}", applied.summary());
    Ok(())
}

/// Asks for the profile name to be typed; refuses without a terminal.
fn confirm(profile: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "profile {profile} is marked production; pass --yes to sync to it without a terminal"
        );
    }
    print!("Profile {profile} is marked production. Type its name to go ahead: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != profile {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}
