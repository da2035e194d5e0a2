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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use futures::StreamExt as _;
use serde_json::{json, Value};

const USAGE: &str = "\
soak benchmark: `switchboard serve` (release) under steady mixed traffic; errors, RSS and fds over time

how to run (on a quiet machine; the full run takes the --duration):
  cargo build --release -p switchboard
  cargo bench -p switchboard-tests --bench soak -- --duration 10m

options:
  --duration D   how long traffic runs: 90s, 10m, 1h or seconds (default 10m)
  --rate N       requests per second, open loop (default 50)
  --warmup D     traffic before the memory baseline is taken (default 60s, at most a quarter of --duration)
  --sample D     time between memory/fd samples (default 60s)
  --bin PATH     the switchboard binary [SWITCHBOARD_BIN] (default: target/release/switchboard)
  -h, --help     this text

mix of every 20 requests: 11 SendMessage, 3 invalid token, 3 SendStreamingMessage, 3 to a 5/min agent.
pass: zero 5xx and transport errors; only expected statuses; RSS end within 10% or 8 MiB of after
warm-up; descriptors at the end (drained) no more than after warm-up + 8.
exit status: 0 PASS, 1 FAIL, 2 the benchmark itself failed.
";

const LIMITED_AGENT: &str = "soak-limited";
const LIMITED_PER_MINUTE: &str = "5";
const RAISED_LIMIT: &str = "1000000000";
const RSS_SLACK_PCT: f64 = 10.0;
const RSS_SLACK_KIB: u64 = 8 * 1024;
const FD_SLACK: usize = 8;
/// The sample the checks judge: traffic over, every request answered.
const END: &str = "end (drained)";
/// Requests allowed in flight before new ones are skipped (and counted).
const MAX_IN_FLIGHT: usize = 4096;

fn main() -> ExitCode {
    let cfg = match Config::parse() {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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

#[derive(Debug, Clone)]
struct Config {
    duration: Duration,
    rate: u64,
    warmup: Option<Duration>,
    sample: Duration,
    bin: Option<PathBuf>,
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

impl Config {
    /// `Ok(None)`: `--help`.
    fn parse() -> Result<Option<Config>> {
        let mut cfg = Config {
            duration: Duration::from_secs(600),
            rate: 50,
            warmup: None,
            sample: Duration::from_secs(60),
            bin: std::env::var_os("SWITCHBOARD_BIN").map(PathBuf::from),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = || -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => args.next().ok_or_else(|| anyhow!("{flag} needs a value")),
                }
            };
            match flag.as_str() {
                // `cargo bench` passes this to every bench target.
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--duration" => cfg.duration = parse_duration(&value()?)?,
                "--warmup" => cfg.warmup = Some(parse_duration(&value()?)?),
                "--sample" => cfg.sample = parse_duration(&value()?)?,
                "--rate" => {
                    let v = value()?;
                    cfg.rate = v.parse().with_context(|| format!("--rate {v}"))?;
                    if cfg.rate == 0 {
                        bail!("--rate must be positive");
                    }
                }
                "--bin" => cfg.bin = Some(PathBuf::from(value()?)),
                other => bail!("unknown argument `{other}`"),
            }
        }
        Ok(Some(cfg))
    }

    fn warmup(&self) -> Duration {
        let cap = self.duration / 4;
        self.warmup.unwrap_or(Duration::from_secs(60)).min(cap)
    }
}

fn switchboard_bin(cfg: &Config) -> Result<PathBuf> {
    if let Some(bin) = &cfg.bin {
        if !bin.is_file() {
            bail!("--bin / SWITCHBOARD_BIN {} is not a file", bin.display());
        }
        return Ok(bin.clone());
    }
    // This runs as <target>/release/deps/soak-<hash>; the binary is
    // <target>/release/switchboard.
    let exe = std::env::current_exe()?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("switchboard"))
        .collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow!(
            "the switchboard binary is not built (looked for {}): run `cargo build --release -p switchboard` or set SWITCHBOARD_BIN",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

// ---------------------------------------------------------------------------
// the server process

struct Serve {
    child: Child,
    info: Value,
    bin: PathBuf,
    data: PathBuf,
    stderr: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(bin: &Path, tmp: &Path) -> Result<Serve> {
        use std::os::unix::fs::PermissionsExt as _;
        let data = tmp.join("data");
        std::fs::create_dir_all(&data)?;
        // The fixture key spares the server generating one.
        let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/test-issuer-key.pem");
        let dst = data.join("issuer-key.pem");
        std::fs::copy(&key, &dst).with_context(|| format!("copying {}", key.display()))?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600))?;
        let stderr = tmp.join("serve.stderr");
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--listen", "127.0.0.1:0", "--json"])
            .env_remove("RUST_LOG")
            .env_remove("SWITCHBOARD_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("spawning {} serve", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Read the JSON line, then keep draining so the server never blocks.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && line.trim_start().starts_with('{') {
                    sent = tx.send(line).is_ok();
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(120)).map_err(|_| {
            anyhow!(
                "`switchboard serve` printed no JSON line; its log:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        })?;
        let info: Value = serde_json::from_str(&line).context("the JSON line of serve")?;
        Ok(Serve {
            child,
            info,
            bin: bin.to_path_buf(),
            data,
            stderr,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn get(&self, key: &str) -> Result<String> {
        self.info[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("`serve --json` has no {key}: {}", self.info))
    }

    fn agent_url(&self, id: &str) -> Result<String> {
        self.info["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == json!(id))
            .and_then(|a| a["url"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("`serve --json` lists no agent {id}"))
    }

    /// A CLI command on the server's data directory.
    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .env_remove("SWITCHBOARD_PROFILE")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "switchboard {}: {}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Open descriptors of a process.
fn fd_count(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

// ---------------------------------------------------------------------------
// traffic

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Send,
    Invalid,
    Stream,
    Limited,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Send => "send",
            Class::Invalid => "invalid",
            Class::Stream => "stream",
            Class::Limited => "limited",
        }
    }

    fn expected(self, status: u16) -> bool {
        match self {
            Class::Send | Class::Stream => status == 200,
            Class::Invalid => status == 401,
            Class::Limited => status == 200 || status == 429,
        }
    }
}

/// Every 20 requests: 11 send, 3 invalid, 3 stream, 3 limited, spread out.
const MIX: [Class; 20] = {
    use Class::*;
    [
        Send, Invalid, Send, Stream, Send, Limited, Send, Send, Invalid, Stream, Send, Limited,
        Send, Send, Invalid, Stream, Send, Limited, Send, Send,
    ]
};

/// How a request ended: an HTTP status, or what went wrong before one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    /// 200, but the stream ended without a completed task.
    StreamIncomplete,
    Transport(String),
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::StreamIncomplete => "200-incomplete".into(),
            Outcome::Transport(_) => "transport error".into(),
        }
    }
}

struct Traffic {
    http: reqwest::Client,
    gateway: String,
    token: String,
    invalid_token: String,
    counts: Mutex<BTreeMap<(Class, Outcome), u64>>,
    first_errors: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    skipped: AtomicU64,
    issued: AtomicU64,
}

fn message(method: &str, n: u64) -> Value {
    json!({
        "jsonrpc": "2.0", "id": n, "method": method,
        "params": {"message": {"messageId": format!("soak-{n}"), "role": "ROLE_USER",
            "parts": [{"text": "soak"}]}},
    })
}

impl Traffic {
    async fn one(&self, class: Class, n: u64) -> Outcome {
        let (agent, token, method) = match class {
            Class::Send => ("echo", &self.token, "SendMessage"),
            Class::Invalid => ("echo", &self.invalid_token, "SendMessage"),
            Class::Stream => ("stream", &self.token, "SendStreamingMessage"),
            Class::Limited => (LIMITED_AGENT, &self.token, "SendMessage"),
        };
        let resp = match self
            .http
            .post(format!("{}/agents/{agent}", self.gateway))
            .bearer_auth(token)
            .header("A2A-Version", "1.0")
            .json(&message(method, n))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::Transport(format!("{class:?}: {e}")),
        };
        let status = resp.status().as_u16();
        if class == Class::Stream && status == 200 {
            let mut body = resp.bytes_stream();
            let mut tail = Vec::new();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => {
                        tail.extend_from_slice(&c);
                        let keep = tail.len().saturating_sub(4096);
                        tail.drain(..keep);
                    }
                    Err(e) => return Outcome::Transport(format!("stream body: {e}")),
                }
            }
            let text = String::from_utf8_lossy(&tail);
            if !text.contains("TASK_STATE_COMPLETED") {
                return Outcome::StreamIncomplete;
            }
            return Outcome::Status(status);
        }
        match resp.bytes().await {
            Ok(_) => Outcome::Status(status),
            Err(e) => Outcome::Transport(format!("{class:?} body: {e}")),
        }
    }

    fn record(&self, class: Class, outcome: Outcome) {
        let unexpected = match &outcome {
            Outcome::Status(s) => !class.expected(*s),
            _ => true,
        };
        if unexpected {
            let mut errors = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
            if errors.len() < 10 {
                errors.push(format!("{}: {outcome:?}", class.name()));
            }
        }
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((class, outcome))
            .or_default() += 1;
    }
}

struct Sample {
    label: String,
    at: Duration,
    rss_kib: u64,
    fds: usize,
    requests: u64,
}

// ---------------------------------------------------------------------------
// the run

fn run(cfg: &Config) -> Result<bool> {
    let bin = switchboard_bin(cfg)?;
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

async fn setup(serve: &Serve, http: &reqwest::Client) -> Result<(String, String)> {
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

async fn soak(cfg: &Config, serve: &Serve) -> Result<(String, bool)> {
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

// ---------------------------------------------------------------------------
// the report

struct Report<'a> {
    cfg: &'a Config,
    warmup: Duration,
    traffic_time: Duration,
    counts: BTreeMap<(Class, Outcome), u64>,
    first_errors: Vec<String>,
    issued: u64,
    skipped: u64,
    max_in_flight: usize,
    left_in_flight: usize,
    samples: Vec<Sample>,
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 && (s % 60.0).abs() < 0.5 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{s:.1}s")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

impl Report<'_> {
    fn render(&self) -> (String, bool) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n## soak: switchboard serve, {} at {} req/s (warm-up {})\n",
            human(self.cfg.duration),
            self.cfg.rate,
            human(self.warmup)
        );
        let achieved = self.issued as f64 / self.traffic_time.as_secs_f64();
        let _ = writeln!(
            out,
            "issued {} requests ({achieved:.1} req/s), skipped {} (over {MAX_IN_FLIGHT} in flight), max in flight {}, left in flight at the end {}\n",
            self.issued, self.skipped, self.max_in_flight, self.left_in_flight
        );

        // Requests by class and outcome.
        let mut labels: Vec<String> = self.counts.keys().map(|(_, o)| o.label()).collect();
        labels.sort();
        labels.dedup();
        let _ = write!(out, "| class   |");
        for l in &labels {
            let _ = write!(out, " {l:>8} |");
        }
        let _ = writeln!(out, "    total |");
        let _ = write!(out, "|---------|");
        for _ in &labels {
            let _ = write!(out, "---------:|");
        }
        let _ = writeln!(out, "---------:|");
        let mut by_label_total: BTreeMap<String, u64> = BTreeMap::new();
        for class in [Class::Send, Class::Invalid, Class::Stream, Class::Limited] {
            let _ = write!(out, "| {:<7} |", class.name());
            let mut total = 0;
            for l in &labels {
                let n: u64 = self
                    .counts
                    .iter()
                    .filter(|((c, o), _)| *c == class && &o.label() == l)
                    .map(|(_, n)| n)
                    .sum();
                total += n;
                *by_label_total.entry(l.clone()).or_default() += n;
                let _ = write!(out, " {n:>8} |");
            }
            let _ = writeln!(out, " {total:>8} |");
        }
        let _ = write!(out, "| all     |");
        for l in &labels {
            let _ = write!(out, " {:>8} |", by_label_total[l]);
        }
        let _ = writeln!(out, " {:>8} |\n", by_label_total.values().sum::<u64>());

        // Memory and descriptors.
        let _ = writeln!(
            out,
            "| when               |        t |       RSS |  fds | requests |"
        );
        let _ = writeln!(
            out,
            "|--------------------|---------:|----------:|-----:|---------:|"
        );
        for s in &self.samples {
            let _ = writeln!(
                out,
                "| {:<18} | {:>8} | {:>9} | {:>4} | {:>8} |",
                s.label,
                human(s.at),
                mib(s.rss_kib),
                s.fds,
                s.requests
            );
        }
        let _ = writeln!(out);

        // Checks.
        let five_xx: u64 = self
            .counts
            .iter()
            .filter(|((_, o), _)| matches!(o, Outcome::Status(s) if *s >= 500))
            .map(|(_, n)| n)
            .sum();
        let transport: u64 = self
            .counts
            .iter()
            .filter(|((_, o), _)| matches!(o, Outcome::Transport(_)))
            .map(|(_, n)| n)
            .sum();
        let unexpected: u64 = self
            .counts
            .iter()
            .filter(|((c, o), _)| match o {
                Outcome::Status(s) => !c.expected(*s),
                _ => true,
            })
            .map(|(_, n)| n)
            .sum();
        let baseline = self
            .samples
            .iter()
            .find(|s| s.label == "after warm-up")
            .or(self.samples.first());
        let end = self.samples.iter().find(|s| s.label == END);
        let mut checks: Vec<(String, bool, String)> = Vec::new();
        checks.push((
            "zero 5xx and transport errors".into(),
            five_xx == 0 && transport == 0,
            format!("{five_xx} 5xx, {transport} transport errors"),
        ));
        checks.push((
            "only expected statuses".into(),
            unexpected == 0 && self.left_in_flight == 0,
            format!(
                "{unexpected} unexpected, {} never finished",
                self.left_in_flight
            ),
        ));
        if let (Some(b), Some(e)) = (baseline, end) {
            let growth = e.rss_kib as i64 - b.rss_kib as i64;
            let pct = growth as f64 * 100.0 / b.rss_kib.max(1) as f64;
            let ok = pct <= RSS_SLACK_PCT || growth <= RSS_SLACK_KIB as i64;
            checks.push((
                format!(
                    "RSS end within {RSS_SLACK_PCT:.0}% or {} of warm-up",
                    mib(RSS_SLACK_KIB)
                ),
                ok,
                format!(
                    "{} -> {} ({:+.1} MiB, {pct:+.1}%)",
                    mib(b.rss_kib),
                    mib(e.rss_kib),
                    growth as f64 / 1024.0
                ),
            ));
            checks.push((
                format!("no fd growth (end <= warm-up + {FD_SLACK})"),
                e.fds <= b.fds + FD_SLACK,
                format!("{} -> {} (start {})", b.fds, e.fds, self.samples[0].fds),
            ));
        }
        let _ = writeln!(out, "| check | result | measured |");
        let _ = writeln!(out, "|---|---|---|");
        for (what, ok, measured) in &checks {
            let _ = writeln!(out, "| {what} | {} | {measured} |", verdict(*ok));
        }
        if !self.first_errors.is_empty() {
            let _ = writeln!(out, "\nfirst unexpected outcomes:");
            for e in &self.first_errors {
                let _ = writeln!(out, "  {e}");
            }
        }
        let pass = checks.iter().all(|(_, ok, _)| *ok);
        let _ = writeln!(out, "\nRESULT: {}", verdict(pass));
        (out, pass)
    }
}
