//! The console's forms: how each is built and what its submit asks of the
//! core. Validation uses the same functions as the CLI and the core.

use std::time::Duration;

use serde_json::Value;
use switchboard_core::registry::{
    validate_agent_id, validate_backend_url, validate_client_id, validate_scope, AgentRecord,
    BackendAuth, Secret,
};

use super::dialog::Purpose;
use super::form::{Field, Form};
use super::model::Model;
use super::msg::Request;

const AUTH_NONE: usize = 0;
const AUTH_HEADER: usize = 1;
const AUTH_OAUTH2: usize = 2;

/// Step one of adding an agent: its URL.
pub fn agent_url_form() -> Form {
    Form::new(
        "Add an agent",
        vec![Field::text("url", "Backend URL", "")
            .help("its card is fetched from {url}/.well-known/agent-card.json")],
    )
}

/// Step two: the agent form, pre-filled from the fetched card.
pub fn agent_form_from_card(
    url: &str,
    card: Result<Value, String>,
    model: &Model,
) -> (Form, Purpose) {
    let mut record = AgentRecord::new("", url);
    let note = match &card {
        Ok(c) => {
            let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            record.name = field("name");
            record.description = field("description");
            record.id = suggest_id(&record.name, url, model);
            format!("Filled in from the agent's card at {url}.")
        }
        Err(e) => {
            record.id = suggest_id("", url, model);
            format!("No card at {url} ({e}); fill in the fields.")
        }
    };
    let form = agent_form(&record, true, model).note(note);
    (
        form,
        Purpose::Agent {
            original: None,
            card: card.ok(),
        },
    )
}

/// An id from a name (`Weather Bot` → `weather-bot`), unique among the agents.
fn suggest_id(name: &str, url: &str, model: &Model) -> String {
    let from = if name.trim().is_empty() {
        url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(str::to_owned))
                    .or_else(|| u.host_str().map(str::to_owned))
            })
            .unwrap_or_default()
    } else {
        name.to_owned()
    };
    let mut slug = String::new();
    for c in from.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_matches('-').chars().take(56).collect();
    if validate_agent_id(&slug).is_err() {
        slug = "agent".into();
    }
    let mut id = slug.clone();
    let mut n = 2;
    while model.agent(&id).is_some() {
        id = format!("{slug}-{n}");
        n += 1;
    }
    id
}

/// The agent form for a new (`create`) or existing record.
pub fn agent_form(record: &AgentRecord, create: bool, model: &Model) -> Form {
    let (auth, header, secret, token_url, client_id, scopes) = match &record.auth {
        BackendAuth::None => (AUTH_NONE, "", "", "", "", String::new()),
        BackendAuth::Header { name, secret } => (
            AUTH_HEADER,
            name.as_str(),
            secret.as_str(),
            "",
            "",
            String::new(),
        ),
        BackendAuth::OAuth2 {
            token_url,
            client_id,
            secret,
            scopes,
        } => (
            AUTH_OAUTH2,
            "",
            secret.as_str(),
            token_url.as_str(),
            client_id.as_str(),
            scopes.join(" "),
        ),
    };
    let default_secret = if secret.is_empty() && !record.id.is_empty() {
        format!("agents/{}", record.id)
    } else {
        secret.to_owned()
    };
    let mut fields = Vec::new();
    if create {
        fields.push(
            Field::text("id", "Id", &record.id).help("routes /agents/{id}: a-z, 0-9, '-', '_'"),
        );
    }
    fields.extend([
        Field::text("name", "Name", &record.name),
        Field::text("description", "Description", &record.description),
        Field::text("url", "Backend URL", &record.url),
        Field::text(
            "limit",
            "Limit (req/min)",
            &record.rate_limit.map(|l| l.to_string()).unwrap_or_default(),
        )
        .help(&format!(
            "per client; empty uses the gateway default ({})",
            model.stack.default_limit
        )),
        Field::toggle("enabled", "Enabled", record.enabled),
        Field::choice("auth", "Backend auth", &["none", "header", "oauth2"], auth),
        Field::text("header", "Header name", header)
            .help("e.g. x-api-key or authorization")
            .when("auth", &[AUTH_HEADER]),
        Field::text("token_url", "Token URL", token_url).when("auth", &[AUTH_OAUTH2]),
        Field::text("client_id", "Client id", client_id).when("auth", &[AUTH_OAUTH2]),
        Field::text("scopes", "Scopes", &scopes)
            .help("space-separated; empty asks for the client's defaults")
            .when("auth", &[AUTH_OAUTH2]),
        Field::text("secret", "Secret name", &default_secret)
            .help("where the value lives in the secret store")
            .when("auth", &[AUTH_HEADER, AUTH_OAUTH2]),
        Field::secret("secret_value", "Secret value")
            .help(if create {
                "typed masked; stored under the secret name"
            } else {
                "typed masked; empty keeps the stored value"
            })
            .when("auth", &[AUTH_HEADER, AUTH_OAUTH2]),
    ]);
    let title = if create {
        "Add an agent".to_owned()
    } else {
        format!("Edit agent {}", record.id)
    };
    Form::new(&title, fields)
}

/// A new issuer client.
pub fn client_form(model: &Model) -> Form {
    let known = model.known_scopes().join(" ");
    Form::new(
        "Add a client",
        vec![
            Field::text("id", "Client id", "").help("letters, digits, '.', '_', '-'"),
            Field::text("scopes", "Scopes", "").help(&format!(
                "space-separated; known: {}",
                if known.is_empty() { "none yet" } else { &known }
            )),
        ],
    )
}

/// A token for `client`: its scopes ticked, every known scope offered.
pub fn mint_form(client: &str, model: &Model) -> Form {
    let allowed: Vec<String> = model
        .client(client)
        .map(|c| c.allowed_scopes.clone())
        .unwrap_or_default();
    let mut items: Vec<(String, bool)> = allowed.iter().map(|s| (s.clone(), true)).collect();
    for s in model.known_scopes() {
        if !allowed.contains(&s) {
            items.push((s, false));
        }
    }
    Form::new(
        &format!("Mint a token for {client}"),
        vec![
            Field::checklist("scopes", "Scopes", items)
                .help("space ticks; the client's own scopes come first"),
            Field::text("ttl", "Lifetime (s)", "3600"),
        ],
    )
}

/// A token from an AWS profile's token endpoint: the client's id and
/// secret, as `switchboard token mint` takes them on that profile.
pub fn mint_remote_form(model: &Model) -> Form {
    let endpoint = match model.profile.aws() {
        Some(aws) => match &aws.token_url {
            Some(url) => url.clone(),
            None => format!("the token_endpoint of {}", aws.openid_configuration_url()),
        },
        None => "the local issuer".to_owned(),
    };
    Form::new(
        &format!("Get a token from profile {}", model.profile.name),
        vec![
            Field::text("client", "Client id", "")
                .help("an app client of the profile's user pool"),
            Field::secret("secret", "Client secret")
                .help("typed masked; sent only to the token endpoint, never stored"),
            Field::text("scopes", "Scopes", "")
                .help("space-separated; empty asks for the client's default scopes"),
        ],
    )
    .note(format!(
        "Profile {} verifies tokens from its own issuer: this asks {endpoint} with the client-credentials grant.",
        model.profile.name
    ))
}

/// A new scope for an agent.
pub fn new_scope_form(agent: &str) -> Form {
    Form::new(
        &format!("Grant a new scope to {agent}"),
        vec![Field::text("scope", "Scope", "").help("as it appears in tokens, e.g. team/weather")],
    )
}

/// A token to inspect.
pub fn token_form() -> Form {
    Form::new(
        "Inspect a token",
        vec![Field::text("token", "Token", "").help("paste a JWT (header.claims.signature)")],
    )
}

/// Checks a submitted form (marking its fields) and returns what to ask the
/// core; `None` when there is nothing to do or the form has errors.
pub fn submit(form: &mut Form, purpose: &Purpose, model: &Model) -> Option<Request> {
    match purpose {
        Purpose::AgentUrl => {
            let url = form.text("url");
            match validate_backend_url(&url) {
                Ok(_) => Some(Request::FetchCard { url }),
                Err(e) => {
                    form.set_error("url", e);
                    None
                }
            }
        }
        Purpose::Agent { original, card } => {
            let record = agent_record(form, original.as_deref(), card.clone())?;
            let secret = secret_of(form);
            Some(Request::SaveAgent {
                record,
                create: original.is_none(),
                secret,
            })
        }
        Purpose::Client => {
            let id = form.text("id");
            if let Err(e) = validate_client_id(&id) {
                form.set_error("id", e.to_string());
            } else if model.client(&id).is_some() {
                form.set_error("id", format!("a client with id {id} already exists"));
            }
            let scopes = checked_scopes(form);
            (!form.has_errors()).then_some(Request::AddClient { id, scopes })
        }
        Purpose::Mint { client } => {
            let scopes = form.checked("scopes");
            let ttl = match form.text("ttl").parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    form.set_error("ttl", "a number of seconds, more than zero");
                    return None;
                }
            };
            Some(Request::Mint {
                client: client.clone(),
                scopes,
                ttl: Duration::from_secs(ttl),
            })
        }
        Purpose::MintRemote => {
            let client = form.text("client");
            if client.is_empty() {
                form.set_error("client", "the app client's id");
            }
            let secret = form.raw_text("secret");
            if secret.is_empty() {
                form.set_error("secret", "the app client's secret");
            }
            let scopes = checked_scopes(form);
            (!form.has_errors()).then(|| Request::MintRemote {
                client,
                secret: Secret::new(secret),
                scopes,
            })
        }
        Purpose::NewScope { agent } => {
            let scope = form.text("scope");
            if let Err(e) = validate_scope(&scope) {
                form.set_error("scope", e.to_string());
                return None;
            }
            Some(Request::Grant {
                scope,
                agent: agent.clone(),
            })
        }
        Purpose::Token => {
            let token = form.text("token");
            if token.is_empty() {
                form.set_error("token", "paste a token first");
                return None;
            }
            Some(Request::Inspect { token })
        }
    }
}

fn secret_of(form: &Form) -> Option<(String, Secret)> {
    if form.choice("auth") == AUTH_NONE {
        return None;
    }
    let value = form.raw_text("secret_value");
    (!value.is_empty()).then(|| (form.text("secret"), Secret::new(value)))
}

/// The record a valid agent form describes; marks the form's errors otherwise.
fn agent_record(
    form: &mut Form,
    original: Option<&AgentRecord>,
    card: Option<Value>,
) -> Option<AgentRecord> {
    let mut record = match original {
        Some(r) => r.clone(),
        None => {
            let id = form.text("id");
            if let Err(e) = validate_agent_id(&id) {
                form.set_error("id", e);
            }
            let mut r = AgentRecord::new(id, "");
            r.card = card;
            r
        }
    };
    let url = form.text("url");
    if let Err(e) = validate_backend_url(&url) {
        form.set_error("url", e);
    }
    record.url = url;
    record.name = form.text("name");
    if record.name.is_empty() {
        record.name = record.id.clone();
    }
    record.description = form.text("description");
    record.rate_limit = match form.text("limit").as_str() {
        "" => None,
        s => match s.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                form.set_error("limit", "a whole number of requests per minute, or empty");
                None
            }
        },
    };
    record.enabled = form.toggle("enabled");
    let secret = form.text("secret");
    let auth = form.choice("auth");
    if auth != AUTH_NONE && secret.is_empty() {
        form.set_error("secret", "name the secret that holds the credential");
    }
    record.auth = match auth {
        AUTH_HEADER => {
            let name = form.text("header");
            if let Err(e) = crate::cmd::agents::header_name(&name) {
                form.set_error("header", e.to_string());
            }
            BackendAuth::Header { name, secret }
        }
        AUTH_OAUTH2 => {
            let token_url = form.text("token_url");
            if let Err(e) = url::Url::parse(&token_url) {
                form.set_error("token_url", format!("not a URL: {e}"));
            }
            let client_id = form.text("client_id");
            if client_id.is_empty() {
                form.set_error("client_id", "the gateway's client id at the token URL");
            }
            BackendAuth::OAuth2 {
                token_url,
                client_id,
                secret,
                scopes: words(form, "scopes"),
            }
        }
        _ => BackendAuth::None,
    };
    (!form.has_errors()).then_some(record)
}

/// The space-separated words of a text field.
fn words(form: &Form, key: &str) -> Vec<String> {
    form.text(key)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The scopes typed in the `scopes` field, each checked; what is wrong is
/// marked on the field.
fn checked_scopes(form: &mut Form) -> Vec<String> {
    let scopes = words(form, "scopes");
    for s in &scopes {
        if let Err(e) = validate_scope(s) {
            form.set_error("scopes", e.to_string());
        }
    }
    scopes
}
