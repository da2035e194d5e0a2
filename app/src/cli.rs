//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `token mint --ttl`'s default; any other value only applies to the local
/// issuer.
pub const LOCAL_DEFAULT_TTL_SECS: u64 = 3600;

/// Switchboard: an A2A gateway with a local stack for developing agents offline.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory (default: $SWITCHBOARD_DATA, else the XDG data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default: $SWITCHBOARD_CONFIG, else $XDG_CONFIG_HOME/switchboard/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Profile to work against: `local` (default) or one named in the config file.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "SWITCHBOARD_PROFILE",
        default_value = "local"
    )]
    pub profile: String,
    /// Gateway address of the console's local stack (port 0: free ports).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// What to do; without one, the console opens with the local stack inside.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole local stack headless: gateway, issuer and sample agents.
    Serve(ServeArgs),
    /// The agent registry.
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// Which scopes reach which agents.
    #[command(subcommand)]
    Permissions(PermissionsCmd),
    /// Clients of the local issuer.
    #[command(subcommand)]
    Clients(ClientsCmd),
    /// Mint and inspect tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Backend secrets (values are never printed).
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Load agents, permissions and clients from a registry file (all or nothing).
    Import(ImportArgs),
    /// Write agents, permissions and clients as a registry file.
    Export(ExportArgs),
    /// An AWS profile's DynamoDB tables: create them, or see what exists.
    #[command(subcommand)]
    Aws(AwsCmd),
    /// Copy agents and permissions from one profile to another (shows the difference first).
    Sync(SyncArgs),
    /// Find agents by describing what you need (every agent: the operator's view).
    Discover(DiscoverArgs),
    /// Serve the gateway as an AWS Lambda function with response streaming
    /// (chosen by itself when AWS_LAMBDA_RUNTIME_API is set and no command is
    /// given); settings from SWITCHBOARD_* environment variables (README).
    Lambda,
    /// Ask a running gateway whether it is ready (a container's health check).
    Health {
        /// The readiness URL.
        #[arg(long, default_value = "http://127.0.0.1:7400/readyz")]
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

/// `discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// What you need, in plain words, e.g. "book me a flight to Lisbon".
    #[arg(value_parser = parse_query)]
    pub query: String,
    /// How many agents to show (1–50).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub k: u32,
    #[command(flatten)]
    pub json: JsonFlag,
}

fn parse_query(q: &str) -> Result<String, String> {
    switchboard_core::discovery::validate_query(q)
        .map(str::to_owned)
        .map_err(|e| e.to_string())
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Gateway address; port 0 picks free ports for every server.
    #[arg(long, default_value = "127.0.0.1:7400", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Print one JSON line when ready (URLs, sample agents, a client id and secret).
    #[arg(long)]
    pub json: bool,
}

/// `agents …`.
#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// List agents.
    List(JsonFlag),
    /// Show one agent.
    Show {
        /// Agent id.
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Add an agent. Its card is always fetched (with the backend's
    /// credentials) and stored; name and description come from it when not given.
    Add(AgentAddArgs),
    /// Change fields of an agent; a new `--url` (or backend auth) fetches the card again.
    Edit(AgentEditArgs),
    /// Fetch agents' cards again (with their backend credentials) and store them.
    Refresh {
        /// Agent id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every agent.
        #[arg(long)]
        all: bool,
    },
    /// Delete an agent.
    Rm {
        /// Agent id.
        id: String,
    },
    /// Let requests reach an agent.
    Enable {
        /// Agent id.
        id: String,
    },
    /// Answer 404 for an agent without deleting it.
    Disable {
        /// Agent id.
        id: String,
    },
}

/// `--json`.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Backend auth options shared by add and edit.
#[derive(Debug, Args, Default, Clone)]
pub struct AuthArgs {
    /// Send this header to the backend, its value read from --secret.
    #[arg(long, value_name = "NAME", conflicts_with = "oauth2_token_url")]
    pub auth_header: Option<String>,
    /// OAuth2 client-credentials token endpoint for the backend.
    #[arg(long, value_name = "URL", requires = "oauth2_client_id")]
    pub oauth2_token_url: Option<String>,
    /// The gateway's client id at that endpoint.
    #[arg(long, value_name = "ID", requires = "oauth2_token_url")]
    pub oauth2_client_id: Option<String>,
    /// Scopes to request from the backend's token endpoint.
    #[arg(long = "oauth2-scope", value_name = "SCOPE")]
    pub oauth2_scopes: Vec<String>,
    /// Name of the secret holding the header value or client secret
    /// (set it with `switchboard secrets set`).
    #[arg(long, value_name = "NAME")]
    pub secret: Option<String>,
    /// Send no credentials to the backend.
    #[arg(long, conflicts_with_all = ["auth_header", "oauth2_token_url"])]
    pub no_auth: bool,
}

/// `agents add`.
#[derive(Debug, Args)]
pub struct AgentAddArgs {
    /// Agent id: 1–64 of a-z, 0-9, '-', '_', starting with a letter or digit.
    pub id: String,
    /// Backend base URL.
    #[arg(long)]
    pub url: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Requests per minute per client (default: the gateway's).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Add it disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `agents edit`.
#[derive(Debug, Args)]
pub struct AgentEditArgs {
    /// Agent id.
    pub id: String,
    /// New backend base URL.
    #[arg(long)]
    pub url: Option<String>,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
    /// New per-minute limit.
    #[arg(long, conflicts_with = "default_limit")]
    pub limit: Option<u32>,
    /// Use the gateway's default limit.
    #[arg(long)]
    pub default_limit: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `permissions …`.
#[derive(Debug, Subcommand)]
pub enum PermissionsCmd {
    /// List scopes and the agents they grant.
    List(JsonFlag),
    /// Let a scope reach agents (`*` for all).
    Grant {
        /// The scope, as it appears in tokens.
        scope: String,
        /// Agent ids, or `*`.
        #[arg(required = true)]
        agents: Vec<String>,
    },
    /// Take agents away from a scope.
    Revoke {
        /// The scope.
        scope: String,
        /// Agent ids, or `*`.
        #[arg(required = true)]
        agents: Vec<String>,
    },
}

/// `clients …`.
#[derive(Debug, Subcommand)]
pub enum ClientsCmd {
    /// List clients of the local issuer.
    List(JsonFlag),
    /// Add a client; its secret is printed once.
    Add {
        /// Client id.
        id: String,
        /// Scopes the client may request.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a client.
    Rm {
        /// Client id.
        id: String,
    },
}

/// `token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// A token for a client and scopes. Local profile: signed with the local
    /// issuer's key. AWS profile: obtained from the profile's token endpoint
    /// with the client-credentials grant; the client secret is read from
    /// `$SWITCHBOARD_CLIENT_SECRET`, else from stdin.
    Mint {
        /// Client id (`client_id` and `sub`).
        #[arg(long)]
        client: String,
        /// Scopes to put in the token.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Lifetime in seconds (local profile only).
        #[arg(long, default_value_t = LOCAL_DEFAULT_TTL_SECS)]
        ttl: u64,
        /// Issuer URL for `iss` (local profile only; default: the running
        /// local stack's).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Show a token's header and claims, check it, and say what it reaches.
    Decode {
        /// The token.
        token: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `secrets …`.
#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// List secret names.
    List(JsonFlag),
    /// Set a secret; the value is read from standard input.
    Set {
        /// Secret name.
        name: String,
    },
    /// Delete a secret.
    Rm {
        /// Secret name.
        name: String,
    },
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Registry file (JSON).
    pub file: PathBuf,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write; standard output when omitted.
    pub file: Option<PathBuf>,
}

/// `aws …` (on the profile chosen with `--profile`).
#[derive(Debug, Subcommand)]
pub enum AwsCmd {
    /// Create the profile's tables and their TTL settings if missing, and wait until they are active.
    Bootstrap {
        /// Give up waiting for the tables after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        wait: u64,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show which tables exist, their state, TTL and item counts, the secrets under the prefix, and the stack.
    Status(AwsStatusArgs),
    /// Build the Lambda artifact, upload it to S3, create or update the
    /// CloudFormation stack (deploy/switchboard.yaml), wait, print its
    /// outputs and write the profile into the config file.
    Deploy(DeployArgs),
}

/// `aws status`.
#[derive(Debug, Args)]
pub struct AwsStatusArgs {
    /// The stack to report (default: switchboard-PROFILE).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `aws deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Print the change set and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A built artifact (a zip holding `bootstrap`, as `cargo lambda build
    /// --output-format zip` writes it) instead of building one.
    #[arg(long, value_name = "ZIP")]
    pub artifact: Option<PathBuf>,
    /// CPU architecture of the function.
    #[arg(long, default_value = "arm64", value_parser = ["arm64", "x86_64"])]
    pub arch: String,
    /// Stack name (default: switchboard-PROFILE).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// S3 bucket for the artifact, created when missing (default:
    /// STACK-artifacts-REGION).
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,
    /// Prefix of the Cognito user pool's domain, unique in the region
    /// (default: the stack name).
    #[arg(long, value_name = "PREFIX")]
    pub domain_prefix: Option<String>,
    /// Region of a profile the config file does not have yet (default: AWS_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Endpoint of every AWS service, for a profile the config file does
    /// not have yet (a local AWS).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Any other template parameter, e.g. ReservedConcurrency=20,
    /// EnableFunctionUrl=true, MemorySize=512.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Give up waiting for the stack after this many seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub wait: u64,
    /// Deploy to a profile marked production without asking.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Profile to copy from.
    #[arg(long, default_value = "local", value_name = "NAME")]
    pub from: String,
    /// Profile to copy to.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Show the difference and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also copy the values of the secrets the agents use (never copied otherwise).
    #[arg(long)]
    pub copy_secrets: bool,
    /// Do not ask for confirmation when the target profile is marked production.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}
