//! `switchboard agents …`.

use anyhow::{bail, Context};
use switchboard_core::proxy::card;
use switchboard_core::registry::{
    validate_agent_id, validate_backend_url, AgentRecord, BackendAuth, StoreError,
};

use switchboard_core::admin::refresh::{apply_card, fetch_backend_card};
use switchboard_core::proxy::backend_auth::BackendAuthenticator;
use switchboard_core::store::Stores;

use super::Ctx;
use crate::cli::{AgentAddArgs, AgentEditArgs, AgentsCmd, AuthArgs};
use crate::output;

/// Runs an `agents` subcommand.
pub async fn run(ctx: &Ctx, cmd: AgentsCmd) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    let agents = stores.agents;
    match cmd {
        AgentsCmd::List(f) => {
            let list = agents.list().await?;
            if f.json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    vec![
                        a.id.clone(),
                        a.name.clone(),
                        if a.enabled { "yes" } else { "no" }.into(),
                        a.rate_limit
                            .map(|l| format!("{l}/min"))
                            .unwrap_or_else(|| "default".into()),
                        a.auth.describe(),
                        a.url.clone(),
                    ]
                })
                .collect();
            output::table(
                &["ID", "NAME", "ENABLED", "LIMIT", "BACKEND AUTH", "URL"],
                &rows,
            );
            Ok(())
        }
        AgentsCmd::Show { id, json } => {
            let a = agents
                .get(&id)
                .await?
                .with_context(|| format!("no agent {id}"))?;
            if json.json {
                return output::json(&a);
            }
            print_agent(&a);
            Ok(())
        }
        AgentsCmd::Add(args) => add(ctx, args).await,
        AgentsCmd::Edit(args) => edit(ctx, args).await,
        AgentsCmd::Rm { id } => {
            agents.delete(&id).await.map_err(not_found(&id))?;
            println!("deleted agent {id}");
            Ok(())
        }
        AgentsCmd::Refresh { id, all } => refresh(ctx, id, all).await,
        AgentsCmd::Enable { id } => set_enabled(ctx, &id, true).await,
        AgentsCmd::Disable { id } => set_enabled(ctx, &id, false).await,
    }
}

fn not_found(id: &str) -> impl Fn(StoreError) -> anyhow::Error + '_ {
    move |e| match e {
        StoreError::NotFound(_) => anyhow::anyhow!("no agent {id}"),
        other => other.into(),
    }
}

fn print_agent(a: &AgentRecord) {
    println!("id           {}", a.id);
    println!("name         {}", a.name);
    println!("description  {}", a.description);
    println!("url          {}", a.url);
    println!("enabled      {}", a.enabled);
    println!(
        "limit        {}",
        a.rate_limit
            .map(|l| format!("{l} requests/minute per client"))
            .unwrap_or_else(|| "gateway default".into())
    );
    println!("backend auth {}", a.auth.describe());
    println!("version      {}", a.version);
}

/// Builds backend auth from flags; `None` when no auth flag was given.
fn auth_from(args: &AuthArgs) -> anyhow::Result<Option<BackendAuth>> {
    if args.no_auth {
        return Ok(Some(BackendAuth::None));
    }
    if let Some(name) = &args.auth_header {
        let secret = args
            .secret
            .clone()
            .context("--auth-header needs --secret NAME (the secret holding the header value)")?;
        header_name(name)?;
        return Ok(Some(BackendAuth::Header {
            name: name.clone(),
            secret,
        }));
    }
    if let Some(token_url) = &args.oauth2_token_url {
        url::Url::parse(token_url).with_context(|| format!("--oauth2-token-url {token_url:?}"))?;
        let secret = args.secret.clone().context(
            "--oauth2-token-url needs --secret NAME (the secret holding the client secret)",
        )?;
        return Ok(Some(BackendAuth::OAuth2 {
            token_url: token_url.clone(),
            client_id: args.oauth2_client_id.clone().unwrap_or_default(),
            secret,
            scopes: args.oauth2_scopes.clone(),
        }));
    }
    if args.secret.is_some() || !args.oauth2_scopes.is_empty() {
        bail!("--secret and --oauth2-scope go with --auth-header or --oauth2-token-url");
    }
    Ok(None)
}

/// Checks a backend auth header name.
pub(crate) fn header_name(name: &str) -> anyhow::Result<()> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .with_context(|| format!("{name:?} is not a valid header name"))
}

/// Fetches `record`'s card with its backend credentials (read from the
/// profile's secret store, or a token from its token endpoint).
async fn fetch_card(stores: &Stores, record: &AgentRecord) -> anyhow::Result<serde_json::Value> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let auth = BackendAuthenticator::new(stores.secrets.clone(), http.clone());
    Ok(fetch_backend_card(&auth, &http, record, card::TOOL_FETCH_TIMEOUT).await?)
}

async fn add(ctx: &Ctx, args: AgentAddArgs) -> anyhow::Result<()> {
    validate_agent_id(&args.id).map_err(anyhow::Error::msg)?;
    validate_backend_url(&args.url).map_err(anyhow::Error::msg)?;
    let auth = auth_from(&args.auth)?.unwrap_or_default();
    let mut record = AgentRecord::new(&args.id, &args.url);
    record.auth = auth;
    record.rate_limit = args.limit;
    record.enabled = !args.disabled;
    record.name = args.name.clone().unwrap_or_default();
    record.description = args.description.clone().unwrap_or_default();
    let stores = ctx.stores()?;
    // Always: the card's skills are what discovery indexes.
    match fetch_card(&stores, &record).await {
        Ok(card) => apply_card(&mut record, card),
        Err(e) => eprintln!(
            "note: no agent card at {} ({e:#}); added without one, run `switchboard agents refresh {}` once the backend answers",
            args.url, args.id
        ),
    }
    if record.name.is_empty() {
        record.name = record.id.clone();
    }
    let stored = stores.agents.create(record).await.map_err(|e| match e {
        StoreError::Conflict(_) => anyhow::anyhow!(
            "an agent with id {} already exists (use `switchboard agents edit`)",
            args.id
        ),
        other => other.into(),
    })?;
    if args.json.json {
        return output::json(&stored);
    }
    println!("added agent {} → {}", stored.id, stored.url);
    Ok(())
}

async fn edit(ctx: &Ctx, args: AgentEditArgs) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    let mut record = stores
        .agents
        .get(&args.id)
        .await?
        .with_context(|| format!("no agent {}", args.id))?;
    let before = (record.url.clone(), record.auth.clone());
    if let Some(url) = &args.url {
        validate_backend_url(url).map_err(anyhow::Error::msg)?;
        record.url = url.clone();
    }
    if let Some(n) = args.name {
        record.name = n;
    }
    if let Some(d) = args.description {
        record.description = d;
    }
    if let Some(l) = args.limit {
        record.rate_limit = Some(l);
    }
    if args.default_limit {
        record.rate_limit = None;
    }
    if let Some(auth) = auth_from(&args.auth)? {
        record.auth = auth;
    }
    if (record.url.clone(), record.auth.clone()) != before {
        // The stored card belongs to the old backend: fetch the new one.
        record.card = None;
        match fetch_card(&stores, &record).await {
            Ok(card) => apply_card(&mut record, card),
            Err(e) => eprintln!(
                "note: no agent card at {} ({e:#}); saved without one, run `switchboard agents refresh {}` once the backend answers",
                record.url, record.id
            ),
        }
    }
    let stored = stores.agents.update(record).await.map_err(|e| match e {
        StoreError::Conflict(m) => anyhow::anyhow!("{m}; run the edit again"),
        other => other.into(),
    })?;
    if args.json.json {
        return output::json(&stored);
    }
    println!("updated agent {}", stored.id);
    Ok(())
}

async fn set_enabled(ctx: &Ctx, id: &str, enabled: bool) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    let mut record = stores
        .agents
        .get(id)
        .await?
        .with_context(|| format!("no agent {id}"))?;
    record.enabled = enabled;
    stores.agents.update(record).await?;
    println!(
        "agent {id} {}",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// `agents refresh ID|--all`: each card fetched again and stored; every
/// agent is tried, and the command fails if any could not be refreshed.
async fn refresh(ctx: &Ctx, id: Option<String>, all: bool) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    let records = match (id, all) {
        (Some(id), _) => vec![stores
            .agents
            .get(&id)
            .await?
            .with_context(|| format!("no agent {id}"))?],
        (None, true) => stores.agents.list().await?,
        (None, false) => bail!("name an agent or pass --all"),
    };
    let mut failed = Vec::new();
    for mut record in records {
        let id = record.id.clone();
        let card = match fetch_card(&stores, &record).await {
            Ok(card) => card,
            Err(e) => {
                eprintln!("{id}: no card at {} ({e:#})", record.url);
                failed.push(id);
                continue;
            }
        };
        apply_card(&mut record, card);
        match stores.agents.update(record).await {
            Ok(stored) => println!("refreshed the card of {id} (version {})", stored.version),
            Err(e) => {
                eprintln!("{id}: {e}");
                failed.push(id);
            }
        }
    }
    if !failed.is_empty() {
        bail!("could not refresh {}", failed.join(", "));
    }
    Ok(())
}
