//! Discovery: callers describe what they need ("book me a flight to Lisbon")
//! and get the agents that fit, best first, among those they may reach.
//!
//! * [`document`] — what is searchable about an agent: its registry name and
//!   description and its card's skills (names, descriptions, tags, examples).
//! * [`embedder`] — the [`Embedder`] trait and the fastembed model
//!   (all-MiniLM-L6-v2, offline, from files `scripts/install-model` puts in a
//!   cache directory).
//! * [`lexical`] — BM25 over the same text.
//! * [`index`] — the in-memory index and the ranking that fuses both scores
//!   (how, and why, is documented there).
//! * [`eval`] — recall@k and MRR over a labelled fixture.
//!
//! [`Discovery`] keeps the index in step with the registry: a background task
//! wakes on every registry reload (local edits, and edits by other processes
//! through the cache's generation poll), embeds the agents whose text changed
//! on a blocking thread, stores their vectors with the text's hash in the
//! [`EmbeddingStore`] (so an unchanged agent is never embedded again, even
//! after a restart) and swaps in a new index. Queries read the current index
//! and never wait for indexing.
//!
//! Without the model (not installed, or it fails to load) discovery still
//! answers, ranking by words only, and says so: [`Mode::Lexical`] with a
//! notice that tells how to install the model, and a warning in the log.

pub mod document;
pub mod embedder;
pub mod eval;
pub mod http;
pub mod index;
pub mod lexical;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::watch;

use crate::registry::{EmbeddingRecord, EmbeddingStore, RegistryCache, StoreError};
use document::AgentText;
pub use embedder::{EmbedError, Embedder, FastEmbedder, ModelPaths};
pub use index::{Index, IndexedAgent, Ranking, Scored, SkillMatch};

/// Results when `k` is not given.
pub const DEFAULT_K: usize = 5;
/// Most results one query may ask for.
pub const MAX_K: usize = 50;
/// Longest query accepted, in bytes (UTF-8). Longer ones are refused (413),
/// never cut silently; this much text is about the model's 256-token window.
pub const MAX_QUERY_BYTES: usize = 1024;
/// How long a query waits for a model that is still loading, or an index
/// that is catching up with it, before it is answered lexically.
pub const SETTLE_WAIT: Duration = Duration::from_secs(3);
/// Texts per embedding call while indexing. Small, so a query's own
/// embedding never waits long for the model.
const EMBED_BATCH: usize = 16;
/// Vectors written to the store per transaction while indexing.
const STORE_BATCH: usize = 256;
/// When more agents than this need embedding, the lexical index is published
/// first so new and changed agents are findable by their words meanwhile.
const INTERIM_THRESHOLD: usize = 32;

/// A query or `k` that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Empty or only whitespace.
    #[error("the query is empty: describe what you need, e.g. \"book a flight to Lisbon\"")]
    Empty,
    /// Over [`MAX_QUERY_BYTES`].
    #[error("the query is {0} bytes long; at most {MAX_QUERY_BYTES} bytes are accepted")]
    TooLong(usize),
    /// `k` is not a whole number in 1..=[`MAX_K`].
    #[error("k must be a whole number from 1 to {MAX_K}, not {0:?}")]
    BadK(String),
}

/// Checks a query and returns it trimmed.
pub fn validate_query(q: &str) -> Result<&str, QueryError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong(q.len()));
    }
    let q = q.trim();
    if q.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(q)
}

/// Parses `k`: absent means [`DEFAULT_K`].
pub fn parse_k(k: Option<&str>) -> Result<usize, QueryError> {
    match k {
        None => Ok(DEFAULT_K),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_K).contains(&n) => Ok(n),
            _ => Err(QueryError::BadK(raw.chars().take(32).collect())),
        },
    }
}

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

#[derive(Clone)]
enum ModelState {
    Loading,
    Ready(Arc<dyn Embedder>),
    Unavailable(String),
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

/// The published index and what it was built with.
struct Published {
    index: Arc<Index>,
    /// The model its vectors come from; `None` for a lexical-only index.
    model_id: Option<String>,
    /// Agents still waiting for vectors (an interim index).
    pending: usize,
    /// Registry reloads seen when it was built.
    registry_version: u64,
}

struct Shared {
    published: RwLock<Arc<Published>>,
    model: RwLock<ModelState>,
    /// Bumped whenever the index or the model state changes.
    updates: watch::Sender<u64>,
}

impl Shared {
    fn bump(&self) {
        self.updates.send_modify(|v| *v += 1);
    }
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
        let texts = agent_texts(&registry).await;
        let index = build_index(texts, &HashMap::new(), 0).await;
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
        let indexer = Indexer {
            shared: shared.clone(),
            registry: registry.clone(),
            store,
            known: HashMap::new(),
            store_loaded: false,
        };
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
        match &*self.shared.model.read() {
            ModelState::Ready(e) => Some(e.clone()),
            _ => None,
        }
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
    /// [`validate_query`]) and returns the best `k`.
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

/// Vectors known for an agent.
struct Known {
    hash: String,
    vectors: Arc<[f32]>,
}

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
struct Indexer {
    shared: Arc<Shared>,
    registry: Arc<RegistryCache>,
    store: Arc<dyn EmbeddingStore>,
    /// Current vectors by agent id (for the loaded model).
    known: HashMap<String, Known>,
    store_loaded: bool,
}

impl Indexer {
    async fn run(mut self, model: ModelSource, mut changes: watch::Receiver<u64>) {
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

    fn embedder(&self) -> Option<Arc<dyn Embedder>> {
        match &*self.shared.model.read() {
            ModelState::Ready(e) => Some(e.clone()),
            _ => None,
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
        let Some(embedder) = self.embedder() else {
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
    fn query_and_k_validation() {
        assert_eq!(validate_query("  book a flight \n"), Ok("book a flight"));
        assert_eq!(validate_query(" \t "), Err(QueryError::Empty));
        assert_eq!(validate_query(""), Err(QueryError::Empty));
        let long = "x".repeat(MAX_QUERY_BYTES + 1);
        assert_eq!(
            validate_query(&long),
            Err(QueryError::TooLong(MAX_QUERY_BYTES + 1))
        );
        assert!(validate_query(&"é".repeat(MAX_QUERY_BYTES / 2)).is_ok());
        assert_eq!(parse_k(None), Ok(DEFAULT_K));
        assert_eq!(parse_k(Some("50")), Ok(50));
        assert_eq!(parse_k(Some("1")), Ok(1));
        for bad in ["0", "51", "-1", "five", "", "1.5"] {
            assert_eq!(
                parse_k(Some(bad)),
                Err(QueryError::BadK(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn batches_keep_agents_whole() {
        let text = |skills: usize| {
            (
                AgentText {
                    skills: vec![document::SkillText::default(); skills],
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
