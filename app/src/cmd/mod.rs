//! One file per subcommand.

mod agents;
mod clients;
mod permissions;
mod registry_io;
mod secrets;
mod serve;
mod token;

use std::path::PathBuf;

use switchboard_core::profile::{find_profile, Profile, ProfileKind};
use switchboard_core::store::Stores;

use crate::cli::{Cli, Command, ServeArgs};
use crate::paths;

/// What every command starts from.
pub struct Ctx {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The config file's contents.
    pub config: paths::ConfigFile,
    /// The profile chosen with `--profile`.
    pub profile: Profile,
}

impl Ctx {
    /// Opens the stores of the data directory.
    pub fn stores(&self) -> anyhow::Result<Stores> {
        match &self.profile.kind {
            ProfileKind::Local => switchboard_emulator::stack::open_stores(&self.data_dir),
            ProfileKind::Aws(_) => anyhow::bail!(
                "profile {} is an AWS profile, and this build has no AWS backends",
                self.profile.name
            ),
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let config = paths::load_config(cli.config.as_deref())?;
    let profile = find_profile(&config.profiles, &cli.profile).map_err(anyhow::Error::msg)?;
    let ctx = Ctx {
        data_dir: paths::data_dir(cli.data_dir.as_deref())?,
        config,
        profile,
    };
    match cli.command {
        None => {
            init_logging("info");
            serve::run(
                &ctx,
                ServeArgs {
                    listen: ([127, 0, 0, 1], 7400).into(),
                    json: false,
                },
            )
            .await
        }
        Some(Command::Serve(args)) => {
            init_logging("info");
            serve::run(&ctx, args).await
        }
        Some(other) => {
            init_logging("warn");
            match other {
                Command::Serve(_) => unreachable_serve(),
                Command::Agents(c) => agents::run(&ctx, c).await,
                Command::Permissions(c) => permissions::run(&ctx, c).await,
                Command::Clients(c) => clients::run(&ctx, c).await,
                Command::Token(c) => token::run(&ctx, c).await,
                Command::Secrets(c) => secrets::run(&ctx, c).await,
                Command::Import(a) => registry_io::import(&ctx, a).await,
                Command::Export(a) => registry_io::export(&ctx, a).await,
            }
        }
    }
}

fn unreachable_serve() -> anyhow::Result<()> {
    anyhow::bail!("serve is handled above")
}
