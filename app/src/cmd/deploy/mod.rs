//! `switchboard aws deploy`: the gateway in the profile's AWS account, in
//! one command. Builds the Lambda artifact (cargo-lambda) or takes a built
//! one, uploads it to S3 under a key named by its content, creates a change
//! set for the template in `deploy/` (built into the binary), shows it
//! (`--dry-run` stops there), executes it, waits, prints the stack's outputs
//! and writes the profile into the config file. Deploying again with the
//! same artifact and parameters changes nothing and says so.

pub mod artifact;
mod config_file;
pub mod stack;

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::json;
use switchboard_core::profile::{AwsProfile, ProfileKind, LOCAL};
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};

use self::config_file::ProfileUpdate;
use self::stack::Planned;
use super::Ctx;
use crate::cli::DeployArgs;
use crate::output;

/// The stack of a profile: `--stack`, else `switchboard-PROFILE`.
pub fn stack_name(profile: &str, flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .unwrap_or_else(|| format!("switchboard-{profile}"))
}

fn valid_stack_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.len() <= 128
}

/// The profile to deploy: the configured AWS profile, or a new one named by
/// `--profile` with `--region` (or `AWS_REGION`).
fn target(ctx: &Ctx, args: &DeployArgs) -> anyhow::Result<(AwsProfile, bool)> {
    let name = &ctx.profile.name;
    match &ctx.profile.kind {
        ProfileKind::Aws(a) => Ok((a.clone(), false)),
        ProfileKind::Local if name == LOCAL => bail!(
            "`aws deploy` deploys to an AWS profile: name it with --profile NAME \
             (a name the config file does not have yet creates that profile)"
        ),
        ProfileKind::Local => {
            let region = args
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .filter(|r| !r.trim().is_empty())
                .with_context(|| {
                    format!("profile {name} is new: give its region with --region (or AWS_REGION)")
                })?;
            Ok((
                AwsProfile {
                    region,
                    table_prefix: format!("switchboard-{name}-"),
                    secret_prefix: format!("switchboard/{name}/"),
                    issuer: String::new(),
                    jwks_uri: None,
                    token_url: None,
                    endpoint_url: args.endpoint_url.clone(),
                    aws_profile: None,
                },
                true,
            ))
        }
    }
}

/// Parses `--param KEY=VALUE`.
fn extra_params(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => bail!("--param takes KEY=VALUE, not {p:?}"),
        })
        .collect()
}

/// An output of the stack, unless CloudFormation left it unresolved (a
/// local CloudFormation that only pretends to create some resources).
fn output_value(outputs: &[(String, String)], key: &str) -> Option<String> {
    outputs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.contains("${"))
}

/// Runs `aws deploy`.
pub async fn run(ctx: &Ctx, args: DeployArgs) -> anyhow::Result<()> {
    let (aws, new_profile) = target(ctx, &args)?;
    let profile = &ctx.profile.name;
    let stack = stack_name(profile, args.stack.as_deref());
    if !valid_stack_name(&stack) {
        bail!("{stack:?} is not a valid stack name (letters, digits and '-', starting with a letter); choose one with --stack");
    }
    if ctx.profile.production && !args.dry_run && !args.yes {
        bail!("profile {profile} is marked production: look at the change with --dry-run, then deploy with --yes");
    }
    let conn = AwsConnection::new(profile, &aws, AwsCredentials::Chain, AwsSettings::default())?;
    let wait = Duration::from_secs(args.wait);
    let quiet = args.json.json;
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    say(format!(
        "Stack {stack} on {} (profile {profile})",
        conn.target()
    ));

    let build_dir = tempfile::tempdir().context("creating a build directory")?;
    let zip = match &args.artifact {
        Some(p) => p.clone(),
        None => {
            say(format!(
                "Building the {} artifact with cargo-lambda…",
                args.arch
            ));
            artifact::build(&args.arch, build_dir.path())?
        }
    };
    let bytes = artifact::read(&zip)?;
    let size = bytes.len();
    let bucket = args
        .bucket
        .clone()
        .unwrap_or_else(|| format!("{stack}-artifacts-{}", aws.region).to_ascii_lowercase());
    let key = artifact::key_for(&bytes);
    let uploaded = if args.dry_run {
        None
    } else {
        let u = artifact::upload(&conn, &bucket, bytes).await?;
        say(format!(
            "  artifact   s3://{}/{} ({:.1} MB, {})",
            u.bucket,
            u.key,
            u.bytes as f64 / 1e6,
            if u.reused {
                "already there"
            } else {
                "uploaded"
            }
        ));
        Some(u)
    };

    let mut params = vec![
        ("ArtifactBucket".to_owned(), bucket.clone()),
        ("ArtifactKey".to_owned(), key.clone()),
        ("Architecture".to_owned(), args.arch.clone()),
        ("TablePrefix".to_owned(), aws.table_prefix.clone()),
        ("SecretPrefix".to_owned(), aws.secret_prefix.clone()),
        (
            "CognitoDomainPrefix".to_owned(),
            args.domain_prefix
                .clone()
                .unwrap_or_else(|| stack.to_ascii_lowercase()),
        ),
    ];
    for (k, v) in extra_params(&args.params)? {
        params.retain(|(pk, _)| *pk != k);
        params.push((k, v));
    }

    let existing = stack::describe(&conn, &stack).await?;
    if let Some(s) = &existing {
        if s.status == "ROLLBACK_COMPLETE" || s.status == "REVIEW_IN_PROGRESS" {
            bail!(
                "stack {stack} is {} (a creation that never completed); delete it first: \
                 aws cloudformation delete-stack --stack-name {stack}",
                s.status
            );
        }
        if s.status.ends_with("_IN_PROGRESS") {
            bail!(
                "stack {stack} is busy ({}); try again when it settles",
                s.status
            );
        }
    }
    let planned = stack::plan(&conn, &stack, existing.is_some(), &params, wait).await?;
    let (set, creates, changes) = match planned {
        Planned::NoChanges => {
            let state = existing.context("a stack with no changes must exist")?;
            if quiet {
                return output::json(&json!({
                    "stack": stack, "status": state.status, "changed": false,
                    "outputs": state.outputs.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                }));
            }
            println!(
                "No changes: stack {stack} is {} with this artifact and these parameters.",
                state.status
            );
            print_outputs(&state.outputs);
            return write_profile(ctx, &aws, new_profile, &state.outputs, args.dry_run, quiet);
        }
        Planned::Changes {
            name,
            creates,
            changes,
        } => (name, creates, changes),
    };
    if !quiet {
        println!(
            "Change set {set}: {} the stack{}",
            if creates { "creates" } else { "updates" },
            if changes.is_empty() {
                String::new()
            } else {
                format!(", {} change(s):", changes.len())
            }
        );
        let rows: Vec<Vec<String>> = changes
            .iter()
            .map(|c| {
                vec![
                    c.action.clone(),
                    c.logical_id.clone(),
                    c.resource_type.clone(),
                    c.replacement.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        if !rows.is_empty() {
            output::table(&["ACTION", "RESOURCE", "TYPE", "REPLACEMENT"], &rows);
        }
    }
    if args.dry_run {
        stack::discard(&conn, &stack, &set, creates).await?;
        if quiet {
            return output::json(&json!({
                "stack": stack, "dry_run": true, "creates": creates,
                "artifact": {"bucket": bucket, "key": key, "bytes": size},
                "changes": changes,
            }));
        }
        println!("Dry run: nothing was changed (the change set was deleted).");
        return Ok(());
    }
    say(format!(
        "Executing; waiting up to {} s for the stack…",
        args.wait
    ));
    let state = stack::execute(&conn, &stack, &set, wait).await?;
    if quiet {
        output::json(&json!({
            "stack": stack, "status": state.status, "changed": true, "artifact": uploaded,
            "outputs": state.outputs.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        }))?;
    } else {
        println!("Stack {stack}: {}", state.status);
        print_outputs(&state.outputs);
    }
    write_profile(ctx, &aws, new_profile, &state.outputs, false, quiet)
}

fn print_outputs(outputs: &[(String, String)]) {
    let rows: Vec<Vec<String>> = outputs
        .iter()
        .filter(|(k, _)| k != "ProfileConfig")
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    output::table(&["OUTPUT", "VALUE"], &rows);
}

/// Writes the profile from the stack's outputs.
fn write_profile(
    ctx: &Ctx,
    aws: &AwsProfile,
    new_profile: bool,
    outputs: &[(String, String)],
    dry_run: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    if dry_run {
        return Ok(());
    }
    let issuer = output_value(outputs, "Issuer");
    let token_url = output_value(outputs, "TokenUrl");
    if (issuer.is_none() || token_url.is_none()) && !quiet {
        println!(
            "note: the stack did not resolve the user pool's issuer and token URL \
             (a local CloudFormation does not create Cognito resources); the profile keeps its own"
        );
    }
    if new_profile && issuer.is_none() {
        bail!(
            "the stack gave no issuer, so the new profile {} cannot be written",
            ctx.profile.name
        );
    }
    let update = ProfileUpdate {
        region: aws.region.clone(),
        table_prefix: output_value(outputs, "TablePrefix")
            .unwrap_or_else(|| aws.table_prefix.clone()),
        secret_prefix: output_value(outputs, "SecretPrefix")
            .unwrap_or_else(|| aws.secret_prefix.clone()),
        issuer,
        token_url,
        endpoint_url: aws.endpoint_url.clone(),
    };
    config_file::write(&ctx.config_path, &ctx.profile.name, &update)?;
    if !quiet {
        println!(
            "Profile {} written to {}.",
            ctx.profile.name,
            ctx.config_path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_params() {
        assert_eq!(stack_name("prod", None), "switchboard-prod");
        assert_eq!(stack_name("prod", Some("gw")), "gw");
        assert!(valid_stack_name("switchboard-prod"));
        assert!(!valid_stack_name("switchboard_prod"));
        assert!(!valid_stack_name("1abc"));
        assert_eq!(
            extra_params(&["ReservedConcurrency=20".into(), "PublicUrl=".into()]).unwrap(),
            vec![
                ("ReservedConcurrency".to_owned(), "20".to_owned()),
                ("PublicUrl".to_owned(), String::new())
            ]
        );
        assert!(extra_params(&["nope".into()]).is_err());
        let outs = vec![
            (
                "Issuer".to_owned(),
                "https://cognito-idp.us-east-1.amazonaws.com/${UserPool}".to_owned(),
            ),
            ("TablePrefix".to_owned(), "t-".to_owned()),
        ];
        assert_eq!(output_value(&outs, "Issuer"), None);
        assert_eq!(output_value(&outs, "TablePrefix").as_deref(), Some("t-"));
    }

    #[test]
    fn the_built_in_template_is_the_one_in_deploy() {
        let on_disk = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/switchboard.yaml"
        ))
        .unwrap();
        assert_eq!(stack::TEMPLATE, on_disk);
        assert!(
            stack::TEMPLATE.len() < 51_200,
            "CloudFormation takes template bodies up to 51,200 bytes"
        );
    }
}
