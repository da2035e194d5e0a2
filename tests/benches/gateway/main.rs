//! Gateway benchmark (not a test): how much the gateway costs on the hot path.
//!
//! One run, all on loopback:
//!
//! * **Throughput** — A2A 1.0 `SendMessage` JSON-RPC posts to the echo sample
//!   agent, closed loop over N keep-alive connections (default 64), three ways:
//!   direct to the agent, through the gateway (`POST /agents/echo` with a
//!   bearer token), and through nginx `proxy_pass` as a reference proxy.
//! * **Added latency** — open loop at a fixed rate (default 1,000 req/s),
//!   direct vs. gateway; the difference of the percentiles is what the gateway
//!   adds.
//!
//! The stack is the real binary: `switchboard serve --listen 127.0.0.1:0
//! --json --data-dir <tmp>`, which prints one JSON line describing itself.
//! `--self-test` swaps it for a tiny in-process server, to check the harness.
//!
//! Run it with `tests/bench` (installs nginx, builds the release binary) or
//! `cargo bench -p switchboard-tests --bench gateway -- --help`.

//!
//! The code: [`stack`] starts what is measured, [`setup`] readies it,
//! [`target`] sends one request, [`load`] the closed and open loops,
//! [`stats`] and [`meters`] count, [`nginx`] is the reference proxy and
//! [`report`] prints the tables.

#[path = "../common/mod.rs"]
mod common;
mod load;
mod meters;
mod nginx;
mod report;
mod setup;
mod stack;
mod stats;
mod target;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use load::*;
use meters::*;
use nginx::*;
use report::*;
use setup::*;
use stack::*;
use stats::*;
use target::*;

pub(crate) const ECHO_AGENT: &str = "echo";
pub(crate) const ECHO_SCOPE: &str = "switchboard/echo";
pub(crate) const RAISED_LIMIT: &str = "100000000";
pub(crate) const TARGET_ADDED_P50_MS: f64 = 0.2;
pub(crate) const TARGET_ADDED_P99_MS: f64 = 1.0;
pub(crate) const TARGET_GATEWAY_VS_NGINX: f64 = 1.0;
/// Connections kept ready for the open-loop runs (they grow if ever exhausted).
pub(crate) const OPEN_LOOP_POOL: usize = 16;
pub(crate) const A2A_VERSION: HeaderName = HeaderName::from_static("a2a-version");

fn main() -> ExitCode {
    let cfg = Config::parse();
    match run(&cfg) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("\nBENCHMARK FAILED: {e:#}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------
// configuration

#[derive(Debug, Clone, Parser)]
#[command(
    name = "gateway",
    about = "gateway benchmark: SendMessage throughput (direct / gateway / nginx) and added latency",
    override_usage = "cargo bench -p switchboard-tests --bench gateway -- [OPTIONS]\n       tests/bench [OPTIONS]",
    after_help = "targets: added latency p50 <= 0.2 ms and p99 <= 1 ms; gateway/nginx throughput >= 1.0x.\n\
                  exit status: 0 = clean run (targets missed or not), 1 = request errors, 2 = the benchmark failed."
)]
pub(crate) struct Config {
    /// Measured time of each throughput run, seconds
    #[arg(long, env = "BENCH_DURATION", value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) duration: Duration,
    /// Warm-up before each run, not measured, seconds
    #[arg(long, env = "BENCH_WARMUP", value_name = "SECS", default_value = "2", value_parser = seconds_or_zero)]
    pub(crate) warmup: Duration,
    /// Concurrent keep-alive connections, closed loop
    #[arg(long, env = "BENCH_CONNECTIONS", value_name = "N", default_value = "64", value_parser = positive)]
    pub(crate) connections: usize,
    /// Open-loop rate for the latency runs, req/s
    #[arg(long, env = "BENCH_RATE", value_name = "N", default_value = "1000", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rate: u64,
    /// Measured time of each latency run, seconds
    #[arg(long, env = "BENCH_LATENCY_DURATION", value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub(crate) latency_duration: Duration,
    /// Load-generator threads; 1 = one current-thread runtime
    #[arg(long, env = "BENCH_CLIENT_THREADS", value_name = "N", default_value = "1", value_parser = positive)]
    pub(crate) client_threads: usize,
    /// Throughput rounds, each running every target once (in rotating order); the report shows each target's median round
    #[arg(long, env = "BENCH_ROUNDS", value_name = "N", default_value = "3", value_parser = positive)]
    pub(crate) rounds: usize,
    /// The switchboard binary (default: `switchboard` next to this benchmark's target dir)
    #[arg(long, env = "SWITCHBOARD_BIN", value_name = "PATH")]
    pub(crate) bin: Option<PathBuf>,
    /// The nginx binary (default: from PATH or /usr/sbin)
    #[arg(long, env = "NGINX_BIN", value_name = "PATH")]
    pub(crate) nginx: Option<PathBuf>,
    /// Benchmark a tiny in-process server instead of `switchboard serve`
    #[arg(long)]
    pub(crate) self_test: bool,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A duration in (fractional) seconds, more than zero.
fn seconds(v: &str) -> Result<Duration, String> {
    let s: f64 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a number of seconds"))?;
    if !(s.is_finite() && s > 0.0) {
        return Err("expected a positive number of seconds".into());
    }
    Ok(Duration::from_secs_f64(s))
}

/// A duration in (fractional) seconds, zero or more.
fn seconds_or_zero(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => seconds(v),
    }
}

/// A whole number of at least one.
fn positive(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{v:?} is not a positive integer")),
    }
}

// ---------------------------------------------------------------------------
// the whole run

/// Returns the number of request errors seen (0 = clean).
pub(crate) fn run(cfg: &Config) -> Result<u64> {
    let tmp = tempfile::Builder::new()
        .prefix("switchboard-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let rt = if cfg.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.client_threads)
            .enable_all()
            .build()?
    };

    let stack = if cfg.self_test {
        eprintln!("self-test: starting an in-process echo server instead of `switchboard serve`");
        Stack::self_test()?
    } else {
        let bin = common::switchboard_bin(cfg.bin.as_deref())?;
        eprintln!("starting {} serve", bin.display());
        Stack::spawn(&bin, tmp.path())?
    };
    let outcome = rt.block_on(bench(cfg, &stack, tmp.path()));
    drop(rt);
    stack.stop();
    outcome
}

pub(crate) async fn bench(cfg: &Config, stack: &Stack, tmp: &Path) -> Result<u64> {
    let info = &stack.info;
    let echo = info
        .agents
        .iter()
        .find(|a| a.id == ECHO_AGENT)
        .ok_or_else(|| anyhow!("`serve --json` lists no agent with id `{ECHO_AGENT}`"))?;
    let echo_uri: Uri = echo
        .url
        .parse()
        .with_context(|| format!("echo agent url {}", echo.url))?;
    let gateway_uri: Uri = info
        .gateway_url
        .parse()
        .with_context(|| format!("gateway_url {}", info.gateway_url))?;

    let token = fetch_token(info)
        .await
        .context("getting an access token from the local issuer")?;

    let direct = Arc::new(Target::new("direct", &echo_uri, echo_uri.path(), None)?);
    let gateway_path = format!(
        "{}/agents/{ECHO_AGENT}",
        gateway_uri.path().trim_end_matches('/')
    );
    let gateway = Arc::new(Target::new(
        "gateway",
        &gateway_uri,
        &gateway_path,
        Some(&format!("Bearer {token}")),
    )?);

    probe(&direct)
        .await
        .with_context(|| format!("the echo agent at {} did not answer SendMessage", echo.url))?;

    if let Some(bin) = &stack.bin {
        raise_limit(bin, &info.data_dir)?;
    }
    check_burst(&gateway).await?;

    let nginx = Nginx::start(cfg, tmp, direct.addr)?;
    let via_nginx = Arc::new(Target::new("nginx", &nginx.uri()?, echo_uri.path(), None)?);
    probe(&via_nginx)
        .await
        .context("nginx did not proxy SendMessage to the echo agent")?;

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_before = load_average();
    eprintln!(
        "\n{} connections, closed loop, {} warm-up + {} per target, {} round(s); {} CPUs; load generator: {} thread(s)",
        cfg.connections,
        secs(cfg.warmup),
        secs(cfg.duration),
        cfg.rounds,
        cpus,
        cfg.client_threads
    );

    let meters = Meters {
        serve: stack.pid(),
        nginx: Some(nginx.pid()),
    };
    // Rounds rotate the order, so a slow spell of the machine does not
    // always fall on the same target.
    let targets = [&direct, &gateway, &via_nginx];
    let mut throughput = Vec::new();
    for round in 0..cfg.rounds {
        for k in 0..targets.len() {
            let target = targets[(k + round) % targets.len()];
            eprint!(
                "  throughput: round {}/{} {:<8} ... ",
                round + 1,
                cfg.rounds,
                target.name
            );
            let mut run = closed_loop(target.clone(), cfg, &meters).await?;
            run.round = round;
            eprintln!("{:.0} req/s, {} errors", run.rps(), run.stats.errors());
            throughput.push(run);
        }
    }

    eprintln!(
        "\nadded latency: open loop {} req/s, {} warm-up + {} per target, in alternating 1 s slices",
        cfg.rate,
        secs(cfg.warmup),
        secs(cfg.latency_duration)
    );
    let latency = open_loop(&[direct.clone(), gateway.clone()], cfg, &meters).await?;
    for run in &latency {
        eprintln!(
            "  latency: {:<8} ... p50 {} p99 {}, {} errors",
            run.target,
            ms(run.stats.p(50.0)),
            ms(run.stats.p(99.0)),
            run.stats.errors()
        );
    }
    let nginx_version = nginx_version(&nginx.bin);
    nginx.stop();

    let report = Report {
        cfg,
        cpus,
        nginx_version,
        load_before,
        load_after: load_average(),
        self_test: stack.bin.is_none(),
        throughput: &throughput,
        latency: &latency,
    };
    print!("{}", report.render());
    Ok(report.total_errors())
}
