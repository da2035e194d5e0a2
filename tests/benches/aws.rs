//! AWS profile benchmark (not a test): what a request costs on DynamoDB and
//! Secrets Manager compared with the local SQLite profile, and how many store
//! calls one request makes.
//!
//! Two gateways in this process, each with the local issuer and the echo
//! sample agent: one on the local profile (SQLite), one on an AWS profile
//! whose endpoint is a local moto server. The same A2A `SendMessage` goes
//! through each, closed loop, first one at a time and then with several in
//! flight; the difference of the percentiles is what the AWS profile adds
//! (the rate-limit counter write included). A third, short run goes through a
//! counting proxy to report the store calls per request by operation.
//!
//! moto is not DynamoDB: it is a single Python process on loopback, so its
//! latency says nothing about DynamoDB's (single-digit milliseconds inside a
//! region). What carries over is the number of calls per request.
//!
//!   cargo bench -p switchboard-tests --bench aws [-- --requests N --concurrency N]
//!
//! Needs moto (installed by `tests/run`; see `SWITCHBOARD_MOTO`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use switchboard_core::profile::AwsProfile;
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};
use switchboard_core::store::dynamodb::DynamoStore;
use switchboard_core::store::Stores;
use switchboard_core::GatewayConfig;
use switchboard_emulator::stack::{open_stores, LocalStack, StackOptions};
use switchboard_tests::faults::FaultProxy;
use switchboard_tests::moto::{self, Moto};

/// What to run.
#[derive(Debug, Parser)]
#[command(
    name = "aws",
    about = "AWS profile benchmark: a request on DynamoDB and Secrets Manager (local moto) against SQLite, and the store calls per request",
    override_usage = "cargo bench -p switchboard-tests --bench aws -- [--requests N] [--concurrency N] [--warmup N]"
)]
struct Options {
    /// Requests measured per run (half of them for the run one at a time)
    #[arg(long, value_name = "N", default_value_t = 2000)]
    requests: usize,
    /// Requests in flight in the concurrent run
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: usize,
    /// Requests sent before measuring
    #[arg(long, value_name = "N", default_value_t = 200)]
    warmup: usize,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn config() -> GatewayConfig {
    GatewayConfig {
        default_rate_limit: u32::MAX,
        ..GatewayConfig::default()
    }
}

fn aws_profile(endpoint: &str, prefix: &str) -> AwsProfile {
    AwsProfile {
        region: moto::REGION.into(),
        table_prefix: prefix.into(),
        secret_prefix: format!("{prefix}secrets/"),
        issuer: "http://unused".into(),
        jwks_uri: None,
        token_url: None,
        endpoint_url: Some(endpoint.into()),
        aws_profile: None,
    }
}

async fn aws_stack(endpoint: &str, dir: &std::path::Path) -> Result<LocalStack> {
    let prefix = moto::unique_prefix("bench");
    let conn = AwsConnection::new(
        "bench",
        &aws_profile(endpoint, &prefix),
        AwsCredentials::Static {
            access_key_id: moto::ACCESS_KEY_ID.into(),
            secret_access_key: moto::SECRET_ACCESS_KEY.into(),
        },
        AwsSettings::default(),
    )?;
    DynamoStore::new(conn.clone())
        .bootstrap(Duration::from_secs(30))
        .await?;
    let mut stores = Stores::aws(conn);
    stores.clients = open_stores(dir)?.clients;
    LocalStack::start_with_stores(
        StackOptions {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse()?,
            config: config(),
        },
        stores,
    )
    .await
}

/// Lifts the echo agent's own limit so that the benchmark is never refused.
async fn unlimited(stack: &LocalStack) -> Result<()> {
    let mut echo = stack
        .stores
        .agents
        .get("echo")
        .await?
        .context("no echo agent")?;
    echo.rate_limit = Some(u32::MAX);
    stack.stores.agents.update(echo).await?;
    stack.gateway.registry.reload().await?;
    Ok(())
}

async fn token(http: &reqwest::Client, stack: &LocalStack) -> Result<String> {
    unlimited(stack).await?;
    let info = &stack.info;
    let body: Value = http
        .post(&info.token_url)
        .basic_auth(&info.client_id, Some(&info.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "switchboard/echo"),
        ])
        .send()
        .await?
        .json()
        .await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

struct Run {
    hist: Histogram<u64>,
    elapsed: Duration,
    requests: usize,
}

/// `requests` SendMessage calls, `concurrency` at a time.
async fn drive(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    requests: usize,
    concurrency: usize,
) -> Result<Run> {
    let url = Arc::new(url.to_owned());
    let token = Arc::new(token.to_owned());
    let started = Instant::now();
    let mut workers = Vec::new();
    let per = requests / concurrency.max(1);
    for w in 0..concurrency.max(1) {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            for i in 0..per {
                let body = json!({"jsonrpc": "2.0", "id": format!("{w}-{i}"), "method": "SendMessage",
                    "params": {"message": {"messageId": format!("m{w}-{i}"), "role": "ROLE_USER", "parts": [{"text": "hi"}]}}});
                let t = Instant::now();
                let resp = http
                    .post(url.as_str())
                    .header("A2A-Version", "1.0")
                    .bearer_auth(token.as_str())
                    .json(&body)
                    .send()
                    .await?;
                let status = resp.status();
                let _ = resp.bytes().await?;
                if status != 200 {
                    bail!("{url} answered {status}");
                }
                hist.record(t.elapsed().as_micros() as u64)?;
            }
            Ok::<_, anyhow::Error>(hist)
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    for w in workers {
        hist.add(w.await??)?;
    }
    Ok(Run {
        hist,
        elapsed: started.elapsed(),
        requests: per * concurrency.max(1),
    })
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn row(name: &str, r: &Run) -> String {
    let h = &r.hist;
    format!(
        "| {name} | {} | {} | {} | {} | {:.0} |",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.mean() as u64),
        r.requests as f64 / r.elapsed.as_secs_f64()
    )
}

fn diff_row(name: &str, a: &Run, b: &Run) -> String {
    let d = |q: f64| {
        let x = b.hist.value_at_quantile(q) as f64 - a.hist.value_at_quantile(q) as f64;
        format!("{:+.2}", x / 1000.0)
    };
    format!(
        "| {name} | {} | {} | {} | {:+.2} | |",
        d(0.5),
        d(0.9),
        d(0.99),
        (b.hist.mean() - a.hist.mean()) / 1000.0
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = Options::parse();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let moto = Moto::start().await;
    let local_dir = tempfile::tempdir()?;
    let aws_dir = tempfile::tempdir()?;
    let local = LocalStack::start(StackOptions {
        data_dir: local_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        config: config(),
    })
    .await?;
    let aws = aws_stack(moto.endpoint(), aws_dir.path()).await?;

    let mut results: BTreeMap<(&str, usize), Run> = BTreeMap::new();
    for (name, stack) in [("local", &local), ("aws", &aws)] {
        let token = token(&http, stack).await?;
        let url = format!("{}/agents/echo", stack.info.gateway_url);
        drive(&http, &url, &token, o.warmup, 1).await?;
        for c in [1, o.concurrency] {
            let n = if c == 1 { o.requests / 2 } else { o.requests };
            results.insert((name, c), drive(&http, &url, &token, n, c).await?);
        }
    }

    // Store calls per request: a short run through a counting proxy.
    let proxy = FaultProxy::start(moto.endpoint()).await;
    let counted_dir = tempfile::tempdir()?;
    let counted = aws_stack(&proxy.url(), counted_dir.path()).await?;
    let token = token(&http, &counted).await?;
    let url = format!("{}/agents/echo", counted.info.gateway_url);
    drive(&http, &url, &token, 20, 1).await?;
    proxy.reset_counts();
    let n = 500;
    let started = Instant::now();
    drive(&http, &url, &token, n, 1).await?;
    let secs = started.elapsed().as_secs_f64();
    let calls = proxy.calls();

    println!("## AWS profile vs local profile (SendMessage to the echo agent, latency in ms)");
    println!();
    println!("moto {} on loopback stands in for DynamoDB and Secrets Manager: its latency is not DynamoDB's.", moto::MOTO_REQUIREMENT);
    println!();
    for c in [1, o.concurrency] {
        println!("### {c} request(s) in flight");
        println!();
        println!("| profile | p50 | p90 | p99 | mean | req/s |");
        println!("| --- | --- | --- | --- | --- | --- |");
        let (l, a) = (&results[&("local", c)], &results[&("aws", c)]);
        println!("{}", row("local (SQLite)", l));
        println!("{}", row("aws (DynamoDB on moto)", a));
        println!("{}", diff_row("added by aws", l, a));
        println!();
    }
    println!("### Store calls per request (aws, {n} requests, through a counting proxy)");
    println!();
    println!("| operation | calls | per request |");
    println!("| --- | --- | --- |");
    for (op, count) in &calls {
        let note = if op == "GetItem" {
            format!(
                " (registry cache poll, {:.1}/s, independent of traffic)",
                *count as f64 / secs
            )
        } else {
            String::new()
        };
        println!("| {op} | {count} | {:.3}{note} |", *count as f64 / n as f64);
    }
    Ok(())
}
