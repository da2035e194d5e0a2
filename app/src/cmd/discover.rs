//! `switchboard discover "query"`: the ranking `GET /discover` gives, over
//! every agent (no token, no permission filter: the operator's view), from
//! the data directory's registry. Agents whose vectors are missing or stale
//! are embedded first and their vectors stored, as a gateway would.

use std::time::Duration;

use switchboard_core::discovery::http::answer_body;
use switchboard_core::discovery::{Discovery, Mode, ModelSource};
use switchboard_core::registry::RegistryCache;

use super::Ctx;
use crate::cli::DiscoverArgs;
use crate::output;

/// Where card URLs point when no stack is running and no public URL is configured.
const DEFAULT_GATEWAY: &str = "http://127.0.0.1:7400";

/// Runs `discover`.
pub async fn run(ctx: &Ctx, args: DiscoverArgs) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    let registry = RegistryCache::load(stores.agents.clone(), stores.permissions.clone()).await?;
    let discovery = Discovery::start(
        registry.clone(),
        stores.embeddings.clone(),
        ModelSource::Files(ctx.config.gateway.model_paths()),
    )
    .await;
    // One-shot: wait for the model and for any agent not embedded yet (their
    // vectors are stored, so this happens once), saying so when it takes a while.
    let mut status = discovery.settle(Duration::from_secs(2)).await;
    if !discovery.is_settled() {
        let pending = status.agents - status.embedded;
        if discovery.embedder().is_some() && pending > 0 {
            eprintln!("embedding {pending} agents (once: their vectors are stored)…");
        } else {
            eprintln!("loading the embedding model…");
        }
        status = discovery.settle(Duration::from_secs(24 * 3600)).await;
    }
    let k = args.k as usize;
    let answer = discovery.search(&args.query, k, |_| true).await;
    let gateway_url = switchboard_emulator::stack::read_runtime(&ctx.data_dir)
        .map(|info| info.gateway_url)
        .or_else(|| ctx.config.gateway.public_url.clone())
        .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned());
    let snapshot = registry.snapshot();
    let body = answer_body(&answer, &args.query, k, &snapshot, &gateway_url);
    if args.json.json {
        return output::json(&body);
    }
    match (&answer.mode, &answer.model) {
        (Mode::Semantic, Some(model)) => println!(
            "semantic ranking ({model} fused with BM25) over {} agents",
            status.agents
        ),
        _ => println!("lexical ranking (BM25 only) over {} agents", status.agents),
    }
    if let Some(notice) = &answer.notice {
        eprintln!("note: {notice}");
    }
    if answer.hits.is_empty() {
        println!("no agent matches");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = body["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let skills: Vec<&str> = r["matched_skills"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s["name"].as_str())
                .collect();
            let mut id = r["id"].as_str().unwrap_or_default().to_owned();
            if r["enabled"] == false {
                id.push_str(" (disabled)");
            }
            vec![
                (i + 1).to_string(),
                format!("{:.3}", r["score"].as_f64().unwrap_or(0.0)),
                id,
                r["name"].as_str().unwrap_or_default().to_owned(),
                skills.join(", "),
                r["card_url"].as_str().unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    output::table(
        &["#", "SCORE", "ID", "NAME", "MATCHED SKILLS", "CARD URL"],
        &rows,
    );
    Ok(())
}
