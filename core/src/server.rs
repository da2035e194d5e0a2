//! The gateway: state shared by every request, and the axum router that
//! assembles the request path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::auth::{Verifier, VerifierConfig};
use crate::config::GatewayConfig;
use crate::discovery::{Discovery, ModelSource};
use crate::error::GatewayError;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::proxy::backend_auth::BackendAuthenticator;
use crate::proxy::card::{rewrite_card, CardContext};
use crate::proxy::forward;
use crate::ratelimit::RateLimiter;
use crate::registry::{AgentRecord, RegistryCache};
use crate::store::Stores;

/// How long open requests may run on after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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

impl Gateway {
    /// Builds the gateway. `public_url` is where callers reach it (no
    /// trailing slash); `token_url` is what cards advertise.
    pub async fn new(
        config: GatewayConfig,
        stores: Stores,
        events: EventBus,
        public_url: String,
    ) -> Result<Arc<Gateway>, StartError> {
        let issuer = config
            .issuer
            .clone()
            .ok_or_else(|| StartError::Config("no token issuer configured".into()))?;
        let http = backend_client(&config)?;
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
        let discovery = Discovery::start(
            registry.clone(),
            stores.embeddings.clone(),
            ModelSource::Files(config.model_paths()),
        )
        .await;
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

    /// The axum router for the whole HTTP surface.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/agents", get(list_agents))
            .route("/agents/", get(list_agents))
            .route("/agents/{*rest}", any(agents))
            .route("/discover", get(discover))
            .fallback(|| async { GatewayError::NotFound("no such route".into()).into_response() })
            .with_state(self.clone())
    }

    /// Serves until `shutdown` resolves, then lets open requests finish for
    /// up to [`SHUTDOWN_GRACE`].
    ///
    /// HTTP/1.1 and HTTP/2 (prior knowledge) on one port. A client has
    /// [`GatewayConfig::client_header_timeout`] to send each request's
    /// headers (idle keep-alive connections close after it too), and at most
    /// [`GatewayConfig::max_connections`] connections are served at once.
    ///
    /// Connections are accepted here and served by
    /// [`GatewayConfig::workers`] threads, each running a single-threaded
    /// runtime with a pool of backend connections of its own: a request is
    /// handled from its first byte to its last on one thread, without waking
    /// another one on the way. New connections go to the worker serving the
    /// fewest.
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let workers = Workers::start(self, self.config.worker_count())?;
        let header_timeout = self.config.client_header_timeout();
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.config.max_connections.max(1),
        ));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, never spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "could not hand a connection to a worker");
                    continue;
                }
            };
            workers.dispatch(Accepted {
                stream,
                peer,
                permit,
                watcher: graceful.watcher(),
                header_timeout,
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!("connections still open after the shutdown grace period; closing them");
        }
        // Closes whatever is still open.
        drop(workers);
        Ok(())
    }

    /// The backend card for `agent`, fetched or from the short cache.
    async fn backend_card(&self, agent: &AgentRecord) -> Result<Value, GatewayError> {
        if let Some((version, at, card)) = self.cards.lock().get(&agent.id) {
            if *version == agent.version && at.elapsed() < self.config.card_ttl() {
                return Ok(card.clone());
            }
        }
        let url = format!(
            "{}/.well-known/agent-card.json",
            agent.url.trim_end_matches('/')
        );
        let mut req = self
            .backend_http()
            .get(&url)
            .timeout(self.config.header_timeout());
        if let Some((name, value)) = self.backend_auth.header(&agent.id, &agent.auth).await? {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                GatewayError::BackendTimeout
            } else if e.is_connect() {
                GatewayError::BackendUnreachable(e.without_url().to_string())
            } else {
                GatewayError::BackendBadResponse(e.without_url().to_string())
            }
        })?;
        if !resp.status().is_success() {
            return Err(GatewayError::BackendBadResponse(format!(
                "card request answered {}",
                resp.status()
            )));
        }
        let card: Value = resp.json().await.map_err(|e| {
            GatewayError::BackendBadResponse(format!("card is not JSON: {}", e.without_url()))
        })?;
        self.cards.lock().insert(
            agent.id.clone(),
            (agent.version, Instant::now(), card.clone()),
        );
        Ok(card)
    }
}

/// `GET /agents/{id}/.well-known/agent-card.json` (and `agent.json`).
pub(crate) async fn card(gw: &Arc<Gateway>, id: &str) -> Response {
    let snapshot = gw.registry.snapshot();
    let Some(agent) = snapshot.routable(id).cloned() else {
        return GatewayError::NotFound(format!("no agent {id}")).into_response();
    };
    let scopes: Vec<String> = snapshot
        .permissions
        .permissions()
        .into_iter()
        .filter(|p| p.agents.contains(id) || p.agents.contains(crate::auth::scopes::ALL_AGENTS))
        .map(|p| p.scope)
        .collect();
    drop(snapshot);
    let card = match gw.backend_card(&agent).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(agent = id, error = ?e, "agent card unavailable");
            return e.into_response();
        }
    };
    let gateway_url = gw.agent_url(id);
    let rewritten = rewrite_card(
        card,
        &CardContext {
            backend_url: &agent.url,
            gateway_url: &gateway_url,
            token_url: &gw.token_url,
            scopes: &scopes,
        },
    );
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "max-age=30")],
        axum::Json(rewritten),
    )
        .into_response()
}

thread_local! {
    /// The backend client of the worker running on this thread.
    static WORKER_CLIENT: std::cell::RefCell<Option<reqwest::Client>> =
        const { std::cell::RefCell::new(None) };
}

impl Gateway {
    /// The client for backend requests: the pool of the worker thread this
    /// runs on, so a request and its backend connection share a thread.
    pub fn backend_http(&self) -> reqwest::Client {
        WORKER_CLIENT
            .with(|c| c.borrow().clone())
            .unwrap_or_else(|| self.http.clone())
    }
}

/// A connection accepted and on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
}

/// The threads that serve connections. Dropping this closes every connection
/// still open and lets the threads end.
struct Workers {
    queues: Vec<(
        tokio::sync::mpsc::UnboundedSender<Accepted>,
        Arc<std::sync::atomic::AtomicUsize>,
    )>,
}

impl Workers {
    fn start(gw: &Arc<Gateway>, count: usize) -> std::io::Result<Workers> {
        let mut queues = Vec::with_capacity(count);
        for i in 0..count {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
            let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let client = backend_client(&gw.config).map_err(std::io::Error::other)?;
            let gw = gw.clone();
            let counter = open.clone();
            std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || {
                    WORKER_CLIENT.with(|c| *c.borrow_mut() = Some(client));
                    runtime.block_on(worker_loop(gw, rx, counter));
                    // The runtime drops here, and with it every connection
                    // still open.
                })?;
            queues.push((tx, open));
        }
        Ok(Workers { queues })
    }

    /// Hands a connection to the worker serving the fewest.
    fn dispatch(&self, conn: Accepted) {
        use std::sync::atomic::Ordering;
        let Some((tx, open)) = self
            .queues
            .iter()
            .min_by_key(|(_, open)| open.load(Ordering::Relaxed))
        else {
            return;
        };
        open.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = tx.send(conn) {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(peer = %e.0.peer, "a gateway worker has stopped; connection dropped");
        }
    }
}

async fn worker_loop(
    gw: Arc<Gateway>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    open: Arc<std::sync::atomic::AtomicUsize>,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto;

    let router = gw.router();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gw.config.client_header_timeout());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    drop(gw);
    while let Some(conn) = rx.recv().await {
        let router = router.clone();
        let builder = builder.clone();
        let open = open.clone();
        tokio::spawn(async move {
            serve_connection(conn, router, builder).await;
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

async fn serve_connection(
    conn: Accepted,
    router: Router,
    builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt as _;

    let Accepted {
        stream,
        peer,
        permit,
        watcher,
        header_timeout,
    } = conn;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "could not take over a connection");
            return;
        }
    };
    // Telling HTTP/1 from HTTP/2 waits for the first bytes, with no timeout
    // of its own: a client that never sends one would hold its slot for ever.
    let mut first = [0u8; 1];
    match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => {
            tracing::debug!(%peer, "closed a connection that sent nothing");
            return;
        }
    }
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    drop(permit);
}

async fn agents(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    forward::handle(gw, peer, req).await
}

async fn list_agents(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    forward::list_reachable(gw, headers).await
}

async fn discover(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    crate::discovery::http::discover(gw, headers, uri).await
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let store = gw.stores.agents.generation().await;
    let keys = if gw.verifier.key_count() > 0 {
        Ok(gw.verifier.key_count())
    } else {
        gw.verifier.prefetch().await
    };
    let ready = store.is_ok() && keys.is_ok();
    let body = json!({
        "ready": ready,
        "store": store.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
        "signing_keys": match &keys { Ok(n) => json!(n), Err(e) => json!(e.to_string()) },
        // Informational: discovery answers (lexically) even without its model.
        "discovery": gw.discovery.status(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.metrics.render(),
    )
        .into_response()
}
