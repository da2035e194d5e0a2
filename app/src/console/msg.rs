//! The two channels between the console and the core: typed requests out,
//! typed events back. The UI never touches a store or a socket itself.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use switchboard_core::auth::Explanation;
use switchboard_core::profile::Profile;
use switchboard_core::registry::{AgentRecord, ClientRecord, CounterEntry, Permission, Secret};
use switchboard_core::sync::SyncPlan;
use switchboard_core::TrafficEvent;

/// A request as the console sent it: with the profile on screen at the
/// time, so a write never lands on a profile the user did not see.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The active profile when the request was made.
    pub profile: String,
    /// The request.
    pub request: Request,
}

/// What the console asks the core to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Read agents, permissions, clients and counters again.
    Reload,
    /// Read the rate-limit counters again.
    RefreshCounters,
    /// Check every agent's backend now.
    CheckHealth,
    /// Fetch `{url}/.well-known/agent-card.json` to pre-fill the agent form.
    FetchCard {
        /// The backend base URL.
        url: String,
    },
    /// Create (`create`) or update an agent; store `secret` first when given.
    SaveAgent {
        /// The record; `version` must match the stored one on update.
        record: AgentRecord,
        /// A new record, not an edit.
        create: bool,
        /// A secret value typed in the form, and the name to store it under.
        secret: Option<(String, Secret)>,
    },
    /// Delete an agent.
    DeleteAgent {
        /// Agent id.
        id: String,
    },
    /// Enable or disable an agent.
    SetEnabled {
        /// Agent id.
        id: String,
        /// The new state.
        enabled: bool,
    },
    /// Let a scope reach an agent (or `*`).
    Grant {
        /// The scope.
        scope: String,
        /// Agent id or `*`.
        agent: String,
    },
    /// Take an agent away from a scope.
    Revoke {
        /// The scope.
        scope: String,
        /// Agent id or `*`.
        agent: String,
    },
    /// Register a client with the local issuer.
    AddClient {
        /// Client id.
        id: String,
        /// Scopes it may request.
        scopes: Vec<String>,
    },
    /// Remove a client.
    RemoveClient {
        /// Client id.
        id: String,
    },
    /// Make another profile the active one: open its stores and point every
    /// screen but Send and Traffic (which use the local gateway) at them.
    SwitchProfile {
        /// The profile.
        profile: Profile,
    },
    /// Compare the local profile with another (`sync --dry-run`).
    PlanSync {
        /// The target.
        to: Profile,
        /// Copy secret values too (`--copy-secrets`).
        copy_secrets: bool,
    },
    /// Apply a plan from the local profile to `to`.
    ApplySync {
        /// The target.
        to: Profile,
        /// What to change, as shown.
        plan: SyncPlan,
    },
    /// Ask the AWS profile's token endpoint for a client-credentials token.
    MintRemote {
        /// Client id (an app client of the profile's user pool).
        client: String,
        /// Its secret, typed masked; never shown or logged.
        secret: Secret,
        /// Scopes to ask for; empty: the client's defaults.
        scopes: Vec<String>,
    },
    /// Sign a token for a client.
    Mint {
        /// Client id.
        client: String,
        /// Scopes to put in it.
        scopes: Vec<String>,
        /// Lifetime.
        ttl: Duration,
    },
    /// Decode and check a token.
    Inspect {
        /// The token.
        token: String,
    },
    /// Send a message through the gateway.
    Send(SendRequest),
    /// Cancel a task through the gateway.
    Cancel {
        /// The send it belongs to.
        send_id: u64,
        /// Agent id.
        agent: String,
        /// Client to call as.
        client: String,
        /// The client's scopes.
        scopes: Vec<String>,
        /// The task.
        task_id: String,
    },
    /// Rank agents for a query.
    Discover {
        /// What the caller needs.
        query: String,
    },
}

impl Request {
    /// Does it change the active profile's stores? (On a production profile
    /// these need a typed confirmation.) A sync names its own target and is
    /// confirmed for that.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::SaveAgent { .. }
                | Request::DeleteAgent { .. }
                | Request::SetEnabled { .. }
                | Request::Grant { .. }
                | Request::Revoke { .. }
                | Request::AddClient { .. }
                | Request::RemoveClient { .. }
        )
    }

    /// What it does, in words, for confirmations.
    pub fn describe(&self) -> String {
        match self {
            Request::SaveAgent { record, create, .. } => {
                format!(
                    "{} agent {}",
                    if *create { "add" } else { "update" },
                    record.id
                )
            }
            Request::DeleteAgent { id } => format!("delete agent {id}"),
            Request::SetEnabled { id, enabled } => {
                format!("{} agent {id}", if *enabled { "enable" } else { "disable" })
            }
            Request::Grant { scope, agent } => format!("grant {agent} to scope {scope}"),
            Request::Revoke { scope, agent } => format!("revoke {agent} from scope {scope}"),
            Request::AddClient { id, .. } => format!("add client {id}"),
            Request::RemoveClient { id } => format!("remove client {id}"),
            Request::ApplySync { to, plan } => format!(
                "make {}'s agents and permissions exactly local's ({})",
                to.name,
                sync_summary(plan)
            ),
            other => format!("{other:?}"),
        }
    }
}

/// A plan in a few words: `3 agent changes, 2 scope changes, 0 secret values copied`.
pub fn sync_summary(plan: &SyncPlan) -> String {
    let c = plan.counts();
    format!(
        "{} agent changes, {} scope changes, {} secret values copied",
        plan.agents.len(),
        plan.permissions.len(),
        c.secrets_copied
    )
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    /// Numbers the sends of this console.
    pub send_id: u64,
    /// Agent id.
    pub agent: String,
    /// Client to call as.
    pub client: String,
    /// The client's scopes (the token carries them).
    pub scopes: Vec<String>,
    /// The text.
    pub text: String,
    /// `SendStreamingMessage` rather than `SendMessage`.
    pub stream: bool,
}

/// An agent backend's health, from its card endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Not checked yet.
    Unknown,
    /// Answered with a card.
    Up {
        /// How long the card took.
        latency: Duration,
        /// The card.
        card: Arc<Value>,
    },
    /// Did not answer, or not with a card.
    Down {
        /// Why.
        error: String,
    },
}

/// A token minted in the console.
#[derive(Debug, Clone, PartialEq)]
pub struct Minted {
    /// Client id.
    pub client: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// The token.
    pub token: String,
    /// Lifetime.
    pub ttl: Duration,
}

/// What a pasted token is.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// The JOSE header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
    /// `Ok(client)` when the gateway would accept it; why not otherwise.
    pub validity: Result<String, String>,
    /// Which agents it reaches and why, one per agent.
    pub agents: Vec<Explanation>,
}

/// Progress of a send.
#[derive(Debug, Clone, PartialEq)]
pub enum SendUpdate {
    /// The gateway answered with this HTTP status.
    Status(u16),
    /// A JSON-RPC response or stream event.
    Event(Value),
    /// The request failed (transport, or a non-JSON answer).
    Error(String),
    /// The answer or stream ended.
    Done,
    /// `CancelTask` answered.
    Canceled(Result<Value, String>),
}

/// One ranked agent.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverHit {
    /// Agent id.
    pub agent: String,
    /// Name.
    pub name: String,
    /// The score the ranking used.
    pub score: f32,
    /// Skills the query matched, best first.
    pub skills: Vec<String>,
    /// Whether the agent is enabled.
    pub enabled: bool,
}

/// A discovery answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The query.
    pub query: String,
    /// `semantic` or `lexical`.
    pub mode: String,
    /// The model, when it was used.
    pub model: Option<String>,
    /// Why the answer is lexical, or what else to know.
    pub notice: Option<String>,
    /// Agents, best first.
    pub hits: Vec<DiscoverHit>,
}

/// What the core tells the console.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreEvent {
    /// Every agent.
    Agents(Vec<AgentRecord>),
    /// Every permission.
    Permissions(Vec<Permission>),
    /// Every issuer client.
    Clients(Vec<ClientRecord>),
    /// Live rate-limit windows.
    Counters(Vec<CounterEntry>),
    /// An agent backend's health changed.
    Health {
        /// Agent id.
        id: String,
        /// Health.
        health: Health,
    },
    /// Traffic on the gateway.
    Traffic(Arc<TrafficEvent>),
    /// Traffic events the console was too slow to receive.
    TrafficLost(u64),
    /// A card fetched for the add-agent form.
    CardFetched {
        /// The URL asked for.
        url: String,
        /// The card, or why there is none.
        result: Result<Value, String>,
    },
    /// An agent was saved.
    AgentSaved {
        /// Agent id.
        id: String,
        /// A created agent, not an edit.
        created: bool,
    },
    /// A client was registered: the secret is shown once.
    ClientCreated {
        /// Client id.
        id: String,
        /// Its secret.
        secret: String,
    },
    /// A token was minted.
    Minted(Minted),
    /// A token was inspected.
    Inspected(Result<Inspection, String>),
    /// A send made progress.
    Send {
        /// Which send.
        send_id: u64,
        /// What happened.
        update: SendUpdate,
    },
    /// Discovery answered.
    Discovered(Result<Discovered, String>),
    /// The console now works on this profile; the lists follow.
    ProfileSwitched {
        /// The profile.
        profile: Profile,
    },
    /// A profile could not be opened; the previous one stays active.
    ProfileFailed {
        /// Its name.
        profile: String,
        /// Why.
        message: String,
    },
    /// The local stack's agents and clients, for Send, while another
    /// profile is active (on the local profile [`CoreEvent::Agents`] and
    /// [`CoreEvent::Clients`] are the same lists).
    LocalLists {
        /// The local agents.
        agents: Vec<AgentRecord>,
        /// The local issuer's clients.
        clients: Vec<ClientRecord>,
    },
    /// A sync plan from the local profile.
    SyncPlanned {
        /// The target.
        to: Profile,
        /// Whether secret values are copied.
        copy_secrets: bool,
        /// The plan, or why there is none.
        plan: Result<SyncPlan, String>,
    },
    /// Something worked; the status line says so.
    Done(String),
    /// Something failed. `form` when it answers a form's submit (the form stays open).
    Failed {
        /// What went wrong.
        message: String,
        /// The error belongs to the open form.
        form: bool,
    },
}

/// Unix milliseconds → a time.
pub fn time_of_millis(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}
