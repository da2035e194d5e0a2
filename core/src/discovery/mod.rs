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
//! [`EmbeddingStore`](crate::registry::EmbeddingStore) (so an unchanged agent
//! is never embedded again, even after a restart) and swaps in a new index. Queries read the current index
//! and never wait for indexing.
//!
//! Without the model (not installed, or it fails to load) discovery still
//! answers, ranking by words only, and says so: [`Mode::Lexical`] with a
//! notice that tells how to install the model, and a warning in the log.
//!
//! The handle and its status are in `handle.rs`, the background indexer in
//! `indexer.rs`; this file checks queries.

pub mod document;
pub mod embedder;
pub mod eval;
mod handle;
pub mod http;
pub mod index;
mod indexer;
pub mod lexical;
mod state;

pub use embedder::{EmbedError, Embedder, FastEmbedder, ModelPaths};
pub use handle::{Answer, Discovery, Mode, Status, SETTLE_WAIT};
pub use index::{Index, IndexedAgent, Ranking, Scored, SkillMatch};
pub use state::ModelSource;

/// Results when `k` is not given.
pub const DEFAULT_K: usize = 5;
/// Most results one query may ask for.
pub const MAX_K: usize = 50;
/// Longest query accepted, in bytes (UTF-8). Longer ones are refused (413),
/// never cut silently; this much text is about the model's 256-token window.
pub const MAX_QUERY_BYTES: usize = 1024;

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
}
