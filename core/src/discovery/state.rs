//! What the [`super::Discovery`] handle and its background indexer share:
//! where the model comes from and where it is at, and the published index.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use super::embedder::{Embedder, ModelPaths};
use super::index::Index;

/// Where the model comes from.
#[derive(Clone)]
pub enum ModelSource {
    /// Load fastembed from these files (in the background).
    Files(ModelPaths),
    /// Use this embedder (already loaded).
    Loaded(Arc<dyn Embedder>),
    /// No model: lexical only, with this reason.
    Off(String),
}

/// Where the model is at.
#[derive(Clone)]
pub(super) enum ModelState {
    Loading,
    Ready(Arc<dyn Embedder>),
    Unavailable(String),
}

/// The published index and what it was built with.
pub(super) struct Published {
    pub(super) index: Arc<Index>,
    /// The model its vectors come from; `None` for a lexical-only index.
    pub(super) model_id: Option<String>,
    /// Agents still waiting for vectors (an interim index).
    pub(super) pending: usize,
    /// Registry reloads seen when it was built.
    pub(super) registry_version: u64,
}

/// What the handle and the indexer share.
pub(super) struct Shared {
    pub(super) published: RwLock<Arc<Published>>,
    pub(super) model: RwLock<ModelState>,
    /// Bumped whenever the index or the model state changes.
    pub(super) updates: watch::Sender<u64>,
}

impl Shared {
    pub(super) fn bump(&self) {
        self.updates.send_modify(|v| *v += 1);
    }

    /// The loaded model, if any.
    pub(super) fn embedder(&self) -> Option<Arc<dyn Embedder>> {
        match &*self.model.read() {
            ModelState::Ready(e) => Some(e.clone()),
            _ => None,
        }
    }
}
