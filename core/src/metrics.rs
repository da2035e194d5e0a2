//! Prometheus metrics: requests by agent and status, latency, limited count.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    agent: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<AgentLabels, Histogram>,
    limited: Family<AgentLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ])
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<AgentLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let limited = Family::<AgentLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by agent and HTTP status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from arrival to the last response byte",
            latency.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by the per-minute limit",
            limited.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            limited,
        }
    }

    /// Records one finished request.
    pub fn record(&self, agent: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                agent: agent.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&AgentLabels {
                agent: agent.to_owned(),
            })
            .observe(seconds);
        if status == 429 {
            self.limited
                .get_or_create(&AgentLabels {
                    agent: agent.to_owned(),
                })
                .inc();
        }
    }

    /// OpenMetrics / Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
