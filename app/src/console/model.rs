//! What the console knows: the data the core reported ([`Model`]), where
//! the local stack is, and the status line. Screens read it; only the app
//! changes it, from core events.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_core::profile::{Profile, ProfileKind};
use switchboard_core::ratelimit::window_of;
use switchboard_core::registry::{AgentRecord, ClientRecord, CounterEntry, Permission};

use super::msg::Health;

/// Where the stack is, for the header and the Profile screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackView {
    /// Gateway base URL.
    pub gateway_url: String,
    /// Issuer URL.
    pub issuer_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where logs go.
    pub log_file: PathBuf,
    /// Limit for agents without their own.
    pub default_limit: u32,
}

/// What the core has told the console.
#[derive(Debug, Clone)]
pub struct Model {
    /// The stack.
    pub stack: StackView,
    /// Agents, sorted by id.
    pub agents: Vec<AgentRecord>,
    /// Permissions, sorted by scope.
    pub permissions: Vec<Permission>,
    /// Issuer clients, sorted by id.
    pub clients: Vec<ClientRecord>,
    /// Live counter windows.
    pub counters: Vec<CounterEntry>,
    /// Backend health by agent id.
    pub health: HashMap<String, Health>,
    /// Latency of the last request through the gateway, by agent id.
    pub last_latency: HashMap<String, Duration>,
    /// The active profile: the screens but Send and Traffic work on its stores.
    pub profile: Profile,
    /// Every profile.
    pub profiles: Vec<Profile>,
    /// The profile being connected to, while a switch runs.
    pub switching: Option<String>,
    /// The last switch that failed: `(profile, why)`.
    pub switch_error: Option<(String, String)>,
    /// The local stack's agents (Send uses them, whatever the profile).
    pub local_agents: Vec<AgentRecord>,
    /// The local issuer's clients (Send calls as one of them).
    pub local_clients: Vec<ClientRecord>,
    /// Whether this build has discovery.
    pub discovery: bool,
}

impl Model {
    /// A model with nothing loaded yet.
    pub fn new(stack: StackView, profile: Profile, profiles: Vec<Profile>) -> Model {
        Model {
            stack,
            agents: Vec::new(),
            permissions: Vec::new(),
            clients: Vec::new(),
            counters: Vec::new(),
            health: HashMap::new(),
            last_latency: HashMap::new(),
            profile,
            profiles,
            switching: None,
            switch_error: None,
            local_agents: Vec::new(),
            local_clients: Vec::new(),
            discovery: super::worker::DISCOVERY_AVAILABLE,
        }
    }

    /// Whether the local profile is active.
    pub fn is_local(&self) -> bool {
        matches!(self.profile.kind, ProfileKind::Local)
    }

    /// A local agent by id (what Send reaches through the local gateway).
    pub fn local_agent(&self, id: &str) -> Option<&AgentRecord> {
        self.local_agents.iter().find(|a| a.id == id)
    }

    /// A local issuer client by id.
    pub fn local_client(&self, id: &str) -> Option<&ClientRecord> {
        self.local_clients.iter().find(|c| c.client_id == id)
    }

    /// The limit in force for an agent.
    pub fn limit_of(&self, agent: &AgentRecord) -> u32 {
        agent.rate_limit.unwrap_or(self.stack.default_limit)
    }

    /// Requests counted for `agent` (all clients) in the minute holding `now`.
    pub fn requests_this_minute(&self, agent: &str, now: SystemTime) -> u64 {
        let window = window_of(unix(now));
        self.counters
            .iter()
            .filter(|c| c.key.agent_id == agent && c.key.window == window)
            .map(|c| c.count)
            .sum()
    }

    /// An agent by id.
    pub fn agent(&self, id: &str) -> Option<&AgentRecord> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// A client by id.
    pub fn client(&self, id: &str) -> Option<&ClientRecord> {
        self.clients.iter().find(|c| c.client_id == id)
    }

    /// Every scope the console knows of: granted ones and clients' ones.
    pub fn known_scopes(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.permissions.iter().map(|p| p.scope.clone()).collect();
        for c in &self.clients {
            all.extend(c.allowed_scopes.iter().cloned());
        }
        all.into_iter().collect()
    }
}

/// Unix seconds.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Nothing to say.
    None,
    /// Information.
    Info(String),
    /// An error the user should see.
    Error(String),
}
