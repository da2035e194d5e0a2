//! Gateway settings. Every field has a default, so a config file names only
//! what it changes.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the gateway behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Base URL callers use to reach the gateway; card URLs are built from it.
    /// `None` uses `http://{listen address}`. Never taken from `Host` or
    /// `X-Forwarded-*` headers.
    pub public_url: Option<String>,
    /// Token issuer (`iss`). For local mode the emulator fills it in.
    pub issuer: Option<String>,
    /// JWKS URL; `None` discovers it from the issuer.
    pub jwks_uri: Option<String>,
    /// Token endpoint advertised in rewritten cards; `None` discovers it.
    pub token_url: Option<String>,
    /// When set, only these `client_id`s may call.
    pub allowed_client_ids: Option<Vec<String>>,
    /// Clock leeway for `exp`/`nbf`, seconds (at most 60).
    pub leeway_secs: u64,
    /// Requests per minute per client for agents without their own limit.
    pub default_rate_limit: u32,
    /// Backend connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Time the backend has to send response headers, milliseconds.
    pub header_timeout_ms: u64,
    /// Largest request body, bytes.
    pub body_limit: u64,
    /// How long a fetched agent card is reused, milliseconds.
    pub card_ttl_ms: u64,
    /// How often the registry cache checks the store for edits, milliseconds.
    pub registry_poll_ms: u64,
    /// Idle time after which a keep-alive comment is sent on a stream, milliseconds.
    pub sse_keepalive_ms: u64,
    /// Time a client has to send a request's headers, milliseconds; also how
    /// long an idle keep-alive connection stays open. Slow clients
    /// (slowloris) are cut off after it.
    pub client_header_timeout_ms: u64,
    /// Most client connections open at once; further clients wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// Threads serving client connections, each with its own backend
    /// connection pool; 0 means one per CPU.
    pub workers: usize,
    /// Directory of the discovery model (`model.onnx` and tokenizer files).
    /// `None`: `$SWITCHBOARD_MODEL_DIR`, else
    /// `${SWITCHBOARD_CACHE:-~/.cache/switchboard}/model`.
    pub model_dir: Option<PathBuf>,
    /// The ONNX Runtime shared library. `None`: `$ORT_DYLIB_PATH`, else
    /// `libonnxruntime.so.1.32.0` in the model directory.
    pub ort_dylib_path: Option<PathBuf>,
    /// The scope a token needs for the admin API under `/admin`.
    pub admin_scope: String,
    /// Capture request and response bodies (and each SSE event) in the
    /// traffic stream `GET /admin/traffic`. `None`: on in local mode, off on
    /// AWS profiles.
    pub traffic_capture: Option<bool>,
    /// Bytes of each body captured.
    pub traffic_capture_limit: usize,
    /// Traffic events buffered for each `/admin/traffic` subscriber; a
    /// subscriber that falls further behind loses events (and is told).
    pub traffic_buffer: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            public_url: None,
            issuer: None,
            jwks_uri: None,
            token_url: None,
            allowed_client_ids: None,
            leeway_secs: 30,
            default_rate_limit: 600,
            connect_timeout_ms: 2_000,
            header_timeout_ms: 30_000,
            body_limit: 10 * 1024 * 1024,
            card_ttl_ms: 30_000,
            registry_poll_ms: 500,
            sse_keepalive_ms: 15_000,
            client_header_timeout_ms: 20_000,
            max_connections: 4096,
            workers: 0,
            model_dir: None,
            ort_dylib_path: None,
            admin_scope: "switchboard/admin".into(),
            traffic_capture: None,
            traffic_capture_limit: crate::events::DEFAULT_CAPTURE_LIMIT,
            traffic_buffer: 1024,
        }
    }
}

impl GatewayConfig {
    /// [`Self::connect_timeout_ms`] as a `Duration`.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// [`Self::header_timeout_ms`] as a `Duration`.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    /// [`Self::card_ttl_ms`] as a `Duration`.
    pub fn card_ttl(&self) -> Duration {
        Duration::from_millis(self.card_ttl_ms)
    }
    /// How many worker threads serve connections ([`Self::workers`], or one
    /// per CPU).
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// [`Self::client_header_timeout_ms`] as a `Duration`.
    pub fn client_header_timeout(&self) -> Duration {
        Duration::from_millis(self.client_header_timeout_ms)
    }
    /// [`Self::registry_poll_ms`] as a `Duration`.
    pub fn registry_poll(&self) -> Duration {
        Duration::from_millis(self.registry_poll_ms)
    }
    /// How long the request path trusts a registry view the store has not
    /// confirmed: three polls, and never less than the store's own wait for
    /// a lock (2 s). Past it, requests fail closed with 503.
    pub fn registry_max_unconfirmed(&self) -> Duration {
        (self.registry_poll() * 3).max(Duration::from_secs(3))
    }
    /// Where discovery looks for its model: these settings, then the
    /// environment, then the cache directory.
    pub fn model_paths(&self) -> crate::discovery::ModelPaths {
        crate::discovery::ModelPaths::resolve(
            self.model_dir.as_deref(),
            self.ort_dylib_path.as_deref(),
        )
    }
    /// Bytes of each body the traffic stream captures; 0 when capture is off.
    pub fn capture_limit(&self) -> usize {
        if self.traffic_capture.unwrap_or(true) {
            self.traffic_capture_limit
        } else {
            0
        }
    }
    /// [`Self::sse_keepalive_ms`] as a `Duration`.
    pub fn sse_keepalive(&self) -> Duration {
        Duration::from_millis(self.sse_keepalive_ms)
    }
}
