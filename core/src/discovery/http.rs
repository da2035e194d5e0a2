//! `GET /discover?q=…&k=…`: answered only with agents the caller's token
//! may reach, in the JSON shape the CLI prints too. The router
//! authenticates the caller first, as for `GET /agents`.

use std::time::Instant;

use serde_json::{json, Value};

use super::{parse_k, validate_query, Answer, Discovery, QueryError, MAX_QUERY_BYTES};
use crate::auth::Principal;
use crate::error::GatewayError;
use crate::registry::cache::Snapshot;

impl From<QueryError> for GatewayError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::TooLong(len) => GatewayError::QueryTooLong {
                len,
                max: MAX_QUERY_BYTES,
            },
            other => GatewayError::BadRequest(other.to_string()),
        }
    }
}

/// Reads `q` and `k` from a query string; each at most once.
pub fn parse_params(query: Option<&str>) -> Result<(String, usize), GatewayError> {
    let mut q: Option<String> = None;
    let mut k: Option<String> = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match name.as_ref() {
            "q" => &mut q,
            "k" => &mut k,
            _ => continue,
        };
        if slot.is_some() {
            return Err(GatewayError::BadRequest(format!(
                "the parameter {name} is given more than once"
            )));
        }
        *slot = Some(value.into_owned());
    }
    let q = q.ok_or(QueryError::Empty)?;
    let q = validate_query(&q)?.to_owned();
    let k = parse_k(k.as_deref())?;
    Ok((q, k))
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 10_000.0).round() / 10_000.0
}

/// The response body: the query, how it was ranked, and the results with
/// their registry names and descriptions and gateway card URLs.
pub fn answer_body(
    answer: &Answer,
    query: &str,
    k: usize,
    snapshot: &Snapshot,
    gateway_url: &str,
) -> Value {
    let results: Vec<Value> = answer
        .hits
        .iter()
        .filter_map(|hit| {
            let agent = snapshot.agents.get(&hit.id)?;
            let url = format!("{}/agents/{}", gateway_url.trim_end_matches('/'), agent.id);
            Some(json!({
                "id": agent.id,
                "name": agent.name,
                "description": agent.description,
                "score": round(hit.score),
                "scores": {
                    "vector": hit.vector.map(round),
                    "lexical": round(hit.lexical),
                },
                "matched_skills": hit.matched_skills.iter().map(|m| json!({
                    "id": m.id,
                    "name": m.name,
                })).collect::<Vec<_>>(),
                "enabled": agent.enabled,
                "url": url,
                "card_url": format!("{url}/.well-known/agent-card.json"),
            }))
        })
        .collect();
    json!({
        "query": query,
        "k": k,
        "mode": answer.mode,
        "model": answer.model,
        "notice": answer.notice,
        "results": results,
    })
}

/// Answers a discovery query string for `principal`: the body, or why not.
pub async fn discover(
    discovery: &Discovery,
    snapshot: &Snapshot,
    principal: &Principal,
    query: Option<&str>,
    gateway_url: &str,
) -> Result<Value, GatewayError> {
    let started = Instant::now();
    let (query, k) = parse_params(query).inspect_err(|e| {
        tracing::info!(
            target: "switchboard::audit",
            client = %principal.client_id,
            method = "discover",
            status = e.status().as_u16(),
            error = %e,
        );
    })?;
    let answer = discovery
        .search(&query, k, |id| {
            snapshot.routable(id).is_some()
                && snapshot
                    .permissions
                    .granting_scope(&principal.scopes, id)
                    .is_some()
        })
        .await;
    let body = answer_body(&answer, &query, k, snapshot, gateway_url);
    tracing::info!(
        target: "switchboard::audit",
        client = %principal.client_id,
        method = "discover",
        status = 200,
        mode = ?answer.mode,
        results = answer.hits.len(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn status(q: &str) -> u16 {
        parse_params(Some(q)).unwrap_err().status().as_u16()
    }

    #[test]
    fn params() {
        assert_eq!(
            parse_params(Some("q=book+a%20flight&k=3")).unwrap(),
            ("book a flight".to_owned(), 3)
        );
        assert_eq!(
            parse_params(Some("k=7&q=x&other=1")).unwrap(),
            ("x".to_owned(), 7)
        );
        assert_eq!(
            parse_params(Some("q=x")).unwrap().1,
            super::super::DEFAULT_K
        );
        for bad in [
            "",
            "k=3",
            "q=",
            "q=%20%09",
            "q=x&k=0",
            "q=x&k=51",
            "q=x&k=abc",
            "q=a&q=b",
            "q=x&k=1&k=2",
        ] {
            assert_eq!(status(bad), 400, "{bad}");
        }
        let long = format!("q={}", "a".repeat(super::super::MAX_QUERY_BYTES + 1));
        assert_eq!(status(&long), 413);
        let e = parse_params(Some(&long)).unwrap_err();
        assert_eq!(e.reason(), "QUERY_TOO_LONG");
    }
}
