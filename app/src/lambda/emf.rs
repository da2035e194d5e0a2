//! Metrics as CloudWatch embedded-metric-format (EMF) log lines: a function
//! has no endpoint to scrape, and CloudWatch turns these lines into metrics
//! by itself. The audit line stays one JSON line per request: in Lambda it
//! *is* the EMF line, the audit fields beside the `_aws` metadata.
//!
//! Metrics, namespace `Switchboard`:
//!
//! | metric | unit | dimensions |
//! | --- | --- | --- |
//! | `Requests` | Count | `Agent`, `StatusCode` |
//! | `Latency` | Milliseconds | `Agent` |
//! | `RateLimited` | Count | `Agent` |
//! | `AuthFailures` | Count | `Reason` (`TOKEN_MISSING`, `TOKEN_EXPIRED`, `TOKEN_INVALID`; 401 only) |
//!
//! Dimensions stay bounded: a request for an agent that does not exist is
//! counted under `Agent` = `-`, whatever its path said.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The target of the audit line (see `switchboard_core::audit`).
pub const AUDIT_TARGET: &str = "switchboard::audit";
/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Switchboard";

/// Writes each audit event as one EMF line on standard output.
pub struct EmfLayer;

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), json!(format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for EmfLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != AUDIT_TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut line = emf_line(fields.0, now_ms).to_string();
        line.push('\n');
        // One write per line, so lines from concurrent requests never mix.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// The EMF line for one audit record's `fields` at `now_ms`.
pub fn emf_line(mut fields: Map<String, Value>, now_ms: u64) -> Value {
    let status = fields.get("status").and_then(Value::as_u64).unwrap_or(0);
    let error = fields
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let reason = error
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let agent = if reason == "AGENT_NOT_FOUND" {
        "-".to_owned()
    } else {
        fields
            .get("agent")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let latency = fields
        .get("latency_ms")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let mut directives = vec![
        json!({"Namespace": NAMESPACE, "Dimensions": [["Agent", "StatusCode"]],
               "Metrics": [{"Name": "Requests", "Unit": "Count"}]}),
        json!({"Namespace": NAMESPACE, "Dimensions": [["Agent"]],
               "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"},
                           {"Name": "RateLimited", "Unit": "Count"}]}),
    ];
    fields.insert("Agent".into(), json!(agent));
    fields.insert("StatusCode".into(), json!(status.to_string()));
    fields.insert("Requests".into(), json!(1));
    fields.insert("Latency".into(), json!(latency));
    fields.insert("RateLimited".into(), json!(u8::from(status == 429)));
    if status == 401 {
        directives.push(json!({"Namespace": NAMESPACE, "Dimensions": [["Reason"]],
                               "Metrics": [{"Name": "AuthFailures", "Unit": "Count"}]}));
        fields.insert(
            "Reason".into(),
            json!(if reason.is_empty() {
                "TOKEN_INVALID"
            } else {
                &reason
            }),
        );
        fields.insert("AuthFailures".into(), json!(1));
    }
    fields.insert(
        "_aws".into(),
        json!({"Timestamp": now_ms, "CloudWatchMetrics": directives}),
    );
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn audit(agent: &str, status: u64, error: &str) -> Map<String, Value> {
        let v = json!({"request": 7, "client": "c1", "agent": agent, "method": "SendMessage",
                       "status": status, "latency_ms": 12.5, "error": error});
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_served_request_counts_under_its_agent_and_status() {
        let line = emf_line(audit("echo", 200, ""), 1_700_000_000_000);
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(),
            2
        );
        assert_eq!(line["Agent"], "echo");
        assert_eq!(line["StatusCode"], "200");
        assert_eq!(line["Requests"], 1);
        assert_eq!(line["Latency"], 12.5);
        assert_eq!(line["RateLimited"], 0);
        // The audit fields are all still there.
        assert_eq!(line["client"], "c1");
        assert_eq!(line["method"], "SendMessage");
        assert_eq!(line["status"], 200);
        assert!(line.get("AuthFailures").is_none());
    }

    #[test]
    fn limits_auth_failures_and_unknown_agents() {
        let limited = emf_line(audit("echo", 429, "RATE_LIMITED: over the limit"), 1);
        assert_eq!(limited["RateLimited"], 1);
        let denied = emf_line(
            audit(
                "echo",
                401,
                "TOKEN_EXPIRED: invalid token: token has expired",
            ),
            1,
        );
        assert_eq!(denied["Reason"], "TOKEN_EXPIRED");
        assert_eq!(denied["AuthFailures"], 1);
        let directives = denied["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives[2]["Dimensions"], json!([["Reason"]]));
        let unknown = emf_line(
            audit("x-a-random-path", 404, "AGENT_NOT_FOUND: no agent"),
            1,
        );
        assert_eq!(unknown["Agent"], "-");
        assert_eq!(unknown["agent"], "x-a-random-path");
    }
}
