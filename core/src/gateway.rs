//! The gateway's state, shared by every request: settings, the caches the
//! request path decides from (tokens, registry, backend credentials, cards),
//! the stores behind them, and the backend HTTP clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use crate::auth::{Verifier, VerifierConfig};
use crate::config::GatewayConfig;
use crate::discovery::{Discovery, ModelSource};
use crate::error::GatewayError;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::proxy::backend_auth::BackendAuthenticator;
use crate::proxy::card::fetch_card;
use crate::ratelimit::RateLimiter;
use crate::registry::{AgentRecord, RegistryCache};
use crate::store::Stores;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Settings that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The registry could not be loaded.
    #[error("cannot load the registry: {0}")]
    Store(#[from] crate::registry::StoreError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Everything the request path needs. Share as `Arc<Gateway>`.
pub struct Gateway {
    /// Settings in force.
    pub config: GatewayConfig,
    /// Base URL callers use.
    pub public_url: String,
    /// Token endpoint advertised in cards.
    pub token_url: String,
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// Cached registry and permissions.
    pub registry: Arc<RegistryCache>,
    /// Per-minute counters.
    pub limiter: RateLimiter,
    /// Backend credentials.
    pub backend_auth: BackendAuthenticator,
    /// Pooled client for backends.
    pub http: reqwest::Client,
    /// Traffic events.
    pub events: EventBus,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The stores.
    pub stores: Stores,
    /// Semantic discovery over the registry (`GET /discover`).
    pub discovery: Arc<Discovery>,
    /// Backend cards by agent id: (record version, fetched at, card).
    cards: Mutex<HashMap<String, (u64, Instant, Value)>>,
    _poller: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self._poller.abort();
    }
}

/// The pooled client used for backends: no redirects, no proxies from the
/// environment, Nagle off.
pub fn backend_client(config: &GatewayConfig) -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| StartError::Http(e.to_string()))
}

thread_local! {
    /// The backend client of the worker running on this thread.
    static WORKER_CLIENT: std::cell::RefCell<Option<reqwest::Client>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes `client` the backend client of requests served on this thread
/// (a worker thread of [`crate::listener`]).
pub fn set_worker_client(client: reqwest::Client) {
    WORKER_CLIENT.with(|c| *c.borrow_mut() = Some(client));
}

impl Gateway {
    /// Builds the gateway. `public_url` is where callers reach it (no
    /// trailing slash); `token_url` is what cards advertise.
    pub async fn new(
        config: GatewayConfig,
        stores: Stores,
        events: EventBus,
        public_url: String,
    ) -> Result<Arc<Gateway>, StartError> {
        let model = ModelSource::Files(config.model_paths());
        Self::with_model(config, stores, events, public_url, model).await
    }

    /// [`Self::new`] with discovery's model from `model` (Lambda turns it
    /// off so that no invocation pays for loading it).
    pub async fn with_model(
        config: GatewayConfig,
        stores: Stores,
        events: EventBus,
        public_url: String,
        model: ModelSource,
    ) -> Result<Arc<Gateway>, StartError> {
        let issuer = config
            .issuer
            .clone()
            .ok_or_else(|| StartError::Config("no token issuer configured".into()))?;
        let http = backend_client(&config)?;
        events.set_capture_limit(config.capture_limit());
        let verifier = Verifier::new(
            VerifierConfig {
                issuer: issuer.clone(),
                jwks_uri: config.jwks_uri.clone(),
                allowed_client_ids: config.allowed_client_ids.clone(),
                leeway_secs: config.leeway_secs,
            },
            http.clone(),
        );
        let token_url = config
            .token_url
            .clone()
            .unwrap_or_else(|| format!("{}/oauth2/token", issuer.trim_end_matches('/')));
        let registry =
            RegistryCache::load(stores.agents.clone(), stores.permissions.clone()).await?;
        let poller = registry.spawn_poller(config.registry_poll());
        // Loads the model in the background: start-up never waits for it and
        // never fails because of it.
        let discovery = Discovery::start(registry.clone(), stores.embeddings.clone(), model).await;
        Ok(Arc::new(Gateway {
            public_url: public_url.trim_end_matches('/').to_owned(),
            token_url,
            verifier,
            registry,
            limiter: RateLimiter::new(stores.counters.clone()),
            backend_auth: BackendAuthenticator::new(stores.secrets.clone(), http.clone()),
            http,
            events,
            metrics: Arc::new(Metrics::new()),
            stores,
            discovery,
            cards: Mutex::new(HashMap::new()),
            _poller: poller,
            config,
        }))
    }

    /// `{public_url}/agents/{id}`.
    pub fn agent_url(&self, id: &str) -> String {
        format!("{}/agents/{id}", self.public_url)
    }

    /// `http` or `https`, from the public URL.
    pub fn public_proto(&self) -> &str {
        if self.public_url.starts_with("https:") {
            "https"
        } else {
            "http"
        }
    }

    /// The client for backend requests: the pool of the worker thread this
    /// runs on, so a request and its backend connection share a thread.
    pub fn backend_http(&self) -> reqwest::Client {
        WORKER_CLIENT
            .with(|c| c.borrow().clone())
            .unwrap_or_else(|| self.http.clone())
    }

    /// The backend card for `agent`, from the short cache or fetched with
    /// the backend's credentials.
    pub async fn backend_card(&self, agent: &AgentRecord) -> Result<Value, GatewayError> {
        if let Some((version, at, card)) = self.cards.lock().get(&agent.id) {
            if *version == agent.version && at.elapsed() < self.config.card_ttl() {
                return Ok(card.clone());
            }
        }
        let credential = self.backend_auth.header(&agent.id, &agent.auth).await?;
        let card = fetch_card(
            &self.backend_http(),
            &agent.url,
            credential,
            self.config.header_timeout(),
        )
        .await?;
        self.cards.lock().insert(
            agent.id.clone(),
            (agent.version, Instant::now(), card.clone()),
        );
        Ok(card)
    }
}
