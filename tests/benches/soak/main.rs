//! Soak benchmark (not a test, not run in CI): the real `switchboard serve`
//! (release build) under steady mixed traffic for a long time, watching for
//! server errors, memory growth and descriptor leaks.
//!
//! Traffic, open loop at a fixed rate, in a fixed mix of every 20 requests:
//!
//! * 11 `send` — valid A2A `SendMessage` to the echo sample agent (expect 200);
//! * 3 `invalid` — a token whose signature does not verify (expect 401);
//! * 3 `stream` — `SendStreamingMessage` to the stream sample agent, read to
//!   its last event (expect 200 and a completed task);
//! * 3 `limited` — an agent allowing 5 requests a minute (expect 200 or 429).
//!
//! It samples the server's resident memory (`VmRSS` in `/proc/PID/status`)
//! and open descriptors (`/proc/PID/fd`) at the start, after the warm-up,
//! every minute and at the end, and judges: no 5xx and no transport error,
//! only the expected statuses, RSS at the end within 10% (or 8 MiB) of the
//! value after the warm-up, and no descriptor growth.
//!
//! Run it on a quiet machine:
//!
//! ```text
//! cargo build --release -p switchboard
//! cargo bench -p switchboard-tests --bench soak -- --duration 10m
//! ```
//!
//! The code: [`serve`] runs and watches the server, [`traffic`] sends the
//! mix, [`report`] judges; the run itself is here.

#[path = "../common/mod.rs"]
mod common;
mod report;
mod serve;
mod traffic;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Parser;
use futures::StreamExt as _;
use serde_json::{json, Value};

use report::*;
use serve::*;
use traffic::*;

pub(crate) const LIMITED_AGENT: &str = "soak-limited";
pub(crate) const LIMITED_PER_MINUTE: &str = "5";
pub(crate) const RAISED_LIMIT: &str = "1000000000";
pub(crate) const RSS_SLACK_PCT: f64 = 10.0;
pub(crate) const RSS_SLACK_KIB: u64 = 8 * 1024;
pub(crate) const FD_SLACK: usize = 8;
/// The sample the checks judge: traffic over, every request answered.
pub(crate) const END: &str = "end (drained)";
/// Requests allowed in flight before new ones are skipped (and counted).
pub(crate) const MAX_IN_FLIGHT: usize = 4096;

fn main() -> ExitCode {
    let cfg = Config::parse();
    eprintln!(
        "soak: how to run: `cargo build --release -p switchboard && cargo bench -p switchboard-tests --bench soak -- --duration 10m` (--help for options)"
    );
    match run(&cfg) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
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
    name = "soak",
    about = "soak benchmark: `switchboard serve` (release) under steady mixed traffic; errors, RSS and fds over time",
    override_usage = "cargo bench -p switchboard-tests --bench soak -- [OPTIONS]",
    after_help = "how to run (on a quiet machine; the full run takes the --duration):\n  cargo build --release -p switchboard\n  cargo bench -p switchboard-tests --bench soak -- --duration 10m\n\n\
                  mix of every 20 requests: 11 SendMessage, 3 invalid token, 3 SendStreamingMessage, 3 to a 5/min agent.\n\
                  pass: zero 5xx and transport errors; only expected statuses; RSS end within 10% or 8 MiB of after\n\
                  warm-up; descriptors at the end (drained) no more than after warm-up + 8.\n\
                  exit status: 0 PASS, 1 FAIL, 2 the benchmark itself failed."
)]
pub(crate) struct Config {
    /// How long traffic runs: 90s, 10m, 1h or seconds
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Requests per second, open loop
    #[arg(long, value_name = "N", default_value = "50", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rate: u64,
    /// Traffic before the memory baseline is taken [default: 60s, at most a quarter of --duration]
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub(crate) warmup: Option<Duration>,
    /// Time between memory/fd samples
    #[arg(long, value_name = "D", default_value = "60s", value_parser = parse_duration)]
    pub(crate) sample: Duration,
    /// The switchboard binary (default: target/release/switchboard)
    #[arg(long, env = "SWITCHBOARD_BIN", value_name = "PATH")]
    pub(crate) bin: Option<PathBuf>,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Config {
    /// `--warmup`, 60 s unless given, at most a quarter of `--duration`.
    pub(crate) fn warmup(&self) -> Duration {
        let cap = self.duration / 4;
        self.warmup.unwrap_or(Duration::from_secs(60)).min(cap)
    }
}

fn parse_duration(v: &str) -> Result<Duration> {
    let v = v.trim();
    let (num, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("{v:?} is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => bail!("unknown unit {other:?} in {v:?} (ms, s, m, h)"),
    };
    if !(secs.is_finite() && secs > 0.0) {
        bail!("{v:?} must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

// ---------------------------------------------------------------------------
// the run

pub(crate) fn run(cfg: &Config) -> Result<bool> {
    let bin = common::switchboard_bin(cfg.bin.as_deref())?;
    let tmp = tempfile::Builder::new()
        .prefix("switchboard-soak-")
        .tempdir()?;
    eprintln!("soak: starting {} serve", bin.display());
    let serve = Serve::start(&bin, tmp.path())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(soak(cfg, &serve));
    drop(rt);
    let log = serve.stderr.clone();
    serve.stop();
    let (report, pass) = result?;
    print!("{report}");
    let errors_logged = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .count();
    println!(
        "server log: {} ({errors_logged} ERROR lines)",
        log.display()
    );
    // Keep the log for a failed run.
    if !pass {
        let kept =
            std::env::temp_dir().join(format!("switchboard-soak-{}.log", std::process::id()));
        if std::fs::copy(&log, &kept).is_ok() {
            println!("server log kept at {}", kept.display());
        }
    }
    Ok(pass)
}

pub(crate) async fn setup(serve: &Serve, http: &reqwest::Client) -> Result<(String, String)> {
    let echo = serve.agent_url("echo")?;
    for agent in ["echo", "stream"] {
        serve.cli(&["agents", "edit", agent, "--limit", RAISED_LIMIT])?;
    }
    serve.cli(&[
        "agents",
        "add",
        LIMITED_AGENT,
        "--url",
        &echo,
        "--name",
        "Soak limited",
        "--description",
        "The echo agent behind a small per-minute limit, for 429s.",
        "--limit",
        LIMITED_PER_MINUTE,
    ])?;
    serve.cli(&["permissions", "grant", "switchboard/echo", LIMITED_AGENT])?;
    let resp = http
        .post(serve.get("token_url")?)
        .basic_auth(serve.get("client_id")?, Some(serve.get("client_secret")?))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "switchboard/echo switchboard/stream"),
        ])
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("the issuer refused a token: {}", resp.status());
    }
    let token = resp.json::<Value>().await?["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("no access_token"))?
        .to_owned();
    // Well formed, but signed by nobody the gateway trusts: the caller's
    // token with another token's signature.
    let other = serve
        .cli(&[
            "token",
            "mint",
            "--client",
            "soak-other",
            "--scope",
            "switchboard/echo",
        ])?
        .trim()
        .to_owned();
    let invalid = match (token.rsplit_once('.'), other.rsplit_once('.')) {
        (Some((head, _)), Some((_, sig))) => format!("{head}.{sig}"),
        _ => bail!("tokens are not JWTs"),
    };
    // Wait for the running gateway to pick up the edits.
    let gateway = serve.get("gateway_url")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let echo = http
            .post(format!("{gateway}/agents/echo"))
            .bearer_auth(&token)
            .json(&message("SendMessage", 0))
            .send()
            .await?;
        let raised = echo
            .headers()
            .get("ratelimit-limit")
            .is_some_and(|v| v == RAISED_LIMIT);
        let limited = http
            .post(format!("{gateway}/agents/{LIMITED_AGENT}"))
            .bearer_auth(&token)
            .json(&message("SendMessage", 0))
            .send()
            .await?
            .status()
            .as_u16();
        if raised && (limited == 200 || limited == 429) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the gateway did not pick up the registry edits (echo limit raised: {raised}, {LIMITED_AGENT}: {limited})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((token, invalid))
}

pub(crate) async fn soak(cfg: &Config, serve: &Serve) -> Result<(String, bool)> {
    let pid = serve.pid();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()?;
    let (token, invalid_token) = setup(serve, &http).await?;
    let warmup = cfg.warmup();
    eprintln!(
        "soak: {} of traffic at {} req/s (warm-up {}), samples every {}",
        human(cfg.duration),
        cfg.rate,
        human(warmup),
        human(cfg.sample)
    );

    let mut samples = Vec::new();
    let take = |label: &str, at: Duration, requests: u64| -> Result<Sample> {
        Ok(Sample {
            label: label.to_owned(),
            at,
            rss_kib: rss_kib(pid)?,
            fds: fd_count(pid)?,
            requests,
        })
    };
    samples.push(take("start", Duration::ZERO, 0)?);

    let traffic = Arc::new(Traffic {
        http: http.clone(),
        gateway: serve.get("gateway_url")?,
        token,
        invalid_token,
        counts: Mutex::new(BTreeMap::new()),
        first_errors: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        skipped: AtomicU64::new(0),
        issued: AtomicU64::new(0),
    });
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n: u64 = 0;
    let mut warm = false;
    let mut next_sample = cfg.sample;
    let mut minute = 0;
    while started.elapsed() < cfg.duration {
        tick.tick().await;
        let class = MIX[(n % MIX.len() as u64) as usize];
        n += 1;
        if traffic.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
            traffic.skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            let now = traffic.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            traffic.max_in_flight.fetch_max(now, Ordering::Relaxed);
            traffic.issued.fetch_add(1, Ordering::Relaxed);
            let t = traffic.clone();
            tokio::spawn(async move {
                let outcome = t.one(class, n).await;
                t.record(class, outcome);
                t.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        let at = started.elapsed();
        if !warm && at >= warmup {
            warm = true;
            samples.push(take("after warm-up", at, n)?);
            eprintln!(
                "soak: warmed up; RSS {}",
                mib(samples[samples.len() - 1].rss_kib)
            );
        }
        if at >= next_sample {
            minute += 1;
            let label = if cfg.sample == Duration::from_secs(60) {
                format!("minute {minute}")
            } else {
                format!("sample {minute}")
            };
            samples.push(take(&label, at, n)?);
            next_sample += cfg.sample;
            eprintln!(
                "soak: {} {label}: RSS {}, {} fds, {n} requests",
                human(at),
                mib(samples[samples.len() - 1].rss_kib),
                samples[samples.len() - 1].fds
            );
        }
    }
    let traffic_time = started.elapsed();
    // Drain.
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while traffic.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = traffic.in_flight.load(Ordering::SeqCst);
    samples.push(take(END, started.elapsed(), n)?);

    let mut report = Report {
        cfg,
        warmup,
        traffic_time,
        counts: traffic
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        first_errors: traffic
            .first_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        issued: traffic.issued.load(Ordering::Relaxed),
        skipped: traffic.skipped.load(Ordering::Relaxed),
        max_in_flight: traffic.max_in_flight.load(Ordering::Relaxed),
        left_in_flight: left,
        samples,
    };
    // Every client connection closed: what the server holds on its own.
    drop(traffic);
    drop(http);
    tokio::time::sleep(Duration::from_secs(2)).await;
    report
        .samples
        .push(take("idle (client gone)", started.elapsed(), n)?);
    Ok(report.render())
}
