//! The route step: which agent a call goes to, from the cached registry —
//! as long as the store keeps confirming it, so that a revoked permission
//! cannot outlive a store outage.

use std::sync::Arc;
use std::time::Duration;

use crate::error::GatewayError;
use crate::registry::cache::Snapshot;
use crate::registry::{AgentRecord, RegistryCache};

/// The registry view a call is decided from, and its agent.
pub struct Routed {
    /// The view the route and the authorization are both decided from.
    pub snapshot: Arc<Snapshot>,
    /// The enabled agent the call goes to.
    pub agent: Arc<AgentRecord>,
}

/// Resolves `agent_id`: 404 for an unknown or disabled agent, 503 when the
/// store has not confirmed the cached registry for `max_unconfirmed`.
pub fn resolve(
    registry: &RegistryCache,
    agent_id: &str,
    max_unconfirmed: Duration,
) -> Result<Routed, GatewayError> {
    let unconfirmed = registry.unconfirmed_for();
    if unconfirmed > max_unconfirmed {
        return Err(GatewayError::Unavailable(format!(
            "the registry store has not answered for {} s",
            unconfirmed.as_secs()
        )));
    }
    let snapshot = registry.snapshot();
    let agent = snapshot
        .routable(agent_id)
        .cloned()
        .ok_or_else(|| GatewayError::NotFound(format!("no agent {agent_id}")))?;
    Ok(Routed { snapshot, agent })
}
