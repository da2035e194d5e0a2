//! The in-memory registry the hot path reads. Edits invalidate it; a poller
//! picks up edits made by other processes (the CLI, other instances).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::{AgentRecord, AgentStore, PermissionSet, PermissionStore, StoreResult};

/// An immutable view of the registry.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Agents by id.
    pub agents: HashMap<String, Arc<AgentRecord>>,
    /// Scope → agents.
    pub permissions: PermissionSet,
}

impl Snapshot {
    /// An enabled agent, or `None` (unknown and disabled look the same).
    pub fn routable(&self, id: &str) -> Option<&Arc<AgentRecord>> {
        self.agents.get(id).filter(|a| a.enabled)
    }
}

/// Cached registry with generation-based invalidation.
pub struct RegistryCache {
    agents: Arc<dyn AgentStore>,
    permissions: Arc<dyn PermissionStore>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Generations the snapshot was built from; `None` before the first load.
    seen: Mutex<Option<(u64, u64)>>,
    reload_lock: tokio::sync::Mutex<()>,
    /// Counts loads; subscribers (discovery) wake on each.
    loads: tokio::sync::watch::Sender<u64>,
    /// When the store last answered a load or a poll, in milliseconds since
    /// `epoch`.
    confirmed_ms: AtomicU64,
    epoch: Instant,
}

impl RegistryCache {
    /// Loads the registry once; fails when the store cannot be read.
    pub async fn load(
        agents: Arc<dyn AgentStore>,
        permissions: Arc<dyn PermissionStore>,
    ) -> StoreResult<Arc<Self>> {
        let cache = Arc::new(RegistryCache {
            agents,
            permissions,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            seen: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
            loads: tokio::sync::watch::channel(0).0,
            confirmed_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        cache.reload().await?;
        Ok(cache)
    }

    /// How long ago the store last confirmed this view (a load or a poll
    /// that succeeded). The request path refuses to serve a view the store
    /// has not confirmed for too long: a revoked permission must not live on
    /// while the store is unreachable.
    pub fn unconfirmed_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.confirmed_ms.load(Ordering::Relaxed)))
    }

    fn confirm(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.confirmed_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// The current view. Cheap: one `Arc` clone.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    /// Reloads everything from the store now (after a local edit).
    pub async fn reload(&self) -> StoreResult<()> {
        let _guard = self.reload_lock.lock().await;
        let gens = (
            self.agents.generation().await?,
            self.permissions.generation().await?,
        );
        self.load_at(gens).await
    }

    async fn load_at(&self, gens: (u64, u64)) -> StoreResult<()> {
        let agents = self.agents.list().await?;
        let permissions = self.permissions.list().await?;
        let snapshot = Snapshot {
            agents: agents
                .into_iter()
                .map(|a| (a.id.clone(), Arc::new(a)))
                .collect(),
            permissions: PermissionSet::new(permissions),
        };
        *self.snapshot.write() = Arc::new(snapshot);
        *self.seen.lock() = Some(gens);
        self.confirm();
        self.loads.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Wakes on every reload (the value counts them), whatever triggered it:
    /// a local edit's [`Self::reload`] or the poller seeing another
    /// process's edit.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.loads.subscribe()
    }

    /// Reloads if the store's generations moved; returns whether it did.
    pub async fn refresh(&self) -> StoreResult<bool> {
        let gens = (
            self.agents.generation().await?,
            self.permissions.generation().await?,
        );
        if *self.seen.lock() == Some(gens) {
            self.confirm();
            return Ok(false);
        }
        let _guard = self.reload_lock.lock().await;
        self.load_at(gens).await?;
        Ok(true)
    }

    /// Polls the store every `every` and reloads on change, until the cache is dropped.
    pub fn spawn_poller(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                match cache.refresh().await {
                    Ok(true) => tracing::debug!("registry reloaded after an edit"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "registry refresh failed; requests fail closed until the store answers")
                    }
                }
            }
        })
    }
}
