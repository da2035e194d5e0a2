//! The console's side of the core: it receives typed requests, does the work
//! against the active profile (its stores, a gateway core over them, real
//! HTTP through the local gateway) in tasks, and reports typed events back.
//! Nothing here draws.
//!
//! Profiles: the local stack always runs inside the console and keeps
//! serving the local profile (its gateway, issuer and sample agents); Send
//! and Traffic always go through that local gateway. Switching to an AWS
//! profile opens that profile's stores and builds a gateway core over them
//! (registry cache, token verifier, discovery, backend credentials) that is
//! never served on a socket: the Agents, Permissions, Clients, Discover and
//! Limits screens then read and write that profile. A switch runs in its
//! own task; if the profile cannot be reached, the previous one stays.
//!
//! By concern: `profile` switches and syncs profiles, `registry` edits
//! agents, permissions and clients, `tokens` mints and inspects tokens,
//! `send` talks to agents through the local gateway, and `watch` follows
//! traffic, counters, backend health and registry edits made elsewhere.

mod profile;
mod registry;
mod send;
mod tokens;
mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use switchboard_core::profile::Profile;
use switchboard_core::proxy::card;
use switchboard_core::registry::StoreResult;
use switchboard_core::store::Stores;
use switchboard_core::{Gateway, GatewayConfig};
use switchboard_emulator::issuer::Issuer;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::msg::{CoreEvent, Envelope, Request, SendUpdate};
pub use registry::cognito_clients;
use send::TokenCache;

/// Whether this build can rank agents by meaning.
pub const DISCOVERY_AVAILABLE: bool = true;

/// Opens a profile's stores. The console uses [`Stores::open`] (credentials
/// from the standard AWS chain); tests pass fixed credentials.
pub type StoreOpener = Arc<dyn Fn(&Profile) -> StoreResult<Stores> + Send + Sync>;

/// The profile the screens work on.
pub struct Active {
    /// The profile.
    pub profile: Profile,
    /// The local stack's gateway, or a core over the profile's stores that
    /// is not served (registry cache, verifier, discovery, backend auth).
    pub gateway: Arc<Gateway>,
    /// Its stores.
    pub stores: Stores,
}

/// The local stack running inside the console.
pub struct Local {
    /// Its gateway (Send and Traffic always use it).
    pub gateway: Arc<Gateway>,
    /// Its issuer.
    pub issuer: Issuer,
    /// Its stores (the data directory's SQLite file).
    pub stores: Stores,
    /// Issuer URL (`iss`).
    pub issuer_url: String,
    /// The local profile as configured (it may be marked production).
    pub profile: Profile,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Gateway settings, also used for the cores of other profiles.
    pub config: GatewayConfig,
}

/// What the worker works on.
#[derive(Clone)]
pub struct Core {
    local: Arc<Active>,
    issuer: Issuer,
    issuer_url: String,
    gateway_url: String,
    config: GatewayConfig,
    opener: StoreOpener,
    active: Arc<RwLock<Arc<Active>>>,
    /// Held while list events are checked against the active profile and
    /// sent, and while the active profile changes: no list of the previous
    /// profile arrives after `ProfileSwitched`.
    emit_lock: Arc<tokio::sync::Mutex<()>>,
    switch_seq: Arc<AtomicU64>,
    http: reqwest::Client,
    tx: mpsc::Sender<CoreEvent>,
    tokens: Arc<Mutex<TokenCache>>,
    counters_due: Arc<Notify>,
    health_due: Arc<Notify>,
}

impl Core {
    /// A worker over the local stack, active on the local profile, reporting on `tx`.
    pub fn new(local: Local, tx: mpsc::Sender<CoreEvent>) -> anyhow::Result<Core> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let active = Arc::new(Active {
            profile: local.profile,
            gateway: local.gateway,
            stores: local.stores,
        });
        let data_dir = local.data_dir;
        Ok(Core {
            gateway_url: active.gateway.public_url.clone(),
            local: active.clone(),
            issuer: local.issuer,
            issuer_url: local.issuer_url,
            config: local.config,
            opener: Arc::new(move |p: &Profile| Stores::open(p, &data_dir)),
            active: Arc::new(RwLock::new(active)),
            emit_lock: Arc::new(tokio::sync::Mutex::new(())),
            switch_seq: Arc::new(AtomicU64::new(0)),
            http,
            tx,
            tokens: Arc::new(Mutex::new(HashMap::new())),
            counters_due: Arc::new(Notify::new()),
            health_due: Arc::new(Notify::new()),
        })
    }

    /// Opens other profiles' stores with `opener` instead of [`Stores::open`].
    pub fn with_store_opener(mut self, opener: StoreOpener) -> Core {
        self.opener = opener;
        self
    }

    /// The profile the screens work on now.
    pub fn active(&self) -> Arc<Active> {
        self.active.read().clone()
    }

    fn is_active(&self, a: &Arc<Active>) -> bool {
        Arc::ptr_eq(&self.active.read(), a)
    }

    async fn emit(&self, ev: CoreEvent) {
        // The console is gone when this fails; nothing left to tell.
        let _ = self.tx.send(ev).await;
    }

    /// Sends events about `a`'s data, unless another profile became active
    /// meanwhile. Returns false when the console is gone.
    async fn emit_for(&self, a: &Arc<Active>, events: Vec<CoreEvent>) -> bool {
        let _guard = self.emit_lock.lock().await;
        if !self.is_active(a) {
            return !self.tx.is_closed();
        }
        for ev in events {
            if self.tx.send(ev).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn failed(&self, message: impl Into<String>, form: bool) {
        self.emit(CoreEvent::Failed {
            message: message.into(),
            form,
        })
        .await;
    }

    /// Starts the request loop and the background watchers.
    pub fn spawn(self, mut rx: mpsc::UnboundedReceiver<Envelope>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            me.reload(&me.active()).await;
            while let Some(env) = rx.recv().await {
                let a = me.active();
                if env.request.is_write() && a.profile.name != env.profile {
                    me.failed(
                        format!(
                            "not done: {} was meant for profile {}, and the console is now on {}",
                            env.request.describe(),
                            env.profile,
                            a.profile.name
                        ),
                        true,
                    )
                    .await;
                    continue;
                }
                me.handle(env.request, a).await;
            }
        }));
        tasks.push(tokio::spawn(self.clone().forward_traffic()));
        tasks.push(tokio::spawn(self.clone().watch_counters()));
        tasks.push(tokio::spawn(self.clone().watch_health()));
        tasks.push(tokio::spawn(self.watch_registry()));
        tasks
    }

    /// Runs `work` in a task of its own, so slow work does not hold up the
    /// requests behind it.
    fn in_task<F, Fut>(&self, work: F)
    where
        F: FnOnce(Core) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(work(self.clone()));
    }

    /// Handles one request on the profile `a`. Store writes run in order;
    /// slow work runs in its own task.
    pub async fn handle(&self, req: Request, a: Arc<Active>) {
        match req {
            Request::Reload => self.reload(&a).await,
            Request::RefreshCounters => self.counters_due.notify_one(),
            Request::CheckHealth => self.health_due.notify_one(),
            Request::FetchCard { url } => self.in_task(|me| async move {
                let result = card::fetch_card(&me.http, &url, None, card::TOOL_FETCH_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string());
                me.emit(CoreEvent::CardFetched { url, result }).await;
            }),
            Request::SaveAgent {
                record,
                create,
                secret,
            } => self.save_agent(&a, record, create, secret).await,
            Request::DeleteAgent { id } => self.delete_agent(&a, id).await,
            Request::SetEnabled { id, enabled } => self.set_enabled(&a, id, enabled).await,
            Request::Grant { scope, agent } => self.grant(&a, scope, agent).await,
            Request::Revoke { scope, agent } => self.revoke(&a, scope, agent).await,
            Request::AddClient { id, scopes } => self.add_client(&a, id, scopes).await,
            Request::RemoveClient { id } => self.remove_client(&a, id).await,
            Request::Mint {
                client,
                scopes,
                ttl,
            } => self.mint(&a, client, scopes, ttl).await,
            Request::MintRemote {
                client,
                secret,
                scopes,
            } => self.in_task(|me| async move {
                match me.mint_remote(&a.profile, &client, &secret, &scopes).await {
                    Ok(m) => me.emit(CoreEvent::Minted(m)).await,
                    Err(e) => me.failed(e, true).await,
                }
            }),
            Request::Inspect { token } => self.in_task(|me| async move {
                let r = me.inspect(&a, &token).await;
                me.emit(CoreEvent::Inspected(r)).await;
            }),
            Request::Send(req) => self.in_task(|me| async move { me.send(req).await }),
            Request::Cancel {
                send_id,
                agent,
                client,
                scopes,
                task_id,
            } => self.in_task(|me| async move {
                let r = me.cancel(&agent, &client, &scopes, &task_id).await;
                me.emit(CoreEvent::Send {
                    send_id,
                    update: SendUpdate::Canceled(r),
                })
                .await;
            }),
            Request::Discover { query } => self.in_task(|me| async move {
                let r = me.discover(&a, &query).await;
                me.emit(CoreEvent::Discovered(r)).await;
            }),
            Request::SwitchProfile { profile } => {
                let seq = self.switch_seq.fetch_add(1, Ordering::SeqCst) + 1;
                self.in_task(|me| async move { me.switch(profile, seq).await });
            }
            Request::PlanSync { to, copy_secrets } => self.in_task(|me| async move {
                let plan = me.plan_sync(&to, copy_secrets).await;
                me.emit(CoreEvent::SyncPlanned {
                    to,
                    copy_secrets,
                    plan,
                })
                .await;
            }),
            Request::ApplySync { to, plan } => {
                self.in_task(|me| async move { me.apply_sync(&to, &plan).await })
            }
        }
    }

    /// Sends the active profile's lists (and the local ones, for Send, when
    /// another profile is active).
    async fn emit_lists(&self, a: &Arc<Active>) {
        let agents = a.stores.agents.list().await;
        let perms = a.stores.permissions.list().await;
        let clients = a.stores.clients.list().await;
        match (agents, perms, clients) {
            (Ok(ag), Ok(p), Ok(c)) => {
                self.emit_for(
                    a,
                    vec![
                        CoreEvent::Agents(ag),
                        CoreEvent::Permissions(p),
                        CoreEvent::Clients(c),
                    ],
                )
                .await;
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                self.emit_for(
                    a,
                    vec![CoreEvent::Failed {
                        message: format!(
                            "cannot read the registry of profile {}: {e}",
                            a.profile.name
                        ),
                        form: false,
                    }],
                )
                .await;
            }
        }
        if !Arc::ptr_eq(a, &self.local) {
            self.emit_local_lists().await;
        }
    }

    /// The local stack's agents and clients, for Send.
    async fn emit_local_lists(&self) {
        let agents = self.local.stores.agents.list().await;
        let clients = self.local.stores.clients.list().await;
        match (agents, clients) {
            (Ok(agents), Ok(clients)) => self.emit(CoreEvent::LocalLists { agents, clients }).await,
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read the local registry")
            }
        }
    }

    /// Reloads the gateway's view of the registry, then sends the lists.
    async fn reload(&self, a: &Arc<Active>) {
        if let Err(e) = a.gateway.registry.reload().await {
            self.failed(
                format!(
                    "cannot reload the registry of profile {}: {e}",
                    a.profile.name
                ),
                false,
            )
            .await;
        }
        self.emit_lists(a).await;
        self.counters_due.notify_one();
    }
}
