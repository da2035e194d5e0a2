//! Store backends. Each implements the traits in [`crate::registry::store`].

pub mod sqlite;

use std::sync::Arc;

use crate::registry::{AgentStore, ClientStore, CounterStore, PermissionStore, SecretStore};

/// Every store the gateway and the console use, chosen once at start-up.
#[derive(Clone)]
pub struct Stores {
    /// Agent registry.
    pub agents: Arc<dyn AgentStore>,
    /// Scope → agents.
    pub permissions: Arc<dyn PermissionStore>,
    /// Rate-limit windows.
    pub counters: Arc<dyn CounterStore>,
    /// Backend credentials.
    pub secrets: Arc<dyn SecretStore>,
    /// Local issuer clients.
    pub clients: Arc<dyn ClientStore>,
}

impl Stores {
    /// All five stores backed by one SQLite file.
    pub fn sqlite(db: sqlite::SqliteStore) -> Self {
        let db = Arc::new(db);
        Stores {
            agents: db.clone(),
            permissions: db.clone(),
            counters: db.clone(),
            secrets: db.clone(),
            clients: db,
        }
    }
}
