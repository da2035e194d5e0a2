//! A backend's card fetched again with the backend's own credentials, and
//! what it fills in on the agent's record. Shared by the admin API
//! (`POST /admin/agents/{id}/refresh`) and the CLI (`agents add`, `edit
//! --url`, `refresh`).

use std::time::Duration;

use serde_json::Value;

use crate::error::GatewayError;
use crate::proxy::backend_auth::BackendAuthenticator;
use crate::proxy::card::fetch_card;
use crate::registry::AgentRecord;

/// The card at `agent.url`, fetched with the credentials `agent.auth` names
/// (read through `auth`, so from the secret store or the token endpoint).
pub async fn fetch_backend_card(
    auth: &BackendAuthenticator,
    http: &reqwest::Client,
    agent: &AgentRecord,
    timeout: Duration,
) -> Result<Value, GatewayError> {
    let credential = auth.header(&agent.id, &agent.auth).await?;
    Ok(fetch_card(http, &agent.url, credential, timeout).await?)
}

/// Stores `card` on the record; an empty name or description (or a name
/// that is only the id) is taken from the card.
pub fn apply_card(record: &mut AgentRecord, card: Value) {
    let field = |k: &str| {
        card.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if record.name.is_empty() || record.name == record.id {
        if let Some(name) = field("name") {
            record.name = name;
        }
    }
    if record.description.is_empty() {
        if let Some(d) = field("description") {
            record.description = d;
        }
    }
    record.card = Some(card);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn the_card_fills_only_what_is_empty() {
        let mut a = AgentRecord::new("echo", "http://127.0.0.1:1");
        a.name = "echo".into();
        apply_card(
            &mut a,
            json!({"name": "Echo", "description": "Says it back"}),
        );
        assert_eq!(
            (a.name.as_str(), a.description.as_str()),
            ("Echo", "Says it back")
        );
        a.description = "Mine".into();
        apply_card(&mut a, json!({"name": "Other", "description": "Theirs"}));
        assert_eq!((a.name.as_str(), a.description.as_str()), ("Echo", "Mine"));
        assert_eq!(
            a.card,
            Some(json!({"name": "Other", "description": "Theirs"}))
        );
    }
}
