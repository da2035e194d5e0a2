//! `/admin/agents`: the registry's agents in the record shape of `export` /
//! `import`, with optimistic concurrency (`ETag` = the record's version,
//! `If-Match`), a PATCH for the everyday switches, and a card refresh.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::refresh::{apply_card, fetch_backend_card};
use super::{after_write, etag, json_body, precondition, store_error, Precondition};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::registry::{AgentRecord, StoreError};
use crate::store::check_agent;

/// Attempts at a write without `If-Match` that loses a race before giving up.
const RETRIES: usize = 3;

/// `GET /admin/agents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    /// Every agent, sorted by id.
    pub agents: Vec<AgentRecord>,
}

/// `PATCH /admin/agents/{id}`: only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    /// Routable or not (a disabled agent answers 404).
    pub enabled: Option<bool>,
    /// Requests per minute per client; `null` returns to the gateway default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Option<Option<u32>>,
    /// What the agent does.
    pub description: Option<String>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn no_agent(id: &str) -> GatewayError {
    GatewayError::NotFound(format!("no agent {id}"))
}

/// The record with its `ETag`.
fn with_etag(status: StatusCode, record: AgentRecord) -> Response {
    let tag = etag(record.version);
    (status, [(header::ETAG, tag)], Json(record)).into_response()
}

/// Every agent.
#[utoipa::path(get, path = "/admin/agents", tag = "agents",
    responses((status = 200, description = "Every agent", body = AgentList)))]
pub async fn list(State(gw): State<Arc<Gateway>>) -> Result<Json<AgentList>, GatewayError> {
    let agents = gw.stores.agents.list().await.map_err(store_error)?;
    Ok(Json(AgentList { agents }))
}

/// One agent; its `ETag` is its version.
#[utoipa::path(get, path = "/admin/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, description = "The agent", body = AgentRecord),
        (status = 404, description = "No such agent")))]
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, GatewayError> {
    let record = gw
        .stores
        .agents
        .get(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| no_agent(&id))?;
    Ok(with_etag(StatusCode::OK, record))
}

/// The record in a PUT body: the path's id (the body may repeat it), every
/// field checked by the registry's validator before anything is written.
fn record_from(id: &str, body: &[u8]) -> Result<AgentRecord, GatewayError> {
    let mut value: Value = json_body(body)?;
    let object = value.as_object_mut().ok_or_else(|| {
        GatewayError::BadRequest("invalid body: expected an agent record object".into())
    })?;
    match object.get("id") {
        None => {
            object.insert("id".into(), Value::String(id.to_owned()));
        }
        Some(Value::String(body_id)) if body_id == id => {}
        Some(other) => {
            return Err(GatewayError::BadRequest(format!(
                "id: the body's id {other} is not the path's {id:?}"
            )))
        }
    }
    let bytes = serde_json::to_vec(&value)
        .map_err(|e| GatewayError::BadRequest(format!("invalid body: {e}")))?;
    let record: AgentRecord = json_body(&bytes)?;
    check_agent(&record).map_err(GatewayError::from)?;
    Ok(record)
}

/// Creates or replaces an agent. `If-Match: "N"` replaces only version N,
/// `If-None-Match: *` only creates; 412 when the condition fails. The
/// version and `updated_at` are the store's; a body without a card keeps
/// the stored one while the URL is unchanged.
#[utoipa::path(put, path = "/admin/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id"),
        ("If-Match" = Option<String>, Header, description = "Replace only this version"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only")),
    request_body = AgentRecord,
    responses((status = 201, description = "Created", body = AgentRecord),
        (status = 200, description = "Replaced", body = AgentRecord),
        (status = 400, description = "A field is invalid; nothing was written"),
        (status = 412, description = "The stored version is not the one given")))]
pub async fn put(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let record = record_from(&id, &body)?;
    let condition = precondition(&headers)?;
    let store = &gw.stores.agents;
    let mut attempt = 0;
    let (status, stored) = loop {
        attempt += 1;
        let current = match condition {
            Precondition::Absent => None,
            _ => store.get(&id).await.map_err(store_error)?,
        };
        let result = match (current, condition) {
            (None, Precondition::Version(_) | Precondition::Exists) => {
                return Err(GatewayError::PreconditionFailed(format!(
                    "agent {id} does not exist"
                )))
            }
            (None, _) => store
                .create(record.clone())
                .await
                .map(|r| (StatusCode::CREATED, r)),
            (Some(current), _) => {
                if let Precondition::Version(v) = condition {
                    if v != current.version {
                        return Err(stale(&id, v, current.version));
                    }
                }
                let mut next = record.clone();
                next.version = current.version;
                if next.card.is_none() && next.url == current.url {
                    next.card = current.card;
                }
                store.update(next).await.map(|r| (StatusCode::OK, r))
            }
        };
        match result {
            Ok(done) => break done,
            Err(StoreError::Conflict(_))
                if condition == Precondition::None && attempt < RETRIES => {}
            Err(StoreError::Conflict(_)) if condition == Precondition::Absent => {
                return Err(GatewayError::PreconditionFailed(format!(
                    "agent {id} exists already"
                )))
            }
            Err(e) => return Err(store_error(e)),
        }
    };
    after_write(&gw).await;
    Ok(with_etag(status, stored))
}

fn stale(id: &str, given: u64, stored: u64) -> GatewayError {
    GatewayError::PreconditionFailed(format!(
        "agent {id} is at version {stored}, not {given}: someone else changed it; read it again"
    ))
}

/// Reads, changes and writes back agent `id`, under the request's
/// precondition; without one, a write that loses a race is retried.
async fn modify(
    gw: &Gateway,
    id: &str,
    condition: Precondition,
    mut change: impl FnMut(&mut AgentRecord),
) -> Result<AgentRecord, GatewayError> {
    if condition == Precondition::Absent {
        return Err(GatewayError::BadRequest(
            "if-none-match: * only goes with PUT".into(),
        ));
    }
    let store = &gw.stores.agents;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut record = store
            .get(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| no_agent(id))?;
        if let Precondition::Version(v) = condition {
            if v != record.version {
                return Err(stale(id, v, record.version));
            }
        }
        change(&mut record);
        match store.update(record).await {
            Ok(stored) => return Ok(stored),
            Err(StoreError::Conflict(_))
                if !matches!(condition, Precondition::Version(_)) && attempt < RETRIES => {}
            Err(e) => return Err(store_error(e)),
        }
    }
}

/// Changes `enabled`, `rate_limit` or `description`; `If-Match` as for PUT.
#[utoipa::path(patch, path = "/admin/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id"),
        ("If-Match" = Option<String>, Header, description = "Change only this version")),
    request_body = AgentPatch,
    responses((status = 200, description = "Changed", body = AgentRecord),
        (status = 400, description = "A field is invalid; nothing was written"),
        (status = 404, description = "No such agent"),
        (status = 412, description = "The stored version is not the one given")))]
pub async fn patch(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let edit: AgentPatch = json_body(&body)?;
    if edit.enabled.is_none() && edit.rate_limit.is_none() && edit.description.is_none() {
        return Err(GatewayError::BadRequest(
            "invalid body: give at least one of enabled, rate_limit, description".into(),
        ));
    }
    if edit.rate_limit == Some(Some(0)) {
        return Err(GatewayError::BadRequest(
            "rate_limit: must be at least 1 (null returns to the gateway default)".into(),
        ));
    }
    let condition = precondition(&headers)?;
    let stored = modify(&gw, &id, condition, |r| {
        if let Some(e) = edit.enabled {
            r.enabled = e;
        }
        if let Some(l) = edit.rate_limit {
            r.rate_limit = l;
        }
        if let Some(d) = &edit.description {
            r.description.clone_from(d);
        }
    })
    .await?;
    after_write(&gw).await;
    Ok(with_etag(StatusCode::OK, stored))
}

/// Deletes an agent; `If-Match` as for PUT.
#[utoipa::path(delete, path = "/admin/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id"),
        ("If-Match" = Option<String>, Header, description = "Delete only this version")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such agent"),
        (status = 412, description = "The stored version is not the one given")))]
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    match precondition(&headers)? {
        Precondition::Version(v) => {
            let current = gw
                .stores
                .agents
                .get(&id)
                .await
                .map_err(store_error)?
                .ok_or_else(|| no_agent(&id))?;
            if current.version != v {
                return Err(stale(&id, v, current.version));
            }
        }
        Precondition::Absent => {
            return Err(GatewayError::BadRequest(
                "if-none-match: * only goes with PUT".into(),
            ))
        }
        Precondition::None | Precondition::Exists => {}
    }
    gw.stores.agents.delete(&id).await.map_err(|e| match e {
        StoreError::NotFound(_) => no_agent(&id),
        other => store_error(other),
    })?;
    after_write(&gw).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Fetches the backend's card again (with the backend's credentials),
/// stores it and re-indexes discovery; an empty name or description is
/// taken from the card.
#[utoipa::path(post, path = "/admin/agents/{id}/refresh", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, description = "The agent with its new card", body = AgentRecord),
        (status = 404, description = "No such agent"),
        (status = 502, description = "The backend's card could not be fetched")))]
pub async fn refresh(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, GatewayError> {
    let current = gw
        .stores
        .agents
        .get(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| no_agent(&id))?;
    let card = fetch_backend_card(
        &gw.backend_auth,
        &gw.backend_http(),
        &current,
        gw.config.header_timeout(),
    )
    .await
    .inspect_err(|e| tracing::warn!(agent = %id, error = ?e, "card refresh failed"))?;
    let stored = modify(&gw, &id, Precondition::None, |r| {
        apply_card(r, card.clone());
    })
    .await?;
    after_write(&gw).await;
    Ok(with_etag(StatusCode::OK, stored))
}
