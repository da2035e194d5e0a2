//! The [`Discovery`] handle: starts the indexer, answers queries from the
//! published index (semantic, or by words while the model is missing or
//! loading), and tells its [`Status`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::watch;

use super::embedder::{self, Embedder};
use super::index::{Index, Ranking, Scored};
use super::indexer::{lexical_index, Indexer};
use super::state::{ModelSource, ModelState, Published, Shared};
use crate::registry::{EmbeddingStore, RegistryCache};

/// How long a query waits for a model that is still loading, or an index
/// that is catching up with it, before it is answered lexically.
pub const SETTLE_WAIT: Duration = Duration::from_secs(3);

/// How an answer was ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Embedding similarity fused with BM25.
    Semantic,
    /// BM25 only: the model is missing, failed, or is still indexing.
    Lexical,
}

/// Ranked agents and how they were ranked.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Semantic or lexical.
    pub mode: Mode,
    /// The model, when it was used.
    pub model: Option<String>,
    /// Why the answer is lexical, or what else the caller should know.
    pub notice: Option<String>,
    /// Best first.
    pub hits: Vec<Scored>,
}

/// What discovery is doing, for readiness checks and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The mode a query would be answered in now.
    pub mode: Mode,
    /// The model, when loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Agents in the index.
    pub agents: usize,
    /// Agents with current vectors.
    pub embedded: usize,
    /// Why the mode is lexical, or what is still going on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// Semantic discovery over the registry. Share as `Arc<Discovery>`; dropping
/// it stops the indexer.
pub struct Discovery {
    shared: Arc<Shared>,
    registry: Arc<RegistryCache>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unavailable_notice(reason: &str) -> String {
    format!(
        "semantic ranking is unavailable ({reason}); results are ranked by their words only. \
         To rank by meaning, {}, then restart.",
        embedder::INSTALL_HINT
    )
}

impl Discovery {
    /// Builds the lexical index of the registry now and starts the indexer,
    /// which loads the model (when `model` names files) and embeds the agents
    /// in the background. Never fails and never waits for the model: until it
    /// is ready, and forever if it cannot load, queries are answered lexically.
    pub async fn start(
        registry: Arc<RegistryCache>,
        store: Arc<dyn EmbeddingStore>,
        model: ModelSource,
    ) -> Arc<Discovery> {
        let mut changes = registry.subscribe();
        let registry_version = *changes.borrow_and_update();
        let index = lexical_index(&registry).await;
        let initial_state = match &model {
            ModelSource::Files(_) => ModelState::Loading,
            ModelSource::Loaded(e) => ModelState::Ready(e.clone()),
            ModelSource::Off(reason) => ModelState::Unavailable(reason.clone()),
        };
        let shared = Arc::new(Shared {
            published: RwLock::new(Arc::new(Published {
                index: Arc::new(index),
                model_id: None,
                pending: 0,
                registry_version,
            })),
            model: RwLock::new(initial_state),
            updates: watch::channel(0).0,
        });
        let indexer = Indexer::new(shared.clone(), registry.clone(), store);
        let task = tokio::spawn(indexer.run(model, changes));
        Arc::new(Discovery {
            shared,
            registry,
            task,
        })
    }

    /// The current index.
    pub fn index(&self) -> Arc<Index> {
        self.shared.published.read().index.clone()
    }

    /// The loaded model, if any.
    pub fn embedder(&self) -> Option<Arc<dyn Embedder>> {
        self.shared.embedder()
    }

    /// `Some(notice)` while a query would have to wait or go lexical.
    fn unsettled(&self) -> Option<String> {
        let model = self.shared.model.read().clone();
        let published = self.shared.published.read().clone();
        match model {
            ModelState::Loading => Some("the embedding model is still loading".into()),
            ModelState::Unavailable(_) => None,
            ModelState::Ready(e) => {
                if published.model_id.as_deref() != Some(e.model_id()) || published.pending > 0 {
                    let total = published.index.len();
                    let done = total - published.index.without_vectors();
                    Some(format!(
                        "the semantic index is being built ({done} of {total} agents embedded)"
                    ))
                } else {
                    None
                }
            }
        }
    }

    /// True when the model has loaded (or failed for good) and the index is
    /// built with it: a query now is answered without waiting.
    pub fn is_settled(&self) -> bool {
        self.unsettled().is_none()
    }

    /// Waits until the model has loaded (or failed) and the index reflects it
    /// and the registry as of now, or until `timeout`. Returns the status then.
    pub async fn settle(&self, timeout: Duration) -> Status {
        let deadline = Instant::now() + timeout;
        let mut updates = self.shared.updates.subscribe();
        let mut registry = self.registry.subscribe();
        loop {
            let want = *registry.borrow_and_update();
            let caught_up = self.shared.published.read().registry_version >= want;
            if caught_up && self.unsettled().is_none() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = tokio::time::timeout(left, updates.changed()).await;
        }
        self.status()
    }

    /// What discovery is doing now.
    pub fn status(&self) -> Status {
        let published = self.shared.published.read().clone();
        let agents = published.index.len();
        let embedded = agents - published.index.without_vectors();
        let model = self.shared.model.read().clone();
        let (mode, model_name, notice) = match (&model, self.unsettled()) {
            (ModelState::Unavailable(reason), _) => {
                (Mode::Lexical, None, Some(unavailable_notice(reason)))
            }
            (_, Some(n)) => (Mode::Lexical, None, Some(n)),
            (ModelState::Ready(e), None) => (
                Mode::Semantic,
                Some(e.description().to_owned()),
                (embedded < agents).then(|| {
                    format!(
                        "{} of {agents} agents could not be embedded and are ranked by their words only",
                        agents - embedded
                    )
                }),
            ),
            (ModelState::Loading, None) => (Mode::Lexical, None, None),
        };
        Status {
            mode,
            model: model_name,
            agents,
            embedded,
            notice,
        }
    }

    /// Ranks the agents `allowed` accepts for `query` (already validated with
    /// [`validate_query`](super::validate_query)) and returns the best `k`.
    ///
    /// Semantic when the model is ready and the index built with it; if the
    /// model is still loading, waits up to [`SETTLE_WAIT`] for it. Otherwise,
    /// or if embedding the query fails, lexical, with a notice saying why.
    pub async fn search(&self, query: &str, k: usize, allowed: impl Fn(&str) -> bool) -> Answer {
        if self.unsettled().is_some() {
            let deadline = Instant::now() + SETTLE_WAIT;
            let mut updates = self.shared.updates.subscribe();
            while self.unsettled().is_some() && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(left, updates.changed()).await;
            }
        }
        let index = self.index();
        let lexical = |notice: String| Answer {
            mode: Mode::Lexical,
            model: None,
            notice: Some(notice),
            hits: index.search(query, None, Ranking::Lexical, k, &allowed),
        };
        let model = self.shared.model.read().clone();
        let embedder =
            match model {
                ModelState::Unavailable(reason) => return lexical(unavailable_notice(&reason)),
                ModelState::Loading => return lexical(
                    "the embedding model is still loading; results are ranked by their words only"
                        .into(),
                ),
                ModelState::Ready(e) => e,
            };
        if let Some(n) = self.unsettled() {
            return lexical(format!(
                "{n}; results are ranked by their words only until it is done"
            ));
        }
        let q = vec![query.to_owned()];
        let e = embedder.clone();
        let vector = match tokio::task::spawn_blocking(move || e.embed(&q)).await {
            Ok(Ok(mut v)) if !v.is_empty() => v.swap_remove(0),
            Ok(Ok(_)) => return lexical("the model returned no vector for the query".into()),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "discovery: embedding the query failed; answering lexically");
                return lexical(format!(
                    "embedding the query failed ({err}); results are ranked by their words only"
                ));
            }
            Err(err) => {
                tracing::error!(error = %err, "discovery: the embedding thread failed; answering lexically");
                return lexical(
                    "embedding the query failed; results are ranked by their words only".into(),
                );
            }
        };
        let hits = index.search(query, Some(&vector), Ranking::Fused, k, &allowed);
        let unembedded = index.without_vectors();
        Answer {
            mode: Mode::Semantic,
            model: Some(embedder.description().to_owned()),
            notice: (unembedded > 0).then(|| {
                format!(
                    "{unembedded} agents could not be embedded and are ranked by their words only"
                )
            }),
            hits,
        }
    }
}
