//! `switchboard serve`: the local stack, headless.

use switchboard_emulator::stack::{LocalStack, StackOptions};

use super::Ctx;
use crate::cli::ServeArgs;

/// Starts the stack, prints where it is, and runs until Ctrl-C or SIGTERM.
pub async fn run(ctx: &Ctx, args: ServeArgs) -> anyhow::Result<()> {
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
