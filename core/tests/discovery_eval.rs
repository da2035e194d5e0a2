//! Discovery quality on the labelled fixture (`fixtures/discovery`), with the
//! real model: the floors the ranking must keep. The full table, and speed,
//! come from the benchmark (`cargo bench -p switchboard-core --bench discovery`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use switchboard_core::discovery::eval::{self, Labelled};
use switchboard_core::discovery::{FastEmbedder, ModelPaths};
use switchboard_core::registry::AgentRecord;

const AGENTS: &str = include_str!("../../fixtures/discovery/agents.json");
const QUERIES: &str = include_str!("../../fixtures/discovery/queries.json");

/// The model, or a failure that says how to install it. Never a skip.
fn embedder() -> Arc<FastEmbedder> {
    let paths = ModelPaths::resolve(None, None);
    FastEmbedder::load_shared(&paths).unwrap_or_else(|e| {
        panic!(
            "discovery tests need the embedding model: {e}.\n\
             Install it with `scripts/install-model` (tests/run does), or point \
             SWITCHBOARD_MODEL_DIR and ORT_DYLIB_PATH at an installed copy."
        )
    })
}

fn fixture() -> (Vec<AgentRecord>, Vec<Labelled>) {
    let agents = eval::parse_agents(AGENTS).unwrap();
    let queries = eval::parse_queries(QUERIES).unwrap();
    (agents, queries)
}

#[test]
fn fixture_is_big_enough_and_consistent() {
    let (agents, queries) = fixture();
    assert!(agents.len() >= 40, "{} agents", agents.len());
    assert!(queries.len() >= 80, "{} queries", queries.len());
    let ids: std::collections::HashSet<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), agents.len(), "duplicate agent ids");
    for q in &queries {
        assert!(!q.expect.is_empty(), "{:?} expects nothing", q.query);
        for id in &q.expect {
            assert!(
                ids.contains(id.as_str()),
                "{:?} expects unknown agent {id}",
                q.query
            );
        }
    }
}

#[test]
fn fused_ranking_meets_the_floors() {
    let (agents, queries) = fixture();
    let report = eval::evaluate(&agents, &queries, embedder().as_ref()).unwrap();
    println!(
        "{} agents, {} queries\n{}",
        agents.len(),
        queries.len(),
        report.table()
    );
    assert!(
        report.fused.recall_at_3 >= 0.90,
        "fused recall@3 {:.3} < 0.90\n{}",
        report.fused.recall_at_3,
        report.table()
    );
    assert!(
        report.fused.mrr >= 0.80,
        "fused MRR {:.3} < 0.80\n{}",
        report.fused.mrr,
        report.table()
    );
    assert!(
        report.fused.mrr > report.lexical.mrr,
        "fused MRR {:.3} does not beat lexical-only {:.3}\n{}",
        report.fused.mrr,
        report.lexical.mrr,
        report.table()
    );
}
