//! Registry edits on the active profile: agents, permissions, clients and
//! the secrets agents use, each reported as done or failed in words; and
//! the operator's discovery view over the registry.

use std::sync::Arc;

use switchboard_core::profile::Profile;
use switchboard_core::registry::{AgentRecord, BackendAuth, Secret, StoreError};

use super::{Active, Core};
use crate::console::msg::{CoreEvent, DiscoverHit, Discovered};

/// Agents a discovery query shows.
const DISCOVER_K: usize = 10;

impl Core {
    /// Deletes an agent.
    pub(super) async fn delete_agent(&self, a: &Arc<Active>, id: String) {
        let r = a.stores.agents.delete(&id).await;
        self.after_write(a, r.map(|_| format!("deleted agent {id}")), &id, false)
            .await;
    }

    /// Enables or disables an agent.
    pub(super) async fn set_enabled(&self, a: &Arc<Active>, id: String, enabled: bool) {
        let r = async {
            let mut rec = a
                .stores
                .agents
                .get(&id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("agent {id}")))?;
            rec.enabled = enabled;
            a.stores.agents.update(rec).await
        }
        .await;
        let what = if enabled { "enabled" } else { "disabled" };
        self.after_write(a, r.map(|_| format!("agent {id} {what}")), &id, false)
            .await;
    }

    /// Lets `scope` reach `agent` (or `*`).
    pub(super) async fn grant(&self, a: &Arc<Active>, scope: String, agent: String) {
        let r = a
            .stores
            .permissions
            .grant(&scope, std::slice::from_ref(&agent))
            .await;
        self.after_write(
            a,
            r.map(|_| format!("{scope} now grants {agent}")),
            &scope,
            true,
        )
        .await;
    }

    /// Takes `agent` away from `scope`.
    pub(super) async fn revoke(&self, a: &Arc<Active>, scope: String, agent: String) {
        let r = a
            .stores
            .permissions
            .revoke(&scope, std::slice::from_ref(&agent))
            .await;
        let msg = match &r {
            Ok(Some(_)) => format!("{scope} no longer grants {agent}"),
            _ => format!("{scope} grants nothing now and was removed"),
        };
        self.after_write(a, r.map(|_| msg), &scope, false).await;
    }

    /// Registers a client with the local issuer; its secret is shown once.
    pub(super) async fn add_client(&self, a: &Arc<Active>, id: String, scopes: Vec<String>) {
        if let Some(why) = cognito_clients(&a.profile) {
            self.failed(why, true).await;
            return;
        }
        match self.issuer.create_client(&id, &scopes).await {
            Ok(secret) => {
                self.emit_lists(a).await;
                self.emit(CoreEvent::ClientCreated { id, secret }).await;
            }
            Err(e) => self.failed(format!("{e:#}"), true).await,
        }
    }

    /// Removes a client.
    pub(super) async fn remove_client(&self, a: &Arc<Active>, id: String) {
        let r = a.stores.clients.delete(&id).await;
        self.after_write(a, r.map(|_| format!("removed client {id}")), &id, false)
            .await;
    }

    /// Reports a store write: reloads the gateway's view and the lists, or
    /// says what went wrong in words.
    async fn after_write(
        &self,
        a: &Arc<Active>,
        r: Result<String, StoreError>,
        what: &str,
        form: bool,
    ) {
        match r {
            Ok(msg) => {
                self.reload(a).await;
                self.health_due.notify_one();
                self.emit(CoreEvent::Done(msg)).await;
            }
            Err(StoreError::NotFound(_)) => {
                self.reload(a).await;
                self.failed(
                    format!("{what} no longer exists (removed elsewhere?)"),
                    form,
                )
                .await
            }
            Err(e) => self.failed(format!("{what}: {e}"), form).await,
        }
    }

    /// Creates or updates an agent, storing a typed secret first.
    pub(super) async fn save_agent(
        &self,
        a: &Arc<Active>,
        record: AgentRecord,
        create: bool,
        secret: Option<(String, Secret)>,
    ) {
        let id = record.id.clone();
        if let Some((name, value)) = &secret {
            if let Err(e) = a.stores.secrets.put(name, value).await {
                self.failed(format!("cannot store secret {name}: {e}"), true)
                    .await;
                return;
            }
        }
        let r = if create {
            a.stores.agents.create(record.clone()).await
        } else {
            a.stores.agents.update(record.clone()).await
        };
        match r {
            Ok(stored) => {
                self.reload(a).await;
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
                        if let Err(StoreError::NotFound(_)) = a.stores.secrets.get(name).await {
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
                self.reload(a).await;
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
    pub(super) async fn discover(&self, a: &Active, query: &str) -> Result<Discovered, String> {
        let q = switchboard_core::discovery::validate_query(query).map_err(|e| e.to_string())?;
        let answer = a.gateway.discovery.search(q, DISCOVER_K, |_| true).await;
        let snapshot = a.gateway.registry.snapshot();
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
}

/// Why clients cannot be added on `profile`, when they cannot.
pub fn cognito_clients(profile: &Profile) -> Option<String> {
    let aws = profile.aws()?;
    Some(format!(
        "profile {} takes tokens from its user pool {}; its clients are the pool's app clients \
         (manage them with `switchboard --profile {} clients add|list|rm`), not the local issuer's",
        profile.name,
        aws.issuer_url(),
        profile.name
    ))
}

/// The secret an agent's backend credentials name, if any.
fn secret_name(a: &AgentRecord) -> Option<&str> {
    match &a.auth {
        BackendAuth::None => None,
        BackendAuth::Header { secret, .. } | BackendAuth::OAuth2 { secret, .. } => Some(secret),
    }
}
