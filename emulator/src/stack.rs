//! The whole local stack in one process: gateway, issuer and sample agents on
//! the local SQLite data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use switchboard_core::auth::{Verifier, VerifierConfig};
use switchboard_core::gateway::backend_client;
use switchboard_core::registry::file::RegistryFile;
use switchboard_core::registry::{AgentRecord, BackendAuth, Secret, StoreError};
use switchboard_core::store::Stores;
use switchboard_core::{EventBus, Gateway, GatewayConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::agents::{self, SampleHandle, SampleKind};
use crate::issuer::Issuer;

/// The fixtures the sample stack starts from.
pub const SAMPLE_REGISTRY: &str = include_str!("../../fixtures/registry.json");
/// The client whose credentials `serve` prints.
pub const DEMO_CLIENT: &str = "demo-client";
/// Where the demo client's secret is kept so it can be shown again.
pub const DEMO_SECRET: &str = "sample/demo-client";
/// Scope the guarded sample agent requires of its callers (the gateway).
pub const GUARDED_SCOPE: &str = "agents/guarded.invoke";
/// The SQLite file inside the data directory.
pub const DB_FILE: &str = switchboard_core::store::DB_FILE;
/// Runtime facts of a running stack, for the CLI.
pub const RUNTIME_FILE: &str = "runtime.json";

/// Opens the stores of a data directory.
pub fn open_stores(data_dir: &Path) -> anyhow::Result<Stores> {
    Stores::open(&switchboard_core::profile::Profile::local(), data_dir)
        .with_context(|| format!("opening the data directory {}", data_dir.display()))
}

/// What a started stack tells its users (also written to `runtime.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackInfo {
    /// Gateway base URL.
    pub gateway_url: String,
    /// Issuer base URL (the tokens' `iss`).
    pub issuer_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// JWKS endpoint.
    pub jwks_url: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Sample agents.
    pub agents: Vec<AgentInfo>,
    /// A client that may call every sample agent.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Process id of the stack.
    pub pid: u32,
}

/// One sample agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Agent id.
    pub id: String,
    /// Its own (backend) URL.
    pub url: String,
    /// Its card through the gateway.
    pub card_url: String,
}

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Data directory (created if missing).
    pub data_dir: PathBuf,
    /// Gateway address. Port 0 puts every server on an ephemeral port;
    /// otherwise the issuer takes the next port and the agents the three after.
    pub listen: SocketAddr,
    /// Gateway settings (issuer fields are filled in from the local issuer).
    pub config: GatewayConfig,
}

/// A running stack. Dropping it stops every server.
pub struct LocalStack {
    /// What it serves.
    pub info: StackInfo,
    /// The gateway, for in-process users (the console, tests).
    pub gateway: Arc<Gateway>,
    /// The issuer.
    pub issuer: Issuer,
    /// The stores.
    pub stores: Stores,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _agents: Vec<SampleHandle>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {what}"))
}

fn next_port(addr: SocketAddr, n: u16) -> SocketAddr {
    let mut a = addr;
    if addr.port() != 0 {
        a.set_port(addr.port().saturating_add(n));
    }
    a
}

impl LocalStack {
    /// Starts everything and returns once every server accepts connections.
    pub async fn start(options: StackOptions) -> anyhow::Result<LocalStack> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let stores = open_stores(&options.data_dir)?;
        Self::start_with_stores(options, stores).await
    }

    /// Like [`LocalStack::start`], on stores of the caller's choosing (an AWS
    /// profile's, say, with the issuer's clients kept locally): the issuer
    /// still stands in for the token service and its key stays in the data
    /// directory.
    pub async fn start_with_stores(
        options: StackOptions,
        stores: Stores,
    ) -> anyhow::Result<LocalStack> {
        let data_dir = options.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        restrict_dir(&data_dir);
        let issuer = Issuer::open(&data_dir, stores.clients.clone())?;

        let gw_listener = bind(options.listen, "gateway").await?;
        let gw_addr = gw_listener.local_addr()?;
        let issuer_listener = bind(next_port(options.listen, 1), "issuer").await?;
        let issuer_url = format!("http://{}", issuer_listener.local_addr()?);
        let token_url = format!("{issuer_url}/oauth2/token");
        let jwks_url = format!("{issuer_url}/.well-known/jwks.json");

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let issuer_router = issuer.router(issuer_url.clone());
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let serve =
                axum::serve(issuer_listener, issuer_router).with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "issuer stopped");
            }
        }));

        // Sample agents.
        let http = backend_client(&options.config)?;
        let guard_verifier = Verifier::new(
            VerifierConfig {
                issuer: issuer_url.clone(),
                jwks_uri: Some(jwks_url.clone()),
                allowed_client_ids: None,
                leeway_secs: 30,
            },
            http,
        );
        let echo = agents::spawn(
            SampleKind::Echo,
            bind(next_port(options.listen, 2), "echo agent").await?,
        )
        .await?;
        let stream = agents::spawn(
            SampleKind::Stream,
            bind(next_port(options.listen, 3), "stream agent").await?,
        )
        .await?;
        let guarded = agents::spawn(
            SampleKind::Guarded {
                verifier: guard_verifier,
                required_scope: GUARDED_SCOPE.to_owned(),
                token_url: token_url.clone(),
            },
            bind(next_port(options.listen, 4), "guarded agent").await?,
        )
        .await?;
        let sample_urls = [
            ("sample:echo", echo.url.clone()),
            ("sample:stream", stream.url.clone()),
            ("sample:guarded", guarded.url.clone()),
            ("sample:issuer", token_url.clone()),
        ];
        let demo_secret = seed(&stores, &issuer, &sample_urls).await?;

        // The gateway.
        let public_url = options
            .config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{gw_addr}"));
        let mut config = options.config.clone();
        config.issuer = Some(issuer_url.clone());
        config.jwks_uri = Some(jwks_url.clone());
        config.token_url = Some(token_url.clone());
        let gateway = Gateway::new(config, stores.clone(), EventBus::new(), public_url.clone())
            .await
            .context("starting the gateway")?;
        let gw = gateway.clone();
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = gw.serve(gw_listener, stop).await {
                tracing::error!(error = %e, "gateway stopped");
            }
        }));

        let file = RegistryFile::parse(SAMPLE_REGISTRY)
            .map_err(|e| anyhow::anyhow!("bad sample registry: {}", e.join("; ")))?;
        let scopes = file
            .clients
            .iter()
            .find(|c| c.client_id == DEMO_CLIENT)
            .map(|c| c.scopes.clone())
            .unwrap_or_default();
        let info = StackInfo {
            gateway_url: public_url.clone(),
            issuer_url,
            token_url,
            jwks_url,
            data_dir: data_dir.clone(),
            agents: [("echo", &echo), ("stream", &stream), ("guarded", &guarded)]
                .into_iter()
                .map(|(id, h)| AgentInfo {
                    id: id.to_owned(),
                    url: h.url.clone(),
                    card_url: format!("{public_url}/agents/{id}/.well-known/agent-card.json"),
                })
                .collect(),
            client_id: DEMO_CLIENT.to_owned(),
            client_secret: demo_secret,
            scopes,
            pid: std::process::id(),
        };
        write_runtime(&data_dir, &info)?;
        Ok(LocalStack {
            info,
            gateway,
            issuer,
            stores,
            shutdown,
            tasks,
            _agents: vec![echo, stream, guarded],
        })
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let _ = std::fs::remove_file(self.info.data_dir.join(RUNTIME_FILE));
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) {}

fn write_runtime(data_dir: &Path, info: &StackInfo) -> anyhow::Result<()> {
    let path = data_dir.join(RUNTIME_FILE);
    let tmp = data_dir.join(format!(".{RUNTIME_FILE}.tmp"));
    let text = serde_json::to_string_pretty(info)?;
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads `runtime.json` of a running stack, if there is one.
pub fn read_runtime(data_dir: &Path) -> Option<StackInfo> {
    let text = std::fs::read_to_string(data_dir.join(RUNTIME_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn resolve(value: &str, samples: &[(&str, String)]) -> String {
    samples
        .iter()
        .find(|(k, _)| *k == value)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| value.to_owned())
}

/// Brings the data directory in line with the sample fixtures: on first run
/// everything is created; later runs only point the sample agents at this
/// run's ports, keeping every edit the user made. Returns the demo secret.
async fn seed(
    stores: &Stores,
    issuer: &Issuer,
    samples: &[(&str, String)],
) -> anyhow::Result<String> {
    let file = RegistryFile::parse(SAMPLE_REGISTRY)
        .map_err(|e| anyhow::anyhow!("bad sample registry: {}", e.join("; ")))?;
    let first_run = match stores.secrets.get(DEMO_SECRET).await {
        Ok(_) => false,
        Err(StoreError::NotFound(_)) => true,
        Err(e) => return Err(e).context("reading the secret store"),
    };

    // Issuer clients and their secrets. A client whose kept secret is gone is
    // recreated so the stack can always authenticate itself.
    for spec in &file.clients {
        let secret_name = format!("sample/{}", spec.client_id);
        let have_secret = stores.secrets.get(&secret_name).await.is_ok();
        let have_client = stores.clients.get(&spec.client_id).await?.is_some();
        if have_secret && have_client {
            continue;
        }
        if have_client {
            stores.clients.delete(&spec.client_id).await?;
        }
        let secret = issuer.create_client(&spec.client_id, &spec.scopes).await?;
        stores
            .secrets
            .put(&secret_name, &Secret::new(secret))
            .await?;
    }

    // Sample agents: created if missing, re-pointed at this run's ports.
    let mut records: Vec<AgentRecord> = Vec::new();
    for template in &file.agents {
        let existing = stores.agents.get(&template.id).await?;
        if existing.is_none() && !first_run {
            continue; // the user deleted it; respect that
        }
        let mut record = existing.unwrap_or_else(|| template.clone());
        if template.url.starts_with("sample:") {
            record.url = resolve(&template.url, samples);
        }
        if let (
            BackendAuth::OAuth2 { token_url, .. },
            BackendAuth::OAuth2 {
                token_url: template_url,
                ..
            },
        ) = (&mut record.auth, &template.auth)
        {
            if template_url.starts_with("sample:") {
                *token_url = resolve(template_url, samples);
            }
        }
        records.push(record);
    }
    if !records.is_empty() {
        stores.agents.put_many(records).await?;
    }
    if first_run {
        stores
            .permissions
            .replace_all(file.permission_records())
            .await?;
    }
    Ok(stores.secrets.get(DEMO_SECRET).await?.expose().to_owned())
}
