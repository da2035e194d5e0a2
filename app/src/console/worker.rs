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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::registry::{AgentRecord, Secret, StoreError, StoreResult};
use switchboard_core::store::Stores;
use switchboard_core::sync::{self, SyncOptions, SyncPlan};
use switchboard_core::{EventBus, Gateway, GatewayConfig};
use switchboard_emulator::issuer::Issuer;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::msg::{
    CoreEvent, DiscoverHit, Discovered, Envelope, Health, Inspection, Minted, Request, SendRequest,
    SendUpdate,
};

/// Whether this build can rank agents by meaning.
pub const DISCOVERY_AVAILABLE: bool = true;
/// Agents a discovery query shows.
const DISCOVER_K: usize = 10;

/// How often every backend's card endpoint is checked.
const HEALTH_EVERY: Duration = Duration::from_secs(15);
/// How often the registry snapshot is compared for edits made elsewhere.
const REGISTRY_EVERY: Duration = Duration::from_secs(1);
/// Lifetime of the tokens the Send screen mints for itself.
const SEND_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Longest a profile switch may take before it is given up.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Tokens minted for sends: (client, scopes) → (token, reuse until).
type TokenCache = HashMap<(String, Vec<String>), (String, Instant)>;

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

    /// Handles one request on the profile `a`. Store writes run in order;
    /// slow work runs in its own task.
    pub async fn handle(&self, req: Request, a: Arc<Active>) {
        match req {
            Request::Reload => self.reload(&a).await,
            Request::RefreshCounters => self.counters_due.notify_one(),
            Request::CheckHealth => self.health_due.notify_one(),
            Request::FetchCard { url } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let result = crate::cmd::agents::fetch_card(&url)
                        .await
                        .map_err(|e| format!("{e:#}"));
                    me.emit(CoreEvent::CardFetched { url, result }).await;
                });
            }
            Request::SaveAgent {
                record,
                create,
                secret,
            } => self.save_agent(&a, record, create, secret).await,
            Request::DeleteAgent { id } => {
                let r = a.stores.agents.delete(&id).await;
                self.after_write(&a, r.map(|_| format!("deleted agent {id}")), &id, false)
                    .await;
            }
            Request::SetEnabled { id, enabled } => {
                let r = async {
                    let mut rec = a
                        .stores
                        .agents
                        .get(&id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("agent {id}")))?;
                    rec.enabled = enabled;
                    a.stores.agents.update(rec).await
                }
                .await;
                let what = if enabled { "enabled" } else { "disabled" };
                self.after_write(&a, r.map(|_| format!("agent {id} {what}")), &id, false)
                    .await;
            }
            Request::Grant { scope, agent } => {
                let r = a
                    .stores
                    .permissions
                    .grant(&scope, std::slice::from_ref(&agent))
                    .await;
                self.after_write(
                    &a,
                    r.map(|_| format!("{scope} now grants {agent}")),
                    &scope,
                    true,
                )
                .await;
            }
            Request::Revoke { scope, agent } => {
                let r = a
                    .stores
                    .permissions
                    .revoke(&scope, std::slice::from_ref(&agent))
                    .await;
                let msg = match &r {
                    Ok(Some(_)) => format!("{scope} no longer grants {agent}"),
                    _ => format!("{scope} grants nothing now and was removed"),
                };
                self.after_write(&a, r.map(|_| msg), &scope, false).await;
            }
            Request::AddClient { id, scopes } => {
                if let Some(why) = cognito_clients(&a.profile) {
                    self.failed(why, true).await;
                    return;
                }
                match self.issuer.create_client(&id, &scopes).await {
                    Ok(secret) => {
                        self.emit_lists(&a).await;
                        self.emit(CoreEvent::ClientCreated { id, secret }).await;
                    }
                    Err(e) => self.failed(format!("{e:#}"), true).await,
                }
            }
            Request::RemoveClient { id } => {
                let r = a.stores.clients.delete(&id).await;
                self.after_write(&a, r.map(|_| format!("removed client {id}")), &id, false)
                    .await;
            }
            Request::Mint {
                client,
                scopes,
                ttl,
            } => {
                if let ProfileKind::Aws(_) = a.profile.kind {
                    self.failed(
                        format!(
                            "profile {} verifies tokens from its own issuer, so a locally signed one would be refused; \
                             mint one from its token endpoint with the client's id and secret",
                            a.profile.name
                        ),
                        true,
                    )
                    .await;
                    return;
                }
                match self.issuer.mint(&self.issuer_url, &client, &scopes, ttl) {
                    Ok(token) => {
                        self.emit(CoreEvent::Minted(Minted {
                            client,
                            scopes,
                            token,
                            ttl,
                        }))
                        .await
                    }
                    Err(e) => self.failed(format!("{e:#}"), true).await,
                }
            }
            Request::MintRemote {
                client,
                secret,
                scopes,
            } => {
                let me = self.clone();
                tokio::spawn(async move {
                    match me.mint_remote(&a.profile, &client, &secret, &scopes).await {
                        Ok(m) => me.emit(CoreEvent::Minted(m)).await,
                        Err(e) => me.failed(e, true).await,
                    }
                });
            }
            Request::Inspect { token } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let r = me.inspect(&a, &token).await;
                    me.emit(CoreEvent::Inspected(r)).await;
                });
            }
            Request::Send(req) => {
                let me = self.clone();
                tokio::spawn(async move { me.send(req).await });
            }
            Request::Cancel {
                send_id,
                agent,
                client,
                scopes,
                task_id,
            } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let r = me.cancel(&agent, &client, &scopes, &task_id).await;
                    me.emit(CoreEvent::Send {
                        send_id,
                        update: SendUpdate::Canceled(r),
                    })
                    .await;
                });
            }
            Request::Discover { query } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let r = me.discover(&a, &query).await;
                    me.emit(CoreEvent::Discovered(r)).await;
                });
            }
            Request::SwitchProfile { profile } => {
                let seq = self.switch_seq.fetch_add(1, Ordering::SeqCst) + 1;
                let me = self.clone();
                tokio::spawn(async move { me.switch(profile, seq).await });
            }
            Request::PlanSync { to, copy_secrets } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let plan = me.plan_sync(&to, copy_secrets).await;
                    me.emit(CoreEvent::SyncPlanned {
                        to,
                        copy_secrets,
                        plan,
                    })
                    .await;
                });
            }
            Request::ApplySync { to, plan } => {
                let me = self.clone();
                tokio::spawn(async move { me.apply_sync(&to, &plan).await });
            }
        }
    }

    /// Opens `profile` and makes it the active one, unless a later switch
    /// was asked for meanwhile. On failure the active profile stays.
    async fn switch(&self, profile: Profile, seq: u64) {
        let name = profile.name.clone();
        let opened = match tokio::time::timeout(SWITCH_TIMEOUT, self.open(profile)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "profile {name} did not answer within {} s",
                SWITCH_TIMEOUT.as_secs()
            )),
        };
        let active = {
            let _guard = self.emit_lock.lock().await;
            if self.switch_seq.load(Ordering::SeqCst) != seq {
                tracing::info!(profile = %name, "a later profile switch replaced this one");
                return;
            }
            match opened {
                Ok(active) => {
                    *self.active.write() = active.clone();
                    tracing::info!(profile = %name, "switched profile");
                    let _ = self
                        .tx
                        .send(CoreEvent::ProfileSwitched {
                            profile: active.profile.clone(),
                        })
                        .await;
                    active
                }
                Err(message) => {
                    tracing::warn!(profile = %name, error = %message, "cannot switch profile");
                    let _ = self
                        .tx
                        .send(CoreEvent::ProfileFailed {
                            profile: name,
                            message,
                        })
                        .await;
                    return;
                }
            }
        };
        self.emit_lists(&active).await;
        self.counters_due.notify_one();
        self.health_due.notify_one();
    }

    /// The local stack for `local`; for an AWS profile its stores and a
    /// gateway core over them. Loading the registry is the connection check.
    async fn open(&self, profile: Profile) -> Result<Arc<Active>, String> {
        let aws = match &profile.kind {
            // The stack inside the console, which never stopped serving it.
            ProfileKind::Local => return Ok(self.local.clone()),
            ProfileKind::Aws(aws) => aws.clone(),
        };
        let stores = (self.opener)(&profile)
            .map_err(|e| format!("cannot open profile {}: {e}", profile.name))?;
        let mut config = self.config.clone();
        config.issuer = Some(aws.issuer_url().to_owned());
        config.jwks_uri = Some(aws.jwks_url());
        config.token_url = aws.token_url.clone();
        let gateway = Gateway::new(
            config,
            stores.clone(),
            EventBus::new(),
            self.gateway_url.clone(),
        )
        .await
        .map_err(|e| format!("cannot switch to profile {}: {e}", profile.name))?;
        Ok(Arc::new(Active {
            profile,
            gateway,
            stores,
        }))
    }

    /// The stores of a sync target: the active profile's when it is the
    /// target, else opened now.
    fn stores_of(&self, profile: &Profile) -> Result<Stores, String> {
        let a = self.active();
        if a.profile.name == profile.name {
            return Ok(a.stores.clone());
        }
        if let ProfileKind::Local = profile.kind {
            return Ok(self.local.stores.clone());
        }
        (self.opener)(profile).map_err(|e| format!("cannot open profile {}: {e}", profile.name))
    }

    /// What `sync --from local --to {to} --dry-run` shows.
    async fn plan_sync(&self, to: &Profile, copy_secrets: bool) -> Result<SyncPlan, String> {
        if let ProfileKind::Local = to.kind {
            return Err(
                "sync copies from the local profile to another: choose an AWS profile".into(),
            );
        }
        let target = self.stores_of(to)?;
        sync::plan(&self.local.stores, &target, SyncOptions { copy_secrets })
            .await
            .map_err(|e| format!("comparing local with {}: {e}", to.name))
    }

    async fn apply_sync(&self, to: &Profile, plan: &SyncPlan) {
        let target = match self.stores_of(to) {
            Ok(t) => t,
            Err(e) => return self.failed(e, false).await,
        };
        match sync::apply(plan, &self.local.stores, &target).await {
            Ok(done) => {
                let a = self.active();
                if a.profile.name == to.name {
                    self.reload(&a).await;
                    self.health_due.notify_one();
                }
                self.emit(CoreEvent::Done(format!(
                    "synced local → {}: {}",
                    to.name,
                    done.summary()
                )))
                .await;
            }
            Err(e) => {
                self.failed(
                    format!("{e}; running the same sync again is safe (s shows what is left)"),
                    false,
                )
                .await
            }
        }
    }

    /// A client-credentials token from the AWS profile's token endpoint,
    /// as `token mint` gets one.
    async fn mint_remote(
        &self,
        profile: &Profile,
        client: &str,
        secret: &Secret,
        scopes: &[String],
    ) -> Result<Minted, String> {
        let Some(aws) = profile.aws() else {
            return Err(format!(
                "profile {} signs tokens with the local issuer's key: mint one for a listed client",
                profile.name
            ));
        };
        let http = crate::cmd::token::token_http_client().map_err(|e| format!("{e:#}"))?;
        let token =
            crate::cmd::token::mint_from_profile(&http, &profile.name, aws, client, secret, scopes)
                .await
                .map_err(|e| format!("{e:#}"))?;
        let claims = crate::cmd::token::decode_jwt(&token.access_token)
            .map(|(_, c)| c)
            .unwrap_or(Value::Null);
        let granted = match &token.scope {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None if claims.get("scope").is_some() || claims.get("scp").is_some() => {
                switchboard_core::auth::jwt::scopes_of(&claims)
            }
            None => scopes.to_vec(),
        };
        let ttl = match token.expires_in {
            Some(s) => Duration::from_secs(s),
            None => {
                let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Duration::from_secs(exp.saturating_sub(now))
            }
        };
        Ok(Minted {
            client: client.to_owned(),
            scopes: granted,
            token: token.access_token,
            ttl,
        })
    }

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

    /// Reports a store write: reloads the gateway's view and the lists, or
    /// says what went wrong in words.
    async fn after_write(
        &self,
        a: &Arc<Active>,
        r: Result<String, StoreError>,
        what: &str,
        form: bool,
    ) {
        match r {
            Ok(msg) => {
                self.reload(a).await;
                self.health_due.notify_one();
                self.emit(CoreEvent::Done(msg)).await;
            }
            Err(StoreError::NotFound(_)) => {
                self.reload(a).await;
                self.failed(
                    format!("{what} no longer exists (removed elsewhere?)"),
                    form,
                )
                .await
            }
            Err(e) => self.failed(format!("{what}: {e}"), form).await,
        }
    }

    async fn save_agent(
        &self,
        a: &Arc<Active>,
        record: AgentRecord,
        create: bool,
        secret: Option<(String, switchboard_core::registry::Secret)>,
    ) {
        let id = record.id.clone();
        if let Some((name, value)) = &secret {
            if let Err(e) = a.stores.secrets.put(name, value).await {
                self.failed(format!("cannot store secret {name}: {e}"), true)
                    .await;
                return;
            }
        }
        let r = if create {
            a.stores.agents.create(record.clone()).await
        } else {
            a.stores.agents.update(record.clone()).await
        };
        match r {
            Ok(stored) => {
                self.reload(a).await;
                self.health_due.notify_one();
                self.emit(CoreEvent::AgentSaved {
                    id: id.clone(),
                    created: create,
                })
                .await;
                let mut msg = format!(
                    "{} agent {id} → {}",
                    if create { "added" } else { "saved" },
                    stored.url
                );
                if let Some(name) = secret_name(&stored) {
                    if secret.is_none() {
                        if let Err(StoreError::NotFound(_)) = a.stores.secrets.get(name).await {
                            msg.push_str(&format!(
                                "; note: secret {name} is not set, so calls will fail until it is"
                            ));
                        }
                    }
                }
                self.emit(CoreEvent::Done(msg)).await;
            }
            Err(StoreError::Conflict(_)) if create => {
                self.failed(format!("an agent with id {id} already exists"), true)
                    .await
            }
            Err(StoreError::Conflict(_)) => {
                self.reload(a).await;
                self.failed(
                    format!("agent {id} was changed elsewhere while you edited it; close the form and edit again"),
                    true,
                )
                .await
            }
            Err(e) => {
                self.failed(format!("cannot save agent {id}: {e}"), true)
                    .await
            }
        }
    }

    /// The operator's view of `GET /discover`: every agent, no token.
    async fn discover(&self, a: &Active, query: &str) -> Result<Discovered, String> {
        let q = switchboard_core::discovery::validate_query(query).map_err(|e| e.to_string())?;
        let answer = a.gateway.discovery.search(q, DISCOVER_K, |_| true).await;
        let snapshot = a.gateway.registry.snapshot();
        let hits = answer
            .hits
            .iter()
            .map(|h| {
                let agent = snapshot.agents.get(&h.id);
                DiscoverHit {
                    agent: h.id.clone(),
                    name: agent.map(|a| a.name.clone()).unwrap_or_default(),
                    score: h.score,
                    skills: h.matched_skills.iter().map(|s| s.name.clone()).collect(),
                    enabled: agent.is_some_and(|a| a.enabled),
                }
            })
            .collect();
        Ok(Discovered {
            query: q.to_owned(),
            mode: match answer.mode {
                switchboard_core::discovery::Mode::Semantic => "semantic".into(),
                switchboard_core::discovery::Mode::Lexical => "lexical".into(),
            },
            model: answer.model.clone(),
            notice: answer.notice.clone(),
            hits,
        })
    }

    /// A token taken apart, checked by the active profile's verifier and
    /// explained against its permissions.
    async fn inspect(&self, a: &Active, token: &str) -> Result<Inspection, String> {
        let (header, claims) =
            crate::cmd::token::decode_jwt(token.trim()).map_err(|e| format!("{e:#}"))?;
        let validity = a
            .gateway
            .verifier
            .verify(token.trim())
            .await
            .map(|p| p.client_id.clone())
            .map_err(|e| e.to_string());
        let snapshot = a.gateway.registry.snapshot();
        let mut ids: Vec<&String> = snapshot.agents.keys().collect();
        ids.sort();
        let agents = crate::cmd::token::explain_all(&snapshot.permissions, &claims, ids);
        Ok(Inspection {
            header,
            claims,
            validity,
            agents,
        })
    }

    /// A token for `client` with `scopes`, minted once and reused until near expiry.
    fn token_for(&self, client: &str, scopes: &[String]) -> anyhow::Result<String> {
        let key = (client.to_owned(), scopes.to_vec());
        if let Some((t, until)) = self.tokens.lock().get(&key) {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let t = self
            .issuer
            .mint(&self.issuer_url, client, scopes, SEND_TOKEN_TTL)?;
        self.tokens.lock().insert(
            key,
            (
                t.clone(),
                Instant::now() + SEND_TOKEN_TTL - Duration::from_secs(300),
            ),
        );
        Ok(t)
    }

    fn rpc(&self, agent: &str, token: &str, body: &Value, stream: bool) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/agents/{agent}", self.gateway_url))
            .bearer_auth(token)
            .header("A2A-Version", "1.0")
            .header(
                reqwest::header::ACCEPT,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .json(body)
    }

    /// Sends through the gateway exactly as an outside client would.
    async fn send(&self, req: SendRequest) {
        let id = req.send_id;
        let up = |u: SendUpdate| CoreEvent::Send {
            send_id: id,
            update: u,
        };
        let token = match self.token_for(&req.client, &req.scopes) {
            Ok(t) => t,
            Err(e) => {
                self.emit(up(SendUpdate::Error(format!("cannot mint a token: {e:#}"))))
                    .await;
                self.emit(up(SendUpdate::Done)).await;
                return;
            }
        };
        let method = if req.stream {
            "SendStreamingMessage"
        } else {
            "SendMessage"
        };
        let body = json!({
            "jsonrpc": "2.0",
            "id": uuid::Uuid::new_v4().to_string(),
            "method": method,
            "params": {"message": {
                "messageId": uuid::Uuid::new_v4().to_string(),
                "role": "ROLE_USER",
                "parts": [{"text": req.text}],
            }},
        });
        let resp = match self.rpc(&req.agent, &token, &body, req.stream).send().await {
            Ok(r) => r,
            Err(e) => {
                self.emit(up(SendUpdate::Error(format!(
                    "the gateway did not answer: {}",
                    e.without_url()
                ))))
                .await;
                self.emit(up(SendUpdate::Done)).await;
                return;
            }
        };
        self.emit(up(SendUpdate::Status(resp.status().as_u16())))
            .await;
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if is_sse {
            let mut events = eventsource_stream::Eventsource::eventsource(resp.bytes_stream());
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) => match serde_json::from_str::<Value>(&ev.data) {
                        Ok(v) => self.emit(up(SendUpdate::Event(v))).await,
                        Err(e) => {
                            self.emit(up(SendUpdate::Error(format!(
                                "an event is not JSON ({e}): {}",
                                super::widgets::truncate(&ev.data, 80)
                            ))))
                            .await
                        }
                    },
                    Err(e) => {
                        self.emit(up(SendUpdate::Error(format!("the stream broke: {e}"))))
                            .await;
                        break;
                    }
                }
            }
        } else {
            match resp.bytes().await {
                Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => self.emit(up(SendUpdate::Event(v))).await,
                    Err(_) => {
                        self.emit(up(SendUpdate::Error(format!(
                            "the answer is not JSON: {}",
                            super::widgets::truncate(&String::from_utf8_lossy(&bytes), 120)
                        ))))
                        .await
                    }
                },
                Err(e) => {
                    self.emit(up(SendUpdate::Error(format!(
                        "the answer broke off: {}",
                        e.without_url()
                    ))))
                    .await
                }
            }
        }
        self.emit(up(SendUpdate::Done)).await;
    }

    async fn cancel(
        &self,
        agent: &str,
        client: &str,
        scopes: &[String],
        task_id: &str,
    ) -> Result<Value, String> {
        let token = self
            .token_for(client, scopes)
            .map_err(|e| format!("{e:#}"))?;
        let body = json!({
            "jsonrpc": "2.0",
            "id": uuid::Uuid::new_v4().to_string(),
            "method": "CancelTask",
            "params": {"id": task_id},
        });
        let resp = self
            .rpc(agent, &token, &body, false)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("the answer is not JSON: {}", e.without_url()))?;
        Ok(v)
    }

    async fn forward_traffic(self) {
        let mut rx = self.local.gateway.events.subscribe();
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if matches!(*ev, switchboard_core::TrafficEvent::Finished { .. }) {
                        self.counters_due.notify_one();
                    }
                    if self.tx.send(CoreEvent::Traffic(ev)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    self.emit(CoreEvent::TrafficLost(n)).await
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Reads the active profile's counters when traffic finishes (at most
    /// ten times a second), when a minute ends and after a switch; reports
    /// only changes.
    async fn watch_counters(self) {
        let mut last: Option<(Arc<Active>, Vec<switchboard_core::registry::CounterEntry>)> = None;
        loop {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let to_minute = Duration::from_secs(60 - now.as_secs() % 60);
            tokio::select! {
                _ = self.counters_due.notified() => {}
                _ = tokio::time::sleep(to_minute) => {}
            }
            let unix = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let a = self.active();
            match a.stores.counters.list(unix).await {
                Ok(list) => {
                    let same = last
                        .as_ref()
                        .is_some_and(|(p, l)| Arc::ptr_eq(p, &a) && *l == list);
                    if !same {
                        last = Some((a.clone(), list.clone()));
                        if !self.emit_for(&a, vec![CoreEvent::Counters(list)]).await {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    profile = %a.profile.name,
                    error = %e,
                    "cannot read the rate-limit counters"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks every backend of the active profile now and then; reports changes.
    async fn watch_health(self) {
        let mut last: HashMap<String, Health> = HashMap::new();
        let mut last_profile = self.active();
        loop {
            let a = self.active();
            if !Arc::ptr_eq(&a, &last_profile) {
                last.clear();
                last_profile = a.clone();
            }
            let agents: Vec<Arc<AgentRecord>> = a
                .gateway
                .registry
                .snapshot()
                .agents
                .values()
                .cloned()
                .collect();
            let checks = agents.iter().map(|agent| {
                let gateway = &a.gateway;
                async move { (agent.id.clone(), check(gateway, agent).await) }
            });
            let results = futures::future::join_all(checks).await;
            let mut events = Vec::new();
            for (id, health) in results {
                let changed = match (last.get(&id), &health) {
                    (Some(Health::Up { card: a, .. }), Health::Up { card: b, .. }) => a != b,
                    (Some(old), new) => old != new,
                    (None, _) => true,
                };
                if changed {
                    last.insert(id.clone(), health.clone());
                    events.push(CoreEvent::Health { id, health });
                }
            }
            if !events.is_empty() && !self.emit_for(&a, events).await {
                return;
            }
            tokio::select! {
                _ = self.health_due.notified() => {}
                _ = tokio::time::sleep(HEALTH_EVERY) => {}
            }
        }
    }

    /// Notices registry edits made by other processes (the CLI, other
    /// gateways of an AWS profile) through the gateway core's cache, which
    /// polls the store; and, while another profile is active, edits of the
    /// local registry that Send uses.
    async fn watch_registry(self) {
        let mut seen_profile = self.active();
        let mut seen = seen_profile.gateway.registry.snapshot();
        let mut seen_local = self.local.gateway.registry.snapshot();
        loop {
            tokio::time::sleep(REGISTRY_EVERY).await;
            let a = self.active();
            let now = a.gateway.registry.snapshot();
            if !Arc::ptr_eq(&a, &seen_profile) {
                // A switch sent the new profile's lists already.
                seen_profile = a.clone();
                seen = now;
            } else if !Arc::ptr_eq(&now, &seen) {
                seen = now;
                self.emit_lists(&a).await;
                self.health_due.notify_one();
            }
            let local_now = self.local.gateway.registry.snapshot();
            if !Arc::ptr_eq(&local_now, &seen_local) {
                seen_local = local_now;
                if !Arc::ptr_eq(&a, &self.local) {
                    self.emit_local_lists().await;
                }
            }
            if self.tx.is_closed() {
                return;
            }
        }
    }
}

/// Fetches an agent's card through `gateway`'s client and backend credentials.
async fn check(gateway: &Gateway, agent: &AgentRecord) -> Health {
    let started = Instant::now();
    let url = format!(
        "{}/.well-known/agent-card.json",
        agent.url.trim_end_matches('/')
    );
    let mut req = gateway.http.get(&url).timeout(Duration::from_secs(3));
    match gateway.backend_auth.header(&agent.id, &agent.auth).await {
        Ok(Some((name, value))) => req = req.header(name, value),
        Ok(None) => {}
        Err(e) => {
            return Health::Down {
                error: format!("backend credentials: {e}"),
            }
        }
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(card) => Health::Up {
                latency: started.elapsed(),
                card: Arc::new(card),
            },
            Err(_) => Health::Down {
                error: "the card is not JSON".into(),
            },
        },
        Ok(r) => Health::Down {
            error: format!("card answered {}", r.status()),
        },
        Err(e) if e.is_timeout() => Health::Down {
            error: "no answer within 3 s".into(),
        },
        Err(e) => Health::Down {
            error: e.without_url().to_string(),
        },
    }
}

/// Why clients cannot be added on `profile`, when they cannot.
pub fn cognito_clients(profile: &Profile) -> Option<String> {
    let aws = profile.aws()?;
    Some(format!(
        "profile {} takes tokens from its user pool {}; its clients are the pool's app clients \
         (create them in the Cognito console or with `aws cognito-idp create-user-pool-client`), not Switchboard's",
        profile.name,
        aws.issuer_url()
    ))
}

fn secret_name(a: &AgentRecord) -> Option<&str> {
    match &a.auth {
        switchboard_core::registry::BackendAuth::None => None,
        switchboard_core::registry::BackendAuth::Header { secret, .. }
        | switchboard_core::registry::BackendAuth::OAuth2 { secret, .. } => Some(secret),
    }
}
