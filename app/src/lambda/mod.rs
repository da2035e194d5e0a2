//! Lambda mode: the same router as `serve`, behind API Gateway REST (or a
//! function URL) with response streaming, through `lambda_http`.
//!
//! Chosen by `switchboard lambda`, or when the Lambda runtime is present
//! (`AWS_LAMBDA_RUNTIME_API` set and no command given, as when Lambda starts
//! the `bootstrap` binary). Settings come from the environment
//! ([`settings`]). What an execution environment keeps across invocations:
//! the gateway itself with every cache in it (signing keys, registry
//! snapshot, secrets, backend tokens, cards, pooled connections). What it
//! checks on every request: the registry's age ([`fresh`]). What it never
//! does: load the embedding model (discovery ranks by words in Lambda), so a
//! cold `SendMessage` pays only for reading the registry.
//!
//! Streams pass through event by event: the response body is handed to the
//! runtime's streaming response as the backend produces it. Lambda's limits
//! apply: 6 MB per request body, and a streamed response ends after 15
//! minutes (API Gateway's and the function's timeout).

mod emf;
mod fresh;
pub mod settings;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use switchboard_core::discovery::ModelSource;
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};
use switchboard_core::store::Stores;
use switchboard_core::{EventBus, Gateway};
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use self::settings::LambdaSettings;

/// The variable the Lambda runtime sets for its runtime API.
pub const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

/// Whether this process was started by the Lambda runtime.
pub fn detected() -> bool {
    std::env::var_os(RUNTIME_API).is_some_and(|v| !v.is_empty())
}

/// Logs as JSON lines on standard output (where Lambda collects them), the
/// audit line of each request as an EMF line (see [`emf`]).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(
            format!("{}=off", emf::AUDIT_TARGET)
                .parse()
                .unwrap_or_default(),
        );
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_ansi(false)
                .with_writer(std::io::stdout)
                .with_filter(filter),
        )
        .with(
            emf::EmfLayer.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.target() == emf::AUDIT_TARGET
            })),
        )
        .try_init();
}

/// Starts the gateway and serves invocations until the runtime stops the
/// process.
pub async fn run() -> anyhow::Result<()> {
    init_logging();
    let started = Instant::now();
    let settings = LambdaSettings::from_env(|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("Lambda settings: {e}"))?;
    let conn = AwsConnection::new(
        "lambda",
        &settings.profile,
        AwsCredentials::Chain,
        AwsSettings::default(),
    )
    .context("opening the DynamoDB and Secrets Manager clients")?;
    let gateway = Gateway::with_model(
        settings.gateway.clone(),
        Stores::aws(conn),
        EventBus::new(),
        settings.public_url.clone(),
        ModelSource::Off(
            "the embedding model is not loaded in Lambda; discovery ranks by words".to_owned(),
        ),
    )
    .await
    .context("starting the gateway")?;
    tracing::info!(
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        public_url = %settings.public_url,
        "gateway ready for invocations"
    );
    let max_age = settings.registry_max_age;
    let handler = Handler {
        router: gateway.router(),
        gateway,
        max_age,
    };
    lambda_http::run_with_streaming_response(tower::service_fn(move |req| {
        handler.clone().call(req)
    }))
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

/// What every invocation shares.
#[derive(Clone)]
struct Handler {
    gateway: Arc<Gateway>,
    router: axum::Router,
    max_age: Duration,
}

impl Handler {
    async fn call(self, req: lambda_http::Request) -> Result<Response, Infallible> {
        let peer = source_ip(&req);
        let mut req = req.map(axum::body::Body::new);
        if let Some(ip) = peer {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 0)));
        }
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        if let Some(refusal) = fresh::ensure(&self.gateway, self.max_age, &method, &path).await {
            return Ok(refusal);
        }
        self.router.oneshot(req).await
    }
}

/// The caller's address as API Gateway or the function URL saw it.
fn source_ip(req: &lambda_http::Request) -> Option<IpAddr> {
    let ip = match req.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.clone(),
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
    }?;
    ip.parse().ok()
}
