//! `switchboard serve`: the local stack, headless.

use anyhow::Context;
use serde::Serialize;
use switchboard_core::profile::{AwsProfile, ProfileKind};
use switchboard_core::{EventBus, Gateway};
use switchboard_emulator::stack::{LocalStack, StackOptions};

use super::Ctx;
use crate::cli::ServeArgs;

/// Starts the stack, prints where it is, and runs until Ctrl-C or SIGTERM.
/// With an AWS profile, only the gateway runs (see [`run_aws`]).
pub async fn run(ctx: &Ctx, args: ServeArgs) -> anyhow::Result<()> {
    if let ProfileKind::Aws(aws) = &ctx.profile.kind {
        return run_aws(ctx, aws, args).await;
    }
    let stack = LocalStack::start(StackOptions {
        data_dir: ctx.data_dir.clone(),
        listen: args.listen,
        config: ctx.config.gateway.clone(),
    })
    .await?;
    let info = &stack.info;
    if args.json {
        crate::output::json(info)?;
    } else {
        println!(
            "Switchboard local stack is up (data in {})",
            info.data_dir.display()
        );
        println!();
        println!("  gateway      {}", info.gateway_url);
        println!("  token URL    {}", info.token_url);
        println!("  JWKS         {}", info.jwks_url);
        for a in &info.agents {
            println!("  agent {:<7} {}  (backend {})", a.id, a.card_url, a.url);
        }
        println!();
        println!("  client id     {}", info.client_id);
        println!("  client secret {}", info.client_secret);
        println!("  scopes        {}", info.scopes.join(" "));
        println!();
        println!("Get a token:");
        println!(
            "  curl -s -u {}:{} -d grant_type=client_credentials {}",
            info.client_id, info.client_secret, info.token_url
        );
        println!("Press Ctrl-C to stop.");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_signal().await;
    tracing::info!("shutting down");
    stack.shutdown().await;
    Ok(())
}

/// What `serve --profile NAME --json` prints for an AWS profile.
#[derive(Debug, Serialize)]
struct AwsServeInfo {
    gateway_url: String,
    profile: String,
    region: String,
    endpoint_url: Option<String>,
    table_prefix: String,
    issuer: String,
    jwks_url: String,
    token_url: String,
    pid: u32,
}

/// The gateway alone against an AWS profile: DynamoDB and Secrets Manager
/// for state, tokens from the profile's issuer (a Cognito user pool). No
/// local issuer and no sample agents. Any number of these can share the
/// profile's tables.
async fn run_aws(ctx: &Ctx, aws: &AwsProfile, args: ServeArgs) -> anyhow::Result<()> {
    let stores = ctx.stores()?;
    let issuer = aws.issuer.trim_end_matches('/').to_owned();
    let mut config = ctx.config.gateway.clone();
    config.issuer = Some(issuer.clone());
    let jwks_url = aws
        .jwks_uri
        .clone()
        .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
    config.jwks_uri = Some(jwks_url.clone());
    let token_url = aws
        .token_url
        .clone()
        .unwrap_or_else(|| format!("{issuer}/oauth2/token"));
    if aws.token_url.is_none() {
        tracing::warn!(
            profile = %ctx.profile.name,
            %token_url,
            "token_url is not set: cards advertise the issuer's /oauth2/token; for Cognito set it to the user pool domain's token endpoint"
        );
    }
    config.token_url = Some(token_url.clone());
    // Bodies stay out of the traffic stream on AWS unless asked for.
    config.traffic_capture.get_or_insert(false);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let gateway = Gateway::new(config, stores, EventBus::new(), public_url.clone())
        .await
        .with_context(|| format!("starting the gateway on profile {}", ctx.profile.name))?;
    let info = AwsServeInfo {
        gateway_url: public_url.trim_end_matches('/').to_owned(),
        profile: ctx.profile.name.clone(),
        region: aws.region.clone(),
        endpoint_url: aws.endpoint_url.clone(),
        table_prefix: aws.table_prefix.clone(),
        issuer,
        jwks_url,
        token_url,
        pid: std::process::id(),
    };
    if args.json {
        crate::output::json(&info)?;
    } else {
        println!(
            "Switchboard gateway is up on profile {} (AWS region {}{})",
            info.profile,
            info.region,
            info.endpoint_url
                .as_deref()
                .map(|e| format!(", endpoint {e}"))
                .unwrap_or_default()
        );
        println!();
        println!("  gateway      {}", info.gateway_url);
        println!(
            "  tables       {}agents, …permissions, …counters, …embeddings",
            info.table_prefix
        );
        println!("  issuer       {}", info.issuer);
        println!("  JWKS         {}", info.jwks_url);
        println!("  token URL    {}", info.token_url);
        println!("Press Ctrl-C to stop.");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gw = gateway.clone();
    let server = tokio::spawn(async move {
        gw.serve(listener, async move {
            let _ = stop_rx.await;
        })
        .await
    });
    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
