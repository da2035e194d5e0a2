//! Measuring ranking quality on a labelled fixture: queries, each with the
//! agent(s) it should find.
//!
//! * recall@k — the share of a query's expected agents found in the top k,
//!   out of at most k (a query expecting three agents scores 1 at k = 1 when
//!   any of them comes first), averaged over queries.
//! * MRR — the mean over queries of 1 / rank of the first expected agent in
//!   the top 10 (0 when none is there).

use std::sync::Arc;

use serde::Deserialize;

use super::document::AgentText;
use super::embedder::{EmbedError, Embedder};
use super::index::{Index, IndexedAgent, Ranking};
use crate::registry::AgentRecord;

/// Depth of the ranking MRR looks at.
pub const MRR_DEPTH: usize = 10;

/// A query and the agents it should find.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Labelled {
    /// What a caller would type.
    pub query: String,
    /// Ids of the agents that answer it; any order.
    pub expect: Vec<String>,
}

#[derive(Deserialize)]
struct QueryFile {
    queries: Vec<Labelled>,
}

#[derive(Deserialize)]
struct AgentFile {
    agents: Vec<AgentRecord>,
}

/// Parses `{"agents": [...]}` (a registry file's agents).
pub fn parse_agents(json: &str) -> Result<Vec<AgentRecord>, serde_json::Error> {
    serde_json::from_str::<AgentFile>(json).map(|f| f.agents)
}

/// Parses `{"queries": [{"query": ..., "expect": [...]}, ...]}`.
pub fn parse_queries(json: &str) -> Result<Vec<Labelled>, serde_json::Error> {
    serde_json::from_str::<QueryFile>(json).map(|f| f.queries)
}

/// Quality of one ranking over a query set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Queries evaluated.
    pub queries: usize,
    /// Mean recall@1.
    pub recall_at_1: f64,
    /// Mean recall@3.
    pub recall_at_3: f64,
    /// Mean reciprocal rank (top [`MRR_DEPTH`]).
    pub mrr: f64,
}

/// Indexes agents, embedding every one of them now when `embedder` is given
/// (batches of 64 strings). Blocking.
pub fn index_agents(
    agents: &[AgentRecord],
    embedder: Option<&dyn Embedder>,
) -> Result<Index, EmbedError> {
    let texts: Vec<AgentText> = agents.iter().map(AgentText::from_record).collect();
    let mut indexed = Vec::with_capacity(texts.len());
    let mut pending: Vec<(AgentText, Vec<String>)> = Vec::new();
    let mut pending_len = 0;
    let flush = |pending: &mut Vec<(AgentText, Vec<String>)>,
                 indexed: &mut Vec<IndexedAgent>|
     -> Result<(), EmbedError> {
        let Some(e) = embedder else {
            for (t, _) in pending.drain(..) {
                let h = t.text_hash();
                indexed.push(IndexedAgent::new(t, h, None));
            }
            return Ok(());
        };
        let flat: Vec<String> = pending
            .iter()
            .flat_map(|(_, i)| i.iter().cloned())
            .collect();
        let mut rows = e.embed(&flat)?.into_iter();
        for (t, inputs) in pending.drain(..) {
            let v: Vec<f32> = rows.by_ref().take(inputs.len()).flatten().collect();
            let h = t.text_hash();
            indexed.push(IndexedAgent::new(t, h, Some(Arc::from(v))));
        }
        Ok(())
    };
    for t in texts {
        let inputs = t.embedding_inputs();
        pending_len += inputs.len();
        pending.push((t, inputs));
        if pending_len >= 64 {
            flush(&mut pending, &mut indexed)?;
            pending_len = 0;
        }
    }
    flush(&mut pending, &mut indexed)?;
    Ok(Index::build(
        indexed,
        embedder.map_or(0, |e| e.dimensions()),
    ))
}

/// Embeds every query (batches of 64). Blocking.
pub fn embed_queries(
    queries: &[Labelled],
    embedder: &dyn Embedder,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let texts: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(64) {
        out.extend(embed_checked(embedder, chunk)?);
    }
    Ok(out)
}

fn embed_checked(e: &dyn Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    e.embed(texts)
}

/// The ids ranked for each query, top [`MRR_DEPTH`].
pub fn rankings(
    index: &Index,
    queries: &[Labelled],
    query_vectors: Option<&[Vec<f32>]>,
    ranking: Ranking,
) -> Vec<Vec<String>> {
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let v = query_vectors.and_then(|v| v.get(i)).map(Vec::as_slice);
            index
                .search(&q.query, v, ranking, MRR_DEPTH, |_| true)
                .into_iter()
                .map(|s| s.id)
                .collect()
        })
        .collect()
}

/// recall@1, recall@3 and MRR of rankings against the labels.
pub fn score(queries: &[Labelled], ranked: &[Vec<String>]) -> Metrics {
    let n = queries.len().max(1) as f64;
    let recall = |k: usize| {
        queries
            .iter()
            .zip(ranked)
            .map(|(q, r)| {
                let found = r.iter().take(k).filter(|id| q.expect.contains(id)).count();
                found as f64 / q.expect.len().min(k).max(1) as f64
            })
            .sum::<f64>()
            / n
    };
    let mrr = queries
        .iter()
        .zip(ranked)
        .map(|(q, r)| {
            r.iter()
                .take(MRR_DEPTH)
                .position(|id| q.expect.contains(id))
                .map_or(0.0, |p| 1.0 / (p + 1) as f64)
        })
        .sum::<f64>()
        / n;
    Metrics {
        queries: queries.len(),
        recall_at_1: recall(1),
        recall_at_3: recall(3),
        mrr,
    }
}

/// The three rankings side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Embedding similarity alone.
    pub vector: Metrics,
    /// BM25 alone.
    pub lexical: Metrics,
    /// The fused ranking discovery uses.
    pub fused: Metrics,
}

/// Evaluates vector-only, lexical-only and fused ranking in one run.
pub fn evaluate(
    agents: &[AgentRecord],
    queries: &[Labelled],
    embedder: &dyn Embedder,
) -> Result<Report, EmbedError> {
    let index = index_agents(agents, Some(embedder))?;
    let vectors = embed_queries(queries, embedder)?;
    let run = |r: Ranking| score(queries, &rankings(&index, queries, Some(&vectors), r));
    Ok(Report {
        vector: run(Ranking::Vector),
        lexical: run(Ranking::Lexical),
        fused: run(Ranking::Fused),
    })
}

impl Report {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<10} {:>9} {:>9} {:>7}\n",
            "ranking", "recall@1", "recall@3", "MRR"
        );
        for (name, m) in [
            ("vector", &self.vector),
            ("lexical", &self.lexical),
            ("fused", &self.fused),
        ] {
            s.push_str(&format!(
                "{name:<10} {:>9.3} {:>9.3} {:>7.3}\n",
                m.recall_at_1, m.recall_at_3, m.mrr
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn metrics_by_hand() {
        let q = |expect: &[&str]| Labelled {
            query: String::new(),
            expect: expect.iter().map(|s| s.to_string()).collect(),
        };
        let queries = vec![q(&["a"]), q(&["b"]), q(&["c", "d", "e"]), q(&["z"])];
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ranked = vec![
            ids(&["a", "x"]),
            ids(&["x", "y", "b"]),
            ids(&["d", "x", "c"]),
            ids(&["x"]),
        ];
        let m = score(&queries, &ranked);
        assert_eq!(m.queries, 4);
        assert!((m.recall_at_1 - (1.0 + 0.0 + 1.0 + 0.0) / 4.0).abs() < 1e-9);
        assert!((m.recall_at_3 - (1.0 + 1.0 + 2.0 / 3.0 + 0.0) / 4.0).abs() < 1e-9);
        assert!((m.mrr - (1.0 + 1.0 / 3.0 + 1.0 + 0.0) / 4.0).abs() < 1e-9);
    }
}
