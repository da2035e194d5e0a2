//! Lambda mode benchmark (not a test): cold start to first byte, warm added
//! latency against `serve`'s gateway on the same stores, and the function's
//! memory after many requests.
//!
//! The release binary runs as `switchboard lambda` under the local Lambda
//! Runtime API of `switchboard_tests::lambda_runtime`, with API Gateway REST
//! events, on DynamoDB (a local moto server), with the local stack's issuer
//! and echo sample agent as the backend; the same stack's own gateway is the
//! `serve` baseline. Cold start = from starting the process to the first
//! byte of the first `SendMessage` answer (the runtime's init, the registry
//! load, the JWKS fetch and the counter write included). moto's latency is
//! not DynamoDB's; the runtime API here is local, Lambda's is not: read the
//! figures as what the binary itself costs.
//!
//!   cargo build --release -p switchboard
//!   cargo bench -p switchboard-tests --bench lambda [-- --cold N --warm N]
//!
//! Needs moto (installed by `tests/run`; see `SWITCHBOARD_MOTO`).

#[path = "common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use switchboard_core::store::aws::{AwsConnection, AwsCredentials, AwsSettings};
use switchboard_core::store::dynamodb::DynamoStore;
use switchboard_core::store::Stores;
use switchboard_core::GatewayConfig;
use switchboard_emulator::stack::{open_stores, LocalStack, StackOptions};
use switchboard_tests::lambda_runtime::RuntimeApi;
use switchboard_tests::moto::{self, Moto};

/// What to run.
#[derive(Debug, Parser)]
#[command(
    name = "lambda",
    about = "Lambda mode benchmark: cold start to first byte, warm added latency, memory",
    override_usage = "cargo bench -p switchboard-tests --bench lambda -- [--cold N] [--warm N] [--bin PATH]"
)]
struct Options {
    /// Cold starts measured (a new process each)
    #[arg(long, value_name = "N", default_value_t = 10)]
    cold: usize,
    /// Warm requests measured through one process (and through `serve`)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    warm: usize,
    /// The switchboard binary (default: target/release/switchboard)
    #[arg(long, value_name = "PATH", env = "SWITCHBOARD_BIN")]
    bin: Option<std::path::PathBuf>,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const TIMEOUT: Duration = Duration::from_secs(60);

fn event(token: &str, n: usize) -> String {
    let body = json!({"jsonrpc": "2.0", "id": n, "method": "SendMessage", "params": {"message": {
        "messageId": format!("m-{n}"), "role": "ROLE_USER", "parts": [{"text": "hello"}]}}});
    let headers = json!({"Host": "api.example.test", "A2A-Version": "1.0",
        "Content-Type": "application/json", "Authorization": format!("Bearer {token}")});
    let multi: serde_json::Map<String, Value> = headers
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({"resource": "/agents/{proxy+}", "path": "/agents/echo", "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": multi, "queryStringParameters": null,
        "multiValueQueryStringParameters": null, "pathParameters": {"proxy": "echo"},
        "stageVariables": null,
        "requestContext": {"accountId": "123456789012", "resourceId": "r", "stage": "prod",
            "requestId": "b", "identity": {"sourceIp": "127.0.0.1"}, "resourcePath": "/agents/{proxy+}",
            "httpMethod": "POST", "apiId": "api", "path": "/prod/agents/echo"},
        "body": body.to_string(), "isBase64Encoded": false})
    .to_string()
}

fn spawn(
    bin: &std::path::Path,
    runtime: &RuntimeApi,
    stack: &LocalStack,
    moto: &Moto,
    prefix: &str,
) -> Result<Child> {
    Command::new(bin)
        .arg("lambda")
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "switchboard-bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/switchboard-bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .env("AWS_REGION", moto::REGION)
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("SWITCHBOARD_TABLE_PREFIX", prefix)
        .env("SWITCHBOARD_ISSUER", &stack.info.issuer_url)
        .env("SWITCHBOARD_JWKS_URL", &stack.info.jwks_url)
        .env("SWITCHBOARD_TOKEN_URL", &stack.info.token_url)
        .env("SWITCHBOARD_PUBLIC_URL", "https://api.example.test/prod")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting switchboard lambda")
}

/// One `SendMessage` through the function: (first byte, whole answer).
async fn invoke(runtime: &RuntimeApi, token: &str, n: usize) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let mut inv = runtime.invoke(event(token, n));
    let prelude = inv.prelude(TIMEOUT).await;
    let first = started.elapsed();
    let body = inv.body(TIMEOUT).await;
    if prelude["statusCode"] != 200 {
        bail!(
            "status {}: {}",
            prelude["statusCode"],
            String::from_utf8_lossy(&body)
        );
    }
    Ok((first, started.elapsed()))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn ms(d: u64) -> f64 {
    d as f64 / 1000.0
}

fn line(label: &str, h: &Histogram<u64>) {
    println!(
        "{label:<34} p50 {:>8.3} ms   p90 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Options::parse();
    let bin = common::switchboard_bin(opts.bin.as_deref())?;
    let moto = Moto::start().await;
    let prefix = moto::unique_prefix("lambda-bench");
    let profile = switchboard_core::profile::AwsProfile {
        region: moto::REGION.into(),
        table_prefix: prefix.clone(),
        secret_prefix: format!("{prefix}secrets/"),
        issuer: "http://unused".into(),
        jwks_uri: None,
        token_url: None,
        endpoint_url: Some(moto.endpoint().into()),
        aws_profile: None,
    };
    let conn = AwsConnection::new(
        "bench",
        &profile,
        AwsCredentials::Static {
            access_key_id: moto::ACCESS_KEY_ID.into(),
            secret_access_key: moto::SECRET_ACCESS_KEY.into(),
        },
        AwsSettings::default(),
    )?;
    DynamoStore::new(conn.clone())
        .bootstrap(Duration::from_secs(30))
        .await?;
    let dir = tempfile::tempdir()?;
    let mut stores = Stores::aws(conn);
    stores.clients = open_stores(dir.path())?.clients;
    let stack = LocalStack::start_with_stores(
        StackOptions {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse()?,
            config: GatewayConfig {
                default_rate_limit: u32::MAX,
                ..GatewayConfig::default()
            },
        },
        stores,
    )
    .await?;
    // No limit gets in the way of the measurement (the sample's is 600 a minute).
    let mut echo = stack
        .stores
        .agents
        .get("echo")
        .await?
        .context("no echo agent")?;
    echo.rate_limit = Some(u32::MAX);
    stack.stores.agents.update(echo).await?;
    stack.gateway.registry.reload().await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let token: Value = http
        .post(&stack.info.token_url)
        .basic_auth(&stack.info.client_id, Some(&stack.info.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "switchboard/echo"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let runtime = RuntimeApi::start().await;

    println!(
        "binary {} ({:.1} MB)",
        bin.display(),
        std::fs::metadata(&bin)?.len() as f64 / 1e6
    );
    let mut cold_first = Histogram::<u64>::new(3)?;
    let mut cold_whole = Histogram::<u64>::new(3)?;
    for n in 0..opts.cold {
        let started = Instant::now();
        let mut child = spawn(&bin, &runtime, &stack, &moto, &prefix)?;
        let mut inv = runtime.invoke(event(&token, n));
        let _ = inv.prelude(TIMEOUT).await;
        cold_first.record(started.elapsed().as_micros() as u64)?;
        let _ = inv.body(TIMEOUT).await;
        cold_whole.record(started.elapsed().as_micros() as u64)?;
        let _ = child.kill();
        let _ = child.wait();
    }
    line("cold start to first byte", &cold_first);
    line("cold start to the whole answer", &cold_whole);

    let mut child = spawn(&bin, &runtime, &stack, &moto, &prefix)?;
    let mut warm = Histogram::<u64>::new(3)?;
    let measured = async {
        for n in 0..(opts.warm + 50) {
            let (_, whole) = invoke(&runtime, &token, n).await?;
            if n >= 50 {
                warm.record(whole.as_micros() as u64)?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    measured?;
    let url = format!("{}/agents/echo", stack.info.gateway_url);
    let mut serve = Histogram::<u64>::new(3)?;
    for n in 0..(opts.warm + 50) {
        let body = json!({"jsonrpc": "2.0", "id": n, "method": "SendMessage", "params": {"message": {
            "messageId": format!("m-{n}"), "role": "ROLE_USER", "parts": [{"text": "hello"}]}}});
        let started = Instant::now();
        let resp = http
            .post(&url)
            .bearer_auth(&token)
            .header("A2A-Version", "1.0")
            .json(&body)
            .send()
            .await?;
        let ok = resp.status().is_success();
        let _ = resp.bytes().await?;
        if !ok {
            bail!("serve answered an error");
        }
        if n >= 50 {
            serve.record(started.elapsed().as_micros() as u64)?;
        }
    }
    line("warm SendMessage, lambda", &warm);
    line("warm SendMessage, serve", &serve);
    println!(
        "added by lambda mode (p50)          {:.3} ms",
        ms(warm.value_at_quantile(0.5)) - ms(serve.value_at_quantile(0.5))
    );
    match rss {
        Some(kib) => println!(
            "lambda RSS after {} requests        {:.1} MB",
            opts.warm + 50,
            kib as f64 / 1024.0
        ),
        None => println!("lambda RSS: /proc not readable"),
    }
    Ok(())
}
