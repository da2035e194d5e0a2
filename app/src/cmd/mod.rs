//! One file per subcommand.

pub(crate) mod agents;
mod aws;
mod clients;
mod cognito;
pub(crate) mod deploy;
mod discover;
mod health;
mod permissions;
mod registry_io;
mod secrets;
mod serve;
mod sync;
pub(crate) mod token;

use std::path::PathBuf;

use switchboard_core::profile::{find_profile, Profile, ProfileKind};
use switchboard_core::store::Stores;

use crate::cli::{AwsCmd, Cli, Command};
use crate::paths;

/// What every command starts from.
pub struct Ctx {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The config file's contents.
    pub config: paths::ConfigFile,
    /// The profile chosen with `--profile`.
    pub profile: Profile,
    /// Where the config file is (or would be).
    pub config_path: PathBuf,
}

impl Ctx {
    /// Opens the stores of the chosen profile: the data directory's SQLite
    /// file for `local`, DynamoDB and Secrets Manager for an AWS profile.
    pub fn stores(&self) -> anyhow::Result<Stores> {
        self.stores_of(&self.profile)
    }

    /// Opens the stores of any profile.
    pub fn stores_of(&self, profile: &Profile) -> anyhow::Result<Stores> {
        Stores::open(profile, &self.data_dir).map_err(|e| match profile.kind {
            ProfileKind::Local => anyhow::anyhow!(
                "opening the data directory {}: {e}",
                self.data_dir.display()
            ),
            ProfileKind::Aws(_) => anyhow::anyhow!("profile {}: {e}", profile.name),
        })
    }
}

/// Where the local stack listens unless told otherwise.
const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 7400);

/// Runs a parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Lambda) = cli.command {
        // No config file nor data directory in a function: the environment only.
        return crate::lambda::run().await;
    }
    if let Some(Command::Health { url, timeout }) = &cli.command {
        // Needs no config file: a container's health check.
        return health::run(url, std::time::Duration::from_secs(*timeout)).await;
    }
    let config = paths::load_config(cli.config.as_deref())?;
    let profile = match find_profile(&config.profiles, &cli.profile) {
        Ok(p) => p,
        // `aws deploy` writes the profile it deploys.
        Err(_) if matches!(&cli.command, Some(Command::Aws(AwsCmd::Deploy(_)))) => Profile {
            name: cli.profile.clone(),
            ..Profile::local()
        },
        Err(e) => anyhow::bail!(e),
    };
    let ctx = Ctx {
        data_dir: paths::data_dir(cli.data_dir.as_deref())?,
        config,
        profile,
        config_path: paths::config_path(cli.config.as_deref())?,
    };
    if cli.listen.is_some() && cli.command.is_some() {
        anyhow::bail!("--listen before a subcommand is for the console; use `switchboard serve --listen ADDR`");
    }
    match cli.command {
        None => {
            crate::console::run(crate::console::Options {
                data_dir: ctx.data_dir.clone(),
                listen: cli.listen.unwrap_or(DEFAULT_LISTEN.into()),
                gateway: ctx.config.gateway.clone(),
                profile: ctx.profile.clone(),
                profiles: switchboard_core::profile::all_profiles(&ctx.config.profiles),
                keymap_path: paths::config_path(cli.config.as_deref())?
                    .with_file_name(crate::console::keymap::KEYMAP_FILE),
            })
            .await
        }
        Some(Command::Serve(args)) => {
            let _log = crate::logging::init_stderr("info");
            serve::run(&ctx, args).await
        }
        Some(other) => {
            let _log = crate::logging::init_stderr("warn");
            match other {
                Command::Serve(_) | Command::Lambda | Command::Health { .. } => unreachable_serve(),
                Command::Agents(c) => agents::run(&ctx, c).await,
                Command::Permissions(c) => permissions::run(&ctx, c).await,
                Command::Clients(c) => clients::run(&ctx, c).await,
                Command::Token(c) => token::run(&ctx, c).await,
                Command::Secrets(c) => secrets::run(&ctx, c).await,
                Command::Import(a) => registry_io::import(&ctx, a).await,
                Command::Export(a) => registry_io::export(&ctx, a).await,
                Command::Aws(c) => aws::run(&ctx, c).await,
                Command::Sync(a) => sync::run(&ctx, a).await,
                Command::Discover(a) => discover::run(&ctx, a).await,
            }
        }
    }
}

fn unreachable_serve() -> anyhow::Result<()> {
    anyhow::bail!("serve, lambda and health are handled above")
}
