//! The audit record step: what is known about a request as it goes down the
//! path, and its end recorded exactly once — metrics, the audit log line and
//! the traffic events — whether the gateway refused it or the response body
//! finished (or was dropped).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::response::Response;
use parking_lot::Mutex;
use serde_json::Value;

use crate::error::{ErrorStyle, GatewayError};
use crate::events::{EventBus, TrafficEvent};
use crate::metrics::Metrics;

/// One request's record, filled in step by step.
pub struct Record {
    bus: EventBus,
    metrics: Arc<Metrics>,
    id: u64,
    agent: String,
    client: String,
    method: String,
    started: Instant,
    /// The shape a gateway error takes for this request.
    style: ErrorStyle,
    /// The `Started` traffic event has gone out.
    announced: bool,
}

impl Record {
    /// A request to `agent` that arrived at `started`. `method` is what the
    /// record shows until the JSON-RPC envelope names one.
    pub fn begin(
        bus: &EventBus,
        metrics: &Arc<Metrics>,
        agent: &str,
        method: String,
        style: ErrorStyle,
        started: Instant,
    ) -> Record {
        Record {
            bus: bus.clone(),
            metrics: metrics.clone(),
            id: bus.next_id(),
            agent: agent.to_owned(),
            client: "-".into(),
            method,
            started,
            style,
            announced: false,
        }
    }

    /// The request id on the traffic bus.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The JSON-RPC envelope: its id shapes error bodies, its method names
    /// the request.
    pub fn envelope(&mut self, id: Value, method: Option<String>) {
        self.style = ErrorStyle::JsonRpc(id);
        if let Some(m) = method {
            self.method = m;
        }
    }

    /// How gateway errors are shaped for this request.
    pub fn style(&self) -> &ErrorStyle {
        &self.style
    }

    /// The caller is known: announce the request with its client id.
    pub fn authenticated(&mut self, client: &str) {
        client.clone_into(&mut self.client);
        self.announce();
    }

    fn announce(&mut self) {
        if std::mem::replace(&mut self.announced, true) || !self.bus.has_subscribers() {
            return;
        }
        self.bus.publish(TrafficEvent::Started {
            id: self.id,
            at: SystemTime::now(),
            client: self.client.clone(),
            agent: self.agent.clone(),
            method: self.method.clone(),
        });
    }

    /// The guard that records the end of a response with `status`.
    pub fn finish(mut self, status: u16) -> FinishGuard {
        self.announce();
        FinishGuard {
            inner: Some(FinishInner {
                bus: self.bus,
                metrics: self.metrics,
                id: self.id,
                agent: self.agent,
                client: self.client,
                method: self.method,
                status,
                started: self.started,
            }),
            error: Mutex::new(None),
        }
    }

    /// The one place a refused request becomes a response: recorded with
    /// the reason, shaped for the request's binding.
    pub fn refuse(self, err: GatewayError) -> Response {
        if let GatewayError::BackendUnreachable(d)
        | GatewayError::BackendBadResponse(d)
        | GatewayError::Unavailable(d) = &err
        {
            tracing::warn!(agent = %self.agent, detail = %d, "request failed");
        }
        let style = self.style.clone();
        let guard = self.finish(err.status().as_u16());
        guard.set_error(format!("{}: {err}", err.reason()));
        let response = err.into_response_with(&style);
        drop(guard);
        response
    }
}

/// Records the end of a request (metrics, traffic event, audit line) exactly
/// once: when the response body is finished or dropped.
pub struct FinishGuard {
    inner: Option<FinishInner>,
    error: Mutex<Option<String>>,
}

struct FinishInner {
    bus: EventBus,
    metrics: Arc<Metrics>,
    id: u64,
    agent: String,
    client: String,
    method: String,
    status: u16,
    started: Instant,
}

impl FinishGuard {
    /// Notes why the response went wrong, for the record.
    pub fn set_error(&self, why: String) {
        *self.error.lock() = Some(why);
    }
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        let Some(i) = self.inner.take() else { return };
        let latency = i.started.elapsed();
        let error = self.error.lock().take();
        i.metrics.record(&i.agent, i.status, latency.as_secs_f64());
        tracing::info!(
            target: "switchboard::audit",
            request = i.id,
            client = %i.client,
            agent = %i.agent,
            method = %i.method,
            status = i.status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            error = error.as_deref().unwrap_or(""),
        );
        i.bus.publish(TrafficEvent::Finished {
            id: i.id,
            status: i.status,
            latency,
            error,
        });
    }
}
