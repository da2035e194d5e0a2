//! The background indexer behind [`Discovery`](super::Discovery): loads the
//! model, then on every registry change embeds the agents whose text
//! changed (on a blocking thread, in small batches), keeps their vectors in
//! the [`EmbeddingStore`] and publishes a new index.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::document::AgentText;
use super::embedder::{self, Embedder, FastEmbedder};
use super::index::{Index, IndexedAgent};
use super::state::{ModelSource, ModelState, Published, Shared};
use crate::registry::{EmbeddingRecord, EmbeddingStore, RegistryCache, StoreError};

/// Texts per embedding call while indexing. Small, so a query's own
/// embedding never waits long for the model.
const EMBED_BATCH: usize = 16;
/// Vectors written to the store per transaction while indexing.
const STORE_BATCH: usize = 256;
/// When more agents than this need embedding, the lexical index is published
/// first so new and changed agents are findable by their words meanwhile.
const INTERIM_THRESHOLD: usize = 32;

/// Vectors known for an agent.
struct Known {
    hash: String,
    vectors: Arc<[f32]>,
}

/// Every agent's searchable text and its hash, by id.
async fn agent_texts(registry: &RegistryCache) -> Vec<(AgentText, String)> {
    let snapshot = registry.snapshot();
    let run = move || {
        let mut texts: Vec<(AgentText, String)> = snapshot
            .agents
            .values()
            .map(|a| {
                let t = AgentText::from_record(a);
                let h = t.text_hash();
                (t, h)
            })
            .collect();
        texts.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        texts
    };
    tokio::task::spawn_blocking(run).await.unwrap_or_default()
}

/// The registry's agents indexed by their words only (no vectors yet).
pub(super) async fn lexical_index(registry: &RegistryCache) -> Index {
    build_index(agent_texts(registry).await, &HashMap::new(), 0).await
}

/// An index of `texts`, with the `known` vectors whose text is unchanged.
async fn build_index(
    texts: Vec<(AgentText, String)>,
    known: &HashMap<String, Known>,
    dims: usize,
) -> Index {
    let agents: Vec<IndexedAgent> = texts
        .into_iter()
        .map(|(t, h)| {
            let vectors = known
                .get(&t.id)
                .filter(|k| k.hash == h)
                .map(|k| k.vectors.clone());
            IndexedAgent::new(t, h, vectors)
        })
        .collect();
    tokio::task::spawn_blocking(move || Index::build(agents, dims))
        .await
        .unwrap_or_default()
}

/// The background task that keeps the index in step with the registry.
pub(super) struct Indexer {
    shared: Arc<Shared>,
    registry: Arc<RegistryCache>,
    store: Arc<dyn EmbeddingStore>,
    /// Current vectors by agent id (for the loaded model).
    known: HashMap<String, Known>,
    store_loaded: bool,
}

impl Indexer {
    /// An indexer that publishes into `shared` and stores vectors in `store`.
    pub(super) fn new(
        shared: Arc<Shared>,
        registry: Arc<RegistryCache>,
        store: Arc<dyn EmbeddingStore>,
    ) -> Self {
        Indexer {
            shared,
            registry,
            store,
            known: HashMap::new(),
            store_loaded: false,
        }
    }

    /// Loads the model (when it comes from files), then indexes on every
    /// registry change until the registry is gone.
    pub(super) async fn run(mut self, model: ModelSource, mut changes: watch::Receiver<u64>) {
        if let ModelSource::Files(paths) = model {
            let p = paths.clone();
            let started = Instant::now();
            let loaded = tokio::task::spawn_blocking(move || FastEmbedder::load_shared(&p)).await;
            let state = match loaded {
                Ok(Ok(e)) => {
                    tracing::info!(
                        model = e.description(),
                        dir = %paths.model_dir.display(),
                        ms = started.elapsed().as_millis() as u64,
                        "discovery: embedding model loaded"
                    );
                    ModelState::Ready(e)
                }
                Ok(Err(e)) => {
                    tracing::warn!(
                        "discovery: {e}; answering with lexical ranking only. To rank by meaning, {}, then restart.",
                        embedder::INSTALL_HINT
                    );
                    ModelState::Unavailable(e.to_string())
                }
                Err(e) => {
                    tracing::error!(
                        "discovery: loading the embedding model crashed ({e}); answering with lexical ranking only"
                    );
                    ModelState::Unavailable(format!("loading the model failed: {e}"))
                }
            };
            *self.shared.model.write() = state;
            self.shared.bump();
        }
        loop {
            let version = *changes.borrow_and_update();
            self.sync(version).await;
            if changes.changed().await.is_err() {
                break;
            }
        }
    }

    fn publish(&self, index: Index, model_id: Option<String>, pending: usize, version: u64) {
        *self.shared.published.write() = Arc::new(Published {
            index: Arc::new(index),
            model_id,
            pending,
            registry_version: version,
        });
        self.shared.bump();
    }

    /// Loads stored vectors of the current model once; drops those of agents
    /// that no longer exist.
    async fn load_store(&mut self, model_id: &str, live: &HashMap<&str, &str>) {
        if self.store_loaded {
            return;
        }
        match self.store.list().await {
            Ok(records) => {
                self.store_loaded = true;
                for r in records {
                    if !live.contains_key(r.agent_id.as_str()) {
                        self.forget_stored(&r.agent_id).await;
                        continue;
                    }
                    if r.model != model_id {
                        continue;
                    }
                    self.known.insert(
                        r.agent_id,
                        Known {
                            hash: r.text_hash,
                            vectors: r.vectors.concat().into(),
                        },
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery: cannot read stored embeddings; embedding again");
            }
        }
    }

    async fn forget_stored(&self, agent_id: &str) {
        match self.store.delete(agent_id).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(agent = agent_id, error = %e, "discovery: cannot delete a stale embedding")
            }
        }
    }

    async fn sync(&mut self, version: u64) {
        let texts = agent_texts(&self.registry).await;
        let Some(embedder) = self.shared.embedder() else {
            let unchanged = {
                let published = self.shared.published.read();
                same_texts(&published.index, &texts) && published.model_id.is_none()
            };
            if unchanged {
                self.mark_version(version);
            } else {
                let index = build_index(texts, &self.known, 0).await;
                self.publish(index, None, 0, version);
            }
            return;
        };
        let model_id = embedder.model_id().to_owned();
        let dims = embedder.dimensions();
        {
            let live: HashMap<&str, &str> = texts
                .iter()
                .map(|(t, h)| (t.id.as_str(), h.as_str()))
                .collect();
            let live_owned: HashMap<String, String> = live
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.load_store(&model_id, &live).await;
            // Agents that are gone: forget their vectors here and in the store.
            let gone: Vec<String> = self
                .known
                .keys()
                .filter(|id| !live_owned.contains_key(*id))
                .cloned()
                .collect();
            for id in gone {
                self.known.remove(&id);
                self.forget_stored(&id).await;
            }
        }
        let pending: Vec<usize> = texts
            .iter()
            .enumerate()
            .filter(|(_, (t, h))| self.known.get(&t.id).is_none_or(|k| &k.hash != h))
            .map(|(i, _)| i)
            .collect();
        let current = {
            let published = self.shared.published.read();
            published.model_id.as_deref() == Some(model_id.as_str())
                && published.pending == 0
                && same_texts(&published.index, &texts)
        };
        if pending.is_empty() && current {
            self.mark_version(version);
            return;
        }
        if pending.len() > INTERIM_THRESHOLD {
            let interim = build_index(texts.clone(), &self.known, dims).await;
            self.publish(interim, Some(model_id.clone()), pending.len(), version);
        }
        let started = Instant::now();
        let mut to_store: Vec<EmbeddingRecord> = Vec::new();
        let mut failed = 0usize;
        let mut embedded = 0usize;
        for group in batches(&texts, &pending) {
            let inputs: Vec<Vec<String>> = group
                .iter()
                .map(|&i| texts[i].0.embedding_inputs())
                .collect();
            let flat: Vec<String> = inputs.iter().flatten().cloned().collect();
            let e = embedder.clone();
            let result = tokio::task::spawn_blocking(move || e.embed(&flat)).await;
            let vectors = match result {
                Ok(Ok(v)) => v,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, agents = group.len(), "discovery: embedding failed; those agents are ranked by their words only");
                    failed += group.len();
                    continue;
                }
                Err(err) => {
                    tracing::error!(error = %err, "discovery: the embedding thread failed");
                    failed += group.len();
                    continue;
                }
            };
            let mut rows = vectors.into_iter();
            for (&i, agent_inputs) in group.iter().zip(&inputs) {
                let agent_vectors: Vec<Vec<f32>> = rows.by_ref().take(agent_inputs.len()).collect();
                let (t, h) = &texts[i];
                self.known.insert(
                    t.id.clone(),
                    Known {
                        hash: h.clone(),
                        vectors: agent_vectors.concat().into(),
                    },
                );
                to_store.push(EmbeddingRecord {
                    agent_id: t.id.clone(),
                    model: model_id.clone(),
                    text_hash: h.clone(),
                    vectors: agent_vectors,
                    updated_at: 0,
                });
                embedded += 1;
            }
            if to_store.len() >= STORE_BATCH {
                self.save(std::mem::take(&mut to_store)).await;
            }
        }
        self.save(to_store).await;
        if embedded > 0 {
            tracing::debug!(
                agents = embedded,
                failed,
                ms = started.elapsed().as_millis() as u64,
                "discovery: agents embedded"
            );
        }
        let index = build_index(texts, &self.known, dims).await;
        self.publish(index, Some(model_id), 0, version);
    }

    fn mark_version(&self, version: u64) {
        let published = self.shared.published.read().clone();
        if published.registry_version != version {
            *self.shared.published.write() = Arc::new(Published {
                index: published.index.clone(),
                model_id: published.model_id.clone(),
                pending: published.pending,
                registry_version: version,
            });
            self.shared.bump();
        }
    }

    async fn save(&self, records: Vec<EmbeddingRecord>) {
        if records.is_empty() {
            return;
        }
        let n = records.len();
        if let Err(e) = self.store.put_many(records).await {
            tracing::warn!(error = %e, agents = n, "discovery: cannot store embeddings; they are kept in memory");
        }
    }
}

/// Does the index hold exactly these agents with these texts?
fn same_texts(index: &Index, texts: &[(AgentText, String)]) -> bool {
    index.len() == texts.len()
        && texts
            .iter()
            .all(|(t, h)| index.get(&t.id).is_some_and(|a| &a.hash == h))
}

/// Groups the pending agents so one embedding call gets about
/// [`EMBED_BATCH`] strings (an agent's strings stay together).
fn batches(texts: &[(AgentText, String)], pending: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut size = 0;
    for &i in pending {
        let n = 1 + texts[i].0.skills.len();
        if !current.is_empty() && size + n > EMBED_BATCH {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(i);
        size += n;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn batches_keep_agents_whole() {
        let text = |skills: usize| {
            (
                AgentText {
                    skills: vec![crate::discovery::document::SkillText::default(); skills],
                    ..AgentText::default()
                },
                String::new(),
            )
        };
        let texts = vec![text(3), text(10), text(2), text(20), text(0)];
        assert_eq!(
            batches(&texts, &[0, 1, 2, 3, 4]),
            vec![vec![0, 1], vec![2], vec![3], vec![4]]
        );
    }
}
