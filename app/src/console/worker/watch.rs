//! What runs in the background: the local gateway's traffic forwarded to
//! the console, and the active profile's counters, backend health and
//! registry watched for changes; only changes are reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use switchboard_core::proxy::card;
use switchboard_core::registry::{AgentRecord, CounterEntry};
use switchboard_core::Gateway;

use super::{Active, Core};
use crate::console::msg::{CoreEvent, Health};

/// How often every backend's card endpoint is checked.
const HEALTH_EVERY: Duration = Duration::from_secs(15);
/// How often the registry snapshot is compared for edits made elsewhere.
const REGISTRY_EVERY: Duration = Duration::from_secs(1);

impl Core {
    /// Forwards the local gateway's traffic events to the console.
    pub(super) async fn forward_traffic(self) {
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
    pub(super) async fn watch_counters(self) {
        let mut last: Option<(Arc<Active>, Vec<CounterEntry>)> = None;
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
    pub(super) async fn watch_health(self) {
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
                async move { (agent.id.clone(), fetch_backend_card(gateway, agent).await) }
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
    pub(super) async fn watch_registry(self) {
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

/// An agent's health: its backend's card, fetched through `gateway`'s
/// client with the backend's credentials.
async fn fetch_backend_card(gateway: &Gateway, agent: &AgentRecord) -> Health {
    let started = Instant::now();
    let credential = match gateway.backend_auth.header(&agent.id, &agent.auth).await {
        Ok(c) => c,
        Err(e) => {
            return Health::Down {
                error: format!("backend credentials: {e}"),
            }
        }
    };
    match card::fetch_card(
        &gateway.http,
        &agent.url,
        credential,
        card::TOOL_FETCH_TIMEOUT,
    )
    .await
    {
        Ok(card) => Health::Up {
            latency: started.elapsed(),
            card: Arc::new(card),
        },
        Err(e) => Health::Down {
            error: e.to_string(),
        },
    }
}
