//! The console's side of the core: it receives typed requests, does the work
//! against the running stack (stores, issuer, gateway, real HTTP through the
//! gateway) in tasks, and reports typed events back. Nothing here draws.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use switchboard_core::registry::{AgentRecord, StoreError};
use switchboard_core::store::Stores;
use switchboard_core::Gateway;
use switchboard_emulator::issuer::Issuer;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::msg::{
    CoreEvent, DiscoverHit, Discovered, Health, Inspection, Minted, Request, SendRequest,
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

/// Tokens minted for sends: (client, scopes) → (token, reuse until).
type TokenCache = HashMap<(String, Vec<String>), (String, Instant)>;

/// What the worker works on.
#[derive(Clone)]
pub struct Core {
    /// The gateway (registry cache, verifier, event bus, backend auth).
    pub gateway: Arc<Gateway>,
    /// The local issuer.
    pub issuer: Issuer,
    /// The stores.
    pub stores: Stores,
    /// Issuer URL (`iss`).
    pub issuer_url: String,
    /// Gateway base URL.
    pub gateway_url: String,
    http: reqwest::Client,
    tx: mpsc::Sender<CoreEvent>,
    tokens: Arc<Mutex<TokenCache>>,
    counters_due: Arc<Notify>,
    health_due: Arc<Notify>,
}

impl Core {
    /// A worker reporting on `tx`.
    pub fn new(
        gateway: Arc<Gateway>,
        issuer: Issuer,
        stores: Stores,
        issuer_url: String,
        tx: mpsc::Sender<CoreEvent>,
    ) -> anyhow::Result<Core> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Core {
            gateway_url: gateway.public_url.clone(),
            gateway,
            issuer,
            stores,
            issuer_url,
            http,
            tx,
            tokens: Arc::new(Mutex::new(HashMap::new())),
            counters_due: Arc::new(Notify::new()),
            health_due: Arc::new(Notify::new()),
        })
    }

    async fn emit(&self, ev: CoreEvent) {
        // The console is gone when this fails; nothing left to tell.
        let _ = self.tx.send(ev).await;
    }

    async fn failed(&self, message: impl Into<String>, form: bool) {
        self.emit(CoreEvent::Failed {
            message: message.into(),
            form,
        })
        .await;
    }

    /// Starts the request loop and the background watchers.
    pub fn spawn(self, mut rx: mpsc::UnboundedReceiver<Request>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            me.reload().await;
            while let Some(req) = rx.recv().await {
                me.handle(req).await;
            }
        }));
        tasks.push(tokio::spawn(self.clone().forward_traffic()));
        tasks.push(tokio::spawn(self.clone().watch_counters()));
        tasks.push(tokio::spawn(self.clone().watch_health()));
        tasks.push(tokio::spawn(self.watch_registry()));
        tasks
    }

    /// Handles one request. Store writes run in order; slow work runs in its own task.
    pub async fn handle(&self, req: Request) {
        match req {
            Request::Reload => self.reload().await,
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
            } => self.save_agent(record, create, secret).await,
            Request::DeleteAgent { id } => {
                let r = self.stores.agents.delete(&id).await;
                self.after_write(r.map(|_| format!("deleted agent {id}")), &id, false)
                    .await;
            }
            Request::SetEnabled { id, enabled } => {
                let r = async {
                    let mut rec = self
                        .stores
                        .agents
                        .get(&id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("agent {id}")))?;
                    rec.enabled = enabled;
                    self.stores.agents.update(rec).await
                }
                .await;
                let what = if enabled { "enabled" } else { "disabled" };
                self.after_write(r.map(|_| format!("agent {id} {what}")), &id, false)
                    .await;
            }
            Request::Grant { scope, agent } => {
                let r = self
                    .stores
                    .permissions
                    .grant(&scope, std::slice::from_ref(&agent))
                    .await;
                self.after_write(
                    r.map(|_| format!("{scope} now grants {agent}")),
                    &scope,
                    true,
                )
                .await;
            }
            Request::Revoke { scope, agent } => {
                let r = self
                    .stores
                    .permissions
                    .revoke(&scope, std::slice::from_ref(&agent))
                    .await;
                let msg = match &r {
                    Ok(Some(_)) => format!("{scope} no longer grants {agent}"),
                    _ => format!("{scope} grants nothing now and was removed"),
                };
                self.after_write(r.map(|_| msg), &scope, false).await;
            }
            Request::AddClient { id, scopes } => {
                match self.issuer.create_client(&id, &scopes).await {
                    Ok(secret) => {
                        self.emit_lists().await;
                        self.emit(CoreEvent::ClientCreated { id, secret }).await;
                    }
                    Err(e) => self.failed(format!("{e:#}"), true).await,
                }
            }
            Request::RemoveClient { id } => {
                let r = self.stores.clients.delete(&id).await;
                self.after_write(r.map(|_| format!("removed client {id}")), &id, false)
                    .await;
            }
            Request::Mint {
                client,
                scopes,
                ttl,
            } => match self.issuer.mint(&self.issuer_url, &client, &scopes, ttl) {
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
            },
            Request::Inspect { token } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let r = me.inspect(&token).await;
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
                    let r = me.discover(&query).await;
                    me.emit(CoreEvent::Discovered(r)).await;
                });
            }
        }
    }

    async fn emit_lists(&self) {
        let agents = self.stores.agents.list().await;
        let perms = self.stores.permissions.list().await;
        let clients = self.stores.clients.list().await;
        match (agents, perms, clients) {
            (Ok(a), Ok(p), Ok(c)) => {
                self.emit(CoreEvent::Agents(a)).await;
                self.emit(CoreEvent::Permissions(p)).await;
                self.emit(CoreEvent::Clients(c)).await;
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                self.failed(format!("cannot read the registry: {e}"), false)
                    .await
            }
        }
    }

    async fn reload(&self) {
        if let Err(e) = self.gateway.registry.reload().await {
            self.failed(format!("cannot reload the registry: {e}"), false)
                .await;
        }
        self.emit_lists().await;
        self.counters_due.notify_one();
    }

    /// Reports a store write: reloads the gateway's view and the lists, or
    /// says what went wrong in words.
    async fn after_write(&self, r: Result<String, StoreError>, what: &str, form: bool) {
        match r {
            Ok(msg) => {
                self.reload().await;
                self.health_due.notify_one();
                self.emit(CoreEvent::Done(msg)).await;
            }
            Err(StoreError::NotFound(_)) => {
                self.reload().await;
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
        record: AgentRecord,
        create: bool,
        secret: Option<(String, switchboard_core::registry::Secret)>,
    ) {
        let id = record.id.clone();
        if let Some((name, value)) = &secret {
            if let Err(e) = self.stores.secrets.put(name, value).await {
                self.failed(format!("cannot store secret {name}: {e}"), true)
                    .await;
                return;
            }
        }
        let r = if create {
            self.stores.agents.create(record.clone()).await
        } else {
            self.stores.agents.update(record.clone()).await
        };
        match r {
            Ok(stored) => {
                self.reload().await;
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
                        if let Err(StoreError::NotFound(_)) = self.stores.secrets.get(name).await {
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
                self.reload().await;
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
    async fn discover(&self, query: &str) -> Result<Discovered, String> {
        let q = switchboard_core::discovery::validate_query(query).map_err(|e| e.to_string())?;
        let answer = self.gateway.discovery.search(q, DISCOVER_K, |_| true).await;
        let snapshot = self.gateway.registry.snapshot();
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

    async fn inspect(&self, token: &str) -> Result<Inspection, String> {
        let (header, claims) =
            crate::cmd::token::decode_jwt(token.trim()).map_err(|e| format!("{e:#}"))?;
        let validity = self
            .gateway
            .verifier
            .verify(token.trim())
            .await
            .map(|p| p.client_id.clone())
            .map_err(|e| e.to_string());
        let snapshot = self.gateway.registry.snapshot();
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
        let mut rx = self.gateway.events.subscribe();
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

    /// Reads the counters when traffic finishes (at most ten times a second)
    /// and when a minute ends; reports only changes.
    async fn watch_counters(self) {
        let mut last = None;
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
            match self.stores.counters.list(unix).await {
                Ok(list) => {
                    if last.as_ref() != Some(&list) {
                        last = Some(list.clone());
                        if self.tx.send(CoreEvent::Counters(list)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the rate-limit counters"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks every backend's card endpoint now and then; reports changes.
    async fn watch_health(self) {
        let mut last: HashMap<String, Health> = HashMap::new();
        loop {
            let agents: Vec<Arc<AgentRecord>> = self
                .gateway
                .registry
                .snapshot()
                .agents
                .values()
                .cloned()
                .collect();
            let checks = agents.iter().map(|a| {
                let me = &self;
                async move { (a.id.clone(), me.check(a).await) }
            });
            let results = futures::future::join_all(checks).await;
            for (id, health) in results {
                let changed = match (last.get(&id), &health) {
                    (Some(Health::Up { card: a, .. }), Health::Up { card: b, .. }) => a != b,
                    (Some(old), new) => old != new,
                    (None, _) => true,
                };
                if changed {
                    last.insert(id.clone(), health.clone());
                    if self
                        .tx
                        .send(CoreEvent::Health { id, health })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            tokio::select! {
                _ = self.health_due.notified() => {}
                _ = tokio::time::sleep(HEALTH_EVERY) => {}
            }
        }
    }

    async fn check(&self, agent: &AgentRecord) -> Health {
        let started = Instant::now();
        let url = format!(
            "{}/.well-known/agent-card.json",
            agent.url.trim_end_matches('/')
        );
        let mut req = self.gateway.http.get(&url).timeout(Duration::from_secs(3));
        match self
            .gateway
            .backend_auth
            .header(&agent.id, &agent.auth)
            .await
        {
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

    /// Notices registry edits made by other processes (the CLI) through the
    /// gateway's own cache, which polls the store.
    async fn watch_registry(self) {
        let mut seen = self.gateway.registry.snapshot();
        loop {
            tokio::time::sleep(REGISTRY_EVERY).await;
            let now = self.gateway.registry.snapshot();
            if !Arc::ptr_eq(&now, &seen) {
                seen = now;
                self.emit_lists().await;
                self.health_due.notify_one();
            }
            if self.tx.is_closed() {
                return;
            }
        }
    }
}

fn secret_name(a: &AgentRecord) -> Option<&str> {
    match &a.auth {
        switchboard_core::registry::BackendAuth::None => None,
        switchboard_core::registry::BackendAuth::Header { secret, .. }
        | switchboard_core::registry::BackendAuth::OAuth2 { secret, .. } => Some(secret),
    }
}
